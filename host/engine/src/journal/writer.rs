//! Appending with group commit.
//!
//! An append encodes its lines into the commit queue (under the queue mutex,
//! which also assigns the sequence numbers) and waits until they are durable.
//! If no leader is at work, the appender becomes the leader: it takes
//! everything queued so far, writes it with one positioned write, runs one
//! `fdatasync`, and marks it durable for every waiter. Appenders that queue
//! while the leader works wait for it; then one of them leads the next group,
//! which holds all of them. No background thread is needed, appenders never
//! write to a file that is being synced, and under load one write and one
//! fsync serve many appends. Only the leader touches the segment files, so
//! syncs never overlap (two overlapping syncs could split an error report
//! between them, and one would acknowledge records on the word of a sync that
//! lost them).

use std::borrow::Cow;
use std::sync::MutexGuard;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::files::Failed;
use super::{Inner, Journal, lock};
use crate::error::JournalError;
use crate::record::check_record;
use crate::segment;

/// One append (a single record or a batch) waiting in the queue.
#[derive(Debug, Clone, Copy)]
pub(super) struct Unit {
    /// Where its lines end in the queue buffer.
    pub end: usize,
    pub first_seq: u64,
    pub last_seq: u64,
}

/// Appends waiting to be written, and the progress of group commit.
#[derive(Debug)]
pub(super) struct CommitQueue {
    pub next_seq: u64,
    buf: Vec<u8>,
    units: Vec<Unit>,
    /// A leader is gathering, writing or syncing a group now.
    leading: bool,
    /// A leader waits for units: every enqueue signals it.
    gathering: bool,
    /// Appenders inside `append_batch` (queued, or done and about to return).
    appenders: usize,
    /// How long the last group's write and sync took.
    last_commit: Duration,
    /// Everything up to here is on stable storage.
    synced_seq: u64,
    /// A buffer to reuse for the next group.
    spare: Vec<u8>,
    /// Whether the next leader waits for an append not yet made.
    linger: Linger,
    /// The group that failed and poisoned the journal: its last seq and its
    /// error, for every appender in it (an undo that failed makes the
    /// outcome unknown, which a bare `Poisoned` would not say).
    failed: Option<(u64, JournalError)>,
}

impl CommitQueue {
    pub fn new(next_seq: u64) -> Self {
        CommitQueue {
            next_seq,
            buf: Vec::new(),
            units: Vec::new(),
            leading: false,
            gathering: false,
            appenders: 0,
            last_commit: Duration::ZERO,
            synced_seq: next_seq - 1,
            spare: Vec::new(),
            linger: Linger::default(),
            failed: None,
        }
    }
}

impl Journal {
    /// Appends one record (exactly one JSON value) and returns its sequence
    /// number once it is on stable storage.
    pub fn append(&self, record: &str) -> Result<u64, JournalError> {
        self.append_batch(&[record])
    }

    /// Serializes `value` to JSON and appends it; see [`Journal::append`].
    pub fn append_json<T: Serialize + ?Sized>(&self, value: &T) -> Result<u64, JournalError> {
        let text =
            serde_json::to_string(value).map_err(|e| JournalError::InvalidRecord(e.to_string()))?;
        self.append(&text)
    }

    /// Appends `records` as one atomic unit and returns the sequence number
    /// of the last one once all are on stable storage. After a crash the
    /// batch is there whole or not at all. If any record is invalid, nothing
    /// is written.
    pub fn append_batch<S: AsRef<str>>(&self, records: &[S]) -> Result<u64, JournalError> {
        if records.is_empty() {
            return Err(JournalError::InvalidRecord("empty batch".into()));
        }
        let limit = self.inner.options.max_record_size;
        let checked = records
            .iter()
            .map(|r| check_record(r.as_ref(), limit))
            .collect::<Result<Vec<_>, _>>()?;
        let inner = &*self.inner;
        let mut queue = lock(&inner.queue);
        let last = enqueue(inner, &mut queue, &checked)?;
        queue.appenders += 1;
        let result = loop {
            if queue.synced_seq >= last {
                break Ok(last);
            }
            if self.is_poisoned() {
                break Err(match &queue.failed {
                    Some((failed_last, error)) if last <= *failed_last => error.clone(),
                    // Queued after the failed group was taken: never written.
                    _ => JournalError::Poisoned,
                });
            }
            if queue.leading {
                queue = inner.synced.wait(queue).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            match lead_group(inner, queue) {
                Ok(guard) => queue = guard,
                Err((guard, e)) => {
                    queue = guard;
                    // Units synced before a rotation in the failed group
                    // are durable: the leader's own may be one of them.
                    if queue.synced_seq >= last {
                        break Ok(last);
                    }
                    break Err(e);
                }
            }
        };
        queue.appenders -= 1;
        if queue.gathering {
            inner.queued.notify_one();
        }
        result
    }
}

/// Encodes a unit into the queue; returns its last sequence number.
fn enqueue(
    inner: &Inner,
    queue: &mut CommitQueue,
    records: &[Cow<'_, str>],
) -> Result<u64, JournalError> {
    if inner.poisoned.load(Ordering::Acquire) {
        return Err(JournalError::Poisoned);
    }
    let first = queue.next_seq;
    let count = records.len() as u64;
    if first
        .checked_add(count.saturating_sub(1))
        .is_none_or(|last| last > segment::MAX_SEQ)
    {
        return Err(JournalError::SequenceExhausted {
            next: first,
            records: count,
        });
    }
    for (i, record) in records.iter().enumerate() {
        let more = i + 1 < records.len();
        segment::encode_line(&mut queue.buf, first + i as u64, record, more);
    }
    queue.next_seq += records.len() as u64;
    let last = queue.next_seq - 1;
    let end = queue.buf.len();
    if queue.leading {
        queue.linger.overlapped();
    }
    queue.units.push(Unit {
        end,
        first_seq: first,
        last_seq: last,
    });
    if queue.gathering {
        inner.queued.notify_one();
    }
    Ok(last)
}

/// Whether a leader lingers: waits for one more append than there are
/// appenders inside `append_batch`.
///
/// Two threads that take turns (a queue's producer and its consumer, each
/// doing work between its appends) are rarely inside `append_batch`
/// together, yet each comes back within the time of a sync: a leader that
/// waits for the other's append saves that append a sync of its own. What
/// gives such threads away is an append that came while another group was
/// being committed. One writer, even one moving between the threads of a
/// pool, never overlaps itself and never lingers. Lingering stops after
/// [`Linger::MAX_MISSES`] lingers in a row in which the other thread did
/// not come, and is tried again every [`Linger::RETRY`] groups, so writers
/// that append rarely pay for it at most once in that many commits.
#[derive(Debug, Default)]
struct Linger {
    /// An append came while a group was being committed.
    overlapped: bool,
    /// Lingers in a row in which the other thread's append did not come.
    misses: u32,
    /// Groups led without lingering since lingering stopped paying.
    skipped: u32,
}

impl Linger {
    /// Lingers in a row that found no other append before lingering stops.
    const MAX_MISSES: u32 = 4;
    /// Groups led without lingering before a leader tries lingering again.
    const RETRY: u32 = 16;

    /// An append came while a group was being committed.
    fn overlapped(&mut self) {
        self.overlapped = true;
    }

    /// Whether the leader of the group starting now lingers; if it does, it
    /// tells [`Linger::lingered`] how that went.
    fn starts(&mut self) -> bool {
        if !std::mem::take(&mut self.overlapped) {
            return false;
        }
        if self.misses < Self::MAX_MISSES || self.skipped >= Self::RETRY {
            self.skipped = 0;
            true
        } else {
            self.skipped += 1;
            false
        }
    }

    /// Whether the append a leader lingered for came.
    fn lingered(&mut self, came: bool) {
        self.misses = if came {
            0
        } else {
            self.misses.saturating_add(1)
        };
    }
}

type LeadResult<'a> =
    Result<MutexGuard<'a, CommitQueue>, (MutexGuard<'a, CommitQueue>, JournalError)>;

/// Takes every queued unit, writes and syncs them as one group with the
/// queue unlocked, and marks them durable (or poisons the journal).
fn lead_group<'a>(inner: &'a Inner, mut queue: MutexGuard<'a, CommitQueue>) -> LeadResult<'a> {
    queue.leading = true;
    let mut queue = gather(inner, queue);
    let spare = std::mem::take(&mut queue.spare);
    let buf = std::mem::replace(&mut queue.buf, spare);
    let units = std::mem::take(&mut queue.units);
    drop(queue);

    let started = Instant::now();
    let result = write_group(inner, &buf, &units);
    let group_last = units.last().map_or(0, |u| u.last_seq);
    finish_group(inner, buf, group_last, started, result)
}

/// The longest a leader waits for more appenders to join its group.
const MAX_GATHER: Duration = Duration::from_micros(500);

/// Lets the appenders that are inside `append_batch` but not queued (those
/// of the group just finished, waking up, and coming back with their next
/// append) join the group, for at most the time of the last commit:
/// otherwise groups alternate and each fsync carries only half of the
/// appenders. A lone appender never waits, unless the [`Linger`] says so.
fn gather<'a>(
    inner: &'a Inner,
    mut queue: MutexGuard<'a, CommitQueue>,
) -> MutexGuard<'a, CommitQueue> {
    let linger = queue.linger.starts();
    let target = if linger {
        queue.appenders.max(2)
    } else {
        queue.appenders
    };
    let deadline = Instant::now() + queue.last_commit.min(MAX_GATHER);
    while queue.units.len() < target {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        queue.gathering = true;
        queue = inner
            .queued
            .wait_timeout(queue, deadline - now)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    queue.gathering = false;
    if linger {
        let came = queue.units.len() >= target;
        queue.linger.lingered(came);
    }
    queue
}

/// Writes and syncs `buf`, the lines of `units`; returns the group's last
/// sequence number (0 for an empty group).
fn write_group(inner: &Inner, buf: &[u8], units: &[Unit]) -> Result<u64, Failed> {
    let Some(last) = units.last() else {
        return Ok(0);
    };
    let mut files = lock(&inner.files);
    let options = &inner.options;
    let segments = files.segments.len();
    let indexed = files.active_index_len();
    let result = files
        .commit(
            options.fs.as_ref(),
            &inner.dir,
            options.segment_size,
            buf,
            units,
        )
        .map(|()| last.last_seq);
    // Readers seek through the active segment's index as it grows.
    if files.segments.len() != segments || files.active_index_len() != indexed {
        *lock(&inner.index) = files.index();
    }
    inner
        .size_bytes
        .store(files.size_bytes(), Ordering::Release);
    result
}

/// Back under the queue's lock after a group ending at `group_last` was
/// written: keeps `buf` for the next group, wakes the waiters, and marks
/// the group durable or poisons the journal.
fn finish_group(
    inner: &Inner,
    mut buf: Vec<u8>,
    group_last: u64,
    started: Instant,
    result: Result<u64, Failed>,
) -> LeadResult<'_> {
    let mut queue = lock(&inner.queue);
    queue.leading = false;
    queue.last_commit = started.elapsed();
    buf.clear();
    queue.spare = buf;
    inner.synced.notify_all();
    match result {
        Ok(last) => {
            queue.synced_seq = queue.synced_seq.max(last);
            inner.durable_seq.fetch_max(last, Ordering::AcqRel);
            Ok(queue)
        }
        Err(Failed { durable_seq, error }) => {
            queue.synced_seq = queue.synced_seq.max(durable_seq);
            inner.durable_seq.fetch_max(durable_seq, Ordering::AcqRel);
            // The group was undone, but after a failed fsync the page cache
            // may not match the disk (and the undo itself may have failed):
            // refuse everything until the journal is reopened and recovery
            // reads what is really there.
            inner.poisoned.store(true, Ordering::Release);
            tracing::warn!(dir = %inner.dir.display(), durable_seq, error = %error, "journal poisoned: a write or fsync failed; it refuses appends until reopened");
            queue.failed = Some((group_last, error.clone()));
            queue.buf.clear();
            queue.units.clear();
            Err((queue, error))
        }
    }
}
