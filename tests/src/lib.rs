//! Helpers for the end-to-end tests: build the guest components and the
//! `mini` binary, run components in-process on the real host, read what they
//! wrote.
//!
//! The tests in `tests/` run real components (built from `guest/` for
//! `wasm32-wasip2`) on the real host, in this process or through the `mini`
//! binary as a subprocess. Run them with `cargo test -p mini-tests`.
#![warn(missing_docs)]

pub mod appender_check;
pub mod backends;
pub mod crash;
pub mod failover;
pub mod journal_check;
pub mod nats;
pub mod sync_linker;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use mini_engine::Entry;
use mini_host::runner::{RunError, Runner, RunnerConfig};
use mini_host::{MiniCtx, MiniHost};
use wasmtime::component::Component;
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

/// Bytes of stdout or stderr kept from a component run.
const PIPE_CAPACITY: usize = 16 * 1024 * 1024;

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The cargo binary that runs these tests (or `cargo`).
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs `cmd`, panicking with its output if it fails.
fn run_build(mut cmd: Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {what}: {e}"));
    assert!(
        out.status.success(),
        "building {what} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The guest component `name` (`counter`, `bad-input`, `appender`, …),
/// built from `guest/` the first time a test process asks for one
/// (`cargo build --release` in `guest/`, target dir `guest/target`).
pub fn guest_component(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let guest = repo_root().join("guest");
    let target = guest.join("target");
    BUILT.get_or_init(|| {
        let mut cmd = cargo();
        cmd.args(["build", "--release"])
            .current_dir(&guest)
            .env("CARGO_TARGET_DIR", &target)
            // Only the guest's own configuration (.cargo/config.toml) picks the target.
            .env_remove("CARGO_BUILD_TARGET");
        run_build(cmd, "the guest components");
    });
    let wasm = target
        .join("wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    assert!(wasm.is_file(), "no guest component {}", wasm.display());
    wasm
}

/// The `mini` binary, built with the profile and target directory of the
/// running test (`cargo build -p mini-cli`). `MINI_BIN` overrides it.
pub fn mini_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("MINI_BIN") {
            return PathBuf::from(bin);
        }
        // The test executable is <target>/<profile>/deps/<test>-<hash>.
        let exe = std::env::current_exe().expect("the test executable's path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test executable is in <target>/<profile>/deps");
        let target_dir = profile_dir.parent().expect("a target directory");
        let profile = profile_dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a profile directory name");
        let mut cmd = cargo();
        cmd.args(["build", "-p", "mini-cli", "--bin", "mini", "--target-dir"])
            .arg(target_dir)
            .current_dir(repo_root());
        match profile {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        run_build(cmd, "the mini binary");
        let bin = profile_dir.join(format!("mini{}", std::env::consts::EXE_SUFFIX));
        assert!(bin.is_file(), "no mini binary at {}", bin.display());
        bin
    })
    .clone()
}

/// The tokio runtime the helpers run components on (multi-threaded, with
/// timers).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// Runs `future` to completion on [`runtime`].
pub fn block_on<F: Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

/// The registry of open storage shared by the in-process runs of one test
/// process (as an embedder shares one per process).
pub fn test_host() -> &'static MiniHost {
    static HOST: OnceLock<MiniHost> = OnceLock::new();
    HOST.get_or_init(MiniHost::new)
}

/// A runner with the default limits, shared by the tests of one process.
pub fn default_runner() -> Arc<Runner> {
    static RUNNER: OnceLock<Arc<Runner>> = OnceLock::new();
    RUNNER
        .get_or_init(|| Arc::new(new_runner(RunnerConfig::default())))
        .clone()
}

/// A runner with `config` (panics if the engine cannot be set up).
pub fn new_runner(config: RunnerConfig) -> Runner {
    Runner::new(config).expect("a runner")
}

/// Compiles the component in `path` once per runner engine and path.
pub fn load(runner: &Runner, path: &Path) -> Component {
    mini_testing::load_component(runner, path).expect("the component compiles")
}

/// What a component run produced.
#[derive(Debug)]
pub struct RunOutput {
    /// The exit code, or why the run did not finish.
    pub exit: Result<i32, RunError>,
    /// Everything the component wrote to stdout.
    pub stdout: String,
    /// Everything the component wrote to stderr.
    pub stderr: String,
}

impl RunOutput {
    /// The exit code; panics (showing the output) if the run did not finish.
    pub fn exit_code(&self) -> i32 {
        match &self.exit {
            Ok(code) => *code,
            Err(e) => panic!(
                "the run did not finish: {e}\n--- stdout\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            ),
        }
    }
}

/// Runs the component in `path` with `mini` as its storage context and
/// `args` as its arguments (after the component's name), capturing stdout
/// and stderr in memory pipes.
pub async fn run_with(runner: &Runner, path: &Path, mini: MiniCtx, args: &[&str]) -> RunOutput {
    let component = load(runner, path);
    let stdout = MemoryOutputPipe::new(PIPE_CAPACITY);
    let stderr = MemoryOutputPipe::new(PIPE_CAPACITY);
    let name = path
        .file_stem()
        .map_or_else(|| "component".into(), |s| s.to_string_lossy().into_owned());
    let wasi = WasiCtx::builder()
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .arg(&name)
        .args(args)
        .build();
    let exit = runner.run(&component, wasi, mini).await;
    RunOutput {
        exit,
        stdout: String::from_utf8_lossy(&stdout.contents()).into_owned(),
        stderr: String::from_utf8_lossy(&stderr.contents()).into_owned(),
    }
}

/// A storage context over `data_dir` and `namespace` with default limits,
/// sharing `host`.
pub fn mini_ctx(host: &MiniHost, data_dir: &Path, namespace: &str) -> MiniCtx {
    MiniCtx::builder(host, data_dir, namespace)
        .build()
        .expect("a valid namespace")
}

/// Runs the component in `path` in this process on the default runner with
/// its storage in `data_dir`/`namespace`; returns (exit code, stdout,
/// stderr). Panics if the run does not finish.
pub fn run_component(
    path: &Path,
    data_dir: &Path,
    namespace: &str,
    args: &[&str],
) -> (i32, String, String) {
    let runner = default_runner();
    let mini = mini_ctx(test_host(), data_dir, namespace);
    let out = block_on(run_with(&runner, path, mini, args));
    (out.exit_code(), out.stdout, out.stderr)
}

/// The `case <name>: <outcome>` lines a probe component prints (the
/// `bad-input` and `state-probe` examples), as outcome by case name.
pub fn cases(stdout: &str) -> std::collections::BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("case "))
        .filter_map(|l| l.split_once(": "))
        .map(|(name, outcome)| (name.to_owned(), outcome.to_owned()))
        .collect()
}

/// The directory of journal `name` in `namespace` under `data_dir`.
pub fn journal_dir(data_dir: &Path, namespace: &str, name: &str) -> PathBuf {
    data_dir.join(namespace).join("journal").join(name)
}

/// A segment file's text without the preallocated zeros after its last
/// line (FORMAT.md, "Preallocated space").
pub fn segment_text(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("the segment file is UTF-8");
    text.trim_end_matches('\0').to_owned()
}

/// Every record stored in the journal in `dir`, read without its lock.
pub fn read_journal(dir: &Path) -> Vec<Entry> {
    let mut reader = mini_engine::read_unlocked(dir, 0).expect("the journal is readable");
    let mut all = Vec::new();
    loop {
        let batch = reader.next_batch(1024).expect("the journal reads back");
        if batch.is_empty() {
            return all;
        }
        all.extend(batch);
    }
}

/// Asserts that `entries` have the contiguous sequence numbers `1..=len`.
pub fn assert_contiguous(entries: &[Entry]) {
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(
            entry.seq,
            i as u64 + 1,
            "sequence numbers are not contiguous from 1"
        );
    }
}

/// Runs the `mini` binary with `args`; returns (exit code, stdout, stderr).
pub fn mini<I, S>(args: I) -> (i32, String, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    run_program(&mini_binary(), args)
}

/// Runs `program` with `args`; returns (exit code, stdout, stderr).
pub fn run_program<I, S>(program: &Path, args: I) -> (i32, String, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A `Vec<OsString>` of command line arguments from strings and paths:
/// `os_args!["cat", dir, "--from", "3"]`.
#[macro_export]
macro_rules! os_args {
    ($($arg:expr),* $(,)?) => {
        vec![$(::std::ffi::OsStr::new(&$arg).to_os_string()),*]
    };
}

/// `ms` since the Unix epoch in RFC 3339 (UTC, to the millisecond), as GNU
/// `date` writes it: an oracle independent of the formatter `mini` uses.
pub fn rfc3339_ms(ms: u64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{}", ms / 1000), "+%Y-%m-%dT%H:%M:%S"])
        .output()
        .expect("date runs");
    assert!(out.status.success(), "date failed");
    let seconds = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    format!("{seconds}.{:03}Z", ms % 1000)
}

/// The two fields of a time in the tools' JSON:
/// `"NAME_ms":MS,"NAME":"RFC 3339"`.
pub fn json_time(name: &str, ms: u64) -> String {
    format!("\"{name}_ms\":{ms},\"{name}\":\"{}\"", rfc3339_ms(ms))
}
