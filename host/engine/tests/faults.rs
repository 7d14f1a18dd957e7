//! Failure handling, with failures injected by `FaultyFs`: a failed write,
//! fdatasync or directory fsync fails that call, poisons the handle for every
//! later write, and loses no acknowledged record once the journal is reopened.

mod common;

use std::sync::Arc;

use common::*;
use mini_engine::fs::faulty::{FaultyFs, FsEvent};
use mini_engine::{Entry, Journal, JournalError};

/// A journal on `FaultyFs` with three acknowledged records.
struct Run {
    dir: tempfile::TempDir,
    fs: FaultyFs,
    journal: Journal,
    acked: Vec<Entry>,
}

fn start(segment_size: u64) -> Run {
    let dir = tmp();
    let fs = FaultyFs::new();
    let journal =
        Journal::open_with(dir.path(), with_fs(segment_size, Arc::new(fs.clone()))).unwrap();
    let mut run = Run {
        dir,
        fs,
        journal,
        acked: Vec::new(),
    };
    for i in 1..=3 {
        attempt(&mut run, &[rec(i)]).unwrap();
    }
    run
}

/// Appends `unit` (a single append for one record); remembers it if acknowledged.
fn attempt(run: &mut Run, unit: &[String]) -> Result<u64, JournalError> {
    let first = run.journal.next_seq();
    let last = if unit.len() == 1 {
        run.journal.append(&unit[0])
    } else {
        run.journal.append_batch(unit)
    }?;
    assert_eq!(last, first + unit.len() as u64 - 1);
    run.acked
        .extend(unit.iter().enumerate().map(|(i, d)| Entry {
            seq: first + i as u64,
            data: d.clone(),
        }));
    Ok(last)
}

/// Appends varied units until one fails; returns the error and that unit.
fn until_failure(run: &mut Run, rng: &mut Rng) -> (JournalError, Vec<String>) {
    for _ in 0..1000 {
        let n = run.journal.next_seq();
        let unit: Vec<String> = (0..rng.u64(1..=3)).map(|k| rec(n + k)).collect();
        if let Err(e) = attempt(run, &unit) {
            return (e, unit);
        }
    }
    panic!("the armed failure never happened");
}

/// The failed call got an i/o error, and the handle now refuses every write.
fn check_poisoned(run: &Run, err: &JournalError) {
    assert!(
        matches!(err, JournalError::Io { .. }),
        "the failure itself is an i/o error, got {err:?}"
    );
    assert!(run.journal.is_poisoned());
    let files = snapshot(run.dir.path());
    assert!(matches!(
        run.journal.append("1"),
        Err(JournalError::Poisoned)
    ));
    assert!(matches!(
        run.journal.append_batch(&["1", "2"]),
        Err(JournalError::Poisoned)
    ));
    assert!(matches!(
        run.journal.truncate_before(u64::MAX),
        Err(JournalError::Poisoned)
    ));
    assert!(JournalError::Poisoned.to_string().contains("reopen"));
    assert_eq!(snapshot(run.dir.path()), files, "a poisoned handle wrote");
}

/// Reopens on the real file system: every acknowledged record still stored
/// is there, the failed unit is there whole or not at all, and appends go on.
fn reopen(run: Run, failed: &[String]) -> (tempfile::TempDir, Journal) {
    let Run {
        dir,
        journal,
        acked,
        ..
    } = run;
    drop(journal);
    let journal = Journal::open(dir.path()).unwrap();
    let all = read_all(&journal);
    let first = journal.first_seq();
    let acked: Vec<Entry> = acked.into_iter().filter(|e| e.seq >= first).collect();
    assert_eq!(
        all[..acked.len()],
        acked[..],
        "an acknowledged record is lost"
    );
    let rest: Vec<String> = all[acked.len()..].iter().map(|e| e.data.clone()).collect();
    assert!(
        rest.is_empty() || rest == failed,
        "after the acknowledged records: {rest:?}"
    );
    let next = journal.next_seq();
    assert_eq!(journal.append("1").unwrap(), next);
    (dir, journal)
}

#[test]
fn a_failed_fdatasync_poisons_the_handle() {
    // Each n fails a different fdatasync: group commits, the sync of a
    // segment being closed, the sync of a new segment's header.
    for n in 0..30 {
        let mut run = start(512);
        let mut rng = Rng::with_seed(n + 1);
        run.fs.fail_sync_data_after(n);
        let (err, failed) = until_failure(&mut run, &mut rng);
        check_poisoned(&run, &err);
        reopen(run, &failed);
    }
}

/// Appends a record too big for what is left of the segment: it rotates.
fn rotating_record() -> String {
    format!("\"{}\"", "r".repeat(300))
}

#[test]
fn a_failed_seal_or_header_sync_while_rotating_poisons_the_handle() {
    // Every append waited for its sync, so the segment being closed is
    // already durable and is not synced again: the first fdatasync is the
    // closing segment's seal, the second the new segment's header. (A
    // closing segment with unsynced records is covered by durability.rs
    // under concurrency.)
    for (n, failed_sync) in [(0, "the seal"), (1, "the new segment's header")] {
        let mut run = start(512);
        run.fs.clear_events();
        run.fs.fail_sync_data_after(n);
        let err = attempt(&mut run, &[rotating_record()]).unwrap_err();
        let created = run
            .fs
            .events()
            .iter()
            .any(|e| matches!(e, FsEvent::Create(_)));
        assert_eq!(created, n == 1, "the failed sync is {failed_sync}'s");
        check_poisoned(&run, &err);
        reopen(run, &[rotating_record()]);
    }
}

#[test]
fn a_failed_directory_fsync_poisons_the_handle() {
    // While rotating.
    let mut run = start(512);
    run.fs.fail_sync_dir_after(0);
    let err = attempt(&mut run, &[rotating_record()]).unwrap_err();
    check_poisoned(&run, &err);
    reopen(run, &[rotating_record()]);

    // While truncating.
    let mut run = start(512);
    for i in 4..40 {
        attempt(&mut run, &[rec(i)]).unwrap();
    }
    run.fs.fail_sync_dir_after(1);
    let err = run.journal.truncate_before(30).unwrap_err();
    check_poisoned(&run, &err);
    let (_dir, journal) = reopen(run, &[]);
    assert!(
        journal.first_seq() <= 30,
        "a record at or after 30 was removed"
    );

    // While creating a new journal: open fails, a later open works.
    for n in 0..3 {
        let base = tmp();
        let dir = base.path().join("new").join("j");
        let fs = FaultyFs::new();
        fs.fail_sync_dir_after(n);
        let result = Journal::open_with(&dir, with_fs(512, Arc::new(fs.clone())));
        assert!(
            matches!(result, Err(JournalError::Io { .. })),
            "n={n}: {result:?}"
        );
        let journal = Journal::open(&dir).unwrap();
        assert_eq!((journal.next_seq(), journal.append("1").unwrap()), (1, 1));
    }
}

#[test]
fn a_half_write_poisons_and_is_undone() {
    // A record write cut in half: the half that landed is zeroed again
    // before the call returns, so nothing is left for recovery to cut.
    for unit in [vec![rec(4)], vec![rec(4), rec(5), rec(6)]] {
        let mut run = start(1 << 20);
        let seg = last_segment(run.dir.path());
        let end = records_end(&seg);
        run.fs.fail_write_after(0);
        let err = attempt(&mut run, &unit).unwrap_err();
        check_poisoned(&run, &err);
        assert_eq!(records_end(&seg), end, "the torn half is undone");
        let dir = run.dir.path().to_path_buf();
        let (_dir, journal) = reopen(run, &[]);
        assert_eq!(journal.recovery().dropped_bytes, 0);
        assert_eq!(records_end(&seg), end + encode_unit(4, &["1"]).len() as u64);
        assert_eq!(read_all(&journal).len(), 4, "{}", dir.display());
    }

    // The seal of the closing segment, or the header of the new one, cut
    // in half: the seal is cut again, the new segment removed at once.
    for n in [0, 1] {
        let mut run = start(512);
        let before = segments(run.dir.path());
        let closing = last_segment(run.dir.path());
        let closing_end = records_end(&closing);
        run.fs.fail_write_after(n);
        let err = attempt(&mut run, &[rotating_record()]).unwrap_err();
        check_poisoned(&run, &err);
        assert_eq!(
            segments(run.dir.path()),
            before,
            "the torn segment is removed"
        );
        if n == 0 {
            // Cut with the zeros after the records (they went first).
            assert_eq!(file_len(&closing), closing_end, "the torn seal is cut");
        }
        let (_dir, journal) = reopen(run, &[]);
        assert_eq!(journal.recovery().dropped_bytes, 0);
    }

    // The record after a good header cut in half: undone, the new segment
    // stays (empty).
    let mut run = start(512);
    run.fs.fail_write_after(2);
    let err = attempt(&mut run, &[rotating_record()]).unwrap_err();
    check_poisoned(&run, &err);
    assert_eq!(
        file_len(&last_segment(run.dir.path())),
        header(4).len() as u64
    );
    let (_dir, journal) = reopen(run, &[]);
    assert_eq!(journal.recovery().dropped_bytes, 0);
}
