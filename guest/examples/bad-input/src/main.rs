//! Sends bad input to the host and prints one machine-checkable line per
//! case; it never panics.
//!
//! Every case prints `case <name>: ok <seq>` or `case <name>: err <variant>`,
//! where `<variant>` is the WIT error variant in kebab case (for example
//! `err invalid-record`). For the `name-*` cases, which open a journal, `ok`
//! carries the opened journal's last seq.
//!
//! Sequence, on the journal `victim`:
//!
//! 1. `open-victim`, `setup-1` (`{"ok":1}`), `setup-2` (`{"ok":2}`): must succeed;
//! 2. bad records: `invalid-json`, `two-values`, `empty`, `too-large` (a 2 MiB
//!    JSON string), `batch-with-bad` (`[{"ok":3}, "not json"]`, must be
//!    rejected whole), `empty-batch` (prints whatever the host returns);
//! 3. bad names: `name-empty`, `name-dotdot`, `name-slash`, `name-backslash`,
//!    `name-long` (300 bytes), `name-nul`, `name-dot`, `name-control`;
//! 4. `after`: appends `{"ok":3}` (must succeed);
//! 5. replays `victim` and prints `records: <JSON array of the records' text>`;
//! 6. asks a cursor for blocks with extreme arguments and prints how many
//!    records came: `block-all` (`max` and `max-bytes` u32::MAX: every
//!    record), `block-none` (`max` 0: none), `block-one` (`max-bytes` 0:
//!    one, the one crossing it), `block-rest` (the others).
//!
//! The exit status is 0 when the steps that must succeed did (1, 4 and 5),
//! whatever the bad cases returned; judging those is up to the caller.

use std::process::ExitCode;

use mini_guest::{Error, RawJournal};

/// Prints the outcome of one case and returns whether it succeeded.
fn report(name: &str, result: Result<u64, Error>) -> bool {
    match result {
        Ok(seq) => {
            println!("case {name}: ok {seq}");
            true
        }
        Err(e) => {
            println!("case {name}: err {}", e.kind());
            eprintln!("bad-input: case {name}: {e}");
            false
        }
    }
}

fn main() -> ExitCode {
    let mut healthy = true;

    let victim = match RawJournal::open("victim") {
        Ok(journal) => {
            healthy &= report("open-victim", journal.last_seq());
            journal
        }
        Err(e) => {
            report("open-victim", Err(e));
            return ExitCode::FAILURE;
        }
    };
    healthy &= report("setup-1", victim.append(r#"{"ok":1}"#));
    healthy &= report("setup-2", victim.append(r#"{"ok":2}"#));

    // Bad records: each must be refused and change nothing.
    report("invalid-json", victim.append(r#"{"a":"#));
    report("two-values", victim.append(r#"{"a":1} {"b":2}"#));
    report("empty", victim.append(""));
    let huge = format!("\"{}\"", "x".repeat(2 * 1024 * 1024 - 2));
    report("too-large", victim.append(&huge));
    drop(huge);
    report(
        "batch-with-bad",
        victim.append_batch(&[r#"{"ok":3}"#, "not json"]),
    );
    report("empty-batch", victim.append_batch::<&str>(&[]));

    // Bad names: each open must be refused.
    let long = "a".repeat(300);
    let names: [(&str, &str); 8] = [
        ("name-empty", ""),
        ("name-dotdot", "../x"),
        ("name-slash", "a/b"),
        ("name-backslash", "a\\b"),
        ("name-long", &long),
        ("name-nul", "a\0b"),
        ("name-dot", "."),
        ("name-control", "a\u{7}b"),
    ];
    for (case, name) in names {
        report(case, RawJournal::open(name).and_then(|j| j.last_seq()));
    }

    // The journal still works and holds exactly what was accepted.
    healthy &= report("after", victim.append(r#"{"ok":3}"#));
    match victim
        .replay()
        .and_then(|records| records.map(|r| r.map(|(_seq, data)| data)).collect())
    {
        Ok(records) => {
            let records: Vec<String> = records;
            match serde_json::to_string(&records) {
                Ok(json) => println!("records: {json}"),
                Err(e) => {
                    println!("records: err serialize");
                    eprintln!("bad-input: records: {e}");
                    healthy = false;
                }
            }
        }
        Err(e) => {
            println!("records: err {}", e.kind());
            eprintln!("bad-input: records: {e}");
            healthy = false;
        }
    }

    // Blocks with extreme arguments: the host caps them, never traps.
    let blocks = |max: u32, max_bytes: u32, cursor: &mini_guest::RawRecords| {
        cursor
            .as_bindings()
            .next_block(max, max_bytes)
            .map(|block| block.ends.len() as u64)
            .map_err(|e| Error::from_host(mini_guest::Resource::Journal, e))
    };
    match victim.read_from(0) {
        Ok(cursor) => {
            healthy &= report("block-all", blocks(u32::MAX, u32::MAX, &cursor));
        }
        Err(e) => healthy &= report("block-all", Err(e)),
    }
    match victim.read_from(0) {
        Ok(cursor) => {
            healthy &= report("block-none", blocks(0, u32::MAX, &cursor));
            healthy &= report("block-one", blocks(u32::MAX, 0, &cursor));
            healthy &= report("block-rest", blocks(u32::MAX, u32::MAX, &cursor));
        }
        Err(e) => healthy &= report("block-none", Err(e)),
    }

    if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
