//! Durability order, seen through `FaultyFs`'s event log: what was written
//! and synced (files and directories) before each call returned.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use mini_engine::Journal;
use mini_engine::fs::faulty::{FaultyFs, FsEvent};

fn position(
    events: &[FsEvent],
    from: usize,
    to: usize,
    what: impl Fn(&FsEvent) -> bool,
) -> Option<usize> {
    (from..to).find(|&i| what(&events[i]))
}

/// Checks that segment `path`, created at `events[create]`, got its header
/// written and synced and then the directory synced, before any record was
/// written to it; returns the index of the directory sync.
fn check_created(
    events: &[FsEvent],
    create: usize,
    path: &Path,
    dir: &Path,
    first_seq: u64,
) -> usize {
    assert_eq!(events[create], FsEvent::Create(path.to_path_buf()));
    let n = events.len();
    let write = position(
        events,
        create,
        n,
        |e| matches!(e, FsEvent::Write { path: p, .. } if p == path),
    )
    .expect("header written");
    let header_len = header(first_seq).len();
    assert_eq!(
        events[write],
        FsEvent::Write {
            path: path.to_path_buf(),
            offset: 0,
            len: header_len
        }
    );
    let sync = position(events, write, n, |e| {
        *e == FsEvent::SyncData(path.to_path_buf())
    })
    .expect("header synced");
    let dir_sync = position(events, sync, n, |e| {
        *e == FsEvent::SyncDir(dir.to_path_buf())
    })
    .expect("dir synced");
    let first_record = position(
        events,
        write + 1,
        n,
        |e| matches!(e, FsEvent::Write { path: p, .. } if p == path),
    )
    .unwrap_or(n);
    assert!(
        dir_sync < first_record,
        "a record was written before the segment was durable: {events:#?}"
    );
    dir_sync
}

#[test]
fn creating_a_journal_syncs_the_new_directories_and_the_first_segment() {
    let base = tmp();
    let dir = base.path().join("data").join("ns").join("journal");
    let fs = FaultyFs::new();
    let journal = Journal::open_with(&dir, with_fs(1 << 20, Arc::new(fs.clone()))).unwrap();
    let events = fs.events();
    for parent in [
        base.path().to_path_buf(),
        base.path().join("data"),
        base.path().join("data").join("ns"),
    ] {
        assert!(
            events.contains(&FsEvent::SyncDir(parent.clone())),
            "{} not synced: {events:#?}",
            parent.display()
        );
    }
    let seg = dir.join(format!("{:020}.jsonl", 1));
    let create = position(&events, 0, events.len(), |e| {
        *e == FsEvent::Create(seg.clone())
    })
    .unwrap();
    check_created(&events, create, &seg, &dir, 1);
    assert_eq!(journal.append("1").unwrap(), 1);
}

#[test]
fn every_append_is_written_and_synced_before_it_returns() {
    let dir = tmp();
    let dir = dir.path();
    let fs = FaultyFs::new();
    let journal = Journal::open_with(dir, with_fs(1024, Arc::new(fs.clone()))).unwrap();
    let mut rng = Rng::with_seed(7);
    let mut rotations = 0;
    for _ in 0..150 {
        let start = fs.events().len();
        let first = journal.next_seq();
        let unit: Vec<String> = (0..rng.u64(1..=4)).map(|k| rec(first + k)).collect();
        let last = if unit.len() == 1 {
            journal.append(&unit[0])
        } else {
            journal.append_batch(&unit)
        }
        .unwrap();
        let events = fs.events();
        let returned = events.len();
        let (path, first_line) = find_line(dir, first);
        let (_, last_line) = find_line(dir, last);
        let bytes = FsEvent::Write {
            path: path.clone(),
            offset: first_line.offset,
            len: (last_line.end - first_line.offset) as usize,
        };
        let write = position(&events, start, returned, |e| *e == bytes).unwrap_or_else(|| {
            panic!(
                "seqs {first}..={last}: no {bytes:?} in {:#?}",
                &events[start..]
            )
        });
        position(&events, write, returned, |e| {
            *e == FsEvent::SyncData(path.clone())
        })
        .unwrap_or_else(|| {
            panic!(
                "seqs {first}..={last} returned before {} was synced",
                path.display()
            )
        });
        // A rotation in this call: the old segment was synced after its last
        // write and before the new one was created.
        if let Some(create) = position(&events, start, returned, |e| {
            matches!(e, FsEvent::Create(_))
        }) {
            rotations += 1;
            let FsEvent::Create(new) = &events[create] else {
                unreachable!()
            };
            assert_eq!(*new, path, "the new segment holds the unit");
            check_created(&events, create, new, dir, first);
            let old = segments(dir).iter().rev().nth(1).unwrap().1.clone();
            let last_write = (0..create)
                .rev()
                .find(|&i| matches!(&events[i], FsEvent::Write { path: p, .. } if *p == old))
                .unwrap();
            position(&events, last_write, create, |e| {
                *e == FsEvent::SyncData(old.clone())
            })
            .unwrap_or_else(|| panic!("{} was not synced before rotating", old.display()));
        }
    }
    assert!(rotations >= 10, "only {rotations} rotations");
}

/// With concurrent appenders, a rotation finds records in the old segment
/// that are written but not yet synced; group commit syncs only the active
/// segment, so the rotation must sync them before it moves on.
#[test]
fn concurrent_appends_across_rotations_are_all_synced() {
    let dir = tmp();
    let fs = FaultyFs::new();
    let journal = Journal::open_with(dir.path(), with_fs(1024, Arc::new(fs.clone()))).unwrap();
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let journal = journal.clone();
            std::thread::spawn(move || {
                for k in 0..100 {
                    journal.append(&rec(t * 1000 + k)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let events = fs.events();
    let segs = segments(dir.path());
    // Every record line was synced after it was written.
    for (_, path) in &segs {
        for line in lines(path).into_iter().skip(1) {
            let write = events
                .iter()
                .position(|e| {
                    matches!(e, FsEvent::Write { path: p, offset, len }
                        if p == path && *offset <= line.offset && line.end <= offset + *len as u64)
                })
                .expect("the write of a record");
            let synced = events[write..].contains(&FsEvent::SyncData(path.clone()));
            assert!(synced, "seq {} was never synced", seq_of(&line));
        }
    }
    // Every rotation synced the old segment after its last write.
    let mut rotations = 0;
    for (create, event) in events.iter().enumerate() {
        let FsEvent::Create(new) = event else {
            continue;
        };
        let index = segs.iter().position(|(_, p)| p == new).unwrap();
        if index == 0 {
            continue;
        }
        let old = &segs[index - 1].1;
        let last_write = (0..create)
            .rev()
            .find(|&i| matches!(&events[i], FsEvent::Write { path: p, .. } if p == old))
            .unwrap();
        let synced = events[last_write..create].contains(&FsEvent::SyncData(old.clone()));
        assert!(synced, "{} was not synced before rotating", old.display());
        rotations += 1;
    }
    assert!(rotations >= 20, "only {rotations} rotations");
    assert_eq!(read_all(&journal).len(), 800);
}

#[test]
fn truncate_before_syncs_the_directory_after_each_removal() {
    let dir = tmp();
    let fs = FaultyFs::new();
    let journal = Journal::open_with(dir.path(), with_fs(512, Arc::new(fs.clone()))).unwrap();
    for i in 1..=100 {
        journal.append(&rec(i)).unwrap();
    }
    let before: Vec<PathBuf> = segments(dir.path()).into_iter().map(|(_, p)| p).collect();
    fs.clear_events();
    let removed = journal.truncate_before(80).unwrap();
    let events = fs.events();
    assert!(removed >= 5);
    let mut expected = Vec::new();
    for path in &before[..removed] {
        assert!(!path.exists());
        expected.push(FsEvent::Remove(path.clone()));
        expected.push(FsEvent::SyncDir(dir.path().to_path_buf()));
    }
    assert_eq!(
        events, expected,
        "each removal is followed by a directory sync, oldest first"
    );
}

#[test]
fn the_cut_of_a_torn_tail_is_synced() {
    let dir = tmp();
    {
        let journal = Journal::open(dir.path()).unwrap();
        journal.append("1").unwrap();
    }
    let seg = last_segment(dir.path());
    append_bytes(&seg, br#"{"seq":2,"crc":"#);
    let fs = FaultyFs::new();
    let journal = Journal::open_with(dir.path(), with_fs(1 << 20, Arc::new(fs.clone()))).unwrap();
    assert_eq!(journal.recovery().dropped_bytes, 15);
    assert!(
        fs.events().contains(&FsEvent::SyncData(seg.clone())),
        "{:#?}",
        fs.events()
    );
    drop(journal);

    // A torn segment header: removal, then a directory sync.
    let torn = dir.path().join(format!("{:020}.jsonl", 2));
    std::fs::write(&torn, b"{\"mini\":").unwrap();
    fs.clear_events();
    let journal = Journal::open_with(dir.path(), with_fs(1 << 20, Arc::new(fs.clone()))).unwrap();
    assert!(!torn.exists());
    let events = fs.events();
    let remove = position(&events, 0, events.len(), |e| {
        *e == FsEvent::Remove(torn.clone())
    })
    .unwrap();
    position(&events, remove, events.len(), |e| {
        *e == FsEvent::SyncDir(dir.path().to_path_buf())
    })
    .expect("directory synced after removing the torn segment");
    assert_eq!(read_all(&journal).len(), 1);
}
