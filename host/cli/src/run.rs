//! `mini run`: runs a `wasi:cli/command` component with WASI and its storage.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use mini_host::runner::{RunError, Runner, RunnerConfig};
use mini_host::{MiniCtx, MiniHost};
use wasmtime_wasi::{FsPerms, WasiCtx};

/// Exit code when the component could not be loaded or started.
const EXIT_CANNOT_START: u8 = 125;
/// Exit code when the component trapped.
const EXIT_TRAP: u8 = 134;
/// Exit code when mini stopped the component at a limit.
const EXIT_LIMIT: u8 = 137;

/// Run a component (a `wasi:cli/command`) with durable storage.
///
/// The component gets WASI (stdio, arguments, clocks, random; no host files
/// unless `--dir` is given, no network) and the `mini:storage` interfaces:
/// its journals live in `<data>/<namespace>/journal/<name>/`, its states in
/// `<data>/<namespace>/state/<name>/`, its snapshot stores in
/// `<data>/<namespace>/snapshot/<name>/`, its queues in
/// `<data>/<namespace>/queue/<name>/` (or another namespace's, with
/// `--grant-queue`).
///
/// Limits: the component is stopped when its memory grows past
/// `--memory-mb` or when the run takes longer than `--time-limit-ms`
/// (wall-clock time, host calls included, checked every 10 ms by epoch
/// interruption), or when `--fuel` runs out. Records it got a sequence number
/// for before being stopped are on disk.
///
/// Exit status: the component's own (0 when `run` returns ok, 1 for err, the
/// code passed to `exit`); 125 if it could not be loaded or started, 134 if it
/// trapped, 137 if mini stopped it at a limit.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The component file (`.wasm`).
    component: PathBuf,
    /// The data directory.
    #[arg(long, default_value_os_t = crate::default_data_dir())]
    data: PathBuf,
    /// The namespace the component's storage lives in [default: the
    /// component's file name without extension].
    #[arg(long)]
    namespace: Option<String>,
    /// Memory limit in MiB.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    memory_mb: u64,
    /// Time limit of the run in milliseconds (wall-clock time); 0 for none.
    #[arg(long, alias = "cpu-ms", default_value_t = 60_000, value_name = "MS")]
    time_limit_ms: u64,
    /// Fuel limit (about one unit per WebAssembly instruction): a
    /// deterministic CPU limit. Off by default.
    #[arg(long, value_name = "UNITS")]
    fuel: Option<u64>,
    /// Disk quota of the namespace in MiB.
    #[arg(long, default_value_t = 1024, value_name = "MIB")]
    quota_mb: u64,
    /// Largest record accepted, in KiB.
    #[arg(long, default_value_t = 1024, value_name = "KIB")]
    max_record_kb: u64,
    /// How many handles (journals, cursors, states, snapshot stores) the
    /// component may hold open at once.
    #[arg(long, default_value_t = mini_host::ctx::DEFAULT_MAX_OPEN_HANDLES)]
    max_handles: usize,
    /// Size at which a journal (or a state's journal) starts a new segment
    /// file, in KiB. Compaction deletes whole segments: small segments keep a
    /// compacted state's files small.
    #[arg(long, default_value_t = mini_host::ctx::DEFAULT_SEGMENT_SIZE / 1024, value_name = "KIB")]
    segment_kb: u64,
    /// Give the component a host directory: `HOST::GUEST` (or `DIR` for the
    /// same path in both). Repeatable.
    #[arg(long = "dir", value_name = "HOST::GUEST")]
    dirs: Vec<String>,
    /// Set an environment variable for the component: `NAME=VALUE`. Repeatable.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    envs: Vec<String>,
    /// Grant the queue NAME of namespace OWNER: `NAME=OWNER`. A component
    /// that opens the queue NAME gets `<data>/OWNER/queue/NAME/`, shared with
    /// every component of the run. Repeatable.
    #[arg(long = "grant-queue", value_name = "NAME=OWNER")]
    grant_queues: Vec<String>,
    /// Run another component at the same time, in the same process, with the
    /// same limits and grants, in the namespace of its file name: `"FILE
    /// ARG…"` (the arguments split at spaces). Repeatable. The run ends when
    /// every component has ended; the exit status is the first non-zero one
    /// (the main component's first).
    #[arg(long = "with", value_name = "\"FILE ARG…\"")]
    with: Vec<String>,
    /// Do not cache compiled components on disk.
    #[arg(long)]
    no_cache: bool,
    /// Arguments passed to the component (after `--`).
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
}

fn mib(n: u64) -> Result<u64> {
    n.checked_mul(1024 * 1024)
        .ok_or_else(|| anyhow!("{n} MiB is too large"))
}

/// The namespace of a component file: its file stem.
fn namespace_of_file(component: &Path) -> Result<String> {
    let stem = component
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| {
            anyhow!(
                "cannot derive a namespace from {}; pass --namespace",
                component.display()
            )
        })?;
    mini_engine::name::validate_name(stem).with_context(|| {
        format!("the file name {stem:?} is not a valid namespace; pass --namespace")
    })?;
    Ok(stem.to_owned())
}

fn wasi_ctx(args: &RunArgs, argv0: &str, component_args: &[String]) -> Result<WasiCtx> {
    let mut wasi = WasiCtx::builder();
    wasi.inherit_stdio().arg(argv0).args(component_args);
    for env in &args.envs {
        let (name, value) = env
            .split_once('=')
            .ok_or_else(|| anyhow!("--env {env:?} is not NAME=VALUE"))?;
        wasi.env(name, value);
    }
    for dir in &args.dirs {
        let (host, guest) = dir.split_once("::").unwrap_or((dir, dir));
        if !Path::new(host).is_dir() {
            bail!("--dir {dir:?}: {host} is not a directory");
        }
        wasi.preopened_dir(host, guest, FsPerms::ReadWrite)
            .map_err(|e| anyhow!("--dir {dir:?}: {e:#}"))?;
    }
    Ok(wasi.build())
}

/// One component of a run: its file, namespace and arguments.
struct Part {
    component: PathBuf,
    namespace: String,
    args: Vec<String>,
}

fn parts(args: &RunArgs) -> Result<Vec<Part>> {
    let namespace = match &args.namespace {
        Some(ns) => ns.clone(),
        None => namespace_of_file(&args.component)?,
    };
    let mut parts = vec![Part {
        component: args.component.clone(),
        namespace,
        args: args.args.clone(),
    }];
    for with in &args.with {
        let mut words = with.split_whitespace();
        let component = PathBuf::from(
            words
                .next()
                .ok_or_else(|| anyhow!("--with {with:?} names no component"))?,
        );
        parts.push(Part {
            namespace: namespace_of_file(&component)?,
            component,
            args: words.map(str::to_owned).collect(),
        });
    }
    Ok(parts)
}

fn mini_ctx(args: &RunArgs, host: &MiniHost, namespace: &str) -> Result<MiniCtx> {
    let max_record_size = usize::try_from(args.max_record_kb.saturating_mul(1024))
        .context("--max-record-kb is too large")?;
    let mut builder = MiniCtx::builder(&args.data, namespace)
        .host(host)
        .disk_quota(mib(args.quota_mb)?)
        .max_record_size(max_record_size)
        .max_open_handles(args.max_handles)
        .segment_size(args.segment_kb.saturating_mul(1024));
    for grant in &args.grant_queues {
        let (name, owner) = grant
            .split_once('=')
            .ok_or_else(|| anyhow!("--grant-queue {grant:?} is not NAME=OWNER"))?;
        builder = builder.grant_queue(name, owner);
    }
    Ok(builder.build()?)
}

/// `mini run`.
pub fn run(args: RunArgs) -> Result<ExitCode> {
    let memory_limit = usize::try_from(mib(args.memory_mb)?).context("--memory-mb is too large")?;
    let config = RunnerConfig {
        memory_limit,
        time_limit: (args.time_limit_ms > 0).then(|| Duration::from_millis(args.time_limit_ms)),
        fuel: args.fuel,
        compile_cache: !args.no_cache,
    };
    // One registry: components that open the same journal or queue share it.
    let host = MiniHost::new();
    let mut runs = Vec::new();
    for part in parts(&args)? {
        let mini = mini_ctx(&args, &host, &part.namespace)?;
        let argv0 = part
            .component
            .file_stem()
            .map_or_else(|| "component".into(), |s| s.to_string_lossy().into_owned());
        let wasi = wasi_ctx(&args, &argv0, &part.args)?;
        runs.push((part, mini, wasi));
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let results = runtime.block_on(async {
        let runner = match Runner::new(config) {
            Ok(runner) => Arc::new(runner),
            Err(e) => return vec![(None, Err(e))],
        };
        let mut tasks = Vec::new();
        for (part, mini, wasi) in runs {
            let runner = runner.clone();
            let namespace_dir = mini.namespace_dir().to_path_buf();
            tasks.push((
                namespace_dir,
                tokio::spawn(async move {
                    let component = tokio::task::block_in_place(|| runner.load(&part.component))?;
                    runner.run(&component, wasi, mini).await
                }),
            ));
        }
        let mut results = Vec::new();
        for (namespace_dir, task) in tasks {
            let result = task.await.unwrap_or_else(|e| {
                Err(RunError::Instantiate(format!(
                    "the component's task failed: {e}"
                )))
            });
            results.push((Some(namespace_dir), result));
        }
        results
    });
    let mut status = 0;
    for (namespace_dir, result) in results {
        let code = exit_code(result, namespace_dir.as_deref());
        if status == 0 {
            status = code;
        }
    }
    Ok(ExitCode::from(status))
}

/// The process status for one component's result (reporting failures).
fn exit_code(result: Result<i32, RunError>, namespace_dir: Option<&Path>) -> u8 {
    match result {
        // Exit codes outside 0..=255 do not fit a process status: report failure.
        Ok(code) => u8::try_from(code).unwrap_or(1),
        Err(e) => {
            eprintln!("mini: {e}");
            match e {
                RunError::Engine(_) | RunError::Load { .. } | RunError::Instantiate(_) => {
                    EXIT_CANNOT_START
                }
                RunError::Trap(_) => EXIT_TRAP,
                RunError::MemoryLimit { .. } | RunError::TimeLimit(_) | RunError::OutOfFuel(_) => {
                    if let Some(dir) = namespace_dir {
                        eprintln!(
                            "mini: records the component appended before it was stopped are on disk in {}",
                            dir.display()
                        );
                    }
                    EXIT_LIMIT
                }
            }
        }
    }
}
