//! Key-value buckets: a bucket is a state (a journal of `set`/`delete`
//! records and its snapshots) whose contents are the fold of its records.
//! What the standard `wasi:keyvalue` interfaces are served by.
//!
//! Every change is durable (fdatasync'd) before it returns; `set_many` and
//! `delete_many` are one journal batch, so after a crash they are there
//! whole or not at all. Operations on a bucket are linearizable: each holds
//! the bucket's lock from its read to its durable write, so
//! [`Bucket::increment`] and [`Bucket::compare_and_swap`] are atomic with
//! respect to every other operation, and a swap checks the key's
//! [`Version`] (a new one at every change), not its value, so a value that
//! changed and changed back fails it (no ABA). The lock is held across the
//! fsync: writers of one bucket do not share fsyncs (writers of different
//! buckets do not wait for each other).
//!
//! ```
//! use mini_engine::kv::{Bucket, BucketOptions};
//! let dir = tempfile::tempdir()?;
//! let bucket = Bucket::open(dir.path(), &BucketOptions::default())?;
//! bucket.set("visits", b"1")?;
//! assert_eq!(bucket.increment("visits", 41)?, 42);
//! let (value, version) = bucket.get_versioned("visits").expect("set");
//! assert_eq!(value, b"42");
//! assert!(bucket.compare_and_swap("visits", Some(version), b"0")?);
//! assert!(!bucket.compare_and_swap("visits", Some(version), b"1")?, "changed since");
//! drop(bucket);
//! let reopened = Bucket::open(dir.path(), &BucketOptions::default())?;
//! assert_eq!(reopened.get("visits"), Some(b"0".to_vec()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod fold;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

pub use fold::{BucketState, KvRecord, StoredEntry, StoredValue};

use crate::state::{StateError, StateLog, StateOptions};

/// The version of a key's value: it changes at every set of the key.
pub type Version = u64;

/// The default of [`BucketOptions::checkpoint_every`].
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 10_000;

/// How a bucket is opened.
#[derive(Debug, Clone)]
pub struct BucketOptions {
    /// The options of the state underneath (segment size, record and
    /// snapshot size limits, the file system).
    pub state: StateOptions,
    /// A checkpoint (snapshot, then compaction) is made once this many
    /// records were written since the last one, or as many as the bucket
    /// has keys if that is more.
    pub checkpoint_every: u64,
}

impl Default for BucketOptions {
    fn default() -> Self {
        BucketOptions {
            state: StateOptions::default(),
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
        }
    }
}

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
        dir: std::path::PathBuf,
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
}

#[derive(Debug)]
struct Inner {
    state: BucketState,
    records_since_checkpoint: u64,
    checkpoint_error: Option<String>,
}

/// A durable key-value bucket, locked by the process that opened it.
#[derive(Debug)]
pub struct Bucket {
    log: StateLog,
    options: BucketOptions,
    inner: Mutex<Inner>,
}

impl Bucket {
    /// Opens (or creates) the bucket in `dir` and recovers its contents:
    /// the newest valid snapshot plus the records after it.
    pub fn open(dir: impl AsRef<Path>, options: &BucketOptions) -> Result<Bucket, KvError> {
        let dir = dir.as_ref();
        let (log, point) = StateLog::open_with(dir, &options.state)?;
        let bad = |seq: u64, reason: String| KvError::BadRecord {
            dir: dir.to_path_buf(),
            seq,
            reason,
        };
        let mut state = match &point.snapshot {
            Some(snapshot) => serde_json::from_str::<BucketState>(&snapshot.state)
                .map_err(|e| bad(0, e.to_string()))?,
            None => BucketState::default(),
        };
        let mut replayed = 0;
        for entry in log.mutations_after(&point)? {
            let entry = entry.map_err(StateError::from)?;
            let record: KvRecord =
                serde_json::from_str(&entry.data).map_err(|e| bad(entry.seq, e.to_string()))?;
            state.apply(record);
            replayed += 1;
        }
        if let Some((key, _)) = state
            .entries
            .iter()
            .find(|(_, e)| e.value.bytes().is_none())
        {
            return Err(bad(0, format!("the value of {key:?} is not valid base64")));
        }
        Ok(Bucket {
            log,
            options: options.clone(),
            inner: Mutex::new(Inner {
                state,
                records_since_checkpoint: replayed,
                checkpoint_error: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value of `key`, if it has one.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.get_versioned(key).map(|(value, _)| value)
    }

    /// The value of `key` and its version, if it has one.
    pub fn get_versioned(&self, key: &str) -> Option<(Vec<u8>, Version)> {
        let inner = self.lock();
        let entry = inner.state.entries.get(key)?;
        // A value that does not decode was refused at open.
        Some((entry.value.bytes().unwrap_or_default(), entry.version))
    }

    /// Whether `key` has a value.
    pub fn exists(&self, key: &str) -> bool {
        self.lock().state.entries.contains_key(key)
    }

    /// How many keys the bucket holds.
    pub fn len(&self) -> usize {
        self.lock().state.entries.len()
    }

    /// Whether the bucket holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Up to `max` keys after `after` (from the first with `None`), in
    /// order; the next page starts after the last one returned. A key
    /// present for the whole listing is returned exactly once, whatever
    /// changes meanwhile.
    pub fn list_keys(&self, after: Option<&str>, max: usize) -> Vec<String> {
        let inner = self.lock();
        let range = match after {
            Some(after) => inner
                .state
                .entries
                .range::<str, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded)),
            None => inner.state.entries.range::<str, _>(..),
        };
        range.take(max).map(|(key, _)| key.clone()).collect()
    }

    /// Sets `key` to `value`, durably.
    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        let inner = self.lock();
        self.write(inner, vec![set_record(key, value)])
    }

    /// Removes `key`, durably (a key that is not there is no error).
    pub fn delete(&self, key: &str) -> Result<(), KvError> {
        let inner = self.lock();
        self.write(
            inner,
            vec![KvRecord::Delete {
                key: key.to_owned(),
            }],
        )
    }

    /// Sets every pair, as one atomic unit: after a crash all of them are
    /// there or none. Nothing to set is nothing written.
    pub fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<(), KvError> {
        let records = pairs.iter().map(|(k, v)| set_record(k, v)).collect();
        let inner = self.lock();
        self.write(inner, records)
    }

    /// Removes every key of `keys`, as one atomic unit.
    pub fn delete_many(&self, keys: &[String]) -> Result<(), KvError> {
        let records = keys
            .iter()
            .map(|key| KvRecord::Delete { key: key.clone() })
            .collect();
        let inner = self.lock();
        self.write(inner, records)
    }

    /// Adds `delta` to the decimal integer value of `key` (a missing key
    /// counts as 0) and returns the new value, stored as decimal text.
    pub fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        let inner = self.lock();
        let current = match inner.state.entries.get(key) {
            None => 0,
            Some(entry) => entry
                .value
                .bytes()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|text| text.parse::<i64>().ok())
                .ok_or_else(|| KvError::NotAnInteger {
                    key: key.to_owned(),
                })?,
        };
        let next = current
            .checked_add(delta)
            .ok_or_else(|| KvError::Overflow {
                key: key.to_owned(),
            })?;
        self.write(inner, vec![set_record(key, next.to_string().as_bytes())])?;
        Ok(next)
    }

    /// Sets `key` to `value` only if its version is still `expected`
    /// (`None`: the key must have no value); whether it did. The version
    /// changes at every set, so a value changed and changed back since the
    /// read fails the swap.
    pub fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<Version>,
        value: &[u8],
    ) -> Result<bool, KvError> {
        let inner = self.lock();
        let current = inner.state.entries.get(key).map(|e| e.version);
        if current != expected {
            return Ok(false);
        }
        self.write(inner, vec![set_record(key, value)])?;
        Ok(true)
    }

    /// Why the last automatic checkpoint failed, until one succeeds.
    pub fn checkpoint_error(&self) -> Option<String> {
        self.lock().checkpoint_error.clone()
    }

    /// The state underneath (its journal, snapshots and stats).
    pub fn log(&self) -> &StateLog {
        &self.log
    }

    /// Writes `records` as one batch, durably, then applies them; then
    /// checkpoints if one is due (a failed checkpoint does not fail the
    /// write, which is durable: it is kept for [`Bucket::checkpoint_error`]).
    fn write(
        &self,
        mut inner: MutexGuard<'_, Inner>,
        records: Vec<KvRecord>,
    ) -> Result<(), KvError> {
        if records.is_empty() {
            return Ok(());
        }
        let lines: Vec<String> = records
            .iter()
            // A record of strings always serializes.
            .map(|r| serde_json::to_string(r).unwrap_or_default())
            .collect();
        self.log.commit_batch(&lines)?;
        inner.records_since_checkpoint += records.len() as u64;
        for record in records {
            inner.state.apply(record);
        }
        let every = self
            .options
            .checkpoint_every
            .max(inner.state.entries.len() as u64);
        if inner.records_since_checkpoint >= every {
            let snapshot = serde_json::to_string(&inner.state).unwrap_or_default();
            match self.log.checkpoint(self.log.last_seq(), &snapshot) {
                Ok(_) => {
                    inner.records_since_checkpoint = 0;
                    inner.checkpoint_error = None;
                }
                Err(e) => {
                    // Tried again after as many records again.
                    inner.records_since_checkpoint = 0;
                    tracing::warn!(bucket = %self.log.dir().display(), error = %e, "automatic checkpoint of a bucket failed; the journal is not compacted until one succeeds");
                    inner.checkpoint_error = Some(e.to_string());
                }
            }
        }
        Ok(())
    }
}

fn set_record(key: &str, value: &[u8]) -> KvRecord {
    KvRecord::Set {
        key: key.to_owned(),
        value: StoredValue::of(value),
    }
}
