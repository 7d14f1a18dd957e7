//! Why a bucket operation failed.

use std::path::PathBuf;

use crate::state::StateError;

/// Why a bucket operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The state underneath failed (I/O, corruption, a lock, a record too
    /// large).
    #[error(transparent)]
    Storage(#[from] StateError),
    /// A record or the snapshot is not a bucket's (a state written by
    /// something else, or damage a crc did not catch).
    #[error("record {seq} of bucket {dir} is not a key-value record: {reason}")]
    BadRecord {
        /// The bucket's directory.
        dir: PathBuf,
        /// The record's seq (0: the snapshot).
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// `increment` on a value that is not a decimal integer.
    #[error("the value of {key:?} is not a decimal integer")]
    NotAnInteger {
        /// The key.
        key: String,
    },
    /// `increment` past the range of a 64-bit signed integer.
    #[error("incrementing {key:?} overflows")]
    Overflow {
        /// The key.
        key: String,
    },
    /// A read of many keys would return more bytes than allowed
    /// ([`Bucket::get_many_within`](super::Bucket::get_many_within)).
    #[error("the values asked for take {bytes} bytes; one read may return at most {limit}")]
    ReadTooLarge {
        /// The bytes the values take.
        bytes: u64,
        /// The most one read may return.
        limit: u64,
    },
    /// The write would make the bucket larger than a snapshot may be (its
    /// snapshot store's `max_state_size`): every checkpoint would fail
    /// from then on, so it is refused. Deletes are always accepted.
    #[error(
        "the bucket is full: its contents would take {needed} bytes in a snapshot, and a snapshot may take at most {limit}"
    )]
    Full {
        /// The snapshot bytes the bucket would need.
        needed: u64,
        /// The most a snapshot may take.
        limit: u64,
    },
}
