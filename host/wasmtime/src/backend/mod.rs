//! The backend boundary: what the interface modules call, whatever holds
//! the data.
//!
//! The `store` interface's host functions talk to a `JournalBackend` and
//! read through a `RecordCursor`, never to the engine's files: the local
//! engine (`local`) is one backend, NATS JetStream (`jetstream`, with the
//! feature of that name) the other. A [`MiniHost`](crate::MiniHost) is made
//! for one backend ([`Backend`]), and every instance given that host uses
//! it. Errors cross the boundary as the WIT `error`, each backend mapping
//! its own (with host paths hidden) in one place.
//!
//! `state`, `snapshot` and `queue` likewise call a `StateBackend`, a
//! `SnapshotsBackend` and a `QueueBackend`.
//!
//! What each backend serves: the local engine, every interface; JetStream,
//! `store`, `state`, `snapshot` and `queue` (with `queue-poll`) so far. On
//! a JetStream host the other interfaces' opens (`wasi:keyvalue`) fail
//! rather than write local files the operator believes replicated.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::bindings::types::{
    CheckpointInfo, EntryBlock, Error, Message, MessageInfo, PushMessage, QueueStats, Restored,
    SnapshotInfo, SnapshotPoint, StateStats,
};

#[cfg(feature = "jetstream")]
pub(crate) mod jetstream;
#[cfg(feature = "jetstream")]
pub(crate) mod jetstream_queue;
pub(crate) mod local;
pub(crate) mod local_queue;
pub(crate) mod local_state;
#[cfg(feature = "jetstream")]
pub(crate) mod stream_usage;

/// A future a backend returns: boxed, so that the interface modules hold
/// any backend's journal behind one type.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Which backend a [`MiniHost`](crate::MiniHost) serves its instances from.
#[derive(Clone, Default)]
pub enum Backend {
    /// The local engine: files under each instance's data root (every
    /// interface; the contract of DESIGN.md).
    #[default]
    Local,
    /// NATS JetStream: journals on replicated streams (the `store`
    /// interface).
    #[cfg(feature = "jetstream")]
    JetStream(std::sync::Arc<JetStreamBackend>),
}

/// A JetStream connection and the runtime its calls run on, which also
/// drives the client's connection (so a sync embedder can use it too).
#[cfg(feature = "jetstream")]
#[derive(Debug)]
pub struct JetStreamBackend {
    js: mini_jetstream::JetStream,
    runtime: tokio::runtime::Handle,
    /// Each namespace's quota use on the servers.
    usages: stream_usage::StreamUsages,
}

#[cfg(feature = "jetstream")]
impl JetStreamBackend {
    /// The connection.
    pub fn js(&self) -> &mini_jetstream::JetStream {
        &self.js
    }

    /// The runtime the backend's calls run on.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    /// What `namespace`'s writes count against, with the instance's `quota`.
    pub(crate) fn quota_of(&self, namespace: &str, quota: u64) -> jetstream::StreamQuota {
        jetstream::StreamQuota {
            usage: self.usage_of(namespace),
            quota,
        }
    }

    /// `namespace`'s use of the servers, as this host counts it.
    pub(crate) fn usage_of(&self, namespace: &str) -> std::sync::Arc<stream_usage::StreamUsage> {
        self.usages.of(&self.js, namespace)
    }
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Local => f.write_str("Local"),
            #[cfg(feature = "jetstream")]
            Backend::JetStream(backend) => f
                .debug_struct("JetStream")
                .field("replicas", &backend.js.options().replicas)
                .finish_non_exhaustive(),
        }
    }
}

impl Backend {
    /// The JetStream backend of `js`, its calls run on `runtime` (the one
    /// `js` was connected on, which must outlive the host).
    #[cfg(feature = "jetstream")]
    pub fn jetstream(js: mini_jetstream::JetStream, runtime: tokio::runtime::Handle) -> Backend {
        Backend::JetStream(std::sync::Arc::new(JetStreamBackend {
            js,
            runtime,
            usages: stream_usage::StreamUsages::default(),
        }))
    }

    /// The backend's name in messages and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Local => "local",
            #[cfg(feature = "jetstream")]
            Backend::JetStream(_) => "JetStream",
        }
    }

    /// `Ok` if the backend serves `interface`; otherwise the guest's error.
    pub(crate) fn serves(&self, interface: &str) -> Result<(), Error> {
        #[cfg(not(feature = "jetstream"))]
        let _ = interface;
        match self {
            Backend::Local => Ok(()),
            #[cfg(feature = "jetstream")]
            Backend::JetStream(_)
                if matches!(interface, "store" | "state" | "snapshot" | "queue") =>
            {
                Ok(())
            }
            #[cfg(feature = "jetstream")]
            Backend::JetStream(_) => Err(Error::Other(format!(
                "`{interface}` is not served by the JetStream backend of this host (it serves `store`, `state`, `snapshot` and `queue`); \
                 run the component on the local backend for it"
            ))),
        }
    }
}

/// A journal of some backend, as the `store` interface uses it.
pub(crate) trait JournalBackend: Send + Sync + fmt::Debug {
    /// Appends `records` (checked against the record limit already) as one
    /// atomic batch, `bytes` counted against the quota; returns the last
    /// one's seq once it is durable.
    fn append(&self, records: Vec<String>, bytes: u64) -> BoxFuture<Result<u64, Error>>;

    /// The first seq (1 until compaction).
    fn first_seq(&self) -> BoxFuture<Result<u64, Error>>;

    /// The last seq stored (0 if none).
    fn last_seq(&self) -> u64;

    /// A cursor from `from_seq`.
    fn read_from(&self, from_seq: u64) -> BoxFuture<Result<Box<dyn RecordCursor>, Error>>;
}

/// A snapshot store of some backend, as the `snapshot` interface uses it.
pub(crate) trait SnapshotsBackend: Send + Sync + fmt::Debug {
    /// Stores `state` (its size checked, `bytes` counted against the quota)
    /// as the snapshot at `seq`, durably.
    fn create(&self, seq: u64, state: String, bytes: u64) -> BoxFuture<Result<(), Error>>;

    /// The newest valid snapshot, with a warning for each passed over.
    fn restore(&self) -> BoxFuture<Result<Option<Restored>, Error>>;

    /// The snapshots held, by seq.
    fn list(&self) -> BoxFuture<Result<Vec<SnapshotInfo>, Error>>;

    /// Deletes the snapshots below `seq`; returns how many.
    fn delete_older_than(&self, seq: u64) -> BoxFuture<Result<u32, Error>>;
}

/// Where a state's recovery starts.
pub(crate) struct Recovered {
    pub snapshot: Option<SnapshotPoint>,
    pub warnings: Vec<String>,
    pub mutations: Box<dyn RecordCursor>,
}

/// A state of some backend, as the `state` interface uses it.
pub(crate) trait StateBackend: Send + Sync + fmt::Debug {
    /// The newest valid snapshot and a cursor over the mutations after it.
    fn recover(&self) -> BoxFuture<Result<Recovered, Error>>;

    /// Logs `mutations` as one atomic batch (`bytes` counted against the
    /// quota); returns the last one's seq once durable.
    fn commit(&self, mutations: Vec<String>, bytes: u64) -> BoxFuture<Result<u64, Error>>;

    /// Stores `state` as the snapshot at `seq`, then compacts.
    fn checkpoint(
        &self,
        seq: u64,
        state: String,
        bytes: u64,
    ) -> BoxFuture<Result<CheckpointInfo, Error>>;

    /// The seq of the last durable mutation.
    fn last_seq(&self) -> u64;

    /// The state's figures.
    fn stats(&self) -> BoxFuture<Result<StateStats, Error>>;
}

/// A queue of some backend, as the `queue` interface uses it. Leases and
/// delays are in ms; what one call returns is bounded by the host
/// (`queue::MAX_BATCH`, `queue::MAX_BYTES_PER_CALL`) before it gets here.
pub(crate) trait QueueBackend: Send + Sync + fmt::Debug {
    /// Pushes `messages` (their sizes checked, `bytes` counted against the
    /// quota); returns their ids once durable.
    fn push(&self, messages: Vec<PushMessage>, bytes: u64) -> BoxFuture<Result<Vec<u64>, Error>>;

    /// Up to `max` messages available now, each leased for `lease_ms`.
    fn pop_batch(&self, max: usize, lease_ms: u64) -> BoxFuture<Result<Vec<Message>, Error>>;

    /// A message, leased for `lease_ms`, waiting up to `timeout` for one;
    /// `None` then, or when `stop` is raised.
    fn pop_wait(
        &self,
        lease_ms: u64,
        timeout: std::time::Duration,
        stop: crate::stop::StopSignal,
    ) -> BoxFuture<Result<Option<Message>, Error>>;

    /// Acknowledges the delivery `token` of `id`.
    fn ack(&self, id: u64, token: String) -> BoxFuture<Result<(), Error>>;

    /// Acknowledges, then pops the next message leased for `lease_ms`.
    fn ack_next(
        &self,
        id: u64,
        token: String,
        lease_ms: u64,
    ) -> BoxFuture<Result<Option<Message>, Error>>;

    /// Gives the delivery back, available again after `delay_ms`.
    fn nack(&self, id: u64, token: String, delay_ms: u64) -> BoxFuture<Result<(), Error>>;

    /// Leases the delivery for `lease_ms` from now; returns the deadline.
    fn extend(&self, id: u64, token: String, lease_ms: u64) -> BoxFuture<Result<u64, Error>>;

    /// How many messages are where.
    fn stats(&self) -> BoxFuture<Result<QueueStats, Error>>;

    /// Up to `max` dead letters from `from_id` on, by id.
    fn dead_letters(&self, from_id: u64, max: usize) -> BoxFuture<Result<Vec<MessageInfo>, Error>>;

    /// Requeues the dead letters of `ids` (all for `None`); returns how many.
    fn requeue(&self, ids: Option<Vec<u64>>) -> BoxFuture<Result<u32, Error>>;

    /// Deletes the dead letters of `ids` (all for `None`); returns how many.
    fn purge(&self, ids: Option<Vec<u64>>) -> BoxFuture<Result<u32, Error>>;

    /// Waits until a pop can find a message (the pollable of `queue-poll`).
    #[cfg(feature = "wasi")]
    fn ready(&self) -> BoxFuture<()>;
}

/// A count as the WIT's `u32`.
pub(crate) fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// What a cursor's read returned: the cursor back, the records, and the
/// error that stopped it, if one did (the records before it are returned).
pub(crate) struct Read {
    pub cursor: Box<dyn RecordCursor>,
    pub block: EntryBlock,
    pub failed: Option<Error>,
}

/// A cursor over a journal of some backend.
pub(crate) trait RecordCursor: Send + fmt::Debug {
    /// The next records, up to `max` and about `max_bytes` (at least one if
    /// one is there). The cursor moves into the read and comes back with it.
    fn next_block(self: Box<Self>, max: usize, max_bytes: usize) -> BoxFuture<Read>;
}

/// An empty block.
pub(crate) fn empty_block() -> EntryBlock {
    EntryBlock {
        first_seq: 0,
        data: String::new(),
        ends: Vec::new(),
    }
}

/// Adds the record `seq` to `block`.
pub(crate) fn push_record(block: &mut EntryBlock, seq: u64, data: &str) {
    if block.ends.is_empty() {
        block.first_seq = seq;
    }
    block.data.push_str(data);
    // A block holds at most 4 MiB plus one record of at most 128 MiB.
    block
        .ends
        .push(u32::try_from(block.data.len()).unwrap_or(u32::MAX));
}
