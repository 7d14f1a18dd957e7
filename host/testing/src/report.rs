//! What an exploration found: every point probed, with the call, the
//! moment and what the check said; serializes to the JSON `mini test
//! --json` prints.

use mini_host::calls::CallMoment;
use serde::{Deserialize, Serialize};

use crate::explore::Probe;
use crate::plan::CallRecord;
use crate::run::{Exit, Run};

/// Bytes of a check's stdout and of its stderr a report keeps.
pub const REPORT_OUTPUT_BYTES: usize = 16 * 1024;

/// What a check said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOutcome {
    /// Whether it exited 0.
    pub passed: bool,
    /// How it ended (`exit 0`, `exit 1`, or why it did not finish).
    pub exit: String,
    /// Its stdout (the first [`REPORT_OUTPUT_BYTES`]).
    pub stdout: String,
    /// Its stderr (the first [`REPORT_OUTPUT_BYTES`]).
    pub stderr: String,
}

impl CheckOutcome {
    pub(crate) fn of(run: &Run) -> CheckOutcome {
        CheckOutcome {
            passed: run.succeeded(),
            exit: exit_text(&run.exit),
            stdout: clip(&run.stdout),
            stderr: clip(&run.stderr),
        }
    }
}

/// One point of an exploration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointResult {
    /// The call's number in the scenario (the first storage call is 1).
    pub call: u64,
    /// The crash moment (`before-effect`, `after-durable`); none for a
    /// fault.
    pub moment: Option<String>,
    /// The call (as the run made it, or as the reference run did if this
    /// run made fewer calls).
    pub storage_call: Option<CallRecord>,
    /// Whether the run came to the point: it crashed there, or the fault
    /// fired (a call that does no file operation the fault hits is not
    /// reached).
    pub reached: bool,
    /// How the scenario ended.
    pub scenario_exit: String,
    /// What the scenario printed (the first [`REPORT_OUTPUT_BYTES`]).
    pub scenario_stdout: String,
    /// What the check said.
    pub check: CheckOutcome,
}

impl std::fmt::Display for PointResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "call {}", self.call)?;
        if let Some(call) = &self.storage_call {
            write!(f, " {call}")?;
        }
        if let Some(moment) = &self.moment {
            write!(f, ", {moment}")?;
        }
        write!(
            f,
            ": check {} ({})",
            if self.check.passed {
                "passed"
            } else {
                "failed"
            },
            self.check.exit
        )?;
        for line in self.check.stdout.lines().chain(self.check.stderr.lines()) {
            write!(f, "\n    {line}")?;
        }
        Ok(())
    }
}

/// What an exploration found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// What was done at each point.
    pub probe: Probe,
    /// The scenario's arguments.
    pub scenario: Vec<String>,
    /// The check's arguments.
    pub check: Vec<String>,
    /// The seed of the sample.
    pub seed: u64,
    /// The storage calls of the scenario run to its end.
    pub calls: u64,
    /// How the scenario run to its end ended.
    pub scenario_exit: String,
    /// The check after the scenario run to its end, if it failed (then the
    /// invariant fails with no crash at all).
    pub without_crash: Option<CheckOutcome>,
    /// The points there are (calls × moments, or calls for faults).
    pub points_in_all: u64,
    /// The points probed, in order.
    pub points: Vec<PointResult>,
}

impl Report {
    /// The points whose check failed.
    pub fn failures(&self) -> impl Iterator<Item = &PointResult> {
        self.points.iter().filter(|p| !p.check.passed)
    }

    /// Whether every check passed (the one without a crash included).
    pub fn passed(&self) -> bool {
        self.without_crash.is_none() && self.failures().next().is_none()
    }

    /// The report as one JSON document.
    pub fn to_json(&self) -> String {
        // A report holds strings, numbers and options only: it serializes.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// The WIT-style name of a crash moment.
pub fn moment_name(moment: CallMoment) -> String {
    match moment {
        CallMoment::BeforeEffect => "before-effect",
        CallMoment::AfterDurable => "after-durable",
    }
    .to_owned()
}

pub(crate) fn exit_text(exit: &Exit) -> String {
    match exit {
        Exit::Code(code) => format!("exit {code}"),
        Exit::Crashed(point) => format!("crashed: {point}"),
        Exit::Failed(e) => e.to_string(),
    }
}

/// The first [`REPORT_OUTPUT_BYTES`] of `text` (cut at a char boundary).
pub(crate) fn clip(text: &str) -> String {
    if text.len() <= REPORT_OUTPUT_BYTES {
        return text.to_owned();
    }
    let mut end = REPORT_OUTPUT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
