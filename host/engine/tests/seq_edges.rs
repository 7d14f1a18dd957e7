//! Sequence numbers at the u64 edges (found by fuzzing the readers, issue
//! 11): a seq or first_seq on disk outside 1..=MAX_SEQ is damage, reported
//! loudly by open and verify, never a panic or a wrap; a journal that has
//! given out MAX_SEQ refuses appends and writes nothing.

mod common;

use std::path::Path;

use common::*;
use mini_engine::segment::{MAX_SEQ, encode_line, header_line, segment_file_name};
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
