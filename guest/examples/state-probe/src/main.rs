//! Sends good and bad input to the host's `state` and `snapshot` interfaces
//! through the raw bindings and prints one machine-checkable line per case;
//! it never panics.
//!
//! Every case prints `case <name>: ok <value>` or `case <name>: err <variant>`
//! (the WIT error variant in kebab case). On the state `probe`:
//!
//! 1. `open`, `commit-1` (`{"n":1}`), `commit-2` (`{"n":2}`);
//! 2. bad mutations: `invalid-json`, `two-values`, `empty`, `too-large`
//!    (2 MiB), `batch-with-bad`, `empty-batch`;
//! 3. checkpoints: `checkpoint-beyond` (seq 99), `checkpoint-invalid` (`{`),
//!    `checkpoint` (`{"sum":3}` at the current seq), `checkpoint-below` (seq 1
//!    once a newer checkpoint exists);
//! 4. `open-again` (the state is held by this handle), bad names
//!    `name-empty`, `name-dotdot`, `name-slash`;
//! 5. on the snapshots `snaps`: `snaps-open`, `snaps-invalid`, `snaps-create`
//!    (seq 5), `snaps-restore` (prints the seq), `snaps-open-again`,
//!    `snaps-name-dotdot`;
//! 6. `after` (`{"n":3}`), then `recovery: <snapshot seq> <state> <JSON array
//!    of the mutations after it>`, `stats: <seq> <checkpoint seq>
//!    <records since>`.
//!
//! The exit status is 0 when the steps that must succeed did.

use std::process::ExitCode;

use mini_guest::bindings::mini::storage::snapshot::Snapshots;
use mini_guest::bindings::mini::storage::state::State;
use mini_guest::bindings::mini::storage::types;
use mini_guest::{Error, Resource};

/// Prints the outcome of one case and returns whether it succeeded. The
/// `snaps-*` cases are about the snapshot store, the others about the state
/// (which shows in the message on stderr, not in the variant).
fn report<T: std::fmt::Display>(name: &str, result: Result<T, types::Error>) -> bool {
    match result {
        Ok(value) => {
            println!("case {name}: ok {value}");
            true
        }
        Err(e) => {
            let resource = if name.starts_with("snaps-") {
                Resource::Snapshots
            } else {
                Resource::State
            };
            let e = Error::from_host(resource, e);
            println!("case {name}: err {}", e.kind());
            eprintln!("state-probe: case {name}: {e}");
            false
        }
    }
}

fn main() -> ExitCode {
    let state = match State::open("probe") {
        Ok(state) => state,
        Err(e) => {
            report::<u64>("open", Err(e));
            return ExitCode::FAILURE;
        }
    };
    let mut healthy = report("open", state.current_seq());
    let first = state.commit(r#"{"n":1}"#);
    let base = first.as_ref().map_or(0, |seq| seq - 1);
    healthy &= report("commit-1", first);
    healthy &= report("commit-2", state.commit(r#"{"n":2}"#));

    report("invalid-json", state.commit(r#"{"n":"#));
    report("two-values", state.commit(r#"{"n":1} {"n":2}"#));
    report("empty", state.commit(""));
    let huge = format!("\"{}\"", "x".repeat(2 * 1024 * 1024 - 2));
    report("too-large", state.commit(&huge));
    drop(huge);
    report(
        "batch-with-bad",
        state.commit_batch(&[r#"{"n":9}"#, "not json"]),
    );
    report("empty-batch", state.commit_batch(&[]));

    let seq = base + 2;
    report(
        "checkpoint-beyond",
        state.checkpoint("{}", 99 + seq).map(|c| c.seq),
    );
    report(
        "checkpoint-invalid",
        state.checkpoint("{", seq).map(|c| c.seq),
    );
    healthy &= report(
        "checkpoint",
        state.checkpoint(r#"{"sum":3}"#, seq).map(|c| c.seq),
    );
    report(
        "checkpoint-below",
        state.checkpoint(r#"{"sum":1}"#, seq - 1).map(|c| c.seq),
    );

    report("open-again", State::open("probe").map(|_| 0));
    for (case, name) in [
        ("name-empty", ""),
        ("name-dotdot", ".."),
        ("name-slash", "a/b"),
    ] {
        report(case, State::open(name).map(|_| 0));
    }

    match Snapshots::open("snaps") {
        Ok(snaps) => {
            healthy &= report::<u64>("snaps-open", Ok(0));
            report("snaps-invalid", snaps.create("{", 5).map(|()| 5));
            healthy &= report("snaps-create", snaps.create(r#"{"at":5}"#, 5).map(|()| 5));
            healthy &= report(
                "snaps-restore",
                snaps.restore().map(|r| r.map_or(0, |r| r.seq)),
            );
            report("snaps-open-again", Snapshots::open("snaps").map(|_| 0));
        }
        Err(e) => {
            report::<u64>("snaps-open", Err(e));
            healthy = false;
        }
    }
    report("snaps-name-dotdot", Snapshots::open("..").map(|_| 0));

    healthy &= report("after", state.commit(r#"{"n":3}"#));
    match recovery(&state) {
        Ok(line) => println!("recovery: {line}"),
        Err(e) => {
            report::<u64>("recovery", Err(e));
            healthy = false;
        }
    }
    match state.stats() {
        Ok(s) => println!(
            "stats: {} {} {}",
            s.seq, s.checkpoint_seq, s.records_since_checkpoint
        ),
        Err(e) => {
            report::<u64>("stats", Err(e));
            healthy = false;
        }
    }

    if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `<snapshot seq> <state> <mutations after it, as a JSON array>`.
fn recovery(state: &State) -> Result<String, types::Error> {
    let point = state.recover()?;
    let mut tail = Vec::new();
    loop {
        let entries = point.mutations.next(2)?;
        if entries.is_empty() {
            break;
        }
        tail.extend(entries.into_iter().map(|e| e.data));
    }
    let (seq, snapshot) = point
        .snapshot
        .map_or((0, "none".to_string()), |s| (s.seq, s.state));
    let tail = serde_json::to_string(&tail).unwrap_or_else(|_| "?".to_string());
    Ok(format!("{seq} {snapshot} {tail}"))
}
