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

use mini_engine::queue::{Delivery, MessageInfo, PushOptions, Queue, QueueError, QueueOptions};
use mini_engine::state::DEFAULT_STATE_SEGMENT_SIZE;
use tokio::sync::Notify;
use wasmtime::component::Resource;
use wasmtime_wasi::p2::{DynPollable, Pollable};

use crate::bindings::queue::{self, Message, Stats};
use crate::bindings::store::Error;
use crate::ctx::MiniCtxView;
use crate::disk::Usage;
use crate::disk::preallocation;
use crate::error::{bad_handle, queue_error};
use crate::view::{blocking, check_name};

/// The longest `pop-wait` a guest can ask for: a waiting call holds a
/// thread (a guest that waits on `subscribe`'s pollable holds none).
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// The most messages one `pop-batch` or `dead-letters` returns.
pub const MAX_BATCH: usize = 1024;

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

/// The readiness behind a `queue.subscribe` pollable: ready when a pop can
/// find a message. It waits on the queue's change listener and on a timer
/// for the next delay or lease to end, so a waiting guest holds no thread.
struct QueueReady {
    queue: Arc<Queue>,
    /// Woken by the queue's listener after every change.
    wake: Arc<Notify>,
}

#[async_trait::async_trait]
impl Pollable for QueueReady {
    async fn ready(&mut self) {
        loop {
            // Registered before looking, so a change in between is not lost.
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let queue = self.queue.clone();
            // The queue's lock can wait for a checkpoint's fsync: off the
            // executor. If that fails, say ready: the guest's pop reports it.
            let Ok(next) = blocking(move || queue.next_available_in()).await else {
                return;
            };
            match next {
                Some(wait) if wait.is_zero() => return,
                Some(wait) => {
                    tokio::select! {
                        () = &mut woken => {}
                        () = tokio::time::sleep(wait) => {}
                    }
                }
                None => woken.await,
            }
        }
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

    /// Pushes after checking sizes and reserving the disk quota.
    async fn push_messages(
        &mut self,
        handle: &Resource<QueueHandle>,
        messages: Vec<(String, queue::PushOptions)>,
    ) -> Result<Vec<u64>, Error> {
        if messages.is_empty() {
            return Err(Error::InvalidRecord("empty batch".into()));
        }
        let bytes = self.check_record_sizes(messages.iter().map(|(p, _)| p))?;
        let held = self.queue_of(handle)?;
        let quota = self.ctx.limits.disk_quota;
        blocking(move || {
            held.usage.reserve(&held.ns_dir, quota, bytes)?;
            let messages: Vec<(String, PushOptions)> = messages
                .into_iter()
                .map(|(payload, o)| {
                    let options = PushOptions {
                        delay_ms: o.delay_ms,
                        dedup: o.dedup_key,
                    };
                    (payload, options)
                })
                .collect();
            held.queue
                .push_batch(&messages)
                .map_err(|e| queue_error(e, &held.ns_dir))
        })
        .await?
    }

    async fn open_queue(&mut self, name: String) -> Result<Resource<QueueHandle>, Error> {
        check_name(&name)?;
        self.check_handle_limit()?;
        let dir = self.ctx.queue_dir(&name);
        let ns_dir = self.ctx.queue_namespace_dir(&name);
        let usage = self.ctx.host.namespace_usage(&ns_dir);
        let host = self.ctx.host.clone();
        let options = QueueOptions {
            max_payload_size: self.ctx.limits.max_record_size,
            // Small segments let compaction keep the files bounded by the
            // live messages, not by the history.
            segment_size: self.ctx.limits.segment_size.min(DEFAULT_STATE_SEGMENT_SIZE),
            preallocate: preallocation(self.ctx.limits.disk_quota),
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

fn message_info(info: MessageInfo) -> queue::MessageInfo {
    queue::MessageInfo {
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
    async fn open(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<Resource<QueueHandle>, Error>> {
        Ok(self.open_queue(name).await)
    }

    async fn push(
        &mut self,
        handle: Resource<QueueHandle>,
        payload: String,
        options: queue::PushOptions,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let ids = self.push_messages(&handle, vec![(payload, options)]).await;
        Ok(ids.and_then(|ids| {
            ids.first()
                .copied()
                .ok_or_else(|| Error::Other("the host pushed nothing".into()))
        }))
    }

    async fn push_batch(
        &mut self,
        handle: Resource<QueueHandle>,
        messages: Vec<(String, queue::PushOptions)>,
    ) -> wasmtime::Result<Result<Vec<u64>, Error>> {
        Ok(self.push_messages(&handle, messages).await)
    }

    async fn pop(
        &mut self,
        handle: Resource<QueueHandle>,
        lease_ms: u64,
    ) -> wasmtime::Result<Result<Option<Message>, Error>> {
        Ok(self
            .with_queue(&handle, move |q| Ok(q.pop(lease_ms)?.map(message)))
            .await)
    }

    async fn pop_batch(
        &mut self,
        handle: Resource<QueueHandle>,
        max: u32,
        lease_ms: u64,
    ) -> wasmtime::Result<Result<Vec<Message>, Error>> {
        let max = usize::try_from(max).unwrap_or(MAX_BATCH).min(MAX_BATCH);
        Ok(self
            .with_queue(&handle, move |q| {
                Ok(q.pop_batch(max, lease_ms)?
                    .into_iter()
                    .map(message)
                    .collect())
            })
            .await)
    }

    async fn pop_wait(
        &mut self,
        handle: Resource<QueueHandle>,
        lease_ms: u64,
        timeout_ms: u64,
    ) -> wasmtime::Result<Result<Option<Message>, Error>> {
        let timeout = Duration::from_millis(timeout_ms).min(MAX_WAIT);
        Ok(self
            .with_queue(&handle, move |q| {
                Ok(q.pop_wait(lease_ms, timeout)?.map(message))
            })
            .await)
    }

    async fn subscribe(
        &mut self,
        handle: Resource<QueueHandle>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let queue = self.table.get(&handle)?.queue.clone();
        let wake = Arc::new(Notify::new());
        let listening = Arc::downgrade(&wake);
        // Stops listening once the pollable is gone.
        queue.add_listener(move || {
            listening
                .upgrade()
                .map(|wake| wake.notify_waiters())
                .is_some()
        });
        let ready = self.table.push(QueueReady { queue, wake })?;
        wasmtime_wasi::p2::subscribe(self.table, ready)
    }

    async fn ack(
        &mut self,
        handle: Resource<QueueHandle>,
        id: u64,
        token: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(self.with_queue(&handle, move |q| q.ack(id, &token)).await)
    }

    async fn ack_next(
        &mut self,
        handle: Resource<QueueHandle>,
        id: u64,
        token: String,
        lease_ms: u64,
    ) -> wasmtime::Result<Result<Option<Message>, Error>> {
        Ok(self
            .with_queue(&handle, move |q| {
                Ok(q.ack_next(id, &token, lease_ms)?.map(message))
            })
            .await)
    }

    async fn nack(
        &mut self,
        handle: Resource<QueueHandle>,
        id: u64,
        token: String,
        delay_ms: u64,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(self
            .with_queue(&handle, move |q| q.nack(id, &token, delay_ms))
            .await)
    }

    async fn extend(
        &mut self,
        handle: Resource<QueueHandle>,
        id: u64,
        token: String,
        lease_ms: u64,
    ) -> wasmtime::Result<Result<u64, Error>> {
        Ok(self
            .with_queue(&handle, move |q| q.extend(id, &token, lease_ms))
            .await)
    }

    async fn stats(
        &mut self,
        handle: Resource<QueueHandle>,
    ) -> wasmtime::Result<Result<Stats, Error>> {
        Ok(self
            .with_queue(&handle, |q| {
                let s = q.stats();
                Ok(Stats {
                    ready: s.ready,
                    leased: s.leased,
                    delayed: s.delayed,
                    dead: s.dead,
                    bytes: s.bytes,
                })
            })
            .await)
    }

    async fn dead_letters(
        &mut self,
        handle: Resource<QueueHandle>,
        max: u32,
    ) -> wasmtime::Result<Result<Vec<queue::MessageInfo>, Error>> {
        let max = usize::try_from(max).unwrap_or(MAX_BATCH).min(MAX_BATCH);
        Ok(self
            .with_queue(&handle, move |q| {
                Ok(q.dead_letters()
                    .into_iter()
                    .take(max)
                    .map(message_info)
                    .collect())
            })
            .await)
    }

    async fn requeue(
        &mut self,
        handle: Resource<QueueHandle>,
        ids: Option<Vec<u64>>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        Ok(self
            .with_queue(&handle, move |q| Ok(count(q.requeue(ids.as_deref())?)))
            .await)
    }

    async fn purge(
        &mut self,
        handle: Resource<QueueHandle>,
        ids: Option<Vec<u64>>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        Ok(self
            .with_queue(&handle, move |q| Ok(count(q.purge(ids.as_deref())?)))
            .await)
    }

    async fn drop(&mut self, handle: Resource<QueueHandle>) -> wasmtime::Result<()> {
        self.drop_handle(handle);
        Ok(())
    }
}
