//! The producer of the producer/worker example: pushes numbered jobs onto a
//! durable queue.
//!
//! ```text
//! producer <count> [--queue NAME] [--batch B] [--from N] [--pause-ms MS] [--dedup]
//! ```
//!
//! Pushes `count` jobs `{"job":<n>,"task":"job <n>"}` with `n` from `N`
//! (default 1) onto the queue `NAME` (default `jobs`): one `push` per job,
//! or atomic `push-batch` calls of `B` jobs (the last one may be shorter).
//! After every acknowledged push (for a batch: after the batch) it prints
//! `pushed <id> <n>` for each job and flushes stdout; at the end
//! `produced <count> last <id>`. `--pause-ms MS` sleeps between pushes (a
//! producer that takes its time, to stop in the middle); `--dedup` pushes
//! each job with the dedup key `job-<n>`, so a producer started again after a
//! stop pushes no job twice (within the host's dedup window).
//!
//! Run it with a worker in one process, over a queue the host grants both:
//!
//! ```text
//! mini run producer.wasm --grant-queue jobs=broker --with "worker.wasm 100" -- 100
//! ```
//!
//! Usage errors exit with status 2 (under `mini run`, WASI 0.2 reports every
//! failure as exit status 1).

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use std::time::Duration;

use mini_guest::{PushOptions, Queue};
use serde::Serialize;

const USAGE: &str =
    "usage: producer <count> [--queue NAME] [--batch B] [--from N] [--pause-ms MS] [--dedup]";

/// One job.
#[derive(Serialize)]
struct Job {
    job: u64,
    task: String,
}

impl Job {
    fn new(n: u64) -> Self {
        Self {
            job: n,
            task: format!("job {n}"),
        }
    }
}

struct Args {
    count: u64,
    queue: String,
    batch: u64,
    from: u64,
    pause: Option<Duration>,
    dedup: bool,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("producer: {e:#}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("producer: {e:#}");
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
    let mut batch = 1;
    let mut from = 1;
    let mut pause = None;
    let mut dedup = false;
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "--queue" => queue = argv.next().context("--queue needs a name")?,
            "--batch" => batch = positive("--batch", argv.next())?,
            "--from" => from = positive("--from", argv.next())?,
            "--pause-ms" => {
                pause = Some(Duration::from_millis(positive("--pause-ms", argv.next())?))
            }
            "--dedup" => dedup = true,
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
        batch,
        from,
        pause,
        dedup,
    })
}

fn keyed(jobs: Vec<Job>) -> Vec<(Job, PushOptions)> {
    jobs.into_iter()
        .map(|job| {
            let options = PushOptions {
                dedup_key: Some(format!("job-{}", job.job)),
                ..PushOptions::default()
            };
            (job, options)
        })
        .collect()
}

fn run(args: &Args) -> Result<()> {
    let queue = Queue::<Job>::open(&args.queue)
        .with_context(|| format!("cannot open queue {:?}", args.queue))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let end = args
        .from
        .checked_add(args.count)
        .context("job numbers overflow")?;
    let mut next = args.from;
    let mut last = None;
    while next < end {
        let n = (end - next).min(args.batch);
        let jobs: Vec<Job> = (next..next + n).map(Job::new).collect();
        let numbers: Vec<u64> = jobs.iter().map(|j| j.job).collect();
        let ids = if args.dedup {
            queue
                .push_batch_with(&keyed(jobs))
                .with_context(|| format!("push of jobs {next}..={} failed", next + n - 1))?
        } else if n == 1 {
            vec![
                queue
                    .push(&jobs[0])
                    .with_context(|| format!("push of job {next} failed"))?,
            ]
        } else {
            queue
                .push_batch(&jobs)
                .with_context(|| format!("push-batch of jobs {next}..={} failed", next + n - 1))?
        };
        for (id, job) in ids.iter().zip(&numbers) {
            writeln!(out, "pushed {id} {job}")?;
        }
        out.flush()?;
        if let Some(pause) = args.pause {
            std::thread::sleep(pause);
        }
        last = ids.last().copied().or(last);
        next += n;
    }
    match last {
        Some(id) => writeln!(out, "produced {} last {id}", args.count)?,
        None => writeln!(out, "produced 0")?,
    }
    out.flush()?;
    Ok(())
}
