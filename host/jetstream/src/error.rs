//! What can go wrong on JetStream, as the host needs to tell it apart.

/// Why a JetStream operation failed.
///
/// After [`JsError::Locked`] or [`JsError::Unknown`] a journal handle stays
/// failed (as a local journal does after a failed fsync): its view of the
/// stream can no longer be trusted, and only a new open, which reads the
/// stream again, writes again.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum JsError {
    /// The servers could not be reached, or gave no answer in time.
    #[error("cannot reach NATS: {0}")]
    Connect(String),
    /// Another writer appended to the journal since this handle last did:
    /// the handle's appends are fenced off (expected-last-sequence).
    #[error("another writer appended to the journal {0}; open it again to write")]
    Locked(String),
    /// An append whose outcome could not be learned before the retry time
    /// ran out (no leader was elected in time): it may or may not be stored.
    #[error("the outcome of an append to {stream} is unknown after {waited_ms} ms: {reason}")]
    Unknown {
        /// The stream.
        stream: String,
        /// How long the append kept trying.
        waited_ms: u64,
        /// The last error seen.
        reason: String,
    },
    /// The stream refused to grow (its `max_bytes`, or the server's storage).
    #[error("the stream {stream} is full: {reason}")]
    Full {
        /// The stream.
        stream: String,
        /// What the server said.
        reason: String,
    },
    /// A record, or a whole batch, is larger than the server takes.
    #[error("{0}")]
    TooLarge(String),
    /// A batch holds more records than one atomic batch can.
    #[error("a batch holds at most {max} records on JetStream; this one holds {len}")]
    BatchTooLong {
        /// The most an atomic batch holds.
        max: usize,
        /// The batch's length.
        len: usize,
    },
    /// A read from before the journal's first record (after compaction).
    #[error("seq {seq} is before the first record of {stream} ({first})")]
    OutOfRange {
        /// The stream.
        stream: String,
        /// The seq asked for.
        seq: u64,
        /// The stream's first seq.
        first: u64,
    },
    /// The stream does not look like a mini journal: a gap in its sequence
    /// (messages deleted by hand), a record that is not UTF-8.
    #[error("the stream {stream} is damaged at seq {seq}: {reason}")]
    Corrupt {
        /// The stream.
        stream: String,
        /// Where.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// A queue's token that is not its message's running lease here (the
    /// lease ended, the message was acked, given back or delivered again,
    /// or another host delivered it).
    #[error("stale lease token: {0}")]
    StaleToken(String),
    /// A queue's message that is not there (no message of the id, no dead
    /// letter of the id).
    #[error("{0}")]
    NotFound(String),
    /// An argument no call can take (a lease of 0 ms).
    #[error("{0}")]
    InvalidArgument(String),
    /// Any other refusal from the server, with its text.
    #[error("JetStream refused: {0}")]
    Server(String),
}

impl JsError {
    /// Whether the handle that met this error stays failed.
    pub fn poisons(&self) -> bool {
        matches!(self, JsError::Locked(_) | JsError::Unknown { .. })
    }
}
