//! `mini test`: crash-point and fault exploration of a component's scenario
//! (the same as `mini_testing::Exploration`), with the component's own
//! check after each point.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use mini_host::calls::CallMoment;
use mini_host::runner::{Runner, RunnerConfig};
use mini_testing::{Exploration, Fault, Report, Sandbox, SandboxError};

use crate::exit::{self, usage_error};

/// Test a component: stop it at every storage call, or fail every call,
/// and run its own check after each.
#[derive(Debug, Args)]
pub struct TestArgs {
    #[command(subcommand)]
    command: TestCommand,
}

#[derive(Debug, Subcommand)]
enum TestCommand {
    Crash(CrashArgs),
    Faults(FaultArgs),
}

/// Crash-point exploration: run the scenario once to count its storage
/// calls N; then for each call k (both moments: before the call has any
/// effect, and right after it is durable, before the component sees the
/// result) restore the data as it was before the scenario, run the
/// scenario stopped at k as a process crash would stop it, and run the
/// check (the component again, with the `--check` arguments: exit 0 means
/// the invariant holds). Every k whose check fails is reported with its
/// call, moment and the check's output; exit 1 if any failed.
///
/// Example: `mini test crash bank.wasm --check check -- transfer alice bob 10`.
///
/// The data lives in a temporary directory (or `--data`); the component's
/// queues and WASI clocks read a virtual clock that starts at
/// 2026-01-01T00:00:00Z and does not move. A crash point is a process
/// crash: what was written survives it, so syncs are skipped (power loss is
/// not simulated).
#[derive(Debug, Args)]
struct CrashArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The crash moments to explore.
    #[arg(long, value_enum, default_value_t = MomentArg::Both)]
    moment: MomentArg,
}

/// Fault exploration: as `mini test crash`, but instead of a crash each
/// call k in turn gets FAULT (its first file operation of that kind fails
/// once) and the scenario goes on; then the check runs. Points whose call
/// did no operation the fault hits are reported as not reached.
#[derive(Debug, Args)]
struct FaultArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The fault: `io` (a read or write fails: the call gets `io`),
    /// `disk-full` (a write fails with ENOSPC: `quota`), `fsync-fails` (a
    /// sync fails: `io`, the handle is poisoned).
    #[arg(long, value_parser = parse_fault)]
    fault: Fault,
}

#[derive(Debug, Args)]
struct CommonArgs {
    /// The component file (`.wasm`).
    component: PathBuf,
    /// The check's arguments, one shell-quoted string (`--check "check 3"`).
    #[arg(long, value_name = "ARGS")]
    check: String,
    /// Arguments of a run made once before the scenario (not explored;
    /// repeat for several, run in order).
    #[arg(long, value_name = "ARGS")]
    setup: Vec<String>,
    /// The namespace [default: the component's file name without
    /// extension].
    #[arg(long)]
    namespace: Option<String>,
    /// Keep the data in DIR (its contents before the setup are kept and
    /// restored at the end) instead of a temporary directory.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Explore at most N points, a sample picked by `--seed` [default:
    /// 10000].
    #[arg(long, value_name = "N", conflicts_with = "every_point")]
    sample: Option<usize>,
    /// Explore every point, however many there are.
    #[arg(long)]
    every_point: bool,
    /// The seed of the sample and of the component's insecure random seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print the report as JSON (every point, passed or not) to stdout.
    #[arg(long)]
    json: bool,
    /// The scenario's arguments.
    #[arg(last = true)]
    scenario: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MomentArg {
    Both,
    BeforeEffect,
    AfterDurable,
}

fn parse_fault(name: &str) -> Result<Fault, String> {
    Fault::from_name(name)
        .ok_or_else(|| format!("unknown fault {name:?} (io, disk-full, fsync-fails)"))
}

/// `mini test`.
pub fn test(args: TestArgs) -> Result<ExitCode> {
    let (common, exploration) = match &args.command {
        TestCommand::Crash(crash) => {
            let moments: &[CallMoment] = match crash.moment {
                MomentArg::Both => &[CallMoment::BeforeEffect, CallMoment::AfterDurable],
                MomentArg::BeforeEffect => &[CallMoment::BeforeEffect],
                MomentArg::AfterDurable => &[CallMoment::AfterDurable],
            };
            let (scenario, check) = scenario_and_check(&crash.common)?;
            let exploration = Exploration::crashes(&scenario, &check).moments(moments);
            (&crash.common, exploration)
        }
        TestCommand::Faults(faults) => {
            let (scenario, check) = scenario_and_check(&faults.common)?;
            let exploration = Exploration::faults(faults.fault, &scenario, &check);
            (&faults.common, exploration)
        }
    };
    let mut exploration = exploration.seed(common.seed);
    if let Some(n) = common.sample {
        exploration = exploration.sample(n);
    }
    if common.every_point {
        exploration = exploration.every_point();
    }
    for setup in &common.setup {
        exploration = exploration.setup(&split(setup, "--setup")?);
    }
    let sandbox = sandbox(common)?;
    let report =
        with_progress(|progress| exploration.run(&sandbox, progress)).map_err(|e| match e {
            SandboxError::Setup { .. } => anyhow::Error::new(e),
            other => anyhow::Error::new(other).context("the exploration could not run"),
        })?;
    if common.json {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", report.to_json())?;
    } else {
        print_report(&report, &common.component.display().to_string())?;
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::DAMAGE)
    })
}

fn scenario_and_check(common: &CommonArgs) -> Result<(Vec<String>, Vec<String>)> {
    Ok((common.scenario.clone(), split(&common.check, "--check")?))
}

/// `args` split as a POSIX shell would split them.
fn split(args: &str, flag: &str) -> Result<Vec<String>> {
    shlex::split(args).ok_or_else(|| usage_error(format!("{flag} {args:?}: unbalanced quotes")))
}

fn sandbox(common: &CommonArgs) -> Result<Sandbox> {
    // The CLI's engine compiles with both cores and caches what it compiled.
    let runner = Arc::new(Runner::new(RunnerConfig::default())?);
    let mut builder = Sandbox::builder(&common.component)
        .runner(runner)
        .seed(common.seed);
    if let Some(namespace) = &common.namespace {
        builder = builder.namespace(namespace);
    }
    if let Some(dir) = &common.data {
        builder = builder.data_root(dir);
    }
    builder
        .build()
        .with_context(|| format!("cannot test {}", common.component.display()))
}

/// Runs `work` with a progress bar of its points on a terminal.
fn with_progress<T>(work: impl FnOnce(&mut dyn FnMut(usize, usize)) -> T) -> T {
    let show = std::io::stderr().is_terminal();
    let mut bar: Option<ProgressBar> = None;
    let mut progress = |done: usize, total: usize| {
        if !show {
            return;
        }
        let bar = bar.get_or_insert_with(|| {
            let bar = ProgressBar::new(total as u64);
            if let Ok(style) = ProgressStyle::with_template(
                "crash points [{bar:40}] {pos}/{len} ({per_sec}, {eta})",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        bar.set_position(done as u64);
    };
    let result = work(&mut progress);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    result
}

fn print_report(report: &Report, component: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let what = match report.probe {
        mini_testing::Probe::Crash => "crash points".to_owned(),
        mini_testing::Probe::Fault(fault) => format!("{fault} faults"),
    };
    writeln!(
        out,
        "{component} {}: {} storage calls ({}); explored {} of {} {what}; check: {}",
        report.scenario.join(" "),
        report.calls,
        report.scenario_exit,
        report.points.len(),
        report.points_in_all,
        report.check.join(" "),
    )?;
    if let Some(check) = &report.without_crash {
        writeln!(
            out,
            "FAILED with no crash: check {} ({})",
            check.exit,
            check.stdout.trim_end()
        )?;
    }
    let not_reached = report.points.iter().filter(|p| !p.reached).count();
    let mut failed = 0;
    for failure in report.failures() {
        failed += 1;
        writeln!(out, "FAILED {failure}")?;
    }
    if not_reached > 0 {
        writeln!(
            out,
            "{not_reached} points not reached (the run took another path, or the call did no operation the fault hits)"
        )?;
    }
    if report.passed() {
        writeln!(out, "ok: every check passed")?;
    } else {
        writeln!(out, "{failed} of {} points failed", report.points.len())?;
    }
    Ok(())
}
