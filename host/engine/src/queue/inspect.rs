//! Reading a queue's state without its lock, for operators (`mini queue
//! stats`, `peek`, `dead`) while a process holds the queue.

use std::path::Path;

use super::fold::{QueueRecord, QueueSnapshot, QueueState};
use super::{BadRecordKind, QueueError};
use crate::JournalError;
use crate::snapshot::{SkippedSnapshot, SnapshotError, SnapshotOptions, restore_unlocked};
use crate::state::{JOURNAL_DIR, SNAPSHOT_DIR, StateError};

/// How often the read starts again when a checkpoint of the running queue
/// compacted the journal between reading the snapshot and the journal.
const ATTEMPTS: usize = 3;

/// The state of the queue in `dir` (newest valid snapshot plus the records
/// after it), read without taking its lock, and the damaged snapshots passed
/// over. A record being written at the moment is not included.
///
/// ```
/// use mini_engine::queue::{inspect, PushOptions, Queue};
/// let dir = tempfile::tempdir()?;
/// let queue = Queue::open(dir.path())?;
/// queue.push("1", &PushOptions::default())?;
/// let (state, _skipped) = inspect(dir.path())?; // while `queue` holds the lock
/// assert_eq!(state.stats(0).ready + state.stats(0).delayed, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn inspect(dir: &Path) -> Result<(QueueState, Vec<SkippedSnapshot>), QueueError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match read(dir) {
            Err(QueueError::Storage(StateError::Journal(JournalError::OutOfRange { .. })))
                if attempt < ATTEMPTS => {}
            other => return other,
        }
    }
}

fn read(dir: &Path) -> Result<(QueueState, Vec<SkippedSnapshot>), QueueError> {
    let options = SnapshotOptions {
        max_state_size: usize::MAX / 2,
        ..SnapshotOptions::default()
    };
    let snapshots = dir.join(SNAPSHOT_DIR);
    let restored = if snapshots.is_dir() {
        restore_unlocked(&snapshots, &options)
    } else {
        Ok(None)
    };
    let (mut state, seq, skipped) = match restored {
        Ok(Some(restored)) => {
            let snapshot: QueueSnapshot =
                serde_json::from_str(&restored.state).map_err(|source| {
                    StateError::BadSnapshotState {
                        seq: restored.seq,
                        path: restored.path.clone(),
                        source,
                    }
                })?;
            (
                QueueState::from_snapshot(snapshot),
                restored.seq,
                restored.skipped,
            )
        }
        Ok(None) => (QueueState::default(), 0, Vec::new()),
        Err(SnapshotError::AllDamaged { skipped }) => (QueueState::default(), 0, skipped),
        Err(e) => return Err(StateError::from(e).into()),
    };
    let journal = dir.join(JOURNAL_DIR);
    if !journal.is_dir() {
        return Ok((state, skipped));
    }
    let reader = crate::read_unlocked(&journal, seq + 1)?;
    for entry in reader {
        let entry = entry?;
        let bad = |source: BadRecordKind| QueueError::BadRecord {
            seq: entry.seq,
            source,
        };
        let record: QueueRecord = serde_json::from_str(&entry.data).map_err(|e| bad(e.into()))?;
        state.apply(record).map_err(|e| bad(e.into()))?;
    }
    Ok((state, skipped))
}
