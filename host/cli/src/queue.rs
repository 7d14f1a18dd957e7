//! `mini queue`: the operator's tools for durable queues: counts, a look at
//! the next messages and at the dead letters (read without the queue's
//! lock, so they work while a component uses the queue), and requeueing or
//! purging dead letters (which take the lock).
//!
//! ```text
//! DATA/NAMESPACE/queue/NAME/         a queue: journal/ and snapshots/
//! ```

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use mini_engine::JournalError;
use mini_engine::layout::UnitKind;
use mini_engine::queue::{
    DEFAULT_CHECKPOINT_EVERY, MessageInfo, Place, Queue, QueueError, QueueOptions, QueueState,
    SystemClock, inspect, inspect_queue,
};
use mini_engine::snapshot::{SkippedSnapshot, SnapshotError};
use mini_engine::state::{JOURNAL_DIR, SNAPSHOT_DIR, StateError};

use crate::layout::{self, Target};

/// Messages `peek` and `dead` print unless told otherwise.
const DEFAULT_MAX: usize = 100;

/// The payload limit when the queue is opened to requeue or purge: it only
/// bounds what is written (small records here), and the state limit that
/// follows from it (64 times as much) must let in any snapshot the queue's
/// writer made, whatever its limits were.
const OPEN_PAYLOAD_LIMIT: usize = 1 << 30;

/// Look at a durable queue and manage its dead letters.
///
/// A queue lives in DATA/NAMESPACE/queue/NAME/ (give NAMESPACE NAME, with
/// --data if the data directory is not ./mini-data), or anywhere with
/// --dir QUEUE_DIR (the directory holding journal/ and snapshots/).
///
///     mini queue stats app jobs
///     mini queue peek app jobs --max 10 | jq .payload
///     mini queue dead app jobs
///     mini queue requeue app jobs 17 18        (or --all)
///     mini queue purge app jobs --all --yes
///
/// stats, peek and dead read the queue without taking its lock, so they
/// work while a component uses it. requeue and purge change the queue
/// durably and take its lock: stop the process that has it open first.
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct QueueArgs {
    #[command(subcommand)]
    command: QueueCommand,
}

#[derive(Debug, Subcommand)]
enum QueueCommand {
    Stats(StatsArgs),
    Peek(PeekArgs),
    Dead(DeadArgs),
    Requeue(RequeueArgs),
    Purge(PurgeArgs),
}

/// Which queue: NAMESPACE NAME (with --data), or --dir.
#[derive(Debug, Args)]
struct Address {
    /// The namespace (with NAME; or use --dir).
    #[arg(required_unless_present = "dir", requires = "name")]
    namespace: Option<String>,
    /// The queue's name.
    #[arg(requires = "namespace")]
    name: Option<String>,
    /// The data directory (with NAMESPACE NAME).
    #[arg(long, default_value_os_t = crate::default_data_dir())]
    data: PathBuf,
    /// A queue directory (holding journal/ and snapshots/), instead of
    /// NAMESPACE NAME.
    #[arg(long, value_name = "QUEUE_DIR", conflicts_with_all = ["namespace", "name"])]
    dir: Option<PathBuf>,
}

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
struct StatsArgs {
    #[command(flatten)]
    address: Address,
}

/// Print the next messages in delivery order, one JSON line each, leasing
/// nothing:
///
///     {"id":N,"attempts":N,"enqueued_at":MS,"state":"ready","payload":PAYLOAD}
///
/// state is ready, delayed or leased (a message whose lease ran out is
/// ready); attempts is how many times it was delivered; enqueued_at is the
/// push time in milliseconds since the Unix epoch; the payload is the JSON
/// as stored. Ready messages come first, then the others by the time they
/// become deliverable. Dead letters are shown by `mini queue dead`.
///
/// Takes no lock: works while a component uses the queue.
#[derive(Debug, Args)]
#[command(
    verbatim_doc_comment,
    about = "Print the next messages (delivery order) as JSON lines, leasing nothing"
)]
struct PeekArgs {
    #[command(flatten)]
    address: Address,
    /// Print at most this many messages.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX)]
    max: usize,
}

/// Print the dead letters by id, one JSON line each:
///
///     {"id":N,"attempts":N,"enqueued_at":MS,"state":"dead","payload":PAYLOAD}
///
/// Takes no lock: works while a component uses the queue. Put them back with
/// `mini queue requeue`, delete them with `mini queue purge`.
#[derive(Debug, Args)]
#[command(verbatim_doc_comment, about = "Print the dead letters as JSON lines")]
struct DeadArgs {
    #[command(flatten)]
    address: Address,
    /// Print at most this many dead letters.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX)]
    max: usize,
}

/// Put dead letters back in the queue: available now, their delivery count
/// reset. Give their ids, or --all.
///
/// Durable when it returns; prints how many were requeued. Takes the
/// queue's lock: fails if a process has the queue open. If an id is not a
/// dead letter, nothing is requeued.
#[derive(Debug, Args)]
#[command(
    verbatim_doc_comment,
    about = "Put dead letters back in the queue (ids, or --all)",
    override_usage = "mini queue requeue NAMESPACE NAME [ID]... [--all] [--data DATA]\n       \
                      mini queue requeue --dir QUEUE_DIR [ID]... [--all]"
)]
struct RequeueArgs {
    #[command(flatten)]
    change: Change,
}

/// Delete dead letters for good. Give their ids, or --all; and --yes.
///
/// Without --yes, prints what would be deleted and exits with 1. Durable
/// when it returns; prints how many were purged. Takes the queue's lock:
/// fails if a process has the queue open. If an id is not a dead letter,
/// nothing is purged.
#[derive(Debug, Args)]
#[command(
    verbatim_doc_comment,
    about = "Delete dead letters (ids, or --all) for good, with --yes",
    override_usage = "mini queue purge NAMESPACE NAME [ID]... [--all] --yes [--data DATA]\n       \
                      mini queue purge --dir QUEUE_DIR [ID]... [--all] --yes"
)]
struct PurgeArgs {
    #[command(flatten)]
    change: Change,
    /// Really delete them (without it, only show what would be deleted).
    #[arg(long)]
    yes: bool,
}

/// Which queue and which dead letters a change is for.
#[derive(Debug, Args)]
struct Change {
    /// NAMESPACE NAME, then the ids of the dead letters; with --dir, only
    /// the ids.
    #[arg(value_name = "ARGS")]
    words: Vec<String>,
    /// The data directory (with NAMESPACE NAME).
    #[arg(long, default_value_os_t = crate::default_data_dir())]
    data: PathBuf,
    /// A queue directory (holding journal/ and snapshots/), instead of
    /// NAMESPACE NAME.
    #[arg(long, value_name = "QUEUE_DIR")]
    dir: Option<PathBuf>,
    /// Every dead letter (instead of ids).
    #[arg(long)]
    all: bool,
}

/// Which dead letters.
#[derive(Debug)]
enum Which {
    All,
    Ids(Vec<u64>),
}

impl Which {
    fn ids(&self) -> Option<&[u64]> {
        match self {
            Which::All => None,
            Which::Ids(ids) => Some(ids),
        }
    }
}

/// `mini queue`.
pub fn queue(args: QueueArgs) -> Result<ExitCode> {
    match args.command {
        QueueCommand::Stats(a) => stats(&a.address),
        QueueCommand::Peek(a) => list(&a.address, a.max, false),
        QueueCommand::Dead(a) => list(&a.address, a.max, true),
        QueueCommand::Requeue(a) => requeue(&a.change),
        QueueCommand::Purge(a) => purge(&a.change, a.yes),
    }
}

/// The queue directory `NAMESPACE/queue/NAME` under `data`, checked.
fn named_dir(data: &Path, ns: &str, name: &str) -> Result<PathBuf> {
    let dir = layout::named_unit(data, ns, UnitKind::Queue, name)?;
    check_queue_dir(&dir)?;
    Ok(dir)
}

/// The queue directory given with --dir: a queue by its place in a data
/// root, or, outside every root, a directory with a queue's entries.
fn given_dir(dir: &Path) -> Result<PathBuf> {
    let resolved = layout::resolve(dir);
    match (resolved.target, resolved.in_root) {
        (Target::Unit(UnitKind::Queue), _) => {}
        // Outside a root a queue looks like a state: its records tell
        // (`inspect` refuses records that are not a queue's).
        (Target::Unit(UnitKind::State), false) => {}
        (Target::Missing, _) => bail!("{} does not exist", dir.display()),
        (Target::Unit(kind), true) => bail!(
            "{} is not a queue directory: it is a {kind} in its data directory",
            dir.display()
        ),
        (_, true) => bail!("{} is not a queue directory", dir.display()),
        // What is missing is said below.
        (_, false) => {}
    }
    check_queue_dir(dir)?;
    Ok(dir.to_path_buf())
}

/// Fails, saying what is missing, unless `dir` holds a queue's `journal/`
/// and `snapshots/` (a queue makes both when it is first opened).
fn check_queue_dir(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        bail!("{} does not exist", dir.display());
    }
    for sub in [JOURNAL_DIR, SNAPSHOT_DIR] {
        if !dir.join(sub).is_dir() {
            bail!(
                "{} is not a queue directory (it has no {sub}/ directory)",
                dir.display()
            );
        }
    }
    Ok(())
}

impl Address {
    fn dir(&self) -> Result<PathBuf> {
        match (&self.dir, &self.namespace, &self.name) {
            (Some(dir), _, _) => given_dir(dir),
            (None, Some(ns), Some(name)) => named_dir(&self.data, ns, name),
            _ => bail!("give NAMESPACE NAME, or --dir with a queue directory"),
        }
    }
}

impl Change {
    /// The queue directory and the dead letters named.
    fn target(&self) -> Result<(PathBuf, Which)> {
        let (dir, ids) = match &self.dir {
            Some(dir) => (given_dir(dir)?, &self.words[..]),
            None => {
                let [ns, name, ids @ ..] = &self.words[..] else {
                    bail!(
                        "give NAMESPACE NAME (then ids or --all), or --dir with a queue directory"
                    );
                };
                (named_dir(&self.data, ns, name)?, ids)
            }
        };
        let which = match (self.all, ids.is_empty()) {
            (true, true) => Which::All,
            (true, false) => bail!("give message ids or --all, not both"),
            (false, true) => bail!("give the ids of the dead letters, or --all"),
            (false, false) => Which::Ids(
                ids.iter()
                    .map(|id| {
                        id.parse::<u64>()
                            .with_context(|| format!("{id:?} is not a message id (a whole number)"))
                    })
                    .collect::<Result<_>>()?,
            ),
        };
        Ok((dir, which))
    }
}

/// Reads the queue in `dir` without its lock, warning on stderr about the
/// damaged snapshots passed over.
fn read(dir: &Path) -> Result<QueueState> {
    let (state, skipped) =
        inspect(dir).with_context(|| format!("cannot read the queue in {}", dir.display()))?;
    warn_skipped(&skipped);
    Ok(state)
}

fn warn_skipped(skipped: &[SkippedSnapshot]) {
    for s in skipped {
        eprintln!(
            "mini: warning: damaged {s}; the queue is read from the snapshot before it and the journal"
        );
    }
}

fn now_ms() -> u64 {
    use mini_engine::queue::Clock;
    SystemClock.now_ms()
}

/// `mini queue stats`.
fn stats(address: &Address) -> Result<ExitCode> {
    let dir = address.dir()?;
    let found = inspect_queue(&dir)
        .with_context(|| format!("cannot read the queue in {}", dir.display()))?;
    warn_skipped(&found.skipped);
    let s = found.state.stats(now_ms());
    let overdue = found.checkpoint_overdue(DEFAULT_CHECKPOINT_EVERY);
    if overdue {
        eprintln!(
            "mini: warning: {} records since the newest snapshot: the queue's automatic checkpoints are failing",
            found.records_since_checkpoint
        );
    }
    print_lines([format!(
        "{{\"ready\":{},\"leased\":{},\"delayed\":{},\"dead\":{},\"bytes\":{},\"snapshot_bytes\":{},\"records_since_checkpoint\":{},\"checkpoint_overdue\":{overdue}}}",
        s.ready,
        s.leased,
        s.delayed,
        s.dead,
        s.bytes,
        s.snapshot_bytes,
        found.records_since_checkpoint
    )])
}

/// `mini queue peek` (`dead`: `mini queue dead`).
fn list(address: &Address, max: usize, dead: bool) -> Result<ExitCode> {
    let state = read(&address.dir()?)?;
    let now = now_ms();
    let messages = if dead {
        state.dead_letters().into_iter().take(max).collect()
    } else {
        state.peek(max)
    };
    print_lines(messages.iter().map(|m| message_line(m, now)))
}

/// Where a message is at `now`, as `stats` counts it.
fn state_name(place: &Place, now: u64) -> &'static str {
    match place {
        Place::Ready { avail } if *avail > now => "delayed",
        Place::Leased { deadline, .. } if *deadline > now => "leased",
        Place::Ready { .. } | Place::Leased { .. } => "ready",
        Place::Dead => "dead",
    }
}

/// The JSON line of one message (the payload, one JSON value on one line,
/// goes in as stored).
fn message_line(m: &MessageInfo, now: u64) -> String {
    format!(
        "{{\"id\":{},\"attempts\":{},\"enqueued_at\":{},\"state\":\"{}\",\"payload\":{}}}",
        m.id,
        m.attempts,
        m.enqueued_at,
        state_name(&m.place, now),
        m.payload
    )
}

fn print_lines(lines: impl IntoIterator<Item = String>) -> Result<ExitCode> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for line in lines {
        if let Err(e) = writeln!(out, "{line}") {
            return crate::cat::closed_or(e);
        }
    }
    if let Err(e) = out.flush() {
        return crate::cat::closed_or(e);
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens the queue in `dir` (taking its lock) to change it.
fn open(dir: &Path) -> Result<Queue> {
    let options = QueueOptions {
        max_payload_size: OPEN_PAYLOAD_LIMIT,
        ..QueueOptions::default()
    };
    Queue::open_with(dir, options).map_err(|e| {
        let locked = matches!(
            &e,
            QueueError::Storage(
                StateError::Journal(JournalError::Locked { .. })
                    | StateError::Snapshot(SnapshotError::Locked { .. })
            )
        );
        if locked {
            anyhow::anyhow!(
                "the queue in {} is open in another process (a running component holds its lock): \
                 stop that process first (stats, peek and dead work while it runs)",
                dir.display()
            )
        } else {
            anyhow::Error::new(e).context(format!("cannot open the queue in {}", dir.display()))
        }
    })
}

fn dead_letters(n: usize) -> String {
    if n == 1 {
        "1 dead letter".to_owned()
    } else {
        format!("{n} dead letters")
    }
}

/// `mini queue requeue`.
fn requeue(change: &Change) -> Result<ExitCode> {
    let (dir, which) = change.target()?;
    let queue = open(&dir)?;
    let count = queue
        .requeue(which.ids())
        .with_context(|| format!("cannot requeue in {}; nothing was requeued", dir.display()))?;
    println!("requeued {}", dead_letters(count));
    Ok(ExitCode::SUCCESS)
}

/// `mini queue purge`.
fn purge(change: &Change, yes: bool) -> Result<ExitCode> {
    let (dir, which) = change.target()?;
    if !yes {
        // What would go, checked the way the purge checks it, without the
        // lock.
        let state = read(&dir)?;
        let ids: Vec<u64> = match &which {
            Which::All => state.dead_letters().iter().map(|m| m.id).collect(),
            Which::Ids(ids) => {
                for &id in ids {
                    match state.get(id).map(|m| &m.place) {
                        None => bail!(QueueError::UnknownMessage { id }),
                        Some(Place::Dead) => {}
                        Some(_) => bail!(QueueError::NotDead { id }),
                    }
                }
                let mut ids = ids.clone();
                ids.sort_unstable();
                ids.dedup();
                ids
            }
        };
        let list: Vec<String> = ids.iter().map(u64::to_string).collect();
        println!(
            "would purge {} (ids: {}) from {}\nrun again with --yes to delete them for good",
            dead_letters(ids.len()),
            if list.is_empty() {
                "none".to_owned()
            } else {
                list.join(" ")
            },
            dir.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    let queue = open(&dir)?;
    let count = queue
        .purge(which.ids())
        .with_context(|| format!("cannot purge in {}; nothing was purged", dir.display()))?;
    println!("purged {}", dead_letters(count));
    Ok(ExitCode::SUCCESS)
}
