//! Stopping instances gracefully: no new host calls, calls in flight
//! finish, waits end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::time::Instant;

/// A wake-up for waiters of both kinds: a thread blocked in a sync host call
/// (a condition variable) and a task of the async host (tokio's `Notify`).
/// What wakes it (a queue's change, a stop) does not know which kind waits.
#[derive(Debug, Default)]
pub(crate) struct Wake {
    generation: Mutex<u64>,
    changed: Condvar,
    #[cfg(feature = "tokio")]
    pub(crate) notify: tokio::sync::Notify,
}

impl Wake {
    /// Wakes every waiter.
    pub(crate) fn wake(&self) {
        *self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner) += 1;
        self.changed.notify_all();
        #[cfg(feature = "tokio")]
        self.notify.notify_waiters();
    }

    /// The count of wake-ups so far: take it before looking, then
    /// [`Self::wait_past`] it, and a wake-up in between is not lost.
    pub(crate) fn generation(&self) -> u64 {
        *self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks until a wake-up after `seen`, or `until` (`None`: no limit).
    pub(crate) fn wait_past(&self, seen: u64, until: Option<Instant>) {
        let mut generation = self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while *generation == seen {
            let now = Instant::now();
            generation = match until {
                Some(until) if until <= now => return,
                Some(until) => {
                    self.changed
                        .wait_timeout(generation, until - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self
                    .changed
                    .wait(generation)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
    }
}

/// Asks the instances that share it to stop, gracefully: a storage call in
/// flight finishes (what it made durable is acknowledged to the guest as
/// usual), the next call from the guest into the host traps instead of
/// running, a guest computing is stopped at its next epoch check, and a
/// `pop-wait` returns at once. What the guest was told is durable stays
/// durable; nothing is cut half-way.
///
/// Cloning shares the signal. Give it to contexts with
/// [`MiniCtxBuilder::stop_signal`](crate::MiniCtxBuilder::stop_signal) and
/// to runs with [`Runner::run_until`](crate::runner::Runner::run_until).
///
/// ```
/// use mini_host::StopSignal;
/// let stop = StopSignal::new();
/// assert!(!stop.is_stopping());
/// stop.stop();
/// assert!(stop.is_stopping());
/// ```
#[derive(Debug, Clone, Default)]
pub struct StopSignal {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    stopping: AtomicBool,
    wake: Wake,
    /// Waiters woken by a stop besides those of `wake` (a `pop-wait`
    /// blocked on its queue's wake-up).
    also_wake: Mutex<Vec<Weak<Wake>>>,
}

impl StopSignal {
    /// A signal not raised yet.
    pub fn new() -> StopSignal {
        StopSignal::default()
    }

    /// Raises the signal (again: no effect).
    pub fn stop(&self) {
        self.inner.stopping.store(true, Ordering::Release);
        self.inner.wake.wake();
        let also = std::mem::take(
            &mut *self
                .inner
                .also_wake
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for wake in also.iter().filter_map(Weak::upgrade) {
            wake.wake();
        }
    }

    /// Has `wake` woken too when the signal is raised (a waiter that sleeps
    /// on another wake-up than the signal's).
    pub(crate) fn also_wake(&self, wake: &Arc<Wake>) {
        let mut also = self
            .inner
            .also_wake
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        also.retain(|w| w.strong_count() > 0);
        also.push(Arc::downgrade(wake));
    }

    /// Whether the signal was raised.
    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::Acquire)
    }

    /// Waits until the signal is raised.
    #[cfg(feature = "tokio")]
    pub async fn stopped(&self) {
        loop {
            let notified = self.inner.wake.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_stopping() {
                return;
            }
            notified.await;
        }
    }
}

/// The error that traps a guest's host call after the signal: tells a stop
/// apart from a trap of the guest's own.
#[cfg(feature = "runner")]
#[derive(Debug, thiserror::Error)]
#[error("the instance was stopped by its host (a graceful stop: no call was cut)")]
pub(crate) struct Stopped;
