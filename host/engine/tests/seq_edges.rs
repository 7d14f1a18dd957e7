//! Sequence numbers at the u64 edges (found by fuzzing the readers, issue
//! 11): a seq or first_seq on disk outside 1..=MAX_SEQ is damage, reported
//! loudly by open and verify, never a panic or a wrap; a journal that has
//! given out MAX_SEQ refuses appends and writes nothing; the unlocked reads
//! of a state at the edges agree with its open, never overflow.

mod common;

use std::path::Path;

use common::*;
use mini_engine::queue::{PushOptions, Queue, QueueError, inspect_queue};
use mini_engine::segment::{MAX_SEQ, encode_line, header_line, segment_file_name};
use mini_engine::snapshot::SnapshotStore;
use mini_engine::state::{JOURNAL_DIR, SNAPSHOT_DIR, StateError, StateLog, StateOptions};
use mini_engine::verify::verify;
use mini_engine::{CorruptionKind, Journal, JournalError};

/// Writes a segment named for `first_seq` with its header and `records`
/// (seq, data) lines.
fn write_segment(dir: &Path, first_seq: u64, records: &[(u64, &str)]) {
    let mut bytes = header_line(first_seq).into_bytes();
    for (seq, data) in records {
        encode_line(&mut bytes, *seq, data, false);
    }
    std::fs::write(dir.join(segment_file_name(first_seq)), bytes).unwrap();
}

fn assert_bad_header(dir: &Path) {
    match Journal::open(dir) {
        Err(JournalError::Corrupt(c)) => {
            assert!(matches!(c.kind, CorruptionKind::BadHeader(_)), "{c}")
        }
        other => panic!("open gave {other:?}"),
    }
    let report = verify(dir, &mut |_, _| {}).unwrap();
    assert!(report.damage.is_some(), "verify saw no damage");
}

#[test]
fn a_segment_whose_first_seq_is_zero_is_damage() {
    let dir = tmp();
    write_segment(dir.path(), 0, &[]);
    assert_bad_header(dir.path());
}

#[test]
fn a_segment_whose_first_seq_is_u64_max_is_damage() {
    let dir = tmp();
    write_segment(dir.path(), u64::MAX, &[]);
    assert_bad_header(dir.path());
}

#[test]
fn a_record_with_seq_u64_max_is_damage() {
    let dir = tmp();
    write_segment(
        dir.path(),
        MAX_SEQ,
        &[(MAX_SEQ, "1"), (u64::MAX, "2"), (u64::MAX, "3")],
    );
    match Journal::open(dir.path()) {
        Err(JournalError::Corrupt(c)) => assert_eq!(c.seq, u64::MAX, "{c}"),
        other => panic!("open gave {other:?}"),
    }
    let report = verify(dir.path(), &mut |_, _| {}).unwrap();
    assert!(report.damage.is_some(), "verify saw no damage");
}

#[test]
fn a_journal_at_the_last_seq_refuses_appends_and_writes_nothing() {
    let dir = tmp();
    write_segment(dir.path(), MAX_SEQ - 1, &[(MAX_SEQ - 1, "1")]);
    let journal = Journal::open(dir.path()).unwrap();
    assert!(
        matches!(
            journal.append_batch(&["2", "3"]),
            Err(JournalError::SequenceExhausted { .. })
        ),
        "a batch past the last seq"
    );
    assert_eq!(journal.append("2").unwrap(), MAX_SEQ);
    assert!(matches!(
        journal.append("3"),
        Err(JournalError::SequenceExhausted { .. })
    ));
    assert_eq!(journal.last_seq(), MAX_SEQ);
    drop(journal);
    let journal = Journal::open(dir.path()).unwrap();
    assert_eq!(journal.last_seq(), MAX_SEQ, "nothing else was written");
    let all: Vec<_> = journal
        .read_from(0)
        .unwrap()
        .map(|e| e.unwrap().data)
        .collect();
    assert_eq!(all, ["1", "2"]);
}

/// A state directory holding a queue, its journal at seqs 1..=2, and a
/// valid snapshot at `snapshot_seq` (beyond the journal).
fn queue_with_snapshot_at(dir: &Path, snapshot_seq: u64) {
    {
        let queue = Queue::open(dir).unwrap();
        queue.push("1", &PushOptions::default()).unwrap();
        queue.push("2", &PushOptions::default()).unwrap();
    }
    SnapshotStore::open(dir.join(SNAPSHOT_DIR))
        .unwrap()
        .create(snapshot_seq, r#"{"next_id":3,"messages":[],"dedup":{}}"#)
        .unwrap();
}

fn is_beyond(e: &StateError, snapshot: u64) -> bool {
    matches!(e, StateError::SnapshotBeyondJournal { snapshot_seq, journal_last_seq: 2 } if *snapshot_seq == snapshot)
}

/// A snapshot at u64::MAX (a `snapshot` store takes any seq) in a state or
/// queue directory is beyond its journal for every reader, locked or not
/// (issue 11, seen while fixing the fuzzer's finding below): the unlocked
/// reads added 1 to it.
#[test]
fn a_state_snapshot_at_u64_max_is_beyond_the_journal_for_every_reader() {
    let dir = tmp();
    queue_with_snapshot_at(dir.path(), u64::MAX);
    match StateLog::open_with(dir.path(), &StateOptions::default()) {
        Err(e) => assert!(is_beyond(&e, u64::MAX), "{e:?}"),
        Ok(_) => panic!("a state opened from a snapshot at u64::MAX"),
    }
    let check = StateLog::check(dir.path(), &mut |_, _| {}).unwrap();
    assert!(
        matches!(&check.recovery, Err(e) if is_beyond(e, u64::MAX)),
        "{:?}",
        check.recovery
    );
    let (point, mut tail) = StateLog::read_unlocked(dir.path()).unwrap();
    assert_eq!(point.seq(), u64::MAX);
    assert!(matches!(tail.next_entry(), Err(e) if is_beyond(&e, u64::MAX)));
    match inspect_queue(dir.path()) {
        Err(QueueError::Storage(e)) => assert!(is_beyond(&e, u64::MAX), "{e:?}"),
        other => panic!("inspect_queue gave {other:?}"),
    }
    match Queue::open(dir.path()) {
        Err(QueueError::Storage(e)) => assert!(is_beyond(&e, u64::MAX), "{e:?}"),
        other => panic!("Queue::open gave {other:?}"),
    }
}

/// A state's journal with a segment named 0 (damage, see
/// `a_segment_whose_first_seq_is_zero_is_damage`) read without the lock:
/// found by fuzzing (issue 11), the reader took 1 from the 0.
#[test]
fn an_unlocked_state_read_of_a_segment_named_zero_does_not_overflow() {
    let dir = tmp();
    let journal = dir.path().join(JOURNAL_DIR);
    std::fs::create_dir_all(&journal).unwrap();
    std::fs::create_dir_all(dir.path().join(SNAPSHOT_DIR)).unwrap();
    write_segment(&journal, 0, &[]);
    let check = StateLog::check(dir.path(), &mut |_, _| {}).unwrap();
    assert!(check.journal.damage.is_some(), "verify saw no damage");
    let (point, mut tail) = StateLog::read_unlocked(dir.path()).unwrap();
    assert_eq!(point.seq(), 0);
    // The unlocked reader stops there without a record (it is not where
    // damage is reported: verify and open are).
    assert!(matches!(tail.next_entry(), Ok(None) | Err(_)));
}
