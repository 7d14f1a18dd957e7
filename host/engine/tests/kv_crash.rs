//! Real crashes of a key-value bucket: the test binary runs itself as a
//! child that sets keys, increments a counter and sets three keys at once
//! (`set_many`), printing every acknowledged write, with checkpoints every
//! few records; the parent SIGKILLs it at random moments and checks that
//! every acknowledged write is there after a reopen, and that every
//! `set_many` is there whole or not at all.

mod common;

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::path::Path;
use std::process::Stdio;

use common::*;
use mini_engine::kv::{Bucket, BucketOptions};
use mini_engine::state::StateOptions;

/// Kills in CI; `MINI_KV_CRASH_ROUNDS` for more.
const DEFAULT_ROUNDS: u64 = 50;
const KEYS: u64 = 8;
const MANY: [&str; 3] = ["m0", "m1", "m2"];

fn options(every: u64) -> BucketOptions {
    BucketOptions {
        state: StateOptions {
            segment_size: 2048,
            ..StateOptions::default()
        },
        checkpoint_every: every,
    }
}

fn number(bucket: &Bucket, key: &str) -> u64 {
    bucket.get(key).map_or(0, |v| {
        String::from_utf8(v)
            .expect("text")
            .parse()
            .expect("a number")
    })
}

#[test]
#[ignore = "child process of killed_buckets_keep_every_acknowledged_write"]
fn kv_crash_child() {
    let Ok(dir) = std::env::var("MINI_KV_CHILD") else {
        return;
    };
    let var = |name: &str| std::env::var(name).unwrap().parse::<u64>().unwrap();
    let bucket = Bucket::open(&dir, &options(var("MINI_KV_EVERY"))).unwrap();
    let mut rng = Rng::with_seed(var("MINI_KV_SEED"));
    let mut out = std::io::stdout().lock();
    // Values only grow: each write sets a number above every earlier one.
    let first = (0..KEYS)
        .map(|k| number(&bucket, &format!("k{k}")))
        .chain(MANY.iter().map(|k| number(&bucket, k)))
        .max()
        .unwrap_or(0)
        + 1;
    writeln!(out, "MINI-OPEN").unwrap();
    out.flush().unwrap();
    for next in first..first + 50_000 {
        match rng.u8(..3) {
            0 => {
                let key = format!("k{}", rng.u64(..KEYS));
                bucket.set(&key, next.to_string().as_bytes()).unwrap();
                writeln!(out, "MINI-ACK {key} {next}").unwrap();
            }
            1 => {
                let value = bucket.increment("counter", 1).unwrap();
                writeln!(out, "MINI-ACK counter {value}").unwrap();
            }
            _ => {
                let pairs: Vec<(String, Vec<u8>)> = MANY
                    .iter()
                    .map(|k| ((*k).to_owned(), next.to_string().into_bytes()))
                    .collect();
                bucket.set_many(&pairs).unwrap();
                writeln!(out, "MINI-ACK many {next}").unwrap();
            }
        }
        out.flush().unwrap();
    }
}

/// Checks the reopened bucket against the last acknowledged value of each
/// key; returns how many keys held a later (durable, unacknowledged) value.
fn check_after_crash(dir: &Path, acked: &BTreeMap<String, u64>, every: u64) -> u64 {
    let bucket = Bucket::open(dir, &options(every)).expect("open after a crash");
    let many: Vec<u64> = MANY.iter().map(|k| number(&bucket, k)).collect();
    assert!(
        many.iter().all(|&v| v == many[0]),
        "a set_many is there in part: {many:?}"
    );
    let mut later = 0;
    for (key, &value) in acked {
        let key = if key == "many" { "m0" } else { key.as_str() };
        let found = number(&bucket, key);
        assert!(
            found >= value,
            "acknowledged write lost: {key} is {found}, acknowledged {value}"
        );
        later += u64::from(found > value);
    }
    later
}

#[test]
fn killed_buckets_keep_every_acknowledged_write() {
    let rounds = std::env::var("MINI_KV_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS);
    let seed = seed_from_env();
    eprintln!("seed {seed} (set MINI_TEST_SEED to replay)");
    let mut rng = Rng::with_seed(seed);
    let base = tmp();
    let dir = base.path().join("bucket");
    let mut acked: BTreeMap<String, u64> = BTreeMap::new();
    let (mut acks, mut later) = (0, 0);
    for _ in 0..rounds {
        let every = rng.u64(3..=40);
        let mut child = child_test(
            "kv_crash_child",
            &[
                ("MINI_KV_CHILD", dir.to_str().unwrap()),
                ("MINI_KV_EVERY", &every.to_string()),
                ("MINI_KV_SEED", &rng.u64(..).to_string()),
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        if next_line(&mut out, "MINI-OPEN").is_none() {
            child_failed(child, "the child did not open the bucket");
        }
        let target = rng.u64(1..=150);
        let mut seen = 0;
        let record = |line: &str, acked: &mut BTreeMap<String, u64>| {
            let mut parts = line["MINI-ACK ".len()..].split(' ');
            let key = parts.next().unwrap().to_owned();
            let value: u64 = parts.next().unwrap().parse().unwrap();
            acked.insert(key, value);
        };
        while seen < target {
            let Some(line) = next_line(&mut out, "MINI-ACK ") else {
                child_failed(child, "the child stopped writing");
            };
            record(&line, &mut acked);
            seen += 1;
        }
        kill(&mut child);
        while let Some(line) = next_line(&mut out, "MINI-ACK ") {
            record(&line, &mut acked);
            seen += 1;
        }
        acks += seen;
        later += check_after_crash(&dir, &acked, every);
    }
    eprintln!(
        "{rounds} kills, {acks} acknowledged writes, {later} durable unacknowledged values found"
    );
    let bucket = Bucket::open(&dir, &options(10)).expect("open");
    assert!(bucket.log().checkpoint_seq() > 0, "checkpoints were made");
}
