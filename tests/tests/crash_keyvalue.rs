//! Crash test of `wasi:keyvalue` through the whole stack: `mini run` of the
//! conformance component's `crash-writer` (sets, increments, a `set-many`
//! of three keys every 8 rounds, each acknowledged write printed) is
//! SIGKILLed at random moments. After every kill every acknowledged write
//! is in the bucket, the counter is the last acknowledged increment or the
//! one in flight, and every `set-many` is there whole or not at all.
//! `MINI_KV_COMPONENT_CRASH_ROUNDS` rounds (50 by default).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use mini_engine::kv::{Bucket, BucketOptions};
use mini_tests::crash;
use mini_tests::{guest_component, mini_binary};

fn rounds() -> u64 {
    std::env::var("MINI_KV_COMPONENT_CRASH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50)
}

fn text(bucket: &Bucket, key: &str) -> Option<String> {
    bucket
        .get(key)
        .map(|v| String::from_utf8(v).expect("the writer stores text"))
}

/// The `i` of a value `v<i>`.
fn index(value: &str) -> u64 {
    value
        .strip_prefix('v')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a v<i> value: {value}"))
}

fn run_and_kill(data: &Path, kill_after: usize) -> Vec<String> {
    let mut cmd = Command::new(mini_binary());
    cmd.arg("run")
        .arg(guest_component("kv-conformance"))
        .arg("--data")
        .arg(data)
        .args(["--namespace", "crash", "--", "crash-writer"]);
    crash::run_and_kill(&mut cmd, "", kill_after).expect_killed()
}

#[test]
fn sigkilled_component_keeps_every_acknowledged_write() {
    let (mut rng, seed) = crash::seeded("crash_keyvalue");
    let data = tempfile::tempdir().expect("temp dir");
    let dir = data.path().join("crash/bucket/crash");
    let mut counter_before = 0i64;
    for round in 0..rounds() {
        let acked = run_and_kill(data.path(), 1 + rng.usize(..300));
        let (mut sets, mut last_incr, mut last_many) = (BTreeMap::new(), None, None);
        for line in &acked {
            let words: Vec<&str> = line.split(' ').collect();
            match words.as_slice() {
                ["set", key, value] => {
                    sets.insert(key.to_string(), index(value));
                }
                ["incr", n] => last_incr = Some(n.parse::<i64>().expect("a count")),
                ["many", i] => last_many = Some(i.parse::<u64>().expect("an i")),
                _ => panic!("round {round}: unexpected line {line:?}"),
            }
        }
        let bucket = Bucket::open(&dir, &BucketOptions::default())
            .unwrap_or_else(|e| panic!("round {round} (seed {seed}): the bucket opens: {e}"));
        for (key, acked_i) in &sets {
            let stored = text(&bucket, key).map(|v| index(&v));
            assert!(
                stored.is_some_and(|i| i >= *acked_i),
                "round {round} (seed {seed}): {key} = v{acked_i} was acknowledged, the bucket has {stored:?}"
            );
        }
        let counter: i64 = text(&bucket, "counter").map_or(0, |n| n.parse().expect("a count"));
        let floor = last_incr.unwrap_or(counter_before);
        assert!(
            counter == floor || counter == floor + 1,
            "round {round} (seed {seed}): the counter is {counter}; acknowledged {floor}, at most one more in flight"
        );
        counter_before = counter;
        let many: Vec<Option<String>> = ["a", "b", "c"]
            .iter()
            .map(|s| text(&bucket, &format!("many-{s}")))
            .collect();
        assert!(
            many.iter().all(|v| *v == many[0]),
            "round {round} (seed {seed}): a set-many is there in part: {many:?}"
        );
        if let Some(i) = last_many {
            let stored: u64 = many[0]
                .as_deref()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("round {round}: acknowledged set-many {i} lost"));
            assert!(
                stored >= i,
                "round {round} (seed {seed}): set-many {i} acknowledged, {stored} stored"
            );
        }
    }
}
