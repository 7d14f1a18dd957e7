//! [`Queue<T>`]: a queue of serde values.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

#[cfg(doc)]
use super::RawDelivery;
use super::{DeadLetter, Delivery, PushOptions, QueueStats, RawQueue};
use crate::{Error, Pollable, to_json};

/// A durable queue of messages of type `T`, stored as JSON (`serde_json`):
/// at-least-once delivery with leases, acks, nacks, delays, deduplication
/// and dead letters. [`RawQueue`] is the same queue with JSON text payloads.
///
/// The model is the one of SQS and NATS JetStream work queues. A producer
/// pushes messages; a worker pops one, which *leases* it for a while (the
/// visibility timeout), does the work and acks it. A message whose lease
/// ends before an ack is delivered again, with its attempt number counted
/// up; after the queue's maximum number of deliveries (5 with the `mini`
/// host) it goes to the dead letters instead, where an operator (or the
/// component) lists, requeues or purges it.
///
/// Every change is durable on the host before the call returns, and leases
/// and delays are wall-clock deadlines stored on disk, so they survive a
/// restart of the host.
///
/// # What a delivery guarantees, and what dropping one does
///
/// A pop gives a [`Delivery<T>`] (or a [`RawDelivery`]): a guard over one
/// lease. It ends in one of three ways:
///
/// - [`Delivery::ack`]: the work is done, the message is deleted for good;
/// - [`Delivery::nack`]: the message is given back, available again after a
///   delay (the delivery still counts towards the dead letters);
/// - dropped without either: **nothing is sent to the host**. The lease
///   simply runs out and the message is delivered again (to this worker or
///   another) with the next attempt number. This is the at-least-once
///   contract: a worker that crashes, traps or forgets is the same as one
///   that is dropped. (Dropping does not nack because `Drop` cannot report
///   an error, and a nack that silently failed would be worse than none.)
///
/// Work must therefore be idempotent, or check [`Delivery::attempt`]: the
/// same message can be done twice when a lease ran out while it was being
/// worked on (then the late ack fails with [`Error::StaleToken`]).
///
/// # Payloads that are not a `T`
///
/// A typed pop never fails because of one message's payload: every
/// delivered message comes back as a [`Delivery<T>`] holding the lease, and
/// [`Delivery::payload`] gives either the `T` or an [`Error::BadPayload`]
/// with the message id. The worker decides: ack it to drop a
/// poison message, nack it, or let it be (after the maximum number of
/// deliveries it lands in the dead letters, where
/// [`DeadLetter::payload`] still has the raw JSON).
///
/// ```no_run
/// use std::time::Duration;
///
/// use mini_guest::{Error, Queue};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Job {
///     n: u64,
/// }
///
/// let queue = Queue::<Job>::open("jobs")?;
/// queue.push(&Job { n: 1 })?; // durable when it returns
///
/// let lease = Duration::from_secs(30);
/// while let Some(delivery) = queue.pop_wait(lease, Duration::from_secs(5))? {
///     match delivery.payload() {
///         Ok(job) => {
///             println!("job {} (attempt {})", job.n, delivery.attempt());
///             delivery.ack()?;
///         }
///         Err(e) => {
///             eprintln!("dropping message {}: {e}", delivery.id());
///             delivery.ack()?; // a poison message: delete it
///         }
///     }
/// }
/// # Ok::<(), Error>(())
/// ```
pub struct Queue<T> {
    raw: RawQueue,
    _messages: PhantomData<fn(T) -> T>,
}

impl<T> Queue<T> {
    /// Opens the queue `name`, creating it if it does not exist (see
    /// [`RawQueue::open`]).
    ///
    /// ```no_run
    /// let queue = mini_guest::Queue::<serde_json::Value>::open("jobs")?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Self, Error> {
        Ok(Self::from_raw(RawQueue::open(name)?))
    }

    /// Views a [`RawQueue`] as a queue of `T`.
    ///
    /// ```no_run
    /// let raw = mini_guest::RawQueue::open("jobs")?;
    /// let queue = mini_guest::Queue::<serde_json::Value>::from_raw(raw);
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn from_raw(raw: RawQueue) -> Self {
        Self {
            raw,
            _messages: PhantomData,
        }
    }

    /// The untyped queue underneath.
    ///
    /// ```no_run
    /// let queue = mini_guest::Queue::<serde_json::Value>::open("jobs")?;
    /// queue.raw().push(r#"{"already":"json"}"#)?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn raw(&self) -> &RawQueue {
        &self.raw
    }

    /// Gives back the untyped queue.
    ///
    /// ```no_run
    /// let queue = mini_guest::Queue::<serde_json::Value>::open("jobs")?;
    /// let raw = queue.into_raw();
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn into_raw(self) -> RawQueue {
        self.raw
    }

    /// How many messages are where, now.
    ///
    /// ```no_run
    /// let queue = mini_guest::Queue::<serde_json::Value>::open("jobs")?;
    /// let stats = queue.stats()?;
    /// println!("{} ready, {} leased, {} dead", stats.ready, stats.leased, stats.dead);
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn stats(&self) -> Result<QueueStats, Error> {
        self.raw.stats()
    }

    /// Up to `max` dead letters, by id, with their payloads as JSON text
    /// ([`DeadLetter::parse`] gives the `T`).
    ///
    /// ```no_run
    /// let queue = mini_guest::Queue::<serde_json::Value>::open("jobs")?;
    /// let dead = queue.dead_letters(100)?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn dead_letters(&self, max: u32) -> Result<Vec<DeadLetter>, Error> {
        self.raw.dead_letters(max)
    }

    /// Up to `max` dead letters with ids from `from_id` on (see
    /// [`RawQueue::dead_letters_from`]).
    ///
    /// ```no_run
    /// let queue = mini_guest::Queue::<serde_json::Value>::open("jobs")?;
    /// let next_page = queue.dead_letters_from(101, 100)?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn dead_letters_from(&self, from_id: u64, max: u32) -> Result<Vec<DeadLetter>, Error> {
        self.raw.dead_letters_from(from_id, max)
    }

    /// Puts the dead letters `ids` back (see [`RawQueue::requeue`]).
    ///
    /// ```no_run
    /// let queue = mini_guest::Queue::<serde_json::Value>::open("jobs")?;
    /// let requeued = queue.requeue(&[17])?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn requeue(&self, ids: &[u64]) -> Result<u32, Error> {
        self.raw.requeue(ids)
    }

    /// Puts every dead letter back; returns how many.
    ///
    /// ```no_run
    /// let queue = mini_guest::Queue::<serde_json::Value>::open("jobs")?;
    /// let requeued = queue.requeue_all()?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn requeue_all(&self) -> Result<u32, Error> {
        self.raw.requeue_all()
    }

    /// Deletes the dead letters `ids` (see [`RawQueue::purge`]).
    ///
    /// ```no_run
    /// let queue = mini_guest::Queue::<serde_json::Value>::open("jobs")?;
    /// let purged = queue.purge(&[17])?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn purge(&self, ids: &[u64]) -> Result<u32, Error> {
        self.raw.purge(ids)
    }

    /// Deletes every dead letter; returns how many.
    ///
    /// ```no_run
    /// let queue = mini_guest::Queue::<serde_json::Value>::open("jobs")?;
    /// let purged = queue.purge_all()?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn purge_all(&self) -> Result<u32, Error> {
        self.raw.purge_all()
    }
}

impl<T: Serialize> Queue<T> {
    /// Pushes one message durably and returns its id.
    ///
    /// Fails with [`Error::Serialize`] (nothing sent to the host) when the
    /// message cannot be written as JSON, and with the host's error
    /// otherwise ([`Error::RecordTooLarge`], …).
    ///
    /// ```no_run
    /// let queue = mini_guest::Queue::<serde_json::Value>::open("jobs")?;
    /// let id = queue.push(&serde_json::json!({"job": 1}))?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn push(&self, message: &T) -> Result<u64, Error> {
        self.raw.push(&to_json(message)?)
    }

    /// Pushes one message durably with a delay and/or a deduplication key
    /// (see [`PushOptions`]); returns its id (for a duplicate: the id of the
    /// message it duplicates).
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// use mini_guest::PushOptions;
    ///
    /// let queue = mini_guest::Queue::<serde_json::Value>::open("jobs")?;
    /// let job = serde_json::json!({"order": 1234});
    /// let first = queue.push_with(&job, &PushOptions::dedup("order-1234"))?;
    /// let again = queue.push_with(&job, &PushOptions::dedup("order-1234"))?;
    /// assert_eq!(first, again); // deduplicated
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn push_with(&self, message: &T, options: &PushOptions) -> Result<u64, Error> {
        self.raw.push_with(&to_json(message)?, options)
    }

    /// Pushes messages as one atomic unit (after a crash all of them are
    /// there or none) and returns their ids in order. If any message is
    /// rejected, nothing is pushed; an empty slice is
    /// [`Error::InvalidRecord`].
    ///
    /// ```no_run
    /// use serde_json::json;
    ///
    /// let queue = mini_guest::Queue::<serde_json::Value>::open("jobs")?;
    /// let ids = queue.push_batch(&[json!({"job": 1}), json!({"job": 2})])?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn push_batch(&self, messages: &[T]) -> Result<Vec<u64>, Error> {
        let json = messages
            .iter()
            .map(to_json)
            .collect::<Result<Vec<_>, _>>()?;
        self.raw.push_batch(&json)
    }

    /// Like [`Queue::push_batch`], with options for each message.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// use mini_guest::PushOptions;
    ///
    /// let queue = mini_guest::Queue::<u64>::open("numbers")?;
    /// let ids = queue.push_batch_with(&[
    ///     (1, PushOptions::default()),
    ///     (2, PushOptions::delayed(Duration::from_secs(5))),
    /// ])?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn push_batch_with(&self, messages: &[(T, PushOptions)]) -> Result<Vec<u64>, Error> {
        let json = messages
            .iter()
            .map(|(m, o)| Ok((to_json(m)?, o.clone())))
            .collect::<Result<Vec<_>, Error>>()?;
        self.raw.push_batch_with(&json)
    }
}

impl<T: DeserializeOwned> Queue<T> {
    /// The next available message, leased for `lease` (see
    /// [`RawQueue::pop`]); `None` if no message is available now.
    ///
    /// A payload that is not a `T` does not make this fail: see
    /// [`Delivery::payload`].
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let queue = mini_guest::Queue::<serde_json::Value>::open("jobs")?;
    /// if let Some(delivery) = queue.pop(Duration::from_secs(30))? {
    ///     println!("{}", delivery.payload()?);
    ///     delivery.ack()?;
    /// }
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn pop(&self, lease: Duration) -> Result<Option<Delivery<T>>, Error> {
        Ok(self.raw.pop(lease)?.map(Delivery::new))
    }

    /// Up to `max` available messages, each leased for `lease` (see
    /// [`RawQueue::pop_batch`]).
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let queue = mini_guest::Queue::<serde_json::Value>::open("jobs")?;
    /// for delivery in queue.pop_batch(16, Duration::from_secs(30))? {
    ///     println!("{}", delivery.payload()?);
    ///     delivery.ack()?;
    /// }
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn pop_batch(&self, max: u32, lease: Duration) -> Result<Vec<Delivery<T>>, Error> {
        Ok(self
            .raw
            .pop_batch(max, lease)?
            .into_iter()
            .map(Delivery::new)
            .collect())
    }

    /// Like [`Queue::pop`], but waits up to `timeout` for a message without
    /// spinning (see [`RawQueue::pop_wait`]; any timeout, waited out in
    /// host calls of at most [`MAX_WAIT_PER_CALL`](super::MAX_WAIT_PER_CALL)).
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let queue = mini_guest::Queue::<serde_json::Value>::open("jobs")?;
    /// while let Some(delivery) = queue.pop_wait(Duration::from_secs(30), Duration::from_secs(120))? {
    ///     println!("{}", delivery.payload()?);
    ///     delivery.ack()?;
    /// }
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn pop_wait(
        &self,
        lease: Duration,
        timeout: Duration,
    ) -> Result<Option<Delivery<T>>, Error> {
        Ok(self.raw.pop_wait(lease, timeout)?.map(Delivery::new))
    }

    /// A pollable that is ready when a pop can find a message (see
    /// [`RawQueue::subscribe`]).
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let queue = mini_guest::Queue::<String>::open("jobs")?;
    /// loop {
    ///     match queue.pop(Duration::from_secs(30))? {
    ///         Some(job) => job.ack()?,
    ///         None => queue.subscribe().block(), // no thread held meanwhile
    ///     }
    /// }
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn subscribe(&self) -> Pollable {
        self.raw.subscribe()
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("type", &std::any::type_name::<T>())
            .field("raw", &self.raw)
            .finish()
    }
}
