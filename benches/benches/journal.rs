//! Journal benchmarks, measured side by side in one run (see BENCHMARKS.md).
//!
//! `cargo bench -p mini-benches --bench journal` (release). Set
//! `MINI_BENCH_DIR` to benchmark another disk (default: a temp dir under
//! the target directory, i.e. the project's disk).

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use mini_benches::{Measurement, measure, record};
use mini_engine::Journal;

const SINGLE_OPS: u64 = 300;
const REPS: usize = 3;

fn bench_root() -> PathBuf {
    let root = std::env::var_os("MINI_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data"));
    std::fs::create_dir_all(&root).expect("bench dir");
    root
}

fn fresh(root: &Path, name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(name)
        .tempdir_in(root)
        .expect("temp dir")
}

/// The physical limit: write one line, fdatasync, repeat.
fn raw_fdatasync_loop(root: &Path) -> Measurement {
    measure("raw write+fdatasync loop (physical limit)", SINGLE_OPS, REPS, || {
        let dir = fresh(root, "raw");
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(dir.path().join("raw.jsonl"))
            .expect("open");
        let mut offset = 0;
        for i in 0..SINGLE_OPS {
            let line = format!("{{\"seq\":{i},\"crc\":\"00000000\",\"data\":{}}}\n", record(i));
            file.write_all_at(line.as_bytes(), offset).expect("write");
            offset += line.len() as u64;
            file.sync_data().expect("fdatasync");
        }
    })
}

fn engine_single(root: &Path) -> Measurement {
    measure("mini engine: append, 1 writer", SINGLE_OPS, REPS, || {
        let dir = fresh(root, "single");
        let journal = Journal::open(dir.path()).expect("open");
        for i in 0..SINGLE_OPS {
            journal.append(&record(i)).expect("append");
        }
    })
}

fn engine_concurrent(root: &Path, threads: u64) -> Measurement {
    let per_thread = SINGLE_OPS;
    measure(
        &format!("mini engine: append, {threads} concurrent writers (group commit)"),
        per_thread * threads,
        REPS,
        || {
            let dir = fresh(root, "concurrent");
            let journal = Journal::open(dir.path()).expect("open");
            std::thread::scope(|s| {
                for t in 0..threads {
                    let journal = journal.clone();
                    s.spawn(move || {
                        for i in 0..per_thread {
                            journal.append(&record(t * per_thread + i)).expect("append");
                        }
                    });
                }
            });
        },
    )
}

fn engine_batches(root: &Path, batch: u64) -> Measurement {
    let batches = SINGLE_OPS;
    measure(
        &format!("mini engine: append_batch of {batch}, records"),
        batches * batch,
        REPS,
        || {
            let dir = fresh(root, "batch");
            let journal = Journal::open(dir.path()).expect("open");
            for b in 0..batches {
                let records: Vec<String> = (0..batch).map(|i| record(b * batch + i)).collect();
                journal.append_batch(&records).expect("append_batch");
            }
        },
    )
}

fn engine_read(root: &Path) -> Measurement {
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
    measure("mini engine: sequential read with crc checks, records", RECORDS, REPS, || {
        let mut n = 0;
        for entry in journal.read_from(1).expect("read") {
            entry.expect("entry");
            n += 1;
        }
        assert_eq!(n, RECORDS);
    })
}

fn upstream_ministore(root: &Path) -> Measurement {
    #[derive(serde::Serialize)]
    struct Rec {
        i: u64,
        pad: String,
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    measure("ministore 0.1.7 (crates.io): append, 1 writer", SINGLE_OPS, REPS, || {
        let dir = fresh(root, "ministore");
        runtime.block_on(async {
            let mut store = ministore::MiniStore::open(dir.path().join("journal.jsonl"))
                .await
                .expect("open");
            for i in 0..SINGLE_OPS {
                let rec = Rec { i, pad: "x".repeat(80) };
                store.append(&rec).await.expect("append");
            }
        });
    })
}

fn main() {
    // `cargo bench` passes `--bench`; a name filter is not supported.
    let root = bench_root();
    eprintln!("benchmark data in {}", root.display());
    let raw = raw_fdatasync_loop(&root);
    let single = engine_single(&root);
    let concurrent = engine_concurrent(&root, 16);
    let batch = engine_batches(&root, 64);
    let read = engine_read(&root);
    let upstream = upstream_ministore(&root);
    let raw_after = raw_fdatasync_loop(&root);

    println!("| case | rate | ratio |");
    println!("|---|---:|---|");
    let row = |m: &Measurement, ratio: String| {
        println!("| {} | {:.0}/s | {} |", m.name, m.per_sec, ratio)
    };
    row(&raw, "1.00 (limit, before)".into());
    row(&raw_after, format!("{:.2} of the limit before (disk drift)", raw_after.per_sec / raw.per_sec));
    let limit = (raw.per_sec + raw_after.per_sec) / 2.0;
    row(&single, format!("(a) {:.2} of the raw fdatasync loop (goal ≥ 0.9)", single.per_sec / limit));
    row(&concurrent, format!("(c) {:.1}x one writer (goal ≥ 8x)", concurrent.per_sec / single.per_sec));
    row(&batch, format!("(d) {:.1}x single appends (goal ≥ 30x)", batch.per_sec / single.per_sec));
    row(&read, "(e)".into());
    row(&upstream, format!("(f) mini is {:.2}x ministore", single.per_sec / upstream.per_sec));
}
