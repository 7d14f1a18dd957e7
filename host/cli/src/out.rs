//! What the tools print: JSON built with serde, one value per line, and a
//! reader that goes away (`mini cat | head`) taken as a normal end.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use mini_engine::queue::QueueStats;
use serde::Serialize;
use serde_json::value::RawValue;

/// A journal record as the tools print it: `{"seq":N,"data":<record>}`
/// (the record as stored).
#[derive(Debug, Serialize)]
pub struct RecordLine<'a> {
    /// Its sequence number.
    pub seq: u64,
    /// The record, one JSON value as stored.
    pub data: &'a RawValue,
}

/// A snapshot as the tools print it: `{"seq":N,"state":<state>}`.
#[derive(Debug, Serialize)]
pub struct SnapshotLine<'a> {
    /// The seq it covers.
    pub seq: u64,
    /// The state, one JSON value as stored.
    pub state: &'a RawValue,
}

/// Where a queue's messages are now, as `verify` and `queue stats` show it.
#[derive(Debug, Serialize)]
pub struct QueueCounts {
    /// Deliverable now.
    pub ready: u64,
    /// Leased, the lease running.
    pub leased: u64,
    /// Delayed.
    pub delayed: u64,
    /// Dead letters.
    pub dead: u64,
}

impl QueueCounts {
    /// The counts of `stats`.
    pub fn of(stats: &QueueStats) -> QueueCounts {
        QueueCounts {
            ready: stats.ready,
            leased: stats.leased,
            delayed: stats.delayed,
            dead: stats.dead,
        }
    }
}

/// Stored JSON text (checked by the engine when it was written) as a raw
/// value to put in a line as it is.
pub fn raw(json: &str) -> Result<&RawValue> {
    serde_json::from_str(json).context("stored JSON does not parse")
}

/// One JSON line of `value`.
pub fn line(value: &impl Serialize) -> Result<String> {
    serde_json::to_string(value).context("cannot write JSON")
}

/// Writes each line to stdout, then flushes.
pub fn print_lines(lines: impl IntoIterator<Item = Result<String>>) -> Result<ExitCode> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for line in lines {
        if let Err(e) = writeln!(out, "{}", line?) {
            return closed_or(e);
        }
    }
    if let Err(e) = out.flush() {
        return closed_or(e);
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints `value` as one JSON line.
pub fn print_json(value: &impl Serialize) -> Result<ExitCode> {
    print_lines([line(value)])
}

/// A reader that went away (`mini cat | head`) is a normal end.
pub fn closed_or(e: io::Error) -> Result<ExitCode> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(e).context("cannot write to stdout")
    }
}
