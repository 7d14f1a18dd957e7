//! `wasi:keyvalue` benchmarks, each measured side by side with its reference
//! in one run (see BENCHMARKS.md):
//!
//! ```text
//! cargo bench -p mini-benches --bench keyvalue
//! ```
//!
//! Every guest side is the same component, `kv-conformance-draft` (it
//! imports `wasi:keyvalue@0.2.0-draft`), running one of its timing
//! commands, which time themselves with the guest's monotonic clock (the
//! instantiation is not counted):
//!
//! * `bench-set N BYTES`: N sets of distinct keys (`key-0` …) with values
//!   of BYTES bytes in the bucket `""`;
//! * `bench-get N`: sets 100 keys (one `set-many`, not timed), then N gets
//!   of them.
//!
//! The hosts it runs on:
//!
//! * **mini, runner**: `mini_host::runner::Runner`, what `mini run` uses
//!   (wasmtime-wasi p2 async, mini's async host functions, epoch
//!   interruption for the time limit, a call hook, a memory limiter);
//! * **mini, async linker** / **mini, sync linker**: a plain store (no epoch
//!   interruption, no hook, no limiter) with wasmtime-wasi p2 and mini's
//!   host functions, both async (`add_to_linker_async`, `call_async`) or
//!   both sync (`add_to_linker_sync`, `call`);
//! * **in-memory, async linker** / **in-memory, sync linker**: the same
//!   plain stores with wasmtime-wasi-keyvalue 48.0.8's in-memory host
//!   instead of mini's (its host functions are sync: on the async linker
//!   they are called as they are, inside `call_async`'s fiber).
//!
//! The native references: the raw write+fdatasync loop (the physical
//! limit, `mini_benches::raw_fdatasync_loop`; also over preallocated
//! space, `raw_overwrite_loop`), SQLite (rusqlite, bundled; WAL mode,
//! `synchronous=FULL`, each set an `INSERT OR REPLACE` in its own
//! transaction, same keys and value size), and the engine's `Bucket`
//! called directly, all in the same directory. To split a `get`'s time,
//! mini's host functions are also called natively (no wasm), next to the
//! steps of the in-memory host's `get`. Group commit: [`INSTANCES`] runner instances at once on one
//! `MiniHost`, each setting the same N keys in the same bucket (the default
//! bucket of one namespace), against one instance measured the same way
//! (wall clock, instantiation included).
//!
//! `MINI_BENCH_DIR` picks the disk (default `target/bench-data`);
//! `MINI_BENCH_OPS` sets the durable sets per repetition (default 1,000),
//! `MINI_BENCH_BYTES` the value size (default 100), `MINI_BENCH_GETS` the
//! gets (and in-memory sets) per repetition (default 300,000).
//! `MINI_BENCH_PROFILE=<host>` runs only `bench-get` on one host, for a
//! profiler (see `profile`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mini_benches::{
    Comparison, bench_ops, bench_root, compare, fresh, median, raw_fdatasync_loop,
    raw_overwrite_loop, row, timed,
};
use mini_engine::kv::{Bucket, BucketOptions};
use mini_host::keyvalue::BucketHandle;
use mini_host::keyvalue::bindings::draft;
use mini_host::runner::{Runner, RunnerConfig};
use mini_host::{MiniCtx, MiniCtxView, MiniHost, MiniView, ResourceTable};
use mini_tests::{block_on, guest_component, mini_ctx};
use rusqlite::{Connection, params};
use wasmtime::component::{Component, Linker, Resource};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_keyvalue::{WasiKeyValue, WasiKeyValueCtx};

const REPS: usize = 7;
const NAMESPACE: &str = "bench";
const COMPONENT: &str = "kv-conformance-draft";
/// Instances writing one bucket at once in the group commit case.
const INSTANCES: usize = 8;
/// Bytes of a guest's stdout kept.
const PIPE: usize = 1 << 16;

/// Store data of a plain store with mini's storage.
struct MiniState {
    wasi: WasiCtx,
    table: ResourceTable,
    mini: MiniCtx,
}

impl WasiView for MiniState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl MiniView for MiniState {
    fn mini(&mut self) -> MiniCtxView<'_> {
        MiniCtxView {
            ctx: &mut self.mini,
            table: &mut self.table,
        }
    }
}

/// Store data of a plain store with wasmtime-wasi-keyvalue's in-memory host.
struct MemState {
    wasi: WasiCtx,
    table: ResourceTable,
    kv: WasiKeyValueCtx,
}

impl WasiView for MemState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Where a guest runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Host {
    /// mini's `Runner` (what `mini run` uses).
    Runner,
    /// A plain store, wasmtime-wasi p2 and mini, async.
    MiniAsync,
    /// A plain store, wasmtime-wasi p2 and mini, sync.
    MiniSync,
    /// A plain store, wasmtime-wasi p2 and the in-memory host, async.
    MemAsync,
    /// A plain store, wasmtime-wasi p2 and the in-memory host, sync.
    MemSync,
}

impl Host {
    fn name(self) -> &'static str {
        match self {
            Host::Runner => "mini, runner",
            Host::MiniAsync => "mini, async linker",
            Host::MiniSync => "mini, sync linker",
            Host::MemAsync => "in-memory, async linker",
            Host::MemSync => "in-memory, sync linker",
        }
    }
}

/// The hosts and the component compiled for each engine.
struct Bench {
    root: std::path::PathBuf,
    runner: Arc<Runner>,
    runner_component: Component,
    engine: Engine,
    component: Component,
    mini_async: Linker<MiniState>,
    mini_sync: Linker<MiniState>,
    mem_async: Linker<MemState>,
    mem_sync: Linker<MemState>,
}

impl Bench {
    fn new(root: std::path::PathBuf) -> Bench {
        let path = guest_component(COMPONENT);
        let runner = Runner::new(RunnerConfig::default()).expect("runner");
        let runner_component = runner.load(&path).expect("load for the runner");
        let mut config = Config::new();
        if let Ok(cache) = wasmtime::Cache::from_file(None) {
            config.cache(Some(cache));
        }
        let engine = Engine::new(&config).expect("engine");
        let component = Component::from_file(&engine, &path).expect("load");
        let mut mini_async = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut mini_async).expect("wasi async");
        mini_host::add_to_linker_async(&mut mini_async).expect("mini async");
        let mut mini_sync = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut mini_sync).expect("wasi sync");
        mini_host::add_to_linker_sync(&mut mini_sync).expect("mini sync");
        let mut mem_async = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut mem_async).expect("wasi async");
        wasmtime_wasi_keyvalue::add_to_linker(&mut mem_async, |h: &mut MemState| {
            WasiKeyValue::new(&h.kv, &mut h.table)
        })
        .expect("keyvalue");
        let mut mem_sync = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut mem_sync).expect("wasi sync");
        wasmtime_wasi_keyvalue::add_to_linker(&mut mem_sync, |h: &mut MemState| {
            WasiKeyValue::new(&h.kv, &mut h.table)
        })
        .expect("keyvalue");
        Bench {
            root,
            runner: Arc::new(runner),
            runner_component,
            engine,
            component,
            mini_async,
            mini_sync,
            mem_async,
            mem_sync,
        }
    }

    /// Runs the component with `args` on `host` (mini's hosts on a fresh
    /// data directory and `MiniHost`); returns its stdout.
    fn run(&self, host: Host, args: &[&str]) -> String {
        let stdout = MemoryOutputPipe::new(PIPE);
        let stderr = MemoryOutputPipe::new(PIPE);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .arg(COMPONENT)
            .args(args)
            .build();
        let data = fresh(&self.root, "kv");
        let mini_host = MiniHost::new();
        let mini = || mini_ctx(&mini_host, data.path(), NAMESPACE);
        let table = ResourceTable::new;
        let kv = || WasiKeyValueCtx::builder().build();
        let ok = match host {
            Host::Runner => {
                block_on(self.runner.run(&self.runner_component, wasi, mini())).expect("runner run")
                    == 0
            }
            Host::MiniAsync => {
                let data = MiniState {
                    wasi,
                    table: table(),
                    mini: mini(),
                };
                self.run_async(&self.mini_async, data)
            }
            Host::MiniSync => {
                let data = MiniState {
                    wasi,
                    table: table(),
                    mini: mini(),
                };
                self.run_sync(&self.mini_sync, data)
            }
            Host::MemAsync => {
                let data = MemState {
                    wasi,
                    table: table(),
                    kv: kv(),
                };
                self.run_async(&self.mem_async, data)
            }
            Host::MemSync => {
                let data = MemState {
                    wasi,
                    table: table(),
                    kv: kv(),
                };
                self.run_sync(&self.mem_sync, data)
            }
        };
        let out = String::from_utf8_lossy(&stdout.contents()).into_owned();
        assert!(
            ok,
            "{COMPONENT} {args:?} on {} failed:\n{out}\n{}",
            host.name(),
            String::from_utf8_lossy(&stderr.contents())
        );
        out
    }

    /// Instantiates and runs the component in an async plain store.
    fn run_async<T: WasiView + Send + 'static>(&self, linker: &Linker<T>, data: T) -> bool {
        use wasmtime_wasi::p2::bindings::Command;
        block_on(async {
            let mut store = Store::new(&self.engine, data);
            let command = Command::instantiate_async(&mut store, &self.component, linker)
                .await
                .expect("instantiate");
            command
                .wasi_cli_run()
                .call_run(&mut store)
                .await
                .expect("run")
                .is_ok()
        })
    }

    /// Instantiates and runs the component in a sync plain store, on this
    /// thread (no executor).
    fn run_sync<T: WasiView + 'static>(&self, linker: &Linker<T>, data: T) -> bool {
        use wasmtime_wasi::p2::bindings::sync::Command;
        let mut store = Store::new(&self.engine, data);
        let command =
            Command::instantiate(&mut store, &self.component, linker).expect("instantiate");
        command
            .wasi_cli_run()
            .call_run(&mut store)
            .expect("run")
            .is_ok()
    }

    /// `bench-set n bytes` on `host`: the sets and the guest's time of them.
    fn sets(&self, host: Host, n: u64, bytes: usize) -> (u64, Duration) {
        let out = self.run(host, &["bench-set", &n.to_string(), &bytes.to_string()]);
        (n, guest_time(&out, "set", n))
    }

    /// `bench-get n` on `host`: the gets and the guest's time of them.
    fn gets(&self, host: Host, n: u64) -> (u64, Duration) {
        let out = self.run(host, &["bench-get", &n.to_string()]);
        assert!(
            out.contains("ok every get found its key"),
            "bench-get on {}: {out}",
            host.name()
        );
        (n, guest_time(&out, "get", n))
    }

    /// `instances` runner instances at once, each `bench-set n bytes` into
    /// the default bucket of one namespace on one `MiniHost`: all their sets
    /// and the wall time from the first instantiation to the last exit.
    fn concurrent_sets(&self, instances: usize, n: u64, bytes: usize) -> (u64, Duration) {
        let data = fresh(&self.root, "kv-group");
        let host = MiniHost::new();
        let runs: Vec<_> = (0..instances)
            .map(|_| {
                let stdout = MemoryOutputPipe::new(PIPE);
                let wasi = WasiCtx::builder()
                    .stdout(stdout.clone())
                    .arg(COMPONENT)
                    .args(&["bench-set", &n.to_string(), &bytes.to_string()])
                    .build();
                (wasi, mini_ctx(&host, data.path(), NAMESPACE), stdout)
            })
            .collect();
        let start = Instant::now();
        let outs = block_on(async {
            let tasks: Vec<_> = runs
                .into_iter()
                .map(|(wasi, mini, stdout)| {
                    let runner = self.runner.clone();
                    let component = self.runner_component.clone();
                    tokio::spawn(async move {
                        let code = runner.run(&component, wasi, mini).await.expect("run");
                        (code, stdout)
                    })
                })
                .collect();
            let mut outs = Vec::new();
            for task in tasks {
                outs.push(task.await.expect("task"));
            }
            outs
        });
        let elapsed = start.elapsed();
        for (code, stdout) in outs {
            let out = String::from_utf8_lossy(&stdout.contents()).into_owned();
            assert_eq!(code, 0, "concurrent bench-set: {out}");
            guest_time(&out, "set", n);
        }
        (instances as u64 * n, elapsed)
    }
}

/// The time a bench command printed: `<what> <n> ns <T>`.
fn guest_time(out: &str, what: &str, n: u64) -> Duration {
    let prefix = format!("{what} {n} ns ");
    let ns = out
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{prefix}T` in the output: {out}"));
    Duration::from_nanos(ns)
}

/// SQLite: `n` sets of distinct keys, each `INSERT OR REPLACE` in its own
/// transaction, WAL mode, `synchronous=FULL`, in a new database.
fn sqlite_sets(root: &Path, n: u64, bytes: usize) -> (u64, Duration) {
    let dir = fresh(root, "sqlite");
    let mut conn = Connection::open(dir.path().join("kv.db")).expect("sqlite open");
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .expect("sqlite wal");
    assert_eq!(mode, "wal");
    conn.pragma_update(None, "synchronous", "FULL")
        .expect("sqlite synchronous");
    conn.execute_batch("CREATE TABLE kv (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL)")
        .expect("sqlite schema");
    let keys: Vec<String> = (0..n).map(|i| format!("key-{i}")).collect();
    let value = vec![b'v'; bytes];
    timed(|| {
        for key in &keys {
            let tx = conn.transaction().expect("sqlite begin");
            tx.prepare_cached("INSERT OR REPLACE INTO kv(key, value) VALUES (?, ?)")
                .expect("sqlite prepare")
                .execute(params![key, value])
                .expect("sqlite insert");
            tx.commit().expect("sqlite commit");
        }
        n
    })
}

/// The 100 keys `bench-get` reads, in its order.
fn get_keys() -> Vec<String> {
    (0..100).map(|i| format!("key-{i}")).collect()
}

/// Native durable `Bucket::set`s, as `bench-set` does them (no wasm, no
/// host call), on a bucket opened directly with the default options.
fn native_sets(root: &Path, n: u64, bytes: usize) -> (u64, Duration) {
    let dir = fresh(root, "kv-native");
    let bucket = Bucket::open(dir.path(), &BucketOptions::default()).expect("bucket open");
    let keys: Vec<String> = (0..n).map(|i| format!("key-{i}")).collect();
    let value = vec![b'v'; bytes];
    timed(|| {
        for key in &keys {
            bucket.set(key, &value).expect("set");
        }
        n
    })
}

/// Native durable `Bucket::set`s from `threads` threads at once on one
/// bucket, `n` each: the same keys `key-0` … in each thread (what the
/// concurrent instances of `bench-set` do), or keys of their own
/// (`distinct`). All the sets and the wall time.
fn native_concurrent_sets(
    root: &Path,
    threads: usize,
    n: u64,
    bytes: usize,
    distinct: bool,
) -> (u64, Duration) {
    let dir = fresh(root, "kv-native");
    let bucket = Bucket::open(dir.path(), &BucketOptions::default()).expect("bucket open");
    let keys: Vec<Vec<String>> = (0..threads)
        .map(|t| {
            (0..n)
                .map(|i| {
                    if distinct {
                        format!("key-{t}-{i}")
                    } else {
                        format!("key-{i}")
                    }
                })
                .collect()
        })
        .collect();
    let value = vec![b'v'; bytes];
    timed(|| {
        std::thread::scope(|s| {
            for keys in &keys {
                let (bucket, value) = (&bucket, &value);
                s.spawn(move || {
                    for key in keys {
                        bucket.set(key, value).expect("set");
                    }
                });
            }
        });
        threads as u64 * n
    })
}

/// Native `Bucket::get`s of the keys `bench-get` reads (no wasm, no host
/// call).
fn native_gets(root: &Path, n: u64) -> (u64, Duration) {
    let dir = fresh(root, "kv-native");
    let bucket = Bucket::open(dir.path(), &BucketOptions::default()).expect("bucket open");
    let keys = get_keys();
    for key in &keys {
        bucket.set(key, &[b'v'; 100]).expect("set");
    }
    timed(|| {
        let mut found = 0;
        for i in 0..n {
            found += u64::from(bucket.get(&keys[(i % 100) as usize]).is_some());
        }
        assert_eq!(found, n);
        n
    })
}

/// mini's own `wasi:keyvalue@0.2.0-draft` host function `get`, called
/// natively (no wasm): of the sync bindings (`sync`) or of the async ones
/// (where reads are sync host functions too: they never wait).
/// The key is a new `String` each call, as lifting it from the guest makes.
fn host_fn_gets(root: &Path, n: u64, sync: bool) -> (u64, Duration) {
    use draft::sync::{batch as sbatch, store as sstore};
    let data = fresh(root, "kv-hostfn");
    let host = MiniHost::new();
    let mut mini = mini_ctx(&host, data.path(), NAMESPACE);
    let mut table = ResourceTable::new();
    let mut view = MiniCtxView {
        ctx: &mut mini,
        table: &mut table,
    };
    let bucket = sstore::Host::open(&mut view, String::new()).expect("open");
    let rep = bucket.rep();
    let borrow = || Resource::<BucketHandle>::new_borrow(rep);
    let keys = get_keys();
    let pairs = keys.iter().map(|k| (k.clone(), vec![b'v'; 100])).collect();
    sbatch::Host::set_many(&mut view, borrow(), pairs).expect("set-many");
    timed(|| {
        let mut found = 0;
        for i in 0..n {
            let key = keys[(i % 100) as usize].clone();
            let value = if sync {
                sstore::HostBucket::get(&mut view, borrow(), key)
            } else {
                draft::store::HostBucket::get(&mut view, borrow(), key)
            };
            found += u64::from(value.expect("get").is_some());
        }
        assert_eq!(found, n);
        n
    })
}

/// What wasmtime-wasi-keyvalue's `get` does (its bindings are private, so
/// the same steps): the bucket from the resource table, a `HashMap` lookup,
/// a copy of the value; the key a new `String` each call.
fn in_memory_work_gets(n: u64) -> (u64, Duration) {
    struct MemBucket {
        data: HashMap<String, Vec<u8>>,
    }
    let keys = get_keys();
    let mut table = ResourceTable::new();
    let bucket = table
        .push(MemBucket {
            data: keys.iter().map(|k| (k.clone(), vec![b'v'; 100])).collect(),
        })
        .expect("push");
    let rep = bucket.rep();
    timed(|| {
        let mut found = 0;
        for i in 0..n {
            let key = keys[(i % 100) as usize].clone();
            let held = table
                .get_mut(&Resource::<MemBucket>::new_borrow(rep))
                .expect("bucket");
            found += u64::from(held.data.get(&key).cloned().is_some());
        }
        assert_eq!(found, n);
        n
    })
}

/// Work measured in rounds: a name, and what [`mini_benches::Work`] does.
type Work<'a> = Box<dyn FnMut() -> (u64, Duration) + 'a>;

/// Runs every case of `cases` once per round (after a warm-up round), for
/// `reps` rounds; the median nanoseconds per operation of each.
fn ns_per_round(reps: usize, cases: &mut [(String, Work<'_>)]) -> Vec<f64> {
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for round in 0..=reps {
        for (i, (_, work)) in cases.iter_mut().enumerate() {
            let (ops, t) = work();
            if round > 0 {
                ns[i].push(t.as_secs_f64() * 1e9 / ops as f64);
            }
        }
    }
    ns.into_iter().map(median).collect()
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `MINI_BENCH_PROFILE=<host>`: only `bench-get` on that host (`runner`,
/// `mini-async`, `mini-sync`, `mem-async`, `mem-sync`), ten times, for a
/// profiler; no table.
fn profile(bench: &Bench, only: &str, gets: u64) {
    let host = match only {
        "runner" => Host::Runner,
        "mini-async" => Host::MiniAsync,
        "mini-sync" => Host::MiniSync,
        "mem-async" => Host::MemAsync,
        "mem-sync" => Host::MemSync,
        other => panic!("MINI_BENCH_PROFILE={other}: not a host"),
    };
    for _ in 0..10 {
        let (ops, t) = bench.gets(host, gets);
        eprintln!(
            "{}: {:.0} ns per get",
            host.name(),
            t.as_secs_f64() * 1e9 / ops as f64
        );
    }
}

fn main() {
    let root = bench_root();
    let n = bench_ops(1000);
    let bytes = env_or("MINI_BENCH_BYTES", 100) as usize;
    let gets = env_or("MINI_BENCH_GETS", 300_000);
    eprintln!(
        "benchmark data in {}, {n} durable sets of {bytes}-byte values and {gets} gets per rep, {REPS} reps",
        root.display()
    );
    let bench = Bench::new(root.clone());
    if let Ok(only) = std::env::var("MINI_BENCH_PROFILE") {
        profile(&bench, &only, gets);
        return;
    }

    let raw = "raw write+fdatasync loop";
    let mini_set = "mini durable `set` (kv-conformance-draft, runner)";
    let sqlite = "SQLite `INSERT OR REPLACE`, a transaction each (WAL, synchronous=FULL)";

    let s1 = compare(
        raw,
        &mut || raw_fdatasync_loop(&root, n),
        mini_set,
        &mut || bench.sets(Host::Runner, n, bytes),
        REPS,
    );
    let s1b = compare(
        "raw write+fdatasync over synced zeros (preallocated)",
        &mut || raw_overwrite_loop(&root, n),
        mini_set,
        &mut || bench.sets(Host::Runner, n, bytes),
        REPS,
    );
    let s1c = compare(
        "native `Bucket::set` (no wasm)",
        &mut || native_sets(&root, n, bytes),
        mini_set,
        &mut || bench.sets(Host::Runner, n, bytes),
        REPS,
    );
    let s2 = compare(
        raw,
        &mut || raw_fdatasync_loop(&root, n),
        sqlite,
        &mut || sqlite_sets(&root, n, bytes),
        REPS,
    );
    let s3 = compare(
        sqlite,
        &mut || sqlite_sets(&root, n, bytes),
        mini_set,
        &mut || bench.sets(Host::Runner, n, bytes),
        REPS,
    );
    let s4 = compare(
        "in-memory `set` (wasmtime-wasi-keyvalue, async linker)",
        &mut || bench.sets(Host::MemAsync, gets, bytes),
        mini_set,
        &mut || bench.sets(Host::Runner, n, bytes),
        REPS,
    );
    let one = "1 instance `bench-set` (runner, wall clock)";
    let many = format!("{INSTANCES} instances at once, one bucket (sets/s, wall clock)");
    let s5 = compare(
        one,
        &mut || bench.concurrent_sets(1, n, bytes),
        &many,
        &mut || bench.concurrent_sets(INSTANCES, n, bytes),
        REPS,
    );
    let s6 = compare(
        raw,
        &mut || raw_fdatasync_loop(&root, n),
        &many,
        &mut || bench.concurrent_sets(INSTANCES, n, bytes),
        REPS,
    );
    let same = format!("native `Bucket::set`, {INSTANCES} threads, the same keys");
    let s7 = compare(
        &same,
        &mut || native_concurrent_sets(&root, INSTANCES, n, bytes, false),
        &many,
        &mut || bench.concurrent_sets(INSTANCES, n, bytes),
        REPS,
    );
    let s8 = compare(
        &format!("native `Bucket::set`, {INSTANCES} threads, keys of their own"),
        &mut || native_concurrent_sets(&root, INSTANCES, n, bytes, true),
        &same,
        &mut || native_concurrent_sets(&root, INSTANCES, n, bytes, false),
        REPS,
    );

    let get = |host: Host| format!("`get`, {}", host.name());
    let pair = |reference: Host, case: Host| -> Comparison {
        compare(
            &get(reference),
            &mut || bench.gets(reference, gets),
            &get(case),
            &mut || bench.gets(case, gets),
            REPS,
        )
    };
    let g1 = pair(Host::MemAsync, Host::MiniAsync);
    let g2 = pair(Host::MemSync, Host::MiniSync);
    let g3 = pair(Host::MemAsync, Host::Runner);
    let g4 = pair(Host::MiniAsync, Host::Runner);
    let g5 = pair(Host::MiniSync, Host::MiniAsync);
    let g6 = pair(Host::MemSync, Host::MemAsync);
    // Every get case once per round, in turn: nanoseconds per get.
    let hosts = [
        Host::MemSync,
        Host::MemAsync,
        Host::MiniSync,
        Host::MiniAsync,
        Host::Runner,
    ];
    let mut per_get: Vec<(String, Work<'_>)> = hosts
        .iter()
        .map(|&host| -> (String, Work<'_>) {
            let bench = &bench;
            (
                host.name().to_owned(),
                Box::new(move || bench.gets(host, gets)),
            )
        })
        .collect();
    let root = &root;
    per_get.push((
        "mini's sync host function `get`, called natively (no wasm)".into(),
        Box::new(move || host_fn_gets(root, gets, true)),
    ));
    per_get.push((
        "mini's host function `get` of the async bindings, called natively (no wasm)".into(),
        Box::new(move || host_fn_gets(root, gets, false)),
    ));
    per_get.push((
        "the in-memory host's work (table + `HashMap::get` + copy), natively".into(),
        Box::new(move || in_memory_work_gets(gets)),
    ));
    per_get.push((
        "native `Bucket::get` (no wasm)".into(),
        Box::new(move || native_gets(root, gets)),
    ));
    let per_get_ns = ns_per_round(REPS, &mut per_get);

    println!("| | case | rate | reference | rate | ratio | goal |");
    println!("|---|---|---:|---|---:|---:|---|");
    row("(v1)", &s1, "");
    row("(v1')", &s1b, "");
    row("(v1'')", &s1c, "");
    row("(v2)", &s2, "");
    row("(v3)", &s3, "");
    println!(
        "| (v4) | {} | {:.0}/s | {} | {:.0}/s | **{:.4}** (1/{:.0}) |  |",
        s4.case.name,
        s4.case.per_sec,
        s4.baseline.name,
        s4.baseline.per_sec,
        s4.ratio,
        1.0 / s4.ratio
    );
    row("(v5)", &s5, "");
    row("(v6)", &s6, "");
    row("(v7)", &s7, "");
    row("(v8)", &s8, "");
    row("(w1)", &g1, "≥ 0.9");
    row("(w2)", &g2, "≥ 0.9");
    row("(w3)", &g3, "");
    row("(w4)", &g4, "");
    row("(w5)", &g5, "");
    row("(w6)", &g6, "");
    println!();
    println!("Per `get` (median ns; every case once per round, {REPS} rounds):");
    println!();
    println!("| host | ns per `get` |");
    println!("|---|---:|");
    for ((name, _), ns) in per_get.iter().zip(&per_get_ns) {
        println!("| {name} | {ns:.0} |");
    }
}
