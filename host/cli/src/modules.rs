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
use serde::Serialize;

use crate::time::utc;

/// List the namespaces of a data directory: the module versions that
/// opened each (first and last open, UTC), its journals, states, snapshot
/// stores, queues and key-value buckets, and the bytes it takes on disk.
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
///      "queues":[...],"buckets":[...],"unknown_entries":N}
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
            writeln!(out, "{}", json_line(ns)?)
        } else {
            write_text(&mut out, ns)
        }
    });
    match written.and_then(|()| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => crate::out::closed_or(e),
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
        (UnitKind::Bucket, "buckets"),
    ];
    if ns.units.is_empty() {
        writeln!(out, "  no journal, state, snapshot store, queue or bucket")?;
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

/// One module version in `--json`.
#[derive(Debug, Serialize)]
struct ModuleJson<'a> {
    module: &'a str,
    first_opened: String,
    last_opened: String,
    first_opened_ms: u64,
    last_opened_ms: u64,
    opens: u64,
}

/// One namespace in `--json`.
#[derive(Debug, Serialize)]
struct NamespaceJson<'a> {
    namespace: &'a str,
    bytes: u64,
    modules: Vec<ModuleJson<'a>>,
    modules_error: Option<&'a str>,
    journals: &'a [String],
    states: &'a [String],
    snapshot_stores: &'a [String],
    queues: &'a [String],
    buckets: &'a [String],
    unknown_entries: usize,
}

fn json_line(ns: &Namespace) -> io::Result<String> {
    let line = NamespaceJson {
        namespace: &ns.name,
        bytes: ns.bytes,
        modules: ns
            .modules
            .iter()
            .map(|m| ModuleJson {
                module: &m.module,
                first_opened: utc(m.first_opened_ms),
                last_opened: utc(m.last_opened_ms),
                first_opened_ms: m.first_opened_ms,
                last_opened_ms: m.last_opened_ms,
                opens: m.opens,
            })
            .collect(),
        modules_error: ns.modules_error.as_deref(),
        journals: ns.names(UnitKind::Journal),
        states: ns.names(UnitKind::State),
        snapshot_stores: ns.names(UnitKind::Snapshots),
        queues: ns.names(UnitKind::Queue),
        buckets: ns.names(UnitKind::Bucket),
        unknown_entries: ns.unknown,
    };
    serde_json::to_string(&line).map_err(io::Error::other)
}
