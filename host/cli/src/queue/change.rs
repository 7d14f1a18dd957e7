//! `mini queue requeue` and `purge`: durable changes to a queue's dead
//! letters, under the queue's lock. A purge without `--yes` is a dry run:
//! it says what it would delete, by the same rule the purge applies
//! ([`QueueState::select_dead_letters`]), and exits 0.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use mini_engine::JournalError;
use mini_engine::queue::{Queue, QueueError, QueueOptions, QueueState, inspect_queue};
use mini_engine::snapshot::SnapshotError;
use mini_engine::state::StateError;
use serde::Serialize;

use super::read::warn_skipped;
use super::{dead_letters, given_dir, queue_dir};
use crate::exit::usage;

/// The payload limit when the queue is opened to requeue or purge: it only
/// bounds what is written (small records here), and the state limit that
/// follows from it (64 times as much) must let in any snapshot the queue's
/// writer made, whatever its limits were.
const OPEN_PAYLOAD_LIMIT: usize = 1 << 30;

/// Put dead letters back in the queue: available now, their delivery count
/// reset. Give their ids, or --all.
///
/// Durable when it returns; prints how many were requeued (with --json:
/// {"requeued":N}). Takes the queue's lock: fails (exit 3) if a process has
/// the queue open. If an id is not a dead letter, nothing is requeued
/// (exit 1).
#[derive(Debug, Args)]
#[command(
    verbatim_doc_comment,
    about = "Put dead letters back in the queue (ids, or --all)",
    override_usage = "mini queue requeue NAMESPACE NAME [ID]... [--all] [--data DATA] [--json]\n       \
                      mini queue requeue PATH [ID]... [--all] [--json]"
)]
pub struct RequeueArgs {
    #[command(flatten)]
    change: Change,
}

/// Delete dead letters for good. Give their ids, or --all; and --yes.
///
/// Without --yes, prints what would be deleted, changes nothing and exits
/// with 0 (with --json: {"dry_run":true,"would_purge":[ID…]}). With --yes,
/// durable when it returns; prints how many were purged (with --json:
/// {"dry_run":false,"purged":N}). Takes the queue's lock: fails (exit 3) if
/// a process has the queue open. If an id is not a dead letter, nothing is
/// purged (exit 1).
#[derive(Debug, Args)]
#[command(
    verbatim_doc_comment,
    about = "Delete dead letters (ids, or --all) for good, with --yes",
    override_usage = "mini queue purge NAMESPACE NAME [ID]... [--all] --yes [--data DATA] [--json]\n       \
                      mini queue purge PATH [ID]... [--all] --yes [--json]"
)]
pub struct PurgeArgs {
    #[command(flatten)]
    change: Change,
    /// Really delete them (without it, only show what would be deleted).
    #[arg(long)]
    yes: bool,
}

/// Which queue and which dead letters a change is for.
#[derive(Debug, Args)]
struct Change {
    /// NAMESPACE NAME (or PATH, with a `/` in it), then the ids of the dead
    /// letters.
    #[arg(value_name = "ARGS")]
    words: Vec<OsString>,
    /// The data directory (with NAMESPACE NAME).
    #[arg(long, default_value_os_t = crate::default_data_dir())]
    data: PathBuf,
    /// A queue directory: the old spelling of PATH (then ARGS are the ids).
    #[arg(long, value_name = "QUEUE_DIR", hide = true)]
    dir: Option<PathBuf>,
    /// Every dead letter (instead of ids).
    #[arg(long)]
    all: bool,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
}

impl Change {
    /// The queue directory and the dead letters named (`None`: all).
    fn target(&self) -> Result<(PathBuf, Option<Vec<u64>>)> {
        let (dir, ids) = match &self.dir {
            Some(dir) => (given_dir(dir)?, &self.words[..]),
            None => {
                let (target, ids) = crate::address::split_target(&self.words)?;
                (queue_dir(target, &self.data)?, ids)
            }
        };
        let which = match (self.all, ids.is_empty()) {
            (true, true) => None,
            (true, false) => usage!("give message ids or --all, not both"),
            (false, true) => usage!("give the ids of the dead letters, or --all"),
            (false, false) => Some(ids.iter().map(parse_id).collect::<Result<_>>()?),
        };
        Ok((dir, which))
    }
}

fn parse_id(word: &OsString) -> Result<u64> {
    let text = word.to_string_lossy();
    match text.parse::<u64>() {
        Ok(id) => Ok(id),
        Err(_) => usage!("{text:?} is not a message id (a whole number)"),
    }
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
        let context = if locked {
            format!(
                "the queue in {} is open in another process (a running component holds its \
                 lock): stop that process first (stats, peek and dead work while it runs)",
                dir.display()
            )
        } else {
            format!("cannot open the queue in {}", dir.display())
        };
        anyhow::Error::new(e).context(context)
    })
}

/// What `requeue --json` prints.
#[derive(Debug, Serialize)]
struct Requeued {
    requeued: usize,
}

/// What `purge --json` prints.
#[derive(Debug, Serialize)]
struct Purged {
    dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    would_purge: Option<Vec<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    purged: Option<usize>,
}

/// `mini queue requeue`.
pub fn requeue(args: &RequeueArgs) -> Result<ExitCode> {
    let (dir, which) = args.change.target()?;
    let queue = open(&dir)?;
    let count = queue
        .requeue(which.as_deref())
        .with_context(|| format!("cannot requeue in {}; nothing was requeued", dir.display()))?;
    if args.change.json {
        return crate::out::print_json(&Requeued { requeued: count });
    }
    println!("requeued {}", dead_letters(count));
    Ok(ExitCode::SUCCESS)
}

/// The dead letters a purge of `which` would delete, read without the lock.
fn would_purge(dir: &Path, which: Option<&[u64]>) -> Result<Vec<u64>> {
    let found = inspect_queue(dir)
        .with_context(|| format!("cannot read the queue in {}", dir.display()))?;
    warn_skipped(&found.skipped);
    let state: &QueueState = &found.state;
    Ok(state.select_dead_letters(which)?)
}

/// `mini queue purge`.
pub fn purge(args: &PurgeArgs) -> Result<ExitCode> {
    let (dir, which) = args.change.target()?;
    if !args.yes {
        let ids = would_purge(&dir, which.as_deref())?;
        if args.change.json {
            return crate::out::print_json(&Purged {
                dry_run: true,
                would_purge: Some(ids),
                purged: None,
            });
        }
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
        return Ok(ExitCode::SUCCESS);
    }
    let queue = open(&dir)?;
    let count = queue
        .purge(which.as_deref())
        .with_context(|| format!("cannot purge in {}; nothing was purged", dir.display()))?;
    if args.change.json {
        return crate::out::print_json(&Purged {
            dry_run: false,
            would_purge: None,
            purged: Some(count),
        });
    }
    println!("purged {}", dead_letters(count));
    Ok(ExitCode::SUCCESS)
}
