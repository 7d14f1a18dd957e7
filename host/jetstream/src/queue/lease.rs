//! A queue's leases, kept by the host that delivered: tokens checked here,
//! progress sent while a lease runs past the consumer's ack wait, and the
//! message given back at the lease's end.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::message::AckKind;

use super::{Inner, JsQueue, millis, now_ms};
use crate::JsError;

/// A delivery this host holds until `deadline`: for a caller (`token`), or
/// for this host's next pop (no token).
#[derive(Debug)]
pub(super) struct Lease {
    pub token: Option<String>,
    pub message: jetstream::Message,
    pub deadline: u64,
    /// Which keeper keeps it.
    pub generation: u64,
}

/// `lease` as a delivery lasting `lease` from now, or `invalid-argument`.
pub(super) fn checked(lease: Duration) -> Result<u64, JsError> {
    if lease.is_zero() {
        return Err(JsError::InvalidArgument(
            "a lease of 0 ms would expire at once".into(),
        ));
    }
    Ok(now_ms().saturating_add(millis(lease)))
}

impl JsQueue {
    /// Acknowledges the delivery `token` of `id`: the message is deleted.
    /// An ack the servers did not answer keeps the lease: it may be sent
    /// again with the same token.
    pub async fn ack(&self, id: u64, token: &str) -> Result<(), JsError> {
        let inner = &self.inner;
        inner
            .answer(
                id,
                token,
                |message| async move { inner.remove(&message).await },
            )
            .await
    }

    /// Gives the delivery back: the message is available again after
    /// `delay` (the delivery counts towards the dead letters).
    pub async fn nack(&self, id: u64, token: &str, delay: Duration) -> Result<(), JsError> {
        let delay = (!delay.is_zero()).then_some(delay);
        self.inner
            .answer(id, token, |message| async move {
                message.ack_with(AckKind::Nak(delay)).await.map_err(|e| {
                    JsError::Connect(format!("the nack of message {id} got no answer: {e}"))
                })
            })
            .await
    }

    /// Leases the delivery `token` of `id` for `lease` from now; returns the
    /// new deadline.
    pub async fn extend(&self, id: u64, token: &str, lease: Duration) -> Result<u64, JsError> {
        let deadline = checked(lease)?;
        let inner = &self.inner;
        let held = inner.take_lease(id, token).await?;
        // The servers' clock starts again too, so that a lease shortened
        // below what is left of the ack wait is not held past its end.
        let sent = held
            .message
            .ack_with(AckKind::Progress)
            .await
            .map_err(|e| JsError::Connect(format!("the extend of message {id} failed: {e}")));
        // Sent or not, the delivery stays this host's until its deadline.
        let deadline = if sent.is_ok() {
            deadline
        } else {
            held.deadline
        };
        inner.keep(id, held.token, held.message, deadline);
        sent.map(|()| deadline)
    }
}

impl Inner {
    pub(super) fn leases(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, Lease>> {
        self.leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Holds `message` (of id `id`) as a lease of `token` until `deadline`
    /// and starts its keeper.
    pub(super) fn keep(
        self: &Arc<Self>,
        id: u64,
        token: Option<String>,
        message: jetstream::Message,
        deadline: u64,
    ) {
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        self.leases().insert(
            id,
            Lease {
                token,
                message,
                deadline,
                generation,
            },
        );
        let beat = (self.config.ack_wait / 2).max(Duration::from_millis(50));
        tokio::spawn(keeper(Arc::downgrade(self), id, generation, beat));
    }

    /// The lease of `id` if `token` is its running one (removed from the
    /// map), else `stale-token` or, for an id no message has, `not-found`.
    pub(super) async fn take_lease(&self, id: u64, token: &str) -> Result<Lease, JsError> {
        let refused = {
            let mut leases = self.leases();
            match leases.remove(&id) {
                Some(lease)
                    if lease.token.as_deref() == Some(token) && lease.deadline > now_ms() =>
                {
                    return Ok(lease);
                }
                Some(lease) => {
                    let why = if lease.token.is_none() {
                        "not leased"
                    } else if lease.deadline <= now_ms() {
                        "the lease ended"
                    } else {
                        "not the token of its running lease"
                    };
                    leases.insert(id, lease);
                    format!("message {id}: {why}")
                }
                None => format!("message {id} has no running lease from this host"),
            }
        };
        if self.in_work_queue(id).await? {
            Err(JsError::StaleToken(refused))
        } else {
            Err(JsError::NotFound(format!("no message {id} in the queue")))
        }
    }

    /// Ends the delivery `token` of `id` by `send` (an ack, a nak); if it
    /// fails, the lease is kept for another try.
    pub(super) async fn answer<F>(
        self: &Arc<Self>,
        id: u64,
        token: &str,
        send: impl FnOnce(jetstream::Message) -> F,
    ) -> Result<(), JsError>
    where
        F: std::future::Future<Output = Result<(), JsError>>,
    {
        let lease = self.take_lease(id, token).await?;
        let sent = send(lease.message.clone()).await;
        if sent.is_err() {
            self.keep(id, lease.token, lease.message, lease.deadline);
        }
        sent
    }
}

/// Keeps the lease `generation` of `id`: progress every `beat` (half the
/// ack wait) while it runs, a nak at its end. Stops when the lease is gone
/// (acked, given back, extended: a new keeper) or the queue is.
async fn keeper(queue: Weak<Inner>, id: u64, generation: u64, beat: Duration) {
    loop {
        let Some(deadline) = lease_deadline(&queue, id, generation) else {
            return;
        };
        let left = deadline.saturating_sub(now_ms());
        if left == 0 {
            let ended = queue.upgrade().and_then(|inner| {
                let mut leases = inner.leases();
                let ours = leases.get(&id).is_some_and(|l| l.generation == generation);
                ours.then(|| leases.remove(&id)).flatten()
            });
            if let Some(lease) = ended {
                // Lost, the servers give it back at their ack wait.
                let _ = lease.message.ack_with(AckKind::Nak(None)).await;
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(left).min(beat)).await;
        let still_running = lease_deadline(&queue, id, generation).is_some_and(|d| d > now_ms());
        if still_running {
            let message = queue.upgrade().and_then(|inner| {
                let leases = inner.leases();
                leases
                    .get(&id)
                    .filter(|l| l.generation == generation)
                    .map(|l| l.message.clone())
            });
            if let Some(message) = message {
                let _ = message.ack_with(AckKind::Progress).await;
            }
        }
    }
}

/// The deadline of the lease `generation` of `id`, if it is still held.
fn lease_deadline(queue: &Weak<Inner>, id: u64, generation: u64) -> Option<u64> {
    let inner = queue.upgrade()?;
    let leases = inner.leases();
    leases
        .get(&id)
        .filter(|l| l.generation == generation)
        .map(|l| l.deadline)
}
