//! Sends good and bad input to the host's `queue` interface through the raw
//! bindings and prints one machine-checkable line per case; it never panics.
//!
//! Every case prints `case <name>: ok <value>` or `case <name>: err
//! <variant>` (the WIT error variant in kebab case). On the queue `probe`:
//!
//! 1. `open`, `push-1` (`{"n":1}`), `push-2` (`{"n":2}`), `push-dedup`
//!    (`{"n":3}`, key `k`), `push-dedup-again` (same key: the same id);
//! 2. bad payloads: `invalid-json`, `two-values`, `empty`, `too-large`
//!    (2 MiB), `batch-with-bad`, `empty-batch`;
//! 3. `pop-zero-lease`, `pop` (prints the id), then with its delivery:
//!    `ack-unknown` (id 999), `ack-bad-token`, `nack-bad-token`,
//!    `extend-bad-token`, `extend-zero-lease`, `ack-not-leased` (message 2),
//!    `ack` (ok);
//! 4. `requeue-not-dead` (message 2), `purge-unknown` (999), bad names
//!    `name-empty`, `name-dotdot`, `name-slash`;
//! 5. `stats: ready <r> leased <l> delayed <d> dead <x>`;
//! 6. the pollable of `queue-poll`'s `subscribe`, on the queue `watch`
//!    (each prints `ok ready` or `ok not-ready`, or the id of a push or
//!    pop):
//!    `subscribe-empty`, `push-delayed` (60 s), `subscribe-delayed`,
//!    `push-soon` (1 s), `block-until-delay` (the pollable's block returns
//!    when that delay ends), `pop-after-block`, `subscribe-leased` (one
//!    message leased, the other delayed), `push-now`,
//!    `subscribe-after-push` (the pollable taken while the queue was empty
//!    is ready now).
//!
//! The exit status is 0 when the steps that must succeed did.

use std::process::ExitCode;

use mini_guest::bindings::mini::storage::queue::{PushMessage, PushOptions, Queue};
use mini_guest::bindings::mini::storage::{queue_poll, types};
use mini_guest::{Error, Pollable, Resource};

/// Prints the outcome of one case and returns whether it succeeded.
fn report<T: std::fmt::Display>(name: &str, result: Result<T, types::Error>) -> bool {
    match result {
        Ok(value) => {
            println!("case {name}: ok {value}");
            true
        }
        Err(e) => {
            let e = Error::from_host(Resource::Queue, e);
            println!("case {name}: err {}", e.kind());
            eprintln!("queue-probe: case {name}: {e}");
            false
        }
    }
}

fn plain() -> PushOptions<'static> {
    PushOptions {
        delay_ms: 0,
        dedup_key: None,
    }
}

/// One message of a batch, pushed with no options.
fn message(payload: &str) -> PushMessage<'_> {
    PushMessage {
        payload,
        options: plain(),
    }
}

fn main() -> ExitCode {
    let queue = match Queue::open("probe") {
        Ok(queue) => queue,
        Err(e) => {
            report::<u64>("open", Err(e));
            return ExitCode::FAILURE;
        }
    };
    let mut healthy = report::<u64>("open", Ok(0));
    healthy &= report("push-1", queue.push(r#"{"n":1}"#, plain()));
    healthy &= report("push-2", queue.push(r#"{"n":2}"#, plain()));
    let keyed = || PushOptions {
        delay_ms: 0,
        dedup_key: Some("k"),
    };
    healthy &= report("push-dedup", queue.push(r#"{"n":3}"#, keyed()));
    healthy &= report("push-dedup-again", queue.push(r#"{"n":33}"#, keyed()));

    report("invalid-json", queue.push(r#"{"n":"#, plain()));
    report("two-values", queue.push(r#"{"n":1} {"n":2}"#, plain()));
    report("empty", queue.push("", plain()));
    let huge = format!("\"{}\"", "x".repeat(2 * 1024 * 1024 - 2));
    report("too-large", queue.push(&huge, plain()));
    drop(huge);
    report(
        "batch-with-bad",
        queue
            .push_batch(&[message(r#"{"n":9}"#), message("not json")])
            .map(|ids| ids.len()),
    );
    report("empty-batch", queue.push_batch(&[]).map(|ids| ids.len()));

    report(
        "pop-zero-lease",
        queue.pop(0).map(|m| m.map_or(0, |m| m.id)),
    );
    match queue.pop(60_000) {
        Ok(Some(message)) => {
            healthy &= report::<u64>("pop", Ok(message.id));
            let id = message.id;
            report("ack-unknown", queue.ack(999, &message.token).map(|()| 0));
            report("ack-bad-token", queue.ack(id, "nope").map(|()| 0));
            report("nack-bad-token", queue.nack(id, "nope", 0).map(|()| 0));
            report("extend-bad-token", queue.extend(id, "nope", 1000));
            report("extend-zero-lease", queue.extend(id, &message.token, 0));
            report("ack-not-leased", queue.ack(2, &message.token).map(|()| 0));
            healthy &= report("ack", queue.ack(id, &message.token).map(|()| id));
        }
        other => {
            report("pop", other.map(|_| "none"));
            healthy = false;
        }
    }
    report("requeue-not-dead", queue.requeue(Some(&[2])));
    report("purge-unknown", queue.purge(Some(&[999])));
    for (case, name) in [
        ("name-empty", ""),
        ("name-dotdot", ".."),
        ("name-slash", "a/b"),
    ] {
        report(case, Queue::open(name).map(|_| 0));
    }
    match queue.stats() {
        Ok(s) => println!(
            "stats: ready {} leased {} delayed {} dead {}",
            s.ready, s.leased, s.delayed, s.dead
        ),
        Err(e) => {
            report::<u64>("stats", Err(e));
            healthy = false;
        }
    }
    healthy &= watch_cases();
    if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn delayed(delay_ms: u64) -> PushOptions<'static> {
    PushOptions {
        delay_ms,
        dedup_key: None,
    }
}

fn readiness(pollable: &Pollable) -> &'static str {
    if pollable.ready() {
        "ready"
    } else {
        "not-ready"
    }
}

/// Step 6: what the pollable of `queue-poll.subscribe` says, and when its block ends.
fn watch_cases() -> bool {
    let queue = match Queue::open("watch") {
        Ok(queue) => queue,
        Err(e) => return report::<u64>("open-watch", Err(e)),
    };
    let taken_empty = queue_poll::subscribe(&queue);
    println!("case subscribe-empty: ok {}", readiness(&taken_empty));
    let mut healthy = report("push-delayed", queue.push(r#"{"w":1}"#, delayed(60_000)));
    println!(
        "case subscribe-delayed: ok {}",
        readiness(&queue_poll::subscribe(&queue))
    );
    healthy &= report("push-soon", queue.push(r#"{"w":2}"#, delayed(1_000)));
    let waiting = queue_poll::subscribe(&queue);
    waiting.block();
    println!("case block-until-delay: ok {}", readiness(&waiting));
    let popped = queue.pop(60_000).map(|m| m.map_or(0, |m| m.id));
    healthy &= report("pop-after-block", popped);
    println!(
        "case subscribe-leased: ok {}",
        readiness(&queue_poll::subscribe(&queue))
    );
    healthy &= report("push-now", queue.push(r#"{"w":3}"#, plain()));
    println!("case subscribe-after-push: ok {}", readiness(&taken_empty));
    healthy
}
