//! Crash-point exploration: run a scenario once to count its storage calls
//! N; then for each call k (or a seeded sample) put the data back as it was
//! before the scenario, run the scenario stopped at k (both moments) or
//! with a fault at k, and run the component's own check; report every k
//! whose check fails.

use mini_host::calls::CallMoment;
use serde::{Deserialize, Serialize};

use crate::plan::Plan;
use crate::report::{CheckOutcome, PointResult, Report, clip, exit_text, moment_name};
use crate::run::Run;
use crate::sandbox::Sandbox;
use crate::{Fault, SandboxError};

/// Points an exploration probes at most unless told otherwise
/// ([`Exploration::sample`]): past it, a seeded sample of this many (a
/// guest can make any number of calls).
pub const DEFAULT_MAX_POINTS: usize = 10_000;

/// What an exploration does at each call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "fault")]
pub enum Probe {
    /// Stops the scenario at the call, at each of the moments.
    Crash,
    /// Injects the fault into the call, and lets the scenario go on.
    Fault(Fault),
}

/// A crash-point (or fault) exploration of a scenario.
///
/// ```no_run
/// use mini_testing::{Exploration, Sandbox};
///
/// let sandbox = Sandbox::new("target/wasm32-wasip2/release/bank.wasm")?;
/// let report = Exploration::crashes(&["transfer", "alice", "bob", "10"], &["check"])
///     .run(&sandbox, &mut |_done, _total| {})?;
/// for failure in report.failures() {
///     eprintln!("{failure}");
/// }
/// assert!(report.passed());
/// # Ok::<(), mini_testing::SandboxError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exploration {
    probe: Probe,
    scenario: Vec<String>,
    check: Vec<String>,
    setup: Vec<Vec<String>>,
    moments: Vec<CallMoment>,
    sample: Option<usize>,
    seed: u64,
}

impl Exploration {
    /// Explores crash points: the scenario is the component run with
    /// `scenario` as its arguments, the check the component run with
    /// `check` (exit 0: the invariant holds).
    pub fn crashes(scenario: &[impl AsRef<str>], check: &[impl AsRef<str>]) -> Exploration {
        Exploration::new(Probe::Crash, scenario, check)
    }

    /// Explores `fault` at every call of the scenario.
    pub fn faults(
        fault: Fault,
        scenario: &[impl AsRef<str>],
        check: &[impl AsRef<str>],
    ) -> Exploration {
        Exploration::new(Probe::Fault(fault), scenario, check)
    }

    fn new(probe: Probe, scenario: &[impl AsRef<str>], check: &[impl AsRef<str>]) -> Exploration {
        Exploration {
            probe,
            scenario: owned(scenario),
            check: owned(check),
            setup: Vec::new(),
            moments: vec![CallMoment::BeforeEffect, CallMoment::AfterDurable],
            sample: Some(DEFAULT_MAX_POINTS),
            seed: 0,
        }
    }

    /// Runs the component with `args` once before the scenario (each
    /// setup in the order given, never crashed): the data every crash
    /// point starts from. A setup that does not exit 0 fails the
    /// exploration.
    pub fn setup(mut self, args: &[impl AsRef<str>]) -> Exploration {
        self.setup.push(owned(args));
        self
    }

    /// Only the crash moments in `moments` (default both).
    pub fn moments(mut self, moments: &[CallMoment]) -> Exploration {
        self.moments = moments.to_vec();
        self
    }

    /// At most `points` points, picked by a generator seeded with the
    /// exploration's seed when there are more (default
    /// [`DEFAULT_MAX_POINTS`]).
    pub fn sample(mut self, points: usize) -> Exploration {
        self.sample = Some(points);
        self
    }

    /// Every point, however many the scenario has.
    pub fn every_point(mut self) -> Exploration {
        self.sample = None;
        self
    }

    /// The seed of the sample (default 0).
    pub fn seed(mut self, seed: u64) -> Exploration {
        self.seed = seed;
        self
    }

    /// Runs the exploration in `sandbox`; `progress` gets (points done,
    /// points in all) after each point. The sandbox's data and clock are
    /// put back as they were after the setup when it returns.
    pub fn run(
        &self,
        sandbox: &Sandbox,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Report, SandboxError> {
        for args in &self.setup {
            let run = sandbox.run(args)?;
            if !run.succeeded() {
                return Err(SandboxError::Setup {
                    args: args.clone(),
                    exit: exit_text(&run.exit),
                    stderr: clip(&run.stderr),
                });
            }
        }
        let start = sandbox.save()?;
        let reference = sandbox.run(&self.scenario)?;
        let reference_check = sandbox.run(&self.check)?;
        let mut report = Report {
            probe: self.probe,
            scenario: self.scenario.clone(),
            check: self.check.clone(),
            seed: self.seed,
            calls: reference.call_count,
            scenario_exit: exit_text(&reference.exit),
            without_crash: (!reference_check.succeeded())
                .then(|| CheckOutcome::of(&reference_check)),
            points_in_all: 0,
            points: Vec::new(),
        };
        let points = self.points(reference.call_count);
        report.points_in_all = self.point_count(reference.call_count);
        for (done, &(call, moment)) in points.iter().enumerate() {
            sandbox.restore(&start)?;
            report
                .points
                .push(self.probe_point(sandbox, &reference, call, moment)?);
            progress(done + 1, points.len());
        }
        sandbox.restore(&start)?;
        Ok(report)
    }

    /// How many points there are for a scenario of `calls` calls.
    fn point_count(&self, calls: u64) -> u64 {
        match self.probe {
            Probe::Crash => calls.saturating_mul(self.moments.len() as u64),
            Probe::Fault(_) => calls,
        }
    }

    /// The points to probe, in order: every one, or the seeded sample.
    fn points(&self, calls: u64) -> Vec<(u64, Option<CallMoment>)> {
        let moments: Vec<Option<CallMoment>> = match self.probe {
            Probe::Crash => self.moments.iter().copied().map(Some).collect(),
            Probe::Fault(_) => vec![None],
        };
        let total = self.point_count(calls);
        let wanted = self.sample.map_or(total, |s| (s as u64).min(total));
        // Ascending either way (a BTreeSet iterates in order).
        let indices: Vec<u64> = if wanted == total {
            (0..total).collect()
        } else {
            let mut rng = fastrand::Rng::with_seed(self.seed);
            let mut chosen = std::collections::BTreeSet::new();
            while (chosen.len() as u64) < wanted {
                chosen.insert(rng.u64(..total));
            }
            chosen.into_iter().collect()
        };
        let per_call = moments.len().max(1) as u64;
        indices
            .into_iter()
            .filter_map(|i| {
                let moment = *moments.get((i % per_call) as usize)?;
                Some((i / per_call + 1, moment))
            })
            .collect()
    }

    fn probe_point(
        &self,
        sandbox: &Sandbox,
        reference: &Run,
        call: u64,
        moment: Option<CallMoment>,
    ) -> Result<PointResult, SandboxError> {
        let plan = match (self.probe, moment) {
            (Probe::Fault(fault), _) => Plan::new().fault_at(call, fault),
            (Probe::Crash, Some(moment)) => Plan::new().crash_at(call, moment),
            (Probe::Crash, None) => Plan::new(),
        };
        let run = sandbox.run_with(&self.scenario, &plan)?;
        let reached = match self.probe {
            Probe::Crash => run.crash_point().is_some(),
            Probe::Fault(_) => run.faults.iter().any(|f| f.call == call && f.fired),
        };
        let check = sandbox.run(&self.check)?;
        Ok(PointResult {
            call,
            moment: moment.map(moment_name),
            storage_call: run.call(call).or(reference.call(call)).cloned(),
            reached,
            scenario_exit: exit_text(&run.exit),
            scenario_stdout: clip(&run.stdout),
            check: CheckOutcome::of(&check),
        })
    }
}

fn owned(args: &[impl AsRef<str>]) -> Vec<String> {
    args.iter().map(|s| s.as_ref().to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_point_or_a_seeded_sample_of_distinct_points() {
        let all = Exploration::crashes(&["s"], &["c"]);
        let points = all.points(3);
        assert_eq!(points.len(), 6);
        assert_eq!(points[0], (1, Some(CallMoment::BeforeEffect)));
        assert_eq!(points[5], (3, Some(CallMoment::AfterDurable)));

        let sampled = all.clone().sample(10).seed(42);
        let a = sampled.points(1000);
        assert_eq!(a, sampled.points(1000), "the same seed, the same sample");
        assert_eq!(a.len(), 10);
        let mut distinct = a.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), 10);
        assert_ne!(a, all.clone().sample(10).seed(43).points(1000));

        let faults = Exploration::faults(Fault::Io, &["s"], &["c"]);
        assert_eq!(faults.points(2), vec![(1, None), (2, None)]);
        assert!(all.points(0).is_empty());
        assert_eq!(all.points(100_000).len(), DEFAULT_MAX_POINTS);
        assert_eq!(all.clone().every_point().points(10_000).len(), 20_000);
    }
}
