//! A full disk gives a definite outcome: an append that returns Ok is
//! there after a restart, and one that fails is not (a caller that retries
//! a failed append must not get a duplicate). Run on a real small file
//! system, a 3 MiB tmpfs, filled to the brim and beyond: after the first
//! failure the writer keeps going, reopening whenever its handle is
//! poisoned, and every reopen checks by content that exactly the
//! acknowledged records are there, in order, and that nothing was left torn.
//! Along the way a little space is freed now and then (small ballast files
//! deleted), so the writer meets the edge of a full disk many times, not
//! once. At the end the big ballast is deleted and writes work again.
//!
//! Small segments make rotations (new files) happen near the full disk;
//! several appenders make groups that span a rotation.

mod common;
#[path = "common/full_disk.rs"]
mod full_disk;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use common::{Rng, read_all, seed_from_env};
use full_disk::*;
use mini_engine::queue::{ManualClock, QueueError, QueueOptions};
use mini_engine::state::StateOptions;
use mini_engine::{Entry, Journal, JournalOptions};

const DISK: &str = "3m";
const BALLAST: usize = 512 * 1024;
const SEGMENT: u64 = 16 * 1024;
/// Failed calls to make after the first one.
const FAILURES_AFTER_FULL: usize = 48;
/// Small ballast files: one is deleted after every other failure.
const CRUMBS: usize = 24;
const CRUMB: usize = 12 * 1024;
/// Calls after space was freed, all of which must succeed.
const AFTER_FREEING: usize = 30;

// ---- the journal ------------------------------------------------------

#[derive(Default)]
struct Round {
    acked: Vec<Entry>,
    failed: Vec<u64>,
}

/// Appenders on `threads` threads, each until its first error.
fn journal_round(journal: &Journal, ids: &AtomicU64, seed: u64, threads: u64) -> Round {
    let rounds: Vec<Round> = thread::scope(|s| {
        let appenders: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut rng = Rng::with_seed(seed.wrapping_mul(7919).wrapping_add(t));
                    let mut round = Round::default();
                    for _ in 0..2000 {
                        let n = if rng.u64(0..=3) == 0 {
                            rng.u64(2..=4)
                        } else {
                            1
                        };
                        let unit: Vec<String> = (0..n)
                            .map(|_| record(ids.fetch_add(1, Ordering::Relaxed), &mut rng, 1500))
                            .collect();
                        match journal.append_batch(&unit) {
                            Ok(last) => round.acked.extend(
                                unit.into_iter()
                                    .zip(last + 1 - n..)
                                    .map(|(data, seq)| Entry { seq, data }),
                            ),
                            Err(e) => {
                                assert!(journal_error_ok(&e), "a full disk gave {e:?}");
                                round.failed.extend(unit.iter().map(|d| id_of(d)));
                                break;
                            }
                        }
                    }
                    round
                })
            })
            .collect();
        appenders
            .into_iter()
            .map(|a| a.join().expect("appender"))
            .collect()
    });
    let mut all = Round::default();
    for round in rounds {
        all.acked.extend(round.acked);
        all.failed.extend(round.failed);
    }
    all
}

fn journal_fills_the_disk(preallocate: u64) {
    let Some(disk) = Tmpfs::mount(DISK) else {
        return;
    };
    let ballast = disk.ballast("ballast", BALLAST);
    let mut crumbs = disk.crumbs(CRUMBS, CRUMB);
    let seed = seed_from_env();
    eprintln!("seed {seed} (MINI_TEST_SEED), preallocate {preallocate}");
    let dir = disk.path().join("journal");
    let options = JournalOptions {
        segment_size: SEGMENT,
        preallocate,
        ..JournalOptions::default()
    };
    let ids = AtomicU64::new(1);
    let (mut acked, mut failed) = (Vec::new(), BTreeSet::new());
    let mut rounds_after_full = 0;
    for round in 0..1000 {
        let journal = reopen_journal(&dir, &options, &acked, &failed);
        let outcome = journal_round(&journal, &ids, seed.wrapping_add(round), 4);
        acked.extend(outcome.acked);
        acked.sort_by_key(|e| e.seq);
        if !outcome.failed.is_empty() {
            after_failure(rounds_after_full, &mut crumbs);
        }
        failed.extend(outcome.failed);
        if !failed.is_empty() {
            rounds_after_full += 1;
            if rounds_after_full > FAILURES_AFTER_FULL {
                break;
            }
        }
    }
    assert!(rounds_after_full > 0, "the disk never filled up");
    eprintln!("{} acknowledged, {} failed", acked.len(), failed.len());

    drop(reopen_journal(&dir, &options, &acked, &failed));
    std::fs::remove_file(ballast).expect("removing the ballast");
    let journal = reopen_journal(&dir, &options, &acked, &failed);
    let mut rng = Rng::with_seed(seed);
    for _ in 0..AFTER_FREEING {
        let data = record(ids.fetch_add(1, Ordering::Relaxed), &mut rng, 1500);
        let seq = journal
            .append(&data)
            .expect("an append once space was freed");
        acked.push(Entry { seq, data });
    }
    drop(journal);
    reopen_journal(&dir, &options, &acked, &failed);
}

#[test]
fn a_full_disk_fails_appends_definitely_with_preallocation() {
    journal_fills_the_disk(JournalOptions::default().preallocate);
}

#[test]
fn a_full_disk_fails_appends_definitely_without_preallocation() {
    journal_fills_the_disk(0);
}

// ---- a state log: commits and checkpoints -----------------------------

#[test]
fn a_full_disk_fails_state_commits_definitely() {
    let Some(disk) = Tmpfs::mount(DISK) else {
        return;
    };
    let ballast = disk.ballast("ballast", BALLAST);
    let mut crumbs = disk.crumbs(CRUMBS, CRUMB);
    let seed = seed_from_env();
    eprintln!("seed {seed} (MINI_TEST_SEED)");
    let mut rng = Rng::with_seed(seed);
    let dir = disk.path().join("state");
    let options = StateOptions {
        segment_size: SEGMENT,
        ..StateOptions::default()
    };
    let (mut acked, mut failed) = (Vec::new(), BTreeSet::new());
    let (mut next_id, mut failures, mut checkpoints) = (1, 0, [0, 0]);
    'reopen: for _ in 0..100_000 {
        let log = reopen_state(&dir, &options, &acked, &failed);
        for _ in 0..100_000 {
            if rng.u64(0..=79) == 0 {
                // A failed checkpoint changes nothing the fold depends on:
                // the same handle goes on (a poisoned journal fails next).
                match log.checkpoint(log.last_seq(), &fold(&acked)) {
                    Ok(_) => checkpoints[0] += 1,
                    Err(e) => {
                        assert!(state_error_ok(&e), "a full disk gave {e:?}");
                        checkpoints[1] += 1;
                    }
                }
                continue;
            }
            let n = if rng.u64(0..=3) == 0 {
                rng.u64(2..=3)
            } else {
                1
            };
            let unit: Vec<String> = (next_id..next_id + n)
                .map(|id| record(id, &mut rng, 600))
                .collect();
            next_id += n;
            match log.commit_batch(&unit) {
                Ok(last) => acked.extend(
                    unit.into_iter()
                        .zip(last + 1 - n..)
                        .map(|(data, seq)| Entry { seq, data }),
                ),
                Err(e) => {
                    assert!(state_error_ok(&e), "a full disk gave {e:?}");
                    failed.extend(unit.iter().map(|d| id_of(d)));
                    failures += 1;
                    after_failure(failures, &mut crumbs);
                    if failures > FAILURES_AFTER_FULL {
                        break 'reopen;
                    }
                    continue 'reopen;
                }
            }
        }
    }
    assert!(failures > FAILURES_AFTER_FULL, "the disk never filled up");
    eprintln!(
        "{} acknowledged, {} failed, checkpoints {checkpoints:?} (made, failed)",
        acked.len(),
        failed.len()
    );
    drop(reopen_state(&dir, &options, &acked, &failed));
    std::fs::remove_file(ballast).expect("removing the ballast");
    let log = reopen_state(&dir, &options, &acked, &failed);
    for id in next_id..next_id + AFTER_FREEING as u64 {
        let data = record(id, &mut rng, 600);
        let seq = log.commit(&data).expect("a commit once space was freed");
        acked.push(Entry { seq, data });
    }
    drop(log);
    reopen_state(&dir, &options, &acked, &failed);
}

// ---- a queue: pushes, pops, acks --------------------------------------

#[test]
fn a_full_disk_fails_queue_calls_definitely() {
    let Some(disk) = Tmpfs::mount(DISK) else {
        return;
    };
    let ballast = disk.ballast("ballast", BALLAST);
    let mut crumbs = disk.crumbs(CRUMBS, CRUMB);
    let seed = seed_from_env();
    eprintln!("seed {seed} (MINI_TEST_SEED)");
    let mut rng = Rng::with_seed(seed);
    let dir = disk.path().join("queue");
    let options = QueueOptions {
        segment_size: SEGMENT,
        checkpoint_every: 100,
        clock: Arc::new(ManualClock::new(1_764_000_000_000)),
        ..QueueOptions::default()
    };
    let (mut live, mut failed) = (Live::new(), BTreeSet::new());
    let (mut pid, mut failures) = (0, 0);
    'reopen: for _ in 0..100_000 {
        let queue = reopen_queue(&dir, &options, &live, &failed);
        for _ in 0..100_000 {
            if let Err((e, push)) = queue_op(&queue, &mut live, &mut pid, &mut rng) {
                let ok = matches!(&e, QueueError::Storage(s) if state_error_ok(s));
                assert!(ok, "a full disk gave {e:?}");
                failed.extend(push);
                failures += 1;
                after_failure(failures, &mut crumbs);
                if failures > FAILURES_AFTER_FULL {
                    break 'reopen;
                }
                continue 'reopen;
            }
        }
    }
    assert!(failures > FAILURES_AFTER_FULL, "the disk never filled up");
    eprintln!(
        "{} live, {} pushes failed, {failures} calls failed",
        live.len(),
        failed.len()
    );
    drop(reopen_queue(&dir, &options, &live, &failed));
    std::fs::remove_file(ballast).expect("removing the ballast");
    let queue = reopen_queue(&dir, &options, &live, &failed);
    for _ in 0..AFTER_FREEING {
        if let Err((e, _)) = queue_op(&queue, &mut live, &mut pid, &mut rng) {
            panic!("a queue call once space was freed: {e:?}");
        }
    }
    drop(queue);
    reopen_queue(&dir, &options, &live, &failed);
}

// ---- a group that spans a rotation ------------------------------------

/// Which operation of the second group fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failing {
    /// The sync of the old segment before the rotation: nothing is durable.
    SyncBeforeRotation,
    /// The write of the old segment's seal.
    SealWrite,
    /// The sync of the old segment's seal.
    SealSync,
    /// The new segment's header write (half of it lands).
    HeaderWrite,
    /// The sync of the records in the new segment.
    SyncAfterRotation,
}

/// A group of two appends, the second of which starts a new segment, with
/// one of its operations failing: the append synced into the old segment
/// before the rotation is durable and acknowledged, the other fails and is
/// not there after a reopen, and nothing torn is left behind. Not a full
/// disk: injected failures make it deterministic (the tmpfs cases above
/// meet such groups only by chance).
#[test]
fn a_group_across_a_rotation_acknowledges_what_it_made_durable() {
    use common::{encode_unit, header};
    use full_disk::HeldSyncs;
    use mini_engine::fs::faulty::FaultyFs;

    let rec = |i: u64| format!(r#"{{"id":{i},"pad":"{}"}}"#, "q".repeat(100));
    let line = encode_unit(1, &[&rec(1)]).len() as u64;
    for failing in [
        Failing::SyncBeforeRotation,
        Failing::SealWrite,
        Failing::SealSync,
        Failing::HeaderWrite,
        Failing::SyncAfterRotation,
    ] {
        let dir = common::tmp();
        let faulty = FaultyFs::new();
        // Syncs counted from 1 once armed: #1 is the first group's (held
        // until the second group is queued), #2 the old segment's before the
        // rotation, #3 its seal's, #4 the new header's, #5 the new segment's
        // records.
        let syncs = HeldSyncs::default();
        let fail_at = match failing {
            Failing::SyncBeforeRotation => 2,
            Failing::SealSync => 3,
            Failing::SealWrite | Failing::HeaderWrite => 0,
            Failing::SyncAfterRotation => 5,
        };
        let options = JournalOptions {
            // Two records fit in the first segment, a third does not.
            segment_size: header(1).len() as u64 + 2 * line + line / 2,
            preallocate: 0, // no writes of zeros to count
            fs: Arc::new(syncs.fs(faulty.clone(), fail_at)),
            ..JournalOptions::default()
        };
        let journal = Journal::open_with(dir.path(), options).expect("open");
        syncs.arm();
        let j = &journal;
        let results = thread::scope(|s| {
            let first = s.spawn(move || j.append(&rec(1)));
            syncs.wait_for_first();
            let queue_one = |i: u64| {
                let handle = s.spawn(move || j.append(&rec(i)));
                for _ in 0..100_000 {
                    if j.next_seq() > i {
                        break;
                    }
                    thread::yield_now();
                }
                assert_eq!(j.next_seq(), i + 1, "append {i} is queued");
                handle
            };
            let second = queue_one(2);
            let third = queue_one(3);
            match failing {
                // Record 2's write, then the seal, then the header.
                Failing::SealWrite => faulty.fail_write_after(1),
                Failing::HeaderWrite => faulty.fail_write_after(2),
                _ => {}
            }
            syncs.release();
            [first, second, third].map(|h| h.join().expect("appender"))
        });
        let seqs: Vec<Option<u64>> = results.iter().map(|r| r.as_ref().ok().copied()).collect();
        let expected = match failing {
            Failing::SyncBeforeRotation => vec![Some(1), None, None],
            _ => vec![Some(1), Some(2), None],
        };
        assert_eq!(seqs, expected, "{failing:?}: {results:?}");
        drop(journal);

        let journal = Journal::open(dir.path()).expect("reopen");
        let stored: Vec<String> = read_all(&journal).into_iter().map(|e| e.data).collect();
        let acked: Vec<String> = (1..=expected.iter().flatten().count() as u64)
            .map(rec)
            .collect();
        assert_eq!(
            stored, acked,
            "{failing:?}: only the acknowledged records are there"
        );
        assert_eq!(
            journal.recovery().dropped_bytes,
            0,
            "{failing:?}: left torn"
        );
        let firsts: Vec<u64> = common::segments(dir.path()).iter().map(|s| s.0).collect();
        match failing {
            // The new segment is removed again when its header fails.
            Failing::SyncBeforeRotation
            | Failing::SealWrite
            | Failing::SealSync
            | Failing::HeaderWrite => assert_eq!(firsts, [1]),
            Failing::SyncAfterRotation => assert_eq!(firsts, [1, 3]),
        }
    }
}
