//! Crash-point exploration (issue 12): the time per crash point of a
//! scenario with 200 storage calls (the `appender` example appending 198
//! records: open, last-seq, 198 appends), each point being a restore of the
//! data, an instantiation of the pre-compiled component, the scenario run
//! to its crash point and the check run. Goal: under 20 ms per point.
//!
//! The physical reference measured in the same run: 200 `pwrite` +
//! `fdatasync` of the same records, what the scenario costs at the disk's
//! limit when every call is durable. (The sandbox skips syncs: a crash
//! point is a process crash, which keeps what was written.)
//!
//! ```text
//! cargo bench -p mini-benches --bench explore
//! ```

use std::time::{Duration, Instant};

use mini_benches::{bench_root, median, raw_fdatasync_loop};
use mini_testing::{Exploration, Sandbox};
use mini_tests::guest_component;

/// Storage calls of the scenario.
const CALLS: u64 = 200;
const REPS: usize = 5;

fn main() {
    let root = bench_root();
    let appender = guest_component("appender");
    let _ = std::fs::remove_dir_all(root.join("explore"));
    let _ = std::fs::remove_dir_all(root.join("explore-synced"));
    let sandbox = Sandbox::builder(&appender)
        .data_root(root.join("explore"))
        .build()
        .expect("a sandbox");
    let records = (CALLS - 2).to_string();
    let scenario = ["events", records.as_str()];
    let check = ["events", "0"];

    let mut per_point = Vec::new();
    let mut raw = Vec::new();
    let mut points = 0;
    for _ in 0..REPS {
        let started = Instant::now();
        let report = Exploration::crashes(&scenario, &check)
            .run(&sandbox, &mut |_, _| {})
            .expect("the exploration runs");
        let elapsed = started.elapsed();
        assert_eq!(report.calls, CALLS, "the scenario's calls");
        assert!(report.passed(), "the appender keeps its records");
        points = report.points.len();
        per_point.push(elapsed.as_secs_f64() / points as f64);
        let (_, limit) = raw_fdatasync_loop(&root, CALLS);
        raw.push(limit.as_secs_f64());
    }
    let run_alone = {
        let mut times = Vec::new();
        for _ in 0..REPS {
            let saved = sandbox.save().expect("saved");
            let started = Instant::now();
            let run = sandbox.run(&scenario).expect("runs");
            times.push(started.elapsed().as_secs_f64());
            assert!(run.succeeded());
            sandbox.restore(&saved).expect("restored");
        }
        median(times)
    };
    // The same with real syncs (`real_syncs(true)`), on a sample: what
    // skipping them saves.
    let synced = Sandbox::builder(&appender)
        .data_root(root.join("explore-synced"))
        .real_syncs(true)
        .build()
        .expect("a sandbox");
    let sample = 40;
    let started = Instant::now();
    let report = Exploration::crashes(&scenario, &check)
        .sample(sample)
        .run(&synced, &mut |_, _| {})
        .expect("the exploration runs");
    assert!(report.passed());
    let synced_per_point = started.elapsed().as_secs_f64() / sample as f64;
    let per_point = median(per_point);
    let raw = median(raw);
    let ms = |s: f64| format!("{:.2} ms", s * 1e3);
    println!(
        "crash exploration of {CALLS} storage calls, {points} points, median of {REPS} explorations"
    );
    println!(
        "  per crash point (restore, instantiate, run to the point, check): {}",
        ms(per_point)
    );
    println!(
        "  per crash point with real syncs ({sample} sampled points, one exploration): {}",
        ms(synced_per_point)
    );
    println!(
        "  the whole scenario run once (instantiate, 200 calls): {}",
        ms(run_alone)
    );
    println!("  physical reference, 200 pwrite + fdatasync: {}", ms(raw));
    println!(
        "  per crash point / physical reference: {:.3}",
        per_point / raw
    );
    println!(
        "  exploring 1,000 points: {:.1} s (goal: under 20 ms per point: {})",
        per_point * 1000.0,
        if per_point < Duration::from_millis(20).as_secs_f64() {
            "met"
        } else {
            "not met"
        }
    );
}
