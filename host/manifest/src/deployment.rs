//! Deployment specs: Arcella's `*.deployment.toml`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::ManifestError;
use crate::module_id::ModuleId;

/// Where and how many instances of a module to run, from a `[deployment]`
/// table in Arcella's format:
///
/// ```toml
/// [deployment]
/// module_id = "billing@1.2.0"      # or { name = "billing", version = "1.2.0" }
/// group = "default"
/// replicas = 2
///
/// [deployment.overrides]
/// isolation = "worker"
///
/// [deployment.overrides.resources]
/// memory_mb = 64
/// ```
///
/// Unknown fields are accepted and ignored (Arcella's own may grow), except
/// in mini's own table `[deployment.mini]` ([`MiniDeployment`]), where a
/// misspelled field is an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentSpec {
    module_id: ModuleId,
    group: String,
    replicas: u32,
    overrides: DeploymentOverrides,
    mini: MiniDeployment,
}

/// `[deployment.mini]`: how mini starts each instance of a `wasi:cli/command`
/// module (Arcella's spec has no arguments for it).
///
/// ```toml
/// [deployment.mini]
/// args = ["100"]
/// env = { LOG = "debug" }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MiniDeployment {
    /// The arguments each instance gets (after its name).
    pub args: Vec<String>,
    /// Environment variables each instance gets (mini adds
    /// `MINI_REPLICA`, the instance's number from 0, and `MINI_REPLICAS`).
    pub env: BTreeMap<String, String>,
}

/// `[deployment.overrides]`: what this deployment changes of the module's
/// defaults. Every field left out keeps the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct DeploymentOverrides {
    /// Where the module runs.
    pub isolation: Option<IsolationMode>,
    /// Whether the module is trusted (Arcella allows it only with `main`).
    pub trusted: Option<bool>,
    /// Whether the module runs as async WebAssembly (`async` in the file).
    #[serde(rename = "async")]
    pub is_async: Option<bool>,
    /// Lifecycle entry points.
    pub startup: Option<StartupConfig>,
    /// Resource limits.
    pub resources: Option<ResourceRequirements>,
}

/// Arcella's execution isolation mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IsolationMode {
    /// `"main"`: in the runtime's own process.
    Main,
    /// `"worker"`: in a separate worker process.
    Worker,
}

/// `[deployment.overrides.startup]`: lifecycle entry points.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct StartupConfig {
    /// The function called when the module starts.
    pub entrypoint: Option<String>,
    /// The function called on a graceful shutdown.
    pub shutdown: Option<String>,
    /// Startup timeout in seconds (`0`: none).
    pub timeout_seconds: Option<u32>,
}

/// `[deployment.overrides.resources]`: resource limits of the deployment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ResourceRequirements {
    /// Most memory, in MiB; at least 1 when given.
    pub memory_mb: Option<u32>,
    /// Fuel units; at least 1 when given.
    pub fuel: Option<u64>,
    /// Relative CPU weight.
    pub cpu_shares: Option<u32>,
}

impl DeploymentSpec {
    /// Reads a spec from TOML text: `module_id` must be a valid module id,
    /// `group` non-empty, `replicas` at least 1, and
    /// `overrides.resources.memory_mb` and `.fuel` at least 1 when given.
    pub fn from_toml_str(text: &str) -> Result<DeploymentSpec, ManifestError> {
        let file: DeploymentFile =
            toml::from_str(text).map_err(|e| ManifestError::from_toml(&e, text))?;
        let raw = file
            .deployment
            .ok_or_else(|| ManifestError::parse("no [deployment] table"))?;
        if raw.group.is_empty() {
            return Err(ManifestError::invalid("deployment.group must not be empty"));
        }
        if raw.replicas == 0 {
            return Err(ManifestError::invalid(
                "deployment.replicas must be at least 1 (got 0)",
            ));
        }
        if let Some(resources) = &raw.overrides.resources {
            if resources.memory_mb == Some(0) {
                return Err(ManifestError::invalid(
                    "deployment.overrides.resources.memory_mb must be at least 1 (got 0)",
                ));
            }
            if resources.fuel == Some(0) {
                return Err(ManifestError::invalid(
                    "deployment.overrides.resources.fuel must be at least 1 (got 0)",
                ));
            }
        }
        Ok(DeploymentSpec {
            module_id: raw.module_id,
            group: raw.group,
            replicas: raw.replicas,
            overrides: raw.overrides,
            mini: raw.mini,
        })
    }

    /// Reads a spec from a file; every error names the file.
    pub fn from_file(path: &Path) -> Result<DeploymentSpec, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str(&text).map_err(|e| e.in_file(path))
    }

    /// The deployment's id, from its file name: `web` for
    /// `.../web.deployment.toml`; `None` for other file names.
    pub fn deployment_id_of(path: &Path) -> Option<String> {
        let id = path
            .file_name()?
            .to_str()?
            .strip_suffix(".deployment.toml")?;
        (!id.is_empty()).then(|| id.to_string())
    }

    /// The module to deploy.
    pub fn module_id(&self) -> &ModuleId {
        &self.module_id
    }

    /// The worker group the instances run in.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// How many instances to run (at least 1).
    pub fn replicas(&self) -> u32 {
        self.replicas
    }

    /// What this deployment overrides.
    pub fn overrides(&self) -> &DeploymentOverrides {
        &self.overrides
    }

    /// mini's own settings: the instances' arguments and environment.
    pub fn mini(&self) -> &MiniDeployment {
        &self.mini
    }
}

#[derive(Deserialize)]
struct DeploymentFile {
    deployment: Option<RawDeployment>,
}

#[derive(Deserialize)]
struct RawDeployment {
    module_id: ModuleId,
    group: String,
    replicas: u32,
    #[serde(default)]
    overrides: DeploymentOverrides,
    #[serde(default)]
    mini: MiniDeployment,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_id_comes_from_the_file_name() {
        let id = |p: &str| DeploymentSpec::deployment_id_of(Path::new(p));
        assert_eq!(id("web.deployment.toml").as_deref(), Some("web"));
        assert_eq!(
            id("/etc/arcella/api-v2.deployment.toml").as_deref(),
            Some("api-v2")
        );
        assert_eq!(id(".deployment.toml"), None);
        assert_eq!(id("web.component.toml"), None);
        assert_eq!(id(""), None);
    }
}
