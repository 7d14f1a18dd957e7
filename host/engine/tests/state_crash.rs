//! Real crashes of a state manager: the test binary runs itself as a child
//! that applies mutations and checkpoints (automatically, every few records,
//! with small journal segments, so compaction runs all the time) and prints
//! each acknowledged seq; the parent SIGKILLs it at random moments and checks
//! that the recovered state is the fold of every acknowledged mutation.

mod common;

use std::io::{BufReader, Write};
use std::path::Path;
use std::process::Stdio;

use common::*;
use mini_engine::state::{
    CheckpointPolicy, JOURNAL_DIR, Mutator, SNAPSHOT_DIR, StateManager, StateOptions,
};
use serde::{Deserialize, Serialize};

/// The fold of `Add { id }` mutations: enough to tell which ids were applied
/// and in which order.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Folded {
    count: u64,
    last: u64,
    hash: u64,
    /// Every id was the previous one plus one.
    in_order: bool,
    /// Makes snapshots big enough that kills land inside checkpoints.
    ballast: String,
}

const BALLAST: usize = 16 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Add {
    id: u64,
    pad: String,
}

impl Mutator<Folded> for Add {
    fn apply(&self, state: &mut Folded) {
        if state.count == 0 {
            state.in_order = true;
            state.ballast = "b".repeat(BALLAST);
        }
        state.in_order &= self.id == state.last + 1;
        state.count += 1;
        state.last = self.id;
        state.hash = state.hash.wrapping_mul(1_000_003).wrapping_add(self.id);
    }
}

/// The state after applying ids 1..=n.
fn fold_to(n: u64) -> Folded {
    let mut state = Folded::default();
    for id in 1..=n {
        add(id).apply(&mut state);
    }
    state
}

fn add(id: u64) -> Add {
    Add {
        id,
        pad: "p".repeat((id % 23) as usize),
    }
}

fn options(segment_size: u64, every: u64) -> StateOptions {
    StateOptions {
        segment_size,
        checkpoint: CheckpointPolicy {
            every_records: Some(every),
            every_bytes: None,
        },
        ..StateOptions::default()
    }
}

#[test]
#[ignore = "child process of killed_state_managers_lose_no_acknowledged_mutation"]
fn state_crash_child() {
    let Ok(dir) = std::env::var("MINI_STATE_CHILD") else {
        return;
    };
    let var = |name: &str| std::env::var(name).unwrap().parse::<u64>().unwrap();
    let opts = options(var("MINI_STATE_SEGMENT"), var("MINI_STATE_EVERY"));
    let mgr: StateManager<Folded, Add> = StateManager::open_with(&dir, opts).unwrap();
    let mut rng = Rng::with_seed(var("MINI_STATE_SEED"));
    let mut out = std::io::stdout().lock();
    writeln!(out, "MINI-OPEN {}", mgr.sequence()).unwrap();
    out.flush().unwrap();
    for _ in 0..20_000 {
        let first = mgr.sequence() + 1;
        let n = if rng.u64(0..=3) == 0 {
            rng.u64(1..=5)
        } else {
            1
        };
        let last = if n == 1 {
            mgr.apply(add(first))
        } else {
            mgr.apply_batch((first..first + n).map(add).collect())
        }
        .unwrap();
        assert_eq!(last, first + n - 1);
        writeln!(out, "MINI-ACK {last}").unwrap();
        out.flush().unwrap();
        if rng.u64(0..=4) == 0 {
            writeln!(out, "MINI-CKPT").unwrap();
            out.flush().unwrap();
            mgr.checkpoint().unwrap();
        }
    }
}

/// Reopens the state after a kill and checks it: the fold of ids 1..=k for
/// some k at least the last acknowledged id (an unacknowledged but durable
/// last unit may be there too, nothing else). Returns k.
fn check_after_crash(dir: &Path, last_acked: u64, opts: StateOptions) -> u64 {
    let mgr: StateManager<Folded, Add> =
        StateManager::open_with(dir, opts).expect("open after a crash");
    let seq = mgr.sequence();
    let state = mgr.snapshot();
    assert!(
        seq >= last_acked,
        "acknowledged mutations lost: recovered seq {seq}, last acknowledged {last_acked}"
    );
    assert!(
        seq <= last_acked + 5,
        "more than one unacknowledged unit recovered: seq {seq}, last acknowledged {last_acked}"
    );
    assert_eq!(
        state,
        fold_to(seq),
        "recovered state is not the fold of 1..={seq}"
    );
    assert!(
        mgr.recovery().skipped.is_empty(),
        "a snapshot was damaged: {:?}",
        mgr.recovery().skipped
    );
    seq
}

#[test]
fn killed_state_managers_lose_no_acknowledged_mutation() {
    const ROUNDS: u64 = 80;
    const ROUNDS_PER_DIR: u64 = 20;
    let seed = seed_from_env();
    eprintln!("seed {seed} (set MINI_TEST_SEED to replay)");
    let mut rng = Rng::with_seed(seed);
    let base = tmp();
    let mut dir = base.path().join("s0");
    let mut last_acked = 0;
    let (mut acks, mut unacked, mut temps, mut extra_snapshots, mut max_first) = (0, 0, 0, 0, 0);
    for round in 0..ROUNDS {
        if round % ROUNDS_PER_DIR == 0 {
            dir = base.path().join(format!("s{round}"));
            last_acked = 0;
        }
        let segment = rng.u64(300..=1500);
        let every = rng.u64(2..=8);
        let mut child = child_test(
            "state_crash_child",
            &[
                ("MINI_STATE_CHILD", dir.to_str().unwrap()),
                ("MINI_STATE_SEGMENT", &segment.to_string()),
                ("MINI_STATE_EVERY", &every.to_string()),
                ("MINI_STATE_SEED", &rng.u64(..).to_string()),
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let opened = match next_line(&mut out, "MINI-OPEN ") {
            Some(line) => line["MINI-OPEN ".len()..].parse::<u64>().unwrap(),
            None => child_failed(child, "the child did not open the state"),
        };
        assert!(
            opened >= last_acked,
            "the child lost acknowledged mutations"
        );
        let target = if rng.u64(0..=3) == 0 {
            rng.u64(1..=8)
        } else {
            rng.u64(1..=120)
        };
        // Every other round, kill right as an explicit checkpoint starts.
        let in_checkpoint = round % 2 == 1;
        let mut seen = 0;
        loop {
            let Some(line) = next_line(&mut out, "MINI-") else {
                child_failed(child, "the child stopped applying");
            };
            if let Some(id) = line.strip_prefix("MINI-ACK ") {
                last_acked = id.parse().unwrap();
                seen += 1;
            } else if line == "MINI-CKPT" && in_checkpoint && seen >= target {
                break;
            }
            if seen >= target && !in_checkpoint {
                break;
            }
        }
        kill(&mut child);
        while let Some(line) = next_line(&mut out, "MINI-ACK ") {
            last_acked = line["MINI-ACK ".len()..].parse().unwrap();
            seen += 1;
        }
        acks += seen;
        let snapshot_dir = dir.join(SNAPSHOT_DIR);
        let names: Vec<String> = std::fs::read_dir(&snapshot_dir)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        temps += u64::from(names.iter().any(|n| n.starts_with('.')));
        extra_snapshots += u64::from(names.iter().filter(|n| n.starts_with("snap")).count() > 2);
        let recovered = check_after_crash(&dir, last_acked, options(segment, every));
        unacked += u64::from(recovered > last_acked);
        last_acked = recovered;
        max_first = max_first.max(segments(&dir.join(JOURNAL_DIR))[0].0);
    }
    eprintln!(
        "{ROUNDS} kills, {acks} acknowledged units, {unacked} kills left an unacknowledged unit, \
         {temps} left a temp snapshot, {extra_snapshots} left more than 2 snapshots, \
         journal compacted up to seq {max_first}"
    );
    assert!(max_first > 100, "the journal was never compacted much");
}
