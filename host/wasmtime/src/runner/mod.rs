//! Running a `wasi:cli/command` component with WASI and the storage
//! interfaces, under a memory limit and a time limit: what `mini run` and the
//! end-to-end tests use, and a starting point for embedders.
//!
//! ```no_run
//! use mini_host::runner::{Runner, RunnerConfig};
//! use mini_host::{MiniCtx, MiniHost};
//! use wasmtime_wasi::WasiCtx;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let runner = Runner::new(RunnerConfig::default())?;
//! let component = runner.load("counter.wasm".as_ref())?;
//! let wasi = WasiCtx::builder().inherit_stdio().arg("counter").build();
//! let host = MiniHost::new(); // one per process, shared by every run
//! let mini = MiniCtx::builder(&host, "./mini-data", "counter").build()?;
//! let exit_code = runner.run(&component, wasi, mini).await?;
//! println!("exited with {exit_code}");
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{CallHook, Config, Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::p2::bindings::Command;
use wasmtime_wasi::{I32Exit, WasiCtx};

use crate::ctx::MiniCtx;
use crate::stop::{StopSignal, Stopped};

mod store_data;

pub use store_data::RunState;
use store_data::{EpochTicker, MemoryLimitHit, MemoryLimiter, TimeLimitHit};

/// The default memory limit of an instance: 256 MiB.
pub const DEFAULT_MEMORY_LIMIT: usize = 256 * 1024 * 1024;
/// The default time limit of a run: 60 seconds.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(60);
/// The epoch tick: how often a running guest is checked against its time
/// limit (and yields to the async executor).
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Table elements an instance may have (each is a pointer-sized slot).
const MAX_TABLE_ELEMENTS: usize = 1 << 20;
/// The default for [`RunnerConfig::max_resources`].
pub const DEFAULT_MAX_RESOURCES: usize = 4096;

/// How a [`Runner`] runs components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerConfig {
    /// Bytes of linear memory an instance may grow to (all memories
    /// together); growing past it stops the instance with
    /// [`RunError::MemoryLimit`]. Default [`DEFAULT_MEMORY_LIMIT`].
    pub memory_limit: usize,
    /// Wall-clock time a run may take, from instantiation to the end of the
    /// command, host calls included; `None` for no limit. A guest computing
    /// is checked every [`EPOCH_TICK`] (epoch interruption), a guest waiting
    /// in a host call is stopped by a timer. Default [`DEFAULT_TIME_LIMIT`].
    pub time_limit: Option<Duration>,
    /// Fuel (roughly: WebAssembly instructions) a run may consume, for a
    /// deterministic CPU limit; `None` for no fuel metering (the default,
    /// metering costs some speed).
    pub fuel: Option<u64>,
    /// Whether compiled components are cached on disk (wasmtime's cache in
    /// the user's cache directory), so the next run starts fast. Default on.
    pub compile_cache: bool,
    /// Resources (handles of every interface: WASI's streams and pollables
    /// as well as the storage handles) an instance may hold at once in its
    /// resource table; past it a call that makes one traps. The storage
    /// handles also count against the instance's own
    /// [`Limits::max_open_handles`](crate::Limits::max_open_handles), which
    /// is an error the guest can handle. Default [`DEFAULT_MAX_RESOURCES`].
    pub max_resources: usize,
}

/// The limits of one run, where they differ from the runner's
/// configuration (see [`Runner::run_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// Bytes of linear memory the instance may grow to.
    pub memory_limit: usize,
    /// Wall-clock time the run may take; `None` for no limit.
    pub time_limit: Option<Duration>,
    /// Fuel the run may consume; `None` for none. Needs a runner whose
    /// configuration meters fuel (its `fuel` is set).
    pub fuel: Option<u64>,
}

impl RunnerConfig {
    /// The limits of a run with this configuration.
    pub fn run_limits(&self) -> RunLimits {
        RunLimits {
            memory_limit: self.memory_limit,
            time_limit: self.time_limit,
            fuel: self.fuel,
        }
    }
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            memory_limit: DEFAULT_MEMORY_LIMIT,
            time_limit: Some(DEFAULT_TIME_LIMIT),
            fuel: None,
            compile_cache: true,
            max_resources: DEFAULT_MAX_RESOURCES,
        }
    }
}

/// Why a component could not be run to its end.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The wasmtime engine could not be set up.
    #[error("cannot set up the wasmtime engine: {0}")]
    Engine(String),
    /// The component file could not be read or compiled.
    #[error("cannot load component {}: {message}", path.display())]
    Load {
        /// The component file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The component could not be instantiated (for example it imports an
    /// interface this host does not provide, or is not a `wasi:cli/command`).
    #[error("cannot instantiate the component: {0}")]
    Instantiate(String),
    /// The instance tried to grow its memory past the limit and was stopped.
    #[error(
        "the component was stopped: it exceeded its memory limit of {limit} bytes (it asked for {requested} bytes)"
    )]
    MemoryLimit {
        /// The limit in bytes.
        limit: usize,
        /// The memory size the instance asked for.
        requested: usize,
    },
    /// The run took longer than its time limit and was stopped.
    #[error("the component was stopped: it exceeded its time limit of {}", humantime(*.0))]
    TimeLimit(Duration),
    /// The run consumed all its fuel and was stopped.
    #[error("the component was stopped: it ran out of fuel ({0} units)")]
    OutOfFuel(u64),
    /// The component trapped (a WebAssembly trap or a host error).
    #[error("the component trapped: {0}")]
    Trap(String),
    /// The run was stopped by its [`StopSignal`]: at a call into the host or
    /// an epoch check (`waiting` false), or, when it did not come to one
    /// within [`STOP_GRACE`], while it waited in a WASI call (`waiting`
    /// true: a sleep, a poll). Either way no storage call was cut half-way.
    #[error("{}", if *waiting {
        "the component was stopped while it waited (graceful: no storage call was in flight)"
    } else {
        "the component was stopped at a call into the host (graceful: calls in flight finished)"
    })]
    Stopped {
        /// It was stopped while waiting in a WASI call.
        waiting: bool,
    },
}

/// How long a stopped run may take to come to its next call into the host
/// before it is dropped where it waits.
pub const STOP_GRACE: Duration = Duration::from_secs(1);

fn humantime(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// Compiles and runs `wasi:cli/command` components with WASI and the storage
/// interfaces. One runner serves many runs, also concurrently; the runs
/// share the runner's engine (and its compile cache).
///
/// Runs need a tokio runtime with the time driver enabled (for example
/// `#[tokio::main]`).
pub struct Runner {
    engine: Engine,
    linker: Linker<RunState>,
    config: RunnerConfig,
    _ticker: EpochTicker,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Runner {
    /// A runner with its own engine, configured by `config`.
    pub fn new(config: RunnerConfig) -> Result<Runner, RunError> {
        let mut wt = Config::new();
        wt.epoch_interruption(true);
        if config.fuel.is_some() {
            wt.consume_fuel(true);
        }
        if config.compile_cache {
            // A missing or unwritable cache directory only costs speed.
            if let Ok(cache) = wasmtime::Cache::from_file(None) {
                wt.cache(Some(cache));
            }
        }
        let engine = Engine::new(&wt).map_err(|e| RunError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| RunError::Engine(format!("{e:#}")))?;
        crate::add_to_linker_async(&mut linker).map_err(|e| RunError::Engine(format!("{e:#}")))?;
        let ticker = EpochTicker::start(&engine)?;
        Ok(Runner {
            engine,
            linker,
            config,
            _ticker: ticker,
        })
    }

    /// The runner's wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The runner's configuration.
    pub fn config(&self) -> &RunnerConfig {
        &self.config
    }

    /// Reads and compiles the component in `path` (blocking: compiling takes
    /// a while the first time).
    pub fn load(&self, path: &Path) -> Result<Component, RunError> {
        Component::from_file(&self.engine, path).map_err(|e| RunError::Load {
            path: path.to_path_buf(),
            message: format!("{e:#}"),
        })
    }

    /// Instantiates `component` with `wasi` and `mini` and calls its
    /// `wasi:cli/run` export. Returns the exit code: 0 when `run` returned
    /// `ok`, 1 for `err`, the code given to `wasi:cli/exit` otherwise.
    /// Records the component got a sequence number for are on disk, also
    /// when the run is stopped by a limit.
    pub async fn run(
        &self,
        component: &Component,
        wasi: WasiCtx,
        mini: MiniCtx,
    ) -> Result<i32, RunError> {
        self.run_with(component, wasi, mini, self.config.run_limits())
            .await
    }

    /// [`Runner::run`] with limits of its own (each module of a platform
    /// has its own memory, time and fuel).
    pub async fn run_with(
        &self,
        component: &Component,
        wasi: WasiCtx,
        mini: MiniCtx,
        limits: RunLimits,
    ) -> Result<i32, RunError> {
        self.run_until(component, wasi, mini, limits, StopSignal::new())
            .await
    }

    /// [`Runner::run_with`] until `stop` is raised: then the run ends
    /// gracefully (see [`StopSignal`]) with [`RunError::Stopped`], unless
    /// the component finishes first. Give the same signal to the context
    /// ([`MiniCtxBuilder::stop_signal`](crate::MiniCtxBuilder::stop_signal))
    /// so that its `pop-wait`s end at once.
    pub async fn run_until(
        &self,
        component: &Component,
        wasi: WasiCtx,
        mini: MiniCtx,
        limits: RunLimits,
        stop: StopSignal,
    ) -> Result<i32, RunError> {
        let mut table = ResourceTable::new();
        table.set_max_capacity(self.config.max_resources);
        let state = RunState {
            wasi,
            mini,
            table,
            limiter: MemoryLimiter {
                limit: limits.memory_limit,
            },
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        match (limits.fuel, self.config.fuel) {
            (Some(fuel), Some(_)) => store
                .set_fuel(fuel)
                .map_err(|e| RunError::Engine(format!("{e:#}")))?,
            (Some(_), None) => {
                return Err(RunError::Engine(
                    "a run with a fuel limit needs a runner configured with fuel".into(),
                ));
            }
            // A runner that meters fuel gives unlimited fuel to runs without.
            (None, Some(_)) => store
                .set_fuel(u64::MAX)
                .map_err(|e| RunError::Engine(format!("{e:#}")))?,
            (None, None) => {}
        }
        let started = Instant::now();
        let time_limit = limits.time_limit;
        store.set_epoch_deadline(1);
        let stopping = stop.clone();
        store.epoch_deadline_callback(move |_| {
            if stopping.is_stopping() {
                return Err(Stopped.into());
            }
            match time_limit {
                Some(limit) if started.elapsed() >= limit => Err(TimeLimitHit.into()),
                _ => Ok(UpdateDeadline::Yield(1)),
            }
        });
        // Refuses the guest's calls into the host once stopped; a call
        // already in the host runs to its end, and its result reaches the
        // guest (the hook is not asked on the way back).
        let stopping = stop.clone();
        store.call_hook(move |_, hook| match hook {
            CallHook::CallingHost if stopping.is_stopping() => Err(Stopped.into()),
            _ => Ok(()),
        });

        let run = async {
            let command = Command::instantiate_async(&mut store, component, &self.linker)
                .await
                .map_err(|e| self.classify(e, true, &limits))?;
            match command.wasi_cli_run().call_run(&mut store).await {
                Ok(Ok(())) => Ok(0),
                Ok(Err(())) => Ok(1),
                Err(e) => match e.downcast_ref::<I32Exit>() {
                    Some(exit) => Ok(exit.0),
                    None => Err(self.classify(e, false, &limits)),
                },
            }
        };
        let limited = async {
            match time_limit {
                // The epoch callback stops a computing guest; this timer
                // stops a guest that waits in a host call (a sleep, a
                // `pop-wait`).
                Some(limit) => tokio::time::timeout(limit, run)
                    .await
                    .unwrap_or(Err(RunError::TimeLimit(limit))),
                None => run.await,
            }
        };
        // A stopped guest that waits in a WASI call never comes to its next
        // host call: after a grace period it is dropped where it waits. A
        // storage call runs in place (`block_in_place`), so the run future
        // is never dropped in the middle of one.
        let grace = async {
            stop.stopped().await;
            tokio::time::sleep(STOP_GRACE).await;
        };
        tokio::select! {
            result = limited => result,
            () = grace => Err(RunError::Stopped { waiting: true }),
        }
    }

    /// The [`RunError`] for an error out of instantiation or the run.
    fn classify(&self, err: wasmtime::Error, instantiating: bool, limits: &RunLimits) -> RunError {
        if let Some(hit) = err.downcast_ref::<MemoryLimitHit>() {
            return RunError::MemoryLimit {
                limit: hit.limit,
                requested: hit.requested,
            };
        }
        if err.downcast_ref::<Stopped>().is_some() {
            return RunError::Stopped { waiting: false };
        }
        if err.downcast_ref::<TimeLimitHit>().is_some() {
            return RunError::TimeLimit(limits.time_limit.unwrap_or_default());
        }
        if let (Some(Trap::OutOfFuel), Some(fuel)) = (err.downcast_ref::<Trap>(), limits.fuel) {
            return RunError::OutOfFuel(fuel);
        }
        if instantiating && err.downcast_ref::<Trap>().is_none() {
            return RunError::Instantiate(format!("{err:#}"));
        }
        RunError::Trap(format!("{err:?}"))
    }
}
