//! The local engine's states and snapshot stores as backends: files under
//! the data root, every engine call through [`blocking`].

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use mini_engine::SnapshotStore;
use mini_engine::state::{RecoveryPoint, StateLog};

use super::local::LocalCursor;
use super::{BoxFuture, Recovered, SnapshotsBackend, StateBackend};
use crate::bindings::types::{
    CheckpointInfo, Error, Restored, SnapshotInfo, SnapshotPoint, StateStats,
};
use crate::disk::Usage;
use crate::error::{skipped_warning, snapshot_error, state_error};
use crate::offload::blocking;

/// A namespace's quota, which a unit's writes count against.
#[derive(Debug, Clone)]
pub(crate) struct Quota {
    pub usage: Arc<Usage>,
    pub ns_dir: PathBuf,
    pub quota: u64,
}

impl Quota {
    fn reserve(&self, bytes: u64) -> Result<(), Error> {
        self.usage.reserve(&self.ns_dir, self.quota, bytes)
    }
}

/// Runs `work` on `unit` (a snapshot store or a state) and its quota off
/// the executor: the engine's calls block on the disk.
fn off_executor<U: Send + Sync + 'static, R: Send + 'static>(
    unit: &Arc<U>,
    quota: &Quota,
    work: impl FnOnce(&U, &Quota) -> Result<R, Error> + Send + 'static,
) -> BoxFuture<Result<R, Error>> {
    let (unit, quota) = (unit.clone(), quota.clone());
    Box::pin(async move { blocking(move || work(&unit, &quota)).await? })
}

/// A local snapshot store.
#[derive(Debug)]
pub(crate) struct LocalSnapshots {
    store: Arc<SnapshotStore>,
    quota: Quota,
}

impl LocalSnapshots {
    pub(crate) fn new(store: SnapshotStore, quota: Quota) -> Self {
        LocalSnapshots {
            store: Arc::new(store),
            quota,
        }
    }

    fn with<R: Send + 'static>(
        &self,
        work: impl FnOnce(&SnapshotStore, &Quota) -> Result<R, Error> + Send + 'static,
    ) -> BoxFuture<Result<R, Error>> {
        off_executor(&self.store, &self.quota, work)
    }
}

impl SnapshotsBackend for LocalSnapshots {
    fn create(&self, seq: u64, state: String, bytes: u64) -> BoxFuture<Result<(), Error>> {
        self.with(move |store, quota| {
            quota.reserve(bytes)?;
            store
                .create(seq, &state)
                .map(drop)
                .map_err(|e| snapshot_error(e, &quota.ns_dir))
        })
    }

    fn restore(&self) -> BoxFuture<Result<Option<Restored>, Error>> {
        self.with(|store, quota| {
            let ns_dir = &quota.ns_dir;
            Ok(store
                .restore()
                .map_err(|e| snapshot_error(e, ns_dir))?
                .map(|r| Restored {
                    warnings: r
                        .skipped
                        .iter()
                        .map(|s| skipped_warning(s, ns_dir))
                        .collect(),
                    seq: r.seq,
                    state: r.state,
                }))
        })
    }

    fn list(&self) -> BoxFuture<Result<Vec<SnapshotInfo>, Error>> {
        self.with(|store, quota| {
            Ok(store
                .list()
                .map_err(|e| snapshot_error(e, &quota.ns_dir))?
                .into_iter()
                .map(|info| SnapshotInfo {
                    seq: info.seq,
                    size: info.size,
                })
                .collect())
        })
    }

    fn delete_older_than(&self, seq: u64) -> BoxFuture<Result<u32, Error>> {
        self.with(move |store, quota| {
            let deleted = store
                .delete_older_than(seq)
                .map_err(|e| snapshot_error(e, &quota.ns_dir))?;
            Ok(u32::try_from(deleted).unwrap_or(u32::MAX))
        })
    }
}

/// A local state.
#[derive(Debug)]
pub(crate) struct LocalState {
    log: Arc<StateLog>,
    /// The recovery point found when the state was opened, handed out by
    /// the first `recover` (later ones look again: a checkpoint moves it).
    opened_at: Arc<Mutex<Option<RecoveryPoint>>>,
    quota: Quota,
}

impl LocalState {
    pub(crate) fn new(log: StateLog, opened_at: RecoveryPoint, quota: Quota) -> Self {
        LocalState {
            log: Arc::new(log),
            opened_at: Arc::new(Mutex::new(Some(opened_at))),
            quota,
        }
    }

    fn with<R: Send + 'static>(
        &self,
        work: impl FnOnce(&StateLog, &Quota) -> Result<R, Error> + Send + 'static,
    ) -> BoxFuture<Result<R, Error>> {
        off_executor(&self.log, &self.quota, work)
    }

    fn take_opened_at(&self) -> Option<RecoveryPoint> {
        self.opened_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

impl StateBackend for LocalState {
    fn recover(&self) -> BoxFuture<Result<Recovered, Error>> {
        let opened_at = self.take_opened_at();
        self.with(move |log, quota| {
            let ns_dir = &quota.ns_dir;
            let point = match opened_at {
                Some(point) => point,
                None => log.recover().map_err(|e| state_error(e, ns_dir))?,
            };
            let reader = log
                .mutations_after(&point)
                .map_err(|e| state_error(e, ns_dir))?;
            Ok(Recovered {
                warnings: point
                    .skipped
                    .iter()
                    .map(|s| skipped_warning(s, ns_dir))
                    .collect(),
                snapshot: point.snapshot.map(|s| SnapshotPoint {
                    seq: s.seq,
                    state: s.state,
                }),
                mutations: LocalCursor::boxed(reader, ns_dir.clone()),
            })
        })
    }

    fn commit(&self, mutations: Vec<String>, bytes: u64) -> BoxFuture<Result<u64, Error>> {
        self.with(move |log, quota| {
            quota.reserve(bytes)?;
            match mutations.as_slice() {
                [mutation] => log.commit(mutation),
                _ => log.commit_batch(&mutations),
            }
            .map_err(|e| state_error(e, &quota.ns_dir))
        })
    }

    fn checkpoint(
        &self,
        seq: u64,
        state: String,
        bytes: u64,
    ) -> BoxFuture<Result<CheckpointInfo, Error>> {
        // The recovery point found at open is stale once a checkpoint moves it.
        drop(self.take_opened_at());
        self.with(move |log, quota| {
            quota.reserve(bytes)?;
            let done = log
                .checkpoint(seq, &state)
                .map_err(|e| state_error(e, &quota.ns_dir))?;
            Ok(CheckpointInfo {
                seq: done.seq,
                kept_snapshots: done.kept_snapshots,
                segments_deleted: u32::try_from(done.segments_deleted).unwrap_or(u32::MAX),
            })
        })
    }

    fn last_seq(&self) -> u64 {
        self.log.last_seq()
    }

    fn stats(&self) -> BoxFuture<Result<StateStats, Error>> {
        // Waits for a checkpoint in progress, and takes the journal's lock.
        self.with(|log, _| {
            let stats = log.stats();
            Ok(StateStats {
                seq: stats.seq,
                checkpoint_seq: stats.checkpoint_seq,
                records_since_checkpoint: stats.records_since_checkpoint,
                journal_bytes: stats.journal_bytes,
                journal_first_seq: stats.journal_first_seq,
            })
        })
    }
}
