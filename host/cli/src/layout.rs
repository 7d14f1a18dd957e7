//! What a path the operator gives is, asked of the engine's layout
//! ([`mini_engine::layout`]).
//!
//! ```text
//! <data>/.mini                       the marker of a data root
//! <data>/<ns>/journal/<name>/        a journal: segments 00000000000000000001.jsonl …
//! <data>/<ns>/state/<name>/          a state: journal/ and snapshots/
//! <data>/<ns>/snapshot/<name>/       a snapshot store: snapshot-<seq>.json …
//! <data>/<ns>/queue/<name>/          a queue: journal/ and snapshots/
//! <data>/<ns>/bucket/<name>/         a key-value bucket: journal/ and snapshots/
//! ```
//!
//! Guests choose `<ns>` and `<name>`, so inside a data root a path is what
//! its position says, whatever the names inside it look like; only outside
//! every root (a unit a native program wrote where it liked) is a directory
//! read by its entries, which only mini writes there.

use std::path::Path;

use mini_engine::layout::{
    DataRoot, Location, ROOT_MARKER, UnitEntry, UnitKind, locate, standalone_kind, unit_entry,
};
use mini_engine::segment::parse_segment_file_name;

/// What a path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A data root, a namespace, or a namespace's directory of one kind:
    /// what it holds is for [`mini_engine::layout::walk`] to list.
    Units(DataRoot, Location),
    /// A unit's directory. Outside a data root a queue's or a bucket's
    /// directory is taken for a state's: they look alike.
    Unit(UnitKind),
    /// The journal of a state, queue or bucket (`<unit>/journal/`).
    UnitJournal,
    /// The snapshot directory of a state, queue or bucket
    /// (`<unit>/snapshots/`).
    UnitSnapshots,
    /// A snapshot file.
    SnapshotFile,
    /// A journal segment file.
    SegmentFile,
    /// Something mini does not write there; the reason.
    Foreign(&'static str),
    /// Nothing is there.
    Missing,
    /// Outside every data root, and not a unit's directory.
    NoRoot,
}

/// A path, resolved.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// What it is.
    pub target: Target,
    /// Whether it lies in a data root (else it was read by its entries).
    pub in_root: bool,
}

/// What `path` is: from its position under the nearest data root, or, in
/// no root, from its own entries ([`standalone_kind`]).
pub fn resolve(path: &Path) -> Resolved {
    match locate(path) {
        Some((root, location)) => Resolved {
            target: in_root(path, root, location),
            in_root: true,
        },
        None => Resolved {
            target: standalone(path),
            in_root: false,
        },
    }
}

fn in_root(path: &Path, root: DataRoot, location: Location) -> Target {
    match location {
        Location::Root | Location::Namespace { .. } | Location::Kind { .. } => {
            if path.is_dir() {
                Target::Units(root, location)
            } else if path.exists() {
                Target::Foreign("a file where mini keeps a directory")
            } else {
                Target::Missing
            }
        }
        Location::Unit { kind, .. } => {
            if path.is_dir() {
                Target::Unit(kind)
            } else if path.exists() {
                Target::Foreign("a file where mini keeps a unit's directory")
            } else {
                Target::Missing
            }
        }
        Location::InUnit { kind, rest, .. } => in_unit(path, kind, &rest),
        Location::Foreign(why) => {
            if path.exists() {
                Target::Foreign(why)
            } else {
                Target::Missing
            }
        }
    }
}

/// What `path`, at `rest` below the directory of a unit of `kind`, is.
fn in_unit(path: &Path, kind: UnitKind, rest: &Path) -> Target {
    if !path.exists() {
        return Target::Missing;
    }
    let parts: Vec<String> = rest
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    match unit_entry(kind, &parts, path.is_dir()) {
        UnitEntry::Journal => Target::UnitJournal,
        UnitEntry::Snapshots => Target::UnitSnapshots,
        UnitEntry::Segment => Target::SegmentFile,
        UnitEntry::SnapshotFile => Target::SnapshotFile,
        UnitEntry::Repair => {
            Target::Foreign("what `mini repair` cut off a journal, kept to inspect: not a journal")
        }
        UnitEntry::SnapshotTemp => {
            Target::Foreign("a snapshot being written (or left by a crash): not a snapshot yet")
        }
        UnitEntry::Lock => Target::Foreign("a unit's lock file: no data"),
        UnitEntry::Mark => Target::Foreign("a journal's mark: where open starts its scan, no data"),
        UnitEntry::Unknown => Target::Foreign("not written by mini here"),
    }
}

/// Outside every root: a directory is the unit its entries say; a file is
/// a segment in a journal, else read as a snapshot file (its content
/// decides whether it is one).
fn standalone(path: &Path) -> Target {
    if path.is_dir() {
        return standalone_kind(path).map_or(Target::NoRoot, Target::Unit);
    }
    if !path.is_file() {
        return Target::Missing;
    }
    let in_journal = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .and_then(standalone_kind)
        == Some(UnitKind::Journal);
    let segment_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(parse_segment_file_name)
        .is_some();
    match (in_journal, segment_name) {
        (true, true) => Target::SegmentFile,
        (true, false) => Target::Foreign("not written by mini in a journal"),
        (false, _) => Target::SnapshotFile,
    }
}

/// Why a path outside every data root cannot be used: it names the marker
/// so that an operator knows what is missing.
pub fn no_root_reason(path: &Path) -> String {
    format!(
        "{} lies in no data root (there is no {ROOT_MARKER} marker at or above it) and is not a \
         journal, state, queue, bucket or snapshot directory",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use mini_engine::state::SNAPSHOT_DIR;
    use std::path::PathBuf;

    fn target(path: &Path) -> Target {
        resolve(path).target
    }

    /// A fresh directory under the system's temporary directory, removed
    /// when dropped (this crate has no dev-dependencies).
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!("mini-cli-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("a temporary directory");
            TempDir(dir)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn inside_a_root_the_position_decides() {
        let data = TempDir::new("in-root");
        let root = DataRoot::create(data.path()).expect("root");
        // A journal named like a segment, holding a real segment.
        let odd = root
            .unit_dir("LOCK", UnitKind::Journal, "00000000000000000001.jsonl")
            .expect("valid");
        let journal = mini_engine::Journal::open(&odd).expect("open");
        journal.append("{}").expect("append");
        drop(journal);
        assert_eq!(target(&odd), Target::Unit(UnitKind::Journal));
        assert_eq!(
            target(&odd.join("00000000000000000001.jsonl")),
            Target::SegmentFile
        );
        assert!(matches!(
            target(&data.path().join("LOCK")),
            Target::Units(_, Location::Namespace { .. })
        ));
        assert!(matches!(
            target(&data.path().join("LOCK/journal")),
            Target::Units(_, Location::Kind { .. })
        ));
        std::fs::create_dir_all(odd.join("repair-1")).expect("mkdir");
        assert!(matches!(target(&odd.join("repair-1")), Target::Foreign(_)));
        assert_eq!(target(&data.path().join("LOCK/queue/q")), Target::Missing);
        let state = root.unit_dir("ns", UnitKind::State, "s").expect("valid");
        std::fs::create_dir_all(state.join(SNAPSHOT_DIR)).expect("mkdir");
        assert_eq!(target(&state.join(SNAPSHOT_DIR)), Target::UnitSnapshots);
    }

    #[test]
    fn outside_a_root_a_unit_is_read_by_its_entries() {
        let data = TempDir::new("no-root");
        let dir = data.path().join("j");
        mini_engine::Journal::open(&dir)
            .expect("open")
            .append("{}")
            .expect("append");
        if locate(&dir).is_some() {
            return; // The temporary directory lies in a data root.
        }
        assert_eq!(target(&dir), Target::Unit(UnitKind::Journal));
        assert_eq!(
            target(&dir.join("00000000000000000001.jsonl")),
            Target::SegmentFile
        );
        assert_eq!(target(data.path()), Target::NoRoot);
        assert_eq!(target(&data.path().join("missing")), Target::Missing);
    }
}
