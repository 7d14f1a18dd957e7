//! `mini modules`: what each namespace of a data directory holds, and which
//! module versions opened it.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use mini_engine::layout::{
    DataRoot, Location, ModuleRecord, ROOT_MARKER, UnitKind, modules_of, walk,
};
use serde_json::json;

/// List the namespaces of a data directory: the module versions that
/// opened each (first and last open, UTC), its journals, states, snapshot
/// stores and queues, and the bytes it takes on disk.
///
/// A namespace is named after the module that owns it, so every version of
/// a module opens the same data; `<namespace>/.modules.json` records which
/// did. A damaged record is reported and the listing goes on.
///
/// With --json, prints one JSON object per namespace:
///
///     {"namespace":NS,"bytes":N,"modules":[{"module":"name@x.y.z",
///      "first_opened":"…Z","last_opened":"…Z","first_opened_ms":MS,
///      "last_opened_ms":MS,"opens":N}],"modules_error":null,
///      "journals":[...],"states":[...],"snapshot_stores":[...],
///      "queues":[...],"unknown_entries":N}
///
/// Takes no lock and changes nothing.
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ModulesArgs {
    /// The data directory.
    #[arg(long, default_value_os_t = crate::default_data_dir())]
    data: PathBuf,
    /// One JSON object per namespace instead of text.
    #[arg(long)]
    json: bool,
}

/// What one namespace holds.
#[derive(Debug, Default)]
struct Namespace {
    name: String,
    modules: Vec<ModuleRecord>,
    /// Why `.modules.json` could not be read.
    modules_error: Option<String>,
    units: BTreeMap<UnitKind, Vec<String>>,
    bytes: u64,
    unknown: usize,
}

impl Namespace {
    fn names(&self, kind: UnitKind) -> &[String] {
        self.units.get(&kind).map_or(&[], Vec::as_slice)
    }
}

/// `mini modules`.
pub fn modules(args: ModulesArgs) -> Result<ExitCode> {
    let data = &args.data;
    if !data.is_dir() {
        bail!("{} is not a directory", data.display());
    }
    if !DataRoot::is_root(data) {
        // Data written before the marker existed is still listed: --data
        // says what the directory is.
        eprintln!(
            "mini: warning: {} has no {ROOT_MARKER} marker; listing it as a data directory",
            data.display()
        );
    }
    let namespaces = read(data)?;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let written = namespaces.iter().try_for_each(|ns| {
        if let Some(e) = &ns.modules_error {
            eprintln!("mini: warning: {e}");
        }
        if args.json {
            writeln!(out, "{}", json_line(ns))
        } else {
            write_text(&mut out, ns)
        }
    });
    match written.and_then(|()| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => crate::cat::closed_or(e),
    }
}

/// Every namespace of the data root `data`, as the engine's layout lists it.
fn read(data: &Path) -> Result<Vec<Namespace>> {
    let root = DataRoot::new(data);
    let found =
        walk(&root, &Location::Root).with_context(|| format!("cannot read {}", data.display()))?;
    let mut namespaces = Vec::new();
    for name in &found.namespaces {
        let dir = data.join(name);
        let (modules, modules_error) = match modules_of(&dir) {
            Ok(modules) => (modules, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        let mut units: BTreeMap<UnitKind, Vec<String>> = BTreeMap::new();
        for unit in found.units.iter().filter(|u| &u.namespace == name) {
            units.entry(unit.kind).or_default().push(unit.name.clone());
        }
        namespaces.push(Namespace {
            name: name.clone(),
            modules,
            modules_error,
            units,
            bytes: bytes_under(&dir).with_context(|| format!("cannot read {}", dir.display()))?,
            unknown: found
                .unknown
                .iter()
                .filter(|u| u.path.starts_with(&dir))
                .count(),
        });
    }
    Ok(namespaces)
}

/// The sum of the lengths of the files under `dir` (symbolic links are not
/// followed: mini writes none).
fn bytes_under(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            total += bytes_under(&entry.path())?;
        } else if kind.is_file() {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn write_text(out: &mut impl Write, ns: &Namespace) -> io::Result<()> {
    writeln!(
        out,
        "{}: {} on disk",
        ns.name,
        plural(ns.bytes, "byte", "bytes")
    )?;
    if let Some(e) = &ns.modules_error {
        writeln!(out, "  modules: cannot tell: {e}")?;
    } else if ns.modules.is_empty() {
        writeln!(out, "  no module version recorded")?;
    }
    for m in &ns.modules {
        writeln!(
            out,
            "  {}: first opened {}, last opened {} ({})",
            m.module,
            utc(m.first_opened_ms),
            utc(m.last_opened_ms),
            plural(m.opens, "open", "opens")
        )?;
    }
    let labels = [
        (UnitKind::Journal, "journals"),
        (UnitKind::State, "states"),
        (UnitKind::Snapshots, "snapshot stores"),
        (UnitKind::Queue, "queues"),
    ];
    if ns.units.is_empty() {
        writeln!(out, "  no journal, state, snapshot store or queue")?;
    }
    for (kind, label) in labels {
        let names = ns.names(kind);
        if !names.is_empty() {
            writeln!(out, "  {label}: {}", names.join(", "))?;
        }
    }
    if ns.unknown > 0 {
        let entries = plural(ns.unknown as u64, "unknown entry", "unknown entries");
        writeln!(out, "  {entries} (`mini verify` lists them)")?;
    }
    Ok(())
}

fn json_line(ns: &Namespace) -> serde_json::Value {
    let modules: Vec<serde_json::Value> = ns
        .modules
        .iter()
        .map(|m| {
            json!({
                "module": m.module,
                "first_opened": utc(m.first_opened_ms),
                "last_opened": utc(m.last_opened_ms),
                "first_opened_ms": m.first_opened_ms,
                "last_opened_ms": m.last_opened_ms,
                "opens": m.opens,
            })
        })
        .collect();
    json!({
        "namespace": ns.name,
        "bytes": ns.bytes,
        "modules": modules,
        "modules_error": ns.modules_error,
        "journals": ns.names(UnitKind::Journal),
        "states": ns.names(UnitKind::State),
        "snapshot_stores": ns.names(UnitKind::Snapshots),
        "queues": ns.names(UnitKind::Queue),
        "unknown_entries": ns.unknown,
    })
}

/// `ms` since the Unix epoch as an RFC 3339 UTC time to the second
/// (`2024-02-29T12:00:00Z`).
fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (year, month, day) = civil_from_days(secs / 86_400);
    let rest = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch): eras of 400 years
/// repeat exactly, so the date is found inside one era.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Counted from 0000-03-01, so that a leap day ends its year.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc(1_709_208_000_999), "2024-02-29T12:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc(4_107_542_399_000), "2100-02-28T23:59:59Z");
        assert_eq!(utc(4_107_542_400_000), "2100-03-01T00:00:00Z");
        assert_eq!(utc(253_402_300_799_000), "9999-12-31T23:59:59Z");
    }
}
