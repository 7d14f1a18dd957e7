//! The native state manager: a state that is the fold of durable mutations,
//! recovered from the newest valid snapshot plus the journal after it.
//!
//! Layout of a state directory:
//!
//! ```text
//! <dir>/journal/      a Journal of the mutations (JSON, one per record)
//! <dir>/snapshots/    a SnapshotStore of the state (JSON) at a seq
//! ```
//!
//! ```
//! use mini_engine::state::{Mutator, StateManager};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Default, Clone, Serialize, Deserialize)]
//! struct Counter { value: i64 }
//!
//! #[derive(Serialize, Deserialize)]
//! enum Op { Inc { by: i64 }, Set { value: i64 } }
//!
//! impl Mutator<Counter> for Op {
//!     fn apply(&self, state: &mut Counter) {
//!         match self {
//!             Op::Inc { by } => state.value += by,
//!             Op::Set { value } => state.value = *value,
//!         }
//!     }
//! }
//!
//! let dir = tempfile::tempdir()?;
//! let mgr: StateManager<Counter, Op> = StateManager::open(dir.path())?;
//! assert_eq!(mgr.apply(Op::Inc { by: 5 })?, 1); // durable when it returns
//! mgr.apply(Op::Set { value: 10 })?;
//! mgr.checkpoint()?; // snapshot at seq 2, then compaction
//! mgr.apply(Op::Inc { by: 1 })?;
//! drop(mgr);
//!
//! let mgr: StateManager<Counter, Op> = StateManager::open(dir.path())?;
//! assert_eq!((mgr.state().value, mgr.sequence()), (11, 3));
//! assert_eq!(mgr.recovery().snapshot_seq, Some(2));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::marker::PhantomData;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use serde::Serialize;
use serde::de::DeserializeOwned;

mod error;
mod inspect;
mod log;

pub use error::StateError;
pub use inspect::{RecoveryPlan, StateCheck, StateTail};
pub use log::{LogStats, RecoveryPoint, StateLog, reachable, recovery_point_unlocked};

use crate::fs::{FileSystem, StdFs};
use crate::journal::{Journal, RecoveryReport};
use crate::record::DEFAULT_MAX_RECORD_SIZE;
use crate::snapshot::{DEFAULT_KEEP, DEFAULT_MAX_STATE_SIZE, SkippedSnapshot, SnapshotStore};

/// The default segment size of a state's journal: 1 MiB, smaller than a
/// plain journal's. Compaction deletes whole segments and opening a journal
/// checks every record it still holds, so after a checkpoint the open time of
/// a state is bounded by one segment plus the tail, whatever its history.
pub const DEFAULT_STATE_SEGMENT_SIZE: u64 = 1024 * 1024;

/// The name of the journal directory inside a state directory.
pub const JOURNAL_DIR: &str = "journal";
/// The name of the snapshot directory inside a state directory.
pub const SNAPSHOT_DIR: &str = "snapshots";

/// A mutation of a state `S`.
///
/// `apply` must be deterministic and free of side effects: recovery replays
/// the mutations after the newest snapshot and must reach the same state.
pub trait Mutator<S> {
    /// Applies this mutation to `state`. Called only after the mutation is
    /// durable in the journal.
    fn apply(&self, state: &mut S);
}

/// When [`StateManager`] checkpoints on its own (after an `apply`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// Checkpoint once this many records were logged since the last checkpoint.
    pub every_records: Option<u64>,
    /// Checkpoint once this many bytes of records were logged since the last
    /// checkpoint.
    pub every_bytes: Option<u64>,
}

/// How a [`StateManager`] is opened.
#[derive(Debug, Clone)]
pub struct StateOptions {
    /// The journal's segment size (see
    /// [`JournalOptions::segment_size`](crate::JournalOptions::segment_size));
    /// default [`DEFAULT_STATE_SEGMENT_SIZE`].
    pub segment_size: u64,
    /// Mutations larger than this many bytes (as JSON) are refused.
    pub max_record_size: usize,
    /// The journal's preallocation (see
    /// [`JournalOptions::preallocate`](crate::JournalOptions::preallocate)).
    pub preallocate: u64,
    /// States larger than this many bytes (as JSON) cannot be checkpointed.
    pub max_state_size: usize,
    /// How many valid snapshots are kept (at least 1; 2 lets a damaged newest
    /// snapshot fall back to the one before it).
    pub keep_snapshots: usize,
    /// The automatic checkpoint policy (none by default).
    pub checkpoint: CheckpointPolicy,
    /// The file system (the real one, or a fault-injecting one in tests).
    pub fs: Arc<dyn FileSystem>,
}

impl Default for StateOptions {
    fn default() -> Self {
        StateOptions {
            segment_size: DEFAULT_STATE_SEGMENT_SIZE,
            max_record_size: DEFAULT_MAX_RECORD_SIZE,
            preallocate: crate::journal::DEFAULT_PREALLOCATE,
            max_state_size: DEFAULT_MAX_STATE_SIZE,
            keep_snapshots: DEFAULT_KEEP,
            checkpoint: CheckpointPolicy::default(),
            fs: Arc::new(StdFs),
        }
    }
}

/// What [`StateManager::open`] recovered from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateRecovery {
    /// The seq of the snapshot recovery started from; `None` if none was used.
    pub snapshot_seq: Option<u64>,
    /// Damaged snapshots passed over, newest first: warn about them.
    pub skipped: Vec<SkippedSnapshot>,
    /// Journal records replayed on top of the snapshot.
    pub replayed: u64,
    /// What journal recovery cut from a torn tail.
    pub journal: RecoveryReport,
}

/// What [`StateManager::checkpoint`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The seq the new snapshot covers.
    pub seq: u64,
    /// The seqs of the valid snapshots kept, newest first.
    pub kept_snapshots: Vec<u64>,
    /// Journal segments deleted by the compaction.
    pub segments_deleted: usize,
}

/// Counters for deciding when to checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateStats {
    /// The seq of the last applied mutation.
    pub seq: u64,
    /// The seq of the last checkpoint made or recovered from (0: none).
    pub checkpoint_seq: u64,
    /// Records logged since then.
    pub records_since_checkpoint: u64,
    /// Bytes of records (JSON) logged since then.
    pub bytes_since_checkpoint: u64,
    /// Bytes of the journal's segment files.
    pub journal_bytes: u64,
    /// The first seq the journal still holds.
    pub journal_first_seq: u64,
    /// Why the last automatic checkpoint failed, if it did and none
    /// succeeded since (the mutations stay durable; the journal grows until
    /// a checkpoint succeeds).
    pub checkpoint_error: Option<String>,
}

/// What the writer lock of a [`StateManager`] guards.
#[derive(Debug)]
struct Writer {
    /// Bytes of mutations logged since the last checkpoint.
    bytes_since: u64,
    /// Why the last automatic checkpoint failed, until one succeeds.
    checkpoint_error: Option<String>,
}

/// A state that survives crashes: every mutation is logged durably before it
/// is applied in memory; recovery is the newest valid snapshot plus the
/// journal after it; a checkpoint snapshots the state and compacts the
/// journal.
///
/// Readers ([`StateManager::state`], [`StateManager::snapshot`]) take a read
/// lock that is never held while a mutation's fsync is in flight. Mutations
/// are serialized among themselves, so the in-memory order is the seq order.
#[derive(Debug)]
pub struct StateManager<S, M> {
    log: StateLog,
    policy: CheckpointPolicy,
    state: RwLock<S>,
    seq: AtomicU64,
    /// Serializes appliers and checkpoints, and holds what they keep.
    writer: Mutex<Writer>,
    recovery: StateRecovery,
    _mutation: PhantomData<fn(M)>,
}

impl<S, M> StateManager<S, M>
where
    S: Serialize + DeserializeOwned + Default,
    M: Mutator<S> + Serialize + DeserializeOwned,
{
    /// Opens (or creates) the state in `dir` with default options; see
    /// [`StateManager::open_with`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StateError> {
        Self::open_with(dir, StateOptions::default())
    }

    /// Opens (or creates) the state in `dir`: restores the newest valid
    /// snapshot (or `S::default()` at seq 0), then replays the journal
    /// records after it, streamed.
    ///
    /// Fails with [`StateError::SnapshotBeyondJournal`] if that snapshot
    /// covers records the journal never had, and with
    /// [`StateError::JournalCompacted`] if the journal no longer reaches back
    /// to it: never with a silently wrong state.
    pub fn open_with(dir: impl AsRef<Path>, options: StateOptions) -> Result<Self, StateError> {
        let (log, point) = StateLog::open_with(dir, &options)?;
        let mut state = match &point.snapshot {
            Some(restored) => serde_json::from_str(&restored.state).map_err(|source| {
                StateError::BadSnapshotState {
                    seq: restored.seq,
                    path: restored.path.clone(),
                    source,
                }
            })?,
            None => S::default(),
        };
        let (mut replayed, mut bytes, mut last) = (0, 0, point.seq());
        for entry in log.mutations_after(&point)? {
            let entry = entry?;
            let mutation: M =
                serde_json::from_str(&entry.data).map_err(|source| StateError::BadMutation {
                    seq: entry.seq,
                    source,
                })?;
            mutation.apply(&mut state);
            replayed += 1;
            bytes += entry.data.len() as u64;
            last = entry.seq;
        }
        let recovery = StateRecovery {
            snapshot_seq: point.snapshot.as_ref().map(|s| s.seq),
            skipped: point.skipped,
            replayed,
            journal: log.journal_recovery().clone(),
        };
        Ok(StateManager {
            log,
            policy: options.checkpoint,
            state: RwLock::new(state),
            seq: AtomicU64::new(last),
            writer: Mutex::new(Writer {
                bytes_since: bytes,
                checkpoint_error: None,
            }),
            recovery,
            _mutation: PhantomData,
        })
    }

    /// Logs `mutation` durably, then applies it in memory; returns its seq.
    ///
    /// If the log write fails, nothing is applied. With an automatic
    /// checkpoint policy, a checkpoint may follow; if it fails the error is
    /// [`StateError::AutoCheckpoint`], which carries the seq of the (applied)
    /// mutation.
    pub fn apply(&self, mutation: M) -> Result<u64, StateError> {
        self.apply_batch(vec![mutation])
    }

    /// Logs `mutations` as one atomic batch (after a crash all of them are
    /// there or none), then applies them in order; returns the seq of the
    /// last one (the current seq for an empty batch).
    pub fn apply_batch(&self, mutations: Vec<M>) -> Result<u64, StateError> {
        let mut writer = self.lock_writer();
        if mutations.is_empty() {
            return Ok(self.sequence());
        }
        let records = mutations
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()
            .map_err(StateError::Serialize)?;
        // The state lock is not held here: readers go on during the fsync.
        let last = self.log.commit_batch(&records)?;
        {
            let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
            for mutation in &mutations {
                mutation.apply(&mut state);
            }
        }
        self.seq.store(last, Ordering::Release);
        writer.bytes_since += records.iter().map(|r| r.len() as u64).sum::<u64>();
        let records_since = last.saturating_sub(self.log.checkpoint_seq());
        let due = self
            .policy
            .every_records
            .is_some_and(|n| records_since >= n)
            || self
                .policy
                .every_bytes
                .is_some_and(|n| writer.bytes_since >= n);
        if due && let Err(e) = self.checkpoint_locked(&mut writer) {
            tracing::warn!(
                dir = %self.log.dir().display(),
                seq = last,
                error = %e,
                "automatic checkpoint of a state failed; the mutation is durable, the journal is not compacted"
            );
            writer.checkpoint_error = Some(e.to_string());
            return Err(StateError::AutoCheckpoint {
                seq: last,
                source: Box::new(e),
            });
        }
        Ok(last)
    }

    /// Snapshots the current state at the current seq, durably, and only then
    /// compacts the journal (see [`StateLog::checkpoint`]).
    pub fn checkpoint(&self) -> Result<Checkpoint, StateError> {
        let mut writer = self.lock_writer();
        self.checkpoint_locked(&mut writer)
    }

    fn checkpoint_locked(&self, writer: &mut Writer) -> Result<Checkpoint, StateError> {
        let seq = self.sequence();
        let json = {
            let state = self.state.read().unwrap_or_else(|p| p.into_inner());
            serde_json::to_string(&*state).map_err(StateError::Serialize)?
        };
        let done = self.log.checkpoint(seq, &json)?;
        writer.bytes_since = 0;
        writer.checkpoint_error = None;
        Ok(done)
    }

    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A read guard on the current state (not blocked by a mutation's fsync).
    pub fn state(&self) -> RwLockReadGuard<'_, S> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> S
    where
        S: Clone,
    {
        self.state().clone()
    }

    /// The seq of the last applied mutation (0 if none).
    pub fn sequence(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// Counters for deciding when to checkpoint.
    pub fn stats(&self) -> StateStats {
        let (bytes_since_checkpoint, checkpoint_error) = {
            let writer = self.lock_writer();
            (writer.bytes_since, writer.checkpoint_error.clone())
        };
        let log = self.log.stats();
        StateStats {
            seq: self.sequence(),
            checkpoint_seq: log.checkpoint_seq,
            records_since_checkpoint: log.records_since_checkpoint,
            bytes_since_checkpoint,
            journal_bytes: log.journal_bytes,
            journal_first_seq: log.journal_first_seq,
            checkpoint_error,
        }
    }

    /// What recovery found when the state was opened.
    pub fn recovery(&self) -> &StateRecovery {
        &self.recovery
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        self.log.dir()
    }

    /// The journal and snapshots underneath.
    pub fn log(&self) -> &StateLog {
        &self.log
    }

    /// The journal of mutations.
    pub fn journal(&self) -> &Journal {
        self.log.journal()
    }

    /// The snapshot store.
    pub fn snapshots(&self) -> &SnapshotStore {
        self.log.snapshots()
    }
}
