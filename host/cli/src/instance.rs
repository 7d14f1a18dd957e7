//! Running instances of components in one host process: what `mini run`
//! and `mini up` share (loading each component once, running the instances
//! side by side, reporting how each ended).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, anyhow};
use mini_host::runner::{RunError, RunLimits, Runner, RunnerConfig};
use mini_host::{CtxError, LimitOutOfRange, MiniCtx, StopSignal};
use wasmtime::component::Component;
use wasmtime_wasi::WasiCtx;

/// Exit code when the component could not be loaded or started.
pub const EXIT_CANNOT_START: u8 = 125;
/// Exit code when the component trapped.
pub const EXIT_TRAP: u8 = 134;
/// Exit code when mini stopped the component at a limit.
pub const EXIT_LIMIT: u8 = 137;
/// Exit code of an instance stopped gracefully by a signal.
pub const EXIT_STOPPED: u8 = 143;

/// One instance to run.
pub struct Instance {
    /// How reports name it: the component's name, or `module@version #n`.
    pub label: String,
    /// The component file.
    pub component: PathBuf,
    /// Its WASI context.
    pub wasi: WasiCtx,
    /// Its storage context.
    pub mini: MiniCtx,
    /// Its memory, time and fuel limits.
    pub limits: RunLimits,
}

/// How one instance ended.
pub struct Ended {
    /// The instance's label.
    pub label: String,
    /// Its namespace directory.
    pub namespace_dir: PathBuf,
    /// Durable writes it made.
    pub writes: u64,
    /// Its exit code, or why it did not come to one.
    pub result: Result<i32, RunError>,
}

/// Runs every instance at once on one runner and one tokio runtime, each
/// component compiled once; when `stop` is raised the instances stop
/// gracefully. Returns how each ended, in the order given.
pub fn run_all(
    mut config: RunnerConfig,
    instances: Vec<Instance>,
    stop: &StopSignal,
    on_runtime: impl FnOnce() + Send,
) -> Result<Vec<Ended>> {
    // Fuel metering is the engine's: on if any instance has a fuel limit.
    if config.fuel.is_none() {
        config.fuel = instances.iter().find_map(|i| i.limits.fuel);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(async {
        on_runtime();
        let runner = match Runner::new(config) {
            Ok(runner) => Arc::new(runner),
            Err(e) => {
                return instances
                    .into_iter()
                    .map(|i| Ended {
                        label: i.label,
                        namespace_dir: i.mini.namespace_dir().to_path_buf(),
                        writes: 0,
                        result: Err(RunError::Engine(e.to_string())),
                    })
                    .collect();
            }
        };
        let mut loaded: HashMap<PathBuf, Result<Component, String>> = HashMap::new();
        let mut tasks = Vec::new();
        for instance in instances {
            let component = loaded
                .entry(instance.component.clone())
                .or_insert_with(|| {
                    tokio::task::block_in_place(|| runner.load(&instance.component))
                        .map_err(|e| e.to_string())
                })
                .clone();
            let namespace_dir = instance.mini.namespace_dir().to_path_buf();
            let writes: Arc<AtomicU64> = instance.mini.writes_counter();
            let (runner, stop) = (runner.clone(), stop.clone());
            let task = tokio::spawn(async move {
                let component = component.map_err(RunError::Engine)?;
                runner
                    .run_until(
                        &component,
                        instance.wasi,
                        instance.mini,
                        instance.limits,
                        stop,
                    )
                    .await
            });
            tasks.push((instance.label, namespace_dir, writes, task));
        }
        let mut ended = Vec::new();
        for (label, namespace_dir, writes, task) in tasks {
            let result = task.await.unwrap_or_else(|e| {
                Err(RunError::Instantiate(format!(
                    "the component's task failed: {e}"
                )))
            });
            ended.push(Ended {
                label,
                namespace_dir,
                writes: writes.load(Ordering::Relaxed),
                result,
            });
        }
        ended
    }))
}

/// The process status for one instance's end, reporting a failure on
/// stderr (with `label` when several instances ran).
pub fn exit_code(ended: &Ended, label: bool) -> u8 {
    let who = if label {
        format!("{}: ", ended.label)
    } else {
        String::new()
    };
    match &ended.result {
        // Exit codes outside 0..=255 do not fit a process status: report failure.
        Ok(code) => u8::try_from(*code).unwrap_or(1),
        Err(e) => {
            eprintln!("mini: {who}{e}");
            match e {
                RunError::Engine(_) | RunError::Load { .. } | RunError::Instantiate(_) => {
                    EXIT_CANNOT_START
                }
                RunError::Trap(_) => EXIT_TRAP,
                RunError::Stopped { .. } => EXIT_STOPPED,
                RunError::MemoryLimit { .. } | RunError::TimeLimit(_) | RunError::OutOfFuel(_) => {
                    match ended.writes {
                        0 => eprintln!("mini: {who}it wrote nothing before it was stopped"),
                        n => eprintln!(
                            "mini: {who}the {n} durable write(s) it made before it was stopped are on disk in {}",
                            ended.namespace_dir.display()
                        ),
                    }
                    EXIT_LIMIT
                }
            }
        }
    }
}

/// `n` MiB in bytes, or an error naming `flag`.
pub fn mib(n: u64, flag: &str) -> Result<u64> {
    n.checked_mul(1024 * 1024)
        .ok_or_else(|| anyhow!("{flag} {n} is too large"))
}

/// `n` KiB in bytes, or an error naming `flag`.
pub fn kib(n: u64, flag: &str) -> Result<u64> {
    n.checked_mul(1024)
        .ok_or_else(|| anyhow!("{flag} {n} is too large"))
}

/// A context error in the words of the command line: a limit out of range
/// names the flag that sets it.
pub fn ctx_error(e: CtxError) -> anyhow::Error {
    match e {
        CtxError::Limit(LimitOutOfRange {
            name,
            value,
            min,
            max,
        }) => {
            let (flag, unit, unit_name) = match name {
                "max_record_size" => ("--max-record-kb", 1024, "KiB"),
                "disk_quota" => ("--quota-mb", 1024 * 1024, "MiB"),
                "max_open_handles" => ("--max-handles", 1, "handles"),
                "segment_size" => ("--segment-kb", 1024, "KiB"),
                "max_state_size" => ("max_state_mb (manifest)", 1024 * 1024, "MiB"),
                other => (other, 1, "units"),
            };
            anyhow!(
                "{flag} is out of range: {} ({unit_name}); it must be between {} and {}",
                value / unit,
                min.div_ceil(unit),
                max / unit
            )
        }
        other => anyhow::Error::new(other),
    }
}

/// The file name of `component` without extension, for its `argv[0]`.
pub fn argv0(component: &Path) -> String {
    component
        .file_stem()
        .map_or_else(|| "component".into(), |s| s.to_string_lossy().into_owned())
}
