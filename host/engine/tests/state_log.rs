//! The untyped state log under the state manager (what the host's `state`
//! interface uses): checkpoint bounds, recovery points that follow
//! checkpoints, counters, and agreement with the typed manager.

use mini_engine::state::{Mutator, StateError, StateLog, StateManager, StateOptions};
use serde::{Deserialize, Serialize};

fn open(dir: &std::path::Path) -> (StateLog, mini_engine::state::RecoveryPoint) {
    StateLog::open_with(dir, &StateOptions::default()).expect("open state log")
}

fn tail(log: &StateLog, point: &mini_engine::state::RecoveryPoint) -> Vec<(u64, String)> {
    log.mutations_after(point)
        .expect("reader")
        .map(|e| e.map(|e| (e.seq, e.data)).expect("entry"))
        .collect()
}

#[test]
fn checkpoint_outside_the_committed_range_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(dir.path());
    log.commit_batch(&["1", "2", "3"]).expect("commit");
    let beyond = log
        .checkpoint(4, "6")
        .expect_err("seq beyond the last mutation");
    assert!(
        matches!(
            beyond,
            StateError::CheckpointOutOfRange {
                seq: 4,
                checkpoint_seq: 0,
                last_seq: 3
            }
        ),
        "{beyond:?}"
    );
    assert!(log.snapshots().list().expect("list").is_empty());

    log.checkpoint(2, "3").expect("checkpoint at 2");
    let below = log
        .checkpoint(1, "1")
        .expect_err("seq below the newest checkpoint");
    assert!(
        matches!(
            below,
            StateError::CheckpointOutOfRange {
                seq: 1,
                checkpoint_seq: 2,
                ..
            }
        ),
        "{below:?}"
    );
    let seqs: Vec<u64> = log
        .snapshots()
        .list()
        .expect("list")
        .iter()
        .map(|s| s.seq)
        .collect();
    assert_eq!(seqs, [2]);
    // The same seq again replaces the snapshot atomically.
    log.checkpoint(2, "3").expect("checkpoint at 2 again");
    assert_eq!(log.checkpoint_seq(), 2);
}

#[test]
fn an_invalid_state_is_refused_and_the_old_recovery_point_stays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(dir.path());
    log.commit_batch(&["1", "2"]).expect("commit");
    log.checkpoint(1, "1").expect("checkpoint");
    for bad in ["", "{", "1 2"] {
        let err = log.checkpoint(2, bad).expect_err("invalid state");
        assert!(
            matches!(
                err,
                StateError::Snapshot(mini_engine::SnapshotError::InvalidState(_))
            ),
            "{bad:?}: {err:?}"
        );
    }
    assert_eq!(log.checkpoint_seq(), 1);
    let point = log.recover().expect("recover");
    assert_eq!(
        point.snapshot.as_ref().map(|s| (s.seq, s.state.as_str())),
        Some((1, "1"))
    );
    assert_eq!(tail(&log, &point), [(2, "2".to_string())]);
}

#[test]
fn recover_follows_checkpoints_and_compaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = StateOptions {
        segment_size: 256,
        ..StateOptions::default()
    };
    let (log, point) = StateLog::open_with(dir.path(), &options).expect("open");
    assert_eq!(point.seq(), 0);
    let mut total = 0u64;
    for n in 1..=60u64 {
        assert_eq!(log.commit(&n.to_string()).expect("commit"), n);
        total += n;
        if n % 20 == 0 {
            log.checkpoint(n, &total.to_string()).expect("checkpoint");
        }
    }
    log.commit("61").expect("commit");
    let stats = log.stats();
    assert_eq!(
        (
            stats.seq,
            stats.checkpoint_seq,
            stats.records_since_checkpoint
        ),
        (61, 60, 1)
    );
    // Two snapshots kept (40 and 60): the journal reaches back to 41 at most.
    assert!(
        stats.journal_first_seq > 1 && stats.journal_first_seq <= 41,
        "{stats:?}"
    );

    let point = log.recover().expect("recover");
    assert_eq!(point.seq(), 60);
    assert_eq!(tail(&log, &point), [(61, "61".to_string())]);
    drop(log);

    let (log, point) = StateLog::open_with(dir.path(), &options).expect("reopen");
    let state: u64 = point
        .snapshot
        .as_ref()
        .expect("snapshot")
        .state
        .parse()
        .expect("number");
    let folded = state
        + tail(&log, &point)
            .iter()
            .map(|(_, d)| d.parse::<u64>().expect("n"))
            .sum::<u64>();
    assert_eq!(folded, (1..=61).sum::<u64>());
    assert_eq!(log.checkpoint_seq(), 60);
}

#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
struct Sum {
    total: i64,
}

#[derive(Serialize, Deserialize)]
struct Add(i64);

impl Mutator<Sum> for Add {
    fn apply(&self, state: &mut Sum) {
        state.total += self.0;
    }
}

#[test]
fn a_state_written_through_the_log_opens_in_the_typed_manager() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (log, _) = open(dir.path());
        log.commit_batch(&["5", "7"]).expect("commit");
        log.checkpoint(2, r#"{"total":12}"#).expect("checkpoint");
        log.commit("-2").expect("commit");
    }
    let manager: StateManager<Sum, Add> = StateManager::open(dir.path()).expect("open");
    assert_eq!(*manager.state(), Sum { total: 10 });
    assert_eq!((manager.sequence(), manager.recovery().replayed), (3, 1));
    let stats = manager.stats();
    assert_eq!(
        (stats.checkpoint_seq, stats.records_since_checkpoint),
        (2, 1)
    );
    assert_eq!(stats.bytes_since_checkpoint, 2);
}
