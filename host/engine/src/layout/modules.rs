//! Which module versions opened a namespace, and when: `<ns>/.modules.json`.
//!
//! A platform names a namespace after a module, so every version of the
//! module opens the same data (an upgrade keeps its state). The record tells
//! an operator which versions did, in one small JSON file that is rewritten
//! atomically (temporary file, fdatasync, rename, directory fsync) under a
//! lock, so concurrent hosts never leave it half written.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{MODULES_FILE, MODULES_LOCK};
use crate::fs::{FileSystem, StdFs};

/// One module version that opened a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleRecord {
    /// The module, as the host names it (`name@version`).
    pub module: String,
    /// When it first opened the namespace (ms since the Unix epoch).
    pub first_opened_ms: u64,
    /// When it last did.
    pub last_opened_ms: u64,
    /// How many times (runs of a host) it did.
    pub opens: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModulesFile {
    mini: String,
    version: u32,
    modules: Vec<ModuleRecord>,
}

/// Why the module record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ModulesError {
    /// Reading or writing it failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The file is not a module record (left as it is).
    #[error("{} is damaged: {reason}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> ModulesError + '_ {
    move |source| ModulesError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The module versions that opened the namespace in `ns_dir`, oldest first
/// (none if it has no record).
pub fn modules_of(ns_dir: &Path) -> Result<Vec<ModuleRecord>, ModulesError> {
    let path = ns_dir.join(MODULES_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(&path)(e)),
    };
    let file: ModulesFile = serde_json::from_str(&text).map_err(|e| ModulesError::Damaged {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if file.mini != "modules" || file.version != 1 {
        return Err(ModulesError::Damaged {
            path,
            reason: format!("not a version 1 module record ({:?})", file.mini),
        });
    }
    Ok(file.modules)
}

/// Records that `module` opened the namespace in `ns_dir` at `now_ms`
/// (creating the directory, durably, if needed). Returns the record as it
/// is now. A damaged record is left alone and reported.
pub fn record_module(
    ns_dir: &Path,
    module: &str,
    now_ms: u64,
) -> Result<ModuleRecord, ModulesError> {
    let fs = StdFs;
    crate::journal::create_dir_durably(&fs, ns_dir).map_err(|e| ModulesError::Io {
        path: ns_dir.to_path_buf(),
        source: io::Error::other(e),
    })?;
    let lock_path = ns_dir.join(MODULES_LOCK);
    // Held only for a read and a rewrite of a small file.
    let _lock = fs.lock(&lock_path).map_err(io_error(&lock_path))?;
    let mut modules = modules_of(ns_dir)?;
    let record = match modules.iter_mut().find(|r| r.module == module) {
        Some(record) => {
            record.last_opened_ms = record.last_opened_ms.max(now_ms);
            record.opens = record.opens.saturating_add(1);
            record.clone()
        }
        None => {
            let record = ModuleRecord {
                module: module.to_owned(),
                first_opened_ms: now_ms,
                last_opened_ms: now_ms,
                opens: 1,
            };
            modules.push(record.clone());
            record
        }
    };
    let file = ModulesFile {
        mini: "modules".into(),
        version: 1,
        modules,
    };
    let mut text = serde_json::to_string(&file).map_err(|e| ModulesError::Damaged {
        path: ns_dir.join(MODULES_FILE),
        reason: e.to_string(),
    })?;
    text.push('\n');
    super::replace_file(&fs, ns_dir, MODULES_FILE, text.as_bytes())
        .map_err(io_error(&ns_dir.join(MODULES_FILE)))?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_each_version_once_with_first_and_last_open() {
        let data = tempfile::tempdir().expect("tempdir");
        let ns = data.path().join("billing");
        assert!(modules_of(&ns).expect("none").is_empty());
        record_module(&ns, "billing@1.2.0", 10).expect("record");
        record_module(&ns, "billing@1.3.0", 20).expect("record");
        let again = record_module(&ns, "billing@1.2.0", 30).expect("record");
        assert_eq!(
            (again.first_opened_ms, again.last_opened_ms, again.opens),
            (10, 30, 2)
        );
        let all = modules_of(&ns).expect("read");
        let names: Vec<&str> = all.iter().map(|r| r.module.as_str()).collect();
        assert_eq!(names, ["billing@1.2.0", "billing@1.3.0"]);
    }

    #[test]
    fn a_damaged_record_is_reported_and_left_alone() {
        let data = tempfile::tempdir().expect("tempdir");
        std::fs::write(data.path().join(MODULES_FILE), "{not json").expect("write");
        assert!(matches!(
            record_module(data.path(), "a@1.0.0", 1),
            Err(ModulesError::Damaged { .. })
        ));
        assert_eq!(
            std::fs::read_to_string(data.path().join(MODULES_FILE)).expect("read"),
            "{not json"
        );
    }
}
