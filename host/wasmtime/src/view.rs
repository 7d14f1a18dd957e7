//! What every interface's host functions share: admitting an open
//! (capability, quota), the handle limit, record sizes and the disk quota.

use std::path::{Path, PathBuf};
use std::sync::Arc;
#[cfg(feature = "wasi")]
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use mini_engine::layout::{DataRoot, UnitKind, unit_names};
use mini_manifest::StorageKind;
use wasmtime::component::Resource;

use crate::bindings::types::Error;
use crate::calls::UnitName;
use crate::ctx::MiniCtxView;
use crate::disk::{Usage, new_unit_cost};
use crate::error::quote;
use crate::offload::blocking;
use crate::registry::Claim;

/// Bytes a stored line adds to a record (seq, crc, framing), for the quota.
pub(crate) const LINE_OVERHEAD: u64 = 96;

fn storage_kind(kind: UnitKind) -> StorageKind {
    match kind {
        UnitKind::Journal => StorageKind::Journal,
        UnitKind::State => StorageKind::State,
        UnitKind::Snapshots => StorageKind::Snapshot,
        UnitKind::Queue => StorageKind::Queue,
        UnitKind::Bucket => StorageKind::Bucket,
    }
}

/// The WIT interface that opens units of `kind`.
fn interface_of(kind: UnitKind) -> &'static str {
    match kind {
        UnitKind::Journal => "store",
        UnitKind::State => "state",
        UnitKind::Snapshots => "snapshot",
        UnitKind::Queue => "queue",
        UnitKind::Bucket => "wasi:keyvalue",
    }
}

/// Makes the data root a root (its marker) and records the module that
/// opens the namespace. A module record that cannot be written does not
/// keep the module from its storage: it is logged.
fn prepare_namespace(root: &Path, ns_dir: &Path, module: Option<&str>) -> Result<(), Error> {
    DataRoot::create(root)
        .map_err(|e| Error::Io(format!("cannot mark the data directory as mini's: {e}")))?;
    if let Some(module) = module {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        if let Err(e) = mini_engine::layout::record_module(ns_dir, module, now) {
            tracing::warn!(module, error = %e, "cannot record the module version that opened the namespace");
        }
    }
    Ok(())
}

/// `Ok(name)` if `name` may name a journal, state or snapshot store.
pub(crate) fn check_name(name: &str) -> Result<(), Error> {
    mini_engine::name::validate_name(name)
        .map_err(|reason| Error::InvalidName(format!("{}: {reason}", quote(name))))
}

/// One handle counted against an instance's handle limit, given back when
/// dropped: what a handle whose drop the host does not see (a `wasi:io`
/// pollable, deleted by wasmtime-wasi) holds.
#[cfg(feature = "wasi")]
#[derive(Debug)]
pub(crate) struct HandleSlot {
    count: Arc<AtomicUsize>,
}

#[cfg(feature = "wasi")]
impl Drop for HandleSlot {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

fn too_many_handles(limit: usize) -> Error {
    Error::Quota(format!(
        "too many open handles: the limit of this instance is {limit} handles (pollables included)"
    ))
}

/// `quota` if the namespace in `ns_dir` holds `max` units of `kind`
/// already, so that the unit `name` may not be created.
fn refuse_past_unit_limit(
    ns_dir: &Path,
    kind: UnitKind,
    max: usize,
    name: &str,
) -> Result<(), Error> {
    let held = unit_names(ns_dir, kind)
        .map_err(|e| Error::Io(format!("cannot list the namespace's {}s: {e}", kind.noun())))?;
    if held.len() >= max {
        return Err(Error::Quota(format!(
            "cannot create the {} {}: the namespace holds {} {}s, its limit",
            kind.noun(),
            quote(name),
            held.len(),
            kind.noun()
        )));
    }
    Ok(())
}

/// Where a unit lives and whose quota it counts against.
pub(crate) struct Admission {
    /// The unit's directory.
    pub dir: PathBuf,
    /// The namespace directory it lives in.
    pub ns_dir: PathBuf,
    /// That namespace's disk usage.
    pub usage: Arc<Usage>,
}

impl MiniCtxView<'_> {
    /// Refuses a new handle once the instance holds its limit.
    pub(crate) fn check_handle_limit(&self) -> Result<(), Error> {
        let limit = self.ctx.limits.max_open_handles;
        if self.ctx.open_handles.load(Ordering::Acquire) >= limit {
            return Err(too_many_handles(limit));
        }
        Ok(())
    }

    /// Takes one handle of the limit for a pollable; `quota` past it.
    #[cfg(feature = "wasi")]
    pub(crate) fn handle_slot(&self) -> Result<HandleSlot, Error> {
        let limit = self.ctx.limits.max_open_handles;
        let count = self.ctx.open_handles.clone();
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .map_err(|_| too_many_handles(limit))?;
        Ok(HandleSlot { count })
    }

    /// Puts a new handle in the table, counted against the handle limit.
    pub(crate) fn push_handle<T: Send + 'static>(
        &mut self,
        value: T,
    ) -> Result<Resource<T>, Error> {
        self.check_handle_limit()?;
        let handle = self
            .table
            .push(value)
            .map_err(|e| Error::Quota(format!("cannot hold another handle: {e}")))?;
        self.ctx.open_handles.fetch_add(1, Ordering::AcqRel);
        Ok(handle)
    }

    /// Removes a handle the guest dropped.
    pub(crate) fn drop_handle<T: 'static>(&mut self, handle: Resource<T>) {
        if self.table.delete(handle).is_ok() {
            self.ctx.open_handles.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Counts one durable write of the instance if `result` is one (`wrote`
    /// says whether a success changed anything: a pop that found nothing
    /// wrote nothing).
    pub(crate) fn count_write<T>(
        &self,
        result: Result<T, Error>,
        wrote: impl FnOnce(&T) -> bool,
    ) -> Result<T, Error> {
        if result.as_ref().is_ok_and(wrote) {
            self.ctx.writes.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Decides whether the instance may open the unit `name` of `kind`
    /// (in its own namespace, or a queue granted to it), before anything
    /// touches the disk: the name is checked, the capability (`access-denied`),
    /// the handle limit, and, for a unit that does not exist yet, the disk
    /// quota for what creating it takes and, for a bucket, the number of
    /// buckets (`quota`). Then the data root's
    /// marker and the module record are written (once per instance).
    pub(crate) async fn admit(&mut self, kind: UnitKind, name: &str) -> Result<Admission, Error> {
        self.ctx.host.backend().serves(interface_of(kind))?;
        check_name(name)?;
        let shared = kind == UnitKind::Queue && self.ctx.queue_grants.contains_key(name);
        if !shared {
            self.ctx.access.check(storage_kind(kind), name)?;
        }
        self.check_handle_limit()?;
        let (ns_dir, usage) = if shared {
            let ns_dir = self.ctx.queue_namespace_dir(name);
            let usage = self.ctx.host.namespace_usage(&ns_dir);
            (ns_dir, usage)
        } else {
            (self.ctx.namespace_dir.clone(), self.ctx.usage.clone())
        };
        let dir = ns_dir.join(kind.dir_name()).join(name);
        let quota = self.ctx.limits.disk_quota;
        let prepare = (!self.ctx.prepared).then(|| {
            (
                self.ctx.data_root.clone(),
                self.ctx.namespace_dir.clone(),
                self.ctx.module().map(ToString::to_string),
            )
        });
        // Only buckets are limited in number (`wasi:keyvalue` opens create them).
        let max_units = (kind == UnitKind::Bucket).then_some(self.ctx.limits.max_buckets);
        let (dir_, ns_dir_, usage_, name_) =
            (dir.clone(), ns_dir.clone(), usage.clone(), name.to_owned());
        blocking(move || {
            if !dir_.is_dir() {
                if let Some(max) = max_units {
                    refuse_past_unit_limit(&ns_dir_, kind, max, &name_)?;
                }
                usage_.reserve(&ns_dir_, quota, new_unit_cost(kind, &dir_, &ns_dir_))?;
            }
            if let Some((root, own_ns, module)) = prepare {
                prepare_namespace(&root, &own_ns, module.as_deref())?;
            }
            Ok(())
        })
        .await??;
        self.ctx.prepared = true;
        Ok(Admission { dir, ns_dir, usage })
    }

    /// Claims the unit `name` of `kind`, whose key in the host's registry
    /// is `key`, for this handle: states and snapshot stores have one
    /// holder, and a second open gets `locked`.
    pub(crate) fn hold(&self, kind: UnitKind, key: &Path, name: &str) -> Result<Claim, Error> {
        self.ctx.host.claim(key).map_err(|()| {
            let cursor = match kind {
                UnitKind::State => ", and the cursor its recover returned",
                _ => "",
            };
            Error::Locked(format!(
                "the {} {} is open already in this process: it has one holder (drop the other handle{cursor} first)",
                kind.noun(),
                quote(name)
            ))
        })
    }

    /// Decides whether the instance may open the unit `name` of `kind` on
    /// the host's JetStream backend: the name, the capability, the handle
    /// limit. Nothing touches the local disk. Returns the backend.
    #[cfg(feature = "jetstream")]
    pub(crate) fn admit_remote(
        &self,
        kind: UnitKind,
        name: &str,
    ) -> Result<Arc<crate::backend::JetStreamBackend>, Error> {
        let crate::backend::Backend::JetStream(backend) = self.ctx.host.backend() else {
            return Err(Error::Other("this host has no JetStream backend".into()));
        };
        check_name(name)?;
        // A granted queue is the embedder's decision, as on local files.
        let shared = kind == UnitKind::Queue && self.ctx.queue_grants.contains_key(name);
        if !shared {
            self.ctx.access.check(storage_kind(kind), name)?;
        }
        self.check_handle_limit()?;
        Ok(backend.clone())
    }

    /// [`Self::hold`] for the unit `name` of `kind` on JetStream.
    #[cfg(feature = "jetstream")]
    pub(crate) fn hold_remote(&self, kind: UnitKind, name: &str) -> Result<Claim, Error> {
        let key = PathBuf::from(format!(
            "jetstream:{}/{}/{name}",
            self.ctx.namespace,
            kind.dir_name()
        ));
        self.hold(kind, &key, name)
    }

    /// The guest's name of the unit `handle` is for (for a call observer).
    pub(crate) fn unit_of<T: UnitName + 'static>(&self, handle: &Resource<T>) -> Option<String> {
        self.table
            .get(handle)
            .ok()
            .and_then(|h| h.unit_name().map(str::to_owned))
    }

    /// The bytes `records` will take on disk, or `record-too-large` if one of
    /// them is above the record size limit.
    pub(crate) fn check_record_sizes<'r>(
        &self,
        records: impl IntoIterator<Item = &'r String>,
    ) -> Result<u64, Error> {
        let limit = self.ctx.limits.max_record_size;
        let mut total = 0u64;
        for record in records {
            if record.len() > limit {
                return Err(Error::RecordTooLarge(
                    u64::try_from(limit).unwrap_or(u64::MAX),
                ));
            }
            total = total.saturating_add(record.len() as u64 + LINE_OVERHEAD);
        }
        Ok(total)
    }

    /// The bytes a state (a snapshot, a checkpoint) will take on disk, or
    /// `record-too-large` if it is above the state size limit.
    pub(crate) fn check_state_size(&self, state: &str) -> Result<u64, Error> {
        let limit = self.ctx.limits.max_state_size;
        if state.len() > limit {
            return Err(Error::RecordTooLarge(
                u64::try_from(limit).unwrap_or(u64::MAX),
            ));
        }
        Ok(state.len() as u64 + LINE_OVERHEAD)
    }

    /// Runs `write` (see [`blocking`]) after reserving `bytes` of the
    /// namespace's disk quota, and counts it as a write of the instance.
    pub(crate) async fn write_within_quota<R: Send + 'static>(
        &mut self,
        bytes: u64,
        write: impl FnOnce() -> Result<R, Error> + Send + 'static,
    ) -> Result<R, Error> {
        let usage = self.ctx.usage.clone();
        let ns_dir = self.ctx.namespace_dir.clone();
        self.write_within_quota_of(usage, ns_dir, bytes, write)
            .await
    }

    /// [`Self::write_within_quota`] against the quota of the namespace in
    /// `ns_dir` (a queue granted from another namespace counts there).
    pub(crate) async fn write_within_quota_of<R: Send + 'static>(
        &mut self,
        usage: Arc<Usage>,
        ns_dir: PathBuf,
        bytes: u64,
        write: impl FnOnce() -> Result<R, Error> + Send + 'static,
    ) -> Result<R, Error> {
        let quota = self.ctx.limits.disk_quota;
        let written = blocking(move || {
            usage.reserve(&ns_dir, quota, bytes)?;
            write()
        })
        .await?;
        self.count_write(written, |_| true)
    }
}
