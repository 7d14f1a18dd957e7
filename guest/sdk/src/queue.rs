//! [`Queue<T>`] and [`RawQueue`]: durable message queues with at-least-once
//! delivery, over the WIT resource `mini:storage/queue.queue`.
//!
//! The model, the delivery guarantee and what dropping a delivery does are
//! described on [`Queue`].

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::mini::storage::queue as wit;
use crate::{Error, to_json};

/// The longest wait one host call of `pop-wait` makes (the WIT bounds it
/// to 60 s). [`Queue::pop_wait`] and [`RawQueue::pop_wait`] accept longer
/// timeouts and call the host again as often as needed.
pub const MAX_WAIT_PER_CALL: Duration = Duration::from_secs(60);

/// How a message is pushed: [`Queue::push_with`], [`RawQueue::push_with`].
///
/// The default is no delay and no deduplication key.
///
/// ```no_run
/// use std::time::Duration;
///
/// use mini_guest::{PushOptions, Queue};
///
/// let queue = Queue::<String>::open("mail")?;
/// let options = PushOptions::delayed(Duration::from_secs(60)).with_dedup_key("welcome-ada");
/// let id = queue.push_with(&"welcome, Ada".to_string(), &options)?;
/// # Ok::<(), mini_guest::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushOptions {
    /// The message becomes available this long from now (millisecond
    /// resolution, rounded up).
    pub delay: Duration,
    /// A deduplication key: a later push with the same key, while the first
    /// message is in the queue or within the host's dedup window (five
    /// minutes with the `mini` host), adds nothing and returns the first
    /// message's id.
    pub dedup_key: Option<String>,
}

impl PushOptions {
    /// Options with a delay and no deduplication key.
    ///
    /// ```no_run
    /// let options = mini_guest::PushOptions::delayed(std::time::Duration::from_secs(5));
    /// ```
    pub fn delayed(delay: Duration) -> Self {
        Self {
            delay,
            dedup_key: None,
        }
    }

    /// Options with a deduplication key and no delay.
    ///
    /// ```no_run
    /// let options = mini_guest::PushOptions::dedup("order-1234");
    /// ```
    pub fn dedup(key: impl Into<String>) -> Self {
        Self {
            delay: Duration::ZERO,
            dedup_key: Some(key.into()),
        }
    }

    /// These options with `delay` instead.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let options = mini_guest::PushOptions::dedup("order-1234").with_delay(Duration::from_secs(1));
    /// ```
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// These options with the deduplication key `key` instead.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let options = mini_guest::PushOptions::delayed(Duration::from_secs(1)).with_dedup_key("k");
    /// ```
    pub fn with_dedup_key(mut self, key: impl Into<String>) -> Self {
        self.dedup_key = Some(key.into());
        self
    }

    fn to_wit(&self) -> wit::PushOptions<'_> {
        wit::PushOptions {
            delay_ms: millis(self.delay),
            dedup_key: self.dedup_key.as_deref(),
        }
    }
}

/// How many messages of a queue are where: [`Queue::stats`].
///
/// ```no_run
/// let queue = mini_guest::RawQueue::open("jobs")?;
/// let stats = queue.stats()?;
/// println!("{} ready, {} leased, {} dead", stats.ready, stats.leased, stats.dead);
/// # Ok::<(), mini_guest::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Available now (including those whose lease ended).
    pub ready: u64,
    /// Leased, the lease running.
    pub leased: u64,
    /// Waiting for their delay.
    pub delayed: u64,
    /// In the dead letters.
    pub dead: u64,
    /// Bytes of the payloads in the queue.
    pub bytes: u64,
}

impl QueueStats {
    /// Every live message: ready, leased, delayed and dead.
    ///
    /// ```no_run
    /// let queue = mini_guest::RawQueue::open("jobs")?;
    /// let empty = queue.stats()?.total() == 0;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn total(&self) -> u64 {
        self.ready + self.leased + self.delayed + self.dead
    }
}

/// A message in the dead letters: delivered the maximum number of times
/// without an ack. Listed by [`Queue::dead_letters`]; put back with
/// [`Queue::requeue`], deleted with [`Queue::purge`].
///
/// The payload is kept as JSON text, so that a message that does not
/// deserialize into the queue's type (often the reason it died) can still be
/// looked at; [`DeadLetter::parse`] deserializes it.
///
/// ```no_run
/// let queue = mini_guest::Queue::<serde_json::Value>::open("jobs")?;
/// for dead in queue.dead_letters(100)? {
///     eprintln!("message {} died after {} attempts: {}", dead.id, dead.attempts, dead.payload);
/// }
/// # Ok::<(), mini_guest::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The message id.
    pub id: u64,
    /// The payload (JSON text), exactly as pushed.
    pub payload: String,
    /// How many times it was delivered.
    pub attempts: u32,
    /// When it was pushed.
    pub enqueued_at: SystemTime,
}

impl DeadLetter {
    /// The payload deserialized into `T`; [`Error::Deserialize`] (with the
    /// message id as `seq`) if it is not a `T`.
    ///
    /// ```no_run
    /// #[derive(serde::Deserialize)]
    /// struct Job {
    ///     n: u64,
    /// }
    ///
    /// let queue = mini_guest::Queue::<Job>::open("jobs")?;
    /// for dead in queue.dead_letters(100)? {
    ///     match dead.parse::<Job>() {
    ///         Ok(job) => println!("job {} died", job.n),
    ///         Err(e) => println!("not a job: {e}"),
    ///     }
    /// }
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Error> {
        from_json(self.id, &self.payload)
    }
}

// ---------------------------------------------------------------------------
// Raw (untyped) queue
// ---------------------------------------------------------------------------

/// A queue whose payloads are JSON text, passed to the host unchanged.
///
/// The host checks every payload: exactly one JSON value, no larger than its
/// record size limit. Use this to move JSON you already have as text; use
/// [`Queue<T>`] for typed messages.
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
    /// damaged, [`Error::Quota`] when the instance holds too many handles.
    ///
    /// ```no_run
    /// let queue = mini_guest::RawQueue::open("jobs")?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Self, Error> {
        Ok(Self::from_bindings(wit::Queue::open(name)?))
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
        Ok(self.handle.push(payload, options.to_wit())?)
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
        let messages: Vec<(&str, wit::PushOptions<'_>)> = payloads
            .iter()
            .map(|p| (p.as_ref(), options.to_wit()))
            .collect();
        Ok(self.handle.push_batch(&messages)?)
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
        let messages: Vec<(&str, wit::PushOptions<'_>)> = messages
            .iter()
            .map(|(p, o)| (p.as_ref(), o.to_wit()))
            .collect();
        Ok(self.handle.push_batch(&messages)?)
    }

    /// The next available message, leased for `lease` (millisecond
    /// resolution, rounded up; a zero lease is [`Error::OutOfRange`]);
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
        Ok(self.handle.pop(millis(lease))?.map(|m| self.delivery(m)))
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
            .pop_batch(max, millis(lease))?
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
            if let Some(message) = self.handle.pop_wait(lease_ms, wait_ms)? {
                return Ok(Some(self.delivery(message)));
            }
            if left <= MAX_WAIT_PER_CALL || start.elapsed() >= timeout {
                return Ok(None);
            }
        }
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
        let s = self.handle.stats()?;
        Ok(QueueStats {
            ready: s.ready,
            leased: s.leased,
            delayed: s.delayed,
            dead: s.dead,
            bytes: s.bytes,
        })
    }

    /// Up to `max` dead letters, by id. (The host may return fewer: the
    /// `mini` host at most 1024 per call.)
    ///
    /// ```no_run
    /// let queue = mini_guest::RawQueue::open("jobs")?;
    /// for dead in queue.dead_letters(100)? {
    ///     eprintln!("dead: {} {}", dead.id, dead.payload);
    /// }
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn dead_letters(&self, max: u32) -> Result<Vec<DeadLetter>, Error> {
        Ok(self
            .handle
            .dead_letters(max)?
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
        Ok(self.handle.requeue(Some(ids))?)
    }

    /// Puts every dead letter back in the queue; returns how many.
    ///
    /// ```no_run
    /// let queue = mini_guest::RawQueue::open("jobs")?;
    /// let requeued = queue.requeue_all()?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn requeue_all(&self) -> Result<u32, Error> {
        Ok(self.handle.requeue(None)?)
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
        Ok(self.handle.purge(Some(ids))?)
    }

    /// Deletes every dead letter for good; returns how many.
    ///
    /// ```no_run
    /// let queue = mini_guest::RawQueue::open("jobs")?;
    /// let purged = queue.purge_all()?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn purge_all(&self) -> Result<u32, Error> {
        Ok(self.handle.purge(None)?)
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
    /// # Ok::<(), mini_guest::bindings::mini::storage::store::Error>(())
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

/// One delivery of a message from a [`RawQueue`]: the payload as JSON text
/// and the lease on it.
///
/// End it with [`RawDelivery::ack`] (done: deleted) or
/// [`RawDelivery::nack`] (given back). Dropping it sends nothing: the lease
/// runs out and the message is delivered again (see
/// [`Queue`](crate::Queue#what-a-delivery-guarantees-and-what-dropping-one-does)).
/// A delivery keeps the queue's handle alive; it can outlive the
/// [`RawQueue`] it came from.
///
/// ```no_run
/// use std::time::Duration;
///
/// let queue = mini_guest::RawQueue::open("jobs")?;
/// if let Some(delivery) = queue.pop(Duration::from_secs(30))? {
///     if delivery.payload().contains("\"urgent\"") {
///         delivery.ack()?;
///     } else {
///         delivery.nack(Duration::from_secs(60))?; // later
///     }
/// }
/// # Ok::<(), mini_guest::Error>(())
/// ```
pub struct RawDelivery {
    queue: Arc<wit::Queue>,
    message: wit::Message,
}

impl RawDelivery {
    /// The message id.
    ///
    /// ```no_run
    /// # let queue = mini_guest::RawQueue::open("jobs")?;
    /// # let delivery = queue.pop(std::time::Duration::from_secs(30))?.unwrap();
    /// println!("message {}", delivery.id());
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn id(&self) -> u64 {
        self.message.id
    }

    /// The payload (JSON text), exactly as pushed.
    ///
    /// ```no_run
    /// # let queue = mini_guest::RawQueue::open("jobs")?;
    /// # let delivery = queue.pop(std::time::Duration::from_secs(30))?.unwrap();
    /// let value: serde_json::Value = serde_json::from_str(delivery.payload()).unwrap();
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn payload(&self) -> &str {
        &self.message.payload
    }

    /// Which delivery of the message this is, from 1: more than 1 means an
    /// earlier lease ran out or was nacked (the work may have been done,
    /// partly or fully, before).
    ///
    /// ```no_run
    /// # let queue = mini_guest::RawQueue::open("jobs")?;
    /// # let delivery = queue.pop(std::time::Duration::from_secs(30))?.unwrap();
    /// if delivery.attempt() > 1 {
    ///     eprintln!("retrying message {}", delivery.id());
    /// }
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn attempt(&self) -> u32 {
        self.message.attempt
    }

    /// The lease token (the host's `ack`, `nack` and `extend` need it;
    /// [`RawDelivery::ack`] and the others pass it).
    ///
    /// ```no_run
    /// # let queue = mini_guest::RawQueue::open("jobs")?;
    /// # let delivery = queue.pop(std::time::Duration::from_secs(30))?.unwrap();
    /// let token = delivery.token().to_owned();
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn token(&self) -> &str {
        &self.message.token
    }

    /// When the message was pushed.
    ///
    /// ```no_run
    /// # let queue = mini_guest::RawQueue::open("jobs")?;
    /// # let delivery = queue.pop(std::time::Duration::from_secs(30))?.unwrap();
    /// let age = delivery.enqueued_at().elapsed().unwrap_or_default();
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn enqueued_at(&self) -> SystemTime {
        time(self.message.enqueued_at)
    }

    /// When the lease ends (wall-clock time on the host): after it, the
    /// message is delivered again and this delivery can no longer be acked.
    ///
    /// ```no_run
    /// # let queue = mini_guest::RawQueue::open("jobs")?;
    /// # let delivery = queue.pop(std::time::Duration::from_secs(30))?.unwrap();
    /// let left = delivery.deadline().duration_since(std::time::SystemTime::now()).unwrap_or_default();
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn deadline(&self) -> SystemTime {
        time(self.message.deadline)
    }

    /// Acknowledges the delivery: the work is done, the message is deleted,
    /// durably.
    ///
    /// Fails with [`Error::StaleToken`] when the lease ran out and the
    /// message was delivered again since (the other delivery stands), and
    /// with [`Error::NotFound`] when the message is gone.
    ///
    /// ```no_run
    /// # let queue = mini_guest::RawQueue::open("jobs")?;
    /// # let delivery = queue.pop(std::time::Duration::from_secs(30))?.unwrap();
    /// delivery.ack()?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn ack(self) -> Result<(), Error> {
        Ok(self.queue.ack(self.message.id, &self.message.token)?)
    }

    /// Gives the delivery back: the message is available again after
    /// `delay` (zero: at once). The delivery still counts towards the dead
    /// letters.
    ///
    /// ```no_run
    /// # let queue = mini_guest::RawQueue::open("jobs")?;
    /// # let delivery = queue.pop(std::time::Duration::from_secs(30))?.unwrap();
    /// delivery.nack(std::time::Duration::from_secs(10))?; // retry in 10 s
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn nack(self, delay: Duration) -> Result<(), Error> {
        Ok(self
            .queue
            .nack(self.message.id, &self.message.token, millis(delay))?)
    }

    /// Extends the lease to `lease` from now (for long work); returns the
    /// new deadline, also what [`RawDelivery::deadline`] returns from then
    /// on. Fails with [`Error::StaleToken`] when the lease already ran out
    /// and the message was delivered again.
    ///
    /// ```no_run
    /// # let queue = mini_guest::RawQueue::open("jobs")?;
    /// # let mut delivery = queue.pop(std::time::Duration::from_secs(30))?.unwrap();
    /// let deadline = delivery.extend(std::time::Duration::from_secs(300))?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn extend(&mut self, lease: Duration) -> Result<SystemTime, Error> {
        let deadline = self
            .queue
            .extend(self.message.id, &self.message.token, millis(lease))?;
        self.message.deadline = deadline;
        Ok(time(deadline))
    }

    /// The message as the host returned it.
    ///
    /// ```no_run
    /// # let queue = mini_guest::RawQueue::open("jobs")?;
    /// # let delivery = queue.pop(std::time::Duration::from_secs(30))?.unwrap();
    /// let deadline_ms = delivery.as_bindings().deadline;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn as_bindings(&self) -> &wit::Message {
        &self.message
    }
}

impl fmt::Debug for RawDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawDelivery")
            .field("id", &self.message.id)
            .field("attempt", &self.message.attempt)
            .field("deadline_ms", &self.message.deadline)
            .field("payload", &self.message.payload)
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Typed queue
// ---------------------------------------------------------------------------

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
    /// host calls of at most [`MAX_WAIT_PER_CALL`]).
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

/// `d` in whole milliseconds, rounded up (a lease or delay is never shorter
/// than asked), saturating.
fn millis(d: Duration) -> u64 {
    let ms = d.as_millis() + u128::from(!d.subsec_nanos().is_multiple_of(1_000_000));
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// Milliseconds since the Unix epoch as a time.
fn time(ms: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .unwrap_or(UNIX_EPOCH)
}

fn from_json<T: DeserializeOwned>(id: u64, json: &str) -> Result<T, Error> {
    serde_json::from_str(json).map_err(|e| Error::Deserialize {
        seq: id,
        message: e.to_string(),
    })
}
