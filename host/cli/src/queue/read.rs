//! `mini queue stats`, `peek` and `dead`: the queue read without its lock
//! ([`inspect_queue`]), printed as JSON lines built with serde.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use mini_engine::queue::{
    Clock, DEFAULT_CHECKPOINT_EVERY, MessageInfo, SystemClock, inspect_queue,
};
use mini_engine::snapshot::SkippedSnapshot;
use serde::Serialize;
use serde_json::value::RawValue;

use super::Address;
use crate::out;

/// Messages `peek` and `dead` print unless told otherwise.
const DEFAULT_MAX: usize = 100;

/// Print a queue's counts as one JSON object.
///
///     {"ready":N,"leased":N,"delayed":N,"dead":N,"bytes":N,"snapshot_bytes":N,
///      "records_since_checkpoint":N,"checkpoint_overdue":BOOL}
///
/// ready: deliverable now (leases that ran out included); leased: delivered,
/// the lease running; delayed: pushed or nacked with a delay not yet
/// passed; dead: dead letters; bytes: the size of the live payloads;
/// snapshot_bytes: an upper bound of the snapshot's size (pushes past the
/// queue's limit are refused); records_since_checkpoint: what a reopen
/// replays; checkpoint_overdue: far more records than a checkpoint is made
/// at, so the running queue's automatic checkpoints are failing (its host
/// logs why, and a guest's `stats` shows it).
///
/// Takes no lock: works while a component uses the queue (a change being
/// written at that moment is not counted). A damaged newest snapshot is
/// passed over with a warning on stderr, as recovery does.
#[derive(Debug, Args)]
#[command(
    verbatim_doc_comment,
    about = "Print a queue's counts: ready, leased, delayed, dead, bytes"
)]
pub struct StatsArgs {
    #[command(flatten)]
    address: Address,
}

/// Print the next messages in delivery order, one JSON line each, leasing
/// nothing:
///
///     {"id":N,"attempts":N,"enqueued_at_ms":MS,"enqueued_at":"RFC 3339",
///      "state":"ready","payload":PAYLOAD}
///
/// state is ready, delayed or leased (a message whose lease ran out is
/// ready); attempts is how many times it was delivered; enqueued_at_ms is
/// the push time in milliseconds since the Unix epoch, enqueued_at the same
/// in RFC 3339 (UTC); the payload is the JSON as stored. Ready messages come
/// first, then the others by the time they become deliverable. Dead letters
/// are shown by `mini queue dead`.
///
/// Takes no lock: works while a component uses the queue.
#[derive(Debug, Args)]
#[command(
    verbatim_doc_comment,
    about = "Print the next messages (delivery order) as JSON lines, leasing nothing"
)]
pub struct PeekArgs {
    #[command(flatten)]
    pub(super) address: Address,
    /// Print at most this many messages.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX)]
    pub(super) max: usize,
}

/// Print the dead letters by id, one JSON line each:
///
///     {"id":N,"attempts":N,"enqueued_at_ms":MS,"enqueued_at":"RFC 3339",
///      "state":"dead","payload":PAYLOAD}
///
/// Takes no lock: works while a component uses the queue. Put them back with
/// `mini queue requeue`, delete them with `mini queue purge`.
#[derive(Debug, Args)]
#[command(verbatim_doc_comment, about = "Print the dead letters as JSON lines")]
pub struct DeadArgs {
    #[command(flatten)]
    pub(super) address: Address,
    /// Print at most this many dead letters.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX)]
    pub(super) max: usize,
}

/// The line of `mini queue stats`.
#[derive(Debug, Serialize)]
struct StatsLine {
    #[serde(flatten)]
    counts: out::QueueCounts,
    bytes: u64,
    snapshot_bytes: u64,
    records_since_checkpoint: u64,
    checkpoint_overdue: bool,
}

/// The line of one message.
#[derive(Debug, Serialize)]
struct MessageLine<'a> {
    id: u64,
    attempts: u32,
    enqueued_at_ms: u64,
    enqueued_at: String,
    state: &'static str,
    payload: &'a RawValue,
}

pub(super) fn warn_skipped(skipped: &[SkippedSnapshot]) {
    for s in skipped {
        eprintln!(
            "mini: warning: damaged {s}; the queue is read from the snapshot before it and the journal"
        );
    }
}

/// `mini queue stats`.
pub fn stats(args: &StatsArgs) -> Result<ExitCode> {
    let dir = args.address.dir()?;
    let found = inspect_queue(&dir)
        .with_context(|| format!("cannot read the queue in {}", dir.display()))?;
    warn_skipped(&found.skipped);
    let s = found.state.stats(SystemClock.now_ms());
    let overdue = found.checkpoint_overdue(DEFAULT_CHECKPOINT_EVERY);
    if overdue {
        eprintln!(
            "mini: warning: {} records since the newest snapshot: the queue's automatic checkpoints are failing",
            found.records_since_checkpoint
        );
    }
    out::print_json(&StatsLine {
        counts: out::QueueCounts::of(&s),
        bytes: s.bytes,
        snapshot_bytes: s.snapshot_bytes,
        records_since_checkpoint: found.records_since_checkpoint,
        checkpoint_overdue: overdue,
    })
}

/// `mini queue peek` (`dead`: `mini queue dead`).
pub fn list(address: &Address, max: usize, dead: bool) -> Result<ExitCode> {
    let dir = address.dir()?;
    let found = inspect_queue(&dir)
        .with_context(|| format!("cannot read the queue in {}", dir.display()))?;
    warn_skipped(&found.skipped);
    let now = SystemClock.now_ms();
    let messages = if dead {
        found.state.dead_letters().into_iter().take(max).collect()
    } else {
        found.state.peek(max)
    };
    out::print_lines(messages.iter().map(|m| message_line(m, now)))
}

fn message_line(m: &MessageInfo, now: u64) -> Result<String> {
    out::line(&MessageLine {
        id: m.id,
        attempts: m.attempts,
        enqueued_at_ms: m.enqueued_at,
        enqueued_at: crate::time::utc_ms(m.enqueued_at),
        state: m.place.state_at(now).name(),
        payload: out::raw(&m.payload)?,
    })
}
