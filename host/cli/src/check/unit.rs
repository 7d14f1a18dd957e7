//! The checks of one unit (or one part of a unit) that `mini verify` runs:
//! each prints its `ok`/`DAMAGED` lines and says whether it found damage.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use mini_engine::queue::{Clock, SystemClock, inspect};
use mini_engine::snapshot::SnapshotDamage;
use mini_engine::state::{JOURNAL_DIR, SNAPSHOT_DIR};
use mini_engine::verify::VerifyReport;

use crate::layout;
use crate::state::{beyond_problem, compacted_problem};

/// Logs smaller than this are verified without a progress bar.
const PROGRESS_MIN_BYTES: u64 = 16 * 1024 * 1024;

/// Runs the engine's verify with a progress bar on a terminal.
pub fn verify_one(dir: &Path) -> Result<VerifyReport> {
    let show = std::io::stderr().is_terminal();
    let mut bar: Option<ProgressBar> = None;
    let mut progress = |done: u64, total: u64| {
        if !show || total < PROGRESS_MIN_BYTES {
            return;
        }
        let bar = bar.get_or_insert_with(|| {
            let bar = ProgressBar::new(total).with_message(dir.display().to_string());
            if let Ok(style) =
                ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        bar.set_length(total);
        bar.set_position(done);
    };
    let report = mini_engine::verify::verify(dir, &mut progress);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    report.with_context(|| format!("cannot verify {}", dir.display()))
}

/// What a journal holds, for its `ok` line.
pub fn summary(report: &VerifyReport) -> String {
    let mut text = if report.records == 0 {
        format!(
            "0 records, {} segment(s), {} bytes",
            report.segments, report.bytes
        )
    } else {
        format!(
            "{} records (seq {}..={}), {} segment(s), {} bytes",
            report.records, report.first_seq, report.last_seq, report.segments, report.bytes
        )
    };
    if report.torn_tail_bytes > 0 {
        text.push_str(&format!(
            "; a torn tail of {} bytes (an unfinished write) is cut at the next open",
            report.torn_tail_bytes
        ));
    }
    text
}

/// Verifies the journal in `dir` and prints its line; the report, whether
/// damaged or not.
pub fn check_journal(dir: &Path) -> Result<VerifyReport> {
    let report = verify_one(dir)?;
    match &report.damage {
        None => println!("ok       {}: {}", dir.display(), summary(&report)),
        Some(damage) => {
            println!("DAMAGED  {}: {damage}", dir.display());
            eprintln!(
                "mini: {damage}\nmini: to cut the journal there (what is cut is kept in a repair-* directory), run: mini repair {} --yes",
                dir.display()
            );
        }
    }
    Ok(report)
}

/// What the snapshot files of one directory hold.
#[derive(Debug, Default)]
pub struct SnapshotCheck {
    /// Seqs of the valid snapshots, ascending.
    valid: Vec<u64>,
    /// The damaged files, ascending by seq.
    damaged: Vec<(u64, PathBuf, SnapshotDamage)>,
    /// Temporary files (a snapshot being written, or left by a crash).
    temporary: usize,
}

impl SnapshotCheck {
    /// The newest valid snapshot's seq.
    fn newest(&self) -> Option<u64> {
        self.valid.last().copied()
    }

    /// Damaged snapshots newer than the newest valid one: restore skips them.
    fn skipped(&self) -> usize {
        let newest = self.newest();
        self.damaged
            .iter()
            .filter(|(seq, _, _)| newest.is_none_or(|n| *seq > n))
            .count()
    }
}

/// Reads and checks every snapshot file in `dir`.
fn check_snapshot_files(dir: &Path) -> Result<SnapshotCheck> {
    let (files, temporary) =
        layout::snapshot_files(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let mut check = SnapshotCheck {
        temporary,
        ..SnapshotCheck::default()
    };
    for (seq, path) in files {
        match layout::read_snapshot(&path) {
            Ok(_) => check.valid.push(seq),
            Err(damage) => check.damaged.push((seq, path, damage)),
        }
    }
    Ok(check)
}

/// "seq 3, 6" or "seq 3..=9 (5 valid)".
fn seq_list(seqs: &[u64]) -> String {
    match seqs {
        [] => String::new(),
        [a, b, ..] if seqs.len() > 4 => format!(
            "seq {a}..={} ({} valid)",
            seqs.last().unwrap_or(b),
            seqs.len()
        ),
        _ => {
            let list: Vec<String> = seqs.iter().map(u64::to_string).collect();
            format!("seq {}", list.join(", "))
        }
    }
}

/// Checks the snapshots in `dir` and prints a line per damaged file and one
/// for the directory; true if any is damaged.
pub fn check_snapshots(dir: &Path) -> Result<(SnapshotCheck, bool)> {
    let check = check_snapshot_files(dir)?;
    for (_, path, damage) in &check.damaged {
        println!("DAMAGED  {}: {damage}", path.display());
        eprintln!("mini: damaged snapshot {}: {damage}", path.display());
    }
    let total = check.valid.len() + check.damaged.len();
    let mut text = if check.damaged.is_empty() {
        match total {
            0 => "no snapshot".to_owned(),
            n => format!("{n} snapshot(s) ({})", seq_list(&check.valid)),
        }
    } else {
        let restore = match check.newest() {
            Some(seq) => format!("restore uses snapshot {seq}"),
            None => "no valid snapshot left: restore fails".to_owned(),
        };
        format!(
            "{} of {total} snapshot(s) damaged; {restore}",
            check.damaged.len()
        )
    };
    if check.temporary > 0 {
        text.push_str(&format!(
            "; {} temporary file(s) (an unfinished snapshot, removed at the next open)",
            check.temporary
        ));
    }
    if check.damaged.is_empty() {
        println!("ok       {}: {text}", dir.display());
    } else {
        println!("DAMAGED  {}: {text}", dir.display());
        match (check.newest(), check.skipped()) {
            (Some(seq), 0) => {
                eprintln!("mini: the newest snapshot ({seq}) is valid: restore is not affected")
            }
            (Some(seq), n) => eprintln!(
                "mini: restore skips the {n} damaged newer snapshot(s) and falls back to snapshot {seq}"
            ),
            (None, _) => eprintln!("mini: no valid snapshot is left in {}", dir.display()),
        }
    }
    let damaged = !check.damaged.is_empty();
    Ok((check, damaged))
}

/// How a state or queue directory recovers.
enum Recovery {
    /// Its journal is damaged, or recovery fails (the lines are printed).
    Fails,
    /// It recovers as `text` says; `snapshots_damaged` if a snapshot it
    /// passes over is damaged.
    Works {
        text: String,
        snapshots_damaged: bool,
    },
}

/// Checks the snapshots and the journal of the state or queue in `dir`,
/// and that recovery (the newest valid snapshot + the journal after it)
/// works.
fn recovery(dir: &Path) -> Result<Recovery> {
    // Snapshots before the journal: a component that checkpoints meanwhile
    // only makes the journal read later longer at its end.
    let (snapshots, snapshots_damaged) = check_snapshots(&dir.join(SNAPSHOT_DIR))?;
    let journal = check_journal(&dir.join(JOURNAL_DIR))?;
    let name = dir.display();
    if journal.damage.is_some() {
        println!("DAMAGED  {name}: its journal is damaged");
        return Ok(Recovery::Fails);
    }
    let seq = snapshots.newest().unwrap_or(0);
    let problem = if journal.first_seq > seq + 1 {
        Some(compacted_problem(
            snapshots.newest(),
            snapshots.skipped(),
            journal.first_seq,
        ))
    } else if seq > journal.last_seq {
        Some(beyond_problem(seq, journal.last_seq))
    } else {
        None
    };
    if let Some(problem) = problem {
        println!("DAMAGED  {name}: cannot recover: {problem}");
        eprintln!("mini: cannot recover the state in {name}: {problem}");
        return Ok(Recovery::Fails);
    }
    let replayed = journal.last_seq - seq;
    let records = match replayed {
        0 => "no journal record".to_owned(),
        n => format!(
            "{n} journal record(s) (seq {}..={})",
            seq + 1,
            journal.last_seq
        ),
    };
    let mut text = match snapshots.newest() {
        Some(seq) => format!("recovers from snapshot {seq} + {records}"),
        None => format!("recovers from no snapshot + {records}"),
    };
    if snapshots.skipped() > 0 {
        text.push_str(&format!(
            ", falling back past {} damaged newer snapshot(s)",
            snapshots.skipped()
        ));
    }
    Ok(Recovery::Works {
        text,
        snapshots_damaged,
    })
}

/// Checks a state directory: its snapshots, its journal, and that it
/// recovers. True if anything is damaged.
pub fn check_state(dir: &Path) -> Result<bool> {
    Ok(match recovery(dir)? {
        Recovery::Fails => true,
        Recovery::Works {
            text,
            snapshots_damaged,
        } => {
            println!("ok       {}: {text}", dir.display());
            snapshots_damaged
        }
    })
}

/// Checks a queue directory as a state, and that its records fold into a
/// queue (what opening it does). True if anything is damaged.
pub fn check_queue(dir: &Path) -> Result<bool> {
    let Recovery::Works {
        text,
        snapshots_damaged,
    } = recovery(dir)?
    else {
        return Ok(true);
    };
    match inspect(dir) {
        Ok((queue, _)) => {
            let s = queue.stats(SystemClock.now_ms());
            println!(
                "ok       {}: {text}; the queue holds {} ready, {} leased, {} delayed, {} dead",
                dir.display(),
                s.ready,
                s.leased,
                s.delayed,
                s.dead
            );
            Ok(snapshots_damaged)
        }
        Err(e) => {
            let e = anyhow::Error::new(e);
            println!(
                "DAMAGED  {}: the queue does not recover: {e:#}",
                dir.display()
            );
            eprintln!("mini: cannot recover the queue in {}: {e:#}", dir.display());
            Ok(true)
        }
    }
}

/// Checks one snapshot file; true if damaged.
pub fn check_snapshot_file(path: &Path) -> bool {
    match layout::read_snapshot(path) {
        Ok((seq, state)) => {
            println!(
                "ok       {}: snapshot {seq}, state of {} bytes",
                path.display(),
                state.len()
            );
            false
        }
        Err(damage) => {
            println!("DAMAGED  {}: {damage}", path.display());
            eprintln!("mini: damaged snapshot {}: {damage}", path.display());
            true
        }
    }
}
