//! A small benchmark harness: each case runs a fixed amount of work a few
//! times and reports the median rate, so results from one run can be put
//! side by side as ratios against the physical limit measured in that run.

use std::time::{Duration, Instant};

/// One measured case.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// What was measured.
    pub name: String,
    /// Median operations (records) per second over the repetitions.
    pub per_sec: f64,
}

/// Runs `work` (which performs `ops` operations) `reps` times after one warm-up
/// run and returns the median rate.
pub fn measure(name: &str, ops: u64, reps: usize, mut work: impl FnMut()) -> Measurement {
    work();
    let mut rates: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            work();
            ops as f64 / start.elapsed().max(Duration::from_nanos(1)).as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    let m = Measurement {
        name: name.to_string(),
        per_sec: rates[rates.len() / 2],
    };
    eprintln!("{:<60} {:>12.0} /s", m.name, m.per_sec);
    m
}

/// A record of about 100 bytes, like a small mutation.
pub fn record(i: u64) -> String {
    format!("{{\"i\":{i},\"pad\":\"{}\"}}", "x".repeat(80))
}
