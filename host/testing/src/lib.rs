//! Sandboxed testing of components that use mini's storage: does a
//! component stay correct if the process dies at any storage call, if a
//! write fails, if the disk fills, if a lease runs out?
//!
//! Every durable effect of a component passes through mini's host, so a
//! test can stop the component at any storage call, at either of the two
//! moments that matter (before the call has any effect, or right after it
//! is durable and before the guest sees the result), fail a write or an
//! fsync, and run time forward, then start the component again over the
//! same data and ask it whether its invariant holds.
//!
//! * [`Sandbox`]: a temporary data root, a host and a compiled component;
//!   runs of it as a `wasi:cli/command` (stdout, stderr and the exit code
//!   captured), one after another over the same data; inspection of what
//!   it stored ([`Sandbox::journal`], [`Sandbox::state`],
//!   [`Sandbox::queue`]) through the engine.
//! * [`VirtualClock`]: the one clock the sandbox's queues (leases, delays,
//!   dedup windows) and the component's WASI clocks read;
//!   [`Sandbox::advance`] moves it.
//! * [`Plan`]: a crash point and faults ([`Fault`]: `io`, a full disk, a
//!   failed fsync) by call number, or seeded ([`Plan::seeded_faults`]).
//! * [`Exploration`]: crash-point exploration of a scenario, with a
//!   [`Report`] of every point whose check failed (also `mini test crash`
//!   on the command line).
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use mini_host::calls::CallMoment;
//! use mini_testing::{Exploration, Plan, Sandbox};
//!
//! const BANK: &str = "target/wasm32-wasip2/release/bank.wasm";
//! const JOBS: &str = "target/wasm32-wasip2/release/jobs.wasm";
//!
//! #[test]
//! fn no_crash_point_loses_money() {
//!     let sandbox = Sandbox::new(BANK).unwrap();
//!     // Stop the transfer at each of its storage calls, before the call has
//!     // any effect and right after it is durable; run `check` after each.
//!     let report = Exploration::crashes(&["transfer", "alice", "bob", "10"], &["check"])
//!         .run(&sandbox, &mut |_done, _total| {})
//!         .unwrap();
//!     for failure in report.failures() {
//!         eprintln!("{failure}"); // the call, the moment, the check's output
//!     }
//!     assert!(report.passed());
//! }
//!
//! #[test]
//! fn a_transfer_stopped_after_its_commit_is_there_on_restart() {
//!     let sandbox = Sandbox::new(BANK).unwrap();
//!     let first = sandbox.run(&["transfer", "alice", "bob", "10"]).unwrap();
//!     assert!(first.succeeded(), "{}", first.stderr);
//!     let commit = first.calls.iter().position(|c| c.function == "commit-batch").unwrap();
//!     let plan = Plan::new().crash_at(commit as u64 + 1, CallMoment::AfterDurable);
//!     let crashed = sandbox.run_with(&["transfer", "alice", "bob", "10"], &plan).unwrap();
//!     assert!(crashed.crash_point().is_some());
//!     // A new instance over the same data: the second transfer is there.
//!     let balances = sandbox.run(&["balances"]).unwrap();
//!     assert_eq!(balances.stdout.trim(), r#"{"alice":80,"bob":120}"#);
//!     // What the component stored, read through the engine.
//!     assert_eq!(sandbox.state("accounts").unwrap().mutations.len(), 4);
//! }
//!
//! #[test]
//! fn an_unacked_job_comes_back_when_its_lease_runs_out() {
//!     let sandbox = Sandbox::new(JOBS).unwrap();
//!     assert!(sandbox.run(&["enqueue", "1"]).unwrap().succeeded());
//!     assert!(sandbox.run(&["hold"]).unwrap().stdout.contains("attempt=1"));
//!     sandbox.advance(Duration::from_secs(31)); // the 30 s lease runs out: no sleep
//!     assert!(sandbox.run(&["hold"]).unwrap().stdout.contains("attempt=2"));
//!     assert_eq!(sandbox.queue("jobs").unwrap().leased().len(), 1);
//! }
//! ```
//!
//! A crash point is a process crash: what the process wrote survives it,
//! synced or not, so the sandbox skips real syncs unless asked
//! ([`SandboxBuilder::real_syncs`]); see [`faults`] for why.
#![warn(missing_docs)]

mod clock;
mod explore;
pub mod faults;
mod inspect;
mod plan;
mod report;
mod run;
mod sandbox;
mod saved;

pub use clock::{VIRTUAL_EPOCH_NANOS, VirtualClock};
pub use explore::{DEFAULT_MAX_POINTS, Exploration, Probe};
pub use faults::Fault;
pub use inspect::{QueueView, StateView};
pub use plan::{CallRecord, InjectedFault, MAX_RECORDED_CALLS, Plan};
pub use report::{CheckOutcome, PointResult, REPORT_OUTPUT_BYTES, Report, moment_name};
pub use run::{Exit, OUTPUT_CAPACITY, Run};
pub use sandbox::{Sandbox, SandboxBuilder, SavedData, load_component};

/// Why a sandbox could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The component could not be loaded, or the runner set up.
    #[error(transparent)]
    Run(#[from] mini_host::runner::RunError),
    /// The storage context could not be made (a bad namespace, limits out
    /// of range).
    #[error(transparent)]
    Context(#[from] mini_host::CtxError),
    /// A name is not a valid unit or namespace name.
    #[error("invalid name: {0}")]
    Name(#[from] mini_engine::name::NameError),
    /// A journal could not be read.
    #[error(transparent)]
    Journal(#[from] mini_engine::JournalError),
    /// A state could not be read.
    #[error(transparent)]
    State(#[from] mini_engine::StateError),
    /// A queue could not be read.
    #[error(transparent)]
    Queue(#[from] mini_engine::queue::QueueError),
    /// A `wasi:keyvalue` bucket could not be read.
    #[error(transparent)]
    Bucket(#[from] mini_engine::kv::KvError),
    /// The sandbox's files (its data root, a saved copy) could not be
    /// written.
    #[error("sandbox files: {0}")]
    Io(#[from] std::io::Error),
    /// A setup run of an exploration did not exit 0.
    #[error("the setup run {args:?} did not succeed ({exit}): {stderr}")]
    Setup {
        /// Its arguments.
        args: Vec<String>,
        /// How it ended.
        exit: String,
        /// What it wrote to stderr.
        stderr: String,
    },
}
