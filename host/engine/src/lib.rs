//! The mini storage engine: a durable, human-readable JSONL journal.
//!
//! This crate has no wasmtime dependency. It is the engine behind the
//! `mini:storage` WIT interfaces, and a plain Rust library for native
//! programs that want the same guarantees.
//!
//! ```
//! use mini_engine::Journal;
//!
//! let dir = tempfile::tempdir()?;
//! let journal = Journal::open(dir.path().join("counter"))?;
//! let seq = journal.append(r#"{"Inc":{"by":5}}"#)?; // durable when it returns
//! assert_eq!(seq, 1);
//! journal.append_batch(&[r#"{"Inc":{"by":1}}"#, r#"{"Set":{"value":10}}"#])?;
//! let records: Vec<_> = journal.read_from(1)?.collect::<Result<_, _>>()?;
//! assert_eq!(records.len(), 3);
//! assert_eq!(records[2].data, r#"{"Set":{"value":10}}"#);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The on-disk format and the crash-safety argument are in `FORMAT.md` at the
//! root of the repository.
#![warn(missing_docs)]

pub mod error;
pub mod fs;
pub mod import;
pub mod journal;
pub mod kv;
pub mod layout;
pub mod lock;
pub mod name;
pub mod queue;
pub mod record;
pub mod segment;
pub mod snapshot;
pub mod state;
pub mod verify;

pub use error::{Corruption, CorruptionKind, JournalError};
pub use journal::{
    Entry, Journal, JournalOptions, Reader, RecoveryReport, WeakJournal, read_unlocked,
};
pub use snapshot::{SnapshotError, SnapshotOptions, SnapshotStore};
pub use state::{CheckpointPolicy, Mutator, StateError, StateManager, StateOptions};
