//! The host side of the `mini:storage/state` interface: a state's journal of
//! mutations and its snapshots, in `<namespace>/state/<name>/`.
//!
//! The fold runs in the guest: the host hands out the recovery point (the
//! newest valid snapshot and a cursor over the mutations after it), logs
//! mutations durably, and stores the snapshots the guest checkpoints. A
//! state has one owner: it is locked by the handle that opened it, so a
//! second open (in this or another instance or process) gets `locked`
//! instead of a second, diverging fold.

use std::sync::Arc;

use mini_engine::layout::UnitKind;
use mini_engine::snapshot::DEFAULT_KEEP;
use mini_engine::state::{DEFAULT_STATE_SEGMENT_SIZE, RecoveryPoint, StateLog, StateOptions};
use mini_engine::{CheckpointPolicy, StateError};
use wasmtime::component::Resource;

use crate::HostError;
use crate::backend::local::LocalCursor;
use crate::bindings::state::{self, Recovery};
use crate::bindings::types::{CheckpointInfo, Error, SnapshotPoint, StateStats as Stats};
use crate::calls::{UnitName, observed};
use crate::ctx::MiniCtxView;
use crate::disk::preallocation;
use crate::error::quote;
use crate::error::{bad_handle, skipped_warning, state_error};
use crate::offload::blocking;
use crate::registry::Claim;
use crate::store::CursorHandle;
use crate::view::Admission;

/// A state held by a guest: the `state` resource of the WIT.
#[derive(Debug)]
pub struct StateHandle {
    log: Arc<StateLog>,
    name: String,
    /// The recovery point found when the state was opened, handed out by the
    /// first `recover` (later calls look again: a checkpoint moves it).
    opened_at: Option<RecoveryPoint>,
    /// Held while the handle or a recovery cursor of it lives.
    claim: Arc<Claim>,
}

impl UnitName for StateHandle {
    fn unit_name(&self) -> Option<&str> {
        Some(&self.name)
    }
}

impl StateHandle {
    /// The state's name inside the namespace.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The engine's state log behind the handle.
    pub fn log(&self) -> &StateLog {
        &self.log
    }
}

impl MiniCtxView<'_> {
    fn state_of(&self, handle: &Resource<StateHandle>) -> Result<Arc<StateLog>, Error> {
        self.table
            .get(handle)
            .map(|h| h.log.clone())
            .map_err(|e| bad_handle("state", e))
    }

    /// Runs `work` on the state of `handle` off the executor, within the
    /// disk quota for `bytes`.
    async fn write_state<R: Send + 'static>(
        &mut self,
        handle: &Resource<StateHandle>,
        bytes: u64,
        work: impl FnOnce(&StateLog) -> Result<R, StateError> + Send + 'static,
    ) -> Result<R, Error> {
        let log = self.state_of(handle)?;
        let ns_dir = self.ctx.namespace_dir.clone();
        self.write_within_quota(bytes, move || {
            work(&log).map_err(|e| state_error(e, &ns_dir))
        })
        .await
    }

    async fn open_state(&mut self, name: String) -> Result<Resource<StateHandle>, Error> {
        let Admission { dir, ns_dir, .. } = self.admit(UnitKind::State, &name).await?;
        let claim = self.ctx.host.claim(&dir).map_err(|()| {
            Error::Locked(format!(
                "the state {} is open already in this process: a state has one owner (drop the other handle, and the cursor its recover returned, first)",
                quote(&name)
            ))
        })?;
        let limits = &self.ctx.limits;
        let options = StateOptions {
            // Small segments let compaction keep the files (and the open
            // time) bounded by the tail, not by the history.
            segment_size: limits.segment_size.min(DEFAULT_STATE_SEGMENT_SIZE),
            max_record_size: limits.max_record_size,
            preallocate: preallocation(limits.disk_quota),
            max_state_size: limits.max_state_size,
            keep_snapshots: DEFAULT_KEEP,
            checkpoint: CheckpointPolicy::default(),
            fs: self.ctx.fs.clone(),
        };
        let (log, point) = blocking(move || {
            StateLog::open_with(&dir, &options).map_err(|e| state_error(e, &ns_dir))
        })
        .await??;
        self.push_handle(StateHandle {
            log: Arc::new(log),
            name,
            opened_at: Some(point),
            claim: Arc::new(claim),
        })
    }

    async fn recover_state(&mut self, handle: &Resource<StateHandle>) -> Result<Recovery, Error> {
        let log = self.state_of(handle)?;
        self.check_handle_limit()?;
        let held = self
            .table
            .get_mut(handle)
            .map_err(|e| bad_handle("state", e))?;
        let opened_at = held.opened_at.take();
        let claim = held.claim.clone();
        let ns_dir = self.ctx.namespace_dir.clone();
        let (point, reader) = blocking(move || {
            let point = match opened_at {
                Some(point) => point,
                None => log.recover()?,
            };
            let reader = log.mutations_after(&point)?;
            Ok((point, reader))
        })
        .await?
        .map_err(|e| state_error(e, &ns_dir))?;
        // The cursor holds the state's journal: the state stays claimed
        // until it is dropped too.
        let cursor = LocalCursor::boxed(reader, ns_dir.clone());
        let mutations = self.push_handle(CursorHandle::new(cursor).holding(claim))?;
        Ok(Recovery {
            warnings: point
                .skipped
                .iter()
                .map(|s| skipped_warning(s, &ns_dir))
                .collect(),
            snapshot: point.snapshot.map(|s| SnapshotPoint {
                seq: s.seq,
                state: s.state,
            }),
            mutations,
        })
    }
}

impl state::Host for MiniCtxView<'_> {}

impl state::HostState for MiniCtxView<'_> {
    async fn open(&mut self, name: String) -> Result<Resource<StateHandle>, HostError> {
        observed!(self, "state", "open", Some(name.clone()), {
            Ok(self.open_state(name).await?)
        })
    }

    async fn recover(&mut self, handle: Resource<StateHandle>) -> Result<Recovery, HostError> {
        observed!(self, "state", "recover", self.unit_of(&handle), {
            Ok(self.recover_state(&handle).await?)
        })
    }

    async fn commit(
        &mut self,
        handle: Resource<StateHandle>,
        mutation: String,
    ) -> Result<u64, HostError> {
        observed!(self, "state", "commit", self.unit_of(&handle), {
            let bytes = self.check_record_sizes([&mutation])?;
            Ok(self
                .write_state(&handle, bytes, move |log| log.commit(&mutation))
                .await?)
        })
    }

    async fn commit_batch(
        &mut self,
        handle: Resource<StateHandle>,
        mutations: Vec<String>,
    ) -> Result<u64, HostError> {
        observed!(self, "state", "commit-batch", self.unit_of(&handle), {
            let bytes = self.check_record_sizes(&mutations)?;
            Ok(self
                .write_state(&handle, bytes, move |log| log.commit_batch(&mutations))
                .await?)
        })
    }

    async fn checkpoint(
        &mut self,
        handle: Resource<StateHandle>,
        state: String,
        seq: u64,
    ) -> Result<CheckpointInfo, HostError> {
        observed!(self, "state", "checkpoint", self.unit_of(&handle), {
            let bytes = self.check_state_size(&state)?;
            // The recovery point found at open is stale once a checkpoint moves it.
            if let Ok(held) = self.table.get_mut(&handle) {
                held.opened_at = None;
            }
            Ok(self
                .write_state(&handle, bytes, move |log| {
                    let done = log.checkpoint(seq, &state)?;
                    Ok(CheckpointInfo {
                        seq: done.seq,
                        kept_snapshots: done.kept_snapshots,
                        segments_deleted: u32::try_from(done.segments_deleted).unwrap_or(u32::MAX),
                    })
                })
                .await?)
        })
    }

    async fn current_seq(&mut self, handle: Resource<StateHandle>) -> Result<u64, HostError> {
        observed!(self, "state", "current-seq", self.unit_of(&handle), {
            Ok(self.state_of(&handle)?.last_seq())
        })
    }

    async fn stats(&mut self, handle: Resource<StateHandle>) -> Result<Stats, HostError> {
        observed!(self, "state", "stats", self.unit_of(&handle), {
            let log = self.state_of(&handle)?;
            // Waits for a checkpoint in progress, and takes the journal's lock.
            Ok(blocking(move || {
                let stats = log.stats();
                Stats {
                    seq: stats.seq,
                    checkpoint_seq: stats.checkpoint_seq,
                    records_since_checkpoint: stats.records_since_checkpoint,
                    journal_bytes: stats.journal_bytes,
                    journal_first_seq: stats.journal_first_seq,
                }
            })
            .await?)
        })
    }

    async fn drop(&mut self, handle: Resource<StateHandle>) -> wasmtime::Result<()> {
        self.drop_handle(handle);
        Ok(())
    }
}
