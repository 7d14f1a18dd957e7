//! A hostile guest, written from the WIT alone: it tries to take more than
//! its host's limits and its manifest's grants allow, and prints one
//! machine-checkable line per attempt. It never panics; the end-to-end tests
//! check that the host refuses each attempt with the right error, stays
//! within its bounds, and loses nothing.
//!
//! ```text
//! boundary-probe open-many <journal|state|queue|snapshots> <n>
//! boundary-probe subscribe-many <n>        subscribe and drop, n times
//! boundary-probe hold-pollables <n>        subscribe n times, keeping them
//! boundary-probe pop-batch-big <count> <kib>
//! boundary-probe dead-big <count> <kib>
//! boundary-probe pop-wait <timeout-ms>         a pop, then a pop-wait, on an empty queue
//! boundary-probe flood <n>
//! boundary-probe access <kind>:<name>…     kind: journal, state, snapshots, queue
//! boundary-probe messages
//! ```
//!
//! Lines: `case <name>: ok <value>` or `case <name>: err <variant> <message>`,
//! and `key value…` facts (`opened 12`, `popped 3 bytes 3145728`, …).

use std::process::ExitCode;
use std::time::Duration;

use mini_guest::bindings::mini::storage::snapshot::Snapshots;
use mini_guest::bindings::mini::storage::state::State;
use mini_guest::bindings::mini::storage::store::Journal;
use mini_guest::{Error, RawQueue, Resource};

const LEASE: Duration = Duration::from_secs(60);

fn report<T: std::fmt::Display>(name: &str, result: Result<T, Error>) -> bool {
    match result {
        Ok(value) => {
            println!("case {name}: ok {value}");
            true
        }
        Err(e) => {
            println!("case {name}: err {} {e}", e.kind());
            false
        }
    }
}

fn number(args: &[String], i: usize) -> Result<u64, String> {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("argument {i} must be a number"))
}

/// Opens the unit `name` of `kind` and drops it at once.
fn open_unit(kind: &str, name: &str) -> Result<(), Error> {
    match kind {
        "journal" => Journal::open(name)
            .map(drop)
            .map_err(|e| Error::from_host(Resource::Journal, e)),
        "state" => State::open(name)
            .map(drop)
            .map_err(|e| Error::from_host(Resource::State, e)),
        "snapshots" => Snapshots::open(name)
            .map(drop)
            .map_err(|e| Error::from_host(Resource::Snapshots, e)),
        "queue" => RawQueue::open(name).map(drop),
        other => Err(Error::Other(format!("unknown kind {other}"))),
    }
}

fn open_many(kind: &str, n: u64) -> bool {
    let mut opened = 0;
    for i in 0..n {
        if let Err(e) = open_unit(kind, &format!("{kind}-{i}")) {
            println!("first-error {} {e}", e.kind());
            break;
        }
        opened += 1;
    }
    println!("opened {opened}");
    // An append to a journal opened before: still refused or accepted as the
    // quota says, never silently past it.
    report(
        "append-after",
        Journal::open(&format!("{kind}-0"))
            .and_then(|j| j.append("{\"after\":true}"))
            .map_err(|e| Error::from_host(Resource::Journal, e)),
    );
    true
}

fn payload(kib: u64, n: u64) -> String {
    let body = "x".repeat((kib as usize * 1024).saturating_sub(24));
    format!("{{\"n\":{n},\"pad\":\"{body}\"}}")
}

fn push_big(queue: &RawQueue, count: u64, kib: u64) -> Result<(), Error> {
    for n in 0..count {
        queue.push(&payload(kib, n))?;
    }
    Ok(())
}

fn pop_batch_big(count: u64, kib: u64) -> Result<(), Error> {
    let queue = RawQueue::open("big")?;
    push_big(&queue, count, kib)?;
    let got = queue.pop_batch(1024, LEASE)?;
    let bytes: usize = got.iter().map(|d| d.payload().len()).sum();
    println!("popped {} bytes {bytes}", got.len());
    let stats = queue.stats()?;
    println!("leased {} ready {}", stats.leased, stats.ready);
    Ok(())
}

fn dead_big(count: u64, kib: u64) -> Result<(), Error> {
    let queue = RawQueue::open("doomed")?;
    push_big(&queue, count, kib)?;
    // Every message delivered and nacked until the host dead-letters it.
    loop {
        let got = queue.pop_batch(1024, LEASE)?;
        if got.is_empty() {
            break;
        }
        for delivery in got {
            delivery.nack(Duration::ZERO)?;
        }
    }
    let page = queue.dead_letters(1024)?;
    let bytes: usize = page.iter().map(|d| d.payload.len()).sum();
    println!("dead-page {} bytes {bytes}", page.len());
    let mut total = 0;
    let mut from = 0;
    loop {
        let page = queue.dead_letters_from(from, 1024)?;
        let Some(last) = page.last() else { break };
        from = last.id + 1;
        total += page.len();
    }
    println!("dead-total {total}");
    Ok(())
}

fn flood(n: u64) -> Result<(), Error> {
    let queue = RawQueue::open("flood")?;
    let all: Vec<&str> = (0..n).map(|_| "1").collect();
    report("flood", queue.push_batch(&all).map(|ids| ids.len()));
    let batch: Vec<&str> = (0..500).map(|_| "1").collect();
    let mut accepted = 0;
    let refusal = loop {
        match queue.push_batch(&batch) {
            Ok(ids) => accepted += ids.len(),
            Err(e) => break e,
        }
    };
    println!("accepted {accepted}");
    println!("case fill: err {} {refusal}", refusal.kind());
    let stats = queue.stats()?;
    println!(
        "stats ready {} snapshot {} limit {} checkpoint-error {}",
        stats.ready,
        stats.snapshot_bytes,
        stats.snapshot_limit,
        stats.checkpoint_error.as_deref().unwrap_or("none")
    );
    for delivery in queue.pop_batch(100, LEASE)? {
        delivery.ack()?;
    }
    report("push-after-acks", queue.push("2"));
    Ok(())
}

fn access(specs: &[String]) {
    for spec in specs {
        let (kind, name) = spec.split_once(':').unwrap_or((spec.as_str(), ""));
        report(spec, open_unit(kind, name).map(|()| "opened"));
    }
}

fn messages() -> Result<(), Error> {
    let open_state = || State::open("owned").map_err(|e| Error::from_host(Resource::State, e));
    let first = open_state()?;
    report("state-twice", open_state().map(|_| ""));
    drop(first);
    report("state-after-drop", open_state().map(|_| ""));
    let queue = RawQueue::open("tokens")?;
    queue.push("1")?;
    let delivery = queue.pop(LEASE)?.ok_or(Error::Other("no message".into()))?;
    let handle = queue.as_bindings();
    report(
        "wrong-token",
        handle
            .ack(delivery.id(), "not-a-token")
            .map_err(|e| Error::from_host(Resource::Queue, e))
            .map(|()| ""),
    );
    let old_token = delivery.token().to_owned();
    let id = delivery.id();
    delivery.nack(Duration::ZERO)?;
    let again = queue.pop(LEASE)?.ok_or(Error::Other("no message".into()))?;
    report(
        "stale-token",
        handle
            .ack(id, &old_token)
            .map_err(|e| Error::from_host(Resource::Queue, e))
            .map(|()| ""),
    );
    again.ack()?;
    Ok(())
}

fn run(args: &[String]) -> Result<bool, String> {
    let command = args.first().map(String::as_str).unwrap_or("");
    let done = match command {
        "open-many" => {
            let kind = args.get(1).ok_or("open-many needs a kind")?;
            open_many(kind, number(args, 2)?)
        }
        "subscribe-many" => {
            let queue = RawQueue::open("watched").map_err(|e| e.to_string())?;
            let n = number(args, 1)?;
            for _ in 0..n {
                drop(queue.subscribe());
            }
            println!("subscribed {n}");
            report("pop-after", queue.pop(LEASE).map(|d| d.is_some()))
        }
        "hold-pollables" => {
            let queue = RawQueue::open("watched").map_err(|e| e.to_string())?;
            let mut held = Vec::new();
            for i in 0..number(args, 1)? {
                held.push(queue.subscribe());
                println!("holding {}", i + 1);
            }
            true
        }
        "pop-batch-big" => report(
            "pop-batch-big",
            pop_batch_big(number(args, 1)?, number(args, 2)?).map(|()| ""),
        ),
        "dead-big" => report(
            "dead-big",
            dead_big(number(args, 1)?, number(args, 2)?).map(|()| ""),
        ),
        "pop-wait" => {
            let queue = RawQueue::open("empty").map_err(|e| e.to_string())?;
            // A pop that finds nothing writes nothing.
            report("pop-first", queue.pop(LEASE).map(|d| d.is_some()));
            println!("waiting");
            let got = queue.pop_wait(LEASE, Duration::from_millis(number(args, 1)?));
            report("pop-wait", got.map(|d| d.is_some()))
        }
        "flood" => report("flood-run", flood(number(args, 1)?).map(|()| "")),
        "access" => {
            access(&args[1..]);
            true
        }
        "messages" => report("messages", messages().map(|()| "")),
        other => return Err(format!("unknown command {other:?}")),
    };
    Ok(done)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("boundary-probe: {e}");
            ExitCode::from(2)
        }
    }
}
