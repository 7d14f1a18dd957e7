//! Appends records for benchmarks and crash tests.
//!
//! ```text
//! appender <journal-name> <count> [batch-size] [--print-each] [--keep-going]
//! ```
//!
//! Appends `count` records `{"i":<n>,"pad":"<100 bytes>"}` with `n` from 1 to
//! `count`: one `append` per record when `batch-size` is absent or 1,
//! otherwise `append-batch` calls of `batch-size` records (the last one may
//! be shorter). With `--print-each` it prints `ack <seq>` after every
//! acknowledged call (for a batch: the seq of its last record) and flushes
//! stdout. At the end it prints `appended <count> last <seq> in <us> us`:
//! the time of the appends alone (for benchmarks that leave out
//! instantiation and the journal's open, as native ones do).
//!
//! With `--keep-going` a failed call does not stop it: it prints `error
//! <kind>: <message>` (the WIT error's name: `io`, `quota`, …), goes on with
//! the next records, and exits 1 at the end (for the fault-injection tests).

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use mini_guest::RawJournal;

const USAGE: &str =
    "usage: appender <journal-name> <count> [batch-size] [--print-each] [--keep-going]";

/// 100 bytes of padding, so that a record is about 120 bytes.
const PAD: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyzAB";

struct Args {
    name: String,
    count: u64,
    batch: u64,
    print_each: bool,
    keep_going: bool,
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("appender: {e:#}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("appender: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args() -> Result<Args> {
    let mut print_each = false;
    let mut keep_going = false;
    let mut positional = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--print-each" => print_each = true,
            "--keep-going" => keep_going = true,
            "-h" | "--help" => bail!("help requested"),
            s if s.starts_with("--") => bail!("unknown flag {s:?}"),
            _ => positional.push(arg),
        }
    }
    let (name, count, batch) = match positional.as_slice() {
        [name, count] => (name, count, None),
        [name, count, batch] => (name, count, Some(batch)),
        _ => bail!("expected 2 or 3 arguments, got {}", positional.len()),
    };
    let count = count
        .parse::<u64>()
        .with_context(|| format!("count {count:?} is not a non-negative integer"))?;
    let batch = match batch {
        Some(b) => b
            .parse::<u64>()
            .ok()
            .filter(|&b| b >= 1)
            .with_context(|| format!("batch-size {b:?} is not a positive integer"))?,
        None => 1,
    };
    Ok(Args {
        name: name.clone(),
        count,
        batch,
        print_each,
        keep_going,
    })
}

fn record(i: u64) -> String {
    format!(r#"{{"i":{i},"pad":"{PAD}"}}"#)
}

fn run(args: &Args) -> Result<()> {
    let journal = RawJournal::open(&args.name)
        .with_context(|| format!("cannot open journal {:?}", args.name))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut last = journal.last_seq().context("cannot read the last seq")?;

    let mut done = 0u64; // records appended so far; the next one is `done + 1`
    let mut failed = 0u64; // appends that failed (with --keep-going)
    let mut batch = Vec::new();
    let started = std::time::Instant::now();
    while done < args.count {
        let n = (args.count - done).min(args.batch);
        let appended = if args.batch == 1 {
            journal.append(&record(done + 1))
        } else {
            batch.clear();
            batch.extend((done + 1..=done + n).map(record));
            journal.append_batch(&batch)
        };
        let first = done + 1;
        done += n;
        match appended {
            Ok(seq) => {
                last = seq;
                if args.print_each {
                    writeln!(out, "ack {last}")?;
                    out.flush()?;
                }
            }
            Err(e) if args.keep_going => {
                failed += 1;
                writeln!(out, "error {}: {e}", e.kind())?;
                out.flush()?;
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("append of records {first}..={done} failed"));
            }
        }
    }
    let micros = started.elapsed().as_micros();
    writeln!(out, "appended {} last {last} in {micros} us", args.count)?;
    out.flush()?;
    if failed > 0 {
        bail!("{failed} of the appends failed");
    }
    Ok(())
}
