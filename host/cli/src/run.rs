//! `mini run`: runs a `wasi:cli/command` component with WASI and its storage.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use mini_host::runner::{DEFAULT_MEMORY_LIMIT, DEFAULT_TIME_LIMIT, RunLimits, RunnerConfig};
use mini_host::{MiniCtx, MiniCtxBuilder, MiniHost, StopSignal};
use mini_manifest::ComponentManifest;
use wasmtime_wasi::{FsPerms, WasiCtx};

use crate::instance::{self, Instance, argv0, ctx_error, kib, mib};

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
/// A module: with `--manifest FILE`, or when `<stem>.component.toml` lies
/// next to the component (Arcella's component manifest), the component runs
/// as that module: its namespace is the module's name (a new version opens
/// the data an older one wrote), it may open only what the manifest's
/// `[component.capabilities.storage]` grants (anything else is
/// `access-denied`; without that table, nothing), and the manifest's quota,
/// record size, handle, memory, time and fuel limits apply. Flags given on
/// the command line override the manifest's limits. Without a manifest the
/// component may open anything in the namespace of its file name.
///
/// Limits: the component is stopped when its memory grows past
/// `--memory-mb` or when the run takes longer than `--time-limit-ms`
/// (wall-clock time, host calls included: a `pop-wait` is stopped too), or
/// when `--fuel` runs out. Everything it was told is durable before it was
/// stopped is on disk. A limit out of range is refused before anything runs.
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
    /// module's name with a manifest, else the component's file name without
    /// extension].
    #[arg(long)]
    namespace: Option<String>,
    /// The component manifest (Arcella's `<stem>.component.toml`) [default:
    /// the one next to the component, if any].
    #[arg(long, value_name = "FILE", conflicts_with = "no_manifest")]
    manifest: Option<PathBuf>,
    /// Run without a manifest even if one lies next to the component.
    #[arg(long)]
    no_manifest: bool,
    /// Memory limit in MiB [default: the manifest's memory_max, else 256].
    #[arg(long, value_name = "MIB")]
    memory_mb: Option<u64>,
    /// Time limit of the run in milliseconds (wall-clock time); 0 for none
    /// [default: the manifest's time_limit_ms, else 60000].
    #[arg(long, alias = "cpu-ms", value_name = "MS")]
    time_limit_ms: Option<u64>,
    /// Fuel limit (about one unit per WebAssembly instruction): a
    /// deterministic CPU limit [default: the manifest's fuel, else off].
    #[arg(long, value_name = "UNITS")]
    fuel: Option<u64>,
    /// Disk quota of the namespace in MiB [default: the manifest's quota_mb,
    /// else 1024].
    #[arg(long, value_name = "MIB")]
    quota_mb: Option<u64>,
    /// Largest record accepted, in KiB (at most 131072) [default: the
    /// manifest's max_record_kb, else 1024].
    #[arg(long, value_name = "KIB")]
    max_record_kb: Option<u64>,
    /// How many handles (journals, cursors, states, snapshot stores, queues,
    /// pollables) the component may hold open at once [default: the
    /// manifest's max_handles, else 64].
    #[arg(long)]
    max_handles: Option<u64>,
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
    /// same limits and grants, in the namespace of its file name (or as the
    /// module of the manifest next to it): `"FILE ARG…"`, split into words
    /// as a shell splits them (quotes keep spaces: `--with "w.wasm 'a b'"`).
    /// Repeatable. The run ends when
    /// every component has ended; the exit status is the first non-zero one
    /// (the main component's first).
    #[arg(long = "with", value_name = "\"FILE ARG…\"")]
    with: Vec<String>,
    /// Do not cache compiled components on disk.
    #[arg(long)]
    no_cache: bool,
    #[command(flatten)]
    backend: crate::backend::BackendArgs,
    /// Arguments passed to the component (after `--`).
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
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

/// The WASI context of an instance: stdio, arguments, `--env` and `--dir`.
pub(crate) fn wasi_ctx(
    argv0: &str,
    component_args: &[String],
    envs: &[(String, String)],
    dirs: &[String],
) -> Result<WasiCtx> {
    let mut wasi = WasiCtx::builder();
    wasi.inherit_stdio().arg(argv0).args(component_args);
    for (name, value) in envs {
        wasi.env(name, value);
    }
    for dir in dirs {
        let (host, guest) = dir.split_once("::").unwrap_or((dir, dir));
        if !Path::new(host).is_dir() {
            bail!("--dir {dir:?}: {host} is not a directory");
        }
        wasi.preopened_dir(host, guest, FsPerms::ReadWrite)
            .map_err(|e| anyhow!("--dir {dir:?}: {e:#}"))?;
    }
    Ok(wasi.build())
}

/// One component of a run: its file, namespace, manifest and arguments.
struct Part {
    component: PathBuf,
    namespace: String,
    manifest: Option<ComponentManifest>,
    args: Vec<String>,
}

/// The manifest of `component`: `explicit`, or the one next to it.
fn manifest_of(
    component: &Path,
    explicit: Option<&Path>,
    none: bool,
) -> Result<Option<ComponentManifest>> {
    if none {
        return Ok(None);
    }
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None => {
            let next_to = ComponentManifest::path_next_to(component);
            if !next_to.is_file() {
                return Ok(None);
            }
            next_to
        }
    };
    Ok(Some(ComponentManifest::from_file(&path)?))
}

fn parts(args: &RunArgs) -> Result<Vec<Part>> {
    let manifest = manifest_of(&args.component, args.manifest.as_deref(), args.no_manifest)?;
    let namespace = match (&args.namespace, &manifest) {
        (Some(ns), Some(m)) if ns != m.id().name() => bail!(
            "--namespace {ns:?} differs from the module's name {:?}: a module's namespace is its name",
            m.id().name()
        ),
        (Some(ns), _) => ns.clone(),
        (None, Some(m)) => m.id().name().to_owned(),
        (None, None) => namespace_of_file(&args.component)?,
    };
    let mut parts = vec![Part {
        component: args.component.clone(),
        namespace,
        manifest,
        args: args.args.clone(),
    }];
    for with in &args.with {
        let (component, words) = with_words(with)?;
        let manifest = manifest_of(&component, None, args.no_manifest)?;
        let namespace = match &manifest {
            Some(m) => m.id().name().to_owned(),
            None => namespace_of_file(&component)?,
        };
        parts.push(Part {
            namespace,
            manifest,
            component,
            args: words,
        });
    }
    Ok(parts)
}

/// The component and the arguments of a `--with` value, split as a POSIX
/// shell splits words: quotes keep spaces (`--with "w.wasm 'a b'"` gives
/// the component the one argument `a b`), a backslash escapes.
fn with_words(with: &str) -> Result<(PathBuf, Vec<String>)> {
    let Some(mut words) = shlex::split(with) else {
        crate::exit::usage!("--with {with:?}: an unclosed quote or a trailing backslash");
    };
    if words.is_empty() {
        crate::exit::usage!("--with {with:?} names no component");
    }
    let component = PathBuf::from(words.remove(0));
    Ok((component, words))
}

fn mini_ctx(args: &RunArgs, host: &MiniHost, part: &Part, stop: &StopSignal) -> Result<MiniCtx> {
    let mut builder = match &part.manifest {
        Some(manifest) => MiniCtxBuilder::for_module(host, &args.data, manifest),
        None => MiniCtx::builder(host, &args.data, &part.namespace),
    }
    .stop_signal(stop)
    .segment_size(kib(args.segment_kb, "--segment-kb")?);
    if let Some(mb) = args.quota_mb {
        builder = builder.disk_quota(mib(mb, "--quota-mb")?);
    }
    if let Some(kb) = args.max_record_kb {
        let bytes = usize::try_from(kib(kb, "--max-record-kb")?)
            .map_err(|_| anyhow!("--max-record-kb {kb} is too large"))?;
        builder = builder.max_record_size(bytes);
    }
    if let Some(handles) = args.max_handles {
        let handles = usize::try_from(handles)
            .map_err(|_| anyhow!("--max-handles {handles} is too large"))?;
        builder = builder.max_open_handles(handles);
    }
    for grant in &args.grant_queues {
        let (name, owner) = grant
            .split_once('=')
            .ok_or_else(|| anyhow!("--grant-queue {grant:?} is not NAME=OWNER"))?;
        builder = builder.grant_queue(name, owner);
    }
    builder.build().map_err(ctx_error)
}

/// The memory, time and fuel limits of a run: the flag, else the manifest's,
/// else the default.
pub(crate) fn run_limits(
    memory_mb: Option<u64>,
    time_limit_ms: Option<u64>,
    fuel: Option<u64>,
    manifest: Option<&ComponentManifest>,
) -> Result<RunLimits> {
    let storage = manifest.and_then(ComponentManifest::storage);
    let memory = match (memory_mb, manifest.and_then(ComponentManifest::memory_max)) {
        (Some(mb), _) => mib(mb, "--memory-mb")?,
        (None, Some(bytes)) => bytes,
        (None, None) => DEFAULT_MEMORY_LIMIT as u64,
    };
    let memory_limit = usize::try_from(memory)
        .map_err(|_| anyhow!("a memory limit of {memory} bytes is too large"))?;
    let time_limit = match time_limit_ms.or_else(|| storage.and_then(|s| s.time_limit_ms)) {
        Some(0) => None,
        Some(ms) => Some(Duration::from_millis(ms)),
        None => Some(DEFAULT_TIME_LIMIT),
    };
    Ok(RunLimits {
        memory_limit,
        time_limit,
        fuel: fuel.or_else(|| storage.and_then(|s| s.fuel)),
    })
}

/// `mini run`.
pub fn run(args: RunArgs) -> Result<ExitCode> {
    let mut envs = Vec::new();
    for env in &args.envs {
        let (name, value) = env
            .split_once('=')
            .ok_or_else(|| anyhow!("--env {env:?} is not NAME=VALUE"))?;
        envs.push((name.to_owned(), value.to_owned()));
    }
    // One registry: components that open the same journal or queue share it.
    let served = args.backend.host()?;
    let host = served.host.clone();
    let stop = StopSignal::new();
    let parts = parts(&args)?;
    let mut instances = Vec::new();
    for part in &parts {
        let mini = mini_ctx(&args, &host, part, &stop)?;
        let limits = run_limits(
            args.memory_mb,
            args.time_limit_ms,
            args.fuel,
            part.manifest.as_ref(),
        )?;
        let label = match &part.manifest {
            Some(m) => m.id().to_string(),
            None => argv0(&part.component),
        };
        instances.push(Instance {
            label,
            wasi: wasi_ctx(&argv0(&part.component), &part.args, &envs, &args.dirs)?,
            component: part.component.clone(),
            mini,
            limits,
        });
    }
    let config = RunnerConfig {
        compile_cache: !args.no_cache,
        fuel: None,
        ..RunnerConfig::default()
    };
    let several = instances.len() > 1;
    let ended = instance::run_all(config, instances, &stop, || {})?;
    let mut status = 0;
    for end in &ended {
        let code = instance::exit_code(end, several);
        if status == 0 {
            status = code;
        }
    }
    Ok(ExitCode::from(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_splits_as_a_shell_does() {
        let (component, args) = with_words(r#"w.wasm 'a b' "c d" e\ f g"#).expect("split");
        assert_eq!(component, PathBuf::from("w.wasm"));
        assert_eq!(args, ["a b", "c d", "e f", "g"]);
        assert!(with_words("w.wasm 'open").is_err());
        assert!(with_words("   ").is_err());
    }
}
