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

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use mini_engine::layout::UnitKind;
use mini_engine::state::{JOURNAL_DIR, SNAPSHOT_DIR};

use crate::exit::usage;
use crate::layout::{self, Target};

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
    match crate::address::resolve(words, data, Some(UnitKind::Queue))? {
        crate::address::Address::Path(dir) => given_dir(&dir),
        crate::address::Address::Named(dir) => {
            check_queue_dir(&dir)?;
            Ok(dir)
        }
        crate::address::Address::Data(_) => {
            usage!("give the queue: NAMESPACE NAME (with --data DIR), or PATH")
        }
    }
}

/// A queue directory given as a path: a queue by its place in a data root,
/// or, outside every root, a directory with a queue's entries.
fn given_dir(dir: &Path) -> Result<PathBuf> {
    let resolved = layout::resolve(dir);
    match (resolved.target, resolved.in_root) {
        (Target::Unit(UnitKind::Queue), _) => {}
        // Outside a root a queue looks like a state: its records tell
        // (`inspect` refuses records that are not a queue's).
        (Target::Unit(UnitKind::State), false) => {}
        (Target::Missing, _) => bail!("{} does not exist", dir.display()),
        (Target::Unit(kind), true) => usage!(
            "{} is not a queue directory: it is a {kind} in its data directory",
            dir.display()
        ),
        (_, true) => usage!("{} is not a queue directory", dir.display()),
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
            usage!(
                "{} is not a queue directory (it has no {sub}/ directory)",
                dir.display()
            );
        }
    }
    Ok(())
}

/// "1 dead letter", "3 dead letters".
fn dead_letters(n: usize) -> String {
    if n == 1 {
        "1 dead letter".to_owned()
    } else {
        format!("{n} dead letters")
    }
}
