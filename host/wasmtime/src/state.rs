//! The host side of the `mini:storage/state` interface: a state's journal of
//! mutations and its snapshots, on the host's backend (locally in
//! `<namespace>/state/<name>/`).
//!
//! The fold runs in the guest: the host hands out the recovery point (the
//! newest valid snapshot and a cursor over the mutations after it), logs
//! mutations durably, and stores the snapshots the guest checkpoints. A
//! state has one owner: it is locked by the handle that opened it, so a
//! second open (in this or another instance or process) gets `locked`
//! instead of a second, diverging fold.

use std::sync::Arc;

use mini_engine::CheckpointPolicy;
use mini_engine::layout::UnitKind;
use mini_engine::snapshot::DEFAULT_KEEP;
use mini_engine::state::{DEFAULT_STATE_SEGMENT_SIZE, StateLog, StateOptions};
use wasmtime::component::Resource;

use crate::HostError;
use crate::backend::local_state::{LocalState, Quota};
use crate::backend::{Backend, Recovered, StateBackend};
use crate::bindings::state::{self, Recovery};
use crate::bindings::types::{CheckpointInfo, Error, StateStats as Stats};
use crate::calls::{UnitName, observed};
use crate::ctx::MiniCtxView;
use crate::disk::preallocation;
use crate::error::{bad_handle, state_error};
use crate::offload::blocking;
use crate::registry::Claim;
use crate::store::CursorHandle;
use crate::view::Admission;

/// A state held by a guest: the `state` resource of the WIT.
#[derive(Debug)]
pub struct StateHandle {
    state: Arc<dyn StateBackend>,
    name: String,
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

    /// The seq of the state's last durable mutation.
    pub fn last_seq(&self) -> u64 {
        self.state.last_seq()
    }
}

impl MiniCtxView<'_> {
    fn state_of(&self, handle: &Resource<StateHandle>) -> Result<Arc<dyn StateBackend>, Error> {
        self.table
            .get(handle)
            .map(|h| h.state.clone())
            .map_err(|e| bad_handle("state", e))
    }

    async fn open_state(&mut self, name: String) -> Result<Resource<StateHandle>, Error> {
        let (state, claim) = match self.ctx.host.backend() {
            Backend::Local => self.open_local_state(&name).await?,
            #[cfg(feature = "jetstream")]
            Backend::JetStream(_) => self.open_stream_state(&name).await?,
        };
        self.push_handle(StateHandle {
            state,
            name,
            claim: Arc::new(claim),
        })
    }

    async fn open_local_state(
        &mut self,
        name: &str,
    ) -> Result<(Arc<dyn StateBackend>, Claim), Error> {
        let Admission { dir, ns_dir, usage } = self.admit(UnitKind::State, name).await?;
        let claim = self.hold(UnitKind::State, &dir, name)?;
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
        let quota = Quota {
            usage,
            ns_dir: ns_dir.clone(),
            quota: limits.disk_quota,
        };
        let state = blocking(move || {
            let (log, point) =
                StateLog::open_with(&dir, &options).map_err(|e| state_error(e, &ns_dir))?;
            Ok::<_, Error>(LocalState::new(log, point, quota))
        })
        .await??;
        Ok((Arc::new(state), claim))
    }

    /// Opens a state on JetStream: the checks of an open (name,
    /// capability, handle limit, the namespace's stream limit), one owner
    /// per host; nothing touches the local disk.
    #[cfg(feature = "jetstream")]
    async fn open_stream_state(
        &mut self,
        name: &str,
    ) -> Result<(Arc<dyn StateBackend>, Claim), Error> {
        let backend = self.admit_remote(UnitKind::State, name)?;
        let claim = self.hold_remote(UnitKind::State, name)?;
        let state = crate::backend::jetstream::open_state(
            &backend,
            &self.ctx.namespace,
            name,
            self.ctx.limits.max_streams,
            self.ctx.limits.disk_quota,
        )
        .await?;
        Ok((Arc::new(state), claim))
    }

    async fn recover_state(&mut self, handle: &Resource<StateHandle>) -> Result<Recovery, Error> {
        let state = self.state_of(handle)?;
        self.check_handle_limit()?;
        let claim = self
            .table
            .get(handle)
            .map_err(|e| bad_handle("state", e))?
            .claim
            .clone();
        let Recovered {
            snapshot,
            warnings,
            mutations,
        } = state.recover().await?;
        // The cursor holds the state's journal: the state stays claimed
        // until it is dropped too.
        let mutations = self.push_handle(CursorHandle::new(mutations).holding(claim))?;
        Ok(Recovery {
            warnings,
            snapshot,
            mutations,
        })
    }

    async fn commit_mutations(
        &mut self,
        handle: &Resource<StateHandle>,
        mutations: Vec<String>,
    ) -> Result<u64, Error> {
        let bytes = self.check_record_sizes(&mutations)?;
        let state = self.state_of(handle)?;
        let committed = state.commit(mutations, bytes).await;
        self.count_write(committed, |_| true)
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
            Ok(self.commit_mutations(&handle, vec![mutation]).await?)
        })
    }

    async fn commit_batch(
        &mut self,
        handle: Resource<StateHandle>,
        mutations: Vec<String>,
    ) -> Result<u64, HostError> {
        observed!(self, "state", "commit-batch", self.unit_of(&handle), {
            Ok(self.commit_mutations(&handle, mutations).await?)
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
            let held = self.state_of(&handle)?;
            let done = held.checkpoint(seq, state, bytes).await;
            Ok(self.count_write(done, |_| true)?)
        })
    }

    async fn current_seq(&mut self, handle: Resource<StateHandle>) -> Result<u64, HostError> {
        observed!(self, "state", "current-seq", self.unit_of(&handle), {
            Ok(self.state_of(&handle)?.last_seq())
        })
    }

    async fn stats(&mut self, handle: Resource<StateHandle>) -> Result<Stats, HostError> {
        observed!(self, "state", "stats", self.unit_of(&handle), {
            Ok(self.state_of(&handle)?.stats().await?)
        })
    }

    async fn drop(&mut self, handle: Resource<StateHandle>) -> wasmtime::Result<()> {
        self.drop_handle(handle);
        Ok(())
    }
}
