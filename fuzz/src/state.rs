//! The state of `state_recovery`: a counter and its mutations (the seeds
//! write states of this type, so the fuzzer starts from folds that work),
//! and the checks of a state directory.
//!
//! The unlocked check (`StateLog::check`, what `mini verify` shows) and an
//! open must agree on whether and from where the state recovers; the
//! mutations replayed are the journal's records after the snapshot, in
//! order; a state that opens takes a mutation and a checkpoint and reopens
//! to the same value.

use std::path::Path;

use mini_engine::journal::list_segments;
use mini_engine::segment::{MAX_SEQ, parse_segment_file_name};
use mini_engine::state::{
    JOURNAL_DIR, RecoveryPoint, StateLog, StateOptions, recovery_point_unlocked,
};
use mini_engine::{
    Corruption, CorruptionKind, Entry, JournalError, Mutator, StateError, StateManager,
};
use serde::{Deserialize, Serialize};

use crate::journal::{assert_contiguous, read_all};

/// The state: a counter. Missing fields take their defaults, so `{}` (what
/// a fuzzed snapshot often holds) is a state.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counter {
    /// The total.
    pub value: i64,
    /// Mutations applied.
    pub ops: u64,
}

/// A mutation of [`Counter`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Op {
    /// Adds `by` (wrapping: the fold is the user's code, and an overflow in
    /// it would be no finding about the engine).
    Inc {
        /// What to add.
        by: i64,
    },
    /// Sets the value.
    Set {
        /// The new value.
        value: i64,
    },
}

impl Mutator<Counter> for Op {
    fn apply(&self, state: &mut Counter) {
        match self {
            Op::Inc { by } => state.value = state.value.wrapping_add(*by),
            Op::Set { value } => state.value = *value,
        }
        state.ops = state.ops.wrapping_add(1);
    }
}

/// Small segments, two snapshots kept: checkpoints compact often.
pub fn options() -> StateOptions {
    StateOptions {
        segment_size: 512,
        preallocate: 4096,
        ..StateOptions::default()
    }
}

/// Whether two failures of recovery are the same failure.
fn same_failure(a: &StateError, b: &StateError) -> bool {
    match (a, b) {
        (
            StateError::Journal(JournalError::Corrupt(x)),
            StateError::Journal(JournalError::Corrupt(y)),
        ) => crate::journal::open_may_report(y, x),
        (
            StateError::SnapshotBeyondJournal {
                snapshot_seq: s1,
                journal_last_seq: l1,
            },
            StateError::SnapshotBeyondJournal {
                snapshot_seq: s2,
                journal_last_seq: l2,
            },
        ) => (s1, l1) == (s2, l2),
        (
            StateError::JournalCompacted {
                snapshot_seq: s1,
                journal_first_seq: f1,
                skipped: k1,
            },
            StateError::JournalCompacted {
                snapshot_seq: s2,
                journal_first_seq: f2,
                skipped: k2,
            },
        ) => (s1, f1, k1) == (s2, f2, k2),
        _ => false,
    }
}

/// Runs every check on the state in `dir` (which holds `journal/` and
/// `snapshots/`; the checks change it).
pub fn check_state(dir: &Path) {
    let check = StateLog::check(dir, &mut |_, _| {})
        .unwrap_or_else(|e| panic!("StateLog::check failed instead of reporting: {e}"));
    let unlocked = read_unlocked(dir);
    let from = inspected_from(dir);
    // Damage the check found under a seal that the journal's open trusts
    // (it reads seals, not the records under them): the state's open then
    // meets it only if it replays that far, and may fail for another
    // reason first, or recover from a snapshot past it.
    let under_seal = matches!(
        &check.recovery,
        Err(StateError::Journal(JournalError::Corrupt(_)))
    ) && mini_engine::Journal::open_with(
        dir.join(JOURNAL_DIR),
        mini_engine::JournalOptions {
            segment_size: options().segment_size,
            preallocate: options().preallocate,
            ..mini_engine::JournalOptions::default()
        },
    )
    .is_ok();
    let opened = StateLog::open_with(dir, &options());
    if under_seal {
        if let Ok((log, point)) = opened {
            let reader = log
                .mutations_after(&point)
                .unwrap_or_else(|e| panic!("mutations_after a recovery point: {e}"));
            let (entries, _) = read_all(reader);
            if let Some(first) = entries.first() {
                assert_contiguous(&entries, first.seq, "replay before damage");
            }
        }
        return;
    }
    let plan = match (&check.recovery, opened) {
        (Ok(plan), Ok((log, point))) => {
            assert_eq!(
                point.seq(),
                plan.snapshot_seq.unwrap_or(0),
                "the snapshot recovery starts from: open vs check"
            );
            assert_eq!(
                point.skipped.len(),
                plan.skipped,
                "skipped snapshots: open vs check"
            );
            assert_eq!(log.last_seq(), plan.last_seq, "last seq: open vs check");
            let reader = log
                .mutations_after(&point)
                .unwrap_or_else(|e| panic!("mutations_after a recovery point: {e}"));
            let (entries, error) = read_all(reader);
            if let Some(e) = error {
                panic!("replaying a state that opened failed: {e}");
            }
            assert_eq!(entries.len() as u64, plan.replayed(), "mutations replayed");
            assert_contiguous(&entries, point.seq() + 1, "mutations after the snapshot");
            check_unlocked_tail(
                unlocked,
                point.seq(),
                &entries,
                check.journal.torn_tail_bytes == 0,
            );
            *plan
        }
        (Err(expected), Err(found)) => {
            assert!(
                same_failure(expected, &found),
                "check and open fail differently: {expected:?} vs {found:?}"
            );
            // The unlocked read starts at the recovery point: damage in a
            // segment before that one it does not see.
            let unseen = matches!(&found, StateError::Journal(JournalError::Corrupt(d)) if not_inspected(from, d));
            if !unseen {
                match unlocked {
                    Err(_) | Ok((_, _, Some(_))) => {}
                    Ok((point, entries, None)) => panic!(
                        "open fails ({found:?}), the unlocked read gives {} records after {}",
                        entries.len(),
                        point.seq()
                    ),
                }
            }
            return;
        }
        (Ok(plan), Err(e)) => {
            panic!("check says the state recovers ({plan:?}), open failed: {e:?}")
        }
        (Err(e), Ok(_)) => panic!("check says the state does not recover ({e:?}), open succeeded"),
    };
    check_typed(dir, plan.snapshot_seq, plan.last_seq);
}

/// What `StateLog::read_unlocked` (`mini state`, `mini cat
/// --after-snapshot`) reads: the recovery point, the records after it up to
/// the end or the first error, and that error.
type Unlocked = Result<(RecoveryPoint, Vec<Entry>, Option<StateError>), StateError>;

fn read_unlocked(dir: &Path) -> Unlocked {
    let (point, mut tail) = StateLog::read_unlocked(dir)?;
    let mut entries = Vec::new();
    loop {
        match tail.next_entry() {
            Ok(Some(entry)) => entries.push(entry),
            Ok(None) => return Ok((point, entries, None)),
            Err(e) => return Ok((point, entries, Some(e))),
        }
    }
}

/// The unlocked read of a state that opened from the snapshot at `seq`
/// and replayed `replayed`: the same point and records (a prefix of them
/// if the journal had a torn tail, which the unlocked read stops before).
fn check_unlocked_tail(unlocked: Unlocked, seq: u64, replayed: &[Entry], no_torn_tail: bool) {
    let (point, entries, error) = match unlocked {
        Ok(read) => read,
        Err(e) => panic!("the state opens, its unlocked read fails: {e:?}"),
    };
    assert_eq!(point.seq(), seq, "the unlocked read's snapshot vs open's");
    assert!(
        replayed.starts_with(&entries),
        "the unlocked read's records are not a prefix of the replayed ones"
    );
    if no_torn_tail {
        if let Some(e) = &error {
            panic!("the unlocked read of a state that opens clean failed: {e:?}");
        }
        assert_eq!(
            entries.len(),
            replayed.len(),
            "records: unlocked read vs replay"
        );
    }
}

/// Opens the state as a `StateManager<Counter, Op>` (the records may not be
/// mutations of that type: then it must fail saying so), applies a
/// mutation, checkpoints, applies another, and reopens.
fn check_typed(dir: &Path, snapshot_seq: Option<u64>, last_seq: u64) {
    let mgr = match StateManager::<Counter, Op>::open_with(dir, options()) {
        Ok(mgr) => mgr,
        Err(StateError::BadMutation { .. } | StateError::BadSnapshotState { .. }) => return,
        Err(e) => panic!("a state that StateLog opened fails to open typed: {e:?}"),
    };
    assert_eq!(
        mgr.recovery().snapshot_seq,
        snapshot_seq,
        "typed open's snapshot"
    );
    assert_eq!(mgr.sequence(), last_seq, "typed open's seq");
    apply(&mgr, Op::Inc { by: 1 });
    let checkpoint = mgr
        .checkpoint()
        .unwrap_or_else(|e| panic!("checkpoint at seq {}: {e:?}", mgr.sequence()));
    assert_eq!(checkpoint.seq, mgr.sequence(), "the checkpoint's seq");
    apply(&mgr, Op::Set { value: 7 });
    let (state, seq) = (mgr.snapshot(), mgr.sequence());
    drop(mgr);
    let mgr = StateManager::<Counter, Op>::open_with(dir, options())
        .unwrap_or_else(|e| panic!("reopen after a checkpoint failed: {e:?}"));
    assert_eq!(
        *mgr.state(),
        state,
        "the state after a checkpoint and a reopen"
    );
    assert_eq!(
        mgr.sequence(),
        seq,
        "the seq after a checkpoint and a reopen"
    );
    assert_eq!(
        mgr.recovery().snapshot_seq,
        Some(checkpoint.seq),
        "the snapshot a reopen starts from"
    );
    let check = StateLog::check(dir, &mut |_, _| {})
        .unwrap_or_else(|e| panic!("StateLog::check after the checkpoint: {e}"));
    let plan = check
        .recovery
        .unwrap_or_else(|e| panic!("check after the checkpoint says no recovery: {e:?}"));
    assert_eq!(
        plan.snapshot_seq,
        Some(checkpoint.seq),
        "check after the checkpoint"
    );
    assert_eq!(plan.last_seq, seq, "check's last seq after the checkpoint");
}

/// Applies `op`; a journal at [`MAX_SEQ`] refuses it, anything else must
/// take it.
fn apply(mgr: &StateManager<Counter, Op>, op: Op) {
    let next = mgr.sequence().saturating_add(1);
    match mgr.apply(op) {
        Ok(seq) => assert_eq!(seq, next, "an applied mutation's seq"),
        Err(StateError::Journal(JournalError::SequenceExhausted { .. })) if next > MAX_SEQ => {}
        Err(e) => panic!("apply on a state that opened: {e:?}"),
    }
}

/// Whether the inspection does not read where `damage` is: in a segment
/// before the one holding the record after the snapshot (the inspection
/// reads from there; an open checks every segment, as `verify` does).
pub fn not_inspected(from: Option<u64>, damage: &Corruption) -> bool {
    let Some(damaged) = damage
        .file
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(parse_segment_file_name)
    else {
        return false;
    };
    // A missing segment is named at the segment after the gap: the gap is
    // not inspected if the inspection starts at that segment or later.
    let gap = matches!(damage.kind, CorruptionKind::MissingSegment { .. });
    from.is_some_and(|from| damaged < from || (gap && damaged == from))
}

/// The first seq of the segment an unlocked inspection of the state or
/// queue in `dir` starts reading in (the one holding the record after its
/// snapshot), taken before an open changes the files.
pub fn inspected_from(dir: &Path) -> Option<u64> {
    let after = recovery_point_unlocked(dir).map_or(0, |p| p.seq());
    let firsts = list_segments(&dir.join(JOURNAL_DIR)).unwrap_or_default();
    firsts
        .into_iter()
        .take_while(|&f| f <= after.saturating_add(1))
        .last()
}
