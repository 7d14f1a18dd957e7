//! Stopping instances gracefully: no new host calls, calls in flight
//! finish, waits end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

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
    notify: Notify,
}

impl StopSignal {
    /// A signal not raised yet.
    pub fn new() -> StopSignal {
        StopSignal::default()
    }

    /// Raises the signal (again: no effect).
    pub fn stop(&self) {
        self.inner.stopping.store(true, Ordering::Release);
        self.inner.notify.notify_waiters();
    }

    /// Whether the signal was raised.
    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::Acquire)
    }

    /// Waits until the signal is raised.
    pub async fn stopped(&self) {
        loop {
            let notified = self.inner.notify.notified();
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
#[derive(Debug, thiserror::Error)]
#[error("the instance was stopped by its host (a graceful stop: no call was cut)")]
pub(crate) struct Stopped;
