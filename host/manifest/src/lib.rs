//! Module identity and manifests in Arcella's model, with mini's storage
//! capabilities (no wasmtime).
//!
//! * [`ModuleId`]: `name@version` (name `^[a-zA-Z0-9_-]+$`, at most 128
//!   characters; version strict `major.minor.patch`).
//! * [`ComponentManifest`]: Arcella's `<stem>.component.toml`, read as it is,
//!   plus mini's own `[component.capabilities.storage]` table
//!   ([`StorageCapabilities`]): what the module may open, by kind, exact
//!   names or `prefix*` ([`NamePattern`]), the shared queues it is granted and
//!   whose they are, its quota and limits. Deny by default.
//! * [`DeploymentSpec`]: Arcella's `*.deployment.toml`.
//!
//! A module's storage namespace is its name, so a new version of a module
//! opens the data the old one wrote.
//!
//! ```
//! use mini_manifest::{ComponentManifest, StorageKind};
//!
//! let manifest = ComponentManifest::from_toml_str(r#"
//!     [component]
//!     name = "billing"
//!     version = "1.2.0"
//!     imports = ["mini:storage/store@0.2.0", "mini:storage/queue@0.2.0"]
//!
//!     [component.capabilities.storage]
//!     journals = ["invoices", "audit-*"]
//!     shared_queues = [{ name = "jobs", module = "scheduler" }]
//!     quota_mb = 512
//! "#)?;
//! assert_eq!(manifest.id().to_string(), "billing@1.2.0");
//! assert_eq!(manifest.id().name(), "billing"); // the storage namespace
//!
//! let storage = manifest.storage().ok_or("no storage table")?;
//! assert!(storage.allows(StorageKind::Journal, "invoices"));
//! assert!(storage.allows(StorageKind::Journal, "audit-2025"));
//! assert!(!storage.allows(StorageKind::Journal, "payroll"));
//! assert!(!storage.allows(StorageKind::Queue, "invoices"));
//! assert!(storage.allows_shared_queue("scheduler", "jobs"));
//! assert_eq!(storage.quota_mb, Some(512));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod component;
pub mod deployment;
pub mod error;
pub mod module_id;
pub mod pattern;
pub mod storage;

pub use component::{Capabilities, ComponentManifest, Resources};
pub use deployment::{
    DeploymentOverrides, DeploymentSpec, IsolationMode, MiniDeployment, ResourceRequirements,
    StartupConfig,
};
pub use error::{ManifestError, ModuleIdError, PatternError, SharedQueueError};
pub use module_id::{MAX_MODULE_NAME_LEN, ModuleId, Version, validate_module_name};
pub use pattern::{MAX_NAME_LEN, NamePattern};
pub use storage::{SharedQueue, StorageCapabilities, StorageKind};
