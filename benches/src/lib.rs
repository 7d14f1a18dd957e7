//! A small benchmark harness for durable writes.
//!
//! Disks on shared machines drift by large factors within seconds, so a case
//! is never compared with a number measured at another time: [`compare`]
//! alternates the two sides rep by rep (A B A B …) and reports the median of
//! the per-rep ratios, next to the median rate of each side.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The rate of one side of a comparison.
#[derive(Debug, Clone)]
pub struct Rate {
    /// What was measured.
    pub name: String,
    /// Median operations (records) per second over the repetitions.
    pub per_sec: f64,
}

/// Two cases measured alternately.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The reference side.
    pub baseline: Rate,
    /// The measured side.
    pub case: Rate,
    /// Median over repetitions of case rate / baseline rate.
    pub ratio: f64,
}

/// Work that reports how many operations it did and how long its timed part
/// took (setup such as creating a directory is left out).
pub type Work<'a> = &'a mut dyn FnMut() -> (u64, Duration);

/// The median of `values` (the upper one of an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn rate((ops, elapsed): (u64, Duration)) -> f64 {
    ops as f64 / elapsed.max(Duration::from_nanos(1)).as_secs_f64()
}

/// Runs `baseline` and `case` alternately `reps` times (after one warm-up of
/// each) and returns both median rates and the median per-rep ratio.
pub fn compare(
    baseline_name: &str,
    baseline: Work<'_>,
    case_name: &str,
    case: Work<'_>,
    reps: usize,
) -> Comparison {
    baseline();
    case();
    let mut base_rates = Vec::with_capacity(reps);
    let mut case_rates = Vec::with_capacity(reps);
    let mut ratios = Vec::with_capacity(reps);
    for _ in 0..reps {
        let b = rate(baseline());
        let c = rate(case());
        base_rates.push(b);
        case_rates.push(c);
        ratios.push(c / b);
    }
    let comparison = Comparison {
        baseline: Rate {
            name: baseline_name.into(),
            per_sec: median(base_rates),
        },
        case: Rate {
            name: case_name.into(),
            per_sec: median(case_rates),
        },
        ratio: median(ratios),
    };
    eprintln!(
        "{:<50} {:>10.0}/s  vs {:<45} {:>10.0}/s  ratio {:.2}",
        comparison.case.name,
        comparison.case.per_sec,
        comparison.baseline.name,
        comparison.baseline.per_sec,
        comparison.ratio
    );
    comparison
}

/// Times `f`, which returns the number of operations it did.
pub fn timed(f: impl FnOnce() -> u64) -> (u64, Duration) {
    let start = Instant::now();
    let ops = f();
    (ops, start.elapsed())
}

/// Appends `per_thread` records from each of `threads` threads sharing
/// `journal`; returns the number of appends.
pub fn append_concurrently(journal: &mini_engine::Journal, threads: u64, per_thread: u64) -> u64 {
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
    threads * per_thread
}

/// A record of about 100 bytes, like a small mutation.
pub fn record(i: u64) -> String {
    format!("{{\"i\":{i},\"pad\":\"{}\"}}", "x".repeat(80))
}

/// Operations per repetition: `MINI_BENCH_OPS`, or `default`.
pub fn bench_ops(default: u64) -> u64 {
    std::env::var("MINI_BENCH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The directory benchmarks write in: `MINI_BENCH_DIR`, or
/// `target/bench-data` (the project's disk).
pub fn bench_root() -> PathBuf {
    let root = std::env::var_os("MINI_BENCH_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&root).expect("bench dir");
    root
}

/// A new empty directory under `root`, removed when dropped.
pub fn fresh(root: &Path, name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(name)
        .tempdir_in(root)
        .expect("temp dir")
}

/// The physical limit of appending: write one journal-sized line at the end
/// of a growing file, fdatasync, repeat.
pub fn raw_fdatasync_loop(root: &Path, n: u64) -> (u64, Duration) {
    raw_loop(root, n, false)
}

/// The physical limit of a preallocated file: the same lines written over
/// zeros already written and synced, so each fdatasync writes data only.
pub fn raw_overwrite_loop(root: &Path, n: u64) -> (u64, Duration) {
    raw_loop(root, n, true)
}

fn raw_loop(root: &Path, n: u64, preallocated: bool) -> (u64, Duration) {
    let lines: Vec<Vec<u8>> = (0..n)
        .map(|i| raw_line(i, &record(i), false).into_bytes())
        .collect();
    (n, raw_write_loop(root, &lines, preallocated))
}

/// A journal-sized line as mini writes it (`"more":true` on every line of a
/// batch but its last), with a placeholder crc: the raw loops write the
/// bytes mini writes without doing mini's work.
pub fn raw_line(seq: u64, data: &str, more: bool) -> String {
    let more = if more { r#","more":true"# } else { "" };
    format!("{{\"seq\":{seq},\"crc\":\"00000000\"{more},\"data\":{data}}}\n")
}

/// Writes each of `writes` with one `pwrite` after the one before it, each
/// followed by an `fdatasync`, into a new file in a fresh directory under
/// `root`; with `preallocated`, over zeros written and synced beforehand
/// (untimed), so each sync writes data only. Returns the time of the loop.
pub fn raw_write_loop(root: &Path, writes: &[Vec<u8>], preallocated: bool) -> Duration {
    let dir = fresh(root, "raw");
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(dir.path().join("raw.jsonl"))
        .expect("open");
    if preallocated {
        let total: usize = writes.iter().map(Vec::len).sum();
        file.write_all_at(&vec![0; total], 0).expect("zeros");
        file.sync_all().expect("fsync");
    }
    timed(|| {
        let mut offset = 0;
        for bytes in writes {
            file.write_all_at(bytes, offset).expect("write");
            offset += bytes.len() as u64;
            file.sync_data().expect("fdatasync");
        }
        0
    })
    .1
}

/// Prints a comparison as a row of the Markdown tables in BENCHMARKS.md.
pub fn row(label: &str, c: &Comparison, goal: &str) {
    println!(
        "| {label} | {} | {:.0}/s | {} | {:.0}/s | **{:.2}** | {goal} |",
        c.case.name, c.case.per_sec, c.baseline.name, c.baseline.per_sec, c.ratio
    );
}
