//! `mini verify` and `mini repair`: the operator's checks.
//!
//! What to check comes from the engine's layout: every unit at or under the
//! path, by its position under the data root, whatever the guests named it;
//! the entries the layout does not account for are listed, not skipped.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use mini_engine::layout::{
    DataRoot, Location, ModulesError, UnitKind, Unknown, modules_of, unknown_in_unit, walk,
};
use serde::Serialize;

use crate::address::{self, Address, Kind};
use crate::exit::usage;
use crate::layout::{self, Target};

mod repair;
mod report;
mod unit;

pub use repair::{RepairArgs, repair};
use report::Report;

/// Check every crc and sequence number of journals, states, snapshot stores,
/// queues and key-value buckets.
///
/// PATH is a data directory (it has a `.mini` marker), a namespace or a
/// directory of one kind in it, a unit (journal, state, snapshot store,
/// queue, bucket), a part of a unit (a state's `journal/` or `snapshots/`)
/// or a snapshot file: every unit at or under it is checked, by where it
/// lies in the data directory, whatever its name. Journals: every record's crc and
/// sequence number. Snapshots: every file's crc, and that the seq inside
/// matches its name. States: their journal and snapshots, and that recovery
/// works (the journal reaches back to the newest valid snapshot, which is
/// not beyond the journal's end). Queues and buckets: as states, and that
/// their records make a queue or a bucket.
///
/// Outside a data directory, PATH must be one unit (a journal, state,
/// queue, bucket or snapshot directory a program opened where it liked); a
/// data directory written before the marker existed is checked with --root.
///
/// Every entry that mini does not write where it lies is listed as
/// `unknown  PATH: why`, and counted in the summary line; unknown entries
/// alone do not make verify fail.
///
/// What to check is PATH, or NAMESPACE NAME in the data directory --data
/// DIR (with --kind when the namespace has units of several kinds so
/// named), or, with neither, the whole data directory --data DIR.
///
/// Takes no lock and changes nothing. Exits with 1 when anything is damaged,
/// naming the file (and, in a journal, the byte offset and sequence number
/// of the first damage); a unit that cannot be read counts as damaged, since
/// nothing vouches for it. A damaged snapshot is damage even when recovery
/// still works by falling back to an older one; the output says so. Exits
/// with 2 on a wrong argument and 3 when PATH cannot be read at all.
///
/// With --json, prints one JSON object: {"ok":BOOL,"checked":{KIND:N},
/// "damaged":N,"units":[{"path","kind","damaged","lines":[{"status","path",
/// "text"}],"journal"?,"snapshots"?,"recovery"?,"queue"?,"bucket"?}],
/// "modules_damaged":[{"path","error"}],"unknown":[{"path","why"}]}.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// PATH (a data directory, a namespace, a unit's directory, a part of
    /// one, or a snapshot file), or NAMESPACE NAME (with --data); none: the
    /// data directory --data.
    #[arg(value_name = "PATH | NAMESPACE NAME")]
    target: Vec<OsString>,
    /// The data directory (with NAMESPACE NAME, or alone).
    #[arg(long, default_value_os_t = crate::default_data_dir())]
    data: PathBuf,
    /// With NAMESPACE NAME: the kind of unit NAME is.
    #[arg(long, value_enum)]
    kind: Option<Kind>,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Treat PATH as a data directory even without its `.mini` marker (the
    /// marker is not written).
    #[arg(long)]
    root: bool,
}

/// One check `verify` runs.
#[derive(Debug)]
enum Check {
    Unit(UnitKind, PathBuf),
    /// The journal of a state, queue or bucket.
    Journal(PathBuf),
    /// The snapshots of a state, queue or bucket.
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

    /// Runs the check.
    fn run(&self) -> Result<Report> {
        match self {
            Check::Unit(UnitKind::Journal, dir) | Check::Journal(dir) => unit::check_journal(dir),
            Check::Unit(UnitKind::State, dir) => unit::check_state(dir),
            Check::Unit(UnitKind::Queue, dir) => unit::check_queue(dir),
            Check::Unit(UnitKind::Bucket, dir) => unit::check_bucket(dir),
            Check::Unit(UnitKind::Snapshots, dir) | Check::Snapshots(dir) => {
                unit::check_snapshots(dir)
            }
            Check::SnapshotFile(file) => Ok(unit::check_snapshot_file(file)),
        }
    }

    /// What the summary line counts it as.
    fn noun(&self) -> (&'static str, &'static str) {
        match self {
            Check::Unit(UnitKind::Journal, _) | Check::Journal(_) => ("journal", "journals"),
            Check::Unit(UnitKind::State, _) => ("state", "states"),
            Check::Unit(UnitKind::Snapshots, _) | Check::Snapshots(_) => {
                ("snapshot directory", "snapshot directories")
            }
            Check::Unit(UnitKind::Queue, _) => ("queue", "queues"),
            Check::Unit(UnitKind::Bucket, _) => ("bucket", "buckets"),
            Check::SnapshotFile(_) => ("snapshot file", "snapshot files"),
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

/// The path `verify` checks.
fn verify_path(args: &VerifyArgs) -> Result<PathBuf> {
    Ok(
        match address::resolve(&args.target, &args.data, args.kind.map(UnitKind::from))? {
            Address::Data(path) | Address::Path(path) | Address::Named(path) => path,
        },
    )
}

fn plan(args: &VerifyArgs, path: &Path) -> Result<Plan> {
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
        Target::SegmentFile => usage!(
            "{} is a journal segment: give its directory (the journal)",
            path.display()
        ),
        Target::Foreign(why) => usage!(
            "{} is not something mini writes ({why}): nothing to check",
            path.display()
        ),
        Target::Missing => bail!("{} does not exist", path.display()),
        Target::NoRoot => usage!(
            "{}. If it is a data directory written before the marker existed, run: \
             mini verify --root {}",
            layout::no_root_reason(path),
            path.display()
        ),
    }
}

/// How many checks of each kind, by the summary line's nouns.
fn counts(checks: &[Check]) -> Vec<(usize, &'static str, &'static str)> {
    let mut counted: Vec<(usize, &'static str, &'static str)> = Vec::new();
    for check in checks {
        let (one, many) = check.noun();
        match counted.iter_mut().find(|(_, o, _)| *o == one) {
            Some((n, _, _)) => *n += 1,
            None => counted.push((1, one, many)),
        }
    }
    let order = [
        "journal",
        "state",
        "snapshot directory",
        "queue",
        "bucket",
        "snapshot file",
    ];
    counted.sort_by_key(|(_, one, _)| order.iter().position(|o| o == one));
    counted
}

/// "2 journals, 1 state" for the summary line.
fn counts_text(checks: &[Check]) -> String {
    let parts: Vec<String> = counts(checks)
        .into_iter()
        .map(|(count, one, many)| format!("{count} {}", if count == 1 { one } else { many }))
        .collect();
    if parts.is_empty() {
        "nothing".to_owned()
    } else {
        parts.join(", ")
    }
}

/// A namespace whose record of module versions is damaged.
#[derive(Debug, Serialize)]
struct ModulesDamage {
    path: String,
    error: String,
}

/// An entry mini did not write.
#[derive(Debug, Serialize)]
struct UnknownJson {
    path: String,
    why: &'static str,
}

/// What `verify --json` prints.
#[derive(Debug, Serialize)]
struct VerifyJson {
    ok: bool,
    checked: BTreeMap<&'static str, usize>,
    damaged: usize,
    units: Vec<Report>,
    modules_damaged: Vec<ModulesDamage>,
    unknown: Vec<UnknownJson>,
}

/// Runs every check of `plan`; one unit that cannot be read does not keep
/// the others from being checked: it counts as damaged, since nothing
/// vouches for it.
fn run_checks(plan: &Plan) -> Vec<Report> {
    plan.checks
        .iter()
        .map(|check| {
            check.run().unwrap_or_else(|e| {
                let mut report = Report::new(check.path(), "unreadable");
                report.damaged(check.path(), format!("{e:#}"));
                report.note(format!("{e:#}"));
                report
            })
        })
        .collect()
}

/// `mini verify`.
pub fn verify(args: VerifyArgs) -> Result<ExitCode> {
    let path = verify_path(&args)?;
    let plan = plan(&args, &path)?;
    if plan.checks.is_empty() && plan.unknown.is_empty() {
        usage!(
            "no journal, state, snapshot store, queue or bucket found in {}",
            path.display()
        );
    }
    let reports = run_checks(&plan);
    // The record of module versions is mini's file too: a damaged one is
    // damage, though no data depends on it.
    let modules: Vec<ModulesDamage> = plan
        .namespaces
        .iter()
        .filter_map(|ns| match modules_of(ns) {
            Err(e @ ModulesError::Damaged { .. }) => Some(ModulesDamage {
                path: match &e {
                    ModulesError::Damaged { path, .. } => path.display().to_string(),
                    _ => ns.display().to_string(),
                },
                error: e.to_string(),
            }),
            _ => None,
        })
        .collect();
    let damaged = reports.iter().filter(|r| r.damaged).count() + modules.len();
    let code = if damaged == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::exit::DAMAGE)
    };
    if args.json {
        let json = VerifyJson {
            ok: damaged == 0,
            checked: counts(&plan.checks)
                .into_iter()
                .map(|(n, one, _)| (one, n))
                .collect(),
            damaged,
            units: reports,
            modules_damaged: modules,
            unknown: plan
                .unknown
                .iter()
                .map(|u| UnknownJson {
                    path: u.path.display().to_string(),
                    why: u.why,
                })
                .collect(),
        };
        crate::out::print_json(&json)?;
        return Ok(code);
    }
    for report in &reports {
        report.print();
    }
    for m in &modules {
        println!("DAMAGED  {}", m.error);
        eprintln!("mini: {}", m.error);
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
            counts_text(&plan.checks)
        );
    }
    Ok(code)
}
