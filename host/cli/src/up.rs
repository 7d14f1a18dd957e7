//! `mini up`: runs a set of modules from Arcella deployment specs in one
//! host process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use mini_host::runner::{RunError, RunnerConfig};
use mini_host::{MiniCtxBuilder, StopSignal};
use mini_manifest::{ComponentManifest, DeploymentSpec, ModuleId};

use crate::instance::{self, Instance, ctx_error};
use crate::run::{run_limits, wasi_ctx};

/// Run the modules that the deployment specs in DIR deploy, in one process.
///
/// DIR holds Arcella's files as they are: deployment specs
/// (`<id>.deployment.toml`: `module_id`, `group`, `replicas`, `overrides`)
/// and component manifests (`<stem>.component.toml`), each with its
/// component `<stem>.wasm` next to it (or in `--components`). Each replica
/// is an instance of its module (a `wasi:cli/command`), run with the
/// module's grants and limits (the spec's `overrides.resources` —
/// `memory_mb`, `fuel` — override the manifest's) in the module's namespace.
/// mini's own table `[deployment.mini]` gives the instances' `args` and
/// `env`; each also gets `MINI_REPLICA` (0, 1, …) and `MINI_REPLICAS`.
///
/// Replicas of a module share its namespace: its journals (one handle, one
/// sequence: their appends interleave), its queues and the queues granted
/// to it (competing consumers: each message goes to one of them at a time).
/// A state or snapshot store has one owner: while one replica holds it, a
/// second replica's open gets `locked`.
///
/// Ctrl-C or SIGTERM stops every instance gracefully: no new host calls,
/// calls in flight finish (what they made durable stays acknowledged), a
/// `pop-wait` returns at once; an instance waiting in a WASI call (a sleep,
/// a poll) for more than a second is dropped where it waits. `mini up`
/// ends when every instance has ended and prints how each ended. Exit
/// status: 0 when every instance exited with 0 or was stopped gracefully,
/// else the first other status (see `mini run`).
#[derive(Debug, Args)]
pub struct UpArgs {
    /// The directory of deployment specs, component manifests and components.
    dir: PathBuf,
    /// The data directory.
    #[arg(long, default_value_os_t = crate::default_data_dir())]
    data: PathBuf,
    /// Where the components (`<stem>.wasm`) are, if not next to their
    /// manifests.
    #[arg(long, value_name = "DIR")]
    components: Option<PathBuf>,
    /// Do not cache compiled components on disk.
    #[arg(long)]
    no_cache: bool,
    #[command(flatten)]
    backend: crate::backend::BackendArgs,
}

/// A module found in DIR: its manifest and its component file.
struct Module {
    manifest: ComponentManifest,
    component: PathBuf,
}

/// The files of `dir` whose names end in `suffix`, sorted.
fn files_ending(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(suffix))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Every module of `dir`, by id.
fn modules(dir: &Path, components: Option<&Path>) -> Result<BTreeMap<ModuleId, Module>> {
    let mut modules = BTreeMap::new();
    for path in files_ending(dir, ".component.toml")? {
        let manifest = ComponentManifest::from_file(&path)?;
        let stem = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".component.toml"))
            .ok_or_else(|| anyhow!("{}: not a component manifest name", path.display()))?;
        let wasm = format!("{stem}.wasm");
        let component = match components {
            Some(dir) if !path.with_file_name(&wasm).is_file() => dir.join(&wasm),
            _ => path.with_file_name(&wasm),
        };
        if !component.is_file() {
            bail!(
                "{}: its component {} does not exist",
                path.display(),
                component.display()
            );
        }
        let id = manifest.id().clone();
        if modules.contains_key(&id) {
            bail!("{}: a second manifest of module {id}", path.display());
        }
        modules.insert(
            id,
            Module {
                manifest,
                component,
            },
        );
    }
    Ok(modules)
}

/// Listens for Ctrl-C and SIGTERM and raises `stop` at the first.
fn stop_on_signals(stop: StopSignal) {
    tokio::spawn(async move {
        let name = wait_for_signal().await;
        eprintln!(
            "mini: {name}: stopping every instance (no new host calls; calls in flight finish)"
        );
        stop.stop();
    });
}

#[cfg(unix)]
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "Ctrl-C"
}

/// `mini up`.
pub fn up(args: UpArgs) -> Result<ExitCode> {
    let modules = modules(&args.dir, args.components.as_deref())?;
    let specs = files_ending(&args.dir, ".deployment.toml")?;
    if specs.is_empty() {
        bail!(
            "no deployment spec (*.deployment.toml) in {}",
            args.dir.display()
        );
    }
    let served = args.backend.host()?;
    let host = served.host.clone();
    let stop = StopSignal::new();
    let mut instances = Vec::new();
    let mut plan = Vec::new();
    for path in &specs {
        let spec = DeploymentSpec::from_file(path)?;
        let module = modules.get(spec.module_id()).ok_or_else(|| {
            anyhow!(
                "{}: no component manifest of module {} in {}",
                path.display(),
                spec.module_id(),
                args.dir.display()
            )
        })?;
        let resources = spec.overrides().resources.unwrap_or_default();
        let limits = run_limits(
            resources.memory_mb.map(u64::from),
            None,
            resources.fuel,
            Some(&module.manifest),
        )?;
        let replicas = spec.replicas();
        plan.push(format!("{} x{replicas}", spec.module_id()));
        for replica in 0..replicas {
            let mini = MiniCtxBuilder::for_module(&host, &args.data, &module.manifest)
                .stop_signal(&stop)
                .build()
                .map_err(ctx_error)
                .with_context(|| format!("module {}", spec.module_id()))?;
            let mut envs: Vec<(String, String)> = spec
                .mini()
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            envs.push(("MINI_REPLICA".into(), replica.to_string()));
            envs.push(("MINI_REPLICAS".into(), replicas.to_string()));
            let name = module.manifest.id().name();
            instances.push(Instance {
                label: format!("{} #{replica}", spec.module_id()),
                component: module.component.clone(),
                wasi: wasi_ctx(name, &spec.mini().args, &envs, &[])?,
                mini,
                limits,
            });
        }
    }
    eprintln!(
        "mini: up: {} instance(s): {}",
        instances.len(),
        plan.join(", ")
    );
    let config = RunnerConfig {
        compile_cache: !args.no_cache,
        fuel: None,
        ..RunnerConfig::default()
    };
    let signals = stop.clone();
    let ended = instance::run_all(config, instances, &stop, move || stop_on_signals(signals))?;
    let mut status = 0;
    for end in &ended {
        // A failure or a stop is reported by `exit_code`.
        if let Ok(code) = &end.result {
            eprintln!("mini: {}: exited with {code}", end.label);
        }
        let code = instance::exit_code(end, true);
        let graceful = matches!(end.result, Err(RunError::Stopped { .. }));
        if status == 0 && !graceful {
            status = code;
        }
    }
    Ok(ExitCode::from(status))
}
