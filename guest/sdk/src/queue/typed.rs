//! [`Queue<T>`] and [`Delivery<T>`]: a queue of serde values.

use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{DeadLetter, PushOptions, QueueStats, RawDelivery, RawQueue, from_json};
use crate::{Error, to_json};

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
/// [`Delivery::payload`] gives either the `T` or an [`Error::Deserialize`]
/// whose `seq` is the message id. The worker decides: ack it to drop a
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
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("type", &std::any::type_name::<T>())
            .field("raw", &self.raw)
            .finish()
    }
}

/// One delivery of a message of type `T` from a [`Queue<T>`]: the payload
/// and the lease on it — a guard that acks explicitly.
///
/// End it with [`Delivery::ack`] (done: deleted) or [`Delivery::nack`]
/// (given back). **Dropping it sends nothing**: the lease runs out and the
/// message is delivered again with the next attempt number (at-least-once;
/// see
/// [`Queue`](crate::Queue#what-a-delivery-guarantees-and-what-dropping-one-does)).
///
/// The payload is deserialized when the message is popped; one that is not
/// a `T` is kept as an error in the delivery ([`Delivery::payload`]), the
/// lease still held, so the worker can ack (drop) or nack it.
///
/// ```no_run
/// use std::time::Duration;
///
/// let queue = mini_guest::Queue::<u64>::open("numbers")?;
/// if let Some(mut delivery) = queue.pop(Duration::from_secs(30))? {
///     let n = *delivery.payload()?;
///     if n > 1_000_000 {
///         delivery.extend(Duration::from_secs(600))?; // a big one: more time
///     }
///     println!("{n} (attempt {})", delivery.attempt());
///     delivery.ack()?;
/// }
/// # Ok::<(), mini_guest::Error>(())
/// ```
pub struct Delivery<T> {
    raw: RawDelivery,
    payload: Result<T, Error>,
}

impl<T: DeserializeOwned> Delivery<T> {
    fn new(raw: RawDelivery) -> Self {
        let payload = from_json(raw.id(), raw.payload());
        Self { raw, payload }
    }
}

impl<T> Delivery<T> {
    /// The message id.
    ///
    /// ```no_run
    /// # let queue = mini_guest::Queue::<u64>::open("numbers")?;
    /// # let delivery = queue.pop(std::time::Duration::from_secs(30))?.unwrap();
    /// println!("message {}", delivery.id());
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn id(&self) -> u64 {
        self.raw.id()
    }

    /// Which delivery of the message this is, from 1 (see
    /// [`RawDelivery::attempt`]).
    ///
    /// ```no_run
    /// # let queue = mini_guest::Queue::<u64>::open("numbers")?;
    /// # let delivery = queue.pop(std::time::Duration::from_secs(30))?.unwrap();
    /// let retry = delivery.attempt() > 1;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn attempt(&self) -> u32 {
        self.raw.attempt()
    }

    /// The payload, or [`Error::Deserialize`] (its `seq` is the message id)
    /// when the message's JSON is not a `T`. The lease is held either way.
    ///
    /// ```no_run
    /// # let queue = mini_guest::Queue::<u64>::open("numbers")?;
    /// # let delivery = queue.pop(std::time::Duration::from_secs(30))?.unwrap();
    /// match delivery.payload() {
    ///     Ok(n) => println!("{n}"),
    ///     Err(e) => eprintln!("poison message {}: {e}", delivery.id()),
    /// }
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn payload(&self) -> Result<&T, Error> {
        self.payload.as_ref().map_err(Clone::clone)
    }

    /// The payload, mutably (or the deserialization error).
    ///
    /// ```no_run
    /// # let queue = mini_guest::Queue::<Vec<u64>>::open("numbers")?;
    /// # let mut delivery = queue.pop(std::time::Duration::from_secs(30))?.unwrap();
    /// let numbers = delivery.payload_mut()?;
    /// numbers.sort_unstable();
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn payload_mut(&mut self) -> Result<&mut T, Error> {
        self.payload.as_mut().map_err(|e| e.clone())
    }

    /// The payload by value, **giving up the delivery**: nothing is sent to
    /// the host, the lease runs out and the message is delivered again (as
    /// when the delivery is dropped). To keep the payload *and* ack, use
    /// [`Delivery::into_parts`].
    ///
    /// ```no_run
    /// # let queue = mini_guest::Queue::<u64>::open("numbers")?;
    /// # let delivery = queue.pop(std::time::Duration::from_secs(30))?.unwrap();
    /// let peeked: u64 = delivery.into_payload()?; // delivered again after the lease
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn into_payload(self) -> Result<T, Error> {
        self.payload
    }

    /// The payload by value and the untyped delivery that still holds the
    /// lease (ack or nack it when done).
    ///
    /// ```no_run
    /// # let queue = mini_guest::Queue::<String>::open("names")?;
    /// # let delivery = queue.pop(std::time::Duration::from_secs(30))?.unwrap();
    /// let (name, lease) = delivery.into_parts();
    /// let mut names = vec![name?];
    /// lease.ack()?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn into_parts(self) -> (Result<T, Error>, RawDelivery) {
        (self.payload, self.raw)
    }

    /// The untyped delivery: the payload's JSON text, the token, the times.
    ///
    /// ```no_run
    /// # let queue = mini_guest::Queue::<u64>::open("numbers")?;
    /// # let delivery = queue.pop(std::time::Duration::from_secs(30))?.unwrap();
    /// println!("{} until {:?}", delivery.raw().payload(), delivery.raw().deadline());
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn raw(&self) -> &RawDelivery {
        &self.raw
    }

    /// When the message was pushed.
    ///
    /// ```no_run
    /// # let queue = mini_guest::Queue::<u64>::open("numbers")?;
    /// # let delivery = queue.pop(std::time::Duration::from_secs(30))?.unwrap();
    /// let age = delivery.enqueued_at().elapsed().unwrap_or_default();
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn enqueued_at(&self) -> SystemTime {
        self.raw.enqueued_at()
    }

    /// When the lease ends (see [`RawDelivery::deadline`]).
    ///
    /// ```no_run
    /// # let queue = mini_guest::Queue::<u64>::open("numbers")?;
    /// # let delivery = queue.pop(std::time::Duration::from_secs(30))?.unwrap();
    /// let deadline = delivery.deadline();
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn deadline(&self) -> SystemTime {
        self.raw.deadline()
    }

    /// Acknowledges the delivery: the message is deleted, durably. Fails
    /// with [`Error::StaleToken`] when the lease ran out and the message was
    /// delivered again since (see [`RawDelivery::ack`]).
    ///
    /// ```no_run
    /// # let queue = mini_guest::Queue::<u64>::open("numbers")?;
    /// # let delivery = queue.pop(std::time::Duration::from_secs(30))?.unwrap();
    /// delivery.ack()?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn ack(self) -> Result<(), Error> {
        self.raw.ack()
    }

    /// Acknowledges the delivery and takes the next available message in one
    /// durable write (see [`RawDelivery::ack_next`]).
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// let queue = mini_guest::Queue::<u64>::open("numbers")?;
    /// let mut next = queue.pop(Duration::from_secs(30))?;
    /// while let Some(delivery) = next {
    ///     println!("{}", delivery.payload()?);
    ///     next = delivery.ack_next(Duration::from_secs(30))?;
    /// }
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn ack_next(self, lease: Duration) -> Result<Option<Delivery<T>>, Error>
    where
        T: DeserializeOwned,
    {
        Ok(self.raw.ack_next(lease)?.map(Delivery::new))
    }

    /// Gives the delivery back: the message is available again after
    /// `delay`; the delivery still counts towards the dead letters (see
    /// [`RawDelivery::nack`]).
    ///
    /// ```no_run
    /// # let queue = mini_guest::Queue::<u64>::open("numbers")?;
    /// # let delivery = queue.pop(std::time::Duration::from_secs(30))?.unwrap();
    /// delivery.nack(std::time::Duration::ZERO)?; // someone else, now
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn nack(self, delay: Duration) -> Result<(), Error> {
        self.raw.nack(delay)
    }

    /// Extends the lease to `lease` from now; returns the new deadline (see
    /// [`RawDelivery::extend`]).
    ///
    /// ```no_run
    /// # let queue = mini_guest::Queue::<u64>::open("numbers")?;
    /// # let mut delivery = queue.pop(std::time::Duration::from_secs(30))?.unwrap();
    /// delivery.extend(std::time::Duration::from_secs(120))?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn extend(&mut self, lease: Duration) -> Result<SystemTime, Error> {
        self.raw.extend(lease)
    }
}

impl<T: fmt::Debug> fmt::Debug for Delivery<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("id", &self.raw.id())
            .field("attempt", &self.raw.attempt())
            .field("deadline_ms", &self.raw.message.deadline)
            .field("payload", &self.payload)
            .finish()
    }
}
