//! `mini kv`: the operator's view of a key-value bucket: one value, its
//! keys, or everything, read without the bucket's lock
//! ([`mini_engine::kv::inspect`]), so it works while a process holds it.
//!
//! ```text
//! DATA/NAMESPACE/bucket/NAME/        a bucket: journal/ and snapshots/
//! ```

use std::ffi::OsString;
use std::io::{self, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use mini_engine::kv::{BucketState, StoredEntry, inspect};
use mini_engine::layout::UnitKind;
use serde::Serialize;

use crate::address;
use crate::exit::{self, usage};
use crate::out;

/// Read a key-value bucket: a value, its keys, or all its entries.
///
/// A bucket is NAMESPACE NAME in the data directory --data DIR (default
/// ./mini-data: DATA/NAMESPACE/bucket/NAME/), or PATH, its directory (the
/// one holding journal/ and snapshots/). get takes the KEY after it; there
/// PATH must have a `/` in it (`./prefs`).
///
///     mini kv get app prefs theme        # {"key":"theme","text":"dark","version":7}
///     mini kv get app prefs logo --raw > logo.png
///     mini kv list app prefs --prefix user/ --max 10
///     mini kv dump app prefs | jq -r .key
///     mini kv dump mini-data/app/bucket/prefs
///
/// A value is bytes: UTF-8 text is printed as "text", any other bytes in
/// standard base64 as "base64", as the bucket stores them (FORMAT.md,
/// "Key-value buckets"). A key's version is the seq of the record that
/// last set it.
///
/// Takes no lock: works while a process holds the bucket (a write being
/// made at that moment is not seen). A damaged newest snapshot is passed
/// over with a warning on stderr, as opening the bucket does. Exits with 1
/// when get finds no such key or the bucket is damaged, 2 on a wrong
/// argument (a path that is no bucket), 3 when it cannot read (nothing
/// there).
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct KvArgs {
    #[command(subcommand)]
    command: KvCommand,
}

#[derive(Debug, Subcommand)]
enum KvCommand {
    Get(GetArgs),
    List(ListArgs),
    Dump(DumpArgs),
}

/// Print one key's value as a JSON line:
///
///     {"key":KEY,"text":TEXT,"version":N}      (UTF-8 text)
///     {"key":KEY,"base64":B64,"version":N}     (other bytes)
///
/// With --raw, writes the value's bytes alone (no newline) instead. A key
/// that is not there: a message on stderr and exit code 1. A KEY that
/// starts with `-` goes after `--`: `mini kv get app prefs -- -k`.
#[derive(Debug, Args)]
#[command(verbatim_doc_comment, about = "Print one key's value")]
pub struct GetArgs {
    /// NAMESPACE NAME KEY (with --data), or PATH KEY (PATH: a bucket
    /// directory, with a `/` in it).
    #[arg(value_name = "NAMESPACE NAME KEY | PATH KEY", required = true)]
    words: Vec<OsString>,
    /// The data directory (with NAMESPACE NAME).
    #[arg(long, default_value_os_t = crate::default_data_dir())]
    data: PathBuf,
    /// Write the value's bytes alone to stdout, not a JSON line.
    #[arg(long)]
    raw: bool,
}

/// Print the keys in order, one JSON string per line (so that a key with
/// a newline or a quote in it is unambiguous: `jq -r .` prints it as is).
#[derive(Debug, Args)]
#[command(about = "Print the keys in order, one JSON string per line")]
pub struct ListArgs {
    #[command(flatten)]
    address: BucketAddress,
    /// Only the keys that start with P.
    #[arg(long, value_name = "P", default_value = "")]
    prefix: String,
    /// Only the keys after K (K itself excluded): the last key of the
    /// page before.
    #[arg(long, value_name = "K")]
    after: Option<String>,
    /// Print at most N keys.
    #[arg(long, value_name = "N")]
    max: Option<usize>,
}

/// Print every entry in key order, one JSON line each:
///
///     {"key":KEY,"text":TEXT,"version":N}   or   {"key":KEY,"base64":B64,"version":N}
#[derive(Debug, Args)]
#[command(
    verbatim_doc_comment,
    about = "Print every entry in key order as JSON lines"
)]
pub struct DumpArgs {
    #[command(flatten)]
    address: BucketAddress,
}

/// Which bucket: PATH, or NAMESPACE NAME (with --data).
#[derive(Debug, Args)]
struct BucketAddress {
    /// PATH (a bucket directory), or NAMESPACE NAME (with --data).
    #[arg(value_name = "PATH | NAMESPACE NAME", required = true)]
    target: Vec<OsString>,
    /// The data directory (with NAMESPACE NAME).
    #[arg(long, default_value_os_t = crate::default_data_dir())]
    data: PathBuf,
}

/// One entry as `get` and `dump` print it: the key, then the value and
/// version as the bucket's snapshot stores them.
#[derive(Debug, Serialize)]
struct EntryLine<'a> {
    key: &'a str,
    #[serde(flatten)]
    entry: &'a StoredEntry,
}

/// `mini kv`.
pub fn kv(args: KvArgs) -> Result<ExitCode> {
    match args.command {
        KvCommand::Get(a) => get(&a),
        KvCommand::List(a) => list(&a),
        KvCommand::Dump(a) => dump(&a),
    }
}

/// `mini kv get`.
fn get(args: &GetArgs) -> Result<ExitCode> {
    let (target, [key]) = address::split_target(&args.words)? else {
        usage!("give the bucket, then one key: NAMESPACE NAME KEY (with --data DIR), or PATH KEY");
    };
    let Some(key) = key.to_str() else {
        usage!("the key {} is not UTF-8", key.to_string_lossy());
    };
    let dir = bucket_dir(target, &args.data)?;
    let state = read(&dir)?;
    let Some(entry) = state.entries.get(key) else {
        return Err(exit::not_found(format!(
            "no key {key:?} in bucket {}",
            dir.display()
        )));
    };
    if !args.raw {
        return out::print_json(&EntryLine { key, entry });
    }
    let Some(bytes) = entry.value.bytes() else {
        // `inspect` refuses such a bucket; this is only in case.
        return Err(exit::damage(format!(
            "the value of {key:?} in bucket {} is not valid base64",
            dir.display()
        )));
    };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match out.write_all(&bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => out::closed_or(e),
    }
}

/// `mini kv list`.
fn list(args: &ListArgs) -> Result<ExitCode> {
    let dir = args.address.dir()?;
    let state = read(&dir)?;
    let keys = keys(&state, &args.prefix, args.after.as_deref(), args.max);
    out::print_lines(keys.into_iter().map(|key| out::line(&key)))
}

/// `mini kv dump`.
fn dump(args: &DumpArgs) -> Result<ExitCode> {
    let dir = args.address.dir()?;
    let state = read(&dir)?;
    out::print_lines(
        state
            .entries
            .iter()
            .map(|(key, entry)| out::line(&EntryLine { key, entry })),
    )
}

/// The keys of `state` that start with `prefix`, after `after` (excluded),
/// at most `max` of them, in order.
fn keys<'a>(
    state: &'a BucketState,
    prefix: &str,
    after: Option<&str>,
    max: Option<usize>,
) -> Vec<&'a str> {
    // The keys with a prefix are one run in key order: start at the later
    // of the prefix and `after`, stop at the first key past the run.
    let from = match after {
        Some(after) if after >= prefix => Bound::Excluded(after),
        _ => Bound::Included(prefix),
    };
    state
        .entries
        .range::<str, _>((from, Bound::Unbounded))
        .map(|(key, _)| key.as_str())
        .take_while(|key| key.starts_with(prefix))
        .take(max.unwrap_or(usize::MAX))
        .collect()
}

/// The bucket's contents, read without its lock; damaged snapshots passed
/// over are warned of.
fn read(dir: &Path) -> Result<BucketState> {
    let found =
        inspect(dir).with_context(|| format!("cannot read the bucket in {}", dir.display()))?;
    for s in &found.skipped {
        eprintln!(
            "mini: warning: damaged {s}; the bucket is read from the snapshot before it and the journal"
        );
    }
    Ok(found.state)
}

impl BucketAddress {
    fn dir(&self) -> Result<PathBuf> {
        bucket_dir(&self.target, &self.data)
    }
}

/// The bucket directory that `words` (PATH, or NAMESPACE NAME in `data`)
/// name, checked.
fn bucket_dir(words: &[OsString], data: &Path) -> Result<PathBuf> {
    address::state_shaped_dir(words, data, UnitKind::Bucket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mini_engine::kv::{KvRecord, StoredValue};

    #[test]
    fn keys_filter_by_prefix_after_and_max() {
        let mut state = BucketState::default();
        for (seq, key) in ["a", "b/1", "b/2", "b/3", "ba", "c"].iter().enumerate() {
            state.apply(
                seq as u64 + 1,
                KvRecord::Set {
                    key: (*key).to_owned(),
                    value: StoredValue::of(b"v"),
                },
            );
        }
        assert_eq!(keys(&state, "", None, None).len(), 6);
        assert_eq!(keys(&state, "b/", None, None), ["b/1", "b/2", "b/3"]);
        assert_eq!(keys(&state, "b/", Some("b/1"), None), ["b/2", "b/3"]);
        assert_eq!(keys(&state, "b/", Some("a"), Some(2)), ["b/1", "b/2"]);
        assert!(keys(&state, "b/", Some("b/3"), None).is_empty());
        assert!(keys(&state, "b/", Some("bz"), None).is_empty());
        assert_eq!(keys(&state, "", Some("b/3"), Some(1)), ["ba"]);
        assert!(keys(&state, "", None, Some(0)).is_empty());
        assert!(keys(&state, "d", None, None).is_empty());
    }

    #[test]
    fn an_entry_line_is_the_key_then_the_stored_entry() {
        let text = StoredEntry {
            value: StoredValue::of(b"hi"),
            version: 3,
        };
        let line = out::line(&EntryLine {
            key: "k",
            entry: &text,
        })
        .expect("json");
        assert_eq!(line, r#"{"key":"k","text":"hi","version":3}"#);
        let bytes = StoredEntry {
            value: StoredValue::of(&[0xff, 0, 0x80]),
            version: 9,
        };
        let line = out::line(&EntryLine {
            key: "b",
            entry: &bytes,
        })
        .expect("json");
        assert_eq!(line, r#"{"key":"b","base64":"/wCA","version":9}"#);
    }
}
