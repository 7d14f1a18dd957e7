//! Crash test of the state manager through the whole stack: `mini run` of
//! the `kv` guest component (the guest SDK's `StateManager`, checkpointing
//! every few mutations, on tiny journal segments so that compaction runs
//! all the time) is SIGKILLed at random moments. After every kill the state
//! recovers, in a new component instance, to exactly the fold of the
//! mutations 1..=seq, and seq covers every acknowledged mutation.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use mini_tests::{guest_component, mini_binary, run_component};

const ROUNDS: u64 = 50;
/// The kv component's key count: mutation i sets `k<i mod KEYS>` to i.
const KEYS: u64 = 16;

/// A small xorshift generator; the seed is printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// Runs `kv apply` until it acknowledged `kill_after` calls, SIGKILLs it and
/// returns the highest acknowledged seq (lines already in the pipe count).
fn apply_and_kill(data: &Path, batch: u64, checkpoint_every: u64, kill_after: u64) -> u64 {
    let mut child = Command::new(mini_binary())
        .arg("run")
        .arg(guest_component("kv"))
        .arg("--data")
        .arg(data)
        .args(["--namespace", "crash", "--segment-kb", "1", "--"])
        .args(["apply", "1000000", "--print-each"])
        .args(["--batch", &batch.to_string()])
        .args(["--checkpoint-every", &checkpoint_every.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mini run starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut acked = 0;
    let mut count = 0;
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.expect("stdout is text");
        if let Some(seq) = line.strip_prefix("ack ") {
            acked = seq.parse().expect("a seq");
            count += 1;
            if count >= kill_after {
                break;
            }
        }
    }
    let pid = i32::try_from(child.id()).expect("a pid");
    // SAFETY: kill(2) on our own child's pid has no memory effects.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0, "SIGKILL sent");
    for line in lines {
        let Ok(line) = line else { break };
        if let Some(seq) = line.strip_prefix("ack ") {
            acked = seq.parse().expect("a seq");
        }
    }
    let status = child.wait().expect("child reaped");
    assert!(!status.success(), "the child was killed, not finished");
    acked
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
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("crash_state seed {seed}");
    let mut rng = Rng(seed);
    let data = tempfile::tempdir().expect("temp dir");
    let kv = guest_component("kv");
    let mut max_acked = 0;
    let mut compacted = false;
    for round in 0..ROUNDS {
        let batch = if round % 2 == 0 { 1 } else { 4 };
        let checkpoint_every = 3 + rng.next(8);
        let acked = apply_and_kill(data.path(), batch, checkpoint_every, 1 + rng.next(40));
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
