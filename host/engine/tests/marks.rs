//! Marks of the active segment (FORMAT.md, "Marks"; DESIGN row 22): the
//! writer leaves one every `mark_every` bytes, open scans the active
//! segment only from where a mark that holds says the records are whole,
//! and any mark that does not hold (torn, stale, flipped, of another
//! segment, over bytes that changed) is passed over: the open is right and
//! the seal built on it true, whatever the `MARK` file holds.

mod common;

use std::path::Path;

use common::*;
use mini_engine::journal::MARK_FILE;
use mini_engine::segment::mark::{Mark, parse_mark_line};
use mini_engine::verify::{repair, verify};
use mini_engine::{CorruptionKind, Journal, JournalError, JournalOptions};

/// 256 KiB segments (index entries every 64 KiB), a mark every 2 KiB.
fn marking() -> JournalOptions {
    JournalOptions {
        segment_size: 256 * 1024,
        mark_every: 2048,
        ..JournalOptions::default()
    }
}

fn mark_path(dir: &Path) -> std::path::PathBuf {
    dir.join(MARK_FILE)
}

fn read_mark(dir: &Path) -> Option<Mark> {
    let bytes = std::fs::read(mark_path(dir)).ok()?;
    parse_mark_line(bytes.strip_suffix(b"\n")?).ok()
}

/// Appends records `from..from + n`, singly and in batches of 3.
fn append(journal: &Journal, from: u64, n: u64) {
    let mut i = from;
    while i < from + n {
        if i.is_multiple_of(5) && i + 3 <= from + n {
            let batch: Vec<String> = (i..i + 3).map(rec).collect();
            assert_eq!(journal.append_batch(&batch).unwrap(), i + 2);
            i += 3;
        } else {
            assert_eq!(journal.append(&rec(i)).unwrap(), i);
            i += 1;
        }
    }
}

/// Appends records `from..from + n` (`n` a multiple of 10) in batches of 10.
fn fill(journal: &Journal, from: u64, n: u64) {
    for first in (from..from + n).step_by(10) {
        let batch: Vec<String> = (first..first + 10).map(rec).collect();
        assert_eq!(journal.append_batch(&batch).unwrap(), first + 9);
    }
}

/// Every record 1..=last is there with its data.
fn assert_records(journal: &Journal, last: u64, what: &str) {
    let all = read_all(journal);
    assert_eq!(all.len() as u64, last, "{what}");
    for (i, entry) in all.iter().enumerate() {
        assert_eq!(entry.seq, i as u64 + 1, "{what}");
        assert_eq!(entry.data, rec(entry.seq), "{what}");
    }
    assert_eq!(journal.next_seq(), last + 1, "{what}");
}

/// Opens `dir`, checks its records 1..=last, appends until the active
/// segment was sealed (so a seal is built on whatever open started from),
/// and checks with `verify` that every seal is true.
fn open_rotate_verify(dir: &Path, last: u64, what: &str) {
    let journal =
        Journal::open_with(dir, marking()).unwrap_or_else(|e| panic!("{what}: open: {e}"));
    assert_records(&journal, last, what);
    let first_segments = segments(dir).len();
    let mut next = last + 1;
    append(&journal, next, 20);
    next += 20;
    while segments(dir).len() == first_segments {
        fill(&journal, next, 500);
        next += 500;
    }
    drop(journal);
    let report = verify(dir, &mut |_, _| {}).unwrap();
    assert_eq!(report.damage, None, "{what}");
    assert_eq!(report.last_seq, next - 1, "{what}");
}

/// A journal of `n` records (a multiple of 10, in batches of 10) in its
/// first segment, with a mark.
fn marked_journal(n: u64) -> tempfile::TempDir {
    let dir = tmp();
    let journal = Journal::open_with(dir.path(), marking()).unwrap();
    fill(&journal, 1, n);
    assert_eq!(segments(dir.path()).len(), 1, "all in one segment");
    dir
}

#[test]
fn the_writer_leaves_marks_that_say_what_the_segment_holds() {
    let dir = tmp();
    let journal = Journal::open_with(dir.path(), marking()).unwrap();
    let mut next = 1;
    let mut marks_seen = 0;
    while segments(dir.path()).len() < 3 {
        if next % 200 == 1 {
            append(&journal, next, 20);
            next += 20;
        } else {
            fill(&journal, next, 60);
            next += 60;
        }
        let Some(mark) = read_mark(dir.path()) else {
            continue;
        };
        marks_seen += 1;
        let (first_seq, active) = segments(dir.path()).pop().unwrap();
        if mark.seal.first_seq != first_seq {
            // Left in the segment before this one: passed over at open.
            continue;
        }
        let bytes = std::fs::read(&active).unwrap();
        let seal = &mark.seal;
        let len = seal.len as usize;
        assert_eq!(crc32c(&bytes[..len]), seal.content_crc);
        assert_eq!(bytes[len - 1], b'\n');
        let (_, from) = *seal.index.last().unwrap();
        assert_eq!(crc32c(&bytes[from as usize..len]), mark.tail_crc);
        let last_line = record_lines(&active)
            .into_iter()
            .find(|l| l.end == seal.len)
            .expect("the mark ends at a line's end");
        assert_eq!(seq_of(&last_line), seal.last_seq);
        assert!(!last_line.text.contains("\"more\":true"));
        assert!(
            records_end(&active) - seal.len < 2048 + 4096,
            "marks follow the writer"
        );
    }
    assert!(marks_seen > 20, "{marks_seen} marks");
}

#[test]
fn open_trusts_what_a_mark_covers_and_reads_on_after_it() {
    let dir = marked_journal(3000);
    let mark = read_mark(dir.path()).expect("a mark");
    let (_, from) = *mark.seal.index.last().unwrap();
    // A flip in a record well before the mark's last index entry: open
    // takes the mark's word for it, as it takes a seal's.
    let (path, line) = find_line(dir.path(), 3);
    assert!(line.end < from);
    patch(&path, line.offset + 20, b"#");
    let journal = Journal::open_with(dir.path(), marking()).unwrap();
    assert_eq!(journal.next_seq(), 3001);
    assert_eq!(journal.recovery().records, 3000);
    // The read that meets it fails, naming the line.
    let err = journal
        .read_from(1)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap_err();
    let JournalError::Corrupt(damage) = err else {
        panic!("{err}");
    };
    assert_eq!((damage.offset, damage.seq), (line.offset, 3));
    drop(journal);
    // verify reads every record.
    let report = verify(dir.path(), &mut |_, _| {}).unwrap();
    assert_eq!(report.damage.map(|d| d.offset), Some(line.offset));
    // Without the mark, open scans the segment and refuses loudly.
    std::fs::remove_file(mark_path(dir.path())).unwrap();
    let err = Journal::open_with(dir.path(), marking()).unwrap_err();
    assert!(
        matches!(&err, JournalError::Corrupt(c) if c.offset == line.offset),
        "{err}"
    );
}

#[test]
fn records_after_the_mark_are_scanned_and_their_torn_tail_cut() {
    let dir = marked_journal(3000);
    let mark = read_mark(dir.path()).expect("a mark");
    {
        // Records the mark does not cover (the first append after an open
        // would leave one).
        let options = JournalOptions {
            mark_every: 1 << 40,
            ..marking()
        };
        let journal = Journal::open_with(dir.path(), options).unwrap();
        append(&journal, 3001, 5);
    }
    assert_eq!(read_mark(dir.path()), Some(mark.clone()), "no new mark");
    let path = last_segment(dir.path());
    let end = records_end(&path);
    assert!(end > mark.seal.len, "records after the mark");
    // A write cut short after the mark.
    append_bytes(&path, b"{\"seq\":3006,\"crc\":\"0000");
    let journal = Journal::open_with(dir.path(), marking()).unwrap();
    assert!(journal.recovery().dropped_bytes > 0);
    assert_records(&journal, 3005, "after the cut");
    drop(journal);
    // Damage after the mark, before the last line, is damage.
    let (path, line) = find_line(dir.path(), 3004);
    assert!(line.offset > mark.seal.len);
    patch(&path, line.offset + 20, b"#");
    let err = Journal::open_with(dir.path(), marking()).unwrap_err();
    assert!(
        matches!(&err, JournalError::Corrupt(c) if c.offset == line.offset),
        "{err}"
    );
}

#[test]
fn a_torn_flipped_stale_or_foreign_mark_is_passed_over() {
    let base = marked_journal(2500);
    let stale = std::fs::read(mark_path(base.path())).unwrap();
    {
        let journal = Journal::open_with(base.path(), marking()).unwrap();
        fill(&journal, 2501, 100);
    }
    let fresh = std::fs::read(mark_path(base.path())).unwrap();
    assert_ne!(stale, fresh);
    let mut cases: Vec<(String, Vec<u8>)> = vec![("stale".into(), stale.clone())];
    for cut in (0..fresh.len()).step_by(11) {
        cases.push((format!("torn at {cut}"), fresh[..cut].to_vec()));
    }
    for at in (0..fresh.len()).step_by(13) {
        let mut flipped = fresh.clone();
        flipped[at] ^= 0x01;
        cases.push((format!("flipped at {at}"), flipped));
    }
    // A mark of another segment, its numbers made to fit this one but its
    // seq: passed over however well the rest fits.
    let mut other = read_mark(base.path()).unwrap();
    other.seal.first_seq += 1;
    other.seal.records -= 1;
    other
        .seal
        .index
        .retain(|&(seq, _)| seq >= other.seal.first_seq);
    cases.push(("of another segment".into(), other.line()));
    for (what, bytes) in cases {
        let dir = tmp();
        copy_journal(base.path(), dir.path());
        std::fs::write(mark_path(dir.path()), &bytes).unwrap();
        open_rotate_verify(dir.path(), 2600, &what);
    }
}

#[test]
fn a_mark_over_bytes_that_changed_is_passed_over_and_seals_stay_true() {
    let dir = marked_journal(2500);
    let old_mark = std::fs::read(mark_path(dir.path())).unwrap();
    let mark = read_mark(dir.path()).unwrap();
    // Lose the records from the mark's last index entry on (as if they
    // never were), write the same batches again with other data of the
    // same length, and put the old mark back: its tail's lines look the
    // same, only their data (and its tail_crc) tells them apart.
    let (_, from) = *mark.seal.index.last().unwrap();
    let path = last_segment(dir.path());
    let end = records_end(&path);
    set_len(&path, from);
    let journal = Journal::open_with(dir.path(), marking()).unwrap();
    let restart = journal.next_seq();
    assert_eq!(restart % 10, 1, "whole batches of 10 are left");
    for first in (restart..=2500).step_by(10) {
        let batch: Vec<String> = (first..first + 10)
            .map(|i| rec(i).replace('x', "y"))
            .collect();
        journal.append_batch(&batch).unwrap();
    }
    drop(journal);
    assert_eq!(records_end(&path), end, "as many bytes as before");
    std::fs::write(mark_path(dir.path()), &old_mark).unwrap();
    let journal = Journal::open_with(dir.path(), marking()).unwrap();
    assert_eq!(journal.next_seq(), 2501);
    let mut next = 2501;
    while segments(dir.path()).len() == 1 {
        fill(&journal, next, 500);
        next += 500;
    }
    drop(journal);
    let report = verify(dir.path(), &mut |_, _| {}).unwrap();
    assert_eq!(report.damage, None);
}

#[test]
fn a_cut_into_what_a_mark_covers_removes_the_mark() {
    let dir = marked_journal(2500);
    let mark = read_mark(dir.path()).unwrap();
    let path = last_segment(dir.path());
    // The last line the mark covers, torn: open cuts it, and the mark must
    // not outlive the bytes it vouched for.
    set_len(&path, mark.seal.len - 3);
    let journal = Journal::open_with(dir.path(), marking()).unwrap();
    assert!(journal.recovery().dropped_bytes > 0);
    assert!(read_mark(dir.path()).is_none(), "the mark is removed");
    // The batch of 10 the torn line was in goes whole.
    assert_eq!(journal.next_seq(), mark.seal.last_seq - 9);
    drop(journal);
    open_rotate_verify(dir.path(), mark.seal.last_seq - 10, "after the cut");
}

#[test]
fn repair_removes_the_mark() {
    let dir = marked_journal(2500);
    assert!(read_mark(dir.path()).is_some());
    let (path, line) = find_line(dir.path(), 2491);
    patch(&path, line.offset + 20, b"#");
    let report = repair(dir.path()).unwrap();
    assert!(matches!(
        report.cut_at.map(|d| d.kind),
        Some(CorruptionKind::ChecksumMismatch { .. } | CorruptionKind::Garbage(_))
    ));
    assert!(!mark_path(dir.path()).exists());
    open_rotate_verify(dir.path(), 2490, "after repair");
}

#[test]
fn no_mark_is_left_when_marks_are_off() {
    let dir = tmp();
    let options = JournalOptions {
        mark_every: 0,
        ..marking()
    };
    let journal = Journal::open_with(dir.path(), options).unwrap();
    fill(&journal, 1, 500);
    assert!(!mark_path(dir.path()).exists());
}

#[test]
fn the_header_is_checked_under_a_mark() {
    // Found by fuzzing: the header lies under the mark, yet it names the
    // segment, so open reads it whatever the mark says.
    let dir = marked_journal(300);
    assert!(read_mark(dir.path()).is_some());
    let path = last_segment(dir.path());
    patch(&path, 5, b"J");
    let err = Journal::open_with(dir.path(), marking()).unwrap_err();
    assert!(
        matches!(&err, JournalError::Corrupt(c) if c.offset == 0
            && matches!(c.kind, CorruptionKind::BadHeader(_))),
        "{err}"
    );
}
