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

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mini_engine::layout::UnitKind;
use mini_engine::queue::{Delivery, MessageInfo, PushOptions, Queue, QueueError, QueueOptions};
use mini_engine::state::DEFAULT_STATE_SEGMENT_SIZE;
use wasmtime::component::Resource;

use crate::HostError;
use crate::bindings::queue;
use crate::bindings::types::{self, Error, Message, QueueStats as Stats};
use crate::calls::{UnitName, observed};
use crate::ctx::MiniCtxView;
use crate::disk::Usage;
use crate::disk::preallocation;
use crate::error::{bad_handle, queue_error};
use crate::offload::blocking;
use crate::view::Admission;

#[cfg(feature = "wasi")]
mod poll;
mod wait;

use wait::Watch;

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
    queue: Arc<Queue>,
    name: String,
    /// The namespace directory the queue lives in (for the quota and for
    /// hiding host paths in errors).
    ns_dir: PathBuf,
    usage: Arc<Usage>,
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

    /// The engine's queue behind the handle.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }
}

/// What a queue call needs off the executor.
struct Held {
    queue: Arc<Queue>,
    ns_dir: PathBuf,
    usage: Arc<Usage>,
}

impl MiniCtxView<'_> {
    fn queue_of(&self, handle: &Resource<QueueHandle>) -> Result<Held, Error> {
        self.table
            .get(handle)
            .map(|h| Held {
                queue: h.queue.clone(),
                ns_dir: h.ns_dir.clone(),
                usage: h.usage.clone(),
            })
            .map_err(|e| bad_handle("queue", e))
    }

    /// Runs `work` on the queue of `handle` off the executor.
    async fn with_queue<R: Send + 'static>(
        &mut self,
        handle: &Resource<QueueHandle>,
        work: impl FnOnce(&Queue) -> Result<R, QueueError> + Send + 'static,
    ) -> Result<R, Error> {
        let held = self.queue_of(handle)?;
        blocking(move || work(&held.queue).map_err(|e| queue_error(e, &held.ns_dir))).await?
    }

    /// [`Self::with_queue`] for a call that may write: counted as a write
    /// of the instance when `wrote` says its result changed the queue.
    async fn change_queue<R: Send + 'static>(
        &mut self,
        handle: &Resource<QueueHandle>,
        work: impl FnOnce(&Queue) -> Result<R, QueueError> + Send + 'static,
        wrote: impl FnOnce(&R) -> bool,
    ) -> Result<R, Error> {
        let result = self.with_queue(handle, work).await;
        self.count_write(result, wrote)
    }

    /// Pushes after checking sizes and reserving the disk quota.
    async fn push_messages(
        &mut self,
        handle: &Resource<QueueHandle>,
        messages: Vec<types::PushMessage>,
    ) -> Result<Vec<u64>, Error> {
        if messages.is_empty() {
            return Err(Error::InvalidRecord("empty batch".into()));
        }
        let bytes = self.check_record_sizes(messages.iter().map(|m| &m.payload))?;
        let held = self.queue_of(handle)?;
        let (usage, ns_dir) = (held.usage.clone(), held.ns_dir.clone());
        self.write_within_quota_of(usage, ns_dir, bytes, move || {
            let messages: Vec<(String, PushOptions)> = messages
                .into_iter()
                .map(|types::PushMessage { payload, options }| {
                    let options = PushOptions {
                        delay_ms: options.delay_ms,
                        dedup: options.dedup_key,
                    };
                    (payload, options)
                })
                .collect();
            held.queue
                .push_batch(&messages)
                .map_err(|e| queue_error(e, &held.ns_dir))
        })
        .await
    }

    /// `pop-wait`: pops, and while nothing is available waits on the queue
    /// without holding a thread, so the instance's time limit (a timer
    /// around the whole call) can stop it at any moment.
    async fn pop_waiting(
        &mut self,
        handle: &Resource<QueueHandle>,
        lease_ms: u64,
        timeout: Duration,
    ) -> Result<Option<Message>, Error> {
        let held = self.queue_of(handle)?;
        let until = std::time::Instant::now() + timeout;
        let watch = Watch::new(held.queue.clone());
        let ns_dir = held.ns_dir;
        let stop = self.ctx.stop.clone();
        let found = watch
            // An error (a zero lease, a failed write) ends the wait.
            .wait_for(Some(until), Some(&stop), move |q| match q.pop(lease_ms) {
                Ok(None) => None,
                other => Some(other),
            })
            .await;
        match found {
            None => Ok(None),
            Some(popped) => popped
                .map(|d| d.map(message))
                .map_err(|e| queue_error(e, &ns_dir)),
        }
    }

    async fn open_queue(&mut self, name: String) -> Result<Resource<QueueHandle>, Error> {
        let Admission { dir, ns_dir, usage } = self.admit(UnitKind::Queue, &name).await?;
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
        self.push_handle(QueueHandle {
            queue,
            name,
            ns_dir,
            usage,
        })
    }
}

fn message(delivery: Delivery) -> Message {
    Message {
        id: delivery.id,
        payload: delivery.payload,
        attempt: delivery.attempt,
        token: delivery.token,
        enqueued_at: delivery.enqueued_at,
        deadline: delivery.deadline,
    }
}

fn message_info(info: MessageInfo) -> types::MessageInfo {
    types::MessageInfo {
        id: info.id,
        payload: info.payload,
        attempts: info.attempts,
        enqueued_at: info.enqueued_at,
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
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
                    move |q| Ok(q.pop(lease_ms)?.map(message)),
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
            let max = usize::try_from(max).unwrap_or(MAX_BATCH).min(MAX_BATCH);
            Ok(self
                .change_queue(
                    &handle,
                    move |q| {
                        Ok(q.pop_batch_within(max, MAX_BYTES_PER_CALL, lease_ms)?
                            .into_iter()
                            .map(message)
                            .collect())
                    },
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
            let result = self.pop_waiting(&handle, lease_ms, timeout).await;
            Ok(self.count_write(result, Option::is_some)?)
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
                .change_queue(&handle, move |q| q.ack(id, &token), |_| true)
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
                    move |q| Ok(q.ack_next(id, &token, lease_ms)?.map(message)),
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
                .change_queue(&handle, move |q| q.nack(id, &token, delay_ms), |_| true)
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
                .change_queue(&handle, move |q| q.extend(id, &token, lease_ms), |_| true)
                .await?)
        })
    }

    async fn stats(&mut self, handle: Resource<QueueHandle>) -> Result<Stats, HostError> {
        observed!(self, "queue", "stats", self.unit_of(&handle), {
            Ok(self
                .with_queue(&handle, |q| {
                    let s = q.stats();
                    Ok(Stats {
                        ready: s.ready,
                        leased: s.leased,
                        delayed: s.delayed,
                        dead: s.dead,
                        bytes: s.bytes,
                        snapshot_bytes: s.snapshot_bytes,
                        snapshot_limit: s.snapshot_limit,
                        checkpoint_error: s.checkpoint_error,
                    })
                })
                .await?)
        })
    }

    async fn dead_letters(
        &mut self,
        handle: Resource<QueueHandle>,
        from_id: u64,
        max: u32,
    ) -> Result<Vec<types::MessageInfo>, HostError> {
        observed!(self, "queue", "dead-letters", self.unit_of(&handle), {
            let max = usize::try_from(max).unwrap_or(MAX_BATCH).min(MAX_BATCH);
            Ok(self
                .with_queue(&handle, move |q| {
                    Ok(q.dead_letters_page(from_id, max, MAX_BYTES_PER_CALL)
                        .into_iter()
                        .map(message_info)
                        .collect())
                })
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
                .change_queue(
                    &handle,
                    move |q| Ok(count(q.requeue(ids.as_deref())?)),
                    |n| *n > 0,
                )
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
                .change_queue(
                    &handle,
                    move |q| Ok(count(q.purge(ids.as_deref())?)),
                    |n| *n > 0,
                )
                .await?)
        })
    }

    async fn drop(&mut self, handle: Resource<QueueHandle>) -> wasmtime::Result<()> {
        self.drop_handle(handle);
        Ok(())
    }
}
