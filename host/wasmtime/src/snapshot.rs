//! The host side of the `mini:storage/snapshot` interface: atomic, durable
//! snapshots of a JSON state, on the host's backend (locally in
//! `<namespace>/snapshot/<name>/`).
//!
//! A snapshot store is held by the handle that opened it; a second open of
//! the same name (in this or another instance) gets `locked`.

use std::sync::Arc;

use mini_engine::SnapshotStore;
use mini_engine::layout::UnitKind;
use mini_engine::snapshot::SnapshotOptions;
use wasmtime::component::Resource;

use crate::HostError;
use crate::backend::local_state::{LocalSnapshots, Quota};
use crate::backend::{Backend, SnapshotsBackend};
use crate::bindings::snapshot;
use crate::bindings::types::{Error, Restored, SnapshotInfo};
use crate::calls::{UnitName, observed};
use crate::ctx::MiniCtxView;
use crate::error::{bad_handle, snapshot_error};
use crate::offload::blocking;
use crate::registry::Claim;
use crate::view::Admission;

/// A snapshot store held by a guest: the `snapshots` resource of the WIT.
#[derive(Debug)]
pub struct SnapshotsHandle {
    store: Arc<dyn SnapshotsBackend>,
    name: String,
    _claim: Claim,
}

impl UnitName for SnapshotsHandle {
    fn unit_name(&self) -> Option<&str> {
        Some(&self.name)
    }
}

impl SnapshotsHandle {
    /// The store's name inside the namespace.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl MiniCtxView<'_> {
    fn snapshots_of(
        &self,
        handle: &Resource<SnapshotsHandle>,
    ) -> Result<Arc<dyn SnapshotsBackend>, Error> {
        self.table
            .get(handle)
            .map(|h| h.store.clone())
            .map_err(|e| bad_handle("snapshots", e))
    }

    async fn open_snapshots(&mut self, name: String) -> Result<Resource<SnapshotsHandle>, Error> {
        let (store, claim) = match self.ctx.host.backend() {
            Backend::Local => self.open_local_snapshots(&name).await?,
            #[cfg(feature = "jetstream")]
            Backend::JetStream(_) => self.open_stream_snapshots(&name).await?,
        };
        self.push_handle(SnapshotsHandle {
            store,
            name,
            _claim: claim,
        })
    }

    async fn open_local_snapshots(
        &mut self,
        name: &str,
    ) -> Result<(Arc<dyn SnapshotsBackend>, Claim), Error> {
        let Admission { dir, ns_dir, usage } = self.admit(UnitKind::Snapshots, name).await?;
        let claim = self.hold(UnitKind::Snapshots, &dir, name)?;
        let options = SnapshotOptions {
            max_state_size: self.ctx.limits.max_state_size,
            fs: self.ctx.fs.clone(),
            ..SnapshotOptions::default()
        };
        let quota = Quota {
            usage,
            ns_dir: ns_dir.clone(),
            quota: self.ctx.limits.disk_quota,
        };
        let store = blocking(move || {
            SnapshotStore::open_with(dir, options)
                .map_err(|e| snapshot_error(e, &ns_dir))
                .map(|store| LocalSnapshots::new(store, quota))
        })
        .await??;
        Ok((Arc::new(store), claim))
    }

    /// Opens a snapshot store on JetStream: the checks of an open, one
    /// holder per host; nothing touches the local disk.
    #[cfg(feature = "jetstream")]
    async fn open_stream_snapshots(
        &mut self,
        name: &str,
    ) -> Result<(Arc<dyn SnapshotsBackend>, Claim), Error> {
        let backend = self.admit_remote(UnitKind::Snapshots, name)?;
        let claim = self.hold_remote(UnitKind::Snapshots, name)?;
        let store = crate::backend::jetstream::open_snapshots(
            &backend,
            &self.ctx.namespace,
            name,
            self.ctx.limits.max_streams,
            self.ctx.limits.disk_quota,
        )
        .await?;
        Ok((Arc::new(store), claim))
    }

    async fn create_snapshot(
        &mut self,
        handle: &Resource<SnapshotsHandle>,
        state: String,
        seq: u64,
    ) -> Result<(), Error> {
        let store = self.snapshots_of(handle)?;
        let bytes = self.check_state_size(&state)?;
        let created = store.create(seq, state, bytes).await;
        self.count_write(created, |_| true)
    }
}

impl snapshot::Host for MiniCtxView<'_> {}

impl snapshot::HostSnapshots for MiniCtxView<'_> {
    async fn open(&mut self, name: String) -> Result<Resource<SnapshotsHandle>, HostError> {
        observed!(self, "snapshot", "open", Some(name.clone()), {
            Ok(self.open_snapshots(name).await?)
        })
    }

    async fn create(
        &mut self,
        handle: Resource<SnapshotsHandle>,
        state: String,
        seq: u64,
    ) -> Result<(), HostError> {
        observed!(self, "snapshot", "create", self.unit_of(&handle), {
            Ok(self.create_snapshot(&handle, state, seq).await?)
        })
    }

    async fn restore(
        &mut self,
        handle: Resource<SnapshotsHandle>,
    ) -> Result<Option<Restored>, HostError> {
        observed!(self, "snapshot", "restore", self.unit_of(&handle), {
            Ok(self.snapshots_of(&handle)?.restore().await?)
        })
    }

    async fn list(
        &mut self,
        handle: Resource<SnapshotsHandle>,
    ) -> Result<Vec<SnapshotInfo>, HostError> {
        observed!(self, "snapshot", "list", self.unit_of(&handle), {
            Ok(self.snapshots_of(&handle)?.list().await?)
        })
    }

    async fn delete_older_than(
        &mut self,
        handle: Resource<SnapshotsHandle>,
        seq: u64,
    ) -> Result<u32, HostError> {
        observed!(
            self,
            "snapshot",
            "delete-older-than",
            self.unit_of(&handle),
            { Ok(self.snapshots_of(&handle)?.delete_older_than(seq).await?) }
        )
    }

    async fn drop(&mut self, handle: Resource<SnapshotsHandle>) -> wasmtime::Result<()> {
        self.drop_handle(handle);
        Ok(())
    }
}
