//! Waiting on a queue without holding a thread: the readiness of
//! `queue.subscribe`'s pollable and the wait of `pop-wait`, both woken by
//! the queue's change listener (removed when the waiter goes) and by a timer
//! for the next delay or lease to end.

use std::sync::Arc;

use mini_engine::queue::{ListenerId, Queue};
use tokio::sync::Notify;
use wasmtime_wasi::p2::Pollable;

use crate::stop::StopSignal;
use crate::view::{HandleSlot, blocking};

/// The readiness behind a `queue.subscribe` pollable: ready when a pop can
/// find a message. It waits on the queue's change listener and on a timer
/// for the next delay or lease to end, so a waiting guest holds no thread.
pub(super) struct QueueReady {
    watch: Watch,
    /// Counts against the instance's handle limit while the pollable lives.
    _slot: HandleSlot,
}

impl QueueReady {
    /// Readiness of `queue`, holding `slot` of the handle limit.
    pub(super) fn new(queue: Arc<Queue>, slot: HandleSlot) -> QueueReady {
        QueueReady {
            watch: Watch::new(queue),
            _slot: slot,
        }
    }
}

/// A waiter's view of a queue: woken by the queue's listener after every
/// change, which is removed when the waiter goes (a dropped pollable, a
/// `pop-wait` stopped by the time limit).
pub(super) struct Watch {
    queue: Arc<Queue>,
    wake: Arc<Notify>,
    listener: ListenerId,
}

impl Watch {
    pub(super) fn new(queue: Arc<Queue>) -> Watch {
        let wake = Arc::new(Notify::new());
        let listening = Arc::downgrade(&wake);
        let listener = queue.add_listener(move || {
            listening
                .upgrade()
                .map(|wake| wake.notify_waiters())
                .is_some()
        });
        Watch {
            queue,
            wake,
            listener,
        }
    }

    /// Waits until `attempt` (run off the executor) gives a value, or
    /// `until` passes (`None`). Between attempts it sleeps until the queue
    /// changes or its next delay or lease ends: no spinning, no thread held.
    pub(super) async fn wait_for<R: Send + 'static>(
        &self,
        until: Option<tokio::time::Instant>,
        stop: Option<&StopSignal>,
        attempt: impl Fn(&Queue) -> Option<R> + Send + Sync + Clone + 'static,
    ) -> Option<R> {
        let stopped = async {
            match stop {
                Some(stop) => stop.stopped().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(stopped);
        loop {
            // Registered before looking, so a change in between is not lost.
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let (queue, attempt) = (self.queue.clone(), attempt.clone());
            // The queue's lock can wait for a checkpoint's fsync: off the
            // executor. A host failure ends the wait: the caller looks again.
            let Ok(looked) = blocking(move || match attempt(&queue) {
                Some(found) => Ok(found),
                None => Err(queue.next_available_in()),
            })
            .await
            else {
                return None;
            };
            let next = match looked {
                Ok(found) => return Some(found),
                Err(next) => next,
            };
            let now = tokio::time::Instant::now();
            if until.is_some_and(|until| until <= now) {
                return None;
            }
            let timer = match (next, until) {
                (Some(wait), Some(until)) => Some(until.min(now + wait)),
                (Some(wait), None) => Some(now + wait),
                (None, until) => until,
            };
            let timer = async {
                match timer {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = &mut woken => {}
                () = timer => {}
                () = &mut stopped => return None,
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.queue.remove_listener(self.listener);
    }
}

#[async_trait::async_trait]
impl Pollable for QueueReady {
    async fn ready(&mut self) {
        self.watch
            .wait_for(None, None, |queue| {
                queue
                    .next_available_in()
                    .filter(|wait| wait.is_zero())
                    .map(drop)
            })
            .await;
    }
}
