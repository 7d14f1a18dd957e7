//! `mini repair`: cuts a damaged journal at its first damage, only when
//! asked; without `--yes`, says what it would cut (a dry run, exit 0).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use mini_engine::layout::UnitKind;
use mini_engine::state::JOURNAL_DIR;
use mini_engine::verify::{RepairPlan, plan_repair};
use serde::Serialize;

use super::report::{DamageJson, JournalJson};
use super::unit::{self, with_progress};
use crate::address::{self, Address, Kind};
use crate::exit::usage;
use crate::layout::{self, Target};

/// Cut a damaged journal at its first damage (only with --yes).
///
/// The journal is PATH (a journal, or the journal/ of a state, queue or
/// bucket), or NAMESPACE NAME in the data directory --data DIR (--kind
/// state, queue or bucket for their journal). The damaged line and everything after it are moved
/// out of the journal into `<journal>/repair-<time>/`, so they can still be
/// inspected. Without --yes, prints what would be cut and changes nothing
/// (exit 0). Takes the journal's lock with --yes (exit 3 if a process holds
/// it).
///
/// With --json, prints one JSON object: {"path","dry_run":BOOL,"damage":
/// {"file","offset","seq","message"}|null,"journal":{…},"bytes_to_remove"
/// (dry run) or "bytes_removed","saved_to","records_left" (done)}.
#[derive(Debug, Args)]
pub struct RepairArgs {
    /// PATH (a journal directory), or NAMESPACE NAME (with --data).
    #[arg(value_name = "PATH | NAMESPACE NAME")]
    target: Vec<OsString>,
    /// The data directory (with NAMESPACE NAME).
    #[arg(long, default_value_os_t = crate::default_data_dir())]
    data: PathBuf,
    /// With NAMESPACE NAME: the kind of unit (default: journal; state,
    /// queue or bucket: its journal).
    #[arg(long, value_enum, default_value = "journal")]
    kind: Kind,
    /// Really cut the journal.
    #[arg(long)]
    yes: bool,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// What `repair --json` prints.
#[derive(Debug, Default, Serialize)]
struct RepairJson {
    path: String,
    dry_run: bool,
    damage: Option<DamageJson>,
    journal: Option<JournalJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_to_remove: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_removed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    saved_to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    records_left: Option<u64>,
}

/// The journal directory the arguments name, checked against the layout.
fn journal_dir(args: &RepairArgs) -> Result<PathBuf> {
    let kind = UnitKind::from(args.kind);
    let dir = match address::resolve(&args.target, &args.data, Some(kind))? {
        Address::Path(path) => path,
        Address::Named(dir) if kind == UnitKind::Journal => dir,
        Address::Named(dir) => dir.join(JOURNAL_DIR),
        Address::Data(_) => usage!("give the journal: PATH, or NAMESPACE NAME (with --data DIR)"),
    };
    match layout::resolve(&dir).target {
        Target::Unit(UnitKind::Journal) | Target::UnitJournal => Ok(dir),
        Target::Unit(kind @ (UnitKind::State | UnitKind::Queue | UnitKind::Bucket)) => usage!(
            "{} is a {kind} directory: repair its journal, {}",
            dir.display(),
            dir.join(JOURNAL_DIR).display()
        ),
        Target::Missing => anyhow::bail!("{} does not exist", dir.display()),
        Target::Foreign(why) => usage!("{} is not a journal directory: {why}", dir.display()),
        Target::NoRoot => usage!(
            "{} is not a journal directory: {}",
            dir.display(),
            layout::no_root_reason(&dir)
        ),
        _ => usage!("{} is not a journal directory", dir.display()),
    }
}

fn plan_of(dir: &Path) -> Result<RepairPlan> {
    with_progress(dir, |progress| plan_repair(dir, progress))
        .with_context(|| format!("cannot verify {}", dir.display()))
}

/// `mini repair`.
pub fn repair(args: RepairArgs) -> Result<ExitCode> {
    let dir = journal_dir(&args)?;
    let plan = plan_of(&dir)?;
    let mut json = RepairJson {
        path: dir.display().to_string(),
        dry_run: !args.yes,
        damage: plan.damage.as_ref().map(DamageJson::of),
        journal: Some(JournalJson::of(&plan.report)),
        ..RepairJson::default()
    };
    let text = if !args.yes {
        json.bytes_to_remove = Some(plan.bytes_to_remove);
        match &plan.damage {
            None => format!(
                "nothing to repair: {}: {}",
                dir.display(),
                unit::summary(&plan.report)
            ),
            Some(damage) => format!(
                "would cut {} at the first damage: {damage}\nwould remove {} bytes: the record \
                 with seq {} and everything after it\nrun again with --yes to do it",
                dir.display(),
                plan.bytes_to_remove,
                damage.seq
            ),
        }
    } else if plan.damage.is_none() && plan.report.torn_tail_bytes == 0 {
        format!(
            "nothing to repair: {}: {}",
            dir.display(),
            unit::summary(&plan.report)
        )
    } else {
        let repaired = mini_engine::verify::repair(&dir)
            .with_context(|| format!("cannot repair {}", dir.display()))?;
        json.bytes_removed = Some(repaired.bytes_removed);
        json.saved_to = repaired.saved_to.as_ref().map(|p| p.display().to_string());
        json.records_left = Some(repaired.records_left);
        match &repaired.cut_at {
            Some(cut) => {
                let saved = repaired
                    .saved_to
                    .as_ref()
                    .map_or_else(String::new, |p| format!(", saved in {}", p.display()));
                format!(
                    "cut {} at the first damage: {cut}\nremoved {} bytes{saved}; {} records left",
                    dir.display(),
                    repaired.bytes_removed,
                    repaired.records_left
                )
            }
            None => format!(
                "no damage in {}; cut a torn tail of {} bytes; {} records",
                dir.display(),
                repaired.bytes_removed,
                repaired.records_left
            ),
        }
    };
    if args.json {
        return crate::out::print_json(&json);
    }
    println!("{text}");
    Ok(ExitCode::SUCCESS)
}
