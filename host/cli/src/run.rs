//! `mini run`: runs a `wasi:cli/command` component with WASI and its storage.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
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
/// `<data>/<namespace>/snapshot/<name>/`.
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

/// The default namespace: the component's file stem.
fn namespace_of(args: &RunArgs) -> Result<String> {
    if let Some(ns) = &args.namespace {
        return Ok(ns.clone());
    }
    let stem = args
        .component
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| {
            anyhow!(
                "cannot derive a namespace from {}; pass --namespace",
                args.component.display()
            )
        })?;
    mini_engine::name::validate_name(stem).with_context(|| {
        format!("the file name {stem:?} is not a valid namespace; pass --namespace")
    })?;
    Ok(stem.to_owned())
}

fn wasi_ctx(args: &RunArgs, argv0: &str) -> Result<WasiCtx> {
    let mut wasi = WasiCtx::builder();
    wasi.inherit_stdio().arg(argv0).args(&args.args);
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

/// `mini run`.
pub fn run(args: RunArgs) -> Result<ExitCode> {
    let namespace = namespace_of(&args)?;
    let memory_limit = usize::try_from(mib(args.memory_mb)?).context("--memory-mb is too large")?;
    let config = RunnerConfig {
        memory_limit,
        time_limit: (args.time_limit_ms > 0).then(|| Duration::from_millis(args.time_limit_ms)),
        fuel: args.fuel,
        compile_cache: !args.no_cache,
    };
    let max_record_size = usize::try_from(args.max_record_kb.saturating_mul(1024))
        .context("--max-record-kb is too large")?;
    let mini = MiniCtx::builder(&args.data, &namespace)
        .host(&MiniHost::new())
        .disk_quota(mib(args.quota_mb)?)
        .max_record_size(max_record_size)
        .max_open_handles(args.max_handles)
        .segment_size(args.segment_kb.saturating_mul(1024))
        .build()?;
    let namespace_dir = mini.namespace_dir().to_path_buf();
    let argv0 = args
        .component
        .file_stem()
        .map_or_else(|| "component".into(), |s| s.to_string_lossy().into_owned());
    let wasi = wasi_ctx(&args, &argv0)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let runner = Runner::new(config)?;
        let component = tokio::task::block_in_place(|| runner.load(&args.component))?;
        runner.run(&component, wasi, mini).await
    });
    match result {
        // Exit codes outside 0..=255 do not fit a process status: report failure.
        Ok(code) => Ok(ExitCode::from(u8::try_from(code).unwrap_or(1))),
        Err(e) => {
            eprintln!("mini: {e}");
            let code = match e {
                RunError::Engine(_) | RunError::Load { .. } | RunError::Instantiate(_) => {
                    EXIT_CANNOT_START
                }
                RunError::Trap(_) => EXIT_TRAP,
                RunError::MemoryLimit { .. } | RunError::TimeLimit(_) | RunError::OutOfFuel(_) => {
                    eprintln!(
                        "mini: records the component appended before it was stopped are on disk in {}",
                        namespace_dir.display()
                    );
                    EXIT_LIMIT
                }
            };
            Ok(ExitCode::from(code))
        }
    }
}
