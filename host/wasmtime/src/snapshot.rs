//! The host side of the `mini:storage/snapshot` interface: atomic, durable
//! snapshots of a JSON state, in `<namespace>/snapshot/<name>/`.
//!
//! A snapshot store is locked by the handle that opened it; a second open of
//! the same name (in this or another instance) gets `locked`.

use std::sync::Arc;

use mini_engine::SnapshotStore;
use mini_engine::layout::UnitKind;
use mini_engine::snapshot::SnapshotOptions;
use wasmtime::component::Resource;

use crate::HostError;
use crate::bindings::snapshot;
use crate::bindings::types::{Error, Restored, SnapshotInfo};
use crate::calls::{UnitName, observed};
use crate::ctx::MiniCtxView;
use crate::error::quote;
use crate::error::{bad_handle, skipped_warning, snapshot_error};
use crate::offload::blocking;
use crate::registry::Claim;
use crate::view::Admission;

/// A snapshot store held by a guest: the `snapshots` resource of the WIT.
#[derive(Debug)]
pub struct SnapshotsHandle {
    store: Arc<SnapshotStore>,
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

    /// The engine's snapshot store behind the handle.
    pub fn store(&self) -> &SnapshotStore {
        &self.store
    }
}

impl MiniCtxView<'_> {
    fn snapshots_of(
        &self,
        handle: &Resource<SnapshotsHandle>,
    ) -> Result<Arc<SnapshotStore>, Error> {
        self.table
            .get(handle)
            .map(|h| h.store.clone())
            .map_err(|e| bad_handle("snapshots", e))
    }

    /// Runs `work` on the store of `handle` off the executor.
    async fn with_snapshots<R: Send + 'static>(
        &mut self,
        handle: &Resource<SnapshotsHandle>,
        work: impl FnOnce(&SnapshotStore) -> Result<R, mini_engine::SnapshotError> + Send + 'static,
    ) -> Result<R, Error> {
        let store = self.snapshots_of(handle)?;
        let ns_dir = self.ctx.namespace_dir.clone();
        blocking(move || work(&store).map_err(|e| snapshot_error(e, &ns_dir))).await?
    }

    async fn open_snapshots(&mut self, name: String) -> Result<Resource<SnapshotsHandle>, Error> {
        let Admission { dir, ns_dir, .. } = self.admit(UnitKind::Snapshots, &name).await?;
        let claim = self.ctx.host.claim(&dir).map_err(|()| {
            Error::Locked(format!(
                "the snapshot store {} is open already in this process: one handle at a time holds a name (drop the other first)",
                quote(&name)
            ))
        })?;
        let options = SnapshotOptions {
            max_state_size: self.ctx.limits.max_state_size,
            fs: self.ctx.fs.clone(),
            ..SnapshotOptions::default()
        };
        let store = blocking(move || {
            SnapshotStore::open_with(dir, options).map_err(|e| snapshot_error(e, &ns_dir))
        })
        .await??;
        self.push_handle(SnapshotsHandle {
            store: Arc::new(store),
            name,
            _claim: claim,
        })
    }

    async fn create_snapshot(
        &mut self,
        handle: &Resource<SnapshotsHandle>,
        state: String,
        seq: u64,
    ) -> Result<(), Error> {
        let store = self.snapshots_of(handle)?;
        let bytes = self.check_state_size(&state)?;
        let ns_dir = self.ctx.namespace_dir.clone();
        self.write_within_quota(bytes, move || {
            store
                .create(seq, &state)
                .map(drop)
                .map_err(|e| snapshot_error(e, &ns_dir))
        })
        .await
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
            let ns_dir = self.ctx.namespace_dir.clone();
            Ok(self
                .with_snapshots(&handle, move |store| {
                    Ok(store.restore()?.map(|r| Restored {
                        warnings: r
                            .skipped
                            .iter()
                            .map(|s| skipped_warning(s, &ns_dir))
                            .collect(),
                        seq: r.seq,
                        state: r.state,
                    }))
                })
                .await?)
        })
    }

    async fn list(
        &mut self,
        handle: Resource<SnapshotsHandle>,
    ) -> Result<Vec<SnapshotInfo>, HostError> {
        observed!(self, "snapshot", "list", self.unit_of(&handle), {
            Ok(self
                .with_snapshots(&handle, |store| {
                    Ok(store
                        .list()?
                        .into_iter()
                        .map(|info| SnapshotInfo {
                            seq: info.seq,
                            size: info.size,
                        })
                        .collect())
                })
                .await?)
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
            {
                Ok(self
                    .with_snapshots(&handle, move |store| {
                        let deleted = store.delete_older_than(seq)?;
                        Ok(u32::try_from(deleted).unwrap_or(u32::MAX))
                    })
                    .await?)
            }
        )
    }

    async fn drop(&mut self, handle: Resource<SnapshotsHandle>) -> wasmtime::Result<()> {
        self.drop_handle(handle);
        Ok(())
    }
}
