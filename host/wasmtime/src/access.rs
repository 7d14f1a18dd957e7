//! Storage by capability: what an instance may open.
//!
//! Without a manifest an instance may open any name in its namespace (names
//! are checked, nothing escapes it). A module run with a manifest may open
//! only what its `[component.capabilities.storage]` table grants — deny by
//! default: every other open gets `access-denied`, decided before anything
//! touches the disk, so nothing is created for a refused name.

use mini_manifest::{ComponentManifest, ModuleId, StorageCapabilities, StorageKind};

use crate::bindings::types::Error;
use crate::error::quote;

/// What an instance may open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Access {
    /// Any name in its namespace, and the queues granted to it.
    #[default]
    Namespace,
    /// Only what a module's manifest grants.
    Granted {
        /// The module, named in refusals.
        module: ModuleId,
        /// Its storage table (empty when the manifest has none: nothing is
        /// granted).
        storage: Box<StorageCapabilities>,
    },
}

impl Access {
    /// The access a manifest grants its module.
    pub fn of_manifest(manifest: &ComponentManifest) -> Access {
        Access::Granted {
            module: manifest.id().clone(),
            storage: Box::new(manifest.storage().cloned().unwrap_or_default()),
        }
    }

    /// `Ok` if the instance may open the unit `name` of `kind` in its own
    /// namespace, else `access-denied` naming it.
    pub(crate) fn check(&self, kind: StorageKind, name: &str) -> Result<(), Error> {
        match self {
            Access::Namespace => Ok(()),
            Access::Granted { storage, .. } if storage.allows(kind, name) => Ok(()),
            Access::Granted { module, storage } => {
                let granted = storage.patterns(kind);
                let what = if granted.is_empty() {
                    format!("no {}", plural(kind))
                } else {
                    let list: Vec<String> = granted
                        .iter()
                        .map(|p| format!("{:?}", p.to_string()))
                        .collect();
                    format!("only the {} {}", plural(kind), list.join(", "))
                };
                Err(Error::AccessDenied(format!(
                    "{module} may not open the {} {}: its manifest grants {what}",
                    noun(kind),
                    quote(name)
                )))
            }
        }
    }
}

fn noun(kind: StorageKind) -> &'static str {
    match kind {
        StorageKind::Journal => "journal",
        StorageKind::State => "state",
        StorageKind::Snapshot => "snapshot store",
        StorageKind::Queue => "queue",
        StorageKind::Bucket => "bucket",
    }
}

fn plural(kind: StorageKind) -> &'static str {
    match kind {
        StorageKind::Journal => "journals",
        StorageKind::State => "states",
        StorageKind::Snapshot => "snapshot stores",
        StorageKind::Queue => "queues",
        StorageKind::Bucket => "buckets",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(storage: &str) -> ComponentManifest {
        ComponentManifest::from_toml_str(&format!(
            "[component]\nname = \"billing\"\nversion = \"1.2.0\"\n{storage}"
        ))
        .expect("manifest")
    }

    #[test]
    fn grants_by_kind_and_pattern_deny_the_rest() {
        let access = Access::of_manifest(&manifest(
            "[component.capabilities.storage]\njournals = [\"events\", \"audit-*\"]\n",
        ));
        assert!(access.check(StorageKind::Journal, "events").is_ok());
        assert!(access.check(StorageKind::Journal, "audit-7").is_ok());
        let Err(Error::AccessDenied(why)) = access.check(StorageKind::Journal, "other") else {
            panic!("not denied");
        };
        assert!(
            why.contains("billing@1.2.0") && why.contains("\"other\""),
            "{why}"
        );
        assert!(why.contains("\"audit-*\""), "{why}");
        let Err(Error::AccessDenied(why)) = access.check(StorageKind::State, "events") else {
            panic!("not denied");
        };
        assert!(why.contains("grants no states"), "{why}");
    }

    #[test]
    fn a_manifest_without_a_storage_table_grants_nothing() {
        let access = Access::of_manifest(&manifest(""));
        for kind in [
            StorageKind::Journal,
            StorageKind::State,
            StorageKind::Snapshot,
            StorageKind::Queue,
        ] {
            assert!(matches!(
                access.check(kind, "x"),
                Err(Error::AccessDenied(_))
            ));
        }
        assert!(Access::Namespace.check(StorageKind::Queue, "x").is_ok());
    }
}
