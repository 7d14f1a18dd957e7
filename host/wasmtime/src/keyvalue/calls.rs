//! The implementation both versions of `wasi:keyvalue` call: opening a
//! bucket (name, capability, bucket count, quota), the checks of keys and
//! values, and every operation as an observed storage call.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use mini_engine::CheckpointPolicy;
use mini_engine::kv::{Bucket, BucketOptions, DEFAULT_CHECKPOINT_EVERY, KvError, Swap};
use mini_engine::layout::UnitKind;
use mini_engine::snapshot::DEFAULT_KEEP;
use mini_engine::state::{DEFAULT_STATE_SEGMENT_SIZE, StateOptions};
use wasmtime::component::Resource;

use super::{BucketHandle, CasHandle, DEFAULT_BUCKET, KeyPage, KvFailure, LIST_PAGE, SwapFailed};
use crate::HostError;
use crate::bindings::types::Error;
use crate::calls::{observed, observed_now};
use crate::ctx::MiniCtxView;
use crate::disk::preallocation;
use crate::error::{bad_handle, kv_error, quote};
use crate::limits::wide;
use crate::offload::blocking;
use crate::view::{Admission, LINE_OVERHEAD, check_name};

/// A key and its value, as `get-many` returns them (none: no value).
type Pair = Option<(String, Vec<u8>)>;

/// The stored size of `value` at most: base64 for bytes that are not text.
fn stored_len(value: &[u8]) -> u64 {
    (value.len() as u64).div_ceil(3) * 4
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

    /// The bucket of `handle`, borrowed (a read needs no clone of it).
    fn held_bucket(&self, handle: &Resource<BucketHandle>) -> Result<&BucketHandle, Error> {
        self.table.get(handle).map_err(|e| bad_handle("bucket", e))
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
        work: impl FnOnce(&Bucket) -> Result<R, KvError> + Send + 'static,
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

    pub(crate) fn kv_get(
        &mut self,
        handle: Resource<BucketHandle>,
        key: String,
    ) -> Result<Option<Vec<u8>>, HostError> {
        observed_now!(self, "keyvalue", "get", self.unit_of(&handle), {
            self.check_key(&key)?;
            Ok(self.held_bucket(&handle)?.bucket.get(&key))
        })
    }

    pub(crate) fn kv_exists(
        &mut self,
        handle: Resource<BucketHandle>,
        key: String,
    ) -> Result<bool, HostError> {
        observed_now!(self, "keyvalue", "exists", self.unit_of(&handle), {
            self.check_key(&key)?;
            Ok(self.held_bucket(&handle)?.bucket.exists(&key))
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
    pub(crate) fn kv_list(
        &mut self,
        handle: Resource<BucketHandle>,
        after: Option<String>,
    ) -> Result<KeyPage, HostError> {
        observed_now!(self, "keyvalue", "list-keys", self.unit_of(&handle), {
            let mut keys = self
                .held_bucket(&handle)?
                .bucket
                .list_keys(after.as_deref(), LIST_PAGE + 1);
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

    pub(crate) fn kv_cas_new(
        &mut self,
        handle: Resource<BucketHandle>,
        key: String,
    ) -> Result<Resource<CasHandle>, HostError> {
        observed_now!(self, "keyvalue", "cas.new", self.unit_of(&handle), {
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

    pub(crate) fn kv_cas_current(
        &mut self,
        cas: Resource<CasHandle>,
    ) -> Result<Option<Vec<u8>>, HostError> {
        observed_now!(self, "keyvalue", "cas.current", self.unit_of(&cas), {
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

    pub(crate) fn kv_get_many(
        &mut self,
        handle: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> Result<Vec<Pair>, HostError> {
        observed_now!(self, "keyvalue", "get-many", self.unit_of(&handle), {
            for key in &keys {
                self.check_key(key)?;
            }
            // Distinct keys never return more than the bucket holds; only a
            // key asked for many times could make the host hold more.
            let limit = wide(self.ctx.limits.max_state_size);
            let held = self.held_bucket(&handle)?;
            let values = held
                .bucket
                .get_many_within(&keys, limit)
                .map_err(|e| kv_error(e, &held.ns_dir))?;
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
