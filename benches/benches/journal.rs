//! Journal benchmarks, each measured side by side with its reference in one
//! run (see BENCHMARKS.md):
//!
//! ```text
//! cargo bench -p mini-benches --bench journal
//! ```
//!
//! `MINI_BENCH_DIR` picks the disk (default: `target/bench-data`, the
//! project's disk). `MINI_BENCH_OPS` sets appends per repetition (default 500).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mini_benches::{
    append_concurrently, bench_ops, bench_root, compare, fresh, raw_fdatasync_loop,
    raw_overwrite_loop, record, row, timed,
};
use mini_engine::Journal;
use mini_host::MiniHost;
use mini_host::runner::{Runner, RunnerConfig};
use mini_tests::{block_on, guest_component, load, mini_ctx, run_with};

const REPS: usize = 5;

fn engine_single(root: &Path, n: u64) -> (u64, Duration) {
    let dir = fresh(root, "single");
    let journal = Journal::open(dir.path()).expect("open");
    timed(|| {
        for i in 0..n {
            journal.append(&record(i)).expect("append");
        }
        n
    })
}

fn engine_concurrent(root: &Path, threads: u64, per_thread: u64) -> (u64, Duration) {
    let dir = fresh(root, "concurrent");
    let journal = Journal::open(dir.path()).expect("open");
    timed(|| append_concurrently(&journal, threads, per_thread))
}

fn engine_batches(root: &Path, batches: u64, batch: u64) -> (u64, Duration) {
    let dir = fresh(root, "batch");
    let journal = Journal::open(dir.path()).expect("open");
    let all: Vec<Vec<String>> = (0..batches)
        .map(|b| (0..batch).map(|i| record(b * batch + i)).collect())
        .collect();
    timed(|| {
        for records in &all {
            journal.append_batch(records).expect("append_batch");
        }
        batches * batch
    })
}

fn ministore_single(root: &Path, runtime: &tokio::runtime::Runtime, n: u64) -> (u64, Duration) {
    #[derive(serde::Serialize)]
    struct Rec {
        i: u64,
        pad: String,
    }
    let dir = fresh(root, "ministore");
    runtime.block_on(async {
        let mut store = ministore::MiniStore::open(dir.path().join("journal.jsonl"))
            .await
            .expect("open");
        let start = Instant::now();
        for i in 0..n {
            let rec = Rec {
                i,
                pad: "x".repeat(80),
            };
            store.append(&rec).await.expect("append");
        }
        (n, start.elapsed())
    })
}

/// The `appender` guest component appending `n` records through the host:
/// the time of the appends as the guest measured it (instantiation and the
/// journal's open left out, as in [`engine_single`]).
fn guest_single(root: &Path, runner: &Runner, n: u64) -> (u64, Duration) {
    let dir = fresh(root, "guest");
    let mini = mini_ctx(&MiniHost::new(), dir.path(), "bench");
    let count = n.to_string();
    let appender = guest_component("appender");
    let out = block_on(run_with(runner, &appender, mini, &["bench", &count]));
    assert_eq!(out.exit_code(), 0, "appender failed: {}", out.stderr);
    let micros = out
        .stdout
        .trim_end()
        .strip_suffix(" us")
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|us| us.parse().ok())
        .unwrap_or_else(|| panic!("no time in the appender's output: {}", out.stdout));
    (n, Duration::from_micros(micros))
}

/// The same run timed from outside: instantiation and open included.
fn guest_single_whole_run(root: &Path, runner: &Runner, n: u64) -> (u64, Duration) {
    let dir = fresh(root, "guest");
    let mini = mini_ctx(&MiniHost::new(), dir.path(), "bench");
    let count = n.to_string();
    let appender = guest_component("appender");
    load(runner, &appender);
    timed(|| {
        let out = block_on(run_with(runner, &appender, mini, &["bench", &count]));
        assert_eq!(out.exit_code(), 0, "appender failed: {}", out.stderr);
        n
    })
}

/// `instances` appender components running at once on one tokio runtime,
/// each appending `n` records to the same journal (shared through one
/// `MiniHost`, so they share syncs): wall time, instantiation included.
fn guest_concurrent(root: &Path, runner: &Arc<Runner>, instances: u64, n: u64) -> (u64, Duration) {
    let dir = fresh(root, "guests");
    let host = MiniHost::new();
    let appender = guest_component("appender");
    load(runner, &appender);
    let count = n.to_string();
    timed(|| {
        block_on(async {
            let runs: Vec<_> = (0..instances)
                .map(|_| {
                    let mini = mini_ctx(&host, dir.path(), "bench");
                    let (runner, appender, count) =
                        (runner.clone(), appender.clone(), count.clone());
                    tokio::spawn(async move {
                        run_with(&runner, &appender, mini, &["shared", &count]).await
                    })
                })
                .collect();
            for run in runs {
                let out = run.await.expect("task");
                assert_eq!(out.exit_code(), 0, "appender failed: {}", out.stderr);
            }
        });
        instances * n
    })
}

fn engine_read(root: &Path) -> (u64, Duration) {
    const RECORDS: u64 = 200_000;
    let dir = fresh(root, "read");
    {
        let journal = Journal::open(dir.path()).expect("open");
        let records: Vec<String> = (0..RECORDS).map(record).collect();
        for chunk in records.chunks(10_000) {
            journal.append_batch(chunk).expect("fill");
        }
    }
    let journal = Journal::open(dir.path()).expect("reopen");
    timed(|| {
        let mut n = 0;
        for entry in journal.read_from(1).expect("read") {
            entry.expect("entry");
            n += 1;
        }
        assert_eq!(n, RECORDS);
        n
    })
}

fn main() {
    let root = bench_root();
    let n = bench_ops(500);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let runner = Arc::new(Runner::new(RunnerConfig::default()).expect("runner"));
    eprintln!(
        "benchmark data in {}, {n} appends per rep, {REPS} reps",
        root.display()
    );

    let raw = "raw write+fdatasync loop";
    let single = "mini append, 1 writer";
    let a = compare(
        raw,
        &mut || raw_fdatasync_loop(&root, n),
        single,
        &mut || engine_single(&root, n),
        REPS,
    );
    let a_overwrite = compare(
        "raw write+fdatasync over synced zeros",
        &mut || raw_overwrite_loop(&root, n),
        single,
        &mut || engine_single(&root, n),
        REPS,
    );
    let b = compare(
        single,
        &mut || engine_single(&root, n),
        "guest component append (appender via mini-host)",
        &mut || guest_single(&root, &runner, n),
        REPS,
    );
    let b_whole = compare(
        single,
        &mut || engine_single(&root, n),
        "guest component append, instantiation and open included",
        &mut || guest_single_whole_run(&root, &runner, n),
        REPS,
    );
    let c = compare(
        single,
        &mut || engine_single(&root, n),
        "mini append, 16 concurrent writers",
        &mut || engine_concurrent(&root, 16, n / 4),
        REPS,
    );
    let c_guests = compare(
        "mini append, 8 concurrent writers",
        &mut || engine_concurrent(&root, 8, n / 2),
        "8 guest components appending at once (one journal)",
        &mut || guest_concurrent(&root, &runner, 8, n / 2),
        REPS,
    );
    let c_raw = compare(
        raw,
        &mut || raw_fdatasync_loop(&root, n),
        "mini append, 16 concurrent writers",
        &mut || engine_concurrent(&root, 16, n / 4),
        REPS,
    );
    let d = compare(
        single,
        &mut || engine_single(&root, n),
        "mini append_batch of 64 (records/s)",
        &mut || engine_batches(&root, n / 8, 64),
        REPS,
    );
    let f = compare(
        "ministore 0.1.7 append",
        &mut || ministore_single(&root, &runtime, n),
        single,
        &mut || engine_single(&root, n),
        REPS,
    );
    let e = compare(
        raw,
        &mut || raw_fdatasync_loop(&root, n),
        "mini sequential read, crc checked (records/s)",
        &mut || engine_read(&root),
        3,
    );

    println!("| | case | rate | reference | rate | ratio | goal |");
    println!("|---|---|---:|---|---:|---:|---|");
    row("(a)", &a, "≥ 0.9");
    row("(a')", &a_overwrite, "");
    row("(b)", &b, "≥ 0.9");
    row("(b')", &b_whole, "");
    row("(c)", &c, "≥ 8");
    row("(c')", &c_raw, "");
    row("(c'')", &c_guests, "");
    row("(d)", &d, "≥ 30");
    row("(e)", &e, "");
    row("(f)", &f, "");
}
