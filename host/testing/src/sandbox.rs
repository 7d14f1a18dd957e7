//! The sandbox: a data root of its own, a [`MiniHost`], a compiled
//! component, a virtual clock and a fault-injecting file system; runs of the
//! component as a `wasi:cli/command`, in sequence over the same data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use mini_engine::Entry;
use mini_engine::layout::{DataRoot, UnitKind};
use mini_engine::queue::Clock;
use mini_host::keyvalue::DEFAULT_BUCKET;
use mini_host::runner::{RunError, RunLimits, Runner, RunnerConfig};
use mini_host::{Limits, MiniCtx, MiniHost};
use wasmtime::component::Component;
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use crate::clock::VirtualClock;
use crate::faults::SandboxFs;
use crate::inspect::{QueueView, StateView, journal_records, queue_view, state_view};
use crate::plan::{CallLog, Plan};
use crate::run::{Exit, OUTPUT_CAPACITY, Run};
use crate::{SandboxError, saved};

/// Builds a [`Sandbox`].
#[derive(Debug, Clone)]
pub struct SandboxBuilder {
    component: PathBuf,
    namespace: Option<String>,
    data_root: Option<PathBuf>,
    runner: Option<Arc<Runner>>,
    limits: Limits,
    run_limits: Option<RunLimits>,
    real_syncs: bool,
    seed: u64,
}

impl SandboxBuilder {
    /// The storage namespace of the component's instances (default: the
    /// component file's stem, `bank` for `bank.wasm`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Keeps the data in `dir` (created if missing) instead of a temporary
    /// directory removed with the sandbox.
    pub fn data_root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_root = Some(dir.into());
        self
    }

    /// Runs on `runner` (its engine, its limits) instead of the process's
    /// shared default one.
    pub fn runner(mut self, runner: Arc<Runner>) -> Self {
        self.runner = Some(runner);
        self
    }

    /// The storage limits of the component's instances (record sizes,
    /// handles, disk quota: see [`Limits`]).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The memory, time and fuel limits of each run (default: the
    /// runner's).
    pub fn run_limits(mut self, limits: RunLimits) -> Self {
        self.run_limits = Some(limits);
        self
    }

    /// Makes the syncs of the engine real `fdatasync`s and directory
    /// fsyncs. Off by default: a crash point is a process crash, which
    /// keeps what was written whether it was synced or not (see
    /// [`crate::faults`]), so syncs only cost time. An injected
    /// [`Fault::FsyncFails`](crate::Fault::FsyncFails) fails a sync either way.
    pub fn real_syncs(mut self, real: bool) -> Self {
        self.real_syncs = real;
        self
    }

    /// The seed of what the runs draw at random: the component's
    /// `wasi:random/insecure-seed` and the samples and faults of an
    /// [`Exploration`](crate::Exploration). Default 0.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Compiles the component (once per runner and path in a process) and
    /// makes the sandbox.
    pub fn build(self) -> Result<Sandbox, SandboxError> {
        let runner = match self.runner {
            Some(runner) => runner,
            None => default_runner()?,
        };
        let component = load_component(&runner, &self.component)?;
        let program = self
            .component
            .file_stem()
            .map_or_else(|| "component".into(), |s| s.to_string_lossy().into_owned());
        let namespace = self.namespace.unwrap_or_else(|| program.clone());
        let (root, temp) = match self.data_root {
            Some(dir) => {
                std::fs::create_dir_all(&dir)?;
                (dir, None)
            }
            None => {
                let temp = tempfile::Builder::new().prefix("mini-sandbox-").tempdir()?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        // The namespace is checked now, not at the first run.
        DataRoot::new(&root).namespace_dir(&namespace)?;
        let run_limits = self
            .run_limits
            .unwrap_or_else(|| runner.config().run_limits());
        Ok(Sandbox {
            runner,
            component,
            program,
            host: MiniHost::new(),
            root,
            _temp: temp,
            namespace,
            clock: VirtualClock::new(),
            fs: SandboxFs::new(self.real_syncs),
            limits: self.limits,
            run_limits,
            seed: self.seed,
        })
    }
}

/// A component, its own data and its own clock, for tests.
///
/// Runs are in sequence over the same data, each a new instance (as a
/// restarted process would make): what one run stored, the next one finds.
/// A run's storage calls can be stopped at a crash point or given a fault
/// ([`Plan`]). The sync methods ([`Sandbox::run`], …) block on a runtime of
/// the crate's own; call the `_async` ones from async code.
///
/// ```no_run
/// use std::time::Duration;
/// use mini_host::calls::CallMoment;
/// use mini_testing::{Plan, Sandbox};
///
/// let sandbox = Sandbox::new("target/wasm32-wasip2/release/bank.wasm")?;
/// let run = sandbox.run(&["transfer", "alice", "bob", "10"])?;
/// assert!(run.succeeded(), "{}", run.stderr);
///
/// // Stop the next transfer right after its second storage call is durable,
/// // then see what a restarted component finds.
/// let crashed = sandbox.run_with(
///     &["transfer", "alice", "bob", "10"],
///     &Plan::new().crash_at(2, CallMoment::AfterDurable),
/// )?;
/// assert!(crashed.crash_point().is_some());
/// assert!(sandbox.run(&["check"])?.succeeded());
///
/// // What it stored, read through the engine.
/// let state = sandbox.state("accounts")?;
/// println!("{} mutations since the last checkpoint", state.mutations.len());
///
/// // Leases and delays run out with no sleep.
/// sandbox.advance(Duration::from_secs(30));
/// # Ok::<(), mini_testing::SandboxError>(())
/// ```
#[derive(Debug)]
pub struct Sandbox {
    runner: Arc<Runner>,
    component: Component,
    program: String,
    host: MiniHost,
    root: PathBuf,
    _temp: Option<tempfile::TempDir>,
    namespace: String,
    clock: VirtualClock,
    fs: SandboxFs,
    limits: Limits,
    run_limits: RunLimits,
    seed: u64,
}

impl Sandbox {
    /// A sandbox for the component in `component` with the defaults (see
    /// [`SandboxBuilder`]).
    pub fn new(component: impl AsRef<Path>) -> Result<Sandbox, SandboxError> {
        Sandbox::builder(component).build()
    }

    /// A builder for a sandbox for the component in `component`.
    pub fn builder(component: impl AsRef<Path>) -> SandboxBuilder {
        SandboxBuilder {
            component: component.as_ref().to_path_buf(),
            namespace: None,
            data_root: None,
            runner: None,
            limits: Limits::default(),
            run_limits: None,
            real_syncs: false,
            seed: 0,
        }
    }

    /// Runs the component with `args` (after its name) to its end.
    pub fn run(&self, args: &[impl AsRef<str>]) -> Result<Run, SandboxError> {
        self.run_with(args, &Plan::new())
    }

    /// Runs the component with `args`, its storage calls treated as `plan`
    /// says.
    pub fn run_with(&self, args: &[impl AsRef<str>], plan: &Plan) -> Result<Run, SandboxError> {
        runtime()?.block_on(self.run_async(args, plan))
    }

    /// [`Sandbox::run_with`] for async code.
    pub async fn run_async(
        &self,
        args: &[impl AsRef<str>],
        plan: &Plan,
    ) -> Result<Run, SandboxError> {
        let log = CallLog::new(plan.clone(), self.fs.clone());
        let mini = MiniCtx::builder(&self.host, &self.root, &self.namespace)
            .limits(self.limits.clone())
            .call_observer(log.clone())
            .file_system(Arc::new(self.fs.clone()))
            .queue_clock(Arc::new(self.clock.clone()))
            .build()?;
        let stdout = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        let stderr = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .arg(&self.program)
            .args(args)
            .wall_clock(self.clock.clone())
            .monotonic_clock(self.clock.clone())
            .insecure_random_seed(u128::from(self.seed))
            .build();
        let result = self
            .runner
            .run_with(&self.component, wasi, mini, self.run_limits)
            .await;
        let seen = log.take();
        let exit = match (seen.crashed, result) {
            (Some(point), _) => Exit::Crashed(point),
            (None, Ok(code)) => Exit::Code(code),
            (None, Err(e)) => Exit::Failed(e),
        };
        Ok(Run {
            exit,
            stdout: String::from_utf8_lossy(&stdout.contents()).into_owned(),
            stderr: String::from_utf8_lossy(&stderr.contents()).into_owned(),
            call_count: seen.count,
            calls: seen.calls,
            faults: seen.faults,
        })
    }

    /// Moves the sandbox's clock forward by `by`: leases run out, delays
    /// pass, dedup windows close, and the component's WASI clocks read the
    /// new time, with no sleep.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// The sandbox's clock.
    pub fn clock(&self) -> &VirtualClock {
        &self.clock
    }

    /// The data root.
    pub fn data_root(&self) -> &Path {
        &self.root
    }

    /// The component's storage namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The sandbox's seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The directory of the unit `name` of `kind`, the name checked.
    pub fn unit_dir(&self, kind: UnitKind, name: &str) -> Result<PathBuf, SandboxError> {
        Ok(DataRoot::new(&self.root).unit_dir(&self.namespace, kind, name)?)
    }

    /// Every record of the journal `name` (the `store` interface), in seq
    /// order; none if the component never opened it.
    pub fn journal(&self, name: &str) -> Result<Vec<Entry>, SandboxError> {
        journal_records(&self.unit_dir(UnitKind::Journal, name)?)
    }

    /// The state `name` as recovery finds it: its newest valid snapshot and
    /// the mutations after it.
    pub fn state(&self, name: &str) -> Result<StateView, SandboxError> {
        state_view(&self.unit_dir(UnitKind::State, name)?)
    }

    /// The queue `name`'s messages, by where they are at the sandbox's time.
    pub fn queue(&self, name: &str) -> Result<QueueView, SandboxError> {
        queue_view(&self.unit_dir(UnitKind::Queue, name)?, self.clock.now_ms())
    }

    /// The `wasi:keyvalue` bucket `name`'s keys and values as recovery finds
    /// them (`""`: the bucket `open("")` opens); none if the component never
    /// opened it.
    pub fn bucket(&self, name: &str) -> Result<BTreeMap<String, Vec<u8>>, SandboxError> {
        let name = if name.is_empty() {
            DEFAULT_BUCKET
        } else {
            name
        };
        let dir = self.unit_dir(UnitKind::Bucket, name)?;
        if !dir.is_dir() {
            return Ok(BTreeMap::new());
        }
        let found = mini_engine::kv::inspect(&dir)?;
        Ok(found
            .state
            .entries
            .into_iter()
            // A value that does not decode fails the inspection first.
            .map(|(key, entry)| (key, entry.value.bytes().unwrap_or_default()))
            .collect())
    }

    /// A copy of the data and the clock as they are now, for
    /// [`Sandbox::restore`].
    pub fn save(&self) -> Result<SavedData, SandboxError> {
        let dir = tempfile::Builder::new()
            .prefix("mini-sandbox-saved-")
            .tempdir()?;
        saved::copy_tree(&self.root, dir.path())?;
        Ok(SavedData {
            dir,
            clock_nanos: self.clock.now_nanos(),
        })
    }

    /// Puts the data and the clock back as they were when `saved` was made
    /// (between runs: no instance may be running).
    pub fn restore(&self, saved: &SavedData) -> Result<(), SandboxError> {
        saved::clear_dir(&self.root)?;
        saved::copy_tree(saved.dir.path(), &self.root)?;
        self.clock.set_nanos(saved.clock_nanos);
        Ok(())
    }
}

/// The data and the time of a sandbox at one moment ([`Sandbox::save`]).
#[derive(Debug)]
pub struct SavedData {
    dir: tempfile::TempDir,
    clock_nanos: u64,
}

/// The runtime the sync methods block on (multi-threaded: storage calls
/// run in `block_in_place`).
fn runtime() -> Result<&'static tokio::runtime::Runtime, SandboxError> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    Ok(RUNTIME.get_or_init(|| runtime))
}

/// The process's shared runner with the default configuration.
fn default_runner() -> Result<Arc<Runner>, SandboxError> {
    static RUNNER: OnceLock<Arc<Runner>> = OnceLock::new();
    if let Some(runner) = RUNNER.get() {
        return Ok(runner.clone());
    }
    // The epoch ticker and compile cache are the runner's; one per process.
    let runner = Arc::new(Runner::new(RunnerConfig::default())?);
    Ok(RUNNER.get_or_init(|| runner).clone())
}

/// The component in `path` compiled by `runner`'s engine: compiled once
/// per engine and path in a process, and then shared (sandboxes of one
/// component and tests that run it often pay the compilation once).
pub fn load_component(runner: &Runner, path: &Path) -> Result<Component, RunError> {
    type Cache = Mutex<Vec<(wasmtime::Engine, PathBuf, Component)>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Cache::default);
    let known = |cache: &Cache| {
        let cache = cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .iter()
            .find(|(engine, p, _)| wasmtime::Engine::same(engine, runner.engine()) && p == path)
            .map(|(_, _, component)| component.clone())
    };
    if let Some(component) = known(cache) {
        return Ok(component);
    }
    // Compiled outside the lock: another sandbox may compile meanwhile.
    let component = runner.load(path)?;
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    cache.push((
        runner.engine().clone(),
        path.to_path_buf(),
        component.clone(),
    ));
    Ok(component)
}
