//! The host functions of [`bindings::sync`]: each runs the async host
//! function of the same name to its end on the calling thread
//! ([`run_inline`]), its blocking work inline. One implementation, two
//! linkers, as `wasmtime_wasi::p2` has them.

use wasmtime::component::Resource;

use crate::bindings::{self, sync, types};
use crate::ctx::MiniCtxView;
use crate::offload::run_inline;
use crate::{CursorHandle, HostError, JournalHandle, QueueHandle, SnapshotsHandle, StateHandle};

/// Implements the sync trait `$sync` for [`MiniCtxView`], each function
/// driving `$async_`'s function of the same name.
macro_rules! inline_calls {
    ($sync:path => $async_:path {
        $( fn $name:ident(&mut self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty; )*
    }) => {
        impl $sync for MiniCtxView<'_> {
            $(
                fn $name(&mut self $(, $arg: $ty)*) -> $ret {
                    run_inline(<Self as $async_>::$name(self $(, $arg)*))
                }
            )*
        }
    };
}

impl sync::store::Host for MiniCtxView<'_> {}
impl sync::snapshot::Host for MiniCtxView<'_> {}
impl sync::state::Host for MiniCtxView<'_> {}
impl sync::queue::Host for MiniCtxView<'_> {}

type Result<T> = std::result::Result<T, HostError>;

inline_calls!(sync::store::HostJournal => bindings::store::HostJournal {
    fn open(&mut self, name: String) -> Result<Resource<JournalHandle>>;
    fn append(&mut self, handle: Resource<JournalHandle>, record: String) -> Result<u64>;
    fn append_batch(&mut self, handle: Resource<JournalHandle>, records: Vec<String>) -> Result<u64>;
    fn read(&mut self, handle: Resource<JournalHandle>, from_seq: u64) -> Result<Resource<CursorHandle>>;
    fn first_seq(&mut self, handle: Resource<JournalHandle>) -> Result<u64>;
    fn last_seq(&mut self, handle: Resource<JournalHandle>) -> Result<u64>;
    fn drop(&mut self, handle: Resource<JournalHandle>) -> wasmtime::Result<()>;
});

inline_calls!(sync::store::HostCursor => bindings::store::HostCursor {
    fn next(&mut self, handle: Resource<CursorHandle>, max: u32) -> Result<Vec<types::Entry>>;
    fn next_block(&mut self, handle: Resource<CursorHandle>, max: u32, max_bytes: u32) -> Result<types::EntryBlock>;
    fn drop(&mut self, handle: Resource<CursorHandle>) -> wasmtime::Result<()>;
});

inline_calls!(sync::snapshot::HostSnapshots => bindings::snapshot::HostSnapshots {
    fn open(&mut self, name: String) -> Result<Resource<SnapshotsHandle>>;
    fn create(&mut self, handle: Resource<SnapshotsHandle>, state: String, seq: u64) -> Result<()>;
    fn restore(&mut self, handle: Resource<SnapshotsHandle>) -> Result<Option<types::Restored>>;
    fn list(&mut self, handle: Resource<SnapshotsHandle>) -> Result<Vec<types::SnapshotInfo>>;
    fn delete_older_than(&mut self, handle: Resource<SnapshotsHandle>, seq: u64) -> Result<u32>;
    fn drop(&mut self, handle: Resource<SnapshotsHandle>) -> wasmtime::Result<()>;
});

impl sync::state::HostState for MiniCtxView<'_> {
    fn open(&mut self, name: String) -> Result<Resource<StateHandle>> {
        run_inline(<Self as bindings::state::HostState>::open(self, name))
    }

    /// `recovery` holds a resource, so each bindings has its own record.
    fn recover(&mut self, handle: Resource<StateHandle>) -> Result<sync::state::Recovery> {
        let recovery = run_inline(<Self as bindings::state::HostState>::recover(self, handle))?;
        Ok(sync::state::Recovery {
            snapshot: recovery.snapshot,
            warnings: recovery.warnings,
            mutations: recovery.mutations,
        })
    }

    fn commit(&mut self, handle: Resource<StateHandle>, mutation: String) -> Result<u64> {
        run_inline(<Self as bindings::state::HostState>::commit(
            self, handle, mutation,
        ))
    }

    fn commit_batch(
        &mut self,
        handle: Resource<StateHandle>,
        mutations: Vec<String>,
    ) -> Result<u64> {
        run_inline(<Self as bindings::state::HostState>::commit_batch(
            self, handle, mutations,
        ))
    }

    fn checkpoint(
        &mut self,
        handle: Resource<StateHandle>,
        state: String,
        seq: u64,
    ) -> Result<types::CheckpointInfo> {
        run_inline(<Self as bindings::state::HostState>::checkpoint(
            self, handle, state, seq,
        ))
    }

    fn current_seq(&mut self, handle: Resource<StateHandle>) -> Result<u64> {
        run_inline(<Self as bindings::state::HostState>::current_seq(
            self, handle,
        ))
    }

    fn stats(&mut self, handle: Resource<StateHandle>) -> Result<types::StateStats> {
        run_inline(<Self as bindings::state::HostState>::stats(self, handle))
    }

    fn drop(&mut self, handle: Resource<StateHandle>) -> wasmtime::Result<()> {
        run_inline(<Self as bindings::state::HostState>::drop(self, handle))
    }
}

inline_calls!(sync::queue::HostQueue => bindings::queue::HostQueue {
    fn open(&mut self, name: String) -> Result<Resource<QueueHandle>>;
    fn push(&mut self, handle: Resource<QueueHandle>, payload: String, options: types::PushOptions) -> Result<u64>;
    fn push_batch(&mut self, handle: Resource<QueueHandle>, messages: Vec<types::PushMessage>) -> Result<Vec<u64>>;
    fn pop(&mut self, handle: Resource<QueueHandle>, lease_ms: u64) -> Result<Option<types::Message>>;
    fn pop_batch(&mut self, handle: Resource<QueueHandle>, max: u32, lease_ms: u64) -> Result<Vec<types::Message>>;
    fn pop_wait(&mut self, handle: Resource<QueueHandle>, lease_ms: u64, timeout_ms: u64) -> Result<Option<types::Message>>;
    fn ack(&mut self, handle: Resource<QueueHandle>, id: u64, token: String) -> Result<()>;
    fn ack_next(&mut self, handle: Resource<QueueHandle>, id: u64, token: String, lease_ms: u64) -> Result<Option<types::Message>>;
    fn nack(&mut self, handle: Resource<QueueHandle>, id: u64, token: String, delay_ms: u64) -> Result<()>;
    fn extend(&mut self, handle: Resource<QueueHandle>, id: u64, token: String, lease_ms: u64) -> Result<u64>;
    fn stats(&mut self, handle: Resource<QueueHandle>) -> Result<types::QueueStats>;
    fn dead_letters(&mut self, handle: Resource<QueueHandle>, from_id: u64, max: u32) -> Result<Vec<types::MessageInfo>>;
    fn requeue(&mut self, handle: Resource<QueueHandle>, ids: Option<Vec<u64>>) -> Result<u32>;
    fn purge(&mut self, handle: Resource<QueueHandle>, ids: Option<Vec<u64>>) -> Result<u32>;
    fn drop(&mut self, handle: Resource<QueueHandle>) -> wasmtime::Result<()>;
});
