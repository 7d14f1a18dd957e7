//! [`Queue<T>`] and [`RawQueue`] (with their deliveries, [`Delivery<T>`]
//! and [`RawDelivery`]): durable message queues with at-least-once
//! delivery, over the WIT resource `mini:storage/queue.queue`.
//!
//! The model, the delivery guarantee and what dropping a delivery does are
//! described on [`Queue`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;

use crate::bindings::mini::storage::queue as wit;
use crate::{Error, Resource};

mod delivery;
mod raw;
mod raw_delivery;
mod typed;

pub use delivery::Delivery;
pub use raw::RawQueue;
pub use raw_delivery::RawDelivery;
pub use typed::Queue;

/// What every error of a queue call is about.
const QUEUE: Resource = Resource::Queue;

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

    /// One message of a `push-batch`: `payload` pushed with these options.
    fn message<'a>(&'a self, payload: &'a str) -> wit::PushMessage<'a> {
        wit::PushMessage {
            payload,
            options: self.to_wit(),
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    /// An upper bound of the bytes the queue's snapshot takes: a push that
    /// would take it past [`snapshot_limit`](Self::snapshot_limit) fails
    /// with [`Error::Quota`].
    pub snapshot_bytes: u64,
    /// The most the queue's snapshot may take.
    pub snapshot_limit: u64,
    /// Why the host's last automatic checkpoint of the queue failed, if it
    /// did (the calls went on; the journal is not compacted until one
    /// succeeds).
    pub checkpoint_error: Option<String>,
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
    /// The payload deserialized into `T`; [`Error::BadPayload`] (with the
    /// message id) if it is not a `T`.
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

/// The payload of message `id` as a `T`, or [`Error::BadPayload`].
fn from_json<T: DeserializeOwned>(id: u64, json: &str) -> Result<T, Error> {
    serde_json::from_str(json).map_err(|e| Error::BadPayload {
        id,
        message: e.to_string(),
    })
}
