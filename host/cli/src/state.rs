//! `mini state`: prints a state as recovery sees it (the newest valid
//! snapshot and the journal records after it), without taking a lock.
//!
//! The recovery plan here (which snapshot, which records) is shared with
//! `mini cat --after-snapshot` and checked the way the engine's
//! `StateManager::open` checks it: a journal that no longer reaches back to
//! the snapshot, or a snapshot beyond the journal's end, is an error, never a
//! wrong state.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use mini_engine::layout::UnitKind;
use mini_engine::snapshot::{Restored, SkippedSnapshot};
use mini_engine::state::{JOURNAL_DIR, SNAPSHOT_DIR, recovery_point_unlocked};
use mini_engine::{Entry, JournalError, Reader};

use crate::layout::{self, Target};

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
///
/// Takes no lock: works while a component runs (it reads the records up to
/// the last complete batch). A damaged newest snapshot is skipped with a
/// warning (in "warnings" and on stderr) and the one before it is used, as
/// recovery does. If the state cannot be recovered (every snapshot damaged
/// and the journal compacted past what is needed, or a snapshot beyond the
/// journal's end) it prints nothing and exits with 1; damage in the journal
/// tail ends the output with an error and exit code 1.
#[derive(Debug, Args)]
// Verbatim: the indented example lines stay indented in --help.
#[command(
    verbatim_doc_comment,
    about = "Print a state: its newest valid snapshot and the journal records after it"
)]
pub struct StateArgs {
    /// The namespace (with NAME; or use --dir).
    #[arg(required_unless_present = "dir", requires = "name")]
    namespace: Option<String>,
    /// The state's name.
    #[arg(requires = "namespace")]
    name: Option<String>,
    /// The data directory (with NAMESPACE NAME).
    #[arg(long, default_value_os_t = crate::default_data_dir())]
    data: PathBuf,
    /// A state directory (holding journal/ and snapshots/), instead of
    /// NAMESPACE NAME.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["namespace", "name"])]
    dir: Option<PathBuf>,
    /// Print only the first line (the snapshot and the warnings), not the
    /// records after it. The journal is still checked to reach the snapshot.
    #[arg(long)]
    snapshot_only: bool,
}

/// Where recovery of a state directory starts.
#[derive(Debug)]
pub struct Start {
    /// The state directory.
    pub dir: PathBuf,
    /// The newest valid snapshot, if any.
    pub snapshot: Option<Restored>,
    /// Damaged snapshots newer than it (all of them, if none is valid),
    /// newest first.
    pub skipped: Vec<SkippedSnapshot>,
}

impl Start {
    /// Finds the newest valid snapshot of the state in `dir` (no lock).
    pub fn find(dir: &Path) -> Result<Start> {
        // The writer's state size limit is not known here, and a large state
        // is not damage: only the crc and the seq decide (as in `mini verify`).
        let point = recovery_point_unlocked(dir).with_context(|| {
            format!(
                "cannot read the snapshots in {}",
                dir.join(SNAPSHOT_DIR).display()
            )
        })?;
        Ok(Start {
            dir: dir.to_path_buf(),
            snapshot: point.snapshot,
            skipped: point.skipped,
        })
    }

    /// The last seq the snapshot covers (0: none).
    pub fn seq(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |s| s.seq)
    }

    /// One warning per damaged snapshot passed over.
    pub fn warnings(&self) -> Vec<String> {
        let fallback = match &self.snapshot {
            Some(s) => format!("snapshot {}", s.seq),
            None => "the start of the journal".to_owned(),
        };
        self.skipped
            .iter()
            .map(|s| format!("damaged {s}; recovery falls back to {fallback}"))
            .collect()
    }

    /// Opens the journal records after the snapshot, after checking that
    /// the journal still reaches back to them.
    pub fn tail(&self) -> Result<Tail> {
        let dir = self.dir.join(JOURNAL_DIR);
        let after = self.seq();
        let firsts = layout::segment_firsts(&dir)
            .with_context(|| format!("cannot read the journal {}", dir.display()))?;
        let (Some(&first), Some(&newest)) = (firsts.first(), firsts.last()) else {
            bail!("{} holds no journal segment", dir.display());
        };
        if first > after + 1 {
            bail!(
                "cannot recover the state in {}: {}",
                self.dir.display(),
                compacted_problem(
                    self.snapshot.as_ref().map(|s| s.seq),
                    self.skipped.len(),
                    first
                )
            );
        }
        // Read from the start of the segment holding `after + 1`, so that
        // the records up to `after` are seen too (they tell the journal's end).
        let from = firsts
            .iter()
            .copied()
            .take_while(|&f| f <= after + 1)
            .last()
            .unwrap_or(first);
        let reader = mini_engine::read_unlocked(&dir, from)
            .with_context(|| format!("cannot read the journal {}", dir.display()))?;
        Ok(Tail {
            reader,
            journal: dir,
            state: self.dir.clone(),
            after,
            // A segment starting at N means the journal held N - 1 records.
            known_last: newest - 1,
            reached: false,
        })
    }
}

/// Why a state cannot be recovered when its journal starts at
/// `journal_first`, after the records that recovery from `snapshot` (the
/// newest valid one, if any; `damaged` newer ones skipped) needs.
pub fn compacted_problem(snapshot: Option<u64>, damaged: usize, journal_first: u64) -> String {
    let start = match (snapshot, damaged) {
        (Some(seq), 0) => format!("recovery starts from snapshot {seq}"),
        (Some(seq), n) => format!(
            "recovery starts from snapshot {seq} (the newest valid one; {n} newer snapshot(s) damaged)"
        ),
        (None, 0) => "there is no snapshot, so recovery starts from the beginning".to_owned(),
        (None, n) => {
            format!("every snapshot is damaged ({n}), so recovery starts from the beginning")
        }
    };
    format!(
        "{start} and needs the journal from seq {}, but the journal starts at seq {journal_first} \
         (older records were compacted away)",
        snapshot.unwrap_or(0) + 1
    )
}

/// Why a state cannot be recovered when its newest valid snapshot covers
/// records the journal never had.
pub fn beyond_problem(snapshot: u64, journal_last: u64) -> String {
    format!("snapshot {snapshot} is beyond the end of the journal (last seq {journal_last})")
}

/// The journal records after a snapshot, streamed.
#[derive(Debug)]
pub struct Tail {
    reader: Reader,
    journal: PathBuf,
    state: PathBuf,
    after: u64,
    /// The highest seq the journal is known to have reached.
    known_last: u64,
    /// True once the journal is known to reach the snapshot's seq.
    reached: bool,
}

impl Tail {
    /// The next record after the snapshot; `None` at the journal's end (for
    /// now: records appended later come on later calls). Reaching the end
    /// the first time checks that the snapshot is not beyond it.
    pub fn next_entry(&mut self) -> Result<Option<Entry>> {
        loop {
            match self.reader.next() {
                Some(Ok(entry)) => {
                    self.known_last = self.known_last.max(entry.seq);
                    if entry.seq <= self.after {
                        continue;
                    }
                    self.reached = true;
                    return Ok(Some(entry));
                }
                Some(Err(e @ JournalError::OutOfRange { .. })) => {
                    return Err(e).with_context(|| {
                        format!(
                            "the journal {} was compacted while it was read (a running component \
                             checkpointed): run again",
                            self.journal.display()
                        )
                    });
                }
                Some(Err(e)) => {
                    return Err(e)
                        .with_context(|| format!("cannot read {}", self.journal.display()));
                }
                None => {
                    if !self.reached {
                        if self.known_last < self.after {
                            bail!(
                                "cannot recover the state in {}: {}",
                                self.state.display(),
                                beyond_problem(self.after, self.known_last)
                            );
                        }
                        self.reached = true;
                    }
                    return Ok(None);
                }
            }
        }
    }
}

/// The state directory named by the arguments.
fn state_dir(args: &StateArgs) -> Result<PathBuf> {
    let dir = match (&args.dir, &args.namespace, &args.name) {
        (Some(dir), _, _) => {
            match layout::resolve(dir).target {
                // A queue is a state too: its snapshot and its records.
                Target::Unit(UnitKind::State | UnitKind::Queue) => {}
                Target::NoRoot => bail!(
                    "{} is not a state directory: {}",
                    dir.display(),
                    layout::no_root_reason(dir)
                ),
                Target::Missing => bail!("{} does not exist", dir.display()),
                _ => bail!("{} is not a state directory", dir.display()),
            }
            dir.clone()
        }
        (None, Some(ns), Some(name)) => layout::named_unit(&args.data, ns, UnitKind::State, name)?,
        _ => bail!("give NAMESPACE NAME, or --dir with a state directory"),
    };
    check_state_dir(&dir)?;
    Ok(dir)
}

/// Fails unless the state (or queue) directory `dir` holds its journal:
/// a clear error before any read.
pub fn check_state_dir(dir: &Path) -> Result<()> {
    if !dir.join(JOURNAL_DIR).is_dir() {
        bail!(
            "{} is not a state directory (it has no {JOURNAL_DIR}/ directory)",
            dir.display()
        );
    }
    Ok(())
}

/// The first line of `mini state`.
fn head_line(start: &Start) -> Result<String> {
    let warnings = serde_json::to_string(&start.warnings())?;
    Ok(match &start.snapshot {
        // The state is one JSON value on one line (checked with its crc):
        // it goes in as stored.
        Some(s) => format!(
            "{{\"snapshot\":{},\"warnings\":{warnings}}}",
            layout::snapshot_line(s.seq, &s.state)
        ),
        None => format!("{{\"snapshot\":null,\"warnings\":{warnings}}}"),
    })
}

/// `mini state`.
pub fn state(args: StateArgs) -> Result<ExitCode> {
    let dir = state_dir(&args)?;
    let start = Start::find(&dir)?;
    let mut tail = start.tail()?;
    // The first record (or the end) is read before the first line goes
    // out: a snapshot beyond the journal's end prints nothing.
    let mut next = tail.next_entry()?;
    for warning in start.warnings() {
        eprintln!("mini: warning: {warning}");
    }
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if let Err(e) = writeln!(out, "{}", head_line(&start)?) {
        return crate::cat::closed_or(e);
    }
    if args.snapshot_only {
        // The first read above has checked the journal against the snapshot.
        next = None;
    }
    while let Some(entry) = next {
        // `data` is one JSON value without a raw newline: it goes in as is.
        let line = writeln!(out, "{{\"seq\":{},\"data\":{}}}", entry.seq, entry.data);
        if let Err(e) = line {
            return crate::cat::closed_or(e);
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
        return crate::cat::closed_or(e);
    }
    Ok(ExitCode::SUCCESS)
}
