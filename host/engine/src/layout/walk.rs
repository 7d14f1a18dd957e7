//! Walking a data root by its layout: every unit under a location, and
//! every entry the layout does not account for.

use std::io;
use std::path::{Path, PathBuf};

use super::{DataRoot, Location, MODULES_FILE, MODULES_LOCK, REPAIR_PREFIX, ROOT_MARKER, UnitKind};
use crate::journal::{MARK_FILE, MARK_TEMP};
use crate::lock::LOCK_FILE;
use crate::name::validate_name;
use crate::segment::parse_segment_file_name;
use crate::snapshot::{TEMP_PREFIX, parse_snapshot_file_name};
use crate::state::{JOURNAL_DIR, SNAPSHOT_DIR};

/// One unit of storage found by a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// Its namespace.
    pub namespace: String,
    /// Its kind.
    pub kind: UnitKind,
    /// Its name.
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
}

/// An entry the layout does not account for: mini did not write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    /// The entry.
    pub path: PathBuf,
    /// Why it does not belong there.
    pub why: &'static str,
}

/// What a walk found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Walk {
    /// The units, sorted by namespace, kind and name.
    pub units: Vec<Unit>,
    /// The namespaces met (also those without units), sorted.
    pub namespaces: Vec<String>,
    /// Entries that are not part of the layout, sorted by path.
    pub unknown: Vec<Unknown>,
}

/// Every unit at or under `location` of `root`, and every entry there that
/// the layout does not account for (a unit's own entries included, see
/// [`unknown_in_unit`]). A path inside a unit or a foreign location yields
/// nothing but itself as unknown for a foreign one.
pub fn walk(root: &DataRoot, location: &Location) -> io::Result<Walk> {
    let mut found = Walk::default();
    match location {
        Location::Root => walk_root(root.path(), &mut found)?,
        Location::Namespace { namespace } => {
            walk_namespace(&root.path().join(namespace), namespace, &mut found)?
        }
        Location::Kind { namespace, kind } => {
            let dir = root.path().join(namespace).join(kind.dir_name());
            walk_kind(&dir, namespace, *kind, &mut found)?;
        }
        Location::Unit {
            namespace,
            kind,
            name,
        } => {
            let dir = root.path().join(namespace).join(kind.dir_name()).join(name);
            add_unit(&mut found, namespace, *kind, name, dir);
        }
        Location::InUnit { .. } => {}
        Location::Foreign(why) => found.unknown.push(Unknown {
            path: root.path().to_path_buf(),
            why,
        }),
    }
    found
        .units
        .sort_by(|a, b| (&a.namespace, a.kind, &a.name).cmp(&(&b.namespace, b.kind, &b.name)));
    found.namespaces.sort();
    found.namespaces.dedup();
    found.unknown.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

/// The entries of `dir`: (name, is a directory), sorted; a missing
/// directory has none.
fn entries(dir: &Path) -> io::Result<Vec<(String, bool)>> {
    let read = match std::fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in read {
        let entry = entry?;
        // Symbolic links are never followed: mini writes none.
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        out.push((entry.file_name().to_string_lossy().into_owned(), is_dir));
    }
    out.sort();
    Ok(out)
}

fn walk_root(dir: &Path, found: &mut Walk) -> io::Result<()> {
    for (name, is_dir) in entries(dir)? {
        let path = dir.join(&name);
        if name == ROOT_MARKER || (!is_dir && name.starts_with(&format!("{ROOT_MARKER}.tmp-"))) {
            continue;
        }
        if is_dir && validate_name(&name).is_ok() {
            walk_namespace(&path, &name, found)?;
        } else {
            found.unknown.push(Unknown {
                path,
                why: "not a namespace",
            });
        }
    }
    Ok(())
}

fn walk_namespace(dir: &Path, namespace: &str, found: &mut Walk) -> io::Result<()> {
    found.namespaces.push(namespace.to_owned());
    for (name, is_dir) in entries(dir)? {
        let path = dir.join(&name);
        match UnitKind::from_dir_name(&name) {
            Some(kind) if is_dir => walk_kind(&path, namespace, kind, found)?,
            _ if !is_dir && is_modules_file(&name) => {}
            _ => found.unknown.push(Unknown {
                path,
                why: "not a directory of journals, states, snapshots or queues",
            }),
        }
    }
    Ok(())
}

fn is_modules_file(name: &str) -> bool {
    name == MODULES_FILE
        || name == MODULES_LOCK
        || name
            .strip_prefix(MODULES_FILE)
            .is_some_and(|rest| rest.starts_with(".tmp-"))
}

fn walk_kind(dir: &Path, namespace: &str, kind: UnitKind, found: &mut Walk) -> io::Result<()> {
    for (name, is_dir) in entries(dir)? {
        let path = dir.join(&name);
        if is_dir && validate_name(&name).is_ok() {
            add_unit(found, namespace, kind, &name, path);
        } else {
            found.unknown.push(Unknown {
                path,
                why: "not a unit: a file, or a directory with an invalid name",
            });
        }
    }
    Ok(())
}

fn add_unit(found: &mut Walk, namespace: &str, kind: UnitKind, name: &str, dir: PathBuf) {
    // A unit whose entries cannot be listed is the unit's checker's to report.
    if let Ok(unknown) = unknown_in_unit(kind, &dir) {
        found.unknown.extend(unknown);
    }
    found.units.push(Unit {
        namespace: namespace.to_owned(),
        kind,
        name: name.to_owned(),
        dir,
    });
}

/// What a path inside a unit's directory is: what mini writes there, by
/// the unit's kind and the path's components below the unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitEntry {
    /// The journal of a state or queue (`<unit>/journal/`).
    Journal,
    /// The snapshot directory of a state or queue (`<unit>/snapshots/`).
    Snapshots,
    /// A journal's segment file.
    Segment,
    /// A snapshot file.
    SnapshotFile,
    /// A snapshot being written, or left half written by a crash.
    SnapshotTemp,
    /// A unit's lock file.
    Lock,
    /// A journal's mark of its active segment, or one being written.
    Mark,
    /// What `mini repair` cut off a journal (`repair-*`), or inside it.
    Repair,
    /// Not something mini writes there.
    Unknown,
}

/// What the path `parts` (components below the directory of a unit of
/// `kind`; `is_dir`: the path is a directory) is.
///
/// ```
/// use mini_engine::layout::{UnitEntry, UnitKind, unit_entry};
/// let entry = |kind, parts: &[&str], is_dir| unit_entry(kind, parts, is_dir);
/// assert_eq!(entry(UnitKind::Queue, &["journal"], true), UnitEntry::Journal);
/// assert_eq!(entry(UnitKind::State, &["journal", "00000000000000000001.jsonl"], false), UnitEntry::Segment);
/// assert_eq!(entry(UnitKind::Journal, &["journal"], true), UnitEntry::Unknown);
/// ```
pub fn unit_entry(kind: UnitKind, parts: &[&str], is_dir: bool) -> UnitEntry {
    match (kind, parts) {
        (UnitKind::Journal, [name, ..]) if name.starts_with(REPAIR_PREFIX) => {
            if parts.len() > 1 || is_dir {
                UnitEntry::Repair
            } else {
                UnitEntry::Unknown
            }
        }
        (UnitKind::Journal, [name]) if !is_dir && parse_segment_file_name(name).is_some() => {
            UnitEntry::Segment
        }
        (UnitKind::Journal | UnitKind::Snapshots, [name]) if !is_dir && *name == LOCK_FILE => {
            UnitEntry::Lock
        }
        (UnitKind::Journal, [name]) if !is_dir && (*name == MARK_FILE || *name == MARK_TEMP) => {
            UnitEntry::Mark
        }
        (UnitKind::Snapshots, [name]) if !is_dir && parse_snapshot_file_name(name).is_some() => {
            UnitEntry::SnapshotFile
        }
        (UnitKind::Snapshots, [name]) if !is_dir && name.starts_with(TEMP_PREFIX) => {
            UnitEntry::SnapshotTemp
        }
        (UnitKind::State | UnitKind::Queue | UnitKind::Bucket, [JOURNAL_DIR]) if is_dir => {
            UnitEntry::Journal
        }
        (UnitKind::State | UnitKind::Queue | UnitKind::Bucket, [SNAPSHOT_DIR]) if is_dir => {
            UnitEntry::Snapshots
        }
        (UnitKind::State | UnitKind::Queue | UnitKind::Bucket, [JOURNAL_DIR, rest @ ..]) => {
            unit_entry(UnitKind::Journal, rest, is_dir)
        }
        (UnitKind::State | UnitKind::Queue | UnitKind::Bucket, [SNAPSHOT_DIR, rest @ ..]) => {
            unit_entry(UnitKind::Snapshots, rest, is_dir)
        }
        _ => UnitEntry::Unknown,
    }
}

/// The entries of the unit directory `dir` (of `kind`) that mini does not
/// write there ([`unit_entry`]): a journal holds segment files, its lock, its mark and
/// `repair-*` directories; a snapshot store its snapshot files, temporary
/// files and its lock; a state or queue its `journal/` and `snapshots/`.
pub fn unknown_in_unit(kind: UnitKind, dir: &Path) -> io::Result<Vec<Unknown>> {
    let mut unknown = Vec::new();
    for (name, is_dir) in entries(dir)? {
        let path = dir.join(&name);
        match unit_entry(kind, &[&name], is_dir) {
            UnitEntry::Journal => unknown.extend(unknown_in_unit(UnitKind::Journal, &path)?),
            UnitEntry::Snapshots => unknown.extend(unknown_in_unit(UnitKind::Snapshots, &path)?),
            UnitEntry::Unknown => unknown.push(Unknown {
                path,
                why: "not written by mini here",
            }),
            UnitEntry::Segment
            | UnitEntry::SnapshotFile
            | UnitEntry::SnapshotTemp
            | UnitEntry::Lock
            | UnitEntry::Mark
            | UnitEntry::Repair => {}
        }
    }
    Ok(unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_names_that_look_like_mini_files_are_units() {
        let data = tempfile::tempdir().expect("tempdir");
        let root = DataRoot::create(data.path()).expect("root");
        let names = [
            "LOCK",
            "journal",
            "snapshots",
            "repair-x",
            "00000000000000000001.jsonl",
            "snapshot-00000000000000000001.json",
        ];
        for name in names {
            let dir = root.unit_dir("LOCK", UnitKind::Journal, name).expect("ok");
            crate::Journal::open(&dir).expect("open");
        }
        std::fs::write(root.path().join("LOCK/stray"), "x").expect("write");
        let found = walk(&root, &Location::Root).expect("walk");
        let mut got: Vec<&str> = found.units.iter().map(|u| u.name.as_str()).collect();
        got.sort_unstable();
        let mut want = names.to_vec();
        want.sort_unstable();
        assert_eq!(got, want);
        assert!(found.units.iter().all(|u| u.kind == UnitKind::Journal));
        assert_eq!(found.namespaces, ["LOCK"]);
        assert_eq!(found.unknown.len(), 1, "{:?}", found.unknown);
        assert!(found.unknown[0].path.ends_with("LOCK/stray"));
    }

    #[test]
    fn entries_of_units_are_what_mini_writes_there() {
        use UnitEntry as E;
        let of = |kind, parts: &[&str], is_dir| unit_entry(kind, parts, is_dir);
        assert_eq!(of(UnitKind::Journal, &["LOCK"], false), E::Lock);
        assert_eq!(of(UnitKind::Journal, &["LOCK"], true), E::Unknown);
        assert_eq!(of(UnitKind::Journal, &["repair-1-0"], true), E::Repair);
        assert_eq!(
            of(UnitKind::Journal, &["repair-1-0", "x.jsonl"], false),
            E::Repair
        );
        assert_eq!(of(UnitKind::Journal, &["repair-1-0"], false), E::Unknown);
        assert_eq!(of(UnitKind::Journal, &["snapshots"], true), E::Unknown);
        let snapshot = "snapshot-00000000000000000007.json";
        assert_eq!(of(UnitKind::Snapshots, &[snapshot], false), E::SnapshotFile);
        assert_eq!(of(UnitKind::Snapshots, &[".tmp-x"], false), E::SnapshotTemp);
        assert_eq!(of(UnitKind::Snapshots, &["LOCK"], false), E::Lock);
        assert_eq!(
            of(UnitKind::Queue, &["snapshots", snapshot], false),
            E::SnapshotFile
        );
        assert_eq!(of(UnitKind::State, &["journal", "LOCK"], false), E::Lock);
        assert_eq!(of(UnitKind::State, &["other"], true), E::Unknown);
        assert_eq!(of(UnitKind::Snapshots, &[snapshot, "x"], false), E::Unknown);
    }
}
