//! What a path in a data directory is (a journal, a state directory, a
//! snapshot directory, a snapshot file), and the unlocked reads of snapshot
//! files and segment listings that the operator's tools share.
//!
//! ```text
//! <data>/<ns>/journal/<name>/        a journal: segments 00000000000000000001.jsonl …
//! <data>/<ns>/state/<name>/          a state: journal/ and snapshots/
//! <data>/<ns>/snapshot/<name>/       a snapshot directory: snapshot-<seq>.json …
//! ```

use std::io;
use std::path::{Path, PathBuf};

use mini_engine::lock::LOCK_FILE;
use mini_engine::segment::parse_segment_file_name;
use mini_engine::snapshot::{
    SnapshotDamage, TEMP_PREFIX, decode_snapshot, parse_snapshot_file_name,
};
use mini_engine::state::{JOURNAL_DIR, SNAPSHOT_DIR};

/// The directory of a namespace that holds its journals.
pub const NS_JOURNALS: &str = "journal";
/// The directory of a namespace that holds its states.
pub const NS_STATES: &str = "state";
/// The directory of a namespace that holds its snapshot directories (the
/// `snapshot` interface).
pub const NS_SNAPSHOTS: &str = "snapshot";
/// The directory of a namespace that holds its queues.
pub const NS_QUEUES: &str = "queue";

/// The directory `<data>/<ns>/<sub>/<name>` (`sub` one of the `NS_*`
/// directories, which are also what they hold: journal, state, …), with
/// both names checked; an error unless it exists.
pub fn named_dir(data: &Path, ns: &str, sub: &str, name: &str) -> anyhow::Result<PathBuf> {
    use anyhow::Context;
    for n in [ns, name] {
        mini_engine::name::validate_name(n).with_context(|| format!("invalid name {n:?}"))?;
    }
    let dir = data.join(ns).join(sub).join(name);
    if !dir.is_dir() {
        anyhow::bail!(
            "no {sub} {name:?} in namespace {ns:?}: {} does not exist",
            dir.display()
        );
    }
    Ok(dir)
}

/// What a path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A journal directory (segment files, or only its lock file).
    Journal,
    /// A state directory: `journal/` (a journal) and `snapshots/`.
    State,
    /// A directory of snapshot files (`snapshot-<seq>.json`).
    Snapshots,
    /// A file that is not a journal segment: read as a snapshot file.
    SnapshotFile,
    /// A journal segment file (its directory is the journal).
    SegmentFile,
    /// None of these (missing, or a directory that may hold some below it).
    Other,
}

/// What is in one directory, by file name.
#[derive(Debug, Default)]
struct Listing {
    segments: bool,
    snapshots: bool,
    lock: bool,
}

fn listing(dir: &Path) -> Listing {
    let mut out = Listing::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if parse_segment_file_name(&name).is_some() {
            out.segments = true;
        } else if parse_snapshot_file_name(&name).is_some()
            || name
                .strip_prefix(TEMP_PREFIX)
                .is_some_and(|rest| parse_snapshot_file_name(rest).is_some())
        {
            out.snapshots = true;
        } else if name == LOCK_FILE {
            out.lock = true;
        }
    }
    out
}

fn file_name_is(path: &Path, name: &str) -> bool {
    path.file_name().is_some_and(|n| n == name)
}

/// What `path` is, from its name and the names of its entries (contents are
/// not read).
///
/// A directory with segment files is a journal; one with snapshot files is a
/// snapshot directory; one holding only a lock file is a snapshot directory
/// if it is named `snapshots` or lies in a namespace's `snapshot/`, else a
/// journal; a directory whose `journal/` is a journal and that has a
/// `snapshots/` directory is a state directory.
pub fn kind_of(path: &Path) -> Kind {
    if path.is_file() {
        let segment = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_segment_file_name)
            .is_some();
        return if segment {
            Kind::SegmentFile
        } else {
            Kind::SnapshotFile
        };
    }
    if !path.is_dir() {
        return Kind::Other;
    }
    let journal = path.join(JOURNAL_DIR);
    if path.join(SNAPSHOT_DIR).is_dir() && kind_of(&journal) == Kind::Journal {
        return Kind::State;
    }
    let found = listing(path);
    if found.segments {
        Kind::Journal
    } else if found.snapshots {
        Kind::Snapshots
    } else if found.lock {
        let in_snapshot_ns = path
            .parent()
            .is_some_and(|parent| file_name_is(parent, NS_SNAPSHOTS));
        if file_name_is(path, SNAPSHOT_DIR) || in_snapshot_ns {
            Kind::Snapshots
        } else {
            Kind::Journal
        }
    } else {
        Kind::Other
    }
}

/// The first sequence numbers of the segment files in the journal `dir`,
/// ascending.
pub fn segment_firsts(dir: &Path) -> io::Result<Vec<u64>> {
    let mut firsts: Vec<u64> = std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| parse_segment_file_name(&e.file_name().to_string_lossy()))
        .collect();
    firsts.sort_unstable();
    Ok(firsts)
}

/// The snapshot files in `dir`, ascending by the seq in their names, and the
/// number of temporary files (snapshots being written, or left by a crash).
pub fn snapshot_files(dir: &Path) -> io::Result<(Vec<(u64, PathBuf)>, usize)> {
    let mut files = Vec::new();
    let mut temporary = 0;
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(seq) = parse_snapshot_file_name(&name) {
            files.push((seq, entry.path()));
        } else if name.starts_with(TEMP_PREFIX) {
            temporary += 1;
        }
    }
    files.sort();
    Ok((files, temporary))
}

/// Reads and checks one snapshot file: its line, its crc and, if its name is
/// a snapshot file name, that the seq inside matches the name. Returns the
/// seq and the state (JSON text, exactly as stored).
pub fn read_snapshot(path: &Path) -> Result<(u64, String), SnapshotDamage> {
    let bytes = std::fs::read(path).map_err(|e| SnapshotDamage::Unreadable(e.to_string()))?;
    let (seq, state) = decode_snapshot(&bytes)?;
    let named = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(parse_snapshot_file_name);
    match named {
        Some(name) if name != seq => Err(SnapshotDamage::SeqMismatch { name, content: seq }),
        _ => Ok((seq, state)),
    }
}

/// The one JSON line that shows a snapshot: `{"seq":N,"state":<state>}`
/// (`state` is one JSON value on one line, put in as stored).
pub fn snapshot_line(seq: u64, state: &str) -> String {
    format!("{{\"seq\":{seq},\"state\":{state}}}")
}
