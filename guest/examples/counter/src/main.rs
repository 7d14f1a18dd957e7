//! The mini quick start: a durable counter.
//!
//! Each run opens the journal `counter`, appends `Inc { by: N }` (N is the
//! first argument, 1 by default), replays the whole journal, folds it and
//! prints one line:
//!
//! ```text
//! total = <sum> (records: <count>, last seq: <seq>)
//! ```
//!
//! Records on disk look like `{"Inc":{"by":1}}` or `{"Set":{"value":10}}`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use mini_guest::Journal;
use serde::{Deserialize, Serialize};

/// A mutation of the counter (serde's externally tagged enum form).
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Counter {
    Inc { by: u64 },
    Set { value: u64 },
}

fn main() -> ExitCode {
    match run() {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("counter: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<String> {
    let by = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse::<u64>()
            .with_context(|| format!("the increment {arg:?} is not a non-negative integer"))?,
        None => 1,
    };

    let journal = Journal::<Counter>::open("counter").context("cannot open journal \"counter\"")?;
    journal
        .append(&Counter::Inc { by })
        .context("cannot append to journal \"counter\"")?;

    let (mut total, mut count, mut last) = (0u64, 0u64, 0u64);
    for record in journal
        .replay()
        .context("cannot read journal \"counter\"")?
    {
        let (seq, mutation) = record.context("cannot read journal \"counter\"")?;
        total = match mutation {
            Counter::Inc { by } => total.saturating_add(by),
            Counter::Set { value } => value,
        };
        count += 1;
        last = seq;
    }
    Ok(format!(
        "total = {total} (records: {count}, last seq: {last})"
    ))
}
