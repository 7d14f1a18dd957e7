//! A queue on JetStream ([`JsQueue`]): a work-queue stream, two durable
//! pull consumers (the ready messages, the delayed ones), the host's
//! leases; its pops in `pop`, its leases in `lease`, its delayed pushes in
//! `delay`, its dead letters in `dead`, its round trips in `wire`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::{self, stream};
use sha2::{Digest, Sha256};

use crate::names::StreamName;
use crate::{JetStreamOptions, JsError, retry};

mod batch;
mod dead;
mod delay;
mod lease;
mod pop;
mod wire;

pub use dead::JsDeadLetter;
use lease::Lease;

/// The header holding a message's id once it moved (to the dead letters,
/// back from them, or from the delayed messages to the ready ones).
const ID: &str = "Mini-Id";
/// The header holding when the message was first pushed (ms since the epoch).
const ENQUEUED: &str = "Mini-Enqueued";
/// The header holding a dead letter's deliveries.
const ATTEMPTS: &str = "Mini-Attempts";
/// The header holding when a delayed message becomes available (ms since
/// the epoch).
const NOT_BEFORE: &str = "Mini-Not-Before";
/// The durable consumer of the ready messages every host of a queue shares.
const CONSUMER: &str = "mini-workers";
/// The durable consumer of the delayed messages every host of a queue shares.
const DELAYS: &str = "mini-delays";
/// How long a delayed message that a host took to move stays that host's
/// (the delays consumer's ack wait): a host that dies mid-move leaves it to
/// another this much later.
const MOVE_WAIT: Duration = Duration::from_secs(5);

/// How a queue delivers (fixed when its consumers are made).
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// How long the servers keep a delivery leased when no host keeps it
    /// (the consumer's ack wait). A lease is the delivering host's: it
    /// keeps longer leases with progress messages and gives shorter ones
    /// back at their end. A host that dies holding a lease leaves the
    /// message to the others at most this long after its last progress.
    pub ack_wait: Duration,
    /// Deliveries after which a message goes to the dead letters (as the
    /// local engine's `DEFAULT_MAX_DELIVERIES`, 5).
    pub max_deliveries: u32,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            ack_wait: Duration::from_secs(30),
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

/// One message of [`JsQueue::push_batch`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsPush {
    /// The payload.
    pub payload: String,
    /// A key that stores the message once within the duplicate window.
    pub dedup_key: Option<String>,
    /// How long the message waits before it can be popped.
    pub delay: Duration,
}

/// How many messages are where, as the servers count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsQueueStats {
    /// Not delivered yet, or given back (`nack`).
    pub ready: u64,
    /// Delivered and not acked: leased, or whose lease ended and which
    /// wait to be delivered again.
    pub leased: u64,
    /// Pushed with a delay that has not passed (or not yet moved to the
    /// ready messages).
    pub delayed: u64,
    /// In the dead letters.
    pub dead: u64,
    /// What the work stream holds, in bytes (payloads, subjects, headers).
    pub bytes: u64,
    /// The most the work stream may hold (`None`: no limit of its own).
    pub max_bytes: Option<u64>,
}

/// A queue on JetStream: a work-queue stream whose ready messages one
/// durable pull consumer delivers to every host of the queue (competing
/// consumers), whose delayed messages wait under a subject of their own,
/// and a stream of its dead letters.
///
/// - A push is one publish, stored (on a quorum, fsync'd) before it
///   returns; its id is the stream's seq. A dedup key becomes the message's
///   `Nats-Msg-Id` (hashed: a guest's key is any text): a second push of it
///   within the stream's duplicate window (five minutes) stores nothing and
///   returns the first message's id. A batch is one JetStream atomic batch:
///   all its messages stored, at consecutive seqs, or none (see
///   [`JsQueue::push_batch`]).
/// - A delayed push waits under the delayed subject; the delays consumer
///   holds it back (a nak with the time left) and a host that pops moves
///   it to the ready messages once its time came (its id kept in a header,
///   the move stored once through its `Nats-Msg-Id`). A delay is a "not
///   before": the message comes when a host of the queue next pops, waits
///   or subscribes after it.
/// - A pop fetches the next message and leases it for the caller's lease.
///   The lease is kept by the delivering host: it sends progress (`+WPI`)
///   while the lease runs past the consumer's ack wait, and gives the
///   message back (a nak) at the lease's end. Only when that host dies is
///   the ack wait ([`QueueConfig::ack_wait`]) the lease.
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
/// - [`JsQueue::ready`] waits until a pop can find a message by fetching
///   it: the message is then held by this handle for its next pop, for at
///   most the ack wait (then given back: that delivery counts).
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
    /// The subject of the delayed messages, in the work stream.
    delayed_subject: String,
    dead: stream::Stream,
    dead_names: StreamName,
    consumer: PullConsumer,
    delays: PullConsumer,
    config: QueueConfig,
    retry_for: Duration,
    /// The deliveries this host made whose lease runs, by id.
    leases: Mutex<HashMap<u64, Lease>>,
    /// The ids of the messages [`JsQueue::ready`] fetched and this host holds
    /// for its next pop (in `leases` without a token).
    held: Mutex<VecDeque<u64>>,
    /// Raised when a message is held (or a look for one ended).
    held_changed: tokio::sync::Notify,
    /// Whether a fetch for [`JsQueue::ready`] runs.
    prefetching: std::sync::atomic::AtomicBool,
    /// The generation of the newest lease: a lease's keeper stops when its
    /// lease is no longer the generation it keeps.
    generations: AtomicU64,
}

/// The delayed messages' subject of a queue whose ready messages are `subject`.
pub(crate) fn delayed_subject(subject: &str) -> String {
    format!("{subject}.delayed")
}

impl JsQueue {
    pub(crate) async fn open(
        context: jetstream::Context,
        (work, work_names): (stream::Stream, StreamName),
        (dead, dead_names): (stream::Stream, StreamName),
        config: QueueConfig,
        options: &JetStreamOptions,
    ) -> Result<JsQueue, JsError> {
        let delayed = delayed_subject(&work_names.subject);
        let durable = |name: &str, filter: &str, ack_wait: Duration| pull::Config {
            durable_name: Some(name.to_owned()),
            filter_subject: filter.to_owned(),
            ack_policy: AckPolicy::Explicit,
            ack_wait,
            // Dead letters are the host's: see the type's doc.
            max_deliver: -1,
            num_replicas: options.replicas,
            ..pull::Config::default()
        };
        let open_consumer = |config: pull::Config| {
            let work = &work;
            let stream = &work_names.stream;
            async move {
                let name = config.durable_name.clone().unwrap_or_default();
                retry(options.retry_for, || {
                    work.get_or_create_consumer(&name, config.clone())
                })
                .await
                .map_err(|e| {
                    JsError::Server(format!("cannot open the consumer {name} of {stream}: {e}"))
                })
            }
        };
        let consumer =
            open_consumer(durable(CONSUMER, &work_names.subject, config.ack_wait)).await?;
        let delays = open_consumer(durable(DELAYS, &delayed, MOVE_WAIT)).await?;
        Ok(JsQueue {
            inner: Arc::new(Inner {
                context,
                work,
                work_names,
                delayed_subject: delayed,
                dead,
                dead_names,
                consumer,
                delays,
                config,
                retry_for: options.retry_for,
                leases: Mutex::new(HashMap::new()),
                held: Mutex::new(VecDeque::new()),
                held_changed: tokio::sync::Notify::new(),
                prefetching: std::sync::atomic::AtomicBool::new(false),
                generations: AtomicU64::new(0),
            }),
        })
    }

    /// Pushes `payload`, available after `delay`; returns its id once
    /// stored. With `dedup_key`, a second push of the key within the
    /// duplicate window returns the first message's id and stores nothing.
    pub async fn push(
        &self,
        payload: String,
        dedup_key: Option<&str>,
        delay: Duration,
    ) -> Result<u64, JsError> {
        let push = self.inner.outgoing(payload, dedup_key, delay);
        self.inner
            .publish(
                &self.inner.work_names,
                push.subject,
                push.headers,
                push.payload,
            )
            .await
    }

    /// How many messages are where.
    pub async fn stats(&self) -> Result<JsQueueStats, JsError> {
        let inner = &self.inner;
        let consumer = inner.consumer_info(&inner.consumer).await?;
        let delays = inner.consumer_info(&inner.delays).await?;
        let dead = inner.stream_info(&inner.dead).await?.state.messages;
        let work = inner.stream_info(&inner.work).await?;
        // Held for a pop, a message is ready as the caller sees it.
        let held = inner.held().len() as u64;
        let leased = (consumer.num_ack_pending as u64).saturating_sub(held);
        Ok(JsQueueStats {
            ready: consumer.num_pending + held,
            leased,
            delayed: delays.num_pending + delays.num_ack_pending as u64,
            dead,
            bytes: work.state.bytes,
            max_bytes: u64::try_from(work.config.max_bytes).ok().filter(|b| *b > 0),
        })
    }
}

/// A push as it goes out: its subject (ready or delayed), its headers
/// (its `Nats-Msg-Id` among them) and its payload.
struct Outgoing {
    subject: String,
    headers: HeaderMap,
    msg_id: String,
    payload: bytes::Bytes,
}

impl Inner {
    fn outgoing(&self, payload: String, dedup_key: Option<&str>, delay: Duration) -> Outgoing {
        let mut headers = HeaderMap::new();
        let now = now_ms();
        headers.insert(ENQUEUED, now.to_string().as_str());
        let msg_id = match dedup_key {
            Some(key) => dedup_id(key),
            // Its own, so that a push sent again after a lost answer is
            // stored once.
            None => format!("push-{}", nonce()),
        };
        headers.insert("Nats-Msg-Id", msg_id.as_str());
        let subject = if delay.is_zero() {
            self.work_names.subject.clone()
        } else {
            let not_before = now.saturating_add(millis(delay));
            headers.insert(NOT_BEFORE, not_before.to_string().as_str());
            self.delayed_subject.clone()
        };
        Outgoing {
            subject,
            headers,
            msg_id,
            payload: payload.into(),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, VecDeque<u64>> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
