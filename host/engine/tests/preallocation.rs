//! Preallocation: the active segment is grown ahead of its records with
//! zeros, so that record syncs do not change the file's length; the zeros
//! are bounded, trimmed from closed segments, never read as records, and a
//! reader racing a writer over them never sees damage.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use common::*;
use mini_engine::fs::faulty::{FaultyFs, FsEvent};
use mini_engine::verify::verify;
use mini_engine::{Journal, JournalOptions};

fn preallocating(preallocate: u64, segment_size: u64) -> JournalOptions {
    JournalOptions {
        preallocate,
        ..small(segment_size)
    }
}

/// Syncs of `path` in the event log that had a new file length to make
/// durable (a write since the sync before reached past every earlier one).
fn growing_syncs(events: &[FsEvent], path: &Path) -> usize {
    let mut end = 0;
    let mut grew = false;
    let mut syncs = 0;
    for event in events {
        match event {
            FsEvent::Write {
                path: p,
                offset,
                len,
            } if p == path => {
                let write_end = offset + *len as u64;
                grew |= write_end > end;
                end = end.max(write_end);
            }
            FsEvent::SyncData(p) if p == path => {
                syncs += usize::from(grew);
                grew = false;
            }
            _ => {}
        }
    }
    syncs
}

#[test]
fn appends_overwrite_zeros_written_and_synced_before_them() {
    let dir = tmp();
    let fs = FaultyFs::new();
    let journal = Journal::open_with(dir.path(), with_fs(64 << 20, Arc::new(fs.clone()))).unwrap();
    let appends = 2000;
    for i in 0..appends {
        journal.append(&rec(i)).unwrap();
    }
    let seg = last_segment(dir.path());
    let events = fs.events();
    let grew = growing_syncs(&events, &seg);
    // ~180 KB of records: the segment doubles from 4 KiB, so it grows about
    // log2(180 KB / 4 KiB) times, plus the header's sync.
    assert!(
        grew <= 8,
        "{grew} of {appends} syncs had to make a new length durable"
    );
    // Every record lands on zeros that an earlier sync made durable: between
    // a record write and the sync before it, some write already reached
    // past the record's end.
    let mut durable_end = 0;
    let mut written_end = 0;
    let mut overwrites = 0;
    for event in &events {
        match event {
            FsEvent::Write { path, offset, len } if *path == seg => {
                let end = offset + *len as u64;
                if end <= durable_end {
                    overwrites += 1;
                }
                written_end = written_end.max(end);
            }
            FsEvent::SyncData(path) if *path == seg => durable_end = written_end,
            _ => {}
        }
    }
    assert!(
        overwrites >= appends as usize - 10,
        "{overwrites} of {appends} record writes overwrote synced zeros"
    );
    drop(journal);
    let bytes = std::fs::read(&seg).unwrap();
    let end = records_end(&seg) as usize;
    assert!(bytes.len() > end, "zeros follow the records");
    assert!(bytes[end..].iter().all(|&b| b == 0));
    let journal = Journal::open(dir.path()).unwrap();
    assert_eq!(journal.recovery().dropped_bytes, 0);
    assert_eq!(read_all(&journal).len() as u64, appends);
}

#[test]
fn preallocated_zeros_are_bounded() {
    let dir = tmp();
    let journal = Journal::open_with(dir.path(), preallocating(8192, 64 << 20)).unwrap();
    let seg = last_segment(dir.path());
    for i in 0..3000 {
        journal.append(&rec(i)).unwrap();
        let zeros = file_len(&seg) - records_end(&seg);
        assert!(
            zeros <= 8192,
            "{zeros} bytes preallocated, the limit is 8192"
        );
    }
    drop(journal);

    // A small journal stays small: it grows by as much as it holds.
    let dir = tmp();
    let journal = Journal::open(dir.path()).unwrap();
    journal.append("1").unwrap();
    let seg = last_segment(dir.path());
    assert_eq!(file_len(&seg), 4096, "one page for a one-record journal");
    for i in 0..200 {
        journal.append(&rec(i)).unwrap();
        let (len, end) = (file_len(&seg), records_end(&seg));
        assert!(
            len <= (2 * end).next_multiple_of(4096),
            "{len} bytes for {end} bytes of records"
        );
    }

    // Off: the file is exactly its records.
    let dir = tmp();
    let journal = Journal::open_with(dir.path(), preallocating(0, 64 << 20)).unwrap();
    for i in 0..50 {
        journal.append(&rec(i)).unwrap();
    }
    let seg = last_segment(dir.path());
    assert_eq!(file_len(&seg), records_end(&seg));
}

#[test]
fn closed_segments_are_trimmed_and_zeros_left_there_are_harmless() {
    let dir = tmp();
    let journal = Journal::open_with(dir.path(), preallocating(1 << 20, 2048)).unwrap();
    for i in 0..300 {
        journal.append(&rec(i)).unwrap();
    }
    drop(journal);
    let segs: Vec<PathBuf> = segments(dir.path()).into_iter().map(|(_, p)| p).collect();
    assert!(segs.len() > 5);
    for seg in &segs[..segs.len() - 1] {
        let seal = lines(seg).pop().unwrap();
        assert!(
            seal.text.starts_with("{\"seal\":"),
            "{} sealed",
            seg.display()
        );
        assert_eq!(file_len(seg), seal.end, "{} not trimmed", seg.display());
        // The segment size bounds the records; the seal comes after them.
        assert!(seal.offset <= 2048);
    }
    let last = &segs[segs.len() - 1];
    assert!(
        file_len(last) > records_end(last),
        "the active segment keeps its zeros"
    );

    // A closed segment written before seals, whose trim was not synced: a
    // crash could leave zeros after its records. They are read as what they
    // are, and open seals the segment.
    let closed = &segs[2];
    let seal = lines(closed).pop().unwrap();
    set_len(closed, seal.offset);
    set_len(closed, seal.offset + 1000);
    let report = verify(dir.path(), &mut |_, _| {}).unwrap();
    assert_eq!((report.damage, report.torn_tail_bytes), (None, 0));
    assert_eq!(report.records, 300);
    let unlocked: Vec<_> = mini_engine::read_unlocked(dir.path(), 0)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    assert_eq!(journal.recovery().dropped_bytes, 0);
    assert_eq!(read_all(&journal).len(), 300);
    assert_eq!(unlocked, read_all(&journal));
    assert_eq!(lines(closed).pop().unwrap().text, seal.text, "sealed again");
    assert_eq!(file_len(closed), seal.end);
}

#[test]
fn verify_reads_preallocated_zeros_as_no_tail() {
    let dir = tmp();
    let journal = Journal::open(dir.path()).unwrap();
    for i in 0..10 {
        journal.append(&rec(i)).unwrap();
    }
    assert!(file_len(&last_segment(dir.path())) > records_end(&last_segment(dir.path())));
    let report = verify(dir.path(), &mut |_, _| {}).unwrap();
    assert_eq!(
        (report.records, report.torn_tail_bytes, report.damage),
        (10, 0, None)
    );
    assert_eq!(report.bytes, journal.size_bytes());
}

/// An unlocked reader (another process's `mini cat --follow`) polls while a
/// writer overwrites zeros: it may read a line half written, or zeros it
/// buffered before the writer replaced them, and must take neither for
/// damage nor return anything but the records in order.
#[test]
fn an_unlocked_reader_racing_a_writer_over_zeros_sees_only_records() {
    let dir = tmp();
    let journal = Journal::open_with(dir.path(), preallocating(1 << 20, 64 * 1024)).unwrap();
    let total = 3000u64;
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let journal = journal.clone();
        let done = done.clone();
        thread::spawn(move || {
            for i in 1..=total {
                if i % 10 == 0 {
                    journal.append_batch(&[rec(i), rec(i)]).unwrap();
                } else {
                    journal.append(&rec(i)).unwrap();
                }
            }
            done.store(true, Ordering::Release);
        })
    };
    let mut reader = mini_engine::read_unlocked(dir.path(), 0).unwrap();
    let mut seen = Vec::new();
    loop {
        let finished = done.load(Ordering::Acquire);
        let batch = reader
            .next_batch(64)
            .unwrap_or_else(|e| panic!("after {} records: {e}", seen.len()));
        if batch.is_empty() && finished {
            break;
        }
        seen.extend(batch);
    }
    writer.join().unwrap();
    assert_eq!(seen, read_all(&journal));
    assert!(
        segments(dir.path()).len() > 1,
        "the reader crossed a segment"
    );
}
