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
    /// and the message was delivered again, or the token is wrong.
    #[error("{}", stale_token_message(*id, *redelivered))]
    StaleToken {
        /// The message.
        id: u64,
        /// The token is one of an earlier delivery of this message (its
        /// lease ran out and the message was delivered again); false for a
        /// token that never belonged to the message.
        redelivered: bool,
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
    /// The push would take the queue past what its snapshot can hold
    /// ([`QueueOptions::max_snapshot_size`](super::QueueOptions::max_snapshot_size)):
    /// ack, purge or consume messages first.
    #[error(
        "the queue is full: its snapshot would take up to {needed} bytes, over the limit of {limit} bytes (ack, consume or purge messages first)"
    )]
    Full {
        /// The snapshot's size with the push (an upper bound).
        needed: u64,
        /// The limit.
        limit: u64,
    },
    /// The queue has given out every id it can
    /// ([`MAX_ID`](super::MAX_ID)): nothing was pushed.
    #[error("the queue's message ids are exhausted ({left} left): nothing was pushed")]
    IdsExhausted {
        /// How many ids are left (fewer than the push needed).
        left: u64,
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

fn stale_token_message(id: u64, redelivered: bool) -> String {
    if redelivered {
        format!(
            "stale lease token for message {id}: its lease ran out and it was delivered again since"
        )
    } else {
        format!("wrong lease token for message {id}: it is not the token of its current delivery")
    }
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
