//! The layout of a data directory: where each namespace keeps its journals,
//! states, snapshot stores and queues, and what every path in it is.
//!
//! ```text
//! <data>/.mini                          the marker: this directory is a data root
//! <data>/<ns>/.modules.json             the module versions that opened the namespace
//! <data>/<ns>/journal/<name>/           a journal: 00000000000000000001.jsonl …, LOCK, MARK
//! <data>/<ns>/state/<name>/             a state: journal/ and snapshots/
//! <data>/<ns>/snapshot/<name>/          a snapshot store: snapshot-<seq>.json …, LOCK
//! <data>/<ns>/queue/<name>/             a queue: journal/ and snapshots/
//! ```
//!
//! Guests choose only `<ns>` (an embedder does, from the module's name) and
//! `<name>`; every other level is fixed. So the operator's tools decide what a
//! path is from its position under the root — never from the names of the
//! files inside it — and a name a guest chooses can never be taken for a
//! file mini writes itself: `journal/LOCK/` is a journal named `LOCK`,
//! `journal/00000000000000000001.jsonl/` a journal named after a segment.
//! Names starting with `.` are refused ([`crate::name`]), so mini's own
//! entries at the namespace and root levels (`.mini`, `.modules.json`) cannot
//! be made by a guest either.
//!
//! A directory outside any data root (a journal a native program opened with
//! [`Journal::open`](crate::Journal::open), say) is a single unit; its kind
//! is read from its entries ([`standalone_kind`]), which only mini writes.
//!
//! ```
//! use mini_engine::layout::{DataRoot, Location, UnitKind, locate};
//!
//! let data = tempfile::tempdir()?;
//! let root = DataRoot::create(data.path())?;
//! let dir = root.unit_dir("billing", UnitKind::Journal, "LOCK")?;
//! let (_, location) = locate(&dir).expect("inside the root");
//! assert_eq!(location, Location::Unit {
//!     namespace: "billing".into(),
//!     kind: UnitKind::Journal,
//!     name: "LOCK".into(),
//! });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::fs::{FileSystem, StdFs};
use crate::lock::LOCK_FILE;
use crate::name::{NameError, validate_name};
use crate::segment::parse_segment_file_name;
use crate::snapshot::parse_snapshot_file_name;
use crate::state::{JOURNAL_DIR, SNAPSHOT_DIR};

mod modules;
mod walk;

pub use modules::{ModuleRecord, ModulesError, modules_of, record_module};
pub use walk::{Unit, UnitEntry, Unknown, Walk, unit_entry, unknown_in_unit, walk};

/// The marker file that makes a directory a data root.
pub const ROOT_MARKER: &str = ".mini";
/// What the marker holds (one JSON line, so `cat` tells what it is).
pub const ROOT_MARKER_TEXT: &str = "{\"mini\":\"data\",\"version\":1}\n";
/// The file of a namespace that records which module versions opened it.
pub const MODULES_FILE: &str = ".modules.json";
/// The lock file taken while [`MODULES_FILE`] is rewritten.
pub const MODULES_LOCK: &str = ".modules.lock";
/// What `mini repair` names the directories it keeps cut data in (inside a
/// journal directory).
pub const REPAIR_PREFIX: &str = "repair-";

/// What a unit of storage is. Each kind has a fixed directory in a
/// namespace, which holds one directory per name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnitKind {
    /// A journal (`store` interface).
    Journal,
    /// A state (`state` interface): a journal and snapshots.
    State,
    /// A snapshot store (`snapshot` interface).
    Snapshots,
    /// A queue (`queue` interface): a journal and snapshots.
    Queue,
    /// A key-value bucket (`wasi:keyvalue`): a journal and snapshots
    /// ([`crate::kv::Bucket`]).
    Bucket,
}

impl UnitKind {
    /// Every kind, in the order the tools list them.
    pub const ALL: [UnitKind; 5] = [
        UnitKind::Journal,
        UnitKind::State,
        UnitKind::Snapshots,
        UnitKind::Queue,
        UnitKind::Bucket,
    ];

    /// The directory of a namespace that holds units of this kind.
    pub fn dir_name(self) -> &'static str {
        match self {
            UnitKind::Journal => "journal",
            UnitKind::State => "state",
            UnitKind::Snapshots => "snapshot",
            UnitKind::Queue => "queue",
            UnitKind::Bucket => "bucket",
        }
    }

    /// The kind whose directory is `name`.
    pub fn from_dir_name(name: &str) -> Option<UnitKind> {
        UnitKind::ALL.into_iter().find(|k| k.dir_name() == name)
    }

    /// What the tools call a unit of this kind.
    pub fn noun(self) -> &'static str {
        match self {
            UnitKind::Journal => "journal",
            UnitKind::State => "state",
            UnitKind::Snapshots => "snapshot store",
            UnitKind::Queue => "queue",
            UnitKind::Bucket => "bucket",
        }
    }
}

impl fmt::Display for UnitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.noun())
    }
}

/// A data root: the directory that holds namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRoot {
    path: PathBuf,
}

impl DataRoot {
    /// The data root at `path`, without touching the file system.
    pub fn new(path: impl Into<PathBuf>) -> DataRoot {
        DataRoot { path: path.into() }
    }

    /// Makes `path` a data root: the directory (and its parents) are
    /// created and the marker written, each made durable (the marker is
    /// synced, then its directory). A root that has its marker is left as
    /// it is.
    pub fn create(path: impl Into<PathBuf>) -> io::Result<DataRoot> {
        let root = DataRoot::new(path);
        root.ensure_with(&StdFs)?;
        Ok(root)
    }

    /// [`DataRoot::create`] on the file system `fs`.
    pub fn ensure_with(&self, fs: &dyn FileSystem) -> io::Result<()> {
        let marker = self.path.join(ROOT_MARKER);
        if marker.is_file() {
            return Ok(());
        }
        crate::journal::create_dir_durably(fs, &self.path).map_err(io::Error::other)?;
        replace_file(fs, &self.path, ROOT_MARKER, ROOT_MARKER_TEXT.as_bytes())
    }

    /// Whether `path` is a data root (it has the marker).
    pub fn is_root(path: &Path) -> bool {
        path.join(ROOT_MARKER).is_file()
    }

    /// The root's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory of namespace `namespace`, its name checked.
    pub fn namespace_dir(&self, namespace: &str) -> Result<PathBuf, NameError> {
        validate_name(namespace)?;
        Ok(self.path.join(namespace))
    }

    /// The directory of the unit `name` of `kind` in `namespace`, both
    /// names checked.
    pub fn unit_dir(
        &self,
        namespace: &str,
        kind: UnitKind,
        name: &str,
    ) -> Result<PathBuf, NameError> {
        validate_name(name)?;
        Ok(self
            .namespace_dir(namespace)?
            .join(kind.dir_name())
            .join(name))
    }
}

/// The names of the units of `kind` in the namespace directory `ns_dir`
/// (directories with a valid name; anything else there is not a unit).
/// None yet is an empty list.
///
/// ```
/// use mini_engine::layout::{UnitKind, unit_names};
/// let ns = tempfile::tempdir()?;
/// std::fs::create_dir_all(ns.path().join("bucket/carts"))?;
/// assert_eq!(unit_names(ns.path(), UnitKind::Bucket)?, ["carts"]);
/// assert!(unit_names(ns.path(), UnitKind::Queue)?.is_empty());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn unit_names(ns_dir: &Path, kind: UnitKind) -> io::Result<Vec<String>> {
    let dir = ns_dir.join(kind.dir_name());
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if validate_name(&name).is_ok() && entry.file_type()?.is_dir() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Writes `dir/name` as `bytes`, atomically and durably: under a temporary
/// name first (synced), then renamed into place and the directory synced,
/// so a crash leaves the old file or the new one, never half of one.
pub(crate) fn replace_file(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> io::Result<()> {
    // Unique in the process too: two threads may write the same file.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    let temp = dir.join(format!("{name}.tmp-{}-{n}", std::process::id()));
    match fs.remove_file(&temp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let file = fs.create_new(&temp)?;
    file.write_all_at(bytes, 0)?;
    file.sync_data()?;
    drop(file);
    fs.rename(&temp, &dir.join(name))?;
    fs.sync_dir(dir)
}

/// Where a path lies under a data root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The root itself.
    Root,
    /// A namespace directory.
    Namespace {
        /// The namespace.
        namespace: String,
    },
    /// A namespace's directory of one kind (`<ns>/journal`, …).
    Kind {
        /// The namespace.
        namespace: String,
        /// The kind.
        kind: UnitKind,
    },
    /// A unit's directory.
    Unit {
        /// The namespace.
        namespace: String,
        /// The kind.
        kind: UnitKind,
        /// The unit's name.
        name: String,
    },
    /// A path inside a unit's directory (a state's `journal/`, a segment, a
    /// snapshot file).
    InUnit {
        /// The namespace.
        namespace: String,
        /// The kind.
        kind: UnitKind,
        /// The unit's name.
        name: String,
        /// The path below the unit's directory.
        rest: PathBuf,
    },
    /// Something mini does not write: the reason says what is wrong.
    Foreign(&'static str),
}

/// The data root `path` lies in (the nearest directory at or above it with
/// the marker) and where it lies there; `None` outside every data root.
pub fn locate(path: &Path) -> Option<(DataRoot, Location)> {
    let absolute = without_parent_dirs(&std::path::absolute(path).ok()?);
    let mut parts: Vec<String> = Vec::new();
    let mut dir = absolute.as_path();
    loop {
        if dir.is_dir() && DataRoot::is_root(dir) {
            parts.reverse();
            return Some((DataRoot::new(dir), location_of(&parts)));
        }
        let name = match dir.components().next_back() {
            Some(Component::Normal(name)) => name.to_string_lossy().into_owned(),
            _ => return None,
        };
        parts.push(name);
        dir = dir.parent()?;
    }
}

/// `path` with each `..` taking away the component before it, as a shell's
/// `cd` does: `mini verify ..` inside a journal means its kind's directory,
/// and a `..` left in would hide the position under the root.
fn without_parent_dirs(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                // Above the file system's root is the root itself.
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The location of the path `parts` below a root.
fn location_of(parts: &[String]) -> Location {
    let checked = |name: &str| validate_name(name).is_ok();
    match parts {
        [] => Location::Root,
        [ns, ..] if !checked(ns) => Location::Foreign("not a namespace: an invalid name"),
        [namespace] => Location::Namespace {
            namespace: namespace.clone(),
        },
        [namespace, kind, rest @ ..] => {
            let Some(kind) = UnitKind::from_dir_name(kind) else {
                return Location::Foreign(
                    "not a directory of journals, states, snapshots or queues",
                );
            };
            let namespace = namespace.clone();
            match rest {
                [] => Location::Kind { namespace, kind },
                [name, ..] if !checked(name) => Location::Foreign("not a unit: an invalid name"),
                [name] => Location::Unit {
                    namespace,
                    kind,
                    name: name.clone(),
                },
                [name, inner @ ..] => Location::InUnit {
                    namespace,
                    kind,
                    name: name.clone(),
                    rest: inner.iter().collect(),
                },
            }
        }
    }
}

/// What a directory outside every data root is, read from its entries
/// (which only mini writes there): a journal has segment files (or only its
/// lock), a state has `journal/` and `snapshots/`, a snapshot store has
/// snapshot files. A queue's directory looks like a state's.
pub fn standalone_kind(dir: &Path) -> Option<UnitKind> {
    if dir.join(JOURNAL_DIR).is_dir() && dir.join(SNAPSHOT_DIR).is_dir() {
        return Some(UnitKind::State);
    }
    let mut lock = false;
    let mut snapshots = false;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if parse_segment_file_name(&name).is_some() {
            return Some(UnitKind::Journal);
        }
        if parse_snapshot_file_name(&name).is_some() {
            snapshots = true;
        }
        lock |= name == LOCK_FILE;
    }
    match (snapshots, lock) {
        (true, _) => Some(UnitKind::Snapshots),
        (false, true) => Some(UnitKind::Journal),
        (false, false) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(path: &str) -> Vec<String> {
        path.split('/')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn locations_come_from_positions_not_names() {
        let unit = |ns: &str, kind, name: &str| Location::Unit {
            namespace: ns.into(),
            kind,
            name: name.into(),
        };
        assert_eq!(location_of(&parts("")), Location::Root);
        assert_eq!(
            location_of(&parts("LOCK")),
            Location::Namespace {
                namespace: "LOCK".into()
            }
        );
        assert_eq!(
            location_of(&parts("ns/journal/LOCK")),
            unit("ns", UnitKind::Journal, "LOCK")
        );
        assert_eq!(
            location_of(&parts("journal/journal/snapshots")),
            unit("journal", UnitKind::Journal, "snapshots")
        );
        assert_eq!(
            location_of(&parts("ns/state/s/journal/00000000000000000001.jsonl")),
            Location::InUnit {
                namespace: "ns".into(),
                kind: UnitKind::State,
                name: "s".into(),
                rest: PathBuf::from("journal/00000000000000000001.jsonl"),
            }
        );
        assert!(matches!(
            location_of(&parts("ns/other")),
            Location::Foreign(_)
        ));
        assert!(matches!(
            location_of(&parts(".hidden/journal/x")),
            Location::Foreign(_)
        ));
    }

    #[test]
    fn locate_finds_the_nearest_root() {
        let data = tempfile::tempdir().expect("tempdir");
        assert!(locate(data.path()).is_none() || DataRoot::is_root(data.path()));
        let root = DataRoot::create(data.path().join("root")).expect("root");
        let unit = root
            .unit_dir("ns", UnitKind::Queue, "q")
            .expect("valid names");
        std::fs::create_dir_all(&unit).expect("mkdir");
        let (found, location) = locate(&unit).expect("inside");
        assert_eq!(found.path(), std::path::absolute(root.path()).expect("abs"));
        assert!(matches!(
            location,
            Location::Unit {
                kind: UnitKind::Queue,
                ..
            }
        ));
        // `..` is taken away lexically, not left to hide the position.
        let (_, above) = locate(&unit.join("..")).expect("inside");
        assert_eq!(
            above,
            Location::Kind {
                namespace: "ns".into(),
                kind: UnitKind::Queue
            }
        );
        assert_eq!(
            without_parent_dirs(Path::new("/a/b/../../../c/./d")),
            PathBuf::from("/c/d")
        );
        // Creating it again changes nothing.
        DataRoot::create(root.path()).expect("again");
        assert_eq!(
            std::fs::read_to_string(root.path().join(ROOT_MARKER)).expect("marker"),
            ROOT_MARKER_TEXT
        );
    }

    #[test]
    fn unit_dirs_check_both_names() {
        let root = DataRoot::new("/data");
        assert!(root.unit_dir("ns", UnitKind::State, "../x").is_err());
        assert!(root.unit_dir(".ns", UnitKind::State, "x").is_err());
        assert_eq!(
            root.unit_dir("ns", UnitKind::Snapshots, "s")
                .expect("valid"),
            PathBuf::from("/data/ns/snapshot/s")
        );
    }
}
