//! Why a queue operation failed.

use crate::error::JournalError;
use crate::state::StateError;

use super::fold::FoldError;

/// Why a queue operation failed. Nothing in the queue changes when an
/// operation fails.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The payload is not exactly one JSON value.
    #[error("invalid payload: {0}")]
    InvalidPayload(String),
    /// The payload is larger than the queue's limit.
    #[error("payload of {size} bytes exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The payload's size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// No live message has this id (it was acked, purged, or never existed).
    #[error("no message {id} in the queue")]
    UnknownMessage {
        /// The id asked for.
        id: u64,
    },
    /// The lease token is not the message's current one: the lease expired
    /// and the message was delivered again (or the token is wrong).
    #[error("stale lease token for message {id}: it was delivered again since")]
    StaleToken {
        /// The message.
        id: u64,
    },
    /// The message is not leased (it is ready, delayed or a dead letter), so
    /// there is no delivery to ack, nack or extend.
    #[error("message {id} is not leased")]
    NotLeased {
        /// The message.
        id: u64,
    },
    /// The message is not a dead letter (requeue and purge are for dead
    /// letters).
    #[error("message {id} is not a dead letter")]
    NotDead {
        /// The message.
        id: u64,
    },
    /// An empty batch, a zero lease or another argument out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The journal or the snapshots failed (I/O, lock, corruption).
    #[error(transparent)]
    Storage(#[from] StateError),
    /// A journal record does not fit the state recovered so far: the queue's
    /// files do not belong together.
    #[error("journal record {seq}: {source}")]
    BadRecord {
        /// The record's sequence number.
        seq: u64,
        /// What does not fit.
        source: BadRecordKind,
    },
}

/// What is wrong with a queue record met during recovery.
#[derive(Debug, thiserror::Error)]
pub enum BadRecordKind {
    /// It is not a queue record.
    #[error("not a queue record: {0}")]
    Malformed(#[from] serde_json::Error),
    /// It names a message the state does not have (or in the wrong place).
    #[error(transparent)]
    DoesNotFit(#[from] FoldError),
}

impl From<JournalError> for QueueError {
    fn from(e: JournalError) -> Self {
        QueueError::Storage(StateError::Journal(e))
    }
}
