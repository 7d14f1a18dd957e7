//! The host side of `mini:storage/queue-poll`: a `wasi:io` pollable that is
//! ready when a pop of the queue can find a message.

use std::sync::Arc;

use mini_engine::queue::Queue;
use wasmtime::component::Resource;
use wasmtime_wasi::p2::{DynPollable, Pollable};

use super::QueueHandle;
use super::wait::Watch;
use crate::bindings::queue_poll;
use crate::ctx::MiniCtxView;
use crate::view::HandleSlot;

/// The readiness behind a `queue-poll.subscribe` pollable. It waits on the
/// queue's change listener and on a timer for the next delay or lease to
/// end, so a waiting guest holds no thread.
struct QueueReady {
    watch: Watch,
    /// Counts against the instance's handle limit while the pollable lives.
    _slot: HandleSlot,
}

#[async_trait::async_trait]
impl Pollable for QueueReady {
    async fn ready(&mut self) {
        self.watch.ready().await;
    }
}

impl queue_poll::Host for MiniCtxView<'_> {
    fn subscribe(
        &mut self,
        handle: Resource<QueueHandle>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let queue: Arc<Queue> = self.table.get(&handle)?.queue.clone();
        // A pollable cannot return an error: past the handle limit the
        // instance traps, with the limit in the message.
        let slot = self.handle_slot().map_err(wasmtime::Error::new)?;
        let ready = self.table.push(QueueReady {
            watch: Watch::new(queue),
            _slot: slot,
        })?;
        wasmtime_wasi::p2::subscribe(self.table, ready)
    }
}
