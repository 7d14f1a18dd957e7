//! The options and results of queue calls.

use std::sync::Arc;

use super::clock::{Clock, SystemClock};
use super::fold::Place;
use crate::fs::{FileSystem, StdFs};
use crate::state::DEFAULT_STATE_SEGMENT_SIZE;

/// The default number of deliveries after which a message is dead-lettered.
pub const DEFAULT_MAX_DELIVERIES: u32 = 5;
/// The default payload size limit: 1 MiB.
pub const DEFAULT_MAX_PAYLOAD_SIZE: usize = 1024 * 1024;
/// The default deduplication window: 5 minutes.
pub const DEFAULT_DEDUP_WINDOW_MS: u64 = 5 * 60 * 1000;
/// The default number of records between automatic checkpoints (more when
/// more messages are live, so a checkpoint's cost stays amortized).
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 1000;
/// The longest deduplication key accepted, in bytes.
pub const MAX_DEDUP_KEY: usize = 512;

/// How a [`Queue`](super::Queue) is opened.
#[derive(Debug, Clone)]
pub struct QueueOptions {
    /// Deliveries after which a message goes to the dead letters instead of
    /// being delivered again (at least 1).
    pub max_deliveries: u32,
    /// Payloads larger than this many bytes are refused.
    pub max_payload_size: usize,
    /// How long a dedup key keeps a later push with the same key from
    /// adding a message (while the first message is live, always).
    pub dedup_window_ms: u64,
    /// Records between automatic checkpoints (at least this many, and at
    /// least as many as there are live messages).
    pub checkpoint_every: u64,
    /// The most bytes the queue's snapshot may take; the limit is at least
    /// 64 payloads of the largest size. A push that would take the queue
    /// past what a snapshot can hold is refused
    /// ([`QueueError::Full`](super::QueueError::Full)), so automatic
    /// checkpoints keep working.
    pub max_snapshot_size: usize,
    /// The journal's segment size.
    pub segment_size: u64,
    /// The journal's preallocation (see
    /// [`JournalOptions::preallocate`](crate::JournalOptions::preallocate)).
    pub preallocate: u64,
    /// Where the time comes from.
    pub clock: Arc<dyn Clock>,
    /// The file system (the real one, or a fault-injecting one in tests).
    pub fs: Arc<dyn FileSystem>,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            max_deliveries: DEFAULT_MAX_DELIVERIES,
            max_payload_size: DEFAULT_MAX_PAYLOAD_SIZE,
            dedup_window_ms: DEFAULT_DEDUP_WINDOW_MS,
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
            max_snapshot_size: crate::snapshot::DEFAULT_MAX_STATE_SIZE,
            segment_size: DEFAULT_STATE_SEGMENT_SIZE,
            preallocate: crate::journal::DEFAULT_PREALLOCATE,
            clock: Arc::new(SystemClock),
            fs: Arc::new(StdFs),
        }
    }
}

/// Options of one push.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushOptions {
    /// The message becomes available this many milliseconds from now.
    pub delay_ms: u64,
    /// A deduplication key: a later push with the same key, while the first
    /// message is live or within the dedup window, adds nothing and returns
    /// the first message's id.
    pub dedup: Option<String>,
}

/// A message delivered by a pop, leased to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The message id.
    pub id: u64,
    /// The payload (JSON text).
    pub payload: String,
    /// Which delivery this is, from 1.
    pub attempt: u32,
    /// The lease token: `ack`, `nack` and `extend` need it.
    pub token: String,
    /// When the message was pushed (ms since the Unix epoch).
    pub enqueued_at: u64,
    /// When the lease expires (ms since the Unix epoch).
    pub deadline: u64,
}

/// A message as `peek` and `dead_letters` show it (nothing is leased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageInfo {
    /// The message id.
    pub id: u64,
    /// The payload (JSON text).
    pub payload: String,
    /// How many times it was delivered.
    pub attempts: u32,
    /// When it was pushed (ms since the Unix epoch).
    pub enqueued_at: u64,
    /// Where it is.
    pub place: Place,
}

/// How many messages are where.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Available now (including leases that expired).
    pub ready: u64,
    /// Leased, the lease running.
    pub leased: u64,
    /// Pushed or nacked with a delay that has not passed.
    pub delayed: u64,
    /// In the dead letters.
    pub dead: u64,
    /// Bytes of the live payloads.
    pub bytes: u64,
    /// Bytes of the queue's journal files.
    pub journal_bytes: u64,
    /// Why the last automatic checkpoint failed, if it did (the operations
    /// went on; the next one is tried after as many records again).
    pub checkpoint_error: Option<String>,
    /// An upper bound of the bytes the queue's snapshot takes now.
    pub snapshot_bytes: u64,
    /// The most the snapshot may take: pushes past it are refused.
    pub snapshot_limit: u64,
}
