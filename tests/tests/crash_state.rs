//! Crash test of the state manager through the whole stack: `mini run` of
//! the `kv` guest component (the guest SDK's `StateManager`, checkpointing
//! every few mutations, on tiny journal segments so that compaction runs
//! all the time) is SIGKILLed at random moments. After every kill the state
//! recovers, in a new component instance, to exactly the fold of the
//! mutations 1..=seq, and seq covers every acknowledged mutation.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use mini_tests::crash;
use mini_tests::{guest_component, mini_binary, run_component};

const ROUNDS: u64 = 50;
/// The kv component's key count: mutation i sets `k<i mod KEYS>` to i.
const KEYS: u64 = 16;

/// Runs `kv apply` until it acknowledged `kill_after` calls, SIGKILLs it and
/// returns the highest acknowledged seq (lines already in the pipe count).
fn apply_and_kill(data: &Path, batch: u64, checkpoint_every: u64, kill_after: u64) -> u64 {
    let mut cmd = Command::new(mini_binary());
    cmd.arg("run")
        .arg(guest_component("kv"))
        .arg("--data")
        .arg(data)
        .args(["--namespace", "crash", "--segment-kb", "1", "--"])
        .args(["apply", "1000000", "--print-each"])
        .args(["--batch", &batch.to_string()])
        .args(["--checkpoint-every", &checkpoint_every.to_string()]);
    crash::run_and_kill(&mut cmd, "ack ", kill_after as usize)
        .expect_killed()
        .last()
        .map_or(0, |seq| seq.parse().expect("a seq"))
}

/// The state the kv component must recover to at `seq`, as its JSON value.
fn fold(seq: u64) -> serde_json::Value {
    let mut entries = BTreeMap::new();
    for i in 1..=seq {
        entries.insert(format!("k{}", i % KEYS), i);
    }
    serde_json::json!({ "entries": entries, "applied": seq })
}

#[test]
fn sigkilled_state_component_recovers_to_the_fold_of_every_acknowledged_mutation() {
    let (mut rng, seed) = crash::seeded("crash_state");
    let data = tempfile::tempdir().expect("temp dir");
    let kv = guest_component("kv");
    let mut max_acked = 0;
    let mut compacted = false;
    for round in 0..ROUNDS {
        let batch = if round % 2 == 0 { 1 } else { 4 };
        let checkpoint_every = 3 + rng.u64(..8);
        let acked = apply_and_kill(data.path(), batch, checkpoint_every, 1 + rng.u64(..40));
        max_acked = max_acked.max(acked);

        let (code, out, err) = run_component(&kv, data.path(), "crash", &["open"]);
        assert_eq!(
            code, 0,
            "round {round} (seed {seed}): recovery failed: {err}"
        );
        let seq: u64 = out
            .lines()
            .find_map(|l| l.strip_prefix("recovered seq "))
            .and_then(|rest| rest.split(' ').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no recovered seq in {out}"));
        assert!(
            seq >= max_acked,
            "round {round} (seed {seed}): acknowledged seq {max_acked} lost, recovered {seq}"
        );
        let state: serde_json::Value = out
            .lines()
            .find_map(|l| l.strip_prefix("state "))
            .map(|s| serde_json::from_str(s).expect("state JSON"))
            .unwrap_or_else(|| panic!("no state in {out}"));
        assert_eq!(
            state,
            fold(seq),
            "round {round} (seed {seed}): wrong state at {seq}"
        );
        max_acked = seq;

        let first_segment = std::fs::read_dir(data.path().join("crash/state/kv/journal"))
            .expect("journal dir")
            .filter_map(|e| {
                e.ok()?
                    .file_name()
                    .to_str()?
                    .strip_suffix(".jsonl")?
                    .parse::<u64>()
                    .ok()
            })
            .min();
        compacted |= first_segment.is_some_and(|first| first > 1);
    }
    assert!(
        compacted,
        "the journal was never compacted: the test did not test compaction"
    );
}
