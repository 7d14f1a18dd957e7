//! Crash test through the whole stack: `mini run` of the `appender` guest
//! component is SIGKILLed at random moments while it appends (single records
//! and atomic batches). After every kill the journal opens, holds every
//! acknowledged record, is contiguous, and holds batches whole.

use std::path::Path;
use std::process::Command;

use mini_engine::Journal;
use mini_tests::crash;
use mini_tests::{assert_contiguous, guest_component, journal_dir, mini_binary, read_journal};

const ROUNDS: u64 = 20;
const BATCH: u64 = 5;

/// Runs the appender until it has acknowledged `kill_after` appends, kills it
/// with SIGKILL, and returns every seq it acknowledged (lines already in the
/// pipe after the kill were acknowledged too).
fn run_and_kill(data: &Path, batch: u64, kill_after: u64) -> Vec<u64> {
    let mut cmd = Command::new(mini_binary());
    cmd.arg("run")
        .arg(guest_component("appender"))
        .arg("--data")
        .arg(data)
        .args(["--namespace", "crash", "--"])
        .args(["log", "1000000", &batch.to_string(), "--print-each"]);
    crash::run_and_kill(&mut cmd, "ack ", kill_after as usize)
        .expect_killed()
        .iter()
        .map(|seq| seq.parse().expect("a seq"))
        .collect()
}

#[test]
fn sigkilled_component_keeps_every_acknowledged_record() {
    let (mut rng, seed) = crash::seeded("crash_component");
    let data = tempfile::tempdir().expect("temp dir");
    let dir = journal_dir(data.path(), "crash", "log");
    let mut all_acked = Vec::new();
    for round in 0..ROUNDS {
        let batch = if round % 2 == 0 { 1 } else { BATCH };
        let acked = run_and_kill(data.path(), batch, 1 + rng.u64(..40));
        assert!(!acked.is_empty(), "round {round}: nothing acknowledged");
        all_acked.extend(acked);

        // Reopen as the host would after a crash: recovery cuts a torn tail.
        let journal = Journal::open(&dir).expect("the journal opens after SIGKILL");
        let last = journal.last_seq();
        drop(journal);
        let entries = read_journal(&dir);
        assert_contiguous(&entries);
        assert_eq!(entries.len() as u64, last);
        let max_acked = *all_acked.iter().max().expect("acks");
        assert!(
            last >= max_acked,
            "round {round} (seed {seed}): acknowledged seq {max_acked} lost, journal ends at {last}"
        );
        assert_batches_whole(&entries, round);
    }
}

/// Each run of the appender numbers its records i = 1, 2, …, so the journal
/// splits into one stretch of increasing `i` per round. Rounds alternate
/// single appends (even) and batches of BATCH (odd); the appender's count is
/// huge, so every batch it sent was full: a batched round's stretch must be a
/// whole number of batches, or a batch was torn.
fn assert_batches_whole(entries: &[mini_engine::Entry], round: u64) {
    let is: Vec<u64> = entries
        .iter()
        .map(|e| {
            let v: serde_json::Value = serde_json::from_str(&e.data).expect("JSON record");
            v["i"].as_u64().expect("an i field")
        })
        .collect();
    let mut stretches = Vec::new();
    let mut start = 0;
    for k in 1..=is.len() {
        if k == is.len() || is[k] != is[k - 1] + 1 {
            assert_eq!(is[start], 1, "round {round}: a run does not start at i = 1");
            stretches.push((k - start) as u64);
            start = k;
        }
    }
    assert_eq!(stretches.len() as u64, round + 1, "one stretch per round");
    for (r, len) in stretches.iter().enumerate() {
        if r % 2 == 1 {
            assert_eq!(
                len % BATCH,
                0,
                "round {r}: a batch of {BATCH} is not whole ({len} records)"
            );
        }
    }
}
