//! The consumer's side of a queue: deliveries with leases, and what ends
//! them (ack, nack, extend).

use std::hash::BuildHasher;
use std::sync::MutexGuard;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::fold::{Message, Place, QueueRecord};
use super::{Delivery, Inner, Queue, QueueError};

/// How many messages a pop may deliver, and how many payload bytes.
#[derive(Debug, Clone, Copy)]
struct Take {
    max: usize,
    max_bytes: usize,
}

impl Take {
    const ONE: Take = Take {
        max: 1,
        max_bytes: usize::MAX,
    };
}

impl Queue {
    fn token(&self, id: u64, attempt: u32) -> String {
        let nonce = std::hash::RandomState::new().hash_one((
            id,
            attempt,
            self.tokens.fetch_add(1, Ordering::Relaxed),
        ));
        format!("{id}.{attempt}.{nonce:016x}")
    }

    /// Chooses up to `max` messages to deliver now (and the dead letters met
    /// on the way); returns the records and the deliveries they make.
    fn select(
        &self,
        inner: &Inner,
        take: Take,
        lease_ms: u64,
        now: u64,
        acked: Option<u64>,
    ) -> (Vec<QueueRecord>, Vec<Delivery>) {
        let mut records = Vec::new();
        let mut deliveries = Vec::new();
        let mut bytes = 0usize;
        for (at, id) in inner.state.by_visibility() {
            if at > now || deliveries.len() >= take.max {
                break;
            }
            if inner.pending.contains(&id) || acked == Some(id) {
                continue;
            }
            let Some(message) = inner.state.get(id) else {
                continue;
            };
            if message.attempts >= self.options.max_deliveries {
                records.push(QueueRecord::Dead { id });
                continue;
            }
            let size = message.payload.get().len();
            // Only what is returned is leased: a delivery the caller never
            // gets would count towards the dead letters for nothing.
            if !deliveries.is_empty() && bytes.saturating_add(size) > take.max_bytes {
                break;
            }
            bytes = bytes.saturating_add(size);
            let attempt = message.attempts + 1;
            let token = self.token(id, attempt);
            let deadline = now.saturating_add(lease_ms);
            records.push(QueueRecord::Lease {
                id,
                attempt,
                token: token.clone(),
                deadline,
            });
            deliveries.push(Delivery {
                id,
                payload: message.payload.get().to_owned(),
                attempt,
                token,
                enqueued_at: message.at,
                deadline,
            });
        }
        (records, deliveries)
    }

    /// Delivers the next available message, leased for `lease_ms`; `None`
    /// if none is available now. Messages delivered `max_deliveries` times
    /// already go to the dead letters instead.
    pub fn pop(&self, lease_ms: u64) -> Result<Option<Delivery>, QueueError> {
        Ok(self.pop_batch(1, lease_ms)?.into_iter().next())
    }

    /// Delivers up to `max` available messages, each leased for `lease_ms`,
    /// with one durable write.
    pub fn pop_batch(&self, max: usize, lease_ms: u64) -> Result<Vec<Delivery>, QueueError> {
        self.pop_batch_within(max, usize::MAX, lease_ms)
    }

    /// Like [`Queue::pop_batch`], but stops before the payloads returned
    /// would pass `max_bytes` (one message is always returned if one is
    /// available): what a caller can receive in one reply bounds what it
    /// leases.
    ///
    /// ```
    /// use mini_engine::queue::{PushOptions, Queue};
    /// let dir = tempfile::tempdir()?;
    /// let queue = Queue::open(dir.path())?;
    /// for n in 0..10 {
    ///     queue.push(&format!("\"{n:0>98}\""), &PushOptions::default())?; // 100 bytes each
    /// }
    /// assert_eq!(queue.pop_batch_within(10, 250, 30_000)?.len(), 2);
    /// assert_eq!(queue.stats().leased, 2); // the others are not leased
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pop_batch_within(
        &self,
        max: usize,
        max_bytes: usize,
        lease_ms: u64,
    ) -> Result<Vec<Delivery>, QueueError> {
        check_lease(lease_ms)?;
        let inner = self.lock();
        let take = Take { max, max_bytes };
        let (records, deliveries) = self.select(&inner, take, lease_ms, self.now(), None);
        if records.is_empty() {
            return Ok(deliveries);
        }
        self.change(inner, records)?;
        Ok(deliveries)
    }

    /// Like [`Queue::pop`], but waits up to `timeout` for a message to
    /// become available (woken by pushes, nacks and requeues, or when a delay
    /// or lease runs out): no spinning.
    pub fn pop_wait(
        &self,
        lease_ms: u64,
        timeout: Duration,
    ) -> Result<Option<Delivery>, QueueError> {
        check_lease(lease_ms)?;
        // `None`: a timeout too long to add to now, so no end.
        let end = Instant::now().checked_add(timeout);
        let mut inner = self.lock();
        loop {
            let now = self.now();
            let (records, deliveries) = self.select(&inner, Take::ONE, lease_ms, now, None);
            if !records.is_empty() {
                self.change(inner, records)?;
                if let Some(delivery) = deliveries.into_iter().next() {
                    return Ok(Some(delivery));
                }
                inner = self.lock();
                continue;
            }
            let left = end.map_or(Duration::MAX, |end| {
                end.saturating_duration_since(Instant::now())
            });
            if left.is_zero() {
                return Ok(None);
            }
            let next = inner
                .state
                .by_visibility()
                .find(|(_, id)| !inner.pending.contains(id))
                .map(|(at, _)| Duration::from_millis(at.saturating_sub(now).max(1)));
            let pause = next.map_or(left, |n| n.min(left));
            inner = self
                .changed
                .wait_timeout(inner, pause)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            while inner.checkpointing {
                inner = self.wait(inner);
            }
        }
    }

    /// Waits until message `id` has no change being written, then returns
    /// it (or `UnknownMessage`).
    fn settled<'a>(
        &self,
        mut inner: MutexGuard<'a, Inner>,
        id: u64,
    ) -> Result<(MutexGuard<'a, Inner>, Message), QueueError> {
        while inner.pending.contains(&id) {
            inner = self.wait(inner);
        }
        let message = inner
            .state
            .get(id)
            .cloned()
            .ok_or(QueueError::UnknownMessage { id })?;
        Ok((inner, message))
    }

    /// The current lease of message `id`, if `token` is its token.
    fn leased(&self, id: u64, token: &str) -> Result<MutexGuard<'_, Inner>, QueueError> {
        let (inner, message) = self.settled(self.lock(), id)?;
        match &message.place {
            Place::Leased { token: current, .. } if current == token => Ok(inner),
            Place::Leased { .. } => Err(QueueError::StaleToken {
                id,
                redelivered: is_earlier_token(token, id, message.attempts),
            }),
            Place::Ready { .. } | Place::Dead => Err(QueueError::NotLeased { id }),
        }
    }

    /// Acknowledges a delivery: the message is deleted, durably. Fails with
    /// [`QueueError::StaleToken`] if the message was delivered again since.
    pub fn ack(&self, id: u64, token: &str) -> Result<(), QueueError> {
        let inner = self.leased(id, token)?;
        self.change(inner, vec![QueueRecord::Ack { id }])
    }

    /// Acknowledges a delivery and delivers the next available message,
    /// leased for `lease_ms`, with one durable write (JetStream's AckNext):
    /// a worker that loops on this pays one sync per message instead of two.
    /// The ack stands even when no message is available (`None`).
    pub fn ack_next(
        &self,
        id: u64,
        token: &str,
        lease_ms: u64,
    ) -> Result<Option<Delivery>, QueueError> {
        check_lease(lease_ms)?;
        let inner = self.leased(id, token)?;
        let (next, deliveries) = self.select(&inner, Take::ONE, lease_ms, self.now(), Some(id));
        let mut records = vec![QueueRecord::Ack { id }];
        records.extend(next);
        self.change(inner, records)?;
        Ok(deliveries.into_iter().next())
    }

    /// Gives a delivery back: the message is available again after
    /// `delay_ms` (its attempt count stays, so it counts towards the dead
    /// letters).
    pub fn nack(&self, id: u64, token: &str, delay_ms: u64) -> Result<(), QueueError> {
        let inner = self.leased(id, token)?;
        let avail = self.now().saturating_add(delay_ms);
        self.change(inner, vec![QueueRecord::Nack { id, avail }])
    }

    /// Extends a delivery's lease to `lease_ms` from now; returns the new
    /// deadline.
    pub fn extend(&self, id: u64, token: &str, lease_ms: u64) -> Result<u64, QueueError> {
        check_lease(lease_ms)?;
        let inner = self.leased(id, token)?;
        let deadline = self.now().saturating_add(lease_ms);
        self.change(inner, vec![QueueRecord::Extend { id, deadline }])?;
        Ok(deadline)
    }
}

/// Whether `token` has the shape of a token this queue handed out for an
/// earlier delivery of message `id` (`<id>.<attempt>.<nonce>`, see
/// `Queue::token`), whose current delivery is `attempt`.
fn is_earlier_token(token: &str, id: u64, attempt: u32) -> bool {
    let mut parts = token.splitn(3, '.');
    let (Some(token_id), Some(token_attempt), Some(nonce)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    token_id.parse() == Ok(id)
        && token_attempt
            .parse::<u32>()
            .is_ok_and(|a| a >= 1 && a < attempt)
        && nonce.len() == 16
        && nonce.bytes().all(|b| b.is_ascii_hexdigit())
}

fn check_lease(lease_ms: u64) -> Result<(), QueueError> {
    if lease_ms == 0 {
        return Err(QueueError::InvalidArgument(
            "a lease of 0 ms would expire at once".into(),
        ));
    }
    Ok(())
}
