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

/// The parts of both versions' bindings that are the same: `store`'s
/// `open` and error, and `batch`, for the bindings whose `store` and
/// `batch` are in scope; `$kw` and `$finish` as in the version macros.
macro_rules! store_and_batch_host {
    ([$($kw:tt)?], $finish:ident) => {
        fn store_error(failure: KvFailure) -> store::Error {
            match failure {
                KvFailure::NoSuchStore => store::Error::NoSuchStore,
                KvFailure::AccessDenied => store::Error::AccessDenied,
                KvFailure::Other(text) => store::Error::Other(text),
            }
        }

        impl store::Host for MiniCtxView<'_> {
            $($kw)? fn open(&mut self, identifier: String) -> Result<Resource<BucketHandle>, HostError> {
                $finish!(self.kv_open(identifier))
            }

            fn convert_error(&mut self, err: HostError) -> wasmtime::Result<store::Error> {
                Ok(store_error(self.kv_failure(err)?))
            }
        }

        impl batch::Host for MiniCtxView<'_> {
            fn get_many(&mut self, bucket: Resource<BucketHandle>, keys: Vec<String>) -> Result<Vec<Option<(String, Vec<u8>)>>, HostError> {
                self.kv_get_many(bucket, keys)
            }

            $($kw)? fn set_many(&mut self, bucket: Resource<BucketHandle>, key_values: Vec<(String, Vec<u8>)>) -> Result<(), HostError> {
                $finish!(self.kv_set_many(bucket, key_values))
            }

            $($kw)? fn delete_many(&mut self, bucket: Resource<BucketHandle>, keys: Vec<String>) -> Result<(), HostError> {
                $finish!(self.kv_delete_many(bucket, keys))
            }
        }
    };
}

mod calls;
mod draft;
mod draft2;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use mini_engine::kv::{Bucket, Observed};
use wasmtime::component::{Linker, Resource};

use crate::Mini;
use crate::bindings::types::Error;
use crate::calls::UnitName;
use crate::ctx::MiniView;
use crate::error::error_text;

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
