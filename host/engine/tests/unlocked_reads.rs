//! A read without the lock (`mini cat`, the unlocked inspections of states
//! and queues) agrees with open and `verify` about what is damage, what is
//! a torn tail and what is an empty journal. Found by the fuzz targets
//! (issue 11): it used to end silently at a missing segment, a line cut
//! short or a batch left open in a segment that is not the last, to fail on
//! a journal directory with no segment yet, and to fail at a torn tail.

mod common;

use std::path::Path;

use common::*;
use mini_engine::verify::verify;
use mini_engine::{Corruption, Entry, Journal, JournalError, read_unlocked};

/// Record 1, a batch 2-3, record 4, each unit in a segment of its own:
/// segments 1, 2 and 4.
fn build(dir: &Path) {
    let journal = Journal::open_with(dir, small(1)).unwrap();
    journal.append("1").unwrap();
    journal.append_batch(&["2", "3"]).unwrap();
    journal.append("4").unwrap();
    drop(journal);
    let firsts: Vec<u64> = segments(dir).iter().map(|s| s.0).collect();
    assert_eq!(firsts, [1, 2, 4]);
}

/// What an unlocked read of `dir` returns: its records, and the error it
/// ended with, if any.
fn read(dir: &Path) -> (Vec<u64>, Option<JournalError>) {
    let mut seqs = Vec::new();
    for entry in read_unlocked(dir, 0).unwrap() {
        match entry {
            Ok(Entry { seq, .. }) => seqs.push(seq),
            Err(e) => return (seqs, Some(e)),
        }
    }
    (seqs, None)
}

/// The damage `verify` finds in `dir`.
fn verified(dir: &Path) -> Corruption {
    verify(dir, &mut |_, _| {})
        .unwrap()
        .damage
        .expect("verify finds damage")
}

fn corrupt(error: Option<JournalError>) -> Corruption {
    match error {
        Some(JournalError::Corrupt(c)) => c,
        other => panic!("the unlocked read ended with {other:?}, not the damage"),
    }
}

#[test]
fn a_missing_segment_is_damage_to_an_unlocked_read() {
    let dir = tmp();
    build(dir.path());
    std::fs::remove_file(segment_path(dir.path(), 2)).unwrap();
    let (seqs, error) = read(dir.path());
    assert_eq!(seqs, [1]);
    assert_eq!(corrupt(error), verified(dir.path()));
}

#[test]
fn a_line_cut_short_in_a_closed_segment_is_damage_to_an_unlocked_read() {
    let dir = tmp();
    build(dir.path());
    let path = segment_path(dir.path(), 2);
    let last_record = record_lines(&path).pop().unwrap();
    set_len(&path, last_record.end - 3);
    let (seqs, error) = read(dir.path());
    assert_eq!(seqs, [1]);
    assert_eq!(corrupt(error), verified(dir.path()));
}

#[test]
fn a_batch_left_open_in_a_closed_segment_is_damage_to_an_unlocked_read() {
    let dir = tmp();
    build(dir.path());
    let path = segment_path(dir.path(), 2);
    let closing = record_lines(&path).pop().unwrap();
    // `"more"` is outside the crc: the line still reads, as an open batch.
    let reopened = closing
        .text
        .replace(",\"data\":", ",\"more\":true,\"data\":");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.splice(
        closing.offset as usize..closing.end as usize - 1,
        reopened.bytes(),
    );
    std::fs::write(&path, bytes).unwrap();
    let (seqs, error) = read(dir.path());
    assert!(seqs.starts_with(&[1]) && !seqs.contains(&4), "{seqs:?}");
    assert_eq!(corrupt(error), verified(dir.path()));
}

#[test]
fn a_closed_segment_whose_header_is_cut_is_damage_to_an_unlocked_read() {
    let dir = tmp();
    build(dir.path());
    set_len(&segment_path(dir.path(), 2), 10);
    let (seqs, error) = read(dir.path());
    assert_eq!(seqs, [1]);
    assert_eq!(corrupt(error), verified(dir.path()));
    // Open names the same damage (the segment's seal is gone with it).
    match Journal::open(dir.path()) {
        Err(JournalError::Corrupt(c)) => assert_eq!(c, verified(dir.path())),
        other => panic!("open gave {other:?}"),
    }
}

#[test]
fn a_segment_named_zero_is_damage_to_an_unlocked_read() {
    let dir = tmp();
    std::fs::write(
        dir.path().join("00000000000000000000.jsonl"),
        header(0) + &encode_unit(0, &["1"]),
    )
    .unwrap();
    let (seqs, error) = read(dir.path());
    assert_eq!(seqs, Vec::<u64>::new());
    assert_eq!(corrupt(error), verified(dir.path()));
}

#[test]
fn a_journal_directory_with_no_segment_reads_as_empty() {
    let dir = tmp();
    assert_clean(dir.path(), &[]);
    // Once the journal exists it reads the same.
    drop(Journal::open(dir.path()).unwrap());
    assert_clean(dir.path(), &[]);
}

#[test]
fn a_torn_tail_ends_an_unlocked_read_as_open_cuts_it() {
    let dir = tmp();
    let journal = Journal::open_with(dir.path(), small(1 << 20)).unwrap();
    for i in 1..=5 {
        journal.append(&rec(i)).unwrap();
    }
    drop(journal);
    // The last line complete, its data changed: a torn tail, not damage.
    let (path, line) = find_line(dir.path(), 5);
    let at = line.offset + line.text.find("\"pad\"").unwrap() as u64 + 2;
    patch(&path, at, b"Q");
    let report = verify(dir.path(), &mut |_, _| {}).unwrap();
    assert_eq!(report.damage, None);
    assert!(report.torn_tail_bytes > 0);
    assert_clean(dir.path(), &[1, 2, 3, 4]);
    // Not the last line: damage, to both.
    let (path, line) = find_line(dir.path(), 3);
    patch(&path, line.offset + 2, b"X");
    let (seqs, error) = read(dir.path());
    assert_eq!(seqs, [1, 2]);
    assert_eq!(corrupt(error), verified(dir.path()));
}

/// An unlocked read of `dir` returns `seqs` and no error.
fn assert_clean(dir: &Path, seqs: &[u64]) {
    let (read, error) = read(dir);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(read, seqs);
}

fn segment_path(dir: &Path, first_seq: u64) -> std::path::PathBuf {
    mini_engine::segment::segment_path(dir, first_seq)
}

/// A last segment whose header is torn is what a crash while creating it
/// leaves, and open removes it; but a segment is created only once the one
/// before it is whole, so one that does not start where that one ended is
/// a missing segment, not a crash (found by fuzzing: the state open took
/// such a journal for an empty one).
#[test]
fn a_torn_last_header_after_a_gap_is_damage() {
    let dir = tmp();
    let journal = Journal::open(dir.path()).unwrap();
    for i in 1..=3 {
        journal.append(&rec(i)).unwrap();
    }
    drop(journal);
    std::fs::write(segment_path(dir.path(), 9), b"{\"mini\":\"jour").unwrap();
    let Err(JournalError::Corrupt(damage)) = Journal::open(dir.path()) else {
        panic!("open removed the torn segment and went on");
    };
    assert_eq!(
        damage.kind,
        mini_engine::CorruptionKind::MissingSegment {
            expected: 4,
            found: 9
        }
    );
    assert_eq!(verified(dir.path()), damage);
    // Right after the records, the same torn segment is a crash's leftover.
    std::fs::remove_file(segment_path(dir.path(), 9)).unwrap();
    std::fs::write(segment_path(dir.path(), 4), b"{\"mini\":\"jour").unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    assert_eq!(journal.last_seq(), 3);
}
