//! The worker of the producer/worker example: pops jobs from a durable
//! queue, does them and acks them.
//!
//! ```text
//! worker <count> [--queue NAME] [--fail-every K] [--lease-ms MS] [--idle-ms MS] [--poll] [--until-idle]
//! ```
//!
//! Opens the queue `NAME` (default `jobs`), says so on stderr
//! (`worker: waiting on queue NAME`), then waits for jobs
//! `{"job":<n>,…}` (`pop_wait`, leased for `--lease-ms`, default 30000)
//! until it has done `count` of them. Each job done is acked (with
//! `ack_next`, which takes the next job in the same durable write, while more
//! are to come), then printed as `done <id> <n> attempt <a>`. With `--fail-every K`, every K-th
//! first delivery (attempt 1) is nacked instead (available again at once,
//! printed as `nacked <id> <n> attempt 1`), so redeliveries show: each
//! nacked job comes back with attempt 2 and is done then (redeliveries are
//! never nacked, so no job goes to the dead letters). A message that is
//! not a job is acked (dropped) with a warning on stderr and not counted. At
//! the end it prints `processed <count> nacked <k>`.
//!
//! When no message comes for `--idle-ms` (default 30000) it gives up:
//! `worker: no message for … ms` on stderr, exit status 1 — or, with
//! `--until-idle`, it is done (the queue is drained: workers that share a
//! queue cannot know their share), exit status 0; `count` 0 then means no
//! bound.
//!
//! With `--poll` it waits on the queue's `wasi:io` pollable instead of
//! `pop_wait` (`queue.subscribe().block()` whenever a pop finds nothing:
//! no host thread is held while it waits), and waits as long as it takes
//! (`--idle-ms` does not apply).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use mini_guest::Queue;
use serde::Deserialize;

const USAGE: &str = "usage: worker <count> [--queue NAME] [--fail-every K] [--lease-ms MS] [--idle-ms MS] [--poll] [--until-idle]";

/// One job (other fields are ignored).
#[derive(Deserialize)]
struct Job {
    job: u64,
}

struct Args {
    count: u64,
    queue: String,
    fail_every: Option<u64>,
    lease: Duration,
    idle: Duration,
    poll: bool,
    until_idle: bool,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("worker: {e:#}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("worker: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn positive(flag: &str, value: Option<String>) -> Result<u64> {
    let value = value.with_context(|| format!("{flag} needs a value"))?;
    value
        .parse::<u64>()
        .ok()
        .filter(|&n| n >= 1)
        .with_context(|| format!("{flag} {value:?} is not a positive integer"))
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args> {
    let mut count = None;
    let mut queue = "jobs".to_owned();
    let mut fail_every = None;
    let mut lease = Duration::from_secs(30);
    let mut idle = Duration::from_secs(30);
    let mut poll = false;
    let mut until_idle = false;
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "--queue" => queue = argv.next().context("--queue needs a name")?,
            "--fail-every" => fail_every = Some(positive("--fail-every", argv.next())?),
            "--lease-ms" => lease = Duration::from_millis(positive("--lease-ms", argv.next())?),
            "--idle-ms" => idle = Duration::from_millis(positive("--idle-ms", argv.next())?),
            "--poll" => poll = true,
            "--until-idle" => until_idle = true,
            "-h" | "--help" => bail!("help requested"),
            s if s.starts_with("--") => bail!("unknown flag {s:?}"),
            _ if count.is_none() => {
                count = Some(
                    arg.parse::<u64>()
                        .with_context(|| format!("count {arg:?} is not a non-negative integer"))?,
                );
            }
            _ => bail!("unexpected argument {arg:?}"),
        }
    }
    Ok(Args {
        count: count.context("missing <count>")?,
        queue,
        fail_every,
        lease,
        idle,
        poll,
        until_idle,
    })
}

/// Pops, waiting on the queue's pollable whenever nothing is there.
fn pop_polling(queue: &Queue<Job>, lease: Duration) -> Result<mini_guest::Delivery<Job>> {
    loop {
        // Subscribed before the pop, so a push between the two still wakes it.
        let ready = queue.subscribe();
        if let Some(delivery) = queue.pop(lease).context("pop failed")? {
            return Ok(delivery);
        }
        ready.block();
    }
}

fn run(args: &Args) -> Result<()> {
    let queue = Queue::<Job>::open(&args.queue)
        .with_context(|| format!("cannot open queue {:?}", args.queue))?;
    eprintln!("worker: waiting on queue {}", args.queue);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut processed = 0u64;
    let mut nacked = 0u64;
    let mut first_deliveries = 0u64;
    // The next job, already leased by the ack of the previous one.
    let mut next = None;
    let bounded = !(args.until_idle && args.count == 0);
    while !bounded || processed < args.count {
        let waited = match next.take() {
            Some(delivery) => Some(delivery),
            None if args.poll => Some(pop_polling(&queue, args.lease)?),
            None => queue
                .pop_wait(args.lease, args.idle)
                .context("pop-wait failed")?,
        };
        let Some(delivery) = waited else {
            if args.until_idle {
                break;
            }
            bail!(
                "no message for {} ms (processed {processed} of {}, nacked {nacked})",
                args.idle.as_millis(),
                args.count
            );
        };
        let (id, attempt) = (delivery.id(), delivery.attempt());
        if attempt == 1 {
            first_deliveries += 1;
        }
        let n = match delivery.payload() {
            Ok(job) => job.job,
            Err(e) => {
                eprintln!("worker: message {id} is not a job, dropping it: {e}");
                delivery
                    .ack()
                    .with_context(|| format!("ack of message {id} failed"))?;
                continue;
            }
        };
        let fail = args
            .fail_every
            .is_some_and(|k| first_deliveries.is_multiple_of(k));
        if attempt == 1 && fail {
            delivery
                .nack(Duration::ZERO)
                .with_context(|| format!("nack of message {id} failed"))?;
            nacked += 1;
            writeln!(out, "nacked {id} {n} attempt {attempt}")?;
        } else if !bounded || processed + 1 < args.count {
            // Ack and take the next job in one durable write.
            next = delivery
                .ack_next(args.lease)
                .with_context(|| format!("ack of message {id} failed"))?;
            processed += 1;
            writeln!(out, "done {id} {n} attempt {attempt}")?;
        } else {
            delivery
                .ack()
                .with_context(|| format!("ack of message {id} failed"))?;
            processed += 1;
            writeln!(out, "done {id} {n} attempt {attempt}")?;
        }
        out.flush()?;
    }
    writeln!(out, "processed {processed} nacked {nacked}")?;
    out.flush()?;
    Ok(())
}
