//! Key-value buckets: a bucket is a state (a journal of `set`/`delete`
//! records and its snapshots) whose contents are the fold of its records.
//! What the standard `wasi:keyvalue` interfaces are served by.
//!
//! Every change is durable (fdatasync'd) before it returns; `set_many` and
//! `delete_many` are one journal batch, so after a crash they are there
//! whole or not at all.
//!
//! Operations on a bucket are linearizable. A write decides under the
//! bucket's lock (reading the values it depends on), marks its keys as
//! being written, and writes with the lock released, so concurrent writers
//! share fsyncs (the journal's group commit); its change is applied in
//! memory once it is durable. A write to a key being written waits for that
//! write's outcome, so [`Bucket::increment`] and [`Bucket::compare_and_swap`]
//! are atomic with respect to every other operation on the key, and the
//! journal's order of a key's records is the order of its decisions. A read
//! sees only durable values and never waits for an fsync.
//!
//! A swap checks what [`Bucket::observe`] saw: the key's version (the seq of
//! the record that last set it), or its absence as of a seq, not its value,
//! so a value that changed and changed back fails the swap (no ABA).
//!
//! ```
//! use mini_engine::kv::{Bucket, BucketOptions, Swap};
//! let dir = tempfile::tempdir()?;
//! let bucket = Bucket::open(dir.path(), &BucketOptions::default())?;
//! bucket.set("visits", b"1")?;
//! assert_eq!(bucket.increment("visits", 41)?, 42);
//! let seen = bucket.observe("visits");
//! assert_eq!(seen.value.as_deref(), Some(&b"42"[..]));
//! assert_eq!(bucket.compare_and_swap("visits", seen.version, b"0")?, Swap::Swapped);
//! let Swap::Changed(now) = bucket.compare_and_swap("visits", seen.version, b"1")? else {
//!     panic!("the value changed since it was observed");
//! };
//! assert_eq!(now.value.as_deref(), Some(&b"0"[..]));
//! drop(bucket);
//! let reopened = Bucket::open(dir.path(), &BucketOptions::default())?;
//! assert_eq!(reopened.get("visits"), Some(b"0".to_vec()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod fold;
mod inspect;
mod write;

use std::collections::{HashMap, HashSet};
use std::ops::Bound;
use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard};

pub use error::KvError;
pub use fold::{BucketState, KvRecord, StoredEntry, StoredValue, entry_bound};
pub use inspect::{BucketInspection, inspect};

use crate::state::{Checkpoint, StateError, StateLog, StateOptions};

/// The version of a key's value: the seq of the record that last set it.
pub type Version = u64;

/// The default of [`BucketOptions::checkpoint_every`].
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 10_000;

/// How a bucket is opened.
#[derive(Debug, Clone)]
pub struct BucketOptions {
    /// The options of the state underneath (segment size, record and
    /// snapshot size limits, the file system). Its `max_state_size` bounds
    /// the bucket's contents ([`KvError::Full`]).
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

/// What a compare-and-swap expects of a key: what [`Bucket::observe`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// The key had the value of this version.
    Present(Version),
    /// The key had no value as of this seq: a swap fails if the key was
    /// set (and perhaps deleted again) since.
    Absent {
        /// The journal's last seq when the key was seen absent.
        as_of: u64,
    },
}

/// A key's value as [`Bucket::observe`] saw it, and what a swap expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The value, if the key had one.
    pub value: Option<Vec<u8>>,
    /// What a swap of the key checks.
    pub version: Observation,
}

/// What [`Bucket::compare_and_swap`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap {
    /// The value was set.
    Swapped,
    /// The key changed since it was observed: nothing was written; this is
    /// the key as it is now, for a retry.
    Changed(Observed),
}

#[derive(Debug)]
struct Inner {
    state: BucketState,
    /// [`BucketState::snapshot_bound`] of `state`, kept up to date.
    bytes: u64,
    /// Keys whose write is in flight: no other write decides on them until
    /// its outcome is known.
    pending: HashSet<String>,
    /// Snapshot bytes the writes in flight may add.
    pending_bytes: u64,
    in_flight: usize,
    checkpointing: bool,
    /// The seq of the last delete of each key deleted after
    /// `forgotten_before` (what a swap on an absent key checks).
    deleted: HashMap<String, u64>,
    forgotten_before: u64,
    records_since_checkpoint: u64,
    checkpoint_retry_at: u64,
    checkpoint_error: Option<String>,
}

impl Inner {
    /// The value of `key`, if it has one (a value that does not decode was
    /// refused at open).
    fn value(&self, key: &str) -> Option<Vec<u8>> {
        self.state
            .entries
            .get(key)
            .map(|e| e.value.bytes().unwrap_or_default())
    }
}

/// A durable key-value bucket, locked by the process that opened it.
#[derive(Debug)]
pub struct Bucket {
    log: StateLog,
    options: BucketOptions,
    inner: Mutex<Inner>,
    /// Signalled when a write's outcome is known or a checkpoint ends.
    changed: Condvar,
}

impl Bucket {
    /// Opens (or creates) the bucket in `dir` and recovers its contents:
    /// the newest valid snapshot plus the records after it.
    pub fn open(dir: impl AsRef<Path>, options: &BucketOptions) -> Result<Bucket, KvError> {
        let dir = dir.as_ref();
        let (log, point) = StateLog::open_with(dir, &options.state)?;
        let mutations = log.mutations_after(&point)?;
        let (state, replayed) = inspect::recover(
            dir,
            &point,
            mutations.map(|entry| entry.map_err(StateError::from)),
        )?;
        let forgotten_before = log.last_seq();
        Ok(Bucket {
            options: options.clone(),
            inner: Mutex::new(Inner {
                bytes: state.snapshot_bound(),
                state,
                pending: HashSet::new(),
                pending_bytes: 0,
                in_flight: 0,
                checkpointing: false,
                deleted: HashMap::new(),
                forgotten_before,
                records_since_checkpoint: replayed,
                checkpoint_retry_at: 0,
                checkpoint_error: None,
            }),
            changed: Condvar::new(),
            log,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value of `key`, if it has one.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.lock().value(key)
    }

    /// The values of `keys`, read at one moment.
    pub fn get_many<S: AsRef<str>>(&self, keys: &[S]) -> Vec<Option<Vec<u8>>> {
        let inner = self.lock();
        keys.iter().map(|key| inner.value(key.as_ref())).collect()
    }

    /// [`Bucket::get_many`], refused before anything is copied if the
    /// values would take more than `max_bytes` (a key asked for many times
    /// counts each time): what one call makes the caller hold is bounded.
    pub fn get_many_within<S: AsRef<str>>(
        &self,
        keys: &[S],
        max_bytes: u64,
    ) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let inner = self.lock();
        let mut bytes = 0u64;
        for key in keys {
            if let Some(entry) = inner.state.entries.get(key.as_ref()) {
                bytes = bytes.saturating_add(entry.value.stored_len());
            }
        }
        if bytes > max_bytes {
            return Err(KvError::ReadTooLarge {
                bytes,
                limit: max_bytes,
            });
        }
        Ok(keys.iter().map(|key| inner.value(key.as_ref())).collect())
    }

    /// The value of `key` and what a [`Bucket::compare_and_swap`] of it
    /// expects.
    pub fn observe(&self, key: &str) -> Observed {
        let inner = self.lock();
        self.observe_locked(&inner, key)
    }

    fn observe_locked(&self, inner: &Inner, key: &str) -> Observed {
        match inner.state.entries.get(key) {
            Some(entry) => Observed {
                value: Some(entry.value.bytes().unwrap_or_default()),
                version: Observation::Present(entry.version),
            },
            // Any write decided after this read gets a later seq.
            None => Observed {
                value: None,
                version: Observation::Absent {
                    as_of: self.log.last_seq(),
                },
            },
        }
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

    /// An upper bound of the bytes the bucket's snapshot takes (what
    /// [`KvError::Full`] compares with the snapshot limit).
    pub fn snapshot_bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// Up to `max` keys after `after` (from the first with `None`), in
    /// order; the next page starts after the last one returned. A key
    /// present for the whole listing is returned exactly once, whatever
    /// changes meanwhile.
    pub fn list_keys(&self, after: Option<&str>, max: usize) -> Vec<String> {
        let inner = self.lock();
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        inner
            .state
            .entries
            .range::<str, _>((from, Bound::Unbounded))
            .take(max)
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Sets `key` to `value`, durably.
    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        let inner = self.begin([key]);
        self.write(inner, vec![set_record(key, value)])
    }

    /// Removes `key`, durably (a key that is not there is no error, and
    /// nothing written).
    pub fn delete(&self, key: &str) -> Result<(), KvError> {
        self.delete_many(&[key])
    }

    /// Sets every pair, as one atomic unit: after a crash all of them are
    /// there or none. Nothing to set is nothing written.
    pub fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<(), KvError> {
        let records = pairs.iter().map(|(k, v)| set_record(k, v)).collect();
        let inner = self.begin(pairs.iter().map(|(k, _)| k.as_str()));
        self.write(inner, records)
    }

    /// Removes every key of `keys`, as one atomic unit. Keys that are not
    /// there are skipped (none there: nothing written).
    pub fn delete_many<S: AsRef<str>>(&self, keys: &[S]) -> Result<(), KvError> {
        let inner = self.begin(keys.iter().map(AsRef::as_ref));
        let mut seen = HashSet::new();
        let records = keys
            .iter()
            .map(AsRef::as_ref)
            .filter(|key| inner.state.entries.contains_key(*key) && seen.insert(*key))
            .map(delete_record)
            .collect();
        self.write(inner, records)
    }

    /// Adds `delta` to the decimal integer value of `key` (a missing key
    /// counts as 0) and returns the new value, stored as decimal text.
    pub fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        let inner = self.begin([key]);
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

    /// Sets `key` to `value` only if it is still as `expected` says (what
    /// [`Bucket::observe`] returned): the same version, or still absent
    /// with no set since. A value changed and changed back since fails the
    /// swap. On failure nothing is written and the key as it is now is
    /// returned. A swap may also fail, safely, when the bucket cannot tell
    /// (an absence observed before the bucket's last checkpoint or open).
    pub fn compare_and_swap(
        &self,
        key: &str,
        expected: Observation,
        value: &[u8],
    ) -> Result<Swap, KvError> {
        let inner = self.begin([key]);
        let unchanged = match (expected, inner.state.entries.get(key)) {
            (Observation::Present(version), Some(entry)) => entry.version == version,
            (Observation::Absent { as_of }, None) => {
                as_of >= inner.forgotten_before
                    && inner.deleted.get(key).is_none_or(|&seq| seq <= as_of)
            }
            _ => false,
        };
        if !unchanged {
            return Ok(Swap::Changed(self.observe_locked(&inner, key)));
        }
        self.write(inner, vec![set_record(key, value)])?;
        Ok(Swap::Swapped)
    }

    /// Snapshots the bucket's contents and compacts its journal now
    /// (checkpoints are also made automatically).
    pub fn checkpoint(&self) -> Result<Checkpoint, KvError> {
        let inner = self.lock();
        self.checkpoint_locked(inner).map_err(|(_, e)| e)
    }

    /// Why the last automatic checkpoint failed, until one succeeds.
    pub fn checkpoint_error(&self) -> Option<String> {
        self.lock().checkpoint_error.clone()
    }

    /// The state underneath (its journal, snapshots and stats).
    pub fn log(&self) -> &StateLog {
        &self.log
    }

    /// The options the bucket was opened with.
    pub fn options(&self) -> &BucketOptions {
        &self.options
    }
}

fn set_record(key: &str, value: &[u8]) -> KvRecord {
    KvRecord::Set {
        key: key.to_owned(),
        value: StoredValue::of(value),
    }
}

fn delete_record(key: &str) -> KvRecord {
    KvRecord::Delete {
        key: key.to_owned(),
    }
}
