//! `mini verify` and `mini repair`: the operator's checks.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use mini_engine::segment::parse_segment_file_name;
use mini_engine::verify::VerifyReport;
use mini_engine::{Corruption, lock::LOCK_FILE};

/// Logs smaller than this are verified without a progress bar.
const PROGRESS_MIN_BYTES: u64 = 16 * 1024 * 1024;
/// How deep `verify` looks for journals under the path it is given.
const MAX_DEPTH: usize = 4;

/// Check every crc and sequence number of one or more journals.
///
/// PATH is a journal directory, or any directory above journals (a
/// namespace, the data directory): every journal under it is checked. Takes
/// no lock and changes nothing. Exits with 1 when a journal is damaged,
/// naming the file, byte offset and sequence number of the first damage.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A journal directory or a directory holding journals.
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

/// True if `dir` looks like a journal directory (segments or a lock file).
fn is_journal_dir(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        name == LOCK_FILE || parse_segment_file_name(&name).is_some()
    })
}

/// The journal directories at or under `path`, sorted.
fn find_journals(path: &Path, depth: usize, found: &mut Vec<PathBuf>) -> Result<()> {
    if is_journal_dir(path) {
        found.push(path.to_path_buf());
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
        find_journals(&dir, depth + 1, found)?;
    }
    Ok(())
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

/// `mini verify`.
pub fn verify(args: VerifyArgs) -> Result<ExitCode> {
    if !args.path.is_dir() {
        bail!("{} is not a directory", args.path.display());
    }
    let mut journals = Vec::new();
    find_journals(&args.path, 0, &mut journals)?;
    if journals.is_empty() {
        bail!("no journal found in {}", args.path.display());
    }
    let mut damaged = 0;
    for dir in &journals {
        let report = verify_one(dir)?;
        match &report.damage {
            None => println!("ok       {}: {}", dir.display(), summary(&report)),
            Some(damage) => {
                damaged += 1;
                println!("DAMAGED  {}: {damage}", dir.display());
                eprintln!(
                    "mini: {damage}\nmini: to cut the journal there (what is cut is kept in a repair-* directory), run: mini repair {} --yes",
                    dir.display()
                );
            }
        }
    }
    if journals.len() > 1 {
        println!("{} journals checked, {damaged} damaged", journals.len());
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
    if !is_journal_dir(dir) {
        bail!("{} is not a journal directory", dir.display());
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
