//! `mini queue`: the operator's tools for durable queues: counts, a look at
//! the next messages and at the dead letters (read without the queue's
//! lock, so they work while a component uses the queue), and requeueing or
//! purging dead letters (which take the lock).
//!
//! ```text
//! DATA/NAMESPACE/queue/NAME/         a queue: journal/ and snapshots/
//! ```

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use mini_engine::layout::UnitKind;

mod change;
mod read;

/// Look at a durable queue and manage its dead letters.
///
/// A queue is NAMESPACE NAME in the data directory --data DIR (default
/// ./mini-data: DATA/NAMESPACE/queue/NAME/), or PATH, its directory (the
/// one holding journal/ and snapshots/). requeue and purge take the ids
/// after it; there PATH must have a `/` in it (`./jobs`).
///
///     mini queue stats app jobs
///     mini queue peek app jobs --max 10 | jq .payload
///     mini queue dead app jobs
///     mini queue requeue app jobs 17 18        (or --all)
///     mini queue purge app jobs --all --yes
///
/// stats, peek and dead read the queue without taking its lock, so they
/// work while a component uses it. requeue and purge change the queue
/// durably and take its lock: stop the process that has it open first
/// (else they exit with 3).
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct QueueArgs {
    #[command(subcommand)]
    command: QueueCommand,
}

#[derive(Debug, Subcommand)]
enum QueueCommand {
    Stats(read::StatsArgs),
    Peek(read::PeekArgs),
    Dead(read::DeadArgs),
    Requeue(change::RequeueArgs),
    Purge(change::PurgeArgs),
}

/// Which queue: PATH, or NAMESPACE NAME (with --data).
#[derive(Debug, Args)]
struct Address {
    /// PATH (a queue directory), or NAMESPACE NAME (with --data).
    #[arg(value_name = "PATH | NAMESPACE NAME")]
    target: Vec<OsString>,
    /// The data directory (with NAMESPACE NAME).
    #[arg(long, default_value_os_t = crate::default_data_dir())]
    data: PathBuf,
    /// A queue directory: the old spelling of PATH.
    #[arg(long, value_name = "QUEUE_DIR", hide = true, conflicts_with = "target")]
    dir: Option<PathBuf>,
}

impl Address {
    fn dir(&self) -> Result<PathBuf> {
        match &self.dir {
            Some(dir) => given_dir(dir),
            None => queue_dir(&self.target, &self.data),
        }
    }
}

/// `mini queue`.
pub fn queue(args: QueueArgs) -> Result<ExitCode> {
    match args.command {
        QueueCommand::Stats(a) => read::stats(&a),
        QueueCommand::Peek(a) => read::list(&a.address, a.max, false),
        QueueCommand::Dead(a) => read::list(&a.address, a.max, true),
        QueueCommand::Requeue(a) => change::requeue(&a),
        QueueCommand::Purge(a) => change::purge(&a),
    }
}

/// The queue directory that `words` (PATH, or NAMESPACE NAME in `data`)
/// name, checked.
fn queue_dir(words: &[OsString], data: &Path) -> Result<PathBuf> {
    crate::address::state_shaped_dir(words, data, UnitKind::Queue)
}

/// A queue directory given as a path, checked.
fn given_dir(dir: &Path) -> Result<PathBuf> {
    crate::address::given_state_shaped_dir(dir, UnitKind::Queue)
}

/// "1 dead letter", "3 dead letters".
fn dead_letters(n: usize) -> String {
    if n == 1 {
        "1 dead letter".to_owned()
    } else {
        format!("{n} dead letters")
    }
}
