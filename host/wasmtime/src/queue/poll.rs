//! The host side of `mini:storage/queue-poll`: a `wasi:io` pollable that is
//! ready when a pop of the queue can find a message.

use wasmtime::component::Resource;
use wasmtime_wasi::p2::{DynPollable, Pollable};

use super::QueueHandle;
use crate::backend::BoxFuture;
use crate::bindings::queue_poll;
use crate::ctx::MiniCtxView;
use crate::view::HandleSlot;

/// The readiness behind a `queue-poll.subscribe` pollable: the backend's
/// wait (on the local engine, the queue's change listener and a timer for
/// the next delay or lease to end; on JetStream, fetches the servers hold
/// open), so a waiting guest holds no thread.
struct QueueReady {
    queue: std::sync::Arc<dyn crate::backend::QueueBackend>,
    /// The backend's wait, kept across the guest's checks (a check polls
    /// it once): on JetStream it is a fetch the servers hold open.
    wait: Option<BoxFuture<()>>,
    /// Counts against the instance's handle limit while the pollable lives.
    _slot: HandleSlot,
}

#[async_trait::async_trait]
impl Pollable for QueueReady {
    async fn ready(&mut self) {
        let queue = &self.queue;
        self.wait.get_or_insert_with(|| queue.ready()).await;
        // Ended: the next check waits anew (on the local engine a pop may
        // have taken the message; on JetStream it is held for this
        // handle's next pop, so the new wait ends at once).
        self.wait = None;
    }
}

impl queue_poll::Host for MiniCtxView<'_> {
    fn subscribe(
        &mut self,
        handle: Resource<QueueHandle>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let queue = self.table.get(&handle)?.queue.clone();
        // A pollable cannot return an error: past the handle limit the
        // instance traps, with the limit in the message.
        let slot = self.handle_slot().map_err(wasmtime::Error::new)?;
        let ready = self.table.push(QueueReady {
            queue,
            wait: None,
            _slot: slot,
        })?;
        wasmtime_wasi::p2::subscribe(self.table, ready)
    }
}
