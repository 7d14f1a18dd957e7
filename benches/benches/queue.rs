//! Queue benchmarks (issue 4), each measured side by side with its reference
//! in one run (see BENCHMARKS.md):
//!
//! ```text
//! cargo bench -p mini-benches --bench queue
//! ```
//!
//! A cycle is one message's life: a durable push, a durable pop (a lease
//! with a token and a deadline) and a durable ack. mini's queue is compared
//! with a queue on SQLite doing the same work with the same threads: WAL
//! mode, `synchronous=FULL`, one transaction per operation (push = `INSERT`;
//! pop = `SELECT` of the oldest visible row and an `UPDATE` setting its
//! lease token and deadline, in one `BEGIN IMMEDIATE` transaction; ack =
//! `DELETE` of the row with that token). The SQLite side shares one
//! connection behind a mutex: its writers are serialized anyway, and
//! connections of their own would wait in SQLite's busy handler, which
//! sleeps. Consumers with nothing to pop wait on a condition variable that
//! pushes signal (mini's `pop_wait` does the same inside the queue), so
//! neither side spins or sleeps.
//!
//! The `ack_next` cases let each consumer ack a message and take the next
//! one in one durable write (mini's `Queue::ack_next`, JetStream's AckNext);
//! the SQLite side then does the `DELETE` and the next pop in one
//! transaction, so both do the same work with one commit less per cycle.
//!
//! Producers push their share of the messages; once they are done, one stop
//! message per consumer is pushed; a consumer acks every message it pops and
//! ends with its stop message (FIFO: the stop messages come last). Every
//! message counts as a cycle, the stop messages too; at the end each queue
//! is checked to be empty.
//!
//! `MINI_BENCH_DIR` picks the disk (default `target/bench-data`);
//! `MINI_BENCH_OPS` sets the cycles per repetition (default 500).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use mini_benches::{bench_ops, bench_root, compare, fresh, raw_fdatasync_loop, record, row, timed};
use mini_engine::queue::{PushOptions, Queue};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

const REPS: usize = 5;
/// Leases long enough that nothing is redelivered during a run.
const LEASE_MS: u64 = 60_000;
/// The payload of the message that ends a consumer.
const STOP: &str = r#"{"stop":true}"#;

/// What the benchmark needs of a durable queue: push, a blocking pop with a
/// lease, ack.
trait Durable: Sync {
    /// Pushes `payload` durably.
    fn push(&self, payload: &str);
    /// Waits for a message and leases it: (id, token, payload).
    fn pop_wait(&self) -> (u64, String, String);
    /// Acks a delivery durably.
    fn ack(&self, id: u64, token: &str);
    /// Acks a delivery and leases the next available message in one durable
    /// write (one transaction): JetStream's AckNext.
    fn ack_next(&self, id: u64, token: &str) -> Option<(u64, String, String)>;
    /// How many messages are left (leased or not).
    fn left(&self) -> u64;
}

impl Durable for Queue {
    fn push(&self, payload: &str) {
        Queue::push(self, payload, &PushOptions::default()).expect("mini push");
    }

    fn pop_wait(&self) -> (u64, String, String) {
        let delivery = Queue::pop_wait(self, LEASE_MS, Duration::from_secs(600))
            .expect("mini pop")
            .expect("a message within 10 minutes");
        (delivery.id, delivery.token, delivery.payload)
    }

    fn ack(&self, id: u64, token: &str) {
        Queue::ack(self, id, token).expect("mini ack");
    }

    fn ack_next(&self, id: u64, token: &str) -> Option<(u64, String, String)> {
        Queue::ack_next(self, id, token, LEASE_MS)
            .expect("mini ack_next")
            .map(|d| (d.id, d.token, d.payload))
    }

    fn left(&self) -> u64 {
        let stats = self.stats();
        stats.ready + stats.leased + stats.delayed + stats.dead
    }
}

/// A queue in one SQLite table, the way an application would write it.
struct SqliteQueue {
    conn: Mutex<Connection>,
    /// Bumped after each committed push; consumers with nothing to pop wait
    /// for it to change.
    pushes: Mutex<u64>,
    pushed: Condvar,
    tokens: AtomicU64,
}

impl SqliteQueue {
    fn open(dir: &Path) -> SqliteQueue {
        let conn = Connection::open(dir.join("queue.db")).expect("sqlite open");
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .expect("WAL mode");
        assert_eq!(mode, "wal", "SQLite WAL mode");
        conn.pragma_update(None, "synchronous", "FULL")
            .expect("synchronous=FULL");
        conn.execute_batch(
            "CREATE TABLE queue (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 payload TEXT NOT NULL,
                 enqueued_at INTEGER NOT NULL,
                 visible_at INTEGER NOT NULL,
                 attempts INTEGER NOT NULL DEFAULT 0,
                 token TEXT
             );
             CREATE INDEX queue_visible ON queue (visible_at, id);",
        )
        .expect("sqlite schema");
        SqliteQueue {
            conn: Mutex::new(conn),
            pushes: Mutex::new(0),
            pushed: Condvar::new(),
            tokens: AtomicU64::new(0),
        }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One transaction: the oldest visible message, leased (after deleting
    /// the acked one, if any).
    fn try_pop(&self, acked: Option<(u64, &str)>) -> Option<(u64, String, String)> {
        let now = now_ms() as i64;
        let token = format!("t{}", self.tokens.fetch_add(1, Ordering::Relaxed));
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .expect("sqlite begin");
        if let Some((id, token)) = acked {
            let deleted = tx
                .prepare_cached("DELETE FROM queue WHERE id = ?1 AND token = ?2")
                .expect("sqlite prepare")
                .execute(params![id as i64, token])
                .expect("sqlite delete");
            assert_eq!(deleted, 1, "sqlite ack of a current lease");
        }
        let found: Option<(i64, String)> = tx
            .prepare_cached(
                "SELECT id, payload FROM queue WHERE visible_at <= ?1 \
                 ORDER BY visible_at, id LIMIT 1",
            )
            .expect("sqlite prepare")
            .query_row(params![now], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .expect("sqlite select");
        let Some((id, payload)) = found else {
            tx.commit().expect("sqlite commit");
            return None;
        };
        let changed = tx
            .prepare_cached(
                "UPDATE queue SET visible_at = ?1, token = ?2, attempts = attempts + 1 \
                 WHERE id = ?3",
            )
            .expect("sqlite prepare")
            .execute(params![now + LEASE_MS as i64, token, id])
            .expect("sqlite update");
        assert_eq!(changed, 1);
        tx.commit().expect("sqlite commit");
        Some((id as u64, token, payload))
    }
}

impl Durable for SqliteQueue {
    fn push(&self, payload: &str) {
        let now = now_ms() as i64;
        self.conn()
            .prepare_cached(
                "INSERT INTO queue (payload, enqueued_at, visible_at) VALUES (?1, ?2, ?2)",
            )
            .expect("sqlite prepare")
            .execute(params![payload, now])
            .expect("sqlite insert");
        *self.pushes.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        // One message, one consumer woken (a consumer that finds it taken
        // waits again; none sleeps while a push it has not seen is there).
        self.pushed.notify_one();
    }

    fn pop_wait(&self) -> (u64, String, String) {
        loop {
            let seen = *self.pushes.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(delivery) = self.try_pop(None) {
                return delivery;
            }
            let mut pushes = self.pushes.lock().unwrap_or_else(|p| p.into_inner());
            while *pushes == seen {
                pushes = self.pushed.wait(pushes).unwrap_or_else(|p| p.into_inner());
            }
        }
    }

    fn ack(&self, id: u64, token: &str) {
        let deleted = self
            .conn()
            .prepare_cached("DELETE FROM queue WHERE id = ?1 AND token = ?2")
            .expect("sqlite prepare")
            .execute(params![id as i64, token])
            .expect("sqlite delete");
        assert_eq!(deleted, 1, "sqlite ack of a current lease");
    }

    fn ack_next(&self, id: u64, token: &str) -> Option<(u64, String, String)> {
        self.try_pop(Some((id, token)))
    }

    fn left(&self) -> u64 {
        self.conn()
            .query_row("SELECT count(*) FROM queue", [], |r| r.get::<_, i64>(0))
            .expect("sqlite count") as u64
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `producers` threads push `n` messages between them while `consumers`
/// threads pop and ack them; returns the cycles (stop messages included).
/// With `ack_next`, a consumer acks each message and takes the next one in
/// one write, and waits only when none was there.
fn cycles(queue: &dyn Durable, producers: u64, consumers: u64, n: u64, ack_next: bool) -> u64 {
    let per_producer = n / producers;
    std::thread::scope(|s| {
        for _ in 0..consumers {
            s.spawn(move || {
                let mut next = None;
                loop {
                    let (id, token, payload) = next.take().unwrap_or_else(|| queue.pop_wait());
                    if payload == STOP || !ack_next {
                        queue.ack(id, &token);
                        if payload == STOP {
                            break;
                        }
                    } else {
                        next = queue.ack_next(id, &token);
                    }
                }
            });
        }
        let pushing: Vec<_> = (0..producers)
            .map(|p| {
                s.spawn(move || {
                    for i in 0..per_producer {
                        queue.push(&record(p * per_producer + i));
                    }
                })
            })
            .collect();
        for producer in pushing {
            producer.join().expect("producer");
        }
        for _ in 0..consumers {
            queue.push(STOP);
        }
    });
    assert_eq!(queue.left(), 0, "every message acked");
    producers * per_producer + consumers
}

fn mini_cycles(root: &Path, threads: (u64, u64), n: u64, ack_next: bool) -> (u64, Duration) {
    let dir = fresh(root, "queue");
    let queue = Queue::open(dir.path()).expect("mini open");
    timed(|| cycles(&queue, threads.0, threads.1, n, ack_next))
}

fn sqlite_cycles(root: &Path, threads: (u64, u64), n: u64, ack_next: bool) -> (u64, Duration) {
    let dir = fresh(root, "sqlite-queue");
    let queue = SqliteQueue::open(dir.path());
    timed(|| cycles(&queue, threads.0, threads.1, n, ack_next))
}

/// push, pop, ack in one thread: three durable operations a cycle.
fn mini_single(root: &Path, n: u64) -> (u64, Duration) {
    let dir = fresh(root, "queue-single");
    let queue = Queue::open(dir.path()).expect("mini open");
    let payloads: Vec<String> = (0..n).map(record).collect();
    timed(|| {
        for payload in &payloads {
            Queue::push(&queue, payload, &PushOptions::default()).expect("push");
            let delivery = queue.pop(LEASE_MS).expect("pop").expect("a message");
            queue.ack(delivery.id, &delivery.token).expect("ack");
        }
        assert_eq!(Durable::left(&queue), 0);
        n
    })
}

fn main() {
    let root = bench_root();
    let n = bench_ops(500);
    eprintln!(
        "benchmark data in {}, {n} push+pop+ack cycles per rep, {REPS} reps",
        root.display()
    );

    let raw = "raw write+fdatasync loop (fsyncs/s)";
    let a = compare(
        "SQLite queue, 1 producer + 1 consumer (cycles/s)",
        &mut || sqlite_cycles(&root, (1, 1), n, false),
        "mini queue, 1 producer + 1 consumer (cycles/s)",
        &mut || mini_cycles(&root, (1, 1), n, false),
        REPS,
    );
    let b = compare(
        "SQLite queue, 8 producers + 8 consumers (cycles/s)",
        &mut || sqlite_cycles(&root, (8, 8), n, false),
        "mini queue, 8 producers + 8 consumers (cycles/s)",
        &mut || mini_cycles(&root, (8, 8), n, false),
        REPS,
    );
    let a_next = compare(
        "SQLite queue, 1 + 1, ack+pop in one transaction (cycles/s)",
        &mut || sqlite_cycles(&root, (1, 1), n, true),
        "mini queue, 1 + 1, ack_next (cycles/s)",
        &mut || mini_cycles(&root, (1, 1), n, true),
        REPS,
    );
    let b_next = compare(
        "SQLite queue, 8 + 8, ack+pop in one transaction (cycles/s)",
        &mut || sqlite_cycles(&root, (8, 8), n, true),
        "mini queue, 8 + 8, ack_next (cycles/s)",
        &mut || mini_cycles(&root, (8, 8), n, true),
        REPS,
    );
    let b_raw = compare(
        raw,
        &mut || raw_fdatasync_loop(&root, n),
        "mini queue, 8 producers + 8 consumers (cycles/s)",
        &mut || mini_cycles(&root, (8, 8), n, false),
        REPS,
    );
    let c = compare(
        raw,
        &mut || raw_fdatasync_loop(&root, n),
        "mini push+pop+ack, 1 thread (cycles/s)",
        &mut || mini_single(&root, n),
        REPS,
    );

    println!("| | case | rate | reference | rate | ratio | goal |");
    println!("|---|---|---:|---|---:|---:|---|");
    row("(l)", &a, "≥ 2");
    row("(l')", &a_next, "≥ 2");
    row("(m)", &b, "≥ 2");
    row("(m'')", &b_next, "≥ 2");
    row("(m')", &b_raw, "");
    row("(n)", &c, "≈ 0.33 (3 fsyncs a cycle)");
}
