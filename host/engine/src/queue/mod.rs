//! A durable queue with at-least-once delivery: leases, acks, nacks with a
//! delay, delayed messages, deduplication and dead letters (the model of SQS
//! and NATS JetStream work queues).
//!
//! A queue is a state (see [`crate::state`]) whose mutations are
//! [`QueueRecord`]s: every change — push, lease, ack, nack, extend,
//! dead-letter, requeue, purge — is a durable journal record before the call
//! returns; the queue's state is the fold of its journal after its newest
//! snapshot. Checkpoints are automatic and compact the journal, so the files
//! hold the live messages, not the history. Leases and delays are wall-clock
//! deadlines written in the records: they survive restarts.
//!
//! Concurrent callers share fsyncs (the journal's group commit): a call
//! decides under the queue's lock, in memory, then writes its records with
//! the lock released. A message whose change is being written is not
//! touched by anyone else until the write is done, so the journal's order
//! always agrees with the order of the decisions.
//!
//! ```
//! use mini_engine::queue::{PushOptions, Queue};
//!
//! let dir = tempfile::tempdir()?;
//! let queue = Queue::open(dir.path())?;
//! let id = queue.push(r#"{"job":1}"#, &PushOptions::default())?; // durable
//! let delivery = queue.pop(30_000)?.expect("a message"); // leased for 30 s
//! assert_eq!((delivery.id, delivery.payload.as_str(), delivery.attempt), (id, r#"{"job":1}"#, 1));
//! queue.ack(delivery.id, &delivery.token)?; // gone for good
//! assert!(queue.pop(30_000)?.is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Condvar, Mutex, MutexGuard};

use serde_json::value::RawValue;

mod admin;
mod clock;
mod delivery;
mod error;
mod fold;
mod inspect;
mod types;
mod watch;

pub use admin::MessageState;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{BadRecordKind, QueueError};
pub use fold::{FoldError, MAX_ID, Message, Place, QueueRecord, QueueSnapshot, QueueState};
pub use inspect::{Inspection, inspect, inspect_queue};
pub use types::{
    DEFAULT_CHECKPOINT_EVERY, DEFAULT_DEDUP_WINDOW_MS, DEFAULT_MAX_DELIVERIES,
    DEFAULT_MAX_PAYLOAD_SIZE, Delivery, MAX_DEDUP_KEY, MessageInfo, PushOptions, QueueOptions,
    QueueStats,
};
pub use watch::ListenerId;

use crate::record::check_record;
use crate::snapshot::DEFAULT_KEEP;
use crate::state::{RecoveryPoint, StateError, StateLog, StateOptions};
use crate::{CheckpointPolicy, JournalError};

/// The state at `point` (its snapshot), then every record `mutations`
/// yields applied; returns it and how many records were applied.
fn recover<E>(
    point: &RecoveryPoint,
    mutations: impl Iterator<Item = Result<crate::Entry, E>>,
) -> Result<(QueueState, u64), QueueError>
where
    QueueError: From<E>,
{
    let mut state = match &point.snapshot {
        Some(restored) => {
            let snapshot: QueueSnapshot =
                serde_json::from_str(&restored.state).map_err(|source| {
                    StateError::BadSnapshotState {
                        seq: restored.seq,
                        path: restored.path.clone(),
                        source,
                    }
                })?;
            QueueState::from_snapshot(snapshot)
        }
        None => QueueState::default(),
    };
    let mut replayed = 0;
    for entry in mutations {
        let entry = entry?;
        let bad = |source: BadRecordKind| QueueError::BadRecord {
            seq: entry.seq,
            source,
        };
        let record: QueueRecord = serde_json::from_str(&entry.data).map_err(|e| bad(e.into()))?;
        state.apply(record).map_err(|e| bad(e.into()))?;
        replayed += 1;
    }
    Ok((state, replayed))
}

/// Bytes a push record adds to its payload (id, times, framing), besides
/// its dedup key.
const PUSH_OVERHEAD: usize = 256;
/// The smallest snapshot limit a queue gets, whatever its options say.
const DEFAULT_MIN_SNAPSHOT_SIZE: usize = 1024 * 1024;

#[derive(Debug, Default)]
struct Inner {
    state: QueueState,
    /// Messages whose change is being written: nobody else touches them.
    pending: HashSet<u64>,
    /// Calls between their decision and the end of their write.
    in_flight: usize,
    /// A checkpoint waits for the calls in flight; new calls wait for it.
    checkpointing: bool,
    records_since_checkpoint: u64,
    checkpoint_error: Option<String>,
    /// After a failed automatic checkpoint, the next is tried once
    /// `records_since_checkpoint` reaches this (not at every call).
    checkpoint_retry_at: u64,
    /// Snapshot bytes of pushes being written (not yet in `state`).
    pushing_bytes: u64,
}

/// A durable queue in a directory (`journal/` and `snapshots/` inside it).
/// One process at a time: the directory is locked.
#[derive(Debug)]
pub struct Queue {
    log: StateLog,
    options: QueueOptions,
    inner: Mutex<Inner>,
    /// Notified whenever a call finishes its write or the queue changes.
    changed: Condvar,
    /// Called whenever `changed` is notified (see [`Queue::add_listener`]).
    listeners: watch::Listeners,
    tokens: AtomicU64,
}

impl Queue {
    /// Opens (or creates) the queue in `dir` with default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<Queue, QueueError> {
        Queue::open_with(dir, QueueOptions::default())
    }

    /// Opens (or creates) the queue in `dir`: its newest valid snapshot plus
    /// the records after it.
    pub fn open_with(
        dir: impl AsRef<Path>,
        mut options: QueueOptions,
    ) -> Result<Queue, QueueError> {
        options.max_deliveries = options.max_deliveries.max(1);
        // Room for 64 of the largest messages, so one always fits.
        let max_state_size = options
            .max_snapshot_size
            .max(options.max_payload_size.saturating_mul(64))
            .max(DEFAULT_MIN_SNAPSHOT_SIZE);
        let state_options = StateOptions {
            segment_size: options.segment_size,
            preallocate: options.preallocate,
            // A dedup key is JSON-escaped in the record: up to 6 bytes a byte.
            max_record_size: options
                .max_payload_size
                .saturating_add(6 * MAX_DEDUP_KEY + PUSH_OVERHEAD),
            max_state_size,
            keep_snapshots: DEFAULT_KEEP,
            checkpoint: CheckpointPolicy::default(),
            fs: options.fs.clone(),
        };
        let (log, point) = StateLog::open_with(dir, &state_options)?;
        let reader = log.mutations_after(&point)?;
        let (state, replayed) = recover(&point, reader)?;
        Ok(Queue {
            log,
            options,
            inner: Mutex::new(Inner {
                state,
                records_since_checkpoint: replayed,
                ..Inner::default()
            }),
            changed: Condvar::new(),
            listeners: watch::Listeners::default(),
            tokens: AtomicU64::new(0),
        })
    }

    fn now(&self) -> u64 {
        self.options.clock.now_ms()
    }

    /// The queue's lock, once no checkpoint is being made.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while inner.checkpointing {
            inner = self.wait(inner);
        }
        inner
    }

    fn wait<'a>(&self, inner: MutexGuard<'a, Inner>) -> MutexGuard<'a, Inner> {
        self.changed.wait(inner).unwrap_or_else(|p| p.into_inner())
    }

    /// Pushes one message (`payload`: one JSON value) durably; returns its id.
    pub fn push(&self, payload: &str, options: &PushOptions) -> Result<u64, QueueError> {
        let ids = self.push_batch(&[(payload, options.clone())])?;
        ids.first()
            .copied()
            .ok_or_else(|| QueueError::InvalidArgument("empty batch".into()))
    }

    /// Pushes messages as one atomic unit (after a crash all of them are
    /// there or none); returns their ids in order. A message whose dedup key
    /// is already known gets the earlier message's id and adds nothing. If
    /// any payload is invalid, nothing is pushed.
    pub fn push_batch<P: AsRef<str>>(
        &self,
        messages: &[(P, PushOptions)],
    ) -> Result<Vec<u64>, QueueError> {
        if messages.is_empty() {
            return Err(QueueError::InvalidArgument("empty batch".into()));
        }
        let mut payloads = Vec::with_capacity(messages.len());
        for (payload, options) in messages {
            payloads.push(self.check_payload(payload.as_ref())?);
            if let Some(key) = &options.dedup
                && key.len() > MAX_DEDUP_KEY
            {
                return Err(QueueError::InvalidArgument(format!(
                    "dedup key of {} bytes (at most {MAX_DEDUP_KEY})",
                    key.len()
                )));
            }
        }
        let mut inner = self.lock();
        let now = self.now();
        let since = now.saturating_sub(self.options.dedup_window_ms);
        // A dedup key of a push still being written: wait for its outcome,
        // or a failed first push would leave the second without a message.
        while messages.iter().any(|(_, o)| {
            o.dedup
                .as_deref()
                .and_then(|k| inner.state.dedup(k, since))
                .is_some_and(|id| inner.pending.contains(&id))
        }) {
            inner = self.wait(inner);
        }
        let added: u64 = messages
            .iter()
            .zip(&payloads)
            .filter(|((_, o), _)| {
                o.dedup
                    .as_deref()
                    .and_then(|k| inner.state.dedup(k, since))
                    .is_none()
            })
            .map(|((_, o), p)| {
                let key = o.dedup.as_deref();
                fold::message_snapshot_bound(p.get().len(), key)
                    + key.map_or(0, fold::dedup_snapshot_bound)
            })
            .sum();
        let needed = inner
            .state
            .snapshot_bound()
            .saturating_add(inner.pushing_bytes)
            .saturating_add(added);
        let limit = self.snapshot_limit();
        if needed > limit {
            return Err(QueueError::Full { needed, limit });
        }
        if inner.state.ids_left() < messages.len() as u64 {
            return Err(QueueError::IdsExhausted {
                left: inner.state.ids_left(),
            });
        }
        let mut ids = Vec::with_capacity(messages.len());
        let mut records = Vec::new();
        for ((_, options), payload) in messages.iter().zip(payloads) {
            if let Some(id) = options
                .dedup
                .as_deref()
                .and_then(|k| inner.state.dedup(k, since))
            {
                ids.push(id);
                continue;
            }
            let id = inner.state.allocate_id();
            if let Some(key) = &options.dedup {
                inner.state.reserve_dedup(key.clone(), id, now);
            }
            inner.pending.insert(id);
            ids.push(id);
            records.push(QueueRecord::Push {
                id,
                at: now,
                avail: now.saturating_add(options.delay_ms),
                dedup: options.dedup.clone(),
                payload,
            });
        }
        if records.is_empty() {
            return Ok(ids);
        }
        inner.in_flight += 1;
        inner.pushing_bytes += added;
        drop(inner);
        let written = self.append(&records);
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.in_flight -= 1;
        inner.pushing_bytes -= added;
        for record in records {
            inner.pending.remove(&record.id());
            if written.is_ok() {
                // Cannot fail: the id was fresh.
                let _ = inner.state.apply(record);
            } else if let QueueRecord::Push {
                id,
                dedup: Some(key),
                ..
            } = &record
            {
                inner.state.release_dedup(key, *id);
            }
        }
        self.finish(inner, written.map(|n| (ids, n)))
    }

    fn check_payload(&self, payload: &str) -> Result<Box<RawValue>, QueueError> {
        let checked =
            check_record(payload, self.options.max_payload_size).map_err(|e| match e {
                JournalError::RecordTooLarge { size, limit } => {
                    QueueError::PayloadTooLarge { size, limit }
                }
                JournalError::InvalidRecord(why) => QueueError::InvalidPayload(why),
                other => QueueError::InvalidPayload(other.to_string()),
            })?;
        RawValue::from_string(checked.into_owned())
            .map_err(|e| QueueError::InvalidPayload(e.to_string()))
    }

    /// Writes `records` as one atomic unit; returns how many.
    fn append(&self, records: &[QueueRecord]) -> Result<u64, QueueError> {
        let lines = records
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| QueueError::Storage(StateError::Serialize(e)))?;
        self.log.commit_batch(&lines)?;
        Ok(lines.len() as u64)
    }

    /// Ends a call: wakes waiters, counts the records written, and makes the
    /// automatic checkpoint when it is due (its failure does not fail the
    /// call, which is durable; it is kept for [`Queue::stats`]).
    fn finish<T>(
        &self,
        mut inner: MutexGuard<'_, Inner>,
        result: Result<(T, u64), QueueError>,
    ) -> Result<T, QueueError> {
        self.changed.notify_all();
        self.listeners.call();
        let (value, written) = result?;
        inner.records_since_checkpoint += written;
        let every = self.options.checkpoint_every.max(inner.state.len() as u64);
        let due = inner.records_since_checkpoint >= every.max(inner.checkpoint_retry_at);
        if due && !inner.checkpointing {
            match self.checkpoint_locked(inner) {
                Ok(_) => {}
                Err((mut inner, e)) => {
                    // Tried again after as many records again: a checkpoint
                    // that keeps failing must not slow down every call.
                    inner.checkpoint_retry_at =
                        inner.records_since_checkpoint.saturating_add(every);
                    tracing::warn!(
                        queue = %self.log.dir().display(),
                        error = %e,
                        records_since_checkpoint = inner.records_since_checkpoint,
                        "automatic checkpoint of a queue failed; the journal is not compacted until one succeeds"
                    );
                    inner.checkpoint_error = Some(e.to_string());
                }
            }
        }
        Ok(value)
    }

    /// Applies `records` (changes of live messages) in memory, writes them
    /// with the lock released, and undoes them in memory if the write fails.
    fn change(
        &self,
        mut inner: MutexGuard<'_, Inner>,
        records: Vec<QueueRecord>,
    ) -> Result<(), QueueError> {
        let mut before: Vec<(u64, Option<Message>)> = Vec::new();
        for record in &records {
            let id = record.id();
            if !before.iter().any(|(i, _)| *i == id) {
                before.push((id, inner.state.get(id).cloned()));
            }
        }
        for record in &records {
            if let Err(e) = inner.state.apply(record.clone()) {
                restore(&mut inner.state, before);
                return Err(QueueError::BadRecord {
                    seq: 0,
                    source: e.into(),
                });
            }
        }
        inner.pending.extend(before.iter().map(|(id, _)| *id));
        inner.in_flight += 1;
        drop(inner);
        let written = self.append(&records);
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.in_flight -= 1;
        for (id, _) in &before {
            inner.pending.remove(id);
        }
        if written.is_err() {
            restore(&mut inner.state, before);
        }
        self.finish(inner, written.map(|n| ((), n)))
    }

    /// Snapshots the queue's live messages and compacts its journal now
    /// (checkpoints are also made automatically).
    pub fn checkpoint(&self) -> Result<crate::state::Checkpoint, QueueError> {
        let inner = self.lock();
        self.checkpoint_locked(inner).map_err(|(_, e)| e)
    }

    /// Waits for the calls in flight (their records are then all applied in
    /// memory, so the state is the fold of the journal up to its last seq),
    /// then snapshots and compacts, holding off new calls meanwhile.
    #[allow(clippy::result_large_err)]
    fn checkpoint_locked<'a>(
        &'a self,
        mut inner: MutexGuard<'a, Inner>,
    ) -> Result<crate::state::Checkpoint, (MutexGuard<'a, Inner>, QueueError)> {
        inner.checkpointing = true;
        while inner.in_flight > 0 {
            inner = self.wait(inner);
        }
        let since = self.now().saturating_sub(self.options.dedup_window_ms);
        // Keys of messages long gone are forgotten here, so memory follows
        // the live messages, not the history.
        inner.state.prune_dedup(since);
        let result = serde_json::to_string(&inner.state.to_snapshot(since))
            .map_err(|e| QueueError::Storage(StateError::Serialize(e)))
            .and_then(|json| Ok(self.log.checkpoint(self.log.last_seq(), &json)?));
        inner.checkpointing = false;
        self.changed.notify_all();
        match result {
            Ok(done) => {
                inner.records_since_checkpoint = 0;
                inner.checkpoint_retry_at = 0;
                inner.checkpoint_error = None;
                Ok(done)
            }
            Err(e) => Err((inner, e)),
        }
    }

    /// The most bytes the queue's snapshot may take: what its snapshot
    /// store accepts.
    pub fn snapshot_limit(&self) -> u64 {
        u64::try_from(self.log.snapshots().options().max_state_size).unwrap_or(u64::MAX)
    }

    /// The journal and snapshots underneath.
    pub fn log(&self) -> &StateLog {
        &self.log
    }

    /// The options the queue was opened with.
    pub fn options(&self) -> &QueueOptions {
        &self.options
    }
}

fn restore(state: &mut QueueState, before: Vec<(u64, Option<Message>)>) {
    for (id, message) in before {
        state.take(id);
        if let Some(message) = message {
            state.put(message);
        }
    }
}
