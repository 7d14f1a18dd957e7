//! One way to say which data a command is for, the same in `cat`, `state`,
//! `queue`, `kv` and `verify`: a PATH, or NAMESPACE NAME in the data directory
//! `--data DIR` (default `./mini-data`). One word is a path; two are a
//! namespace and a name. Where ids follow (`queue requeue`, `queue purge`),
//! a path is a word with a `/` in it or starting with `.` (`./jobs`), which
//! no namespace can be (the engine refuses such names).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::ValueEnum;
use mini_engine::layout::{DataRoot, UnitKind};
use mini_engine::state::{JOURNAL_DIR, SNAPSHOT_DIR};

use crate::exit::usage;
use crate::layout::Target;

/// A kind of unit, as the command line names it (the directory names of a
/// namespace, [`UnitKind::dir_name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// A journal (`<ns>/journal/<name>`).
    Journal,
    /// A state (`<ns>/state/<name>`).
    State,
    /// A snapshot store (`<ns>/snapshot/<name>`).
    Snapshot,
    /// A queue (`<ns>/queue/<name>`).
    Queue,
    /// A key-value bucket (`<ns>/bucket/<name>`).
    Bucket,
}

impl From<Kind> for UnitKind {
    fn from(kind: Kind) -> UnitKind {
        match kind {
            Kind::Journal => UnitKind::Journal,
            Kind::State => UnitKind::State,
            Kind::Snapshot => UnitKind::Snapshots,
            Kind::Queue => UnitKind::Queue,
            Kind::Bucket => UnitKind::Bucket,
        }
    }
}

/// What the words of an address name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// Nothing: the whole data directory.
    Data(PathBuf),
    /// A path.
    Path(PathBuf),
    /// A unit's directory, found from NAMESPACE NAME.
    Named(PathBuf),
}

/// The text of a word that must be a name.
fn name(word: &OsString) -> Result<&str> {
    match word.to_str() {
        Some(name) => Ok(name),
        None => usage!("{} is not a valid name (not UTF-8)", word.to_string_lossy()),
    }
}

/// The directory of unit `name` of `kind` (or of the one kind that has a
/// unit so named) in namespace `ns` of the data root `data`; an error
/// unless it exists.
pub fn named_unit(data: &Path, ns: &str, kind: Option<UnitKind>, name: &str) -> Result<PathBuf> {
    let root = DataRoot::new(data);
    if let Err(e) = root.namespace_dir(ns) {
        usage!("invalid namespace {ns:?}: {e}");
    }
    let kinds = match kind {
        Some(kind) => vec![kind],
        None => UnitKind::ALL.to_vec(),
    };
    let mut found = Vec::new();
    for kind in &kinds {
        let dir = match root.unit_dir(ns, *kind, name) {
            Ok(dir) => dir,
            Err(e) => usage!("invalid name {name:?}: {e}"),
        };
        if dir.is_dir() {
            found.push((*kind, dir));
        }
    }
    match (found.len(), kind) {
        (1, _) => Ok(found.remove(0).1),
        (0, Some(kind)) => Err(anyhow::anyhow!(
            "no {kind} {name:?} in namespace {ns:?}: {} does not exist",
            root.path()
                .join(ns)
                .join(kind.dir_name())
                .join(name)
                .display()
        )),
        (0, None) => Err(anyhow::anyhow!(
            "nothing named {name:?} in namespace {ns:?} of {}",
            data.display()
        )),
        _ => {
            let kinds: Vec<&str> = found.iter().map(|(k, _)| k.noun()).collect();
            usage!(
                "{ns}/{name} is a {}: say which with --kind",
                kinds.join(" and a ")
            )
        }
    }
}

/// The address the positional `words` give: none (the data directory),
/// PATH, or NAMESPACE NAME (of `kind`, or of whichever kind has it).
pub fn resolve(words: &[OsString], data: &Path, kind: Option<UnitKind>) -> Result<Address> {
    match words {
        [] => Ok(Address::Data(data.to_path_buf())),
        [path] => Ok(Address::Path(PathBuf::from(path))),
        [ns, unit] => Ok(Address::Named(named_unit(
            data,
            name(ns)?,
            kind,
            name(unit)?,
        )?)),
        _ => usage!("give NAMESPACE NAME (with --data DIR), or PATH"),
    }
}

/// The unit's directory that `words` give (PATH, or NAMESPACE NAME of
/// `kind`); `what` says what is wanted in the usage error.
pub fn unit(words: &[OsString], data: &Path, kind: UnitKind, what: &str) -> Result<PathBuf> {
    match resolve(words, data, Some(kind))? {
        Address::Path(path) | Address::Named(path) => Ok(path),
        Address::Data(_) => usage!("give {what}: NAMESPACE NAME (with --data DIR), or PATH"),
    }
}

/// Whether `word` can only be a path: it has a `/` or starts with `.`, which
/// no namespace name can.
pub fn is_path(word: &OsString) -> bool {
    let text = word.to_string_lossy();
    text.contains('/') || text.contains(std::path::MAIN_SEPARATOR) || text.starts_with('.')
}

/// Splits `words` into the address (a path, or NAMESPACE NAME) and the words
/// after it.
pub fn split_target(words: &[OsString]) -> Result<(&[OsString], &[OsString])> {
    match words {
        [first, ..] if is_path(first) => Ok(words.split_at(1)),
        [_, _, ..] => Ok(words.split_at(2)),
        _ => usage!("give NAMESPACE NAME (with --data DIR) or PATH, then the ids"),
    }
}

/// The directory of the unit of `kind` laid out as a state (a queue, a
/// bucket: `journal/` and `snapshots/`) that `words` (PATH, or NAMESPACE
/// NAME in `data`) name, checked.
pub fn state_shaped_dir(words: &[OsString], data: &Path, kind: UnitKind) -> Result<PathBuf> {
    let noun = kind.noun();
    match resolve(words, data, Some(kind))? {
        Address::Path(dir) => given_state_shaped_dir(&dir, kind),
        Address::Named(dir) => {
            check_state_shaped_dir(&dir, kind)?;
            Ok(dir)
        }
        Address::Data(_) => {
            usage!("give the {noun}: NAMESPACE NAME (with --data DIR), or PATH")
        }
    }
}

/// A directory of a unit of `kind` given as a path: one by its place in a
/// data root, or, outside every root, a directory with a state's entries.
pub fn given_state_shaped_dir(dir: &Path, kind: UnitKind) -> Result<PathBuf> {
    let noun = kind.noun();
    let resolved = crate::layout::resolve(dir);
    match (resolved.target, resolved.in_root) {
        (Target::Unit(found), _) if found == kind => {}
        // Outside a root such a unit looks like a state: its records tell
        // (`inspect` refuses records that are not of its kind).
        (Target::Unit(UnitKind::State), false) => {}
        (Target::Missing, _) => bail!("{} does not exist", dir.display()),
        (Target::Unit(found), true) => usage!(
            "{} is not a {noun} directory: it is a {found} in its data directory",
            dir.display()
        ),
        (_, true) => usage!("{} is not a {noun} directory", dir.display()),
        // What is missing is said below.
        (_, false) => {}
    }
    check_state_shaped_dir(dir, kind)?;
    Ok(dir.to_path_buf())
}

/// Fails, saying what is missing, unless `dir` holds the `journal/` and
/// `snapshots/` of a unit of `kind` (made both when it is first opened).
fn check_state_shaped_dir(dir: &Path, kind: UnitKind) -> Result<()> {
    if !dir.is_dir() {
        bail!("{} does not exist", dir.display());
    }
    for sub in [JOURNAL_DIR, SNAPSHOT_DIR] {
        if !dir.join(sub).is_dir() {
            usage!(
                "{} is not a {} directory (it has no {sub}/ directory)",
                dir.display(),
                kind.noun()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn a_word_with_a_slash_is_a_path() {
        let w = words(&["./jobs", "1", "2"]);
        let (target, ids) = split_target(&w).expect("split");
        assert_eq!((target.len(), ids.len()), (1, 2));
        let w = words(&["app", "jobs", "1"]);
        let (target, ids) = split_target(&w).expect("split");
        assert_eq!((target.len(), ids.len()), (2, 1));
        assert!(split_target(&words(&["app"])).is_err());
        assert_eq!(
            resolve(&words(&["some/dir"]), Path::new("d"), None).expect("path"),
            Address::Path(PathBuf::from("some/dir"))
        );
        assert_eq!(
            resolve(&[], Path::new("d"), None).expect("data"),
            Address::Data(PathBuf::from("d"))
        );
        let bad = resolve(&words(&["..", "x"]), Path::new("d"), None).expect_err("invalid");
        assert_eq!(crate::exit::code_of(&bad), crate::exit::USAGE);
    }
}
