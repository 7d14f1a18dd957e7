//! The buggy worker: acks a job before doing it, so a crash after the ack
//! is durable and before the work is done loses the job (`check` then says
//! `lost jobs: …`). For crash tests: the harness must find that crash point.
//! See the `jobs` library for the commands.
//!
//! ```text
//! jobs-ack-first enqueue N [--delay-ms D] | work | check N | hold | dead | now
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    jobs::main("jobs-ack-first", jobs::AckOrder::BeforeWork)
}
