//! `mini verify` and `mini repair`: the operator's checks.
//!
//! What to check comes from the engine's layout: every unit at or under the
//! path, by its position under the data root, whatever the guests named it;
//! the entries the layout does not account for are listed, not skipped.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use mini_engine::Corruption;
use mini_engine::layout::{
    DataRoot, Location, ModulesError, UnitKind, Unknown, modules_of, unknown_in_unit, walk,
};
use mini_engine::segment::parse_segment_file_name;
use mini_engine::state::JOURNAL_DIR;

use crate::layout::{self, Target};

mod unit;

/// Check every crc and sequence number of journals, states, snapshot stores
/// and queues.
///
/// PATH is a data directory (it has a `.mini` marker), a namespace or a
/// directory of one kind in it, a unit (journal, state, snapshot store,
/// queue), a part of a unit (a state's `journal/` or `snapshots/`) or a
/// snapshot file: every unit at or under it is checked, by where it lies in
/// the data directory, whatever its name. Journals: every record's crc and
/// sequence number. Snapshots: every file's crc, and that the seq inside
/// matches its name. States: their journal and snapshots, and that recovery
/// works (the journal reaches back to the newest valid snapshot, which is
/// not beyond the journal's end). Queues: as states, and that their records
/// make a queue.
///
/// Outside a data directory, PATH must be one unit (a journal, state,
/// queue or snapshot directory a program opened where it liked); a data
/// directory written before the marker existed is checked with --root.
///
/// Every entry that mini does not write where it lies is listed as
/// `unknown  PATH: why`, and counted in the summary line; unknown entries
/// alone do not make verify fail.
///
/// Takes no lock and changes nothing. Exits with 1 when anything is damaged,
/// naming the file (and, in a journal, the byte offset and sequence number
/// of the first damage). A damaged snapshot is damage even when recovery
/// still works by falling back to an older one; the output says so.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A data directory, a namespace, a unit's directory, a part of one,
    /// or a snapshot file.
    path: PathBuf,
    /// Treat PATH as a data directory even without its `.mini` marker (the
    /// marker is not written).
    #[arg(long)]
    root: bool,
}

/// Cut a damaged journal at its first damage (only with --yes).
///
/// The damaged line and everything after it are moved out of the journal
/// into `<journal>/repair-<time>/`, so they can still be inspected. Without
/// --yes, prints what would be cut and exits with 1.
#[derive(Debug, Args)]
pub struct RepairArgs {
    /// The journal directory (a journal, or the journal/ of a state or
    /// queue).
    path: PathBuf,
    /// Really cut the journal.
    #[arg(long)]
    yes: bool,
}

/// One check `verify` runs.
#[derive(Debug)]
enum Check {
    Unit(UnitKind, PathBuf),
    /// The journal of a state or queue.
    Journal(PathBuf),
    /// The snapshots of a state or queue.
    Snapshots(PathBuf),
    SnapshotFile(PathBuf),
}

impl Check {
    fn path(&self) -> &Path {
        match self {
            Check::Unit(_, p)
            | Check::Journal(p)
            | Check::Snapshots(p)
            | Check::SnapshotFile(p) => p,
        }
    }

    /// Runs the check, printing its lines; true if it found damage.
    fn run(&self) -> Result<bool> {
        match self {
            Check::Unit(UnitKind::Journal, dir) | Check::Journal(dir) => {
                Ok(unit::check_journal(dir)?.damage.is_some())
            }
            Check::Unit(UnitKind::State, dir) => unit::check_state(dir),
            Check::Unit(UnitKind::Queue, dir) => unit::check_queue(dir),
            Check::Unit(UnitKind::Snapshots, dir) | Check::Snapshots(dir) => {
                Ok(unit::check_snapshots(dir)?.1)
            }
            Check::SnapshotFile(file) => Ok(unit::check_snapshot_file(file)),
        }
    }
}

/// What `verify` checks and lists.
#[derive(Debug, Default)]
struct Plan {
    checks: Vec<Check>,
    unknown: Vec<Unknown>,
    /// The namespace directories met (their module records are checked).
    namespaces: Vec<PathBuf>,
    /// PATH holds units (a root, a namespace, …): the summary line is
    /// printed however many there are.
    listing: bool,
}

/// Every unit at or under `location` of `root`, with their paths shown
/// below `arg` (as the operator gave it) rather than as absolute paths.
fn walk_plan(arg: &Path, root: &DataRoot, location: &Location) -> Result<Plan> {
    let found = walk(root, location).with_context(|| format!("cannot read {}", arg.display()))?;
    let absolute = std::path::absolute(arg).unwrap_or_else(|_| arg.to_path_buf());
    let shown = |path: &Path| match path.strip_prefix(&absolute) {
        Ok(rest) if rest.as_os_str().is_empty() => arg.to_path_buf(),
        Ok(rest) => arg.join(rest),
        Err(_) => path.to_path_buf(),
    };
    Ok(Plan {
        checks: found
            .units
            .iter()
            .map(|u| Check::Unit(u.kind, shown(&u.dir)))
            .collect(),
        unknown: found
            .unknown
            .into_iter()
            .map(|u| Unknown {
                path: shown(&u.path),
                why: u.why,
            })
            .collect(),
        namespaces: found
            .namespaces
            .iter()
            .map(|ns| shown(&root.path().join(ns)))
            .collect(),
        listing: true,
    })
}

/// One check of `path`, and the entries in it that mini does not write
/// (read as a unit of `kind`).
fn single_plan(check: Check, kind: Option<UnitKind>) -> Result<Plan> {
    let unknown = match kind {
        Some(kind) => unknown_in_unit(kind, check.path())
            .with_context(|| format!("cannot read {}", check.path().display()))?,
        None => Vec::new(),
    };
    Ok(Plan {
        checks: vec![check],
        unknown,
        namespaces: Vec::new(),
        listing: false,
    })
}

fn plan(args: &VerifyArgs) -> Result<Plan> {
    let path = &args.path;
    if args.root {
        if !path.is_dir() {
            bail!("{} is not a directory", path.display());
        }
        return walk_plan(path, &DataRoot::new(path), &Location::Root);
    }
    let owned = path.to_path_buf();
    match layout::resolve(path).target {
        Target::Units(root, location) => walk_plan(path, &root, &location),
        Target::Unit(kind) => single_plan(Check::Unit(kind, owned), Some(kind)),
        Target::UnitJournal => single_plan(Check::Journal(owned), Some(UnitKind::Journal)),
        Target::UnitSnapshots => single_plan(Check::Snapshots(owned), Some(UnitKind::Snapshots)),
        Target::SnapshotFile => single_plan(Check::SnapshotFile(owned), None),
        Target::SegmentFile => bail!(
            "{} is a journal segment: give its directory (the journal)",
            path.display()
        ),
        Target::Foreign(why) => bail!(
            "{} is not something mini writes ({why}): nothing to check",
            path.display()
        ),
        Target::Missing => bail!("{} does not exist", path.display()),
        Target::NoRoot => bail!(
            "{}. If it is a data directory written before the marker existed, run: \
             mini verify --root {}",
            layout::no_root_reason(path),
            path.display()
        ),
    }
}

/// "2 journals, 1 state" for the summary line.
fn counts(checks: &[Check]) -> String {
    let mut n = [0usize; 5];
    for check in checks {
        let i = match check {
            Check::Unit(UnitKind::Journal, _) | Check::Journal(_) => 0,
            Check::Unit(UnitKind::State, _) => 1,
            Check::Unit(UnitKind::Snapshots, _) | Check::Snapshots(_) => 2,
            Check::Unit(UnitKind::Queue, _) => 3,
            Check::SnapshotFile(_) => 4,
        };
        n[i] += 1;
    }
    let names = [
        ("journal", "journals"),
        ("state", "states"),
        ("snapshot directory", "snapshot directories"),
        ("queue", "queues"),
        ("snapshot file", "snapshot files"),
    ];
    let parts: Vec<String> = n
        .iter()
        .zip(names)
        .filter(|(count, _)| **count > 0)
        .map(|(&count, (one, many))| format!("{count} {}", if count == 1 { one } else { many }))
        .collect();
    if parts.is_empty() {
        "nothing".to_owned()
    } else {
        parts.join(", ")
    }
}

/// `mini verify`.
pub fn verify(args: VerifyArgs) -> Result<ExitCode> {
    let plan = plan(&args)?;
    if plan.checks.is_empty() && plan.unknown.is_empty() {
        bail!(
            "no journal, state, snapshot store or queue found in {}",
            args.path.display()
        );
    }
    let mut damaged = 0;
    for check in &plan.checks {
        // One unit that cannot be read does not keep the others from being
        // checked; it counts as damaged, since nothing vouches for it.
        let bad = check.run().unwrap_or_else(|e| {
            println!("DAMAGED  {}: {e:#}", check.path().display());
            eprintln!("mini: {e:#}");
            true
        });
        if bad {
            damaged += 1;
        }
    }
    for ns in &plan.namespaces {
        // The record of module versions is mini's file too: a damaged one
        // is damage, though no data depends on it.
        if let Err(e @ ModulesError::Damaged { .. }) = modules_of(ns) {
            println!("DAMAGED  {e}");
            eprintln!("mini: {e}");
            damaged += 1;
        }
    }
    for unknown in &plan.unknown {
        println!("unknown  {}: {}", unknown.path.display(), unknown.why);
    }
    if plan.listing || plan.checks.len() > 1 || !plan.unknown.is_empty() {
        let entries = match plan.unknown.len() {
            1 => "1 unknown entry".to_owned(),
            n => format!("{n} unknown entries"),
        };
        println!(
            "{} checked, {damaged} damaged, {entries}",
            counts(&plan.checks)
        );
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
    match layout::resolve(dir).target {
        Target::Unit(UnitKind::Journal) | Target::UnitJournal => {}
        Target::Unit(kind @ (UnitKind::State | UnitKind::Queue)) => bail!(
            "{} is a {kind} directory: repair its journal, {}",
            dir.display(),
            dir.join(JOURNAL_DIR).display()
        ),
        Target::Foreign(why) => bail!("{} is not a journal directory: {why}", dir.display()),
        Target::NoRoot => bail!(
            "{} is not a journal directory: {}",
            dir.display(),
            layout::no_root_reason(dir)
        ),
        _ => bail!("{} is not a journal directory", dir.display()),
    }
    let report = unit::verify_one(dir)?;
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
            println!(
                "nothing to repair: {}: {}",
                dir.display(),
                unit::summary(&report)
            );
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
