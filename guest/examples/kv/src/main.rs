//! A key-value state on the guest `StateManager`, for benchmarks and crash
//! tests: its mutations are a pure function of their sequence number, so a
//! test can compute the state any seq must recover to.
//!
//! ```text
//! kv open [--state NAME]
//! kv apply <count> [--batch B] [--keys K] [--checkpoint-every N] [--print-each] [--state NAME]
//! ```
//!
//! The mutation with seq `i` is `{"Set":{"key":"k<i mod K>","value":i}}`
//! (K = 16 unless `--keys`). The state holds the entries and `applied`, the
//! number of mutations folded into it (so a lost or doubled replay shows).
//!
//! - `open` recovers the state (printing recovery warnings to stderr) and
//!   prints `recovered seq <S> snapshot <seq|none> replayed <N>`, then
//!   `state <JSON>`.
//! - `apply` recovers, then applies `count` more mutations, one durable
//!   `commit` each (or `commit-batch` of B), with an automatic checkpoint
//!   every N mutations; `--print-each` prints `ack <seq>` after each
//!   acknowledged call and flushes. At the end: `applied <count> last <seq>`.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use mini_guest::{CheckpointPolicy, Mutator, StateManager};
use serde::{Deserialize, Serialize};

const USAGE: &str = "usage: kv open [--state NAME]\n       kv apply <count> [--batch B] [--keys K] [--checkpoint-every N] [--print-each] [--state NAME]";

/// The state: entries and how many mutations were folded into it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Kv {
    entries: BTreeMap<String, u64>,
    applied: u64,
}

/// A mutation of [`Kv`].
#[derive(Debug, Serialize, Deserialize)]
enum Op {
    Set { key: String, value: u64 },
}

impl Mutator<Kv> for Op {
    fn apply(&self, state: &mut Kv) {
        match self {
            Op::Set { key, value } => {
                state.entries.insert(key.clone(), *value);
            }
        }
        state.applied += 1;
    }
}

struct Args {
    command: String,
    count: u64,
    batch: u64,
    keys: u64,
    checkpoint_every: u64,
    print_each: bool,
    state: String,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        command: String::new(),
        count: 0,
        batch: 1,
        keys: 16,
        checkpoint_every: 0,
        print_each: false,
        state: "kv".into(),
    };
    let mut positional = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| it.next().with_context(|| format!("{flag} needs a value"));
        match arg.as_str() {
            "--batch" => args.batch = value("--batch")?.parse().context("--batch")?,
            "--keys" => args.keys = value("--keys")?.parse().context("--keys")?,
            "--checkpoint-every" => {
                args.checkpoint_every = value("--checkpoint-every")?
                    .parse()
                    .context("--checkpoint-every")?
            }
            "--state" => args.state = value("--state")?,
            "--print-each" => args.print_each = true,
            _ => positional.push(arg),
        }
    }
    match positional.as_slice() {
        [cmd] if cmd == "open" => args.command = cmd.clone(),
        [cmd, count] if cmd == "apply" => {
            args.command = cmd.clone();
            args.count = count.parse().context("count")?;
        }
        _ => bail!("bad arguments"),
    }
    if args.batch == 0 || args.keys == 0 {
        bail!("--batch and --keys must be at least 1");
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("kv: {e:#}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kv: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<()> {
    let policy = CheckpointPolicy::every_records(args.checkpoint_every);
    let mut kv = StateManager::<Kv, Op>::open_with(&args.state, policy).context("open")?;
    for warning in &kv.recovery().warnings {
        eprintln!("kv: warning: {warning}");
    }
    if args.command == "open" {
        let recovery = kv.recovery();
        let snapshot = recovery
            .snapshot_seq
            .map_or_else(|| "none".to_string(), |s| s.to_string());
        println!(
            "recovered seq {} snapshot {snapshot} replayed {}",
            kv.sequence(),
            recovery.replayed
        );
        println!("state {}", serde_json::to_string(kv.state())?);
        return Ok(());
    }
    let mut stdout = std::io::stdout().lock();
    let mut next = kv.sequence() + 1;
    let end = next + args.count;
    let mut last = kv.sequence();
    while next < end {
        let upto = (next + args.batch).min(end);
        let ops: Vec<Op> = (next..upto)
            .map(|i| Op::Set {
                key: format!("k{}", i % args.keys),
                value: i,
            })
            .collect();
        last = if ops.len() == 1 {
            let op = ops.into_iter().next().context("one mutation")?;
            kv.apply(op)?
        } else {
            kv.apply_batch(ops)?
        };
        if last != upto - 1 {
            bail!("the host gave seq {last}, expected {}", upto - 1);
        }
        if args.print_each {
            writeln!(stdout, "ack {last}")?;
            stdout.flush()?;
        }
        next = upto;
    }
    writeln!(stdout, "applied {} last {last}", args.count)?;
    Ok(())
}
