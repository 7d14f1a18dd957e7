//! The local engine's queues as a backend: a queue in files under the
//! namespace, shared by the instances of a host ([`MiniHost::open_queue`]).
//! Every engine call blocks (its writes are fsync'd), so it runs through
//! [`blocking`]; waits sleep on the queue's change listener.
//!
//! [`MiniHost::open_queue`]: crate::MiniHost::open_queue

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mini_engine::queue::{Delivery, MessageInfo, PushOptions, Queue, QueueError};

use super::{BoxFuture, QueueBackend, count};
use crate::bindings::types::{self, Error, Message, PushMessage, QueueStats};
use crate::disk::Usage;
use crate::error::queue_error;
use crate::offload::blocking;
use crate::queue::MAX_BYTES_PER_CALL;
use crate::queue::wait::Watch;
use crate::stop::StopSignal;

/// A queue of the local engine, with the quota its pushes count against.
#[derive(Debug, Clone)]
pub(crate) struct LocalQueue {
    queue: Arc<Queue>,
    /// The namespace directory the queue lives in (for the quota and for
    /// hiding host paths in errors).
    ns_dir: PathBuf,
    usage: Arc<Usage>,
    quota: u64,
}

impl LocalQueue {
    /// `queue`, whose pushes count against `usage` (of the namespace in
    /// `ns_dir`, whose quota is `quota`).
    pub(crate) fn new(queue: Arc<Queue>, ns_dir: PathBuf, usage: Arc<Usage>, quota: u64) -> Self {
        LocalQueue {
            queue,
            ns_dir,
            usage,
            quota,
        }
    }

    /// The engine's queue.
    pub(crate) fn queue(&self) -> &Arc<Queue> {
        &self.queue
    }

    /// Runs `work` on the queue off the executor.
    fn call<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Queue) -> Result<R, QueueError> + Send + 'static,
    ) -> BoxFuture<Result<R, Error>> {
        let (queue, ns_dir) = (self.queue.clone(), self.ns_dir.clone());
        Box::pin(async move {
            blocking(move || work(&queue).map_err(|e| queue_error(e, &ns_dir))).await?
        })
    }
}

/// A delivery as the WIT has it.
pub(crate) fn message(delivery: Delivery) -> Message {
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

impl QueueBackend for LocalQueue {
    fn push(&self, messages: Vec<PushMessage>, bytes: u64) -> BoxFuture<Result<Vec<u64>, Error>> {
        let (queue, ns_dir, usage, quota) = (
            self.queue.clone(),
            self.ns_dir.clone(),
            self.usage.clone(),
            self.quota,
        );
        Box::pin(async move {
            blocking(move || {
                usage.reserve(&ns_dir, quota, bytes)?;
                let messages: Vec<(String, PushOptions)> = messages
                    .into_iter()
                    .map(|PushMessage { payload, options }| {
                        let options = PushOptions {
                            delay_ms: options.delay_ms,
                            dedup: options.dedup_key,
                        };
                        (payload, options)
                    })
                    .collect();
                queue
                    .push_batch(&messages)
                    .map_err(|e| queue_error(e, &ns_dir))
            })
            .await?
        })
    }

    fn pop_batch(&self, max: usize, lease_ms: u64) -> BoxFuture<Result<Vec<Message>, Error>> {
        self.call(move |q| {
            Ok(q.pop_batch_within(max, MAX_BYTES_PER_CALL, lease_ms)?
                .into_iter()
                .map(message)
                .collect())
        })
    }

    /// Pops, and while nothing is available waits on the queue without
    /// holding a thread, so the instance's time limit (a timer around the
    /// whole call) can stop it at any moment.
    fn pop_wait(
        &self,
        lease_ms: u64,
        timeout: Duration,
        stop: StopSignal,
    ) -> BoxFuture<Result<Option<Message>, Error>> {
        let (queue, ns_dir) = (self.queue.clone(), self.ns_dir.clone());
        Box::pin(async move {
            let until = Instant::now() + timeout;
            let watch = Watch::new(queue);
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
        })
    }

    fn ack(&self, id: u64, token: String) -> BoxFuture<Result<(), Error>> {
        self.call(move |q| q.ack(id, &token))
    }

    fn ack_next(
        &self,
        id: u64,
        token: String,
        lease_ms: u64,
    ) -> BoxFuture<Result<Option<Message>, Error>> {
        self.call(move |q| Ok(q.ack_next(id, &token, lease_ms)?.map(message)))
    }

    fn nack(&self, id: u64, token: String, delay_ms: u64) -> BoxFuture<Result<(), Error>> {
        self.call(move |q| q.nack(id, &token, delay_ms))
    }

    fn extend(&self, id: u64, token: String, lease_ms: u64) -> BoxFuture<Result<u64, Error>> {
        self.call(move |q| q.extend(id, &token, lease_ms))
    }

    fn stats(&self) -> BoxFuture<Result<QueueStats, Error>> {
        self.call(|q| {
            let s = q.stats();
            Ok(QueueStats {
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
    }

    fn dead_letters(
        &self,
        from_id: u64,
        max: usize,
    ) -> BoxFuture<Result<Vec<types::MessageInfo>, Error>> {
        self.call(move |q| {
            Ok(q.dead_letters_page(from_id, max, MAX_BYTES_PER_CALL)
                .into_iter()
                .map(message_info)
                .collect())
        })
    }

    fn requeue(&self, ids: Option<Vec<u64>>) -> BoxFuture<Result<u32, Error>> {
        self.call(move |q| Ok(count(q.requeue(ids.as_deref())?)))
    }

    fn purge(&self, ids: Option<Vec<u64>>) -> BoxFuture<Result<u32, Error>> {
        self.call(move |q| Ok(count(q.purge(ids.as_deref())?)))
    }

    #[cfg(feature = "wasi")]
    fn ready(&self) -> BoxFuture<()> {
        let watch = Watch::new(self.queue.clone());
        Box::pin(async move { watch.ready().await })
    }
}
