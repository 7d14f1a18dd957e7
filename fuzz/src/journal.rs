//! The checks of a journal directory, shared by `segment_scan` (one
//! segment file) and `journal_segments` (several).
//!
//! Open, `verify`, `plan_repair` and the unlocked reader must agree on what
//! is damage and what the journal holds; reads after open return every
//! record once, in order, with contiguous seqs; an append after recovery
//! and a reopen find the journal clean and one record longer; a damaged
//! journal that `repair` cut opens clean.

use std::path::Path;

use mini_engine::journal::MARK_FILE;
use mini_engine::segment::MAX_SEQ;
use mini_engine::segment::mark::parse_mark_line;
use mini_engine::verify::{VerifyReport, plan_repair, repair, verify};
use mini_engine::{
    Corruption, CorruptionKind, Entry, Journal, JournalError, JournalOptions, Reader,
};

/// The record the checks append after recovery.
pub const APPENDED: &str = r#"{"fuzz":"appended"}"#;

/// Small segments and little preallocation: an append after recovery
/// often rotates, and a scratch journal stays a few KiB; marks as often as
/// the seeds' (an append leaves one, and the reopen after it starts there).
pub fn options() -> JournalOptions {
    JournalOptions {
        segment_size: 512,
        preallocate: 4096,
        mark_every: 64,
        ..JournalOptions::default()
    }
}

/// Whether open may fail with `found` when `verify`'s first damage is
/// `first`: the same, or `first` lies where open took a seal's or a mark's
/// word without reading the records (the read that meets it fails): in an
/// earlier segment than `found`, or in the same one before where the
/// journal's mark (in `found`'s directory) says its records are whole.
pub fn open_may_report(found: &Corruption, first: &Corruption) -> bool {
    let segment = |c: &Corruption| {
        c.file
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(mini_engine::segment::parse_segment_file_name)
    };
    let under_mark = || {
        let mark = found
            .file
            .parent()
            .and_then(|dir| std::fs::read(dir.join(MARK_FILE)).ok())
            .and_then(|bytes| parse_mark_line(bytes.strip_suffix(b"\n")?).ok());
        mark.is_some_and(|mark| {
            segment(first) == Some(mark.seal.first_seq) && first.offset < mark.seal.len
        })
    };
    found == first || segment(first) < segment(found) || (first.file == found.file && under_mark())
}

/// Every record a reader gives until its end or its first error, and that
/// error.
pub fn read_all(reader: Reader) -> (Vec<Entry>, Option<JournalError>) {
    let mut entries = Vec::new();
    for entry in reader {
        match entry {
            Ok(entry) => entries.push(entry),
            Err(e) => return (entries, Some(e)),
        }
    }
    (entries, None)
}

/// Panics unless `entries` have the seqs `first, first + 1, …`.
pub fn assert_contiguous(entries: &[Entry], first: u64, what: &str) {
    for (i, entry) in entries.iter().enumerate() {
        let expected = first.checked_add(i as u64);
        assert_eq!(
            Some(entry.seq),
            expected,
            "{what}: record {i} has seq {} (first {first})",
            entry.seq
        );
    }
}

/// Runs every check on the journal in `dir` (which the checks change:
/// open cuts torn tails, an append is made, repair cuts damage).
pub fn check_journal(dir: &Path) {
    let verified = verify(dir, &mut |_, _| {})
        .unwrap_or_else(|e| panic!("verify failed instead of reporting damage: {e}"));
    let plan = plan_repair(dir, &mut |_, _| {})
        .unwrap_or_else(|e| panic!("plan_repair failed instead of reporting damage: {e}"));
    assert_eq!(
        plan.damage, verified.damage,
        "plan_repair and verify disagree"
    );
    if plan.damage.is_none() {
        assert_eq!(
            plan.bytes_to_remove, 0,
            "nothing to repair, yet bytes to remove"
        );
    }
    // From 0, `read_unlocked` fails only if the directory cannot be listed.
    let (unlocked, unlocked_error) = match mini_engine::read_unlocked(dir, 0) {
        Ok(reader) => read_all(reader),
        Err(e) => panic!("read_unlocked failed before reading: {e}"),
    };
    match Journal::open_with(dir, options()) {
        Err(JournalError::Corrupt(damage)) => {
            let first = verified.damage.as_ref();
            assert!(
                first.is_some_and(|first| open_may_report(&damage, first)),
                "open and verify disagree on the damage: {damage:?} vs {first:?}"
            );
            // A read checks every record and what a seal says of them, not
            // the seal's content crc or index, which verify compares.
            if !matches!(damage.kind, CorruptionKind::BadSeal(_)) {
                assert!(
                    unlocked_error.is_some(),
                    "the unlocked reader ended without an error at damage: {damage}"
                );
                if let Some(first) = unlocked.first() {
                    assert_contiguous(&unlocked, first.seq, "unlocked read");
                }
                // Damage to a whole segment (its header, its place) is
                // named at the segment's first seq, which the records of
                // the segment before it may have reached already.
                if let Some(last) = unlocked.last()
                    && damage.offset > 0
                {
                    assert!(
                        last.seq < damage.seq,
                        "the unlocked reader returned seq {} at or past damage: {damage}",
                        last.seq
                    );
                }
            }
            // Repair cuts at the first damage, which verify names.
            check_repair(dir, first.unwrap_or(&damage));
        }
        Err(e) => panic!("open failed with {e:?}; verify found {:?}", verified.damage),
        Ok(journal) if verified.damage.is_some() => {
            // Open reads the seals of closed segments, not their records:
            // damage under a seal that passes open's checks is met by the
            // read, which returns every record before it first (a seal
            // that only disagrees with the records, verify alone sees).
            let damage = verified.damage.clone().unwrap_or_else(|| unreachable!());
            let reader = journal
                .read_from(0)
                .unwrap_or_else(|e| panic!("read_from(0) after open: {e}"));
            let (entries, error) = read_all(reader);
            if let Some(first) = entries.first() {
                assert_contiguous(&entries, first.seq, "read before damage");
            }
            match error {
                Some(JournalError::Corrupt(met)) => {
                    assert_eq!(met, damage, "the read met other damage than verify found")
                }
                Some(e) => panic!("the read of a damaged journal failed with {e:?}"),
                None => assert!(
                    matches!(damage.kind, CorruptionKind::BadSeal(_)),
                    "open and the read missed the damage verify found: {damage}"
                ),
            }
            drop(journal);
            check_repair(dir, &damage);
        }
        Ok(journal) => {
            let entries = check_open(&journal, &verified);
            // The unlocked reader stops before a torn tail (an error at a
            // last line whose crc fails, nothing at a line cut short);
            // anything else it reads as open does.
            assert!(
                entries.starts_with(&unlocked),
                "the unlocked read before open is not a prefix of the records"
            );
            if verified.torn_tail_bytes == 0 {
                if let Some(e) = &unlocked_error {
                    panic!("the unlocked read of a clean journal failed: {e}");
                }
                assert_eq!(
                    unlocked.len(),
                    entries.len(),
                    "the unlocked read of a clean journal returned fewer records"
                );
            }
            check_append(dir, journal, entries);
        }
    }
}

/// What open found must be what verify found; returns the records read.
fn check_open(journal: &Journal, verified: &VerifyReport) -> Vec<Entry> {
    let recovery = journal.recovery();
    assert_eq!(
        recovery.records, verified.records,
        "records: open vs verify"
    );
    assert_eq!(
        recovery.dropped_bytes, verified.torn_tail_bytes,
        "torn tail: open vs verify"
    );
    assert_eq!(
        journal.last_seq(),
        verified.last_seq,
        "last seq: open vs verify"
    );
    assert_eq!(
        journal.first_seq(),
        verified.first_seq,
        "first seq: open vs verify"
    );
    let reader = journal
        .read_from(0)
        .unwrap_or_else(|e| panic!("read_from(0) after a clean open: {e}"));
    let (entries, error) = read_all(reader);
    if let Some(e) = error {
        panic!("reading a journal that opened clean failed: {e}");
    }
    assert_eq!(
        entries.len() as u64,
        recovery.records,
        "records read vs recovered"
    );
    assert_contiguous(&entries, journal.first_seq(), "read after open");
    if let Some(last) = entries.last() {
        assert_eq!(last.seq, journal.last_seq(), "last record read vs last seq");
    }
    entries
}

/// Appends one record after recovery, reopens, and checks that the journal
/// is clean and holds exactly the records before and the new one.
fn check_append(dir: &Path, journal: Journal, mut before: Vec<Entry>) {
    let next = journal.next_seq();
    match journal.append(APPENDED) {
        Ok(seq) => {
            assert_eq!(seq, next, "the append got another seq than next_seq");
            before.push(Entry {
                seq,
                data: APPENDED.to_owned(),
            });
        }
        Err(JournalError::SequenceExhausted { .. }) if next > MAX_SEQ => {}
        Err(e) => panic!("append after a clean open failed: {e}"),
    }
    let first = journal.first_seq();
    drop(journal);
    let journal = Journal::open_with(dir, options())
        .unwrap_or_else(|e| panic!("reopen after an append failed: {e}"));
    assert_eq!(
        journal.recovery().dropped_bytes,
        0,
        "a torn tail after an append"
    );
    assert_eq!(journal.first_seq(), first, "first seq changed by an append");
    let (entries, error) = read_all(
        journal
            .read_from(0)
            .unwrap_or_else(|e| panic!("read_from(0) after the append: {e}")),
    );
    if let Some(e) = error {
        panic!("reading after the append failed: {e}");
    }
    assert_eq!(entries, before, "the records after an append and a reopen");
    let verified = verify(dir, &mut |_, _| {})
        .unwrap_or_else(|e| panic!("verify after the append failed: {e}"));
    assert_eq!(verified.damage, None, "damage after an append");
    assert_eq!(verified.torn_tail_bytes, 0, "a torn tail after an append");
}

/// Runs [`repair`] on a journal whose first damage (`verify`'s) is
/// `damage`, then checks that it opens clean and reads to its end.
fn check_repair(dir: &Path, damage: &Corruption) {
    let report = repair(dir).unwrap_or_else(|e| panic!("repair of {damage} failed: {e}"));
    assert_eq!(
        report.cut_at.as_ref(),
        Some(damage),
        "repair cut somewhere else than the first damage"
    );
    let journal = Journal::open_with(dir, options())
        .unwrap_or_else(|e| panic!("open after repairing {damage} failed: {e}"));
    assert_eq!(
        journal.recovery().records,
        report.records_left,
        "records after repair: open vs repair"
    );
    assert_eq!(
        journal.recovery().dropped_bytes,
        0,
        "a torn tail after repair"
    );
    let verified =
        verify(dir, &mut |_, _| {}).unwrap_or_else(|e| panic!("verify after repair failed: {e}"));
    assert_eq!(verified.damage, None, "damage left after repair");
    check_open(&journal, &verified);
}
