//! The operator's tools on durable queues, through the `mini` binary:
//! `mini queue stats`, `peek` and `dead` read a queue without its lock (so
//! they work while a process holds it, and pass over a damaged snapshot
//! with a warning), `requeue` and `purge` change it durably under its lock.
//!
//! The fixtures are written by the engine's `Queue` where the host keeps an
//! instance's queues: DATA/NAMESPACE/queue/NAME/. Their clock is a
//! `ManualClock` set 10 s before the real time: pushed messages are then
//! ready for the `mini` binary (which reads the real clock), and delays and
//! leases of an hour are still running.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mini_engine::queue::{
    Clock, ManualClock, Place, PushOptions, Queue, QueueOptions, SystemClock,
};
use mini_engine::state::SNAPSHOT_DIR;
use mini_tests::{json_time, mini, os_args};
use serde_json::Value;
use tempfile::TempDir;

const NS: &str = "app";
const NAME: &str = "jobs";
const HOUR: u64 = 3_600_000;

/// The queue directory of `NS`/`NAME` under `data`.
fn queue_dir(data: &Path) -> PathBuf {
    data.join(NS).join("queue").join(NAME)
}

/// A clock 10 s behind the real one.
fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(SystemClock.now_ms() - 10_000))
}

/// Opens the queue in `dir` on `clock`, dead-lettering after one delivery.
fn open(dir: &Path, clock: &Arc<ManualClock>) -> Queue {
    Queue::open_with(
        dir,
        QueueOptions {
            max_deliveries: 1,
            clock: clock.clone(),
            ..QueueOptions::default()
        },
    )
    .expect("open the queue")
}

fn push(queue: &Queue, payload: &str, delay_ms: u64) -> u64 {
    queue
        .push(
            payload,
            &PushOptions {
                delay_ms,
                ..PushOptions::default()
            },
        )
        .expect("push")
}

/// `mini ARGS` that must succeed; returns its stdout.
fn ok<S: AsRef<std::ffi::OsStr>>(args: Vec<S>) -> String {
    let (code, out, err) = mini(args);
    assert_eq!(code, 0, "mini failed: {err}");
    assert_eq!(err, "", "nothing on stderr");
    out
}

/// A queue with one message in each state, written at known times:
///
/// - 1 `{"n":1}`: popped with a 1 s lease that ran out, then dead-lettered
///   by the next pop (max deliveries 1): dead, 1 attempt;
/// - 2 `{"n":2}`: popped by that pop, leased for an hour: leased, 1 attempt;
/// - 3 `{"n": [3, "é"]}` (spaces kept as pushed): delayed by two hours;
/// - 4 `"four"` and 5 `[5]`: ready.
struct Fixture {
    data: TempDir,
    /// The fixture's clock, still at `t`.
    clock: Arc<ManualClock>,
    /// When messages 2-5 were pushed (ms); message 1 at `t - 2000`.
    t: u64,
}

impl Fixture {
    fn new() -> Fixture {
        let data = tempfile::tempdir().expect("temp dir");
        let clock = clock();
        let queue = open(&queue_dir(data.path()), &clock);
        assert_eq!(push(&queue, r#"{"n":1}"#, 0), 1);
        assert_eq!(queue.pop(1000).expect("pop").expect("message 1").id, 1);
        clock.advance(2000);
        let t = clock.now_ms();
        assert_eq!(push(&queue, r#"{"n":2}"#, 0), 2);
        assert_eq!(push(&queue, r#"{"n": [3, "é"]}"#, 2 * HOUR), 3);
        assert_eq!(queue.pop(HOUR).expect("pop").expect("message 2").id, 2);
        assert_eq!(push(&queue, r#""four""#, 0), 4);
        assert_eq!(push(&queue, "[5]", 0), 5);
        let dead: Vec<u64> = queue.dead_letters().iter().map(|m| m.id).collect();
        assert_eq!(dead, [1], "the fixture's dead letter");
        Fixture { data, clock, t }
    }

    fn dir(&self) -> PathBuf {
        queue_dir(self.data.path())
    }

    /// `mini queue SUB NS NAME --data DATA EXTRA...`.
    fn args(&self, sub: &str, extra: &[&str]) -> Vec<std::ffi::OsString> {
        let mut args = os_args!["queue", sub, NS, NAME, "--data", self.data.path()];
        args.extend(extra.iter().map(Into::into));
        args
    }

    /// The line `peek` or `dead` prints for a message.
    fn line(&self, id: u64, attempts: u32, state: &str, payload: &str) -> String {
        let at = if id == 1 { self.t - 2000 } else { self.t };
        let at = json_time("enqueued_at", at);
        format!(
            "{{\"id\":{id},\"attempts\":{attempts},{at},\"state\":\"{state}\",\"payload\":{payload}}}\n"
        )
    }

    /// The whole `peek` output of the untouched fixture.
    fn peek_all(&self) -> String {
        [
            self.line(4, 0, "ready", r#""four""#),
            self.line(5, 0, "ready", "[5]"),
            self.line(2, 1, "leased", r#"{"n":2}"#),
            self.line(3, 0, "delayed", r#"{"n": [3, "é"]}"#),
        ]
        .concat()
    }
}

/// Bytes of the fixture's payloads.
const FIXTURE_BYTES: usize =
    r#"{"n":1}"#.len() + r#"{"n":2}"#.len() + r#"{"n": [3, "é"]}"#.len() + 6 + 3;

/// The counts of a `mini queue stats` line, `{"ready":…,"bytes":N}` in the
/// order it prints them; the other fields (snapshot bound, records since
/// the checkpoint) are checked to be there.
fn counts(stats: &str) -> String {
    let v: Value = serde_json::from_str(stats.trim_end()).expect("stats are one JSON object");
    for key in [
        "snapshot_bytes",
        "records_since_checkpoint",
        "checkpoint_overdue",
    ] {
        assert!(v.get(key).is_some(), "no {key} in {stats}");
    }
    assert!(!stats.contains("\"checkpoint_overdue\":true"), "{stats}");
    format!(
        "{{\"ready\":{},\"leased\":{},\"delayed\":{},\"dead\":{},\"bytes\":{}}}\n",
        v["ready"], v["leased"], v["delayed"], v["dead"], v["bytes"]
    )
}

#[test]
fn stats_counts_every_state() {
    let f = Fixture::new();
    let expected = format!(
        "{{\"ready\":2,\"leased\":1,\"delayed\":1,\"dead\":1,\"bytes\":{FIXTURE_BYTES}}}\n"
    );
    assert_eq!(counts(&ok(f.args("stats", &[]))), expected);
    // The same queue by its directory.
    assert_eq!(
        counts(&ok(os_args!["queue", "stats", "--dir", f.dir()])),
        expected
    );
}

#[test]
fn peek_prints_messages_in_delivery_order_with_their_state() {
    let f = Fixture::new();
    assert_eq!(ok(f.args("peek", &[])), f.peek_all());
    let first_two: String = f
        .peek_all()
        .lines()
        .take(2)
        .map(|l| l.to_owned() + "\n")
        .collect();
    assert_eq!(ok(f.args("peek", &["--max", "2"])), first_two);
    assert_eq!(ok(f.args("peek", &["--max", "0"])), "");
    // Peeking leases nothing: the next pop still gets message 4 first.
    let queue = open(&f.dir(), &f.clock);
    let delivery = queue.pop(HOUR).expect("pop").expect("a message");
    assert_eq!((delivery.id, delivery.attempt), (4, 1));
}

#[test]
fn an_expired_lease_is_shown_ready() {
    let data = tempfile::tempdir().expect("temp dir");
    let clock = clock();
    let t = clock.now_ms();
    let queue = open(&queue_dir(data.path()), &clock);
    push(&queue, "{}", 0);
    // Leased for 1 s at a time 10 s ago: it ran out.
    assert!(queue.pop(1000).expect("pop").is_some());
    drop(queue);
    let args = |sub: &str| os_args!["queue", sub, NS, NAME, "--data", data.path()];
    assert_eq!(
        ok(args("peek")),
        format!(
            "{{\"id\":1,\"attempts\":1,{},\"state\":\"ready\",\"payload\":{{}}}}\n",
            json_time("enqueued_at", t)
        )
    );
    assert_eq!(
        counts(&ok(args("stats"))),
        "{\"ready\":1,\"leased\":0,\"delayed\":0,\"dead\":0,\"bytes\":2}\n"
    );
}

#[test]
fn dead_lists_the_dead_letters() {
    let data = tempfile::tempdir().expect("temp dir");
    let clock = clock();
    let t = clock.now_ms();
    let queue = open(&queue_dir(data.path()), &clock);
    for n in 1..=3 {
        push(&queue, &format!("{{\"n\":{n}}}"), 0);
    }
    // Messages 1-3 delivered once, their leases run out; the next pop
    // dead-letters them (their deadlines come before message 4's push) and
    // delivers 4.
    assert_eq!(queue.pop_batch(3, 1000).expect("pop").len(), 3);
    clock.advance(2000);
    assert_eq!(push(&queue, r#"{"n":4}"#, 0), 4);
    assert_eq!(queue.pop(HOUR).expect("pop").expect("message 4").id, 4);
    drop(queue);
    let line = |id: u64| {
        format!(
            "{{\"id\":{id},\"attempts\":1,{},\"state\":\"dead\",\"payload\":{{\"n\":{id}}}}}\n",
            json_time("enqueued_at", t)
        )
    };
    let args = |extra: &[&str]| {
        let mut args = os_args!["queue", "dead", NS, NAME, "--data", data.path()];
        args.extend(extra.iter().map(Into::into));
        args
    };
    assert_eq!(ok(args(&[])), [line(1), line(2), line(3)].concat());
    assert_eq!(ok(args(&["--max", "2"])), [line(1), line(2)].concat());
    // Dead letters are not in peek.
    let peek = ok(os_args!["queue", "peek", NS, NAME, "--data", data.path()]);
    assert!(peek.starts_with("{\"id\":4,"), "peek: {peek}");
    assert_eq!(peek.lines().count(), 1, "peek: {peek}");
}

#[test]
fn requeue_by_id_and_all_is_durable() {
    let data = tempfile::tempdir().expect("temp dir");
    let dir = queue_dir(data.path());
    let clock = clock();
    let queue = open(&dir, &clock);
    for n in 1..=4 {
        push(&queue, &format!("{{\"n\":{n}}}"), 0);
    }
    assert_eq!(queue.pop_batch(4, 1000).expect("pop").len(), 4);
    clock.advance(2000);
    assert!(queue.pop(HOUR).expect("pop").is_none(), "all dead now");
    assert_eq!(queue.dead_letters().len(), 4);
    drop(queue);

    let (code, out, err) = mini(os_args![
        "queue",
        "requeue",
        NS,
        NAME,
        "3",
        "1",
        "--data",
        data.path()
    ]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "requeued 2 dead letters\n", "")
    );
    // Requeued messages are available from the real time of the requeue.
    clock.set(SystemClock.now_ms() + 1000);
    {
        let queue = open(&dir, &clock);
        let dead: Vec<u64> = queue.dead_letters().iter().map(|m| m.id).collect();
        assert_eq!(dead, [2, 4]);
        // Requeued: available again, the delivery count reset.
        let ready: Vec<(u64, u32)> = queue.peek(10).iter().map(|m| (m.id, m.attempts)).collect();
        assert_eq!(ready, [(1, 0), (3, 0)]);
        assert!(matches!(queue.peek(1)[0].place, Place::Ready { .. }));
        let delivery = queue.pop(HOUR).expect("pop").expect("a requeued message");
        assert_eq!((delivery.id, delivery.attempt), (1, 1));
    }

    let out = ok(os_args!["queue", "requeue", "--dir", &dir, "--all"]);
    assert_eq!(out, "requeued 2 dead letters\n");
    clock.set(SystemClock.now_ms() + 1000);
    let queue = open(&dir, &clock);
    assert!(queue.dead_letters().is_empty());
    let stats = queue.stats();
    assert_eq!(
        (stats.ready, stats.leased, stats.dead),
        (3, 1, 0),
        "{stats:?}"
    );
    drop(queue);
    // Nothing left to requeue.
    assert_eq!(
        ok(os_args!["queue", "requeue", "--dir", &dir, "--all"]),
        "requeued 0 dead letters\n"
    );
}

#[test]
fn purge_needs_yes_and_deletes_for_good() {
    let f = Fixture::new();
    let clock = f.clock.clone();
    // Without --yes: what would go, exit 0 (a dry run), nothing changed.
    let (code, out, err) = mini(f.args("purge", &["--all"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!(
            "would purge 1 dead letter (ids: 1) from {}\nrun again with --yes to delete them for good\n",
            f.dir().display()
        )
    );
    assert_eq!(open(&f.dir(), &clock).dead_letters().len(), 1);
    // Ids are checked the same way without --yes.
    let (code, _, err) = mini(f.args("purge", &["4"]));
    assert_eq!(code, 1);
    assert!(err.contains("message 4 is not a dead letter"), "{err}");

    let (code, out, err) = mini(f.args("purge", &["1", "--yes"]));
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "purged 1 dead letter\n", "")
    );
    let queue = open(&f.dir(), &clock);
    assert!(queue.dead_letters().is_empty());
    assert!(queue.peek(10).iter().all(|m| m.id != 1));
    assert_eq!(queue.peek(10).len(), 4, "the other messages are untouched");
    drop(queue);
    assert_eq!(ok(f.args("dead", &[])), "");
    assert_eq!(ok(f.args("peek", &[])), f.peek_all());
    assert_eq!(
        ok(f.args("purge", &["--all", "--yes"])),
        "purged 0 dead letters\n"
    );
}

#[test]
fn bad_requests_fail_clearly_and_change_nothing() {
    let f = Fixture::new();
    let fails = |args: Vec<std::ffi::OsString>, expected: &str| {
        let (code, out, err) = mini(&args);
        assert_ne!(code, 0, "{args:?} succeeded: {out}");
        assert!(err.contains(expected), "{args:?}: {err}");
    };
    fails(f.args("requeue", &["99"]), "no message 99 in the queue");
    fails(
        f.args("requeue", &["1", "4"]),
        "message 4 is not a dead letter",
    );
    fails(
        f.args("purge", &["1", "4", "--yes"]),
        "message 4 is not a dead letter",
    );
    fails(
        f.args("purge", &["99", "--yes"]),
        "no message 99 in the queue",
    );
    fails(f.args("requeue", &["1", "--all"]), "not both");
    fails(
        f.args("requeue", &[]),
        "give the ids of the dead letters, or --all",
    );
    fails(
        f.args("purge", &["--yes"]),
        "give the ids of the dead letters, or --all",
    );
    fails(f.args("requeue", &["x1"]), "\"x1\" is not a message id");
    fails(
        os_args!["queue", "stats", NS, "nope", "--data", f.data.path()],
        "no queue \"nope\" in namespace \"app\"",
    );
    fails(
        os_args![
            "queue",
            "requeue",
            NS,
            "nope",
            "--all",
            "--data",
            f.data.path()
        ],
        "no queue \"nope\" in namespace \"app\"",
    );
    fails(
        os_args!["queue", "peek", NS, "..", "--data", f.data.path()],
        "invalid name \"..\"",
    );
    fails(
        os_args!["queue", "stats", "--dir", f.data.path()],
        "is not a queue directory",
    );
    fails(os_args!["queue", "requeue", "--all"], "give NAMESPACE NAME");
    fails(os_args!["queue", "stats"], "NAMESPACE");
    // Not a queue: a state directory, whose journal holds other records.
    let other = f.data.path().join("other");
    let journal = mini_engine::Journal::open(other.join("journal")).expect("journal");
    journal.append(r#"{"Inc":1}"#).expect("append");
    drop(journal);
    fails(
        os_args!["queue", "stats", "--dir", &other],
        "has no snapshots/ directory",
    );
    std::fs::create_dir(other.join(SNAPSHOT_DIR)).expect("snapshots/");
    fails(
        os_args!["queue", "stats", "--dir", &other],
        "journal record 1: not a queue record",
    );
    // Nothing changed, and no queue was created where none was.
    assert!(!f.data.path().join(NS).join("queue").join("nope").exists());
    assert_eq!(ok(f.args("peek", &[])), f.peek_all());
    assert_eq!(ok(f.args("dead", &[])), f.line(1, 1, "dead", r#"{"n":1}"#));
}

#[test]
fn reading_works_while_a_process_holds_the_queue_and_changing_does_not() {
    let f = Fixture::new();
    let clock = f.clock.clone();
    let held = open(&f.dir(), &clock);
    // A push by the holder after the fixture: seen by the unlocked readers.
    assert_eq!(push(&held, "6", 0), 6);
    let stats = counts(&ok(f.args("stats", &[])));
    assert_eq!(
        stats,
        format!(
            "{{\"ready\":3,\"leased\":1,\"delayed\":1,\"dead\":1,\"bytes\":{}}}\n",
            FIXTURE_BYTES + 1
        )
    );
    let peek = ok(f.args("peek", &["--max", "3"]));
    assert!(
        peek.ends_with(",\"state\":\"ready\",\"payload\":6}\n"),
        "{peek}"
    );
    assert_eq!(ok(f.args("dead", &[])), f.line(1, 1, "dead", r#"{"n":1}"#));

    for args in [
        f.args("requeue", &["--all"]),
        f.args("purge", &["1", "--yes"]),
    ] {
        let (code, out, err) = mini(&args);
        assert_eq!(code, 3, "{args:?}: {out}");
        assert_eq!(out, "");
        assert!(
            err.contains("is open in another process") && err.contains(&*f.dir().to_string_lossy()),
            "{err}"
        );
    }
    // The holder's queue is untouched.
    assert_eq!(held.dead_letters().len(), 1);
    drop(held);
    assert_eq!(ok(f.args("requeue", &["1"])), "requeued 1 dead letter\n");
}

/// The snapshot files of the queue in `dir`, oldest first.
fn snapshots(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(SNAPSHOT_DIR))
        .expect("snapshot dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("snapshot-"))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_damaged_newest_snapshot_is_passed_over_with_a_warning() {
    let f = Fixture::new();
    let clock = f.clock.clone();
    {
        // Two checkpoints: the older one (and the journal after it) still
        // give the whole queue.
        let queue = open(&f.dir(), &clock);
        queue.checkpoint().expect("checkpoint");
        assert_eq!(push(&queue, "6", 0), 6);
        queue.checkpoint().expect("checkpoint");
    }
    let files = snapshots(&f.dir());
    assert_eq!(files.len(), 2, "{files:?}");
    let newest = files.last().expect("a snapshot");
    let mut bytes = std::fs::read(newest).expect("read");
    // A byte of the state (inside a payload), so the line still parses and
    // only the crc tells.
    let at = bytes
        .windows(7)
        .position(|w| w == br#"{"n":2}"#)
        .expect("message 2 in the snapshot")
        + 5;
    bytes[at] = b'7';
    std::fs::write(newest, &bytes).expect("write");

    let expected_stats = format!(
        "{{\"ready\":3,\"leased\":1,\"delayed\":1,\"dead\":1,\"bytes\":{}}}\n",
        FIXTURE_BYTES + 1
    );
    for (sub, expected) in [
        ("stats", expected_stats),
        (
            "peek",
            f.peek_all().replacen(
                &f.line(2, 1, "leased", r#"{"n":2}"#),
                &(f.line(6, 0, "ready", "6") + &f.line(2, 1, "leased", r#"{"n":2}"#)),
                1,
            ),
        ),
        ("dead", f.line(1, 1, "dead", r#"{"n":1}"#)),
    ] {
        let (code, out, err) = mini(f.args(sub, &[]));
        assert_eq!(code, 0, "{sub}: {err}");
        let out = if sub == "stats" { counts(&out) } else { out };
        assert_eq!(out, expected, "{sub}");
        assert!(
            err.starts_with("mini: warning: damaged snapshot")
                && err.contains(&*newest.to_string_lossy()),
            "{sub}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{sub}: {err}");
    }
}
