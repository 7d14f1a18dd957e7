//! `queue_fold`'s input and checks.
//!
//! The input is a container (see [`crate::container`]) of a queue
//! directory's files, but *decoded*, so that every mutation reaches the
//! fold instead of dying at a crc:
//!
//! * `journal/<segment file name>`: one record (the `data` of a line) per
//!   line, `+` before the ones that carry `"more":true`; the harness writes
//!   the header and encodes each line with its seq (from the file name on)
//!   and crc.
//! * `snapshots/<snapshot file name>`: the state; the harness frames it
//!   with the seq of the name and its crc.
//! * anything else in those directories is written as it is.
//!
//! The preamble is the clock (ms since the epoch, decimal), or
//! [`DEFAULT_NOW`].
//!
//! Checks: the unlocked inspection (`mini queue stats`) and an open agree;
//! then pops, acks, nacks, extends, a push, requeues, purges and
//! checkpoints (automatic ones too) leave a queue that reopens to the same
//! messages.

use std::path::Path;
use std::sync::Arc;

use mini_engine::queue::{
    Clock, ManualClock, MessageInfo, Place, PushOptions, Queue, QueueError, QueueOptions,
    QueueState, inspect_queue,
};
use mini_engine::segment::{encode_line, header_line, parse_line, parse_segment_file_name};
use mini_engine::snapshot::{decode_snapshot, encode_snapshot, parse_snapshot_file_name};
use mini_engine::state::{JOURNAL_DIR, SNAPSHOT_DIR};
use mini_engine::{JournalError, StateError};

use crate::container::{self, Part};
use crate::state::{inspected_from, not_inspected};
use crate::write_file;

/// The clock when the preamble gives none (the seeds' clock too).
pub const DEFAULT_NOW: u64 = 1_764_108_000_000;

/// Writes the queue directory that `parts` describe into `dir`; returns the
/// clock the preamble sets.
pub fn write_queue_dir(dir: &Path, preamble: &[u8], parts: &[Part<'_>]) -> u64 {
    std::fs::create_dir_all(dir.join(JOURNAL_DIR)).expect("creating journal/");
    std::fs::create_dir_all(dir.join(SNAPSHOT_DIR)).expect("creating snapshots/");
    for part in parts {
        let Some((sub, name)) = container::file_in(part.name, &[JOURNAL_DIR, SNAPSHOT_DIR]) else {
            continue;
        };
        if name == "LOCK" {
            continue;
        }
        let path = dir.join(sub).join(name);
        let bytes = if sub == JOURNAL_DIR {
            parse_segment_file_name(name).map(|first| encode_segment(first, part.bytes))
        } else {
            parse_snapshot_file_name(name).map(|seq| frame_snapshot(seq, part.bytes))
        };
        write_file(&path, bytes.as_deref().unwrap_or(part.bytes));
    }
    std::str::from_utf8(preamble)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(DEFAULT_NOW)
}

/// A segment starting at `first` whose records are the lines of `text`.
fn encode_segment(first: u64, text: &[u8]) -> Vec<u8> {
    let mut out = header_line(first).into_bytes();
    let mut seq = first;
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let (more, data) = match line.strip_prefix(b"+") {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        encode_line(&mut out, seq, &String::from_utf8_lossy(data), more);
        seq = seq.wrapping_add(1);
    }
    out
}

/// A snapshot file at `seq` holding `state` (its last newline dropped).
fn frame_snapshot(seq: u64, state: &[u8]) -> Vec<u8> {
    let state = state.strip_suffix(b"\n").unwrap_or(state);
    encode_snapshot(seq, &String::from_utf8_lossy(state)).into_bytes()
}

/// The input that describes the queue directory `dir` (the inverse of
/// [`write_queue_dir`], for the seeds). Lines that do not decode are left
/// out.
pub fn queue_dir_to_input(dir: &Path, now: u64) -> Vec<u8> {
    let mut files = Vec::new();
    for (sub, decode) in [
        (JOURNAL_DIR, decode_segment as fn(&[u8]) -> Option<Vec<u8>>),
        (SNAPSHOT_DIR, decode_snapshot_file),
    ] {
        let mut names: Vec<String> = std::fs::read_dir(dir.join(sub))
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        for name in names {
            let keep = if sub == JOURNAL_DIR {
                parse_segment_file_name(&name).is_some()
            } else {
                parse_snapshot_file_name(&name).is_some()
            };
            if !keep {
                continue;
            }
            let Ok(bytes) = std::fs::read(dir.join(sub).join(&name)) else {
                continue;
            };
            if let Some(decoded) = decode(&bytes) {
                files.push((format!("{sub}/{name}"), decoded));
            }
        }
    }
    container::join(now.to_string().as_bytes(), &files)
}

fn decode_segment(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for line in bytes.split(|&b| b == b'\n').skip(1) {
        if line.first().is_none_or(|&b| b == 0) {
            continue;
        }
        let record = parse_line(line).ok()?;
        if record.more {
            out.push(b'+');
        }
        out.extend_from_slice(record.data.as_bytes());
        out.push(b'\n');
    }
    Some(out)
}

fn decode_snapshot_file(bytes: &[u8]) -> Option<Vec<u8>> {
    decode_snapshot(bytes)
        .ok()
        .map(|(_, state)| state.into_bytes())
}

/// Tiny segments, little preallocation, a checkpoint every few records:
/// the operations rotate, compact and checkpoint.
pub fn options(clock: Arc<ManualClock>) -> QueueOptions {
    QueueOptions {
        segment_size: 512,
        preallocate: 4096,
        checkpoint_every: 4,
        clock,
        ..QueueOptions::default()
    }
}

/// A message as the checks compare it.
type Summary = Vec<(u64, String, u64, u32, Place)>;

fn summary(messages: impl Iterator<Item = MessageInfo>) -> Summary {
    let mut out: Summary = messages
        .map(|m| (m.id, m.payload, m.enqueued_at, m.attempts, m.place))
        .collect();
    out.sort_by_key(|m| m.0);
    out
}

fn summary_of_state(state: &QueueState) -> Summary {
    summary(state.messages().map(|m| MessageInfo {
        id: m.id,
        payload: m.payload.get().to_owned(),
        attempts: m.attempts,
        enqueued_at: m.at,
        place: m.place.clone(),
    }))
}

fn summary_of_queue(queue: &Queue) -> Summary {
    summary(
        queue
            .peek(usize::MAX)
            .into_iter()
            .chain(queue.dead_letters()),
    )
}

/// Runs every check on the queue in `dir` with the clock at `now`.
pub fn check_queue(dir: &Path, now: u64) {
    let inspected = Some(inspect_queue(dir));
    let from = inspected_from(dir);
    let clock = Arc::new(ManualClock::new(now));
    let queue = match Queue::open_with(dir, options(clock.clone())) {
        Ok(queue) => queue,
        Err(e) => {
            let unseen = match &e {
                QueueError::Storage(StateError::Journal(JournalError::Corrupt(damage))) => {
                    not_inspected(from, damage)
                }
                _ => false,
            };
            if let Some(Ok(found)) = &inspected
                && !unseen
            {
                panic!(
                    "open failed ({e:?}), the unlocked inspection read {} messages",
                    found.state.len()
                );
            }
            return;
        }
    };
    if let Some(inspected) = inspected {
        let inspected =
            inspected.unwrap_or_else(|e| panic!("the queue opens, the inspection fails: {e:?}"));
        assert_eq!(
            summary_of_state(&inspected.state),
            summary_of_queue(&queue),
            "the inspection and the open queue hold other messages"
        );
        assert_eq!(
            inspected.state.stats(now).ready,
            queue.stats().ready,
            "ready messages: inspection vs queue"
        );
    }
    operate(&queue, &clock);
    let before = summary_of_queue(&queue);
    let inspected =
        inspect_queue(dir).unwrap_or_else(|e| panic!("inspecting after the operations: {e:?}"));
    assert_eq!(
        summary_of_state(&inspected.state),
        before,
        "the inspection of the open queue after the operations"
    );
    let ids_left = inspected.state.ids_left();
    let stats = queue.stats();
    assert_eq!(
        stats.checkpoint_error, None,
        "an automatic checkpoint failed"
    );
    drop(queue);
    let queue = Queue::open_with(dir, options(clock.clone()))
        .unwrap_or_else(|e| panic!("reopen after the operations failed: {e:?}"));
    assert_eq!(
        summary_of_queue(&queue),
        before,
        "the messages after a reopen"
    );
    let again = inspect_queue(dir).unwrap_or_else(|e| panic!("inspecting after a reopen: {e:?}"));
    assert_eq!(again.state.ids_left(), ids_left, "ids left after a reopen");
    assert_eq!(
        summary_of_state(&again.state),
        before,
        "inspection after a reopen"
    );
}

/// Errors a push may get on a queue opened from fuzzed files: its ids used
/// up, or its snapshot full.
fn push_refused(e: &QueueError) -> bool {
    matches!(e, QueueError::IdsExhausted { .. } | QueueError::Full { .. })
}

/// Every kind of call, a few times, the clock moving between them.
fn operate(queue: &Queue, clock: &ManualClock) {
    let _ = queue.stats();
    let _ = queue.next_available_in();
    let _ = queue.dead_letters_page(0, 3, 1024);
    for round in 0..3u64 {
        let deliveries = queue
            .pop_batch(3, 1_000)
            .unwrap_or_else(|e| panic!("pop_batch: {e:?}"));
        for (i, d) in deliveries.iter().enumerate() {
            let done = match i % 4 {
                0 => queue.ack(d.id, &d.token),
                1 => queue.nack(d.id, &d.token, 10),
                2 => queue.extend(d.id, &d.token, 5_000).map(|_| ()),
                _ => Ok(()),
            };
            done.unwrap_or_else(|e| panic!("settling delivery {} of {}: {e:?}", d.id, d.attempt));
        }
        let dedup = (round == 1).then(|| "fuzz".to_owned());
        let pushed = queue.push_batch(&[
            (r#"{"fuzz":1}"#, PushOptions { delay_ms: 0, dedup }),
            (
                r#""later""#,
                PushOptions {
                    delay_ms: 50,
                    dedup: None,
                },
            ),
        ]);
        if let Err(e) = &pushed
            && !push_refused(e)
        {
            panic!("push_batch: {e:?}");
        }
        clock.set(clock.now_ms().saturating_add(2_000));
        if let Some(first) = queue.pop(1_000).unwrap_or_else(|e| panic!("pop: {e:?}"))
            && round == 2
        {
            let next = queue
                .ack_next(first.id, &first.token, 1_000)
                .unwrap_or_else(|e| panic!("ack_next: {e:?}"));
            if let Some(next) = next {
                queue
                    .nack(next.id, &next.token, 0)
                    .unwrap_or_else(|e| panic!("nack after ack_next: {e:?}"));
            }
        }
        if round == 1 {
            queue
                .requeue(None)
                .unwrap_or_else(|e| panic!("requeue: {e:?}"));
        } else {
            queue.purge(None).unwrap_or_else(|e| panic!("purge: {e:?}"));
        }
    }
    queue
        .checkpoint()
        .unwrap_or_else(|e| panic!("checkpoint: {e:?}"));
}
