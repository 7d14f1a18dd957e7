//! Reading a queue's state without its lock, for operators (`mini queue
//! stats`, `peek`, `dead`) while a process holds the queue.

use std::path::Path;

use super::fold::QueueState;
use super::{QueueError, recover};
use crate::snapshot::SkippedSnapshot;
use crate::state::{JOURNAL_DIR, StateError, StateLog, recovery_point_unlocked};
use crate::{Entry, JournalError};

/// How often the read starts again when a checkpoint of the running queue
/// compacted the journal between reading the snapshot and the journal (the
/// read then fails with `OutOfRange`, or `JournalCompacted` if the
/// compaction came before the journal's listing).
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
    inspect_queue(dir).map(|found| (found.state, found.skipped))
}

/// What [`inspect_queue`] read.
#[derive(Debug)]
pub struct Inspection {
    /// The queue's state.
    pub state: QueueState,
    /// The damaged snapshots passed over.
    pub skipped: Vec<SkippedSnapshot>,
    /// Records after the newest valid snapshot: what a reopen replays. Far
    /// more than the queue checkpoints at (see
    /// [`Inspection::checkpoint_overdue`]) means its automatic checkpoints
    /// fail.
    pub records_since_checkpoint: u64,
}

impl Inspection {
    /// Whether the records since the newest snapshot are more than twice
    /// what a queue with `checkpoint_every` checkpoints at: its automatic
    /// checkpoints have been failing (the running queue's `stats` say why).
    pub fn checkpoint_overdue(&self, checkpoint_every: u64) -> bool {
        let due = checkpoint_every.max(self.state.len() as u64);
        self.records_since_checkpoint > due.saturating_mul(2)
    }
}

/// [`inspect`], with how many records a reopen would replay.
pub fn inspect_queue(dir: &Path) -> Result<Inspection, QueueError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match read(dir) {
            Err(QueueError::Storage(
                StateError::Journal(JournalError::OutOfRange { .. })
                | StateError::JournalCompacted { .. },
            )) if attempt < ATTEMPTS => {}
            other => return other,
        }
    }
}

fn read(dir: &Path) -> Result<Inspection, QueueError> {
    if !dir.join(JOURNAL_DIR).is_dir() {
        // No journal yet: the snapshots alone.
        let point = recovery_point_unlocked(dir).map_err(StateError::from)?;
        let (state, records) = recover(&point, std::iter::empty::<Result<Entry, JournalError>>())?;
        return Ok(Inspection {
            state,
            skipped: point.skipped,
            records_since_checkpoint: records,
        });
    }
    // The records after the snapshot, checked against the journal as an
    // open checks them: a snapshot beyond the journal's end fails here as
    // it fails an open (found by fuzzing, issue 11: the state of such a
    // snapshot was shown as the queue's).
    let (point, mut tail) = StateLog::read_unlocked(dir)?;
    let (state, records_since_checkpoint) =
        recover(&point, std::iter::from_fn(|| tail.next_entry().transpose()))?;
    Ok(Inspection {
        state,
        skipped: point.skipped,
        records_since_checkpoint,
    })
}
