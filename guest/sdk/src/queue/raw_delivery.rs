//! [`RawDelivery`]: one delivery of a message from a [`RawQueue`](super::RawQueue).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[cfg(doc)]
use super::RawQueue;
use super::{QUEUE, millis, time};
use crate::Error;
use crate::bindings::mini::storage::queue as wit;
use crate::error::HostResult;

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
    pub(super) queue: Arc<wit::Queue>,
    pub(super) message: wit::Message,
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
        self.queue
            .ack(self.message.id, &self.message.token)
            .on(QUEUE)
    }

    /// Acknowledges the delivery and takes the next available message,
    /// leased for `lease`, in one durable write (JetStream's AckNext): a
    /// worker loop pays one sync per message instead of two. The ack stands
    /// even when no message is available (`None`).
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// let queue = mini_guest::RawQueue::open("jobs")?;
    /// let mut next = queue.pop(Duration::from_secs(30))?;
    /// while let Some(delivery) = next {
    ///     println!("{}", delivery.payload()); // the work
    ///     next = delivery.ack_next(Duration::from_secs(30))?;
    /// }
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn ack_next(self, lease: Duration) -> Result<Option<RawDelivery>, Error> {
        let next = self
            .queue
            .ack_next(self.message.id, &self.message.token, millis(lease))
            .on(QUEUE)?;
        Ok(next.map(|message| RawDelivery {
            queue: self.queue.clone(),
            message,
        }))
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
        self.queue
            .nack(self.message.id, &self.message.token, millis(delay))
            .on(QUEUE)
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
            .extend(self.message.id, &self.message.token, millis(lease))
            .on(QUEUE)?;
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
