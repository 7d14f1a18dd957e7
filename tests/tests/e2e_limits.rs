//! Per-instance limits: a component that exceeds its memory, time, fuel,
//! disk quota or handle limit is stopped (or refused) with a clear error, and
//! the records it got a sequence number for before are intact on disk.

use std::path::Path;
use std::time::Duration;

use mini_host::runner::{RunError, RunnerConfig};
use mini_host::{MiniCtx, MiniHost};
use mini_tests::{
    assert_contiguous, block_on, guest_component, journal_dir, mini, mini_ctx, new_runner, os_args,
    read_journal, run_with,
};

/// The `ack <seq>` lines of `appender --print-each`, in order.
fn acks(stdout: &str) -> Vec<u64> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("ack "))
        .map(|n| n.parse().expect("a seq"))
        .collect()
}

/// Every acknowledged seq is on disk, the records are contiguous from 1 and
/// each is the appender's record `i` (`{"i":<seq>,...}` for a fresh journal).
fn assert_acked_records_intact(dir: &Path, acked: &[u64]) {
    let stored = read_journal(dir);
    assert_contiguous(&stored);
    let last_acked = acked.last().copied().unwrap_or(0);
    assert!(
        stored.len() as u64 >= last_acked,
        "acknowledged up to seq {last_acked}, but only {} records are on disk",
        stored.len()
    );
    for entry in &stored {
        let value: serde_json::Value = serde_json::from_str(&entry.data).expect("JSON record");
        assert_eq!(value["i"], entry.seq, "record {} is intact", entry.seq);
    }
}

#[test]
fn time_limit_stops_a_long_run_and_keeps_acknowledged_records() {
    let appender = guest_component("appender");
    let runner = new_runner(RunnerConfig {
        time_limit: Some(Duration::from_secs(2)),
        ..RunnerConfig::default()
    });
    let data = tempfile::tempdir().expect("tempdir");
    let mini = mini_ctx(&MiniHost::new(), data.path(), "limits");
    let out = block_on(run_with(
        &runner,
        &appender,
        mini,
        &["log", "100000000", "--print-each"],
    ));
    assert!(
        matches!(out.exit, Err(RunError::TimeLimit(limit)) if limit == Duration::from_secs(2)),
        "{:?}\n{}",
        out.exit,
        out.stderr
    );
    let acked = acks(&out.stdout);
    assert!(
        !acked.is_empty(),
        "the appender acknowledged records before the limit"
    );
    assert_acked_records_intact(&journal_dir(data.path(), "limits", "log"), &acked);
}

#[test]
fn fuel_limit_stops_the_run_and_keeps_acknowledged_records() {
    let appender = guest_component("appender");
    let runner = new_runner(RunnerConfig {
        fuel: Some(20_000_000),
        ..RunnerConfig::default()
    });
    let data = tempfile::tempdir().expect("tempdir");
    let mini = mini_ctx(&MiniHost::new(), data.path(), "limits");
    let out = block_on(run_with(
        &runner,
        &appender,
        mini,
        &["log", "100000000", "--print-each"],
    ));
    assert!(
        matches!(out.exit, Err(RunError::OutOfFuel(20_000_000))),
        "{:?}",
        out.exit
    );
    let acked = acks(&out.stdout);
    assert!(
        !acked.is_empty(),
        "the appender acknowledged records before running dry"
    );
    assert_acked_records_intact(&journal_dir(data.path(), "limits", "log"), &acked);
}

/// A command component that computes forever without calling the host: only
/// epoch interruption can stop it.
const SPIN: &str = r#"
(component
  (core module $m
    (func (export "run") (result i32)
      (loop $forever (br $forever))
      (i32.const 0)))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $run-instance (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run-instance)))
"#;

/// A command component that grows its memory until it is stopped.
const MEMORY_HOG: &str = r#"
(component
  (core module $m
    (memory 1)
    (func (export "run") (result i32)
      (loop $more
        (drop (memory.grow (i32.const 16)))
        (br $more))
      (i32.const 0)))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $run-instance (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run-instance)))
"#;

fn run_wat(config: RunnerConfig, wat: &str) -> Result<i32, RunError> {
    let runner = new_runner(config);
    let component =
        wasmtime::component::Component::new(runner.engine(), wat).expect("the WAT compiles");
    let data = tempfile::tempdir().expect("tempdir");
    let mini = mini_ctx(&MiniHost::new(), data.path(), "wat");
    let wasi = wasmtime_wasi::WasiCtx::builder().build();
    block_on(runner.run(&component, wasi, mini))
}

#[test]
fn time_limit_stops_a_guest_that_computes_forever() {
    let exit = run_wat(
        RunnerConfig {
            time_limit: Some(Duration::from_millis(200)),
            compile_cache: false,
            ..RunnerConfig::default()
        },
        SPIN,
    );
    let err = exit.expect_err("the spinning guest is stopped");
    assert!(matches!(err, RunError::TimeLimit(_)), "{err:?}");
    assert!(err.to_string().contains("time limit of 200 ms"), "{err}");
}

#[test]
fn memory_limit_stops_a_guest_that_grows_forever() {
    let exit = run_wat(
        RunnerConfig {
            memory_limit: 4 * 1024 * 1024,
            compile_cache: false,
            ..RunnerConfig::default()
        },
        MEMORY_HOG,
    );
    let err = exit.expect_err("the growing guest is stopped");
    assert!(
        matches!(err, RunError::MemoryLimit { limit, requested } if limit == 4 * 1024 * 1024 && requested > limit),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("memory limit of 4194304 bytes"),
        "{err}"
    );
}

#[test]
fn memory_limit_stops_a_real_component_and_keeps_its_records() {
    // bad-input appends two records, then builds a 2 MiB string: with a
    // 2 MiB memory limit it is stopped there.
    let bad_input = guest_component("bad-input");
    let runner = new_runner(RunnerConfig {
        memory_limit: 2 * 1024 * 1024,
        ..RunnerConfig::default()
    });
    let data = tempfile::tempdir().expect("tempdir");
    let mini = mini_ctx(&MiniHost::new(), data.path(), "hog");
    let out = block_on(run_with(&runner, &bad_input, mini, &[]));
    assert!(
        matches!(out.exit, Err(RunError::MemoryLimit { .. })),
        "{:?}",
        out.exit
    );
    assert!(out.stdout.contains("case setup-2: ok 2"), "{}", out.stdout);
    let stored = read_journal(&journal_dir(data.path(), "hog", "victim"));
    let data_of: Vec<&str> = stored.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(data_of, [r#"{"ok":1}"#, r#"{"ok":2}"#]);
    assert_contiguous(&stored);
}

#[test]
fn mini_run_stops_at_the_memory_limit_with_a_clear_message() {
    let bad_input = guest_component("bad-input");
    let data = tempfile::tempdir().expect("tempdir");
    let (code, out, err) = mini(os_args![
        "run",
        bad_input,
        "--data",
        data.path(),
        "--memory-mb",
        "2"
    ]);
    assert_eq!(code, 137, "stdout: {out}\nstderr: {err}");
    assert!(
        err.contains("exceeded its memory limit of 2097152 bytes"),
        "{err}"
    );
    let stored = read_journal(&journal_dir(data.path(), "bad-input", "victim"));
    assert_eq!(stored.len(), 2, "the two acknowledged records are on disk");
}

#[test]
fn mini_run_stops_at_the_time_limit_with_a_clear_message() {
    let appender = guest_component("appender");
    let data = tempfile::tempdir().expect("tempdir");
    let (code, out, err) = mini(os_args![
        "run",
        appender,
        "--data",
        data.path(),
        "--time-limit-ms",
        "1500",
        "--",
        "log",
        "100000000",
        "--print-each",
    ]);
    assert_eq!(code, 137, "stderr: {err}");
    assert!(err.contains("exceeded its time limit of 1500 ms"), "{err}");
    assert_acked_records_intact(&journal_dir(data.path(), "appender", "log"), &acks(&out));
}

#[test]
fn disk_quota_refuses_appends_past_it() {
    let appender = guest_component("appender");
    let runner = mini_tests::default_runner();
    let data = tempfile::tempdir().expect("tempdir");
    // Its directories and first segment take 4 blocks of it.
    let quota = 64 * 1024;
    let mini = MiniCtx::builder(&MiniHost::new(), data.path(), "quota")
        .disk_quota(quota)
        .build()
        .expect("ctx");
    let out = block_on(run_with(
        &runner,
        &appender,
        mini,
        &["log", "100000", "--print-each"],
    ));
    assert_eq!(
        out.exit_code(),
        1,
        "the append past the quota fails: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("quota exceeded: disk quota exceeded"),
        "{}",
        out.stderr
    );
    let acked = acks(&out.stdout);
    assert!(
        acked.len() > 10,
        "appends below the quota succeeded: {acked:?}"
    );
    let dir = journal_dir(data.path(), "quota", "log");
    assert_acked_records_intact(&dir, &acked);
    assert_eq!(
        read_journal(&dir).len(),
        acked.len(),
        "the refused append stored nothing"
    );
    let used = disk_usage(&data.path().join("quota"));
    assert!(used <= quota, "{used} bytes on disk, quota {quota}");
}

/// What `dir` and everything under it take on disk, in allocated blocks
/// (directories included), as the quota counts it.
fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(dir).expect("metadata");
    let mut total = (meta.blocks() * 512).max(if meta.is_dir() { 4096 } else { meta.len() });
    if meta.is_dir() {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            total += disk_usage(&entry.expect("entry").path());
        }
    }
    total
}

#[test]
fn handle_limit_refuses_one_handle_too_many() {
    // counter holds its journal and then a cursor: two handles.
    let counter = guest_component("counter");
    let runner = mini_tests::default_runner();
    let data = tempfile::tempdir().expect("tempdir");
    let mini = MiniCtx::builder(&MiniHost::new(), data.path(), "handles")
        .max_open_handles(1)
        .build()
        .expect("ctx");
    let out = block_on(run_with(&runner, &counter, mini, &[]));
    assert_eq!(out.exit_code(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("too many open handles"),
        "{}",
        out.stderr
    );
    // The append before the refused read is stored.
    assert_eq!(
        read_journal(&journal_dir(data.path(), "handles", "counter")).len(),
        1
    );
}
