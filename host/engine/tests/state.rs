//! The native state manager: recovered state equals the fold of every
//! acknowledged mutation, across checkpoints, compaction, damaged snapshots
//! and reopenings.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use common::*;
use mini_engine::fs::StdFs;
use mini_engine::snapshot::SnapshotStore;
use mini_engine::state::{
    CheckpointPolicy, JOURNAL_DIR, Mutator, SNAPSHOT_DIR, StateError, StateManager, StateOptions,
};
use mini_engine::{Journal, JournalError};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Counter {
    value: i64,
    /// How many mutations were applied: catches a replayed or lost one that
    /// leaves `value` unchanged.
    count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Op {
    Inc { by: i64 },
    Set { value: i64 },
    Double,
}

impl Mutator<Counter> for Op {
    fn apply(&self, state: &mut Counter) {
        match self {
            Op::Inc { by } => state.value = state.value.wrapping_add(*by),
            Op::Set { value } => state.value = *value,
            Op::Double => state.value = state.value.wrapping_mul(2),
        }
        state.count += 1;
    }
}

type Manager = StateManager<Counter, Op>;

fn fold(ops: &[Op]) -> Counter {
    let mut state = Counter::default();
    for op in ops {
        op.apply(&mut state);
    }
    state
}

fn op(i: u64) -> Op {
    match i % 5 {
        0 => Op::Set {
            value: i as i64 * 3,
        },
        1 | 3 => Op::Inc { by: i as i64 },
        2 => Op::Double,
        _ => Op::Inc { by: -7 },
    }
}

fn small(segment_size: u64) -> StateOptions {
    StateOptions {
        segment_size,
        ..StateOptions::default()
    }
}

fn journal_segments(dir: &Path) -> Vec<u64> {
    segments(&dir.join(JOURNAL_DIR))
        .into_iter()
        .map(|(s, _)| s)
        .collect()
}

fn snapshot_seqs(dir: &Path) -> Vec<u64> {
    let mut out: Vec<u64> = std::fs::read_dir(dir.join(SNAPSHOT_DIR))
        .unwrap()
        .filter_map(|e| {
            mini_engine::snapshot::parse_snapshot_file_name(e.unwrap().file_name().to_str()?)
        })
        .collect();
    out.sort();
    out
}

fn snapshot_path(dir: &Path, seq: u64) -> std::path::PathBuf {
    dir.join(SNAPSHOT_DIR)
        .join(mini_engine::snapshot::snapshot_file_name(seq))
}

#[test]
fn apply_then_reopen_equals_the_fold() {
    let dir = tmp();
    let mut ops = Vec::new();
    {
        let mgr = Manager::open(dir.path()).unwrap();
        assert_eq!((mgr.sequence(), mgr.snapshot()), (0, Counter::default()));
        for i in 0..60 {
            if i % 10 == 9 {
                let batch: Vec<Op> = (0..4).map(|j| op(i * 10 + j)).collect();
                let last = mgr.apply_batch(batch.clone()).unwrap();
                ops.extend(batch);
                assert_eq!(last, ops.len() as u64);
            } else {
                assert_eq!(mgr.apply(op(i)).unwrap(), ops.len() as u64 + 1);
                ops.push(op(i));
            }
            assert_eq!(*mgr.state(), fold(&ops));
        }
        assert_eq!(mgr.apply_batch(Vec::new()).unwrap(), ops.len() as u64);
    }
    let mgr = Manager::open(dir.path()).unwrap();
    assert_eq!(mgr.snapshot(), fold(&ops));
    assert_eq!(mgr.sequence(), ops.len() as u64);
    assert_eq!(mgr.recovery().snapshot_seq, None);
    assert_eq!(mgr.recovery().replayed, ops.len() as u64);
    // The journal holds the mutations as JSON, in order.
    let records = read_all(mgr.journal());
    let logged: Vec<Op> = records
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    assert_eq!(logged, ops);
}

#[test]
fn checkpoint_then_reopen_continues() {
    let dir = tmp();
    let mut ops: Vec<Op> = (0..30).map(op).collect();
    {
        let mgr = Manager::open(dir.path()).unwrap();
        for o in &ops {
            mgr.apply(o.clone()).unwrap();
        }
        let cp = mgr.checkpoint().unwrap();
        assert_eq!(cp.seq, 30);
        assert_eq!(cp.kept_snapshots, [30]);
        assert_eq!(mgr.stats().records_since_checkpoint, 0);
        for i in 30..35 {
            mgr.apply(op(i)).unwrap();
            ops.push(op(i));
        }
        let stats = mgr.stats();
        assert_eq!(
            (
                stats.seq,
                stats.checkpoint_seq,
                stats.records_since_checkpoint
            ),
            (35, 30, 5)
        );
    }
    // The snapshot holds the fold at 30.
    let restored = SnapshotStore::open(dir.path().join(SNAPSHOT_DIR))
        .unwrap()
        .restore()
        .unwrap()
        .unwrap();
    assert_eq!(restored.seq, 30);
    assert_eq!(
        serde_json::from_str::<Counter>(&restored.state).unwrap(),
        fold(&ops[..30])
    );
    drop(restored);

    let mgr = Manager::open(dir.path()).unwrap();
    assert_eq!(mgr.snapshot(), fold(&ops));
    assert_eq!(mgr.recovery().snapshot_seq, Some(30));
    assert_eq!(mgr.recovery().replayed, 5);
    assert_eq!(mgr.stats().records_since_checkpoint, 5);
    assert_eq!(mgr.apply(op(35)).unwrap(), 36);
    ops.push(op(35));
    assert_eq!(mgr.snapshot(), fold(&ops));
    // A checkpoint with nothing new since is harmless.
    mgr.checkpoint().unwrap();
    mgr.checkpoint().unwrap();
    drop(mgr);
    let mgr = Manager::open(dir.path()).unwrap();
    assert_eq!((mgr.snapshot(), mgr.sequence()), (fold(&ops), 36));
    assert_eq!(mgr.recovery().replayed, 0);
}

#[test]
fn checkpoints_compact_old_segments_and_keep_the_tail() {
    let dir = tmp();
    let mut ops = Vec::new();
    let mut max_segments = 0;
    {
        let mgr = Manager::open_with(dir.path(), small(400)).unwrap();
        for i in 0..1000 {
            mgr.apply(op(i)).unwrap();
            ops.push(op(i));
            max_segments = max_segments.max(journal_segments(dir.path()).len());
            if i % 100 == 99 {
                let cp = mgr.checkpoint().unwrap();
                assert_eq!(cp.seq, i + 1);
                let segs = journal_segments(dir.path());
                if cp.kept_snapshots.len() == 2 {
                    let oldest_kept = cp.kept_snapshots[1];
                    // Only segments holding records after the older snapshot remain...
                    assert!(segs[0] <= oldest_kept + 1, "{segs:?} {cp:?}");
                    // ...and nothing wholly covered by it.
                    if segs.len() > 1 {
                        assert!(segs[1] > oldest_kept + 1, "{segs:?} {cp:?}");
                    }
                    assert!(cp.segments_deleted > 0 || i < 200, "{cp:?}");
                } else {
                    // Before two snapshots exist nothing is compacted.
                    assert_eq!(segs[0], 1);
                }
            }
        }
        assert_eq!(
            mgr.stats().journal_first_seq,
            journal_segments(dir.path())[0]
        );
    }
    assert!(max_segments > 20, "segments never piled up: {max_segments}");
    let segs = journal_segments(dir.path());
    // About 166 segments without compaction; only those after seq 900 remain.
    assert!(segs.len() < 30, "{segs:?}");
    assert!(segs[0] > 800 && segs[0] <= 901, "{segs:?}");
    assert_eq!(snapshot_seqs(dir.path()), [900, 1000]);
    let mgr = Manager::open_with(dir.path(), small(400)).unwrap();
    assert_eq!(mgr.snapshot(), fold(&ops));
    assert_eq!(mgr.recovery().snapshot_seq, Some(1000));
    // Seqs continue after compaction and reopening.
    assert_eq!(mgr.apply(op(1000)).unwrap(), 1001);
    assert!(matches!(
        mgr.journal().read_from(1),
        Err(JournalError::OutOfRange { .. })
    ));
}

#[test]
fn damaged_newest_snapshot_falls_back_to_the_older_one_and_a_longer_tail() {
    for damage in ["truncate", "flip"] {
        let dir = tmp();
        let mut ops = Vec::new();
        {
            let mgr = Manager::open_with(dir.path(), small(400)).unwrap();
            for i in 0..550 {
                mgr.apply(op(i)).unwrap();
                ops.push(op(i));
                if i % 100 == 99 {
                    mgr.checkpoint().unwrap();
                }
            }
        }
        assert_eq!(snapshot_seqs(dir.path()), [400, 500]);
        let newest = snapshot_path(dir.path(), 500);
        match damage {
            "truncate" => set_len(&newest, file_len(&newest) - 5),
            _ => {
                let text = std::fs::read_to_string(&newest).unwrap();
                let at = text.find("\"value\":").unwrap() + 8;
                let b = text.as_bytes()[at];
                patch(&newest, at as u64, &[if b == b'1' { b'2' } else { b'1' }]);
            }
        }
        let mgr = Manager::open_with(dir.path(), small(400)).unwrap();
        assert_eq!(mgr.snapshot(), fold(&ops), "{damage}");
        assert_eq!(mgr.sequence(), 550);
        let recovery = mgr.recovery();
        assert_eq!(recovery.snapshot_seq, Some(400));
        assert_eq!(recovery.replayed, 150);
        assert_eq!(recovery.skipped.len(), 1);
        assert_eq!(recovery.skipped[0].seq, 500);
        // The next checkpoint repairs the situation.
        mgr.checkpoint().unwrap();
        drop(mgr);
        let mgr = Manager::open_with(dir.path(), small(400)).unwrap();
        assert_eq!(mgr.recovery().snapshot_seq, Some(550));
        assert_eq!(mgr.snapshot(), fold(&ops));
    }
}

#[test]
fn all_snapshots_damaged_and_journal_compacted_is_a_clear_error() {
    let dir = tmp();
    {
        let mgr = Manager::open_with(dir.path(), small(400)).unwrap();
        for i in 0..350 {
            mgr.apply(op(i)).unwrap();
            if i % 100 == 99 {
                mgr.checkpoint().unwrap();
            }
        }
        assert!(mgr.journal().first_seq() > 1);
    }
    for seq in snapshot_seqs(dir.path()) {
        set_len(&snapshot_path(dir.path(), seq), 20);
    }
    match Manager::open_with(dir.path(), small(400)) {
        Err(StateError::JournalCompacted {
            snapshot_seq,
            journal_first_seq,
            skipped,
        }) => {
            assert_eq!(snapshot_seq, 0);
            assert!(journal_first_seq > 1);
            let seqs: Vec<u64> = skipped.iter().map(|s| s.seq).collect();
            assert_eq!(seqs, [300, 200]);
        }
        other => panic!("expected JournalCompacted, got {other:?}"),
    }
    // Nothing was changed by the failed open.
    assert_eq!(snapshot_seqs(dir.path()), [200, 300]);
}

#[test]
fn all_snapshots_damaged_without_compaction_replays_everything() {
    let dir = tmp();
    let ops: Vec<Op> = (0..40).map(op).collect();
    {
        let mgr = Manager::open(dir.path()).unwrap();
        for o in &ops {
            mgr.apply(o.clone()).unwrap();
        }
        mgr.checkpoint().unwrap();
    }
    set_len(&snapshot_path(dir.path(), 40), 3);
    let mgr = Manager::open(dir.path()).unwrap();
    assert_eq!(mgr.snapshot(), fold(&ops));
    assert_eq!(mgr.recovery().snapshot_seq, None);
    assert_eq!(mgr.recovery().skipped.len(), 1);
    assert_eq!(mgr.recovery().replayed, 40);
}

#[test]
fn snapshot_beyond_the_journal_is_a_clear_error() {
    let dir = tmp();
    {
        let mgr = Manager::open(dir.path()).unwrap();
        mgr.apply(op(1)).unwrap();
    }
    {
        let store = SnapshotStore::open(dir.path().join(SNAPSHOT_DIR)).unwrap();
        store.create(5, r#"{"value":1,"count":5}"#).unwrap();
    }
    match Manager::open(dir.path()) {
        Err(StateError::SnapshotBeyondJournal {
            snapshot_seq: 5,
            journal_last_seq: 1,
        }) => {}
        other => panic!("expected SnapshotBeyondJournal, got {other:?}"),
    }
}

#[test]
fn a_record_that_is_not_a_mutation_or_a_foreign_state_is_an_error() {
    let dir = tmp();
    {
        let journal = Journal::open(dir.path().join(JOURNAL_DIR)).unwrap();
        journal.append(r#"{"Inc":{"by":1}}"#).unwrap();
        journal.append(r#"{"Nope":1}"#).unwrap();
    }
    assert!(matches!(
        Manager::open(dir.path()),
        Err(StateError::BadMutation { seq: 2, .. })
    ));
    let dir = tmp();
    {
        let store = SnapshotStore::open(dir.path().join(SNAPSHOT_DIR)).unwrap();
        store.create(0, r#""nope""#).unwrap();
    }
    assert!(matches!(
        Manager::open(dir.path()),
        Err(StateError::BadSnapshotState { seq: 0, .. })
    ));
}

#[test]
fn automatic_checkpoints_follow_the_policy() {
    let dir = tmp();
    let options = StateOptions {
        checkpoint: CheckpointPolicy {
            every_records: Some(10),
            every_bytes: None,
        },
        ..small(300)
    };
    let mut ops = Vec::new();
    {
        let mgr = Manager::open_with(dir.path(), options.clone()).unwrap();
        for i in 0..45 {
            mgr.apply(op(i)).unwrap();
            ops.push(op(i));
        }
        let stats = mgr.stats();
        assert_eq!(
            (stats.checkpoint_seq, stats.records_since_checkpoint),
            (40, 5)
        );
    }
    assert_eq!(snapshot_seqs(dir.path()), [30, 40]);
    let by_bytes = StateOptions {
        checkpoint: CheckpointPolicy {
            every_records: None,
            every_bytes: Some(100),
        },
        ..small(300)
    };
    let mgr = Manager::open_with(dir.path(), by_bytes).unwrap();
    assert_eq!(mgr.snapshot(), fold(&ops));
    let before = mgr.stats().checkpoint_seq;
    while mgr.stats().checkpoint_seq == before {
        let i = ops.len() as u64;
        mgr.apply(op(i)).unwrap();
        ops.push(op(i));
        assert!(ops.len() < 100, "no checkpoint by bytes");
    }
    assert!(mgr.stats().bytes_since_checkpoint < 100);
    drop(mgr);
    let mgr = Manager::open_with(dir.path(), options).unwrap();
    assert_eq!(mgr.snapshot(), fold(&ops));
}

#[test]
fn a_failed_append_applies_nothing() {
    let dir = tmp();
    let fs = mini_engine::fs::faulty::FaultyFs::new();
    let options = StateOptions {
        fs: Arc::new(fs.clone()),
        ..StateOptions::default()
    };
    let mgr = Manager::open_with(dir.path(), options).unwrap();
    mgr.apply(Op::Set { value: 5 }).unwrap();
    fs.fail_sync_data_after(0);
    assert!(matches!(
        mgr.apply(Op::Inc { by: 1 }),
        Err(StateError::Journal(_))
    ));
    assert_eq!(
        (mgr.snapshot(), mgr.sequence()),
        (Counter { value: 5, count: 1 }, 1)
    );
    // A failed snapshot fsync: no compaction, state unchanged.
    drop(mgr);
    let options = StateOptions {
        fs: Arc::new(fs.clone()),
        ..StateOptions::default()
    };
    let mgr = Manager::open_with(dir.path(), options).unwrap();
    let seq = mgr.sequence();
    fs.fail_sync_dir_after(0);
    assert!(matches!(mgr.checkpoint(), Err(StateError::Snapshot(_))));
    assert_eq!(mgr.sequence(), seq);
}

#[test]
fn readers_are_not_blocked_while_a_mutation_is_being_synced() {
    let dir = tmp();
    // Create the state first, without gates.
    Manager::open(dir.path())
        .unwrap()
        .apply(Op::Set { value: 1 })
        .unwrap();
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let armed = Arc::new(AtomicBool::new(false));
    // Once armed, the next file sync waits until the test lets it go.
    let fs = {
        let armed = armed.clone();
        let entered = Mutex::new(entered_tx);
        let release = Mutex::new(release_rx);
        SyncHookFs::new(StdFs, move |sync| {
            if armed.swap(false, Ordering::SeqCst) {
                let _ = entered.lock().unwrap().send(());
                let _ = release.lock().unwrap().recv();
            }
            sync()
        })
    };
    let options = StateOptions {
        fs: Arc::new(fs),
        ..StateOptions::default()
    };
    let mgr = Arc::new(Manager::open_with(dir.path(), options).unwrap());
    armed.store(true, Ordering::SeqCst);
    let writer = {
        let mgr = mgr.clone();
        std::thread::spawn(move || mgr.apply(Op::Inc { by: 41 }).unwrap())
    };
    // The writer is now inside the fsync of its record.
    entered.recv().unwrap();
    let (seen_tx, seen) = mpsc::channel();
    let reader = {
        let mgr = mgr.clone();
        std::thread::spawn(move || {
            let value = mgr.state().value;
            seen_tx.send((value, mgr.sequence())).unwrap();
        })
    };
    // Not a timing assertion: a reader blocked by the fsync would never answer.
    let got = seen.recv_timeout(Duration::from_secs(30));
    release.send(()).unwrap();
    assert_eq!(
        got,
        Ok((1, 1)),
        "the reader was blocked by the fsync, or saw the mutation before it was durable"
    );
    assert_eq!(writer.join().unwrap(), 2);
    reader.join().unwrap();
    assert_eq!(mgr.state().value, 42);
}

#[test]
fn a_second_manager_on_the_same_directory_is_refused() {
    let dir = tmp();
    let _mgr = Manager::open(dir.path()).unwrap();
    assert!(matches!(
        Manager::open(dir.path()),
        Err(StateError::Journal(JournalError::Locked { .. }))
    ));
}

#[derive(Debug, Clone)]
enum Step {
    Apply(Op),
    Batch(Vec<Op>),
    Checkpoint,
    Reopen,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        (-1000i64..1000).prop_map(|by| Op::Inc { by }),
        (-1000i64..1000).prop_map(|value| Op::Set { value }),
        Just(Op::Double),
    ]
}

fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        10 => op_strategy().prop_map(Step::Apply),
        2 => prop::collection::vec(op_strategy(), 1..6).prop_map(Step::Batch),
        1 => Just(Step::Checkpoint),
        1 => Just(Step::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn recovered_state_is_the_fold_of_acknowledged_mutations(
        steps in prop::collection::vec(step_strategy(), 1..120),
        segment_size in 150u64..2000,
        keep in 1usize..4,
    ) {
        let dir = tmp();
        let options = StateOptions { segment_size, keep_snapshots: keep, ..StateOptions::default() };
        let mut mgr = Manager::open_with(dir.path(), options.clone()).unwrap();
        let mut acked: Vec<Op> = Vec::new();
        for step in steps {
            match step {
                Step::Apply(o) => {
                    let seq = mgr.apply(o.clone()).unwrap();
                    acked.push(o);
                    prop_assert_eq!(seq, acked.len() as u64);
                }
                Step::Batch(ops) => {
                    let seq = mgr.apply_batch(ops.clone()).unwrap();
                    acked.extend(ops);
                    prop_assert_eq!(seq, acked.len() as u64);
                }
                Step::Checkpoint => {
                    let cp = mgr.checkpoint().unwrap();
                    prop_assert_eq!(cp.seq, acked.len() as u64);
                }
                Step::Reopen => {
                    drop(mgr);
                    mgr = Manager::open_with(dir.path(), options.clone()).unwrap();
                    prop_assert_eq!(mgr.sequence(), acked.len() as u64);
                }
            }
            prop_assert_eq!(&*mgr.state(), &fold(&acked));
        }
        drop(mgr);
        let mgr = Manager::open_with(dir.path(), options).unwrap();
        prop_assert_eq!(mgr.snapshot(), fold(&acked));
        prop_assert_eq!(mgr.sequence(), acked.len() as u64);
    }
}

/// A failed automatic checkpoint is an error of the apply that triggered it
/// (which is durable and applied), shows in the stats until a checkpoint
/// succeeds, and loses nothing.
#[test]
fn a_failed_automatic_checkpoint_shows_in_the_stats_until_one_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let fs = mini_engine::fs::faulty::FaultyFs::new();
    let options = StateOptions {
        checkpoint: CheckpointPolicy {
            every_records: Some(2),
            every_bytes: None,
        },
        fs: Arc::new(fs.clone()),
        ..StateOptions::default()
    };
    let state = Manager::open_with(dir.path(), options.clone()).unwrap();
    state.apply(Op::Inc { by: 1 }).unwrap();
    assert_eq!(state.stats().checkpoint_error, None);
    fs.fail_sync_dir_after(0);
    let failed = state.apply(Op::Inc { by: 2 });
    assert!(
        matches!(failed, Err(StateError::AutoCheckpoint { seq: 2, .. })),
        "{failed:?}"
    );
    assert_eq!(state.state().value, 3, "the mutation was applied");
    assert!(
        state.stats().checkpoint_error.is_some(),
        "the failed checkpoint is not in the stats"
    );
    // The next apply is due again; its checkpoint succeeds and clears it.
    state.apply(Op::Inc { by: 1 }).unwrap();
    assert_eq!(state.stats().checkpoint_error, None);
    drop(state);
    let state = Manager::open_with(dir.path(), options).unwrap();
    assert_eq!(state.state().value, 4, "nothing was lost");
    assert_eq!(state.state().count, 3);
}
