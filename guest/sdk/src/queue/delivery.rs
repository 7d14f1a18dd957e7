//! [`Delivery<T>`]: one delivery of a message of type `T` from a
//! [`Queue<T>`](super::Queue).

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;

#[cfg(doc)]
use super::Queue;
use super::{RawDelivery, from_json};
use crate::Error;

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
    pub(super) fn new(raw: RawDelivery) -> Self {
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

    /// The payload, or [`Error::BadPayload`] (with the message id) when the
    /// message's JSON is not a `T`. The lease is held either way.
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
