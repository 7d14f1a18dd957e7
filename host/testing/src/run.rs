//! What one run of a component did: how it ended, its output, its storage
//! calls and the faults that fired.

use mini_host::calls::CrashPoint;
use mini_host::runner::RunError;

use crate::plan::{CallRecord, InjectedFault};

/// Bytes of stdout and of stderr kept from a run (the rest is dropped).
pub const OUTPUT_CAPACITY: usize = 4 * 1024 * 1024;

/// How a run ended.
#[derive(Debug)]
pub enum Exit {
    /// The command ran to its end with this exit code (0: `ok`, 1: `err`,
    /// or the code given to `wasi:cli/exit`).
    Code(i32),
    /// The plan's crash point stopped it.
    Crashed(CrashPoint),
    /// It was stopped otherwise: a trap, a limit.
    Failed(RunError),
}

/// What one run of the component did.
#[derive(Debug)]
pub struct Run {
    /// How it ended.
    pub exit: Exit,
    /// What it wrote to stdout (up to [`OUTPUT_CAPACITY`] bytes).
    pub stdout: String,
    /// What it wrote to stderr (up to [`OUTPUT_CAPACITY`] bytes).
    pub stderr: String,
    /// How many storage calls it made (a crash point's call included).
    pub call_count: u64,
    /// Its storage calls in order (the first
    /// [`MAX_RECORDED_CALLS`](crate::MAX_RECORDED_CALLS)): call `k` is
    /// `calls[k - 1]`.
    pub calls: Vec<CallRecord>,
    /// The plan's faults the run came to, and whether each fired.
    pub faults: Vec<InjectedFault>,
}

impl Run {
    /// The exit code, if the command ran to its end.
    pub fn exit_code(&self) -> Option<i32> {
        match self.exit {
            Exit::Code(code) => Some(code),
            _ => None,
        }
    }

    /// Whether the command ran to its end with exit code 0.
    pub fn succeeded(&self) -> bool {
        self.exit_code() == Some(0)
    }

    /// Where the plan's crash point stopped it, if it did.
    pub fn crash_point(&self) -> Option<&CrashPoint> {
        match &self.exit {
            Exit::Crashed(point) => Some(point),
            _ => None,
        }
    }

    /// Storage call `k` (1-based), if it was recorded.
    pub fn call(&self, k: u64) -> Option<&CallRecord> {
        let index = usize::try_from(k.checked_sub(1)?).ok()?;
        self.calls.get(index)
    }
}
