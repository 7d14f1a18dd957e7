//! Queues on NATS JetStream as a backend (mini-jetstream's `JsQueue`): a
//! work-queue stream and its consumers, the leases kept by this host. What
//! differs from the local engine is on `JsQueue` and in the README.

use std::time::Duration;

use mini_jetstream::{JsDeadLetter, JsDelivery, JsPush, JsQueue, QueueConfig};
use tokio::runtime::Handle;

use super::jetstream::{StreamQuota, checked_value, js_error, on, open_unit};
use super::{BoxFuture, JetStreamBackend, QueueBackend};
use crate::bindings::types::{self, Error, Message, PushMessage, QueueStats};
use crate::queue::MAX_BYTES_PER_CALL;
use crate::stop::StopSignal;

/// Opens the queue `name` of `namespace` on `backend` (a work stream and a
/// dead-letter stream).
pub(crate) async fn open_queue(
    backend: &JetStreamBackend,
    namespace: &str,
    name: &str,
    max_streams: usize,
    quota: u64,
) -> Result<StreamQueue, Error> {
    let queue = open_unit(
        backend,
        namespace,
        ("queue", 2),
        name,
        max_streams,
        |js, ns, n| async move { js.open_queue(&ns, &n, QueueConfig::default()).await },
    )
    .await?;
    Ok(StreamQueue {
        queue,
        runtime: backend.runtime().clone(),
        quota: backend.quota_of(namespace, quota),
    })
}

/// A queue on streams.
#[derive(Debug)]
pub(crate) struct StreamQueue {
    queue: JsQueue,
    runtime: Handle,
    quota: StreamQuota,
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

fn message(delivery: JsDelivery) -> Message {
    Message {
        id: delivery.id,
        payload: delivery.payload,
        attempt: delivery.attempt,
        token: delivery.token,
        enqueued_at: delivery.enqueued_at,
        deadline: delivery.deadline,
    }
}

fn message_info(letter: JsDeadLetter) -> types::MessageInfo {
    types::MessageInfo {
        id: letter.id,
        payload: letter.payload,
        attempts: letter.attempts,
        enqueued_at: letter.enqueued_at,
    }
}

impl StreamQueue {
    /// Runs `work` on a clone of the queue on the backend's runtime.
    fn call<T: Send + 'static, F>(
        &self,
        work: impl FnOnce(JsQueue) -> F,
    ) -> BoxFuture<Result<T, Error>>
    where
        F: std::future::Future<Output = Result<T, mini_jetstream::JsError>> + Send + 'static,
    {
        let work = work(self.queue.clone());
        on(&self.runtime, async move { work.await.map_err(js_error) })
    }
}

impl QueueBackend for StreamQueue {
    fn push(&self, messages: Vec<PushMessage>, bytes: u64) -> BoxFuture<Result<Vec<u64>, Error>> {
        // Every payload checked before the first is pushed, as the local
        // engine does: a batch with a bad message pushes none.
        let pushes: Result<Vec<JsPush>, Error> = messages
            .into_iter()
            .map(|PushMessage { payload, options }| {
                Ok(JsPush {
                    payload: checked_value(payload)?,
                    dedup_key: options.dedup_key,
                    delay: ms(options.delay_ms),
                })
            })
            .collect();
        let pushes = match pushes {
            Ok(pushes) => pushes,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let (queue, quota) = (self.queue.clone(), self.quota.clone());
        on(&self.runtime, async move {
            quota.reserve(bytes, pushes.len()).await?;
            queue.push_batch(pushes).await.map_err(js_error)
        })
    }

    fn pop_batch(&self, max: usize, lease_ms: u64) -> BoxFuture<Result<Vec<Message>, Error>> {
        self.call(move |q| async move {
            let popped = q.pop_batch(max, MAX_BYTES_PER_CALL, ms(lease_ms)).await?;
            Ok(popped.into_iter().map(message).collect())
        })
    }

    fn pop_wait(
        &self,
        lease_ms: u64,
        timeout: Duration,
        stop: StopSignal,
    ) -> BoxFuture<Result<Option<Message>, Error>> {
        let queue = self.queue.clone();
        let task = self.runtime.spawn(async move {
            let popped = queue.pop_wait(ms(lease_ms), timeout).await;
            popped.map(|d| d.map(message)).map_err(js_error)
        });
        Box::pin(async move {
            let abort = task.abort_handle();
            tokio::select! {
                done = task => done.map_err(|e| Error::Other(format!("host task failed: {e}")))?,
                () = stop.stopped() => {
                    // A message fetched meanwhile goes back at the servers'
                    // ack wait.
                    abort.abort();
                    Ok(None)
                }
            }
        })
    }

    fn ack(&self, id: u64, token: String) -> BoxFuture<Result<(), Error>> {
        self.call(move |q| async move { q.ack(id, &token).await })
    }

    fn ack_next(
        &self,
        id: u64,
        token: String,
        lease_ms: u64,
    ) -> BoxFuture<Result<Option<Message>, Error>> {
        self.call(
            move |q| async move { Ok(q.ack_next(id, &token, ms(lease_ms)).await?.map(message)) },
        )
    }

    fn nack(&self, id: u64, token: String, delay_ms: u64) -> BoxFuture<Result<(), Error>> {
        self.call(move |q| async move { q.nack(id, &token, ms(delay_ms)).await })
    }

    fn extend(&self, id: u64, token: String, lease_ms: u64) -> BoxFuture<Result<u64, Error>> {
        self.call(move |q| async move { q.extend(id, &token, ms(lease_ms)).await })
    }

    fn stats(&self) -> BoxFuture<Result<QueueStats, Error>> {
        self.call(|q| async move {
            let s = q.stats().await?;
            Ok(QueueStats {
                ready: s.ready,
                leased: s.leased,
                delayed: s.delayed,
                dead: s.dead,
                bytes: s.bytes,
                // No snapshot: the stream is the queue's whole state, and
                // its limit is the stream's.
                snapshot_bytes: s.bytes,
                snapshot_limit: s.max_bytes.unwrap_or(u64::MAX),
                checkpoint_error: None,
            })
        })
    }

    fn dead_letters(
        &self,
        from_id: u64,
        max: usize,
    ) -> BoxFuture<Result<Vec<types::MessageInfo>, Error>> {
        self.call(move |q| async move {
            let mut page = Vec::new();
            let mut bytes = 0usize;
            for letter in q.dead_letters(from_id, max).await? {
                bytes = bytes.saturating_add(letter.payload.len());
                if !page.is_empty() && bytes > MAX_BYTES_PER_CALL {
                    break;
                }
                page.push(message_info(letter));
            }
            Ok(page)
        })
    }

    fn requeue(&self, ids: Option<Vec<u64>>) -> BoxFuture<Result<u32, Error>> {
        self.call(move |q| async move { q.requeue(ids.as_deref()).await })
    }

    fn purge(&self, ids: Option<Vec<u64>>) -> BoxFuture<Result<u32, Error>> {
        self.call(move |q| async move { q.purge(ids.as_deref()).await })
    }

    #[cfg(feature = "wasi")]
    fn ready(&self) -> BoxFuture<()> {
        // A guest's check polls once: what is held already is ready now.
        if self.queue.holds_message() {
            return Box::pin(std::future::ready(()));
        }
        let queue = self.queue.clone();
        let task = self.runtime.spawn(async move {
            while !queue
                .ready(tokio::time::Instant::now() + Duration::from_secs(60))
                .await
            {}
        });
        Box::pin(async move {
            // Dropped with the pollable: the wait ends with it.
            let _aborts = AbortOnDrop(task.abort_handle());
            let _ = task.await;
        })
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
