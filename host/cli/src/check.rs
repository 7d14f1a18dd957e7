//! `mini verify` and `mini repair`: the operator's checks.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use mini_engine::Corruption;
use mini_engine::segment::parse_segment_file_name;
use mini_engine::snapshot::SnapshotDamage;
use mini_engine::state::{JOURNAL_DIR, SNAPSHOT_DIR};
use mini_engine::verify::VerifyReport;

use crate::layout::{self, Kind, kind_of};
use crate::state::{beyond_problem, compacted_problem};

/// Logs smaller than this are verified without a progress bar.
const PROGRESS_MIN_BYTES: u64 = 16 * 1024 * 1024;
/// How deep `verify` looks for journals under the path it is given.
const MAX_DEPTH: usize = 4;

/// Check every crc and sequence number of journals, states and snapshots.
///
/// PATH is a journal directory, a state directory, a snapshot directory, a
/// snapshot file, or any directory above them (a namespace, the data
/// directory): everything under it is checked. Journals: every record's crc
/// and sequence number. Snapshots: every file's crc, and that the seq inside
/// matches its name. States: their journal and snapshots, and that recovery
/// works (the journal reaches back to the newest valid snapshot, which is
/// not beyond the journal's end).
///
/// Takes no lock and changes nothing. Exits with 1 when anything is damaged,
/// naming the file (and, in a journal, the byte offset and sequence number
/// of the first damage). A damaged snapshot is damage even when recovery
/// still works by falling back to an older one; the output says so.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A journal, state or snapshot directory, a snapshot file, or a
    /// directory holding them.
    path: PathBuf,
}

/// Cut a damaged journal at its first damage (only with --yes).
///
/// The damaged line and everything after it are moved out of the journal
/// into `<journal>/repair-<time>/`, so they can still be inspected. Without
/// --yes, prints what would be cut and exits with 1.
#[derive(Debug, Args)]
pub struct RepairArgs {
    /// The journal directory.
    path: PathBuf,
    /// Really cut the journal.
    #[arg(long)]
    yes: bool,
}

/// Runs the engine's verify with a progress bar on a terminal.
fn verify_one(dir: &Path) -> Result<VerifyReport> {
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

fn summary(report: &VerifyReport) -> String {
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

/// One place `verify` checks.
#[derive(Debug)]
enum Unit {
    Journal(PathBuf),
    State(PathBuf),
    Snapshots(PathBuf),
    SnapshotFile(PathBuf),
}

/// The journals, states and snapshot directories at or under `path`,
/// sorted (a state's journal and snapshots are part of the state).
fn find_units(path: &Path, depth: usize, found: &mut Vec<Unit>) -> Result<()> {
    let unit = match kind_of(path) {
        Kind::Journal => Some(Unit::Journal(path.to_path_buf())),
        Kind::State => Some(Unit::State(path.to_path_buf())),
        Kind::Snapshots => Some(Unit::Snapshots(path.to_path_buf())),
        Kind::SnapshotFile | Kind::SegmentFile | Kind::Other => None,
    };
    if let Some(unit) = unit {
        found.push(unit);
        return Ok(());
    }
    if depth == MAX_DEPTH {
        return Ok(());
    }
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with("repair-"))
        .map(|e| e.path())
        .collect();
    subdirs.sort();
    for dir in subdirs {
        find_units(&dir, depth + 1, found)?;
    }
    Ok(())
}

/// Verifies the journal in `dir` and prints its line; the report, whether
/// damaged or not.
fn check_journal(dir: &Path) -> Result<VerifyReport> {
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
struct SnapshotCheck {
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
fn check_snapshots(dir: &Path) -> Result<(SnapshotCheck, bool)> {
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

/// Checks a state directory: its snapshots, its journal, and that recovery
/// (the newest valid snapshot + the journal after it) works. True if
/// anything is damaged.
fn check_state(dir: &Path) -> Result<bool> {
    // Snapshots before the journal: a component that checkpoints meanwhile
    // only makes the journal read later longer at its end.
    let (snapshots, snapshots_damaged) = check_snapshots(&dir.join(SNAPSHOT_DIR))?;
    let journal = check_journal(&dir.join(JOURNAL_DIR))?;
    let name = dir.display();
    if journal.damage.is_some() {
        println!("DAMAGED  {name}: its journal is damaged");
        return Ok(true);
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
        return Ok(true);
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
    println!("ok       {name}: {text}");
    Ok(snapshots_damaged)
}

/// Checks one snapshot file; true if damaged.
fn check_snapshot_file(path: &Path) -> bool {
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

/// "2 journals, 1 state" for the summary line.
fn counts(units: &[Unit]) -> String {
    let mut n = [0usize; 3];
    for unit in units {
        match unit {
            Unit::Journal(_) => n[0] += 1,
            Unit::State(_) => n[1] += 1,
            Unit::Snapshots(_) | Unit::SnapshotFile(_) => n[2] += 1,
        }
    }
    let names = [
        ("journal", "journals"),
        ("state", "states"),
        ("snapshot directory", "snapshot directories"),
    ];
    let parts: Vec<String> = n
        .iter()
        .zip(names)
        .filter(|(count, _)| **count > 0)
        .map(|(&count, (one, many))| format!("{count} {}", if count == 1 { one } else { many }))
        .collect();
    parts.join(", ")
}

/// `mini verify`.
pub fn verify(args: VerifyArgs) -> Result<ExitCode> {
    let path = &args.path;
    let mut units = Vec::new();
    match kind_of(path) {
        Kind::SnapshotFile => units.push(Unit::SnapshotFile(path.clone())),
        Kind::SegmentFile => bail!(
            "{} is a journal segment: give its directory (the journal)",
            path.display()
        ),
        _ if !path.is_dir() => bail!("{} is not a directory", path.display()),
        _ => find_units(path, 0, &mut units)?,
    }
    if units.is_empty() {
        bail!("no journal, state or snapshot found in {}", path.display());
    }
    let mut damaged = 0;
    for unit in &units {
        let bad = match unit {
            Unit::Journal(dir) => check_journal(dir)?.damage.is_some(),
            Unit::State(dir) => check_state(dir)?,
            Unit::Snapshots(dir) => check_snapshots(dir)?.1,
            Unit::SnapshotFile(file) => check_snapshot_file(file),
        };
        if bad {
            damaged += 1;
        }
    }
    if units.len() > 1 {
        println!("{} checked, {damaged} damaged", counts(&units));
    }
    Ok(if damaged == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Bytes that cutting at `damage` removes: the rest of the damaged segment
/// and every later segment.
fn bytes_after(dir: &Path, damage: &Corruption) -> Result<u64> {
    let damaged_first = damage
        .file
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(parse_segment_file_name)
        .unwrap_or(0);
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        let Some(first) = parse_segment_file_name(&entry.file_name().to_string_lossy()) else {
            continue;
        };
        let len = entry.metadata()?.len();
        if first > damaged_first {
            total += len;
        } else if first == damaged_first {
            total += len.saturating_sub(damage.offset);
        }
    }
    Ok(total)
}

/// `mini repair`.
pub fn repair(args: RepairArgs) -> Result<ExitCode> {
    let dir = &args.path;
    match kind_of(dir) {
        Kind::Journal => {}
        Kind::State => bail!(
            "{} is a state directory: repair its journal, {}",
            dir.display(),
            dir.join(JOURNAL_DIR).display()
        ),
        _ => bail!("{} is not a journal directory", dir.display()),
    }
    let report = verify_one(dir)?;
    let Some(damage) = &report.damage else {
        if report.torn_tail_bytes > 0 && args.yes {
            let repaired = mini_engine::verify::repair(dir)
                .with_context(|| format!("cannot repair {}", dir.display()))?;
            println!(
                "no damage in {}; cut a torn tail of {} bytes; {} records",
                dir.display(),
                repaired.bytes_removed,
                repaired.records_left
            );
        } else {
            println!("nothing to repair: {}: {}", dir.display(), summary(&report));
        }
        return Ok(ExitCode::SUCCESS);
    };
    if !args.yes {
        println!(
            "would cut {} at the first damage: {damage}\nwould remove {} bytes: the record with seq {} and everything after it\nrun again with --yes to do it",
            dir.display(),
            bytes_after(dir, damage)?,
            damage.seq
        );
        return Ok(ExitCode::FAILURE);
    }
    let repaired = mini_engine::verify::repair(dir)
        .with_context(|| format!("cannot repair {}", dir.display()))?;
    match &repaired.cut_at {
        Some(cut) => println!("cut {} at the first damage: {cut}", dir.display()),
        None => println!("{} needed no cut", dir.display()),
    }
    let saved = repaired
        .saved_to
        .as_ref()
        .map_or_else(String::new, |p| format!(", saved in {}", p.display()));
    println!(
        "removed {} bytes{saved}; {} records left",
        repaired.bytes_removed, repaired.records_left
    );
    Ok(ExitCode::SUCCESS)
}
