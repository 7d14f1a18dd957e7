//! The worker that acks a job after doing it: a crash between the work and
//! the ack delivers the job again (at least once), never loses it. See the
//! `jobs` library for the commands.
//!
//! ```text
//! jobs enqueue N [--delay-ms D] | work | check N | hold | dead | now
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    jobs::main("jobs", jobs::AckOrder::AfterWork)
}
