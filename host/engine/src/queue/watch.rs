//! Waiting for a queue without a thread per waiter: listeners called after
//! every change, and the time until a pop can find a message. An async host
//! builds its readiness (a `wasi:io` pollable) on these; `pop_wait` is the
//! blocking way.

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use super::Queue;

type Listener = Box<dyn Fn() -> bool + Send + Sync>;

/// Names a listener added with [`Queue::add_listener`], to remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(u64);

/// The listeners of one queue.
#[derive(Default)]
pub(super) struct Listeners(Mutex<ListenerList>);

#[derive(Default)]
struct ListenerList {
    next: u64,
    listeners: Vec<(u64, Listener)>,
}

impl Listeners {
    /// Calls every listener; drops the ones that return false.
    pub(super) fn call(&self) {
        let mut list = self.0.lock().unwrap_or_else(|p| p.into_inner());
        list.listeners.retain(|(_, listener)| listener());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ListenerList> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl fmt::Debug for Listeners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.lock().map_or(0, |l| l.listeners.len());
        write!(f, "Listeners({n})")
    }
}

impl Queue {
    /// Calls `listener` after every call that changed the queue (a push, a
    /// pop, an ack, a nack, a requeue, …), for as long as it returns true.
    /// It runs on the thread of that call, with the queue locked: it must be
    /// quick and must not call the queue (wake a waiter, nothing more).
    /// [`Queue::remove_listener`] removes it at once (a waiter that goes
    /// away must not leave its listener behind until the next change).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use mini_engine::queue::{PushOptions, Queue};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let queue = Queue::open(dir.path())?;
    /// let changes = Arc::new(AtomicU64::new(0));
    /// let seen = changes.clone();
    /// queue.add_listener(move || {
    ///     seen.fetch_add(1, Ordering::SeqCst);
    ///     true // keep listening
    /// });
    /// queue.push("1", &PushOptions::default())?;
    /// assert_eq!(changes.load(Ordering::SeqCst), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_listener(&self, listener: impl Fn() -> bool + Send + Sync + 'static) -> ListenerId {
        let mut list = self.listeners.lock();
        let id = list.next;
        list.next += 1;
        list.listeners.push((id, Box::new(listener)));
        ListenerId(id)
    }

    /// Removes a listener (nothing if it is gone already).
    pub fn remove_listener(&self, id: ListenerId) {
        self.listeners.lock().listeners.retain(|(i, _)| *i != id.0);
    }

    /// How many listeners the queue has now.
    pub fn listener_count(&self) -> usize {
        self.listeners.lock().listeners.len()
    }

    /// How long until a pop can find a message: zero when one is available
    /// now (or a lease has run out), the time until the earliest delay or
    /// lease ends otherwise, `None` when nothing will become available
    /// without a change (no message, or dead letters only). A hint: another
    /// consumer may take the message first.
    pub fn next_available_in(&self) -> Option<Duration> {
        let now = self.now();
        let inner = self.lock();
        inner
            .state
            .by_visibility()
            .find(|(_, id)| !inner.pending.contains(id))
            .map(|(at, _)| Duration::from_millis(at.saturating_sub(now)))
    }
}
