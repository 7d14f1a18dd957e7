//! State manager benchmarks, each measured side by side with its reference
//! in one run (see BENCHMARKS.md):
//!
//! ```text
//! cargo bench -p mini-benches --bench state
//! ```
//!
//! The state is the `kv` guest component's (16 keys, mutation i sets
//! `k<i mod 16>` to i), built natively with the same JSON, so the native
//! manager and the guest component open the very same files.
//! `MINI_BENCH_HISTORY` sets the long history (default 1,000,000 mutations);
//! `MINI_BENCH_OPS` the applies per repetition (default 500).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mini_benches::{
    Comparison, bench_ops, bench_root, compare, fresh, raw_fdatasync_loop, row, timed,
};
use mini_engine::state::{Mutator, StateManager};
use mini_host::MiniHost;
use mini_host::runner::{Runner, RunnerConfig};
use mini_tests::{block_on, guest_component, mini_ctx};
use serde::{Deserialize, Serialize};
use wasmtime::component::Component;
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

const REPS: usize = 5;
const KEYS: u64 = 16;
/// Mutations after the last checkpoint in the checkpointed states.
const TAIL: u64 = 1_000;
const NAMESPACE: &str = "bench";

/// The kv component's state (same serde shape).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Kv {
    entries: BTreeMap<String, u64>,
    applied: u64,
}

/// The kv component's mutation (same serde shape).
#[derive(Debug, Serialize, Deserialize)]
enum Op {
    Set { key: String, value: u64 },
}

impl Mutator<Kv> for Op {
    fn apply(&self, state: &mut Kv) {
        let Op::Set { key, value } = self;
        state.entries.insert(key.clone(), *value);
        state.applied += 1;
    }
}

type Manager = StateManager<Kv, Op>;

fn op(i: u64) -> Op {
    Op::Set {
        key: format!("k{}", i % KEYS),
        value: i,
    }
}

/// Where the host keeps the state `kv` of the bench namespace under `data`.
fn state_dir(data: &Path) -> PathBuf {
    data.join(NAMESPACE).join("state").join("kv")
}

/// A data directory whose state `kv` holds `history` mutations; with
/// `checkpoint`, two checkpoints near the end (so the journal is compacted to
/// the last `TAIL` mutations plus the segment they start in).
fn build(root: &Path, history: u64, checkpoint: bool) -> tempfile::TempDir {
    let data = fresh(root, "state");
    let mgr = Manager::open(state_dir(data.path())).expect("open");
    let mut next = 1;
    let mut apply_until = |end: u64| {
        while next <= end {
            let upto = (next + 10_000).min(end + 1);
            mgr.apply_batch((next..upto).map(op).collect())
                .expect("fill");
            next = upto;
        }
    };
    if checkpoint {
        apply_until(history - 2 * TAIL);
        mgr.checkpoint().expect("checkpoint");
        apply_until(history - TAIL);
        mgr.checkpoint().expect("checkpoint");
    }
    apply_until(history);
    data
}

/// Opens the state natively (full recovery), checking it reached `history`.
fn open_native(data: &Path, history: u64) -> (u64, Duration) {
    timed(|| {
        let mgr = Manager::open(state_dir(data)).expect("open");
        assert_eq!(mgr.state().applied, history, "recovered state");
        1
    })
}

/// Opens the state in the kv guest component (instantiation included),
/// checking it reached `history`.
fn open_guest(runner: &Runner, kv: &Component, data: &Path, history: u64) -> (u64, Duration) {
    let stdout = MemoryOutputPipe::new(1 << 20);
    let wasi = WasiCtx::builder()
        .stdout(stdout.clone())
        .args(&["kv", "open"])
        .build();
    let mini = mini_ctx(&MiniHost::new(), data, NAMESPACE);
    let timing = timed(|| {
        let code = block_on(runner.run(kv, wasi, mini)).expect("guest run");
        assert_eq!(code, 0, "kv open failed");
        1
    });
    let out = String::from_utf8_lossy(&stdout.contents()).into_owned();
    assert!(
        out.starts_with(&format!("recovered seq {history} ")),
        "kv open: {out}"
    );
    timing
}

/// One durable `apply` per mutation, natively.
fn apply_native(root: &Path, n: u64) -> (u64, Duration) {
    let data = fresh(root, "apply");
    let mgr = Manager::open(state_dir(data.path())).expect("open");
    let ops: Vec<Op> = (1..=n).map(op).collect();
    timed(|| {
        for op in ops {
            mgr.apply(op).expect("apply");
        }
        n
    })
}

/// One durable `apply` per mutation in the kv guest component.
fn apply_guest(root: &Path, runner: &Runner, kv: &Component, n: u64) -> (u64, Duration) {
    let data = fresh(root, "apply-guest");
    let count = n.to_string();
    let wasi = WasiCtx::builder().args(&["kv", "apply", &count]).build();
    let mini = mini_ctx(&MiniHost::new(), data.path(), NAMESPACE);
    timed(|| {
        let code = block_on(runner.run(kv, wasi, mini)).expect("guest run");
        assert_eq!(code, 0, "kv apply failed");
        n
    })
}

/// A comparison of open times as a table row, in milliseconds per open.
fn row_ms(label: &str, c: &Comparison, goal: &str) {
    println!(
        "| {label} | {} | {:.1} ms | {} | {:.1} ms | **{:.2}** | {goal} |",
        c.case.name,
        1000.0 / c.case.per_sec,
        c.baseline.name,
        1000.0 / c.baseline.per_sec,
        c.ratio
    );
}

fn main() {
    let root = bench_root();
    let n = bench_ops(500);
    let long: u64 = std::env::var("MINI_BENCH_HISTORY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let short = long / 10;
    let runner = Runner::new(RunnerConfig::default()).expect("runner");
    let kv = runner.load(&guest_component("kv")).expect("load kv");
    eprintln!(
        "benchmark data in {}, history {long} (short {short}), {n} applies per rep, {REPS} reps",
        root.display()
    );

    eprintln!("building the states…");
    let full = build(&root, long, false);
    let checkpointed = build(&root, long, true);
    let checkpointed_short = build(&root, short, true);

    let replay = format!("open, {long} mutations, no snapshot (full replay)");
    let near_end = format!("open, {long} mutations, checkpoint near the end");
    let a = compare(
        &replay,
        &mut || open_native(full.path(), long),
        &near_end,
        &mut || open_native(checkpointed.path(), long),
        REPS,
    );
    let b = compare(
        &format!("open, {short} mutations, checkpoint near the end"),
        &mut || open_native(checkpointed_short.path(), short),
        &near_end,
        &mut || open_native(checkpointed.path(), long),
        REPS,
    );
    let c = compare(
        &format!("native {replay}"),
        &mut || open_native(full.path(), long),
        &format!("guest kv component {replay}"),
        &mut || open_guest(&runner, &kv, full.path(), long),
        3,
    );
    let c_near = compare(
        &format!("native {near_end}"),
        &mut || open_native(checkpointed.path(), long),
        &format!("guest kv component {near_end}"),
        &mut || open_guest(&runner, &kv, checkpointed.path(), long),
        REPS,
    );
    let raw = "raw write+fdatasync loop";
    let native_apply = "StateManager::apply, 1 writer";
    let d = compare(
        raw,
        &mut || raw_fdatasync_loop(&root, n),
        native_apply,
        &mut || apply_native(&root, n),
        REPS,
    );
    let e = compare(
        native_apply,
        &mut || apply_native(&root, n),
        "guest StateManager::apply (kv component via mini-host)",
        &mut || apply_guest(&root, &runner, &kv, n),
        REPS,
    );

    println!("| | case | time | reference | time | speed ratio | goal |");
    println!("|---|---|---:|---|---:|---:|---|");
    row_ms("(g)", &a, "≥ 50");
    row_ms("(h)", &b, "≈ 1 (independent of history)");
    row_ms("(i)", &c, "");
    row_ms("(i')", &c_near, "");
    println!();
    println!("| | case | rate | reference | rate | ratio | goal |");
    println!("|---|---|---:|---|---:|---:|---|");
    row("(j)", &d, "≥ 0.9");
    row("(k)", &e, "");
}
