//! Error types of the engine. Callers match on variants; nothing is a string
//! to be parsed.

use std::fmt;
use std::path::PathBuf;

/// Why a journal operation failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The record is not exactly one JSON value.
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// The record is larger than the configured limit.
    #[error("record of {size} bytes exceeds the limit of {limit} bytes")]
    RecordTooLarge {
        /// Size of the rejected record in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// Another process (or another handle in this process) holds the lock.
    #[error("journal {} is locked by another handle (of another process, or another handle of this one)", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The journal is damaged before its tail.
    #[error(transparent)]
    Corrupt(#[from] Corruption),
    /// An earlier write or fsync on this handle failed: the page cache can no
    /// longer be trusted, so the handle refuses all writes until the journal
    /// is opened again.
    #[error("journal handle is poisoned by an earlier failed write or fsync; reopen the journal")]
    Poisoned,
    /// An I/O error on a file of the journal.
    #[error("i/o error on {}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The journal has given out every sequence number it can
    /// ([`MAX_SEQ`](crate::segment::MAX_SEQ)): nothing was written.
    #[error(
        "the journal's sequence numbers are exhausted: the next is {next}, {records} more would pass the largest, {}",
        crate::segment::MAX_SEQ
    )]
    SequenceExhausted {
        /// The next sequence number.
        next: u64,
        /// How many records the refused append had.
        records: u64,
    },
    /// A sequence number outside the journal.
    #[error("sequence {requested} is out of range (first stored {first}, next {next})")]
    OutOfRange {
        /// The sequence number asked for.
        requested: u64,
        /// The first sequence number still stored.
        first: u64,
        /// The next sequence number to be assigned.
        next: u64,
    },
}

impl Clone for JournalError {
    /// Clones the error; an I/O error is recreated with its kind and message
    /// (`std::io::Error` is not `Clone`).
    fn clone(&self) -> Self {
        match self {
            JournalError::InvalidRecord(why) => JournalError::InvalidRecord(why.clone()),
            JournalError::RecordTooLarge { size, limit } => JournalError::RecordTooLarge {
                size: *size,
                limit: *limit,
            },
            JournalError::Locked { path } => JournalError::Locked { path: path.clone() },
            JournalError::Corrupt(c) => JournalError::Corrupt(c.clone()),
            JournalError::Poisoned => JournalError::Poisoned,
            JournalError::SequenceExhausted { next, records } => JournalError::SequenceExhausted {
                next: *next,
                records: *records,
            },
            JournalError::Io { path, source } => JournalError::Io {
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            JournalError::OutOfRange {
                requested,
                first,
                next,
            } => JournalError::OutOfRange {
                requested: *requested,
                first: *first,
                next: *next,
            },
        }
    }
}

impl JournalError {
    pub(crate) fn io<P: AsRef<std::path::Path> + ?Sized>(
        path: &P,
    ) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
        // The path is copied only for an error: this sits on every read.
        move |source| JournalError::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
}

/// Damage found in a journal, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt journal {} at byte {offset} (seq {seq}): {kind}", file.display())]
pub struct Corruption {
    /// The segment file.
    pub file: PathBuf,
    /// Byte offset of the damaged line in that file.
    pub offset: u64,
    /// The sequence number expected at that line.
    pub seq: u64,
    /// What is wrong.
    pub kind: CorruptionKind,
}

/// What kind of damage a [`Corruption`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorruptionKind {
    /// The record's bytes do not match the stored CRC-32C.
    ChecksumMismatch {
        /// The CRC stored in the line.
        stored: u32,
        /// The CRC of the record's bytes as read.
        computed: u32,
    },
    /// A line carries a sequence number other than the next one.
    SequenceGap {
        /// The sequence number expected.
        expected: u64,
        /// The sequence number found.
        found: u64,
    },
    /// The line is not a journal line.
    Garbage(String),
    /// The segment's header line is missing or wrong.
    BadHeader(String),
    /// A segment is missing: the next segment does not start where the
    /// previous one ended.
    MissingSegment {
        /// The first sequence number the next segment should hold.
        expected: u64,
        /// The first sequence number of the segment found.
        found: u64,
    },
    /// A batch is not closed before the end of a segment that is not the last.
    UnterminatedBatch,
    /// A segment's seal line fails its own checks, or says something other
    /// than what the segment holds (FORMAT.md, "Seals").
    BadSeal(String),
}

impl fmt::Display for CorruptionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorruptionKind::ChecksumMismatch { stored, computed } => write!(
                f,
                "checksum mismatch (stored {stored:08x}, computed {computed:08x})"
            ),
            CorruptionKind::SequenceGap { expected, found } => {
                write!(f, "sequence gap (expected {expected}, found {found})")
            }
            CorruptionKind::Garbage(why) => write!(f, "not a journal line: {why}"),
            CorruptionKind::BadHeader(why) => write!(f, "bad segment header: {why}"),
            CorruptionKind::MissingSegment { expected, found } => write!(
                f,
                "missing segment (expected one starting at {expected}, found {found})"
            ),
            CorruptionKind::UnterminatedBatch => {
                write!(f, "batch not closed before the end of the segment")
            }
            CorruptionKind::BadSeal(why) => write!(f, "bad segment seal: {why}"),
        }
    }
}
