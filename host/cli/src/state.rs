//! `mini state`: prints a state as recovery sees it (the newest valid
//! snapshot and the journal records after it), without taking a lock.
//!
//! What to read comes from the engine ([`StateLog::read_unlocked`]), shared
//! with `mini cat --after-snapshot`, and is checked the way an open checks
//! it: a journal that no longer reaches back to the snapshot, or a snapshot
//! beyond the journal's end, is an error, never a wrong state.

use std::ffi::OsString;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use mini_engine::layout::UnitKind;
use mini_engine::state::{JOURNAL_DIR, RecoveryPoint, StateError, StateLog, StateTail};
use mini_engine::{Entry, JournalError};
use serde::Serialize;

use crate::exit::usage;
use crate::layout::{self, Target};
use crate::out::{self, RecordLine, SnapshotLine};

/// Print a state: its newest valid snapshot and the journal records after it.
///
/// Prints JSON lines, so that a long tail streams. The first line is
///
///     {"snapshot":{"seq":N,"state":<the state, as stored>},"warnings":[...]}
///
/// (`"snapshot":null` when there is none: the state is then the records
/// from seq 1 applied to the initial state), then one line per journal
/// record after the snapshot, in order:
///
///     {"seq":N,"data":<the record, as stored>}
///
/// `mini state NS NAME | jq -s` makes it one JSON document (an array).
/// The state is PATH (a state, queue or bucket directory) or NAMESPACE
/// NAME in --data DIR.
///
/// Takes no lock: works while a component runs (it reads the records up to
/// the last complete batch). A damaged newest snapshot is skipped with a
/// warning (in "warnings" and on stderr) and the one before it is used, as
/// recovery does. If the state cannot be recovered (every snapshot damaged
/// and the journal compacted past what is needed, or a snapshot beyond the
/// journal's end) it prints nothing and exits with 1; damage in the journal
/// tail ends the output with an error and exit code 1. A missing state or
/// an unreadable file exits with 3, a wrong argument with 2.
#[derive(Debug, Args)]
// Verbatim: the indented example lines stay indented in --help.
#[command(
    verbatim_doc_comment,
    about = "Print a state: its newest valid snapshot and the journal records after it"
)]
pub struct StateArgs {
    /// PATH (a state directory), or NAMESPACE NAME (with --data).
    #[arg(value_name = "PATH | NAMESPACE NAME")]
    target: Vec<OsString>,
    /// The data directory (with NAMESPACE NAME).
    #[arg(long, default_value_os_t = crate::default_data_dir())]
    data: PathBuf,
    /// A state directory: the old spelling of PATH.
    #[arg(long, value_name = "PATH", hide = true, conflicts_with = "target")]
    dir: Option<PathBuf>,
    /// Print only the first line (the snapshot and the warnings), not the
    /// records after it. The journal is still checked to reach the snapshot.
    #[arg(long)]
    snapshot_only: bool,
}

/// The journal records after a state's recovery point, read without the
/// lock, with errors that say which state.
#[derive(Debug)]
pub struct Tail {
    inner: StateTail,
    state: PathBuf,
}

impl Tail {
    /// The recovery point of the state in `dir` and the records after it.
    pub fn open(dir: &Path) -> Result<(RecoveryPoint, Tail)> {
        let (point, inner) = StateLog::read_unlocked(dir).map_err(|e| read_error(dir, e))?;
        let tail = Tail {
            inner,
            state: dir.to_path_buf(),
        };
        Ok((point, tail))
    }

    /// The next record after the snapshot; `None` at the journal's end for
    /// now.
    pub fn next_entry(&mut self) -> Result<Option<Entry>> {
        self.inner
            .next_entry()
            .map_err(|e| read_error(&self.state, e))
    }
}

fn read_error(dir: &Path, e: StateError) -> anyhow::Error {
    let what = match &e {
        StateError::Journal(JournalError::OutOfRange { .. }) => format!(
            "the journal {} was compacted while it was read (a running component \
             checkpointed): run again",
            dir.join(JOURNAL_DIR).display()
        ),
        StateError::JournalCompacted { .. } | StateError::SnapshotBeyondJournal { .. } => {
            format!("cannot recover the state in {}", dir.display())
        }
        _ => format!("cannot read the state in {}", dir.display()),
    };
    anyhow::Error::new(e).context(what)
}

/// The state directory named by the arguments.
fn state_dir(args: &StateArgs) -> Result<PathBuf> {
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => crate::address::unit(&args.target, &args.data, UnitKind::State, "a state")?,
    };
    match layout::resolve(&dir).target {
        // A queue or a bucket is a state too: its snapshot and its records.
        Target::Unit(UnitKind::State | UnitKind::Queue | UnitKind::Bucket) => {}
        Target::NoRoot => usage!(
            "{} is not a state directory: {}",
            dir.display(),
            layout::no_root_reason(&dir)
        ),
        Target::Missing => anyhow::bail!("{} does not exist", dir.display()),
        _ => usage!("{} is not a state directory", dir.display()),
    }
    check_state_dir(&dir)?;
    Ok(dir)
}

/// Fails unless the state (or queue, or bucket) directory `dir` holds its journal:
/// a clear error before any read.
pub fn check_state_dir(dir: &Path) -> Result<()> {
    if !dir.join(JOURNAL_DIR).is_dir() {
        usage!(
            "{} is not a state directory (it has no {JOURNAL_DIR}/ directory)",
            dir.display()
        );
    }
    Ok(())
}

/// The first line of `mini state`.
#[derive(Debug, Serialize)]
struct Head<'a> {
    snapshot: Option<SnapshotLine<'a>>,
    warnings: Vec<String>,
}

fn head_line(point: &RecoveryPoint) -> Result<String> {
    let snapshot = match &point.snapshot {
        Some(s) => Some(SnapshotLine {
            seq: s.seq,
            state: out::raw(&s.state)?,
        }),
        None => None,
    };
    out::line(&Head {
        snapshot,
        warnings: point.warnings(),
    })
}

/// `mini state`.
pub fn state(args: StateArgs) -> Result<ExitCode> {
    let dir = state_dir(&args)?;
    let (point, mut tail) = Tail::open(&dir)?;
    // The first record (or the end) is read before the first line goes
    // out: a snapshot beyond the journal's end prints nothing.
    let mut next = tail.next_entry()?;
    for warning in point.warnings() {
        eprintln!("mini: warning: {warning}");
    }
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if let Err(e) = writeln!(out, "{}", head_line(&point)?) {
        return out::closed_or(e);
    }
    if args.snapshot_only {
        // The first read above has checked the journal against the snapshot.
        next = None;
    }
    while let Some(entry) = next {
        let line = out::line(&RecordLine {
            seq: entry.seq,
            data: out::raw(&entry.data)?,
        })?;
        if let Err(e) = writeln!(out, "{line}") {
            return out::closed_or(e);
        }
        next = match tail.next_entry() {
            Ok(next) => next,
            Err(e) => {
                // What was read before the damage still goes out.
                let _ = out.flush();
                return Err(e);
            }
        };
    }
    if let Err(e) = out.flush() {
        return out::closed_or(e);
    }
    Ok(ExitCode::SUCCESS)
}
