//! [`RawQueue`]: a queue of JSON text.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{
    DeadLetter, MAX_WAIT_PER_CALL, PushOptions, QUEUE, QueueStats, RawDelivery, millis, time,
};
use crate::bindings::mini::storage::{queue as wit, queue_poll};
use crate::error::HostResult;
use crate::{Error, Pollable};

/// A queue whose payloads are JSON text, passed to the host unchanged.
///
/// The host checks every payload: exactly one JSON value, no larger than its
/// record size limit. Use this to move JSON you already have as text; use
/// [`Queue<T>`](super::Queue) for typed messages.
///
/// The queue is opened by name, in this instance's namespace, or, when the
/// host granted the name (`mini run --grant-queue NAME=OWNER`), shared with
/// the other components of the host process. One process at a time holds a
/// queue: another process gets [`Error::Locked`].
///
/// ```no_run
/// use std::time::Duration;
///
/// let queue = mini_guest::RawQueue::open("events")?;
/// queue.push(r#"{"user":"ada","action":"login"}"#)?;
/// if let Some(delivery) = queue.pop(Duration::from_secs(30))? {
///     println!("{}: {}", delivery.id(), delivery.payload());
///     delivery.ack()?;
/// }
/// # Ok::<(), mini_guest::Error>(())
/// ```
pub struct RawQueue {
    /// Shared with the deliveries, which ack through it.
    handle: Arc<wit::Queue>,
}

impl RawQueue {
    /// Opens the queue `name`, creating it if it does not exist.
    ///
    /// Fails with [`Error::InvalidName`] for a bad name, [`Error::Locked`]
    /// when another process holds it, [`Error::Corrupt`] when its files are
    /// damaged (both with [`Resource::Queue`](crate::Resource::Queue)),
    /// [`Error::Quota`] when the instance holds too many handles.
    ///
    /// ```no_run
    /// let queue = mini_guest::RawQueue::open("jobs")?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Self, Error> {
        Ok(Self::from_bindings(wit::Queue::open(name).on(QUEUE)?))
    }

    /// Pushes one message (the text of one JSON value) durably and returns
    /// its id. Same as [`RawQueue::push_with`] with default options.
    ///
    /// ```no_run
    /// let queue = mini_guest::RawQueue::open("jobs")?;
    /// let id = queue.push(r#"{"job":1}"#)?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn push(&self, payload: &str) -> Result<u64, Error> {
        self.push_with(payload, &PushOptions::default())
    }

    /// Pushes one message durably with a delay and/or a deduplication key;
    /// returns its id (for a duplicate: the id of the message it
    /// duplicates).
    ///
    /// Fails with [`Error::InvalidRecord`] when the payload is not one JSON
    /// value and [`Error::RecordTooLarge`] when it is over the host's limit;
    /// nothing is pushed then.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let queue = mini_guest::RawQueue::open("jobs")?;
    /// let id = queue.push_with(r#"{"job":1}"#, &mini_guest::PushOptions::delayed(Duration::from_secs(10)))?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn push_with(&self, payload: &str, options: &PushOptions) -> Result<u64, Error> {
        self.handle.push(payload, options.to_wit()).on(QUEUE)
    }

    /// Pushes messages as one atomic unit (after a crash all of them are
    /// there or none) and returns their ids in order. If any payload is
    /// rejected, nothing is pushed; an empty slice is
    /// [`Error::InvalidRecord`].
    ///
    /// ```no_run
    /// let queue = mini_guest::RawQueue::open("jobs")?;
    /// let ids = queue.push_batch(&[r#"{"job":1}"#, r#"{"job":2}"#])?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn push_batch<S: AsRef<str>>(&self, payloads: &[S]) -> Result<Vec<u64>, Error> {
        let options = PushOptions::default();
        let messages: Vec<wit::PushMessage<'_>> = payloads
            .iter()
            .map(|p| options.message(p.as_ref()))
            .collect();
        self.handle.push_batch(&messages).on(QUEUE)
    }

    /// Like [`RawQueue::push_batch`], with options for each message.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// use mini_guest::PushOptions;
    ///
    /// let queue = mini_guest::RawQueue::open("jobs")?;
    /// let ids = queue.push_batch_with(&[
    ///     (r#"{"job":1}"#, PushOptions::default()),
    ///     (r#"{"job":2}"#, PushOptions::delayed(Duration::from_secs(5))),
    /// ])?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn push_batch_with<S: AsRef<str>>(
        &self,
        messages: &[(S, PushOptions)],
    ) -> Result<Vec<u64>, Error> {
        let messages: Vec<wit::PushMessage<'_>> = messages
            .iter()
            .map(|(p, o)| o.message(p.as_ref()))
            .collect();
        self.handle.push_batch(&messages).on(QUEUE)
    }

    /// The next available message, leased for `lease` (millisecond
    /// resolution, rounded up; a zero lease is [`Error::InvalidArgument`]);
    /// `None` if no message is available now. Does not wait: see
    /// [`RawQueue::pop_wait`].
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let queue = mini_guest::RawQueue::open("jobs")?;
    /// if let Some(delivery) = queue.pop(Duration::from_secs(30))? {
    ///     delivery.ack()?;
    /// }
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn pop(&self, lease: Duration) -> Result<Option<RawDelivery>, Error> {
        Ok(self
            .handle
            .pop(millis(lease))
            .on(QUEUE)?
            .map(|m| self.delivery(m)))
    }

    /// Up to `max` available messages, each leased for `lease`, in delivery
    /// order; empty if none is available now. (The host may return fewer
    /// than `max`: the `mini` host at most 1024 per call.)
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let queue = mini_guest::RawQueue::open("jobs")?;
    /// for delivery in queue.pop_batch(16, Duration::from_secs(30))? {
    ///     delivery.ack()?;
    /// }
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn pop_batch(&self, max: u32, lease: Duration) -> Result<Vec<RawDelivery>, Error> {
        Ok(self
            .handle
            .pop_batch(max, millis(lease))
            .on(QUEUE)?
            .into_iter()
            .map(|m| self.delivery(m))
            .collect())
    }

    /// Like [`RawQueue::pop`], but waits up to `timeout` for a message to
    /// become available; `None` if none did. The host waits without
    /// spinning (woken by pushes, nacks, requeues, and when a delay or a
    /// lease runs out). A `timeout` longer than [`MAX_WAIT_PER_CALL`] is
    /// waited out over several host calls.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let queue = mini_guest::RawQueue::open("jobs")?;
    /// match queue.pop_wait(Duration::from_secs(30), Duration::from_secs(300))? {
    ///     Some(delivery) => delivery.ack()?,
    ///     None => eprintln!("no job for five minutes"),
    /// }
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn pop_wait(
        &self,
        lease: Duration,
        timeout: Duration,
    ) -> Result<Option<RawDelivery>, Error> {
        let lease_ms = millis(lease);
        let start = Instant::now();
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            let wait = left.min(MAX_WAIT_PER_CALL);
            // Truncated, not rounded up: never wait past the caller's timeout.
            let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
            if let Some(message) = self.handle.pop_wait(lease_ms, wait_ms).on(QUEUE)? {
                return Ok(Some(self.delivery(message)));
            }
            if left <= MAX_WAIT_PER_CALL || start.elapsed() >= timeout {
                return Ok(None);
            }
        }
    }

    /// A `wasi:io` pollable that is ready when a pop can find a message
    /// (one is available, or a delay or lease has run out). Wait on it
    /// together with other pollables (another queue, a timer) through
    /// [`poll`](crate::poll); waiting holds no host thread. Readiness is a
    /// hint: another consumer may take the message first, so pop, and
    /// subscribe again when the pop finds nothing. (This is
    /// `mini:storage/queue-poll`'s `subscribe`: the one queue call that
    /// needs `wasi:io` from the host.)
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let urgent = mini_guest::RawQueue::open("urgent")?;
    /// let normal = mini_guest::RawQueue::open("normal")?;
    /// loop {
    ///     let (a, b) = (urgent.subscribe(), normal.subscribe());
    ///     let ready = mini_guest::poll(&[&a, &b]);
    ///     let queue = if ready.contains(&0) { &urgent } else { &normal };
    ///     if let Some(delivery) = queue.pop(Duration::from_secs(30))? {
    ///         println!("{}", delivery.payload());
    ///         delivery.ack()?;
    ///     }
    /// }
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn subscribe(&self) -> Pollable {
        queue_poll::subscribe(&self.handle)
    }

    /// How many messages are where, now.
    ///
    /// ```no_run
    /// let queue = mini_guest::RawQueue::open("jobs")?;
    /// let stats = queue.stats()?;
    /// println!("{} ready, {} delayed", stats.ready, stats.delayed);
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn stats(&self) -> Result<QueueStats, Error> {
        let s = self.handle.stats().on(QUEUE)?;
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
    }

    /// Up to `max` dead letters, the first ones by id. (The host may return
    /// fewer: the `mini` host at most 1024, and stops before 4 MiB of
    /// payloads; [`RawQueue::dead_letters_from`] pages on.)
    ///
    /// ```no_run
    /// let queue = mini_guest::RawQueue::open("jobs")?;
    /// for dead in queue.dead_letters(100)? {
    ///     eprintln!("dead: {} {}", dead.id, dead.payload);
    /// }
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn dead_letters(&self, max: u32) -> Result<Vec<DeadLetter>, Error> {
        self.dead_letters_from(0, max)
    }

    /// Up to `max` dead letters with ids from `from_id` on, by id: the next
    /// page starts at the last id + 1.
    ///
    /// ```no_run
    /// let queue = mini_guest::RawQueue::open("jobs")?;
    /// let mut from = 0;
    /// loop {
    ///     let page = queue.dead_letters_from(from, 100)?;
    ///     let Some(last) = page.last() else { break };
    ///     from = last.id + 1;
    ///     for dead in &page {
    ///         eprintln!("dead: {} {}", dead.id, dead.payload);
    ///     }
    /// }
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn dead_letters_from(&self, from_id: u64, max: u32) -> Result<Vec<DeadLetter>, Error> {
        Ok(self
            .handle
            .dead_letters(from_id, max)
            .on(QUEUE)?
            .into_iter()
            .map(|info| DeadLetter {
                id: info.id,
                payload: info.payload,
                attempts: info.attempts,
                enqueued_at: time(info.enqueued_at),
            })
            .collect())
    }

    /// Puts the dead letters `ids` back in the queue (available now,
    /// attempts reset); returns how many. If one of them is not a dead
    /// letter, nothing changes and the call fails with
    /// [`Error::NotFound`]. An empty slice requeues nothing.
    ///
    /// ```no_run
    /// let queue = mini_guest::RawQueue::open("jobs")?;
    /// let ids: Vec<u64> = queue.dead_letters(10)?.iter().map(|d| d.id).collect();
    /// let requeued = queue.requeue(&ids)?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn requeue(&self, ids: &[u64]) -> Result<u32, Error> {
        self.handle.requeue(Some(ids)).on(QUEUE)
    }

    /// Puts every dead letter back in the queue; returns how many.
    ///
    /// ```no_run
    /// let queue = mini_guest::RawQueue::open("jobs")?;
    /// let requeued = queue.requeue_all()?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn requeue_all(&self) -> Result<u32, Error> {
        self.handle.requeue(None).on(QUEUE)
    }

    /// Deletes the dead letters `ids` for good; returns how many. If one of
    /// them is not a dead letter, nothing changes and the call fails with
    /// [`Error::NotFound`]. An empty slice deletes nothing.
    ///
    /// ```no_run
    /// let queue = mini_guest::RawQueue::open("jobs")?;
    /// let purged = queue.purge(&[17, 42])?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn purge(&self, ids: &[u64]) -> Result<u32, Error> {
        self.handle.purge(Some(ids)).on(QUEUE)
    }

    /// Deletes every dead letter for good; returns how many.
    ///
    /// ```no_run
    /// let queue = mini_guest::RawQueue::open("jobs")?;
    /// let purged = queue.purge_all()?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn purge_all(&self) -> Result<u32, Error> {
        self.handle.purge(None).on(QUEUE)
    }

    /// The underlying WIT resource handle (for example to ack with a token
    /// kept elsewhere).
    ///
    /// ```no_run
    /// let queue = mini_guest::RawQueue::open("jobs")?;
    /// let handle: &mini_guest::bindings::mini::storage::queue::Queue = queue.as_bindings();
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn as_bindings(&self) -> &wit::Queue {
        &self.handle
    }

    /// Wraps a WIT resource handle obtained from the raw
    /// [`bindings`](crate::bindings).
    ///
    /// ```no_run
    /// use mini_guest::bindings::mini::storage::queue::Queue;
    ///
    /// let queue = mini_guest::RawQueue::from_bindings(Queue::open("jobs")?);
    /// # Ok::<(), mini_guest::bindings::mini::storage::types::Error>(())
    /// ```
    pub fn from_bindings(handle: wit::Queue) -> Self {
        Self {
            handle: Arc::new(handle),
        }
    }

    fn delivery(&self, message: wit::Message) -> RawDelivery {
        RawDelivery {
            queue: self.handle.clone(),
            message,
        }
    }
}

impl fmt::Debug for RawQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawQueue")
            .field("handle", &self.handle.handle())
            .finish()
    }
}
