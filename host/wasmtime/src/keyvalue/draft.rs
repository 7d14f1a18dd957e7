//! `wasi:keyvalue@0.2.0-draft` (async and sync) on the implementation in
//! [`super`]: its `list-keys` cursor is a `u64`, its `increment` unsigned.
//!
//! A `u64` cursor stands for the last key of the page it follows: the
//! bucket handle remembers the newest [`MAX_CURSORS`] it handed out, so a
//! listing keeps the same guarantee as with `0.2.0-draft2`'s string
//! cursors. A cursor it does not know (made up, or older than that) is an
//! error, never a silent restart.

use wasmtime::component::Resource;

use super::bindings::draft;
use super::{BucketHandle, KvFailure, MAX_CURSORS};
use crate::HostError;
use crate::bindings::types::Error;
use crate::ctx::MiniCtxView;

impl MiniCtxView<'_> {
    /// The key the page after `cursor` starts after.
    fn cursor_key(
        &mut self,
        bucket: &Resource<BucketHandle>,
        cursor: Option<u64>,
    ) -> Result<Option<String>, Error> {
        let Some(cursor) = cursor else {
            return Ok(None);
        };
        let held = self.bucket_handle(bucket)?;
        held.cursors
            .iter()
            .find(|(id, _)| *id == cursor)
            .map(|(_, key)| Some(key.clone()))
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "the cursor {cursor} is not one this bucket handle returned (it keeps its {MAX_CURSORS} newest)"
                ))
            })
    }

    /// A new cursor for the page after `key`.
    fn new_cursor(&mut self, bucket: &Resource<BucketHandle>, key: String) -> Result<u64, Error> {
        let held = self.bucket_handle(bucket)?;
        let id = held.next_cursor;
        held.next_cursor += 1;
        if held.cursors.len() == MAX_CURSORS {
            held.cursors.pop_front();
        }
        held.cursors.push_back((id, key));
        Ok(id)
    }
}

fn signed(delta: u64) -> Result<i64, HostError> {
    i64::try_from(delta).map_err(|_| {
        Error::OutOfRange(format!(
            "an increment of {delta} is past the largest value, {}",
            i64::MAX
        ))
        .into()
    })
}

fn unsigned(value: i64) -> Result<u64, HostError> {
    u64::try_from(value).map_err(|_| {
        Error::OutOfRange(format!(
            "the value is {value}, which an unsigned increment cannot return"
        ))
        .into()
    })
}

/// Implements the traits of the bindings `$m` for [`MiniCtxView`], as in
/// `draft2`.
macro_rules! draft_host {
    ($m:path, [$($kw:tt)?], $finish:ident) => {
        const _: () = {
            use $m as m;
            use m::{atomics, batch, store};

            store_and_batch_host!([$($kw)?], $finish);

            impl store::HostBucket for MiniCtxView<'_> {
                fn get(&mut self, bucket: Resource<BucketHandle>, key: String) -> Result<Option<Vec<u8>>, HostError> {
                    self.kv_get(bucket, key)
                }

                $($kw)? fn set(&mut self, bucket: Resource<BucketHandle>, key: String, value: Vec<u8>) -> Result<(), HostError> {
                    $finish!(self.kv_set(bucket, key, value))
                }

                $($kw)? fn delete(&mut self, bucket: Resource<BucketHandle>, key: String) -> Result<(), HostError> {
                    $finish!(self.kv_delete(bucket, key))
                }

                fn exists(&mut self, bucket: Resource<BucketHandle>, key: String) -> Result<bool, HostError> {
                    self.kv_exists(bucket, key)
                }

                fn list_keys(&mut self, bucket: Resource<BucketHandle>, cursor: Option<u64>) -> Result<store::KeyResponse, HostError> {
                    let after = self.cursor_key(&bucket, cursor)?;
                    let page = self.kv_list(Resource::new_borrow(bucket.rep()), after)?;
                    let cursor = match page.next_after {
                        Some(key) => Some(self.new_cursor(&bucket, key)?),
                        None => None,
                    };
                    Ok(store::KeyResponse { keys: page.keys, cursor })
                }

                $($kw)? fn drop(&mut self, bucket: Resource<BucketHandle>) -> wasmtime::Result<()> {
                    self.drop_handle(bucket);
                    Ok(())
                }
            }

            impl atomics::Host for MiniCtxView<'_> {
                $($kw)? fn increment(&mut self, bucket: Resource<BucketHandle>, key: String, delta: u64) -> Result<u64, HostError> {
                    let delta = signed(delta)?;
                    unsigned($finish!(self.kv_increment(bucket, key, delta))?)
                }
            }
        };
    };
}

draft_host!(draft, [async], awaited);
draft_host!(draft::sync, [], ran_inline);
