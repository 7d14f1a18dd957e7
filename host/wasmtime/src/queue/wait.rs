//! Waiting on a queue without spinning: the wait of `pop-wait` and the
//! readiness of `queue-poll`'s pollable, both woken by the queue's change
//! listener (removed when the waiter goes) and by a timer for the next delay
//! or lease to end. An async host call waits without holding a thread; a
//! sync one blocks its own thread, as sync calls do.

use std::sync::Arc;
use std::time::Instant;

use mini_engine::queue::{ListenerId, Queue};

use crate::offload::blocking;
use crate::stop::{StopSignal, Wake};

/// A waiter's view of a queue: woken by the queue's listener after every
/// change, which is removed when the waiter goes (a dropped pollable, a
/// `pop-wait` stopped by the time limit).
pub(crate) struct Watch {
    queue: Arc<Queue>,
    wake: Arc<Wake>,
    listener: ListenerId,
}

/// What one look at the queue found: a value, or how long until the next
/// delay or lease ends (`None`: nothing will become available by itself).
type Looked<R> = Result<R, Option<std::time::Duration>>;

impl Watch {
    pub(crate) fn new(queue: Arc<Queue>) -> Watch {
        let wake = Arc::new(Wake::default());
        let listening = Arc::downgrade(&wake);
        let listener =
            queue.add_listener(move || listening.upgrade().map(|wake| wake.wake()).is_some());
        Watch {
            queue,
            wake,
            listener,
        }
    }

    /// Waits until `attempt` gives a value, or `until` passes or `stop` is
    /// raised (`None`). Between attempts it sleeps until the queue changes or
    /// its next delay or lease ends: no spinning.
    pub(crate) async fn wait_for<R: Send + 'static>(
        &self,
        until: Option<Instant>,
        stop: Option<&StopSignal>,
        attempt: impl Fn(&Queue) -> Option<R> + Send + Sync + Clone + 'static,
    ) -> Option<R> {
        #[cfg(feature = "tokio")]
        if !crate::offload::is_inline() {
            return self.wait_async(until, stop, attempt).await;
        }
        self.wait_blocking(until, stop, attempt)
    }

    /// One look, off the executor: the queue's lock can wait for a
    /// checkpoint's fsync. A host failure ends the wait (`None`): the caller
    /// looks again.
    async fn look<R: Send + 'static>(
        &self,
        attempt: impl Fn(&Queue) -> Option<R> + Send + 'static,
    ) -> Option<Looked<R>> {
        let queue = self.queue.clone();
        blocking(move || match attempt(&queue) {
            Some(found) => Ok(found),
            None => Err(queue.next_available_in()),
        })
        .await
        .ok()
    }

    /// When to look again: at the next delay's or lease's end, or `until`.
    fn next_look(next: Option<std::time::Duration>, until: Option<Instant>) -> Option<Instant> {
        let now = Instant::now();
        match (next, until) {
            (Some(wait), Some(until)) => Some(until.min(now + wait)),
            (Some(wait), None) => Some(now + wait),
            (None, until) => until,
        }
    }

    /// The wait of a sync host call: this thread sleeps on the wake-up.
    fn wait_blocking<R: Send + 'static>(
        &self,
        until: Option<Instant>,
        stop: Option<&StopSignal>,
        attempt: impl Fn(&Queue) -> Option<R> + Send + Sync + Clone + 'static,
    ) -> Option<R> {
        if let Some(stop) = stop {
            stop.also_wake(&self.wake);
        }
        loop {
            // Taken before looking, so a change in between is not lost.
            let seen = self.wake.generation();
            if stop.is_some_and(StopSignal::is_stopping) {
                return None;
            }
            let next = match crate::offload::run_inline(self.look(attempt.clone()))? {
                Ok(found) => return Some(found),
                Err(next) => next,
            };
            if until.is_some_and(|until| until <= Instant::now()) {
                return None;
            }
            self.wake.wait_past(seen, Self::next_look(next, until));
        }
    }

    /// The wait of an async host call: the task sleeps, no thread is held.
    #[cfg(feature = "tokio")]
    async fn wait_async<R: Send + 'static>(
        &self,
        until: Option<Instant>,
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
            let woken = self.wake.notify.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let next = match self.look(attempt.clone()).await? {
                Ok(found) => return Some(found),
                Err(next) => next,
            };
            if until.is_some_and(|until| until <= Instant::now()) {
                return None;
            }
            let timer = async {
                match Self::next_look(next, until) {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
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

    /// Waits until a pop can find a message.
    #[cfg(feature = "wasi")]
    pub(crate) async fn ready(&self) {
        self.wait_for(None, None, |queue| {
            queue
                .next_available_in()
                .filter(|wait| wait.is_zero())
                .map(drop)
        })
        .await;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.queue.remove_listener(self.listener);
    }
}
