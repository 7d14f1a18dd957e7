//! A queue's pops: what a fetch brought, leased and handed out, or moved to
//! the dead letters; and the wait for a message.

use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream;

use super::lease::checked;
use super::wire::ByteLimit;
use super::{ENQUEUED, ID, Inner, JsDelivery, JsQueue, header_u64, millis, now_ms, token};
use crate::JsError;

impl JsQueue {
    /// The next message available now, leased for `lease`, or `None`. A
    /// message past its deliveries goes to the dead letters on the way (not
    /// returned).
    pub async fn pop(&self, lease: Duration) -> Result<Option<JsDelivery>, JsError> {
        Ok(self.pop_batch(1, usize::MAX, lease).await?.pop())
    }

    /// Up to `max` messages available now, each leased for `lease`, their
    /// payloads within about `max_bytes` (the servers bound the fetch; one
    /// message always comes if one is available).
    pub async fn pop_batch(
        &self,
        max: usize,
        max_bytes: usize,
        lease: Duration,
    ) -> Result<Vec<JsDelivery>, JsError> {
        let deadline = checked(lease)?;
        let inner = &self.inner;
        let mut taken = Vec::new();
        let mut bytes = 0usize;
        while let Some(delivery) = inner.take_held(deadline)? {
            bytes = bytes.saturating_add(delivery.payload.len());
            taken.push(delivery);
            if taken.len() >= max || bytes >= max_bytes {
                return Ok(taken);
            }
        }
        inner.move_due().await?;
        while taken.len() < max {
            let room = if max_bytes == usize::MAX {
                ByteLimit::Any
            } else if taken.is_empty() {
                ByteLimit::AtLeastOne(max_bytes)
            } else if bytes < max_bytes {
                ByteLimit::Within(max_bytes - bytes)
            } else {
                break;
            };
            let fetched = inner
                .fetch(&inner.consumer, max - taken.len(), room, None)
                .await?;
            if fetched.is_empty() {
                break;
            }
            for message in fetched {
                if let Some(delivery) = inner.deliver(message, deadline).await? {
                    bytes = bytes.saturating_add(delivery.payload.len());
                    taken.push(delivery);
                }
            }
        }
        Ok(taken)
    }

    /// Like [`JsQueue::pop`], but waits up to `timeout` for a message: the
    /// servers hold the fetches open (of the ready messages, and of the
    /// delayed ones, moved as their time comes), nothing spins.
    pub async fn pop_wait(
        &self,
        lease: Duration,
        timeout: Duration,
    ) -> Result<Option<JsDelivery>, JsError> {
        let deadline = checked(lease)?;
        if let Some(delivery) = self.pop(lease).await? {
            return Ok(Some(delivery));
        }
        let until = tokio::time::Instant::now() + timeout;
        let inner = &self.inner;
        loop {
            let Some(message) = inner.wait_for_message(until).await? else {
                return Ok(None);
            };
            if let Some(delivery) = inner.deliver(message, deadline).await? {
                return Ok(Some(delivery));
            }
        }
    }

    /// Whether this handle holds a message for its next pop (what
    /// [`JsQueue::ready`] fetched).
    pub fn holds_message(&self) -> bool {
        !self.inner.held().is_empty()
    }

    /// Waits until a pop can find a message (`false`: `until` passed
    /// first). One fetch at a time per queue handle looks (the servers hold
    /// it open); the message it brings is held for this host's next pop.
    pub async fn ready(&self, until: tokio::time::Instant) -> bool {
        let inner = &self.inner;
        loop {
            let held = inner.held_changed.notified();
            tokio::pin!(held);
            held.as_mut().enable();
            if !inner.held().is_empty() {
                return true;
            }
            if !inner.prefetching.swap(true, Ordering::AcqRel) {
                tokio::spawn(prefetch(inner.clone()));
            }
            tokio::select! {
                () = &mut held => {}
                () = tokio::time::sleep_until(until) => return false,
            }
        }
    }

    /// Acknowledges the delivery `token` of `id` and pops the next message
    /// leased for `lease` (two round trips on JetStream; the ack stands if
    /// none is available).
    pub async fn ack_next(
        &self,
        id: u64,
        token: &str,
        lease: Duration,
    ) -> Result<Option<JsDelivery>, JsError> {
        checked(lease)?;
        self.ack(id, token).await?;
        self.pop(lease).await
    }
}

/// Fetches the next ready message (waiting up to a minute) and holds it for
/// a pop; then wakes the waiters of [`JsQueue::ready`].
async fn prefetch(inner: std::sync::Arc<Inner>) {
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    let fetched = match inner.wait_for_message(until).await {
        Ok(Some(message)) => inner.hold(message).await,
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    if fetched.is_err() {
        // The servers out of reach: the waiters look again a little later.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    inner.prefetching.store(false, Ordering::Release);
    inner.held_changed.notify_waiters();
}

/// A fetched message's id, delivery count and seq in the work stream.
fn identity(message: &jetstream::Message) -> Result<(u64, u32, u64), JsError> {
    let info = message
        .info()
        .map_err(|e| JsError::Server(format!("a delivery without its info: {e}")))?;
    let seq = info.stream_sequence;
    let attempt = u32::try_from(info.delivered).unwrap_or(u32::MAX);
    let id = message
        .headers
        .as_ref()
        .and_then(|h| header_u64(h, ID))
        .unwrap_or(seq);
    Ok((id, attempt, seq))
}

impl Inner {
    /// The next ready message, fetched as soon as there is one (the ready
    /// and the delayed ones waited on at once), or `None` at `until`.
    async fn wait_for_message(
        &self,
        until: tokio::time::Instant,
    ) -> Result<Option<jetstream::Message>, JsError> {
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            // The fetch of the ready messages is never dropped before its
            // end: a message the servers sent to a dropped fetch would be
            // leased to no one until the ack wait. A delayed message moved
            // meanwhile comes to it.
            let ready = self.fetch(&self.consumer, 1, ByteLimit::Any, Some(left));
            tokio::pin!(ready);
            let fetched = tokio::select! {
                fetched = &mut ready => fetched?,
                moved = self.move_due_until(until) => {
                    moved?;
                    ready.await?
                }
            };
            if let Some(message) = fetched.into_iter().next() {
                return Ok(Some(message));
            }
        }
    }

    /// `message`, just fetched, leased until `deadline` and handed out; or
    /// moved to the dead letters past its deliveries (`None`).
    async fn deliver(
        self: &std::sync::Arc<Self>,
        message: jetstream::Message,
        deadline: u64,
    ) -> Result<Option<JsDelivery>, JsError> {
        let (id, attempt, seq) = identity(&message)?;
        if attempt > self.config.max_deliveries {
            let headers = message.headers.clone().unwrap_or_default();
            self.bury(&message, id, attempt - 1, &headers).await?;
            return Ok(None);
        }
        let delivery = self.delivery(&message, id, attempt, seq, deadline)?;
        self.keep(id, Some(delivery.token.clone()), message, deadline);
        Ok(Some(delivery))
    }

    /// `message` as the caller sees it, leased until `deadline`.
    fn delivery(
        &self,
        message: &jetstream::Message,
        id: u64,
        attempt: u32,
        seq: u64,
        deadline: u64,
    ) -> Result<JsDelivery, JsError> {
        let payload =
            String::from_utf8(message.payload.to_vec()).map_err(|_| JsError::Corrupt {
                stream: self.work_names.stream.clone(),
                seq,
                reason: "a payload that is not UTF-8".into(),
            })?;
        let enqueued_at = message
            .headers
            .as_ref()
            .and_then(|h| header_u64(h, ENQUEUED))
            .unwrap_or(0);
        Ok(JsDelivery {
            id,
            payload,
            attempt,
            token: token(id, attempt),
            enqueued_at,
            deadline,
        })
    }

    /// Holds `message`, just fetched, for this host's next pop (for at most
    /// the ack wait); or moves it to the dead letters past its deliveries.
    async fn hold(self: &std::sync::Arc<Self>, message: jetstream::Message) -> Result<(), JsError> {
        let (id, attempt, _) = identity(&message)?;
        if attempt > self.config.max_deliveries {
            let headers = message.headers.clone().unwrap_or_default();
            return self.bury(&message, id, attempt - 1, &headers).await;
        }
        // Held for a pop that does not come (a guest that subscribes and
        // never pops), it goes back at the ack wait: that delivery counts.
        let deadline = now_ms().saturating_add(millis(self.config.ack_wait));
        self.keep(id, None, message, deadline);
        self.held().push_back(id);
        Ok(())
    }

    /// A message held for a pop, leased until `deadline`, if one is held.
    fn take_held(
        self: &std::sync::Arc<Self>,
        deadline: u64,
    ) -> Result<Option<JsDelivery>, JsError> {
        loop {
            let Some(id) = self.held().pop_front() else {
                return Ok(None);
            };
            let lease = {
                let mut leases = self.leases();
                match leases.remove(&id) {
                    Some(lease) if lease.token.is_none() => lease,
                    Some(other) => {
                        leases.insert(id, other);
                        continue;
                    }
                    None => continue,
                }
            };
            let (id, attempt, seq) = identity(&lease.message)?;
            let delivery = self.delivery(&lease.message, id, attempt, seq, deadline)?;
            self.keep(id, Some(delivery.token.clone()), lease.message, deadline);
            return Ok(Some(delivery));
        }
    }
}
