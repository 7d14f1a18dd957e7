//! The host side of the standard `wasi:keyvalue` interfaces (`store`,
//! `atomics`, `batch`), versions `0.2.0-draft2` and `0.2.0-draft`, served
//! by one implementation on the engine's buckets ([`mini_engine::kv`]), in
//! `<namespace>/bucket/<name>/`.
//!
//! What a guest gets, beyond what the proposal requires:
//!
//! * **Durable writes**: every `set`, `delete`, `increment`, `swap`,
//!   `set-many` and `delete-many` is fsync'd before it returns. Instances of
//!   one [`MiniHost`](crate::MiniHost) that write one bucket share its
//!   handle and its fsyncs.
//! * **Linearizable operations**: a read sees every write that returned,
//!   from any instance of the host; `increment` and `swap` are atomic with
//!   respect to every other operation on the key, and a swap fails on a
//!   value that changed and changed back (no ABA).
//! * **Atomic batches**: `set-many` and `delete-many` are all or nothing,
//!   after a crash too.
//! * **Stable listings**: `list-keys` pages through the keys in order, and
//!   a key present for the whole listing is returned exactly once.
//!
//! Buckets are names in the instance's namespace, checked like every other
//! name; `open("")` opens the bucket named [`DEFAULT_BUCKET`]. A name that
//! is not a valid name is `no-such-store`; with a manifest, a bucket not
//! granted is `access-denied`. Every other failure is `other`, its text
//! starting with the kind of failure (`quota: …`, `io: …`,
//! `invalid-argument: …`). Keys are at most [`Limits::max_key_size`]
//! bytes, values at most [`Limits::max_record_size`], a bucket's contents
//! at most what a snapshot may hold ([`Limits::max_state_size`]), and a
//! namespace holds at most [`Limits::max_buckets`] buckets; every write
//! counts against the disk quota.
//!
//! [`Limits::max_key_size`]: crate::Limits::max_key_size
//! [`Limits::max_record_size`]: crate::Limits::max_record_size
//! [`Limits::max_state_size`]: crate::Limits::max_state_size
//! [`Limits::max_buckets`]: crate::Limits::max_buckets

pub mod bindings;

/// `$future.await`: how an async host function finishes the
/// implementation's future.
macro_rules! awaited {
    ($future:expr) => {
        $future.await
    };
}

/// The implementation's future run to its end on this thread: how a sync
/// host function finishes it.
macro_rules! ran_inline {
    ($future:expr) => {
        crate::offload::run_inline($future)
    };
}

mod draft;
mod draft2;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use mini_engine::CheckpointPolicy;
use mini_engine::kv::{Bucket, BucketOptions, DEFAULT_CHECKPOINT_EVERY, Observed, Swap};
use mini_engine::layout::{UnitKind, unit_names};
use mini_engine::snapshot::DEFAULT_KEEP;
use mini_engine::state::{DEFAULT_STATE_SEGMENT_SIZE, StateOptions};
use wasmtime::component::{Linker, Resource};

use crate::bindings::types::Error;
use crate::calls::{UnitName, observed};
use crate::ctx::{MiniCtxView, MiniView};
use crate::disk::preallocation;
use crate::error::{bad_handle, error_text, kv_error, quote};
use crate::offload::blocking;
use crate::view::{Admission, LINE_OVERHEAD, check_name};
use crate::{HostError, Mini};

/// The bucket `open("")` opens.
pub const DEFAULT_BUCKET: &str = "default";
/// The most keys one `list-keys` returns.
pub const LIST_PAGE: usize = 1000;
/// How many `0.2.0-draft` cursors a bucket handle remembers (the newest).
const MAX_CURSORS: usize = 16;

/// A bucket opened by a guest: the `bucket` resource of both versions.
#[derive(Debug)]
pub struct BucketHandle {
    bucket: Arc<Bucket>,
    name: String,
    ns_dir: PathBuf,
    /// `0.2.0-draft`'s `u64` cursors: each stands for the last key of the
    /// page it follows.
    cursors: VecDeque<(u64, String)>,
    next_cursor: u64,
}

impl BucketHandle {
    /// The bucket's name inside the namespace.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The engine's bucket behind the handle.
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }
}

impl UnitName for BucketHandle {
    fn unit_name(&self) -> Option<&str> {
        Some(&self.name)
    }
}

/// A compare-and-swap under way: the `cas` resource of `0.2.0-draft2`. It
/// holds the key's value as it was read, and what the swap checks.
#[derive(Debug)]
pub struct CasHandle {
    bucket: Arc<Bucket>,
    name: String,
    ns_dir: PathBuf,
    key: String,
    seen: Observed,
}

impl UnitName for CasHandle {
    fn unit_name(&self) -> Option<&str> {
        Some(&self.name)
    }
}

/// One page of a listing: its keys, and the key the next page starts
/// after (none: this was the last page).
#[derive(Debug)]
pub(crate) struct KeyPage {
    pub keys: Vec<String>,
    pub next_after: Option<String>,
}

/// What a swap that did not happen leaves: a new CAS handle, at the key's
/// value as it is now.
pub(crate) struct SwapFailed(pub Resource<CasHandle>);

fn wide(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The stored size of `value` at most: base64 for bytes that are not text.
fn stored_len(value: &[u8]) -> u64 {
    (value.len() as u64).div_ceil(3) * 4
}

/// Adds both versions of `wasi:keyvalue` to `linker`, with async host
/// functions (what [`crate::add_to_linker_async`] adds them with).
pub fn add_to_linker_async<T: MiniView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    use bindings::{draft, draft2};
    draft2::store::add_to_linker::<T, Mini>(linker, T::mini)?;
    draft2::atomics::add_to_linker::<T, Mini>(linker, T::mini)?;
    draft2::batch::add_to_linker::<T, Mini>(linker, T::mini)?;
    draft::store::add_to_linker::<T, Mini>(linker, T::mini)?;
    draft::atomics::add_to_linker::<T, Mini>(linker, T::mini)?;
    draft::batch::add_to_linker::<T, Mini>(linker, T::mini)
}

/// Adds both versions of `wasi:keyvalue` to `linker`, with blocking host
/// functions (what [`crate::add_to_linker_sync`] adds them with).
pub fn add_to_linker_sync<T: MiniView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    use bindings::{draft, draft2};
    draft2::sync::store::add_to_linker::<T, Mini>(linker, T::mini)?;
    draft2::sync::atomics::add_to_linker::<T, Mini>(linker, T::mini)?;
    draft2::sync::batch::add_to_linker::<T, Mini>(linker, T::mini)?;
    draft::sync::store::add_to_linker::<T, Mini>(linker, T::mini)?;
    draft::sync::atomics::add_to_linker::<T, Mini>(linker, T::mini)?;
    draft::sync::batch::add_to_linker::<T, Mini>(linker, T::mini)
}

/// `wasi:keyvalue`'s three errors from mini's: the refusal of a capability
/// is `access-denied`, a bucket that cannot exist `no-such-store`, the
/// rest `other` with the kind of failure first.
pub(crate) enum KvFailure {
    NoSuchStore,
    /// The refusal's text is logged; the proposal's case carries none.
    AccessDenied,
    Other(String),
}

impl From<Error> for KvFailure {
    fn from(err: Error) -> KvFailure {
        match err {
            Error::AccessDenied(_) => KvFailure::AccessDenied,
            Error::NotFound(_) => KvFailure::NoSuchStore,
            other => KvFailure::Other(error_text(&other)),
        }
    }
}

impl MiniCtxView<'_> {
    /// The guest's error for `err` (logged, as every error a guest gets),
    /// or the trap it is.
    pub(crate) fn kv_failure(&mut self, err: HostError) -> wasmtime::Result<KvFailure> {
        let err = <Self as crate::bindings::types::Host>::convert_error(self, err)?;
        Ok(KvFailure::from(err))
    }

    fn bucket_of(&self, handle: &Resource<BucketHandle>) -> Result<(Arc<Bucket>, PathBuf), Error> {
        self.table
            .get(handle)
            .map(|h| (h.bucket.clone(), h.ns_dir.clone()))
            .map_err(|e| bad_handle("bucket", e))
    }

    pub(crate) fn bucket_handle(
        &mut self,
        handle: &Resource<BucketHandle>,
    ) -> Result<&mut BucketHandle, Error> {
        self.table
            .get_mut(handle)
            .map_err(|e| bad_handle("bucket", e))
    }

    fn check_key(&self, key: &str) -> Result<(), Error> {
        let limit = self.ctx.limits.max_key_size;
        if key.len() > limit {
            return Err(Error::InvalidArgument(format!(
                "the key {} is {} bytes: keys may be at most {limit} bytes",
                quote(key),
                key.len()
            )));
        }
        Ok(())
    }

    /// The bytes the record setting `key` to `value` takes at most, or why
    /// it may not be stored.
    fn check_pair(&self, key: &str, value: &[u8]) -> Result<u64, Error> {
        self.check_key(key)?;
        let limit = self.ctx.limits.max_record_size;
        if value.len() > limit {
            return Err(Error::InvalidArgument(format!(
                "the value of {} is {} bytes: values may be at most {limit} bytes",
                quote(key),
                value.len()
            )));
        }
        Ok(key.len() as u64 + stored_len(value) + LINE_OVERHEAD)
    }

    /// Runs the write `work` on the bucket of `handle` off the executor,
    /// within the disk quota for `bytes`.
    async fn write_bucket<R: Send + 'static>(
        &mut self,
        handle: &Resource<BucketHandle>,
        bytes: u64,
        work: impl FnOnce(&Bucket) -> Result<R, mini_engine::kv::KvError> + Send + 'static,
    ) -> Result<R, Error> {
        let (bucket, ns_dir) = self.bucket_of(handle)?;
        self.write_within_quota(bytes, move || {
            work(&bucket).map_err(|e| kv_error(e, &ns_dir))
        })
        .await
    }

    async fn open_bucket(&mut self, name: String) -> Result<Resource<BucketHandle>, Error> {
        if let Err(Error::InvalidName(why)) = check_name(&name) {
            return Err(Error::NotFound(format!("no such bucket: {why}")));
        }
        let ns_dir = self.ctx.namespace_dir.clone();
        let max = self.ctx.limits.max_buckets;
        let name_ = name.clone();
        blocking(move || {
            let held = unit_names(&ns_dir, UnitKind::Bucket)
                .map_err(|e| Error::Io(format!("cannot list the namespace's buckets: {e}")))?;
            if held.len() >= max && !held.contains(&name_) {
                return Err(Error::Quota(format!(
                    "cannot create the bucket {}: the namespace holds {} buckets, its limit",
                    quote(&name_),
                    held.len()
                )));
            }
            Ok(())
        })
        .await??;
        let Admission { dir, ns_dir, .. } = self.admit(UnitKind::Bucket, &name).await?;
        let limits = &self.ctx.limits;
        let options = BucketOptions {
            state: StateOptions {
                segment_size: limits.segment_size.min(DEFAULT_STATE_SEGMENT_SIZE),
                // A record is a key (escaped at most 6 bytes a byte) and a
                // value (base64 at most).
                max_record_size: (limits.max_record_size / 3 + 1) * 4
                    + 6 * limits.max_key_size
                    + 64,
                preallocate: preallocation(limits.disk_quota),
                max_state_size: limits.max_state_size,
                keep_snapshots: DEFAULT_KEEP,
                checkpoint: CheckpointPolicy::default(),
                fs: self.ctx.fs.clone(),
            },
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
        };
        let host = self.ctx.host.clone();
        let hide = ns_dir.clone();
        let bucket = blocking(move || {
            host.open_bucket(&dir, options)
                .map_err(|e| kv_error(e, &hide))
        })
        .await??;
        self.push_handle(BucketHandle {
            bucket,
            name,
            ns_dir,
            cursors: VecDeque::new(),
            next_cursor: 1,
        })
    }

    pub(crate) async fn kv_open(
        &mut self,
        identifier: String,
    ) -> Result<Resource<BucketHandle>, HostError> {
        let name = if identifier.is_empty() {
            DEFAULT_BUCKET.to_owned()
        } else {
            identifier
        };
        observed!(self, "keyvalue", "open", Some(name.clone()), {
            Ok(self.open_bucket(name).await?)
        })
    }

    pub(crate) async fn kv_get(
        &mut self,
        handle: Resource<BucketHandle>,
        key: String,
    ) -> Result<Option<Vec<u8>>, HostError> {
        observed!(self, "keyvalue", "get", self.unit_of(&handle), {
            self.check_key(&key)?;
            Ok(self.bucket_of(&handle)?.0.get(&key))
        })
    }

    pub(crate) async fn kv_exists(
        &mut self,
        handle: Resource<BucketHandle>,
        key: String,
    ) -> Result<bool, HostError> {
        observed!(self, "keyvalue", "exists", self.unit_of(&handle), {
            self.check_key(&key)?;
            Ok(self.bucket_of(&handle)?.0.exists(&key))
        })
    }

    pub(crate) async fn kv_set(
        &mut self,
        handle: Resource<BucketHandle>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), HostError> {
        observed!(self, "keyvalue", "set", self.unit_of(&handle), {
            let bytes = self.check_pair(&key, &value)?;
            Ok(self
                .write_bucket(&handle, bytes, move |b| b.set(&key, &value))
                .await?)
        })
    }

    pub(crate) async fn kv_delete(
        &mut self,
        handle: Resource<BucketHandle>,
        key: String,
    ) -> Result<(), HostError> {
        observed!(self, "keyvalue", "delete", self.unit_of(&handle), {
            self.check_key(&key)?;
            let bytes = key.len() as u64 + LINE_OVERHEAD;
            Ok(self
                .write_bucket(&handle, bytes, move |b| b.delete(&key))
                .await?)
        })
    }

    /// Up to [`LIST_PAGE`] keys after `after`, in order.
    pub(crate) async fn kv_list(
        &mut self,
        handle: Resource<BucketHandle>,
        after: Option<String>,
    ) -> Result<KeyPage, HostError> {
        observed!(self, "keyvalue", "list-keys", self.unit_of(&handle), {
            let bucket = self.bucket_of(&handle)?.0;
            let mut keys = bucket.list_keys(after.as_deref(), LIST_PAGE + 1);
            let next_after = if keys.len() > LIST_PAGE {
                keys.truncate(LIST_PAGE);
                keys.last().cloned()
            } else {
                None
            };
            Ok(KeyPage { keys, next_after })
        })
    }

    pub(crate) async fn kv_increment(
        &mut self,
        handle: Resource<BucketHandle>,
        key: String,
        delta: i64,
    ) -> Result<i64, HostError> {
        observed!(self, "keyvalue", "increment", self.unit_of(&handle), {
            self.check_key(&key)?;
            let bytes = key.len() as u64 + 20 + LINE_OVERHEAD;
            Ok(self
                .write_bucket(&handle, bytes, move |b| b.increment(&key, delta))
                .await?)
        })
    }

    pub(crate) async fn kv_cas_new(
        &mut self,
        handle: Resource<BucketHandle>,
        key: String,
    ) -> Result<Resource<CasHandle>, HostError> {
        observed!(self, "keyvalue", "cas.new", self.unit_of(&handle), {
            self.check_key(&key)?;
            let held = self
                .table
                .get(&handle)
                .map_err(|e| bad_handle("bucket", e))?;
            let cas = CasHandle {
                seen: held.bucket.observe(&key),
                bucket: held.bucket.clone(),
                name: held.name.clone(),
                ns_dir: held.ns_dir.clone(),
                key,
            };
            Ok(self.push_handle(cas)?)
        })
    }

    pub(crate) async fn kv_cas_current(
        &mut self,
        cas: Resource<CasHandle>,
    ) -> Result<Option<Vec<u8>>, HostError> {
        observed!(self, "keyvalue", "cas.current", self.unit_of(&cas), {
            let held = self.table.get(&cas).map_err(|e| bad_handle("cas", e))?;
            Ok(held.seen.value.clone())
        })
    }

    /// The swap of `cas` (which it consumes): done, or a new CAS handle at
    /// the key's value as it is now.
    pub(crate) async fn kv_swap(
        &mut self,
        cas: Resource<CasHandle>,
        value: Vec<u8>,
    ) -> Result<Result<(), SwapFailed>, HostError> {
        observed!(self, "keyvalue", "swap", self.unit_of(&cas), {
            let held = self.table.delete(cas).map_err(|e| bad_handle("cas", e))?;
            self.ctx
                .open_handles
                .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            let bytes = self.check_pair(&held.key, &value)?;
            let CasHandle {
                bucket,
                name,
                ns_dir,
                key,
                seen,
            } = held;
            let (bucket_, ns_dir_, key_) = (bucket.clone(), ns_dir.clone(), key.clone());
            let swap = self
                .write_within_quota(bytes, move || {
                    bucket_
                        .compare_and_swap(&key_, seen.version, &value)
                        .map_err(|e| kv_error(e, &ns_dir_))
                })
                .await?;
            match swap {
                Swap::Swapped => Ok(Ok(())),
                Swap::Changed(now) => {
                    let retry = self.push_handle(CasHandle {
                        bucket,
                        name,
                        ns_dir,
                        key,
                        seen: now,
                    })?;
                    Ok(Err(SwapFailed(retry)))
                }
            }
        })
    }

    pub(crate) async fn kv_get_many(
        &mut self,
        handle: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, HostError> {
        observed!(self, "keyvalue", "get-many", self.unit_of(&handle), {
            for key in &keys {
                self.check_key(key)?;
            }
            let (bucket, ns_dir) = self.bucket_of(&handle)?;
            // Distinct keys never return more than the bucket holds; only a
            // key asked for many times could make the host hold more.
            let limit = wide(self.ctx.limits.max_state_size);
            let values = bucket
                .get_many_within(&keys, limit)
                .map_err(|e| kv_error(e, &ns_dir))?;
            Ok(keys
                .into_iter()
                .zip(values)
                .map(|(key, value)| value.map(|v| (key, v)))
                .collect())
        })
    }

    pub(crate) async fn kv_set_many(
        &mut self,
        handle: Resource<BucketHandle>,
        pairs: Vec<(String, Vec<u8>)>,
    ) -> Result<(), HostError> {
        observed!(self, "keyvalue", "set-many", self.unit_of(&handle), {
            let mut bytes = 0u64;
            for (key, value) in &pairs {
                bytes = bytes.saturating_add(self.check_pair(key, value)?);
            }
            Ok(self
                .write_bucket(&handle, bytes, move |b| b.set_many(&pairs))
                .await?)
        })
    }

    pub(crate) async fn kv_delete_many(
        &mut self,
        handle: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> Result<(), HostError> {
        observed!(self, "keyvalue", "delete-many", self.unit_of(&handle), {
            let mut bytes = 0u64;
            for key in &keys {
                self.check_key(key)?;
                bytes = bytes.saturating_add(key.len() as u64 + LINE_OVERHEAD);
            }
            Ok(self
                .write_bucket(&handle, bytes, move |b| b.delete_many(&keys))
                .await?)
        })
    }
}
