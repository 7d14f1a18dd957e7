//! One way to say which data a command is for, the same in `cat`, `state`,
//! `queue`, `kv` and `verify`: a PATH, or NAMESPACE NAME in the data directory
//! `--data DIR` (default `./mini-data`). One word is a path; two are a
//! namespace and a name. Where ids follow (`queue requeue`, `queue purge`),
//! a path is a word with a `/` in it or starting with `.` (`./jobs`), which
//! no namespace can be (the engine refuses such names).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::ValueEnum;
use mini_engine::layout::{DataRoot, UnitKind};

use crate::exit::usage;

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
