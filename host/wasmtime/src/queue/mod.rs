//! The host side of the `mini:storage/queue` interface: durable queues in
//! `<namespace>/queue/<name>/`, or in another namespace for a queue the
//! embedder granted ([`MiniCtxBuilder::grant_queue`]).
//!
//! Instances of one process that open the same queue share one handle
//! ([`MiniHost::open_queue`]), so a producer and a worker talk through it and
//! their fsyncs are shared. A second process gets `locked`.
//!
//! [`MiniCtxBuilder::grant_queue`]: crate::MiniCtxBuilder::grant_queue
//! [`MiniHost::open_queue`]: crate::MiniHost::open_queue

use std::sync::Arc;
use std::time::Duration;

use mini_engine::layout::UnitKind;
use mini_engine::queue::{Queue, QueueOptions};
use mini_engine::state::DEFAULT_STATE_SEGMENT_SIZE;
use wasmtime::component::Resource;

use crate::HostError;
use crate::backend::local_queue::LocalQueue;
use crate::backend::{Backend, QueueBackend};
use crate::bindings::queue;
use crate::bindings::types::{self, Error, Message, QueueStats as Stats};
use crate::calls::{UnitName, observed};
use crate::ctx::MiniCtxView;
use crate::disk::preallocation;
use crate::error::{bad_handle, queue_error};
use crate::offload::blocking;
use crate::view::Admission;

#[cfg(feature = "wasi")]
mod poll;
pub(crate) mod wait;

/// The longest `pop-wait` a guest can ask for (it waits without holding a
/// thread, and the instance's time limit holds while it waits).
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// The most messages one `pop-batch` or `dead-letters` returns.
pub const MAX_BATCH: usize = 1024;
/// `pop-batch` and `dead-letters` stop before the payloads they return pass
/// this many bytes (one message always comes): what one call makes the host
/// hold for the guest is bounded, whatever the guest asks.
pub const MAX_BYTES_PER_CALL: usize = 4 * 1024 * 1024;

/// A queue held by a guest: the `queue` resource of the WIT.
#[derive(Debug)]
pub struct QueueHandle {
    queue: Arc<dyn QueueBackend>,
    /// The engine's queue, on the local backend.
    local: Option<Arc<Queue>>,
    name: String,
}

impl UnitName for QueueHandle {
    fn unit_name(&self) -> Option<&str> {
        Some(&self.name)
    }
}

impl QueueHandle {
    /// The queue's name, as the guest opened it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The engine's queue behind the handle, on the local backend (`None`
    /// on JetStream).
    pub fn queue(&self) -> Option<&Queue> {
        self.local.as_deref()
    }
}

impl MiniCtxView<'_> {
    fn queue_of(&self, handle: &Resource<QueueHandle>) -> Result<Arc<dyn QueueBackend>, Error> {
        self.table
            .get(handle)
            .map(|h| h.queue.clone())
            .map_err(|e| bad_handle("queue", e))
    }

    /// Runs `call` on the queue of `handle`; counted as a write of the
    /// instance when `wrote` says its result changed the queue.
    async fn change_queue<R, F>(
        &mut self,
        handle: &Resource<QueueHandle>,
        call: impl FnOnce(&dyn QueueBackend) -> F,
        wrote: impl FnOnce(&R) -> bool,
    ) -> Result<R, Error>
    where
        F: std::future::Future<Output = Result<R, Error>>,
    {
        let queue = self.queue_of(handle)?;
        let result = call(queue.as_ref()).await;
        self.count_write(result, wrote)
    }

    /// Pushes after checking sizes; the backend reserves the quota.
    async fn push_messages(
        &mut self,
        handle: &Resource<QueueHandle>,
        messages: Vec<types::PushMessage>,
    ) -> Result<Vec<u64>, Error> {
        if messages.is_empty() {
            return Err(Error::InvalidRecord("empty batch".into()));
        }
        let bytes = self.check_record_sizes(messages.iter().map(|m| &m.payload))?;
        self.change_queue(handle, |q| q.push(messages, bytes), |_| true)
            .await
    }

    async fn open_queue(&mut self, name: String) -> Result<Resource<QueueHandle>, Error> {
        let (queue, local): (Arc<dyn QueueBackend>, _) = match self.ctx.host.backend() {
            Backend::Local => {
                let local = self.open_local_queue(&name).await?;
                let engine = local.queue().clone();
                (Arc::new(local), Some(engine))
            }
            #[cfg(feature = "jetstream")]
            Backend::JetStream(_) => {
                let backend = self.admit_remote(UnitKind::Queue, &name)?;
                let queue = crate::backend::jetstream_queue::open_queue(
                    &backend,
                    self.ctx.queue_namespace(&name),
                    &name,
                    self.ctx.limits.max_streams,
                    self.ctx.limits.disk_quota,
                )
                .await?;
                (Arc::new(queue), None)
            }
        };
        self.push_handle(QueueHandle { queue, local, name })
    }

    async fn open_local_queue(&mut self, name: &str) -> Result<LocalQueue, Error> {
        let Admission { dir, ns_dir, usage } = self.admit(UnitKind::Queue, name).await?;
        let host = self.ctx.host.clone();
        let options = QueueOptions {
            max_payload_size: self.ctx.limits.max_record_size,
            max_snapshot_size: self.ctx.limits.max_state_size,
            // Small segments let compaction keep the files bounded by the
            // live messages, not by the history.
            segment_size: self.ctx.limits.segment_size.min(DEFAULT_STATE_SEGMENT_SIZE),
            preallocate: preallocation(self.ctx.limits.disk_quota),
            fs: self.ctx.fs.clone(),
            clock: self.ctx.clock.clone(),
            ..QueueOptions::default()
        };
        let hide = ns_dir.clone();
        let queue = blocking(move || {
            host.open_queue(&dir, options)
                .map_err(|e| queue_error(e, &hide))
        })
        .await??;
        Ok(LocalQueue::new(
            queue,
            ns_dir,
            usage,
            self.ctx.limits.disk_quota,
        ))
    }
}

/// `max` as the most one call returns.
fn bounded(max: u32) -> usize {
    usize::try_from(max).unwrap_or(MAX_BATCH).min(MAX_BATCH)
}

impl queue::Host for MiniCtxView<'_> {}

impl queue::HostQueue for MiniCtxView<'_> {
    async fn open(&mut self, name: String) -> Result<Resource<QueueHandle>, HostError> {
        observed!(self, "queue", "open", Some(name.clone()), {
            Ok(self.open_queue(name).await?)
        })
    }

    async fn push(
        &mut self,
        handle: Resource<QueueHandle>,
        payload: String,
        options: types::PushOptions,
    ) -> Result<u64, HostError> {
        observed!(self, "queue", "push", self.unit_of(&handle), {
            let ids = self
                .push_messages(&handle, vec![types::PushMessage { payload, options }])
                .await?;
            let id = ids.first().copied();
            Ok(id.ok_or_else(|| Error::Other("the host pushed nothing".into()))?)
        })
    }

    async fn push_batch(
        &mut self,
        handle: Resource<QueueHandle>,
        messages: Vec<types::PushMessage>,
    ) -> Result<Vec<u64>, HostError> {
        observed!(self, "queue", "push-batch", self.unit_of(&handle), {
            Ok(self.push_messages(&handle, messages).await?)
        })
    }

    async fn pop(
        &mut self,
        handle: Resource<QueueHandle>,
        lease_ms: u64,
    ) -> Result<Option<Message>, HostError> {
        observed!(self, "queue", "pop", self.unit_of(&handle), {
            Ok(self
                .change_queue(
                    &handle,
                    |q| {
                        let popped = q.pop_batch(1, lease_ms);
                        async move { Ok(popped.await?.pop()) }
                    },
                    Option::is_some,
                )
                .await?)
        })
    }

    async fn pop_batch(
        &mut self,
        handle: Resource<QueueHandle>,
        max: u32,
        lease_ms: u64,
    ) -> Result<Vec<Message>, HostError> {
        observed!(self, "queue", "pop-batch", self.unit_of(&handle), {
            Ok(self
                .change_queue(
                    &handle,
                    |q| q.pop_batch(bounded(max), lease_ms),
                    |popped: &Vec<Message>| !popped.is_empty(),
                )
                .await?)
        })
    }

    async fn pop_wait(
        &mut self,
        handle: Resource<QueueHandle>,
        lease_ms: u64,
        timeout_ms: u64,
    ) -> Result<Option<Message>, HostError> {
        observed!(self, "queue", "pop-wait", self.unit_of(&handle), {
            let timeout = Duration::from_millis(timeout_ms).min(MAX_WAIT);
            let stop = self.ctx.stop.clone();
            Ok(self
                .change_queue(
                    &handle,
                    |q| q.pop_wait(lease_ms, timeout, stop),
                    Option::is_some,
                )
                .await?)
        })
    }

    async fn ack(
        &mut self,
        handle: Resource<QueueHandle>,
        id: u64,
        token: String,
    ) -> Result<(), HostError> {
        observed!(self, "queue", "ack", self.unit_of(&handle), {
            Ok(self
                .change_queue(&handle, |q| q.ack(id, token), |_| true)
                .await?)
        })
    }

    async fn ack_next(
        &mut self,
        handle: Resource<QueueHandle>,
        id: u64,
        token: String,
        lease_ms: u64,
    ) -> Result<Option<Message>, HostError> {
        observed!(self, "queue", "ack-next", self.unit_of(&handle), {
            Ok(self
                .change_queue(
                    &handle,
                    |q| q.ack_next(id, token, lease_ms),
                    // The ack is written even when no next message comes.
                    |_| true,
                )
                .await?)
        })
    }

    async fn nack(
        &mut self,
        handle: Resource<QueueHandle>,
        id: u64,
        token: String,
        delay_ms: u64,
    ) -> Result<(), HostError> {
        observed!(self, "queue", "nack", self.unit_of(&handle), {
            Ok(self
                .change_queue(&handle, |q| q.nack(id, token, delay_ms), |_| true)
                .await?)
        })
    }

    async fn extend(
        &mut self,
        handle: Resource<QueueHandle>,
        id: u64,
        token: String,
        lease_ms: u64,
    ) -> Result<u64, HostError> {
        observed!(self, "queue", "extend", self.unit_of(&handle), {
            Ok(self
                .change_queue(&handle, |q| q.extend(id, token, lease_ms), |_| true)
                .await?)
        })
    }

    async fn stats(&mut self, handle: Resource<QueueHandle>) -> Result<Stats, HostError> {
        observed!(self, "queue", "stats", self.unit_of(&handle), {
            Ok(self.change_queue(&handle, |q| q.stats(), |_| false).await?)
        })
    }

    async fn dead_letters(
        &mut self,
        handle: Resource<QueueHandle>,
        from_id: u64,
        max: u32,
    ) -> Result<Vec<types::MessageInfo>, HostError> {
        observed!(self, "queue", "dead-letters", self.unit_of(&handle), {
            Ok(self
                .change_queue(
                    &handle,
                    |q| q.dead_letters(from_id, bounded(max)),
                    |_| false,
                )
                .await?)
        })
    }

    async fn requeue(
        &mut self,
        handle: Resource<QueueHandle>,
        ids: Option<Vec<u64>>,
    ) -> Result<u32, HostError> {
        observed!(self, "queue", "requeue", self.unit_of(&handle), {
            Ok(self
                .change_queue(&handle, |q| q.requeue(ids), |n| *n > 0)
                .await?)
        })
    }

    async fn purge(
        &mut self,
        handle: Resource<QueueHandle>,
        ids: Option<Vec<u64>>,
    ) -> Result<u32, HostError> {
        observed!(self, "queue", "purge", self.unit_of(&handle), {
            Ok(self
                .change_queue(&handle, |q| q.purge(ids), |n| *n > 0)
                .await?)
        })
    }

    async fn drop(&mut self, handle: Resource<QueueHandle>) -> wasmtime::Result<()> {
        self.drop_handle(handle);
        Ok(())
    }
}
