//! Journals on NATS JetStream (mini-jetstream, issue 14) against the raw
//! write+fdatasync loop and the local engine, each measured side by side
//! with its references in one run (see BENCHMARKS.md):
//!
//! ```text
//! MINI_NATS_SERVER=$(scripts/install-nats-server) cargo bench -p mini-benches --bench jetstream
//! ```
//!
//! Every case is measured rep by rep with its two references just before
//! it (raw loop, local engine doing the same work, the case; again …): its
//! ratios are the medians of the per-rep ratios. Then batching and group
//! commit against one appender on the same servers (A B A B). The servers
//! are the test harness's (`mini_tests::nats`: file storage,
//! `sync_interval: always`, so every acknowledged publish is fsync'd), one
//! node for R1 and a three-node cluster on loopback for R3, their stores
//! under the benchmark directory, on the raw loop's disk.
//!
//! `MINI_BENCH_DIR` picks the disk (default: `target/bench-data`).
//! `MINI_BENCH_OPS` sets the records of one rep of the one-record cases
//! (default 500); batches and concurrent appenders write 4 times as many.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mini_benches::{
    Comparison, Rate, append_concurrently, bench_ops, bench_root, compare, fresh, median,
    raw_fdatasync_loop, record, row, timed,
};
use mini_engine::Journal;
use mini_jetstream::{JetStream, JetStreamOptions, JsJournal};
use mini_tests::nats::{NatsCluster, NatsServer};
use tokio::runtime::Runtime;

const REPS: usize = 7;
/// Records of one append_batch.
const BATCH: u64 = 64;
/// Concurrent appenders sharing one journal.
const TASKS: u64 = 16;

const RAW: &str = "raw write+fdatasync loop";

/// The shape of an append workload, run the same way on both journals.
#[derive(Clone, Copy)]
enum Shape {
    /// One appender, one record per append.
    Single,
    /// One appender, `BATCH` records per append.
    Batch,
    /// `TASKS` appenders at once on one journal, one record per append.
    Concurrent,
}

impl Shape {
    fn describe(self) -> String {
        match self {
            Shape::Single => "append, 1 appender".into(),
            Shape::Batch => format!("append_batch of {BATCH} (records/s)"),
            Shape::Concurrent => format!("append, {TASKS} concurrent appenders"),
        }
    }

    /// The records one rep writes, `n` being the one-record count.
    fn records(self, n: u64) -> u64 {
        match self {
            Shape::Single => n,
            Shape::Batch => (4 * n / BATCH).max(1) * BATCH,
            Shape::Concurrent => (4 * n / TASKS).max(1) * TASKS,
        }
    }
}

fn engine(root: &Path, shape: Shape, n: u64) -> (u64, Duration) {
    let dir = fresh(root, "engine");
    let journal = Journal::open(dir.path()).expect("open");
    let total = shape.records(n);
    let (done, elapsed) = match shape {
        Shape::Single => timed(|| {
            for i in 0..total {
                journal.append(&record(i)).expect("append");
            }
            total
        }),
        Shape::Batch => {
            let batches: Vec<Vec<String>> = (0..total / BATCH)
                .map(|b| (0..BATCH).map(|i| record(b * BATCH + i)).collect())
                .collect();
            timed(|| {
                for records in &batches {
                    journal.append_batch(records).expect("append_batch");
                }
                total
            })
        }
        Shape::Concurrent => timed(|| append_concurrently(&journal, TASKS, total / TASKS)),
    };
    assert_eq!(journal.last_seq(), total, "the local journal lost appends");
    (done, elapsed)
}

/// A new journal (a new stream) on `js`: every rep starts empty, as the
/// local engine's does in a fresh directory.
async fn fresh_journal(js: &JetStream, label: &str) -> JsJournal {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!("{label}-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    js.open_journal("bench", &name).await.expect("open_journal")
}

fn jetstream(runtime: &Runtime, js: &JetStream, shape: Shape, n: u64) -> (u64, Duration) {
    let total = shape.records(n);
    runtime.block_on(async {
        let journal = fresh_journal(js, &format!("r{}", js.options().replicas)).await;
        let elapsed = match shape {
            Shape::Single => {
                let records: Vec<String> = (0..total).map(record).collect();
                let start = Instant::now();
                for record in records {
                    journal.append(record).await.expect("append");
                }
                start.elapsed()
            }
            Shape::Batch => {
                let batches: Vec<Vec<String>> = (0..total / BATCH)
                    .map(|b| (0..BATCH).map(|i| record(b * BATCH + i)).collect())
                    .collect();
                let start = Instant::now();
                for records in batches {
                    journal.append_batch(records).await.expect("append_batch");
                }
                start.elapsed()
            }
            Shape::Concurrent => {
                let per_task = total / TASKS;
                let start = Instant::now();
                let tasks: Vec<_> = (0..TASKS)
                    .map(|t| {
                        let journal = journal.clone();
                        tokio::spawn(async move {
                            for i in 0..per_task {
                                journal
                                    .append(record(t * per_task + i))
                                    .await
                                    .expect("append");
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("appender task");
                }
                start.elapsed()
            }
        };
        assert_eq!(journal.last_seq(), total, "the stream lost appends");
        (total, elapsed)
    })
}

/// One case against both its references, rep by rep (raw loop, local
/// engine, case; after one warm-up of each): (vs raw, vs engine).
fn against_both(
    root: &Path,
    shape: Shape,
    n: u64,
    case_name: &str,
    case: &mut dyn FnMut() -> (u64, Duration),
) -> (Comparison, Comparison) {
    let rate = |(ops, elapsed): (u64, Duration)| {
        ops as f64 / elapsed.max(Duration::from_nanos(1)).as_secs_f64()
    };
    let raw = || raw_fdatasync_loop(root, n);
    let local = || engine(root, shape, n);
    raw();
    local();
    case();
    let (mut raws, mut locals, mut cases) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..REPS {
        raws.push(rate(raw()));
        locals.push(rate(local()));
        cases.push(rate(case()));
    }
    let engine_name = format!("local engine {}", shape.describe());
    let side = |name: &str, rates: &[f64]| Rate {
        name: name.to_owned(),
        per_sec: median(rates.to_vec()),
    };
    let versus = |name: &str, rates: &[f64]| Comparison {
        baseline: side(name, rates),
        case: side(case_name, &cases),
        ratio: median(cases.iter().zip(rates).map(|(c, b)| c / b).collect()),
    };
    let (vs_raw, vs_engine) = (versus(RAW, &raws), versus(&engine_name, &locals));
    eprintln!(
        "{:<45} {:>9.0}/s  raw {:>7.0}/s ratio {:>6.2}  engine {:>8.0}/s ratio {:.2}",
        case_name,
        vs_raw.case.per_sec,
        vs_raw.baseline.per_sec,
        vs_raw.ratio,
        vs_engine.baseline.per_sec,
        vs_engine.ratio
    );
    (vs_raw, vs_engine)
}

fn main() {
    let root = bench_root();
    // The harness makes the servers' stores in the temporary directory:
    // put it under the benchmark directory, on the raw loop's disk.
    // Canonical: the harness checks that the server reports its store
    // under the path it gave (the server resolves `..`).
    let stores = root.join("nats");
    std::fs::create_dir_all(&stores).expect("nats dir");
    let stores = stores.canonicalize().expect("nats dir");
    tempfile::env::override_temp_dir(&stores).expect("the first temporary directory");
    let n = bench_ops(500);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let started = Instant::now();
    let Some(single) = NatsServer::start_single().expect("nats-server") else {
        return; // no binary: skipped, loudly
    };
    let Some(cluster) = NatsCluster::start(3).expect("nats cluster") else {
        return;
    };
    let connect = |urls: String, replicas| {
        let options = JetStreamOptions {
            replicas,
            ..JetStreamOptions::default()
        };
        runtime
            .block_on(JetStream::connect(&urls, options))
            .expect("connect")
    };
    let r1 = connect(single.url(), 1);
    let r3 = connect(cluster.urls().join(","), 3);
    eprintln!(
        "benchmark data in {} (servers' stores in {}), {n} records per rep \
         ({} in batches and concurrent cases), {REPS} reps; servers up in {:.1?}",
        root.display(),
        stores.display(),
        4 * n,
        started.elapsed()
    );

    let local = compare(
        RAW,
        &mut || raw_fdatasync_loop(&root, n),
        "local engine append, 1 appender",
        &mut || engine(&root, Shape::Single, n),
        REPS,
    );
    let mut rows = Vec::new();
    for (label, js) in [("R1", &r1), ("R3", &r3)] {
        for shape in [Shape::Single, Shape::Batch, Shape::Concurrent] {
            let name = format!("JetStream {label} {}", shape.describe());
            let (vs_raw, vs_engine) = against_both(&root, shape, n, &name, &mut || {
                jetstream(&runtime, js, shape, n)
            });
            rows.push((vs_raw, vs_engine));
        }
    }
    // What batching and group commit buy on each, against one appender
    // appending one record at a time on the same servers (A B A B).
    let mut gains = Vec::new();
    for (label, js) in [("R1", &r1), ("R3", &r3)] {
        for shape in [Shape::Batch, Shape::Concurrent] {
            gains.push(compare(
                &format!("JetStream {label} {}", Shape::Single.describe()),
                &mut || jetstream(&runtime, js, Shape::Single, n),
                &format!("JetStream {label} {}", shape.describe()),
                &mut || jetstream(&runtime, js, shape, n),
                REPS,
            ));
        }
    }

    println!("| | case | rate | raw loop | vs raw | local engine, same shape | rate | vs engine |");
    println!("|---|---|---:|---:|---:|---|---:|---:|");
    println!(
        "| (j0) | {} | {:.0}/s | {:.0}/s | **{:.2}** | | | |",
        local.case.name, local.case.per_sec, local.baseline.per_sec, local.ratio
    );
    for (i, (vs_raw, vs_engine)) in rows.iter().enumerate() {
        println!(
            "| (j{}) | {} | {:.0}/s | {:.0}/s | **{:.2}** | {} | {:.0}/s | **{:.2}** |",
            i + 1,
            vs_raw.case.name,
            vs_raw.case.per_sec,
            vs_raw.baseline.per_sec,
            vs_raw.ratio,
            vs_engine.baseline.name,
            vs_engine.baseline.per_sec,
            vs_engine.ratio
        );
    }
    println!();
    println!("| | case | rate | reference | rate | ratio | goal |");
    println!("|---|---|---:|---|---:|---:|---|");
    for (i, gain) in gains.iter().enumerate() {
        row(&format!("(g{})", i + 1), gain, "");
    }
    eprintln!("total {:.1?}", started.elapsed());
    drop((single, cluster));
}
