//! A queue worker for crash tests: the code of the `jobs` and
//! `jobs-ack-first` components, which differ only in when a job is acked
//! ([`AckOrder`]).
//!
//! Jobs are messages `{"job":i}` in the queue `jobs`; doing job i is
//! appending `{"job":i}` to the journal `done`.
//!
//! - `enqueue N [--delay-ms D]` pushes jobs 1..=N (dedup key `job-i`,
//!   delayed by D ms if given); prints `enqueued N`.
//! - `work` pops jobs (no waiting, a 30 s lease) until none is ready, does
//!   each and acks it: `jobs` appends then acks, `jobs-ack-first` acks then
//!   appends. Prints `did job i` per job.
//! - `check N`: every job 1..=N is done (in `done`) or still pending in the
//!   queue (ready, leased or delayed): exit 0 with `ok: N jobs done or
//!   pending`, else `lost jobs: D done, P pending, N expected` and exit 1.
//!   A job done twice (redelivered after a crash) is allowed: at least once.
//! - `hold` pops one job (30 s lease) and does not ack it: prints `got
//!   job=i attempt=a`, or `nothing ready`.
//! - `dead` prints `dead COUNT`, then `dead job=i attempts=a` per dead
//!   letter.
//! - `now` prints the wall clock in ms since the Unix epoch (a sandbox's
//!   virtual clock reads the same).
//!
//! Storage errors are printed on stderr (`jobs: …`) with exit status 1;
//! usage errors exit with status 2.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use mini_guest::{PushOptions, RawJournal, RawQueue};

/// The queue of jobs.
pub const QUEUE: &str = "jobs";
/// The journal of done jobs.
pub const DONE: &str = "done";
/// The lease of a popped job.
pub const LEASE: Duration = Duration::from_secs(30);
/// Dead letters `dead` lists at most.
const MAX_DEAD: u32 = 1000;

/// When a job is acked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOrder {
    /// After its work is durable (`jobs`): at least once.
    AfterWork,
    /// Before its work (`jobs-ack-first`): a crash in between loses it.
    BeforeWork,
}

/// Runs the command line of the component `program`.
pub fn main(program: &str, order: AckOrder) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["enqueue", n] => count(n).and_then(|n| enqueue(n, None)),
        ["enqueue", n, "--delay-ms", d] => {
            count(n).and_then(|n| enqueue(n, Some(Duration::from_millis(count(d)?))))
        }
        ["work"] => work(order),
        ["check", n] => count(n).and_then(check),
        ["hold"] => hold(),
        ["dead"] => dead(),
        ["now"] => now(),
        _ => {
            eprintln!(
                "usage: {program} enqueue N [--delay-ms D] | work | check N | hold | dead | now"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{program}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn count(text: &str) -> Result<u64> {
    text.parse()
        .with_context(|| format!("{text:?} is not a non-negative integer"))
}

fn say(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

fn queue() -> Result<RawQueue> {
    RawQueue::open(QUEUE).context("cannot open the queue")
}

/// The job number of a payload `{"job":i}`.
fn job_of(payload: &str) -> Result<u64> {
    let value: serde_json::Value =
        serde_json::from_str(payload).with_context(|| format!("payload {payload:?}"))?;
    value["job"]
        .as_u64()
        .with_context(|| format!("payload {payload:?} has no job number"))
}

fn job_record(job: u64) -> String {
    format!(r#"{{"job":{job}}}"#)
}

fn enqueue(n: u64, delay: Option<Duration>) -> Result<ExitCode> {
    let queue = queue()?;
    for job in 1..=n {
        let mut options = PushOptions::dedup(format!("job-{job}"));
        if let Some(delay) = delay {
            options = options.with_delay(delay);
        }
        queue
            .push_with(&job_record(job), &options)
            .with_context(|| format!("cannot push job {job}"))?;
    }
    say(&format!("enqueued {n}"))?;
    Ok(ExitCode::SUCCESS)
}

fn work(order: AckOrder) -> Result<ExitCode> {
    let queue = queue()?;
    let done = RawJournal::open(DONE).context("cannot open the journal of done jobs")?;
    while let Some(delivery) = queue.pop(LEASE).context("cannot pop")? {
        let job = job_of(delivery.payload())?;
        let record = job_record(job);
        match order {
            AckOrder::AfterWork => {
                done.append(&record).context("cannot record the work")?;
                delivery.ack().context("cannot ack")?;
            }
            AckOrder::BeforeWork => {
                delivery.ack().context("cannot ack")?;
                done.append(&record).context("cannot record the work")?;
            }
        }
        say(&format!("did job {job}"))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn check(n: u64) -> Result<ExitCode> {
    let done = RawJournal::open(DONE).context("cannot open the journal of done jobs")?;
    let mut jobs = BTreeSet::new();
    for record in done.replay().context("cannot read the done jobs")? {
        let (_, record) = record.context("cannot read the done jobs")?;
        jobs.insert(job_of(&record)?);
    }
    let stats = queue()?.stats().context("cannot read the queue's stats")?;
    let pending = stats.ready + stats.leased + stats.delayed;
    let unknown: Vec<u64> = jobs.iter().copied().filter(|&j| j == 0 || j > n).collect();
    if !unknown.is_empty() {
        say(&format!("unknown jobs done: {unknown:?}"))?;
        return Ok(ExitCode::FAILURE);
    }
    let done_count = jobs.len() as u64;
    if done_count + pending < n {
        say(&format!(
            "lost jobs: {done_count} done, {pending} pending, {n} expected"
        ))?;
        return Ok(ExitCode::FAILURE);
    }
    say(&format!("ok: {n} jobs done or pending"))?;
    Ok(ExitCode::SUCCESS)
}

fn hold() -> Result<ExitCode> {
    match queue()?.pop(LEASE).context("cannot pop")? {
        Some(delivery) => say(&format!(
            "got job={} attempt={}",
            job_of(delivery.payload())?,
            delivery.attempt()
        ))?,
        None => say("nothing ready")?,
    }
    Ok(ExitCode::SUCCESS)
}

fn dead() -> Result<ExitCode> {
    let letters = queue()?
        .dead_letters(MAX_DEAD)
        .context("cannot list the dead letters")?;
    say(&format!("dead {}", letters.len()))?;
    for letter in letters {
        say(&format!(
            "dead job={} attempts={}",
            job_of(&letter.payload)?,
            letter.attempts
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn now() -> Result<ExitCode> {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_millis();
    say(&ms.to_string())?;
    Ok(ExitCode::SUCCESS)
}
