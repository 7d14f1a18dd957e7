//! Component manifests: Arcella's `<stem>.component.toml`, with mini's
//! `[component.capabilities.storage]` table.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::ManifestError;
use crate::module_id::ModuleId;
use crate::storage::StorageCapabilities;

/// A component manifest: what a module is (`name@version`), what it
/// provides and needs, and what it may do.
///
/// Read from a `[component]` table in Arcella's format:
///
/// ```toml
/// [component]
/// name = "billing"
/// version = "1.2.0"
/// description = "Invoices"
/// exports = ["billing:api/invoices@1.0.0"]
/// imports = ["mini:storage/store@0.2.0"]   # or a table keyed by interface
///
/// [component.capabilities]
/// wasi = ["wasi:clocks"]
///
/// [component.capabilities.resources]
/// memory_max = 67108864
///
/// [component.capabilities.storage]          # mini's own table
/// journals = ["invoices"]
/// ```
///
/// Fields of Arcella's that mini does not use (`security`, and any that
/// Arcella adds later) are accepted and ignored; unknown fields inside
/// mini's `storage` table are an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentManifest {
    id: ModuleId,
    description: Option<String>,
    exports: Vec<String>,
    imports: Vec<String>,
    capabilities: Capabilities,
}

/// `[component.capabilities]`: what the module needs from its environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Capabilities {
    /// WASI interfaces the module needs (e.g. `"wasi:clocks"`), as written.
    pub wasi: Vec<String>,
    /// File system paths the module needs, as written (opaque to mini).
    pub filesystem: Vec<String>,
    /// Network access the module needs, as written (opaque to mini).
    pub network: Vec<String>,
    /// Environment variables the module needs.
    pub environment: Vec<String>,
    /// Memory and CPU limits.
    pub resources: Resources,
    /// mini's `[component.capabilities.storage]`: what the module may open
    /// and its limits. `None` when the table is absent: no storage at all.
    pub storage: Option<StorageCapabilities>,
}

/// `[component.capabilities.resources]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Resources {
    /// Most linear memory the module may use, in bytes.
    pub memory_max: Option<u64>,
    /// Relative CPU weight (as Linux CFS shares).
    pub cpu_shares: Option<u32>,
}

impl ComponentManifest {
    /// Reads a manifest from TOML text.
    pub fn from_toml_str(text: &str) -> Result<ComponentManifest, ManifestError> {
        let file: ComponentFile =
            toml::from_str(text).map_err(|e| ManifestError::from_toml(&e, text))?;
        let raw = file
            .component
            .ok_or_else(|| ManifestError::parse("no [component] table"))?;
        let id = ModuleId::new(raw.name, &raw.version)
            .map_err(|source| ManifestError::InvalidId { path: None, source })?;
        Ok(ComponentManifest {
            id,
            description: raw.description,
            exports: raw.exports.0,
            imports: raw.imports.0,
            capabilities: raw.capabilities,
        })
    }

    /// Reads a manifest from a file; every error names the file.
    pub fn from_file(path: &Path) -> Result<ComponentManifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str(&text).map_err(|e| e.in_file(path))
    }

    /// Where the manifest of a component lives: next to it, named after its
    /// stem (`dir/billing.wasm` → `dir/billing.component.toml`).
    pub fn path_next_to(component: &Path) -> PathBuf {
        let mut name: OsString = component.file_stem().unwrap_or_default().to_owned();
        name.push(".component.toml");
        component.with_file_name(name)
    }

    /// The module's identity, `name@version`.
    pub fn id(&self) -> &ModuleId {
        &self.id
    }

    /// The short description, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Interfaces the module provides, in the order written.
    pub fn exports(&self) -> &[String] {
        &self.exports
    }

    /// Interfaces the module requires, in the order written.
    pub fn imports(&self) -> &[String] {
        &self.imports
    }

    /// The whole `[component.capabilities]` table.
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// mini's storage grants, if the manifest has a
    /// `[component.capabilities.storage]` table.
    pub fn storage(&self) -> Option<&StorageCapabilities> {
        self.capabilities.storage.as_ref()
    }

    /// `capabilities.resources.memory_max`: the memory limit in bytes.
    pub fn memory_max(&self) -> Option<u64> {
        self.capabilities.resources.memory_max
    }

    /// `capabilities.resources.cpu_shares`.
    pub fn cpu_shares(&self) -> Option<u32> {
        self.capabilities.resources.cpu_shares
    }
}

#[derive(Deserialize)]
struct ComponentFile {
    component: Option<RawComponent>,
}

#[derive(Deserialize)]
struct RawComponent {
    name: String,
    version: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    exports: InterfaceNames,
    #[serde(default)]
    imports: InterfaceNames,
    #[serde(default)]
    capabilities: Capabilities,
}

/// Interface names, written either as an array of names or, as Arcella
/// stores them, as a table keyed by name (the values are ignored).
#[derive(Default)]
struct InterfaceNames(Vec<String>);

impl<'de> Deserialize<'de> for InterfaceNames {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(InterfaceNamesVisitor)
    }
}

struct InterfaceNamesVisitor;

impl<'de> Visitor<'de> for InterfaceNamesVisitor {
    type Value = InterfaceNames;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of interface names or a table keyed by interface name")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<InterfaceNames, A::Error> {
        let mut names = Vec::new();
        while let Some(name) = seq.next_element::<String>()? {
            names.push(name);
        }
        Ok(InterfaceNames(names))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<InterfaceNames, A::Error> {
        let mut names = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            map.next_value::<de::IgnoredAny>()?;
            names.push(name);
        }
        Ok(InterfaceNames(names))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_path_is_next_to_the_component() {
        assert_eq!(
            ComponentManifest::path_next_to(Path::new("dir/billing.wasm")),
            PathBuf::from("dir/billing.component.toml")
        );
        assert_eq!(
            ComponentManifest::path_next_to(Path::new("billing.wasm")),
            PathBuf::from("billing.component.toml")
        );
        assert_eq!(
            ComponentManifest::path_next_to(Path::new("/a/b/logger")),
            PathBuf::from("/a/b/logger.component.toml")
        );
    }

    #[test]
    fn minimal_manifest_has_no_storage() {
        let m =
            ComponentManifest::from_toml_str("[component]\nname = \"a\"\nversion = \"0.0.1\"\n")
                .unwrap();
        assert_eq!(m.id().to_string(), "a@0.0.1");
        assert!(m.storage().is_none());
        assert!(m.exports().is_empty() && m.imports().is_empty());
        assert_eq!(m.memory_max(), None);
        assert_eq!(m.description(), None);
    }
}
