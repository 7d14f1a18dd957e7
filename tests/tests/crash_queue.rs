//! Crash test of the queue through the whole stack: `mini run` of the
//! `producer` and the `worker` components (over a granted queue) is
//! SIGKILLed at random moments, rounds alternating. Throughout: no
//! acknowledged push is lost, no acked message is ever delivered again, and
//! at the end every message not acked is delivered again.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use mini_tests::crash;
use mini_tests::{guest_component, mini_binary};

const ROUNDS: u64 = 20;
const GRANT: &str = "jobs=broker";

/// Runs `component` with `args` until it printed `kill_after` lines starting
/// with `prefix` (or ended), SIGKILLs it, and returns those lines' numbers
/// after the prefix (lines already in the pipe count).
fn run_and_kill(
    data: &Path,
    component: &str,
    args: &[&str],
    prefix: &str,
    kill_after: usize,
) -> Vec<Vec<u64>> {
    let mut cmd = Command::new(mini_binary());
    cmd.arg("run")
        .arg(guest_component(component))
        .arg("--data")
        .arg(data)
        .args(["--grant-queue", GRANT, "--"])
        .args(args);
    crash::run_and_kill(&mut cmd, prefix, kill_after)
        .lines
        .iter()
        .map(|rest| rest.split(' ').filter_map(|w| w.parse().ok()).collect())
        .collect()
}

#[test]
fn sigkilled_producers_and_workers_lose_no_push_and_redeliver_no_ack() {
    let (mut rng, seed) = crash::seeded("crash_queue");
    let data = tempfile::tempdir().expect("temp dir");
    let queue_dir = data.path().join("broker/queue/jobs");
    let mut pushed = BTreeSet::new();
    let mut done = BTreeSet::new();
    let mut next_job = 1u64;
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            let from = next_job.to_string();
            let lines = run_and_kill(
                data.path(),
                "producer",
                &["1000000", "--from", &from],
                "pushed ",
                1 + rng.usize(..30),
            );
            for words in lines {
                pushed.insert(words[0]);
                next_job = next_job.max(words[1] + 1);
            }
            // Jobs of a push cut short by the kill may be there too.
            next_job += 100;
        } else {
            let lines = run_and_kill(
                data.path(),
                "worker",
                &["1000000", "--lease-ms", "300", "--idle-ms", "3000"],
                "done ",
                1 + rng.usize(..20),
            );
            for words in lines {
                assert!(
                    done.insert(words[0]),
                    "round {round} (seed {seed}): acked message {} delivered again",
                    words[0]
                );
            }
        }
        let (state, _) = mini_engine::queue::inspect(&queue_dir).expect("the queue reads");
        let live: BTreeSet<u64> = state.messages().map(|m| m.id).collect();
        assert!(
            live.is_disjoint(&done),
            "round {round} (seed {seed}): an acked message is back in the queue"
        );
        // A push acknowledged and not acked since is in the queue; at most
        // one message per worker round may have been acked without the
        // worker printing it before the kill.
        let missing: Vec<u64> = pushed
            .iter()
            .filter(|id| !done.contains(id) && !live.contains(id))
            .copied()
            .collect();
        assert!(
            missing.len() as u64 <= round.div_ceil(2),
            "round {round} (seed {seed}): acknowledged pushes lost: {missing:?}"
        );
    }

    // Every message still in the queue is delivered again (leases of the
    // killed workers run out), and nothing acked comes back.
    let (state, _) = mini_engine::queue::inspect(&queue_dir).expect("the queue reads");
    // (A message killed in flight five times would be a dead letter: not
    // delivered again, by design.)
    let live: BTreeSet<u64> = state
        .messages()
        .filter(|m| m.place != mini_engine::queue::Place::Dead)
        .map(|m| m.id)
        .collect();
    assert!(
        !pushed.is_empty() && !done.is_empty(),
        "the rounds did nothing"
    );
    if live.is_empty() {
        return;
    }
    let count = live.len().to_string();
    let out = Command::new(mini_binary())
        .arg("run")
        .arg(guest_component("worker"))
        .arg("--data")
        .arg(data.path())
        .args(["--grant-queue", GRANT, "--"])
        .args([count.as_str(), "--lease-ms", "300", "--idle-ms", "5000"])
        .output()
        .expect("the last worker runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "drain failed: {stdout}");
    let drained: BTreeSet<u64> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("done "))
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .collect();
    assert_eq!(
        drained, live,
        "seed {seed}: not every live message was delivered again"
    );
    assert!(
        drained.is_disjoint(&done),
        "seed {seed}: an acked message was delivered again"
    );
}
