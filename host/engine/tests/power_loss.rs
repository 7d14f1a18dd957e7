//! Power loss, simulated: a writer appends until the power goes out at a
//! random fdatasync, then the files are left as a power loss may leave them
//! (`LossyFs`: unsynced pages on disk or not, each on its own; lengths and
//! unsynced directory entries either way). The journal is reopened and
//! written again, several lives in a row, with and without preallocation
//! and marks.
//!
//! What must hold: every acknowledged record is there, in order, with its
//! data; the unit in flight is there whole or not at all. A power loss can
//! also leave a torn write with a later page on disk and an earlier one
//! not; when that tears more than the last line, open reports damage
//! (never silently skipped), and it must lie after every acknowledged
//! record, so that `mini repair` loses nothing acknowledged.
//!
//! The same for a state with checkpoints: snapshots are written, renamed
//! and pruned and the journal compacted while the power may go; the state
//! recovered is the fold of every acknowledged mutation (and of the batch
//! in flight, whole or not at all).

mod common;

use std::path::Path;
use std::sync::Arc;

use common::lossy::LossyFs;
use common::*;
use mini_engine::state::{StateOptions, StateRecovery};
use mini_engine::verify::{repair, verify};
use mini_engine::{
    Entry, Journal, JournalError, JournalOptions, Mutator, StateError, StateManager,
};
use serde::{Deserialize, Serialize};

const ROUNDS: u64 = 150;
const LIVES: usize = 4;

fn random_record(rng: &mut Rng, n: u64) -> String {
    let pad = "p".repeat(rng.u64(..700) as usize);
    format!(r#"{{"n":{n},"pad":"{pad}"}}"#)
}

/// Appends until the power goes out; returns the unit that was in flight.
fn write_until_power_loss(journal: &Journal, rng: &mut Rng, acked: &mut Vec<Entry>) -> Vec<String> {
    loop {
        let n = if rng.u64(..4) == 0 {
            1 + rng.u64(..6)
        } else {
            1
        };
        let unit: Vec<String> = (0..n)
            .map(|i| random_record(rng, acked.len() as u64 + i))
            .collect();
        match journal.append_batch(&unit) {
            Ok(last) => {
                let first = last + 1 - n;
                assert_eq!(first, acked.len() as u64 + 1, "seqs continue");
                acked.extend(unit.into_iter().enumerate().map(|(i, data)| Entry {
                    seq: first + i as u64,
                    data,
                }));
            }
            Err(_) => return unit,
        }
    }
}

/// Opens the journal after a power loss and checks it; returns what is
/// stored now (the acknowledged records and whatever of the unit in flight
/// survived) and whether open reported damage that had to be repaired.
fn recover(dir: &Path, acked: &[Entry], in_flight: &[String], what: &str) -> (Vec<Entry>, bool) {
    let (journal, repaired) = match Journal::open(dir) {
        Ok(journal) => (journal, false),
        Err(JournalError::Corrupt(damage)) => {
            let last_acked = acked.last().map_or(0, |e| e.seq);
            assert!(
                damage.seq > last_acked,
                "{what}: damage at seq {} (byte {} of {}) inside the {last_acked} acknowledged records",
                damage.seq,
                damage.offset,
                damage.file.display()
            );
            let report = repair(dir).unwrap_or_else(|e| panic!("{what}: repair: {e}"));
            assert!(
                report.cut_at.is_some(),
                "{what}: repair found nothing to cut"
            );
            let journal =
                Journal::open(dir).unwrap_or_else(|e| panic!("{what}: open after repair: {e}"));
            (journal, true)
        }
        Err(e) => panic!("{what}: open after a power loss: {e}"),
    };
    let stored = read_all(&journal);
    assert!(
        stored.len() >= acked.len() && stored[..acked.len()] == *acked,
        "{what}: acknowledged records lost or changed ({} stored, {} acknowledged)",
        stored.len(),
        acked.len()
    );
    let extra: Vec<&str> = stored[acked.len()..]
        .iter()
        .map(|e| e.data.as_str())
        .collect();
    assert!(
        extra.is_empty() || extra == in_flight,
        "{what}: after the acknowledged records: {} records, not the unit in flight ({} records) whole or nothing",
        extra.len(),
        in_flight.len()
    );
    (stored, repaired)
}

#[test]
fn a_power_loss_never_loses_an_acknowledged_record() {
    let mut repaired = 0;
    let mut kept_in_flight = 0;
    for round in 0..ROUNDS {
        let mut rng = Rng::with_seed(round + 1);
        let base = tmp();
        let dir = base.path().join("j");
        let mut acked: Vec<Entry> = Vec::new();
        for life in 0..LIVES {
            let what = format!("round {round} life {life}");
            let fs = LossyFs::power_off_at_sync(1 + rng.u64(..40));
            let options = JournalOptions {
                segment_size: 1024 + rng.u64(..8192),
                preallocate: [0, 4096, 1 << 20][rng.u64(..3) as usize],
                // Marks (not synced) in every other round, left often.
                mark_every: if round % 2 == 0 { 256 } else { 0 },
                fs: Arc::new(fs.clone()),
                ..JournalOptions::default()
            };
            let in_flight = fs.run_until_power_loss(
                &mut rng,
                &what,
                || Journal::open_with(&dir, options),
                |journal, rng| write_until_power_loss(journal, rng, &mut acked),
            );
            if !dir.exists() {
                continue; // the power went before the directory was made
            }
            let (stored, was_repaired) = recover(&dir, &acked, &in_flight, &what);
            // Every seal is true, the ones built on a mark included.
            let report = verify(&dir, &mut |_, _| {}).unwrap();
            assert_eq!(report.damage, None, "{what}: verify after recovery");
            repaired += usize::from(was_repaired);
            kept_in_flight += usize::from(stored.len() > acked.len());
            acked = stored;
        }
    }
    eprintln!(
        "{ROUNDS} rounds of {LIVES} power losses: {repaired} needed a repair after \
         the acknowledged records, {kept_in_flight} kept the unit in flight"
    );
    assert!(
        kept_in_flight > 0,
        "no unit in flight ever survived: the power loss is not tearing anything"
    );
}

/// A state that remembers every value added to it, in order: recovery must
/// give back exactly the acknowledged ones.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Added(Vec<u64>);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Add(u64);

impl Mutator<Added> for Add {
    fn apply(&self, state: &mut Added) {
        state.0.push(self.0);
    }
}

type Manager = StateManager<Added, Add>;

/// Applies and checkpoints until the power goes out; returns the batch that
/// was in flight (empty if a checkpoint was).
fn apply_until_power_loss(mgr: &Manager, rng: &mut Rng, acked: &mut Vec<u64>) -> Vec<u64> {
    loop {
        if rng.u64(..6) == 0 {
            if mgr.checkpoint().is_err() {
                return Vec::new();
            }
            continue;
        }
        let n = 1 + rng.u64(..4);
        let values: Vec<u64> = (0..n).map(|_| rng.u64(..1_000_000)).collect();
        let result = if n == 1 {
            mgr.apply(Add(values[0]))
        } else {
            mgr.apply_batch(values.iter().copied().map(Add).collect())
        };
        match result {
            Ok(seq) => {
                acked.extend(&values);
                assert_eq!(seq, acked.len() as u64, "one seq per mutation");
            }
            Err(_) => return values,
        }
    }
}

/// Opens the state after a power loss (repairing damage after the
/// acknowledged records, as in the journal test) and checks it.
fn recover_state(dir: &Path, acked: &[u64], in_flight: &[u64], what: &str) -> Vec<u64> {
    let mgr = match Manager::open(dir) {
        Ok(mgr) => mgr,
        Err(StateError::Journal(JournalError::Corrupt(damage))) => {
            assert!(
                damage.seq > acked.len() as u64,
                "{what}: damage at seq {} inside the {} acknowledged mutations",
                damage.seq,
                acked.len()
            );
            repair(&dir.join("journal")).unwrap_or_else(|e| panic!("{what}: repair: {e}"));
            Manager::open(dir).unwrap_or_else(|e| panic!("{what}: open after repair: {e}"))
        }
        Err(e) => panic!("{what}: open after a power loss: {e}"),
    };
    let StateRecovery { skipped, .. } = mgr.recovery().clone();
    let state = mgr.state().0.clone();
    assert!(
        state.len() >= acked.len() && state[..acked.len()] == *acked,
        "{what}: acknowledged mutations lost ({} recovered, {} acknowledged, snapshots skipped: {skipped:?})",
        state.len(),
        acked.len()
    );
    assert!(
        state.len() == acked.len() || state[acked.len()..] == *in_flight,
        "{what}: after the acknowledged mutations: not the batch in flight whole or nothing"
    );
    assert_eq!(
        mgr.sequence(),
        state.len() as u64,
        "{what}: one seq per mutation"
    );
    state
}

#[test]
fn a_state_with_checkpoints_survives_power_loss() {
    let mut from_compacted_journal = 0;
    for round in 0..60 {
        let mut rng = Rng::with_seed(10_000 + round);
        let base = tmp();
        let dir = base.path().join("state");
        let mut acked: Vec<u64> = Vec::new();
        for life in 0..LIVES {
            let what = format!("round {round} life {life}");
            let fs = LossyFs::power_off_at_sync(1 + rng.u64(..60));
            let options = StateOptions {
                segment_size: 512 + rng.u64(..2048),
                preallocate: [0, 1 << 20][rng.u64(..2) as usize],
                fs: Arc::new(fs.clone()),
                ..StateOptions::default()
            };
            let in_flight = fs.run_until_power_loss(
                &mut rng,
                &what,
                || Manager::open_with(&dir, options),
                |mgr, rng| apply_until_power_loss(mgr, rng, &mut acked),
            );
            if !dir.exists() {
                continue;
            }
            acked = recover_state(&dir, &acked, &in_flight, &what);
            let compacted = segments(&dir.join("journal")).first().map_or(0, |s| s.0) > 1;
            let from_snapshot = Manager::open(&dir)
                .unwrap()
                .recovery()
                .snapshot_seq
                .is_some();
            from_compacted_journal += usize::from(compacted && from_snapshot);
        }
    }
    eprintln!(
        "60 states x {LIVES} power losses: {from_compacted_journal} recovered from a snapshot \
         and a compacted journal"
    );
    assert!(
        from_compacted_journal > 0,
        "no power loss came after a compaction"
    );
}
