//! A queue on JetStream ([`JsQueue`]): a work-queue stream, one durable
//! pull consumer, the host's leases; its dead letters in `dead`, its round
//! trips in `wire`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::message::AckKind;
use async_nats::jetstream::{self, stream};
use sha2::{Digest, Sha256};

use crate::names::StreamName;
use crate::{JetStreamOptions, JsError, retry};

mod dead;
mod wire;

pub use dead::JsDeadLetter;

/// The header holding a message's id once it moved (to the dead letters,
/// or back from them).
const ID: &str = "Mini-Id";
/// The header holding when the message was first pushed (ms since the epoch).
const ENQUEUED: &str = "Mini-Enqueued";
/// The header holding a dead letter's deliveries.
const ATTEMPTS: &str = "Mini-Attempts";
/// The durable consumer every host of a queue shares.
const CONSUMER: &str = "mini-workers";

/// How a queue delivers (fixed when its consumer is made).
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// How long a delivery is leased (the consumer's ack wait).
    pub lease: Duration,
    /// Deliveries after which a message goes to the dead letters (as the
    /// local engine's `DEFAULT_MAX_DELIVERIES`, 5).
    pub max_deliveries: u32,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            lease: Duration::from_secs(30),
            max_deliveries: 5,
        }
    }
}

/// A message delivered by [`JsQueue::pop`], leased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsDelivery {
    /// The message's id.
    pub id: u64,
    /// The payload, as pushed.
    pub payload: String,
    /// Which delivery this is, from 1.
    pub attempt: u32,
    /// The token `ack`, `nack` and `extend` need.
    pub token: String,
    /// When it was pushed (ms since the Unix epoch).
    pub enqueued_at: u64,
    /// When the lease ends (ms since the Unix epoch).
    pub deadline: u64,
}

/// How many messages are where, as the servers count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsQueueStats {
    /// Not delivered yet, or given back (`nack`).
    pub ready: u64,
    /// Delivered and not acked: leased, or whose lease ended and which
    /// wait to be delivered again.
    pub leased: u64,
    /// In the dead letters.
    pub dead: u64,
}

/// A queue on JetStream: a work-queue stream and one durable pull consumer
/// that every host of the queue shares (competing consumers), and a
/// stream of its dead letters.
///
/// - A push is one publish, stored (on a quorum, fsync'd) before it
///   returns; its id is the stream's seq. A dedup key becomes the message's
///   `Nats-Msg-Id` (hashed: a guest's key is any text): a second push of it
///   within the stream's duplicate window (five minutes) stores nothing and
///   returns the first message's id.
/// - A pop fetches the next message; the consumer's ack wait is the lease.
///   JetStream has one ack wait per consumer, not one per delivery: every
///   lease lasts [`QueueConfig::lease`], and `extend` restarts it (`+WPI`).
/// - Tokens are kept by the host that delivered: a token is its delivery's,
///   and stops being valid when its lease ends, when the message is acked or
///   given back, or when this host delivers the message again. JetStream
///   itself takes an ack through any earlier delivery (a stale worker would
///   delete a message another worker holds), so an ack after the lease's
///   end is refused here (`stale-token`) even if no one took the message
///   since: at worst it is delivered once more.
/// - The consumer delivers without a limit; a message fetched after
///   [`QueueConfig::max_deliveries`] deliveries goes to the dead letters:
///   published to the dead-letter stream (its id kept in a header, and a
///   `Nats-Msg-Id` of its own, so a pop that dies in between and the next
///   one store it once), then removed from the work queue. Requeued, it
///   is published again with its id and enqueue time, its attempts from 0.
/// - An ack removes the message: a delete of its seq, which the stream's
///   replicas commit before the answer, then the ack itself. An ack alone
///   is answered by the consumer's leader before its replicas have it: with
///   that leader killed, an acked message was delivered again.
///
/// Clones share the host's leases.
#[derive(Debug, Clone)]
pub struct JsQueue {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    context: jetstream::Context,
    work: stream::Stream,
    work_names: StreamName,
    dead: stream::Stream,
    dead_names: StreamName,
    consumer: PullConsumer,
    config: QueueConfig,
    retry_for: Duration,
    /// The deliveries this host made whose lease runs, by id.
    leases: Mutex<HashMap<u64, Lease>>,
}

#[derive(Debug)]
struct Lease {
    token: String,
    message: jetstream::Message,
    deadline: u64,
}

impl JsQueue {
    pub(crate) async fn open(
        context: jetstream::Context,
        (work, work_names): (stream::Stream, StreamName),
        (dead, dead_names): (stream::Stream, StreamName),
        config: QueueConfig,
        options: &JetStreamOptions,
    ) -> Result<JsQueue, JsError> {
        let consumer_config = pull::Config {
            durable_name: Some(CONSUMER.to_owned()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: config.lease,
            // Dead letters are the host's: see the module's doc.
            max_deliver: -1,
            num_replicas: options.replicas,
            ..pull::Config::default()
        };
        let consumer = retry(options.retry_for, || {
            work.get_or_create_consumer(CONSUMER, consumer_config.clone())
        })
        .await
        .map_err(|e| {
            JsError::Server(format!(
                "cannot open the consumer of {}: {e}",
                work_names.stream
            ))
        })?;
        Ok(JsQueue {
            inner: Arc::new(Inner {
                context,
                work,
                work_names,
                dead,
                dead_names,
                consumer,
                config,
                retry_for: options.retry_for,
                leases: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Pushes `payload`; returns its id once stored. With `dedup_key`, a
    /// second push of the key within the duplicate window returns the
    /// first message's id and stores nothing.
    pub async fn push(&self, payload: String, dedup_key: Option<&str>) -> Result<u64, JsError> {
        let mut headers = HeaderMap::new();
        headers.insert(ENQUEUED, now_ms().to_string().as_str());
        let msg_id = match dedup_key {
            Some(key) => dedup_id(key),
            // Its own, so that a push sent again after a lost answer is
            // stored once.
            None => format!("push-{}", nonce()),
        };
        headers.insert("Nats-Msg-Id", msg_id.as_str());
        self.inner
            .publish(&self.inner.work_names, headers, payload.into())
            .await
    }

    /// The next message available now, leased, or `None`. A message past
    /// its deliveries goes to the dead letters on the way (not returned).
    pub async fn pop(&self) -> Result<Option<JsDelivery>, JsError> {
        Ok(self.pop_batch(1, usize::MAX).await?.pop())
    }

    /// Up to `max` messages available now, each leased. Past `max_bytes` of
    /// payloads (one message always comes if one is available) the rest
    /// of what was fetched is given back at once (a delivery counted).
    pub async fn pop_batch(
        &self,
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<JsDelivery>, JsError> {
        let mut taken = Vec::new();
        let (mut bytes, mut gave_back) = (0, false);
        while taken.len() < max {
            let fetched = self.inner.fetch(max - taken.len(), None).await?;
            if fetched.is_empty() {
                break;
            }
            for message in fetched {
                let full = !taken.is_empty() && bytes + message.payload.len() > max_bytes;
                if full {
                    let _ = message.ack_with(AckKind::Nak(None)).await;
                    gave_back = true;
                    continue;
                }
                if let Some(delivery) = self.deliver(message).await? {
                    bytes += delivery.payload.len();
                    taken.push(delivery);
                }
            }
            // Fetching again would take back what was just given back.
            if gave_back || bytes > max_bytes {
                break;
            }
        }
        Ok(taken)
    }

    /// Like [`JsQueue::pop`], but waits up to `timeout` for a message: the
    /// servers hold the fetch open, nothing spins.
    pub async fn pop_wait(&self, timeout: Duration) -> Result<Option<JsDelivery>, JsError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let wait = (!left.is_zero()).then_some(left);
            let Some(message) = self.inner.fetch(1, wait).await?.pop() else {
                return Ok(None);
            };
            if let Some(delivery) = self.deliver(message).await? {
                return Ok(Some(delivery));
            }
        }
    }

    /// Acknowledges the delivery `token` of `id` and pops the next message
    /// (two round trips on JetStream; the ack stands if none is available).
    pub async fn ack_next(&self, id: u64, token: &str) -> Result<Option<JsDelivery>, JsError> {
        self.ack(id, token).await?;
        self.pop().await
    }

    /// `message`, just fetched, leased and handed out; or moved to the dead
    /// letters past its deliveries (`None`).
    async fn deliver(&self, message: jetstream::Message) -> Result<Option<JsDelivery>, JsError> {
        let info = message
            .info()
            .map_err(|e| JsError::Server(format!("a delivery without its info: {e}")))?;
        let (seq, delivered) = (info.stream_sequence, info.delivered);
        let attempt = u32::try_from(delivered).unwrap_or(u32::MAX);
        let headers = message.headers.clone().unwrap_or_default();
        let id = header_u64(&headers, ID).unwrap_or(seq);
        if attempt > self.inner.config.max_deliveries {
            self.inner.bury(&message, id, attempt - 1, &headers).await?;
            return Ok(None);
        }
        let payload =
            String::from_utf8(message.payload.to_vec()).map_err(|_| JsError::Corrupt {
                stream: self.inner.work_names.stream.clone(),
                seq,
                reason: "a payload that is not UTF-8".into(),
            })?;
        let deadline = now_ms() + millis(self.inner.config.lease);
        let token = token(id, attempt);
        let delivery = JsDelivery {
            id,
            payload,
            attempt,
            token: token.clone(),
            enqueued_at: header_u64(&headers, ENQUEUED).unwrap_or(0),
            deadline,
        };
        self.inner.leases().insert(
            id,
            Lease {
                token,
                message,
                deadline,
            },
        );
        Ok(Some(delivery))
    }

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

    /// Starts the delivery's lease again (now + the lease); returns the new
    /// deadline.
    pub async fn extend(&self, id: u64, token: &str) -> Result<u64, JsError> {
        let lease = self.inner.take_lease(id, token)?;
        let result = lease
            .message
            .ack_with(AckKind::Progress)
            .await
            .map_err(|e| JsError::Connect(format!("the extend of message {id} failed: {e}")));
        let deadline = now_ms() + millis(self.inner.config.lease);
        // Sent or not, the delivery stays this host's until its deadline.
        let kept = Lease {
            deadline: if result.is_ok() {
                deadline
            } else {
                lease.deadline
            },
            ..lease
        };
        self.inner.leases().insert(id, kept);
        result.map(|()| deadline)
    }

    /// How many messages are where.
    pub async fn stats(&self) -> Result<JsQueueStats, JsError> {
        let consumer = self.inner.consumer_info().await?;
        let dead = self.inner.dead_state().await?.messages;
        Ok(JsQueueStats {
            ready: consumer.num_pending,
            leased: consumer.num_ack_pending as u64,
            dead,
        })
    }
}

impl Inner {
    fn leases(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Lease>> {
        self.leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The lease of `id` if `token` is its running one (removed from the
    /// map), else `stale-token`.
    fn take_lease(&self, id: u64, token: &str) -> Result<Lease, JsError> {
        let mut leases = self.leases();
        match leases.remove(&id) {
            Some(lease) if lease.token == token && lease.deadline > now_ms() => Ok(lease),
            Some(lease) => {
                let ended = lease.deadline <= now_ms();
                if !ended {
                    leases.insert(id, lease);
                }
                Err(JsError::StaleToken(format!(
                    "message {id}: {}",
                    if ended {
                        "the lease ended"
                    } else {
                        "not the token of its running lease"
                    }
                )))
            }
            None => Err(JsError::StaleToken(format!(
                "message {id} has no running lease from this host"
            ))),
        }
    }

    /// Ends the delivery `token` of `id` by `send` (an ack, a nak); if it
    /// fails, the lease is kept for another try.
    async fn answer<F>(
        &self,
        id: u64,
        token: &str,
        send: impl FnOnce(jetstream::Message) -> F,
    ) -> Result<(), JsError>
    where
        F: std::future::Future<Output = Result<(), JsError>>,
    {
        let lease = self.take_lease(id, token)?;
        let sent = send(lease.message.clone()).await;
        if sent.is_err() {
            self.leases().insert(id, lease);
        }
        sent
    }
}

/// The `Nats-Msg-Id` of a dedup key: a hash, for a key is any text.
fn dedup_id(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("key-{hex}")
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.as_str().parse().ok()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A token no one can guess: `<id>.<attempt>.<random>`.
fn token(id: u64, attempt: u32) -> String {
    format!("{id}.{attempt}.{}", nonce())
}

/// A random number, different on every call.
fn nonce() -> String {
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nonce = std::hash::RandomState::new().hash_one(NEXT.fetch_add(1, Ordering::Relaxed));
    format!("{nonce:016x}")
}
