//! Power loss under a queue (see `power_loss.rs` for the file system that
//! loses it): pushes, pops, acks and nacks with leases running out, small
//! segments and frequent automatic checkpoints, so snapshots are written and
//! the journal compacted while the power may go. After each power loss: no
//! acknowledged push is lost, no acknowledged ack comes back, and the one
//! call in flight happened whole or not at all.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use common::lossy::LossyFs;
use common::*;
use mini_engine::queue::{ManualClock, PushOptions, Queue, QueueError, QueueOptions};
use mini_engine::verify::repair;
use mini_engine::{JournalError, StateError};

const ROUNDS: u64 = 100;
const LIVES: usize = 4;
const T0: u64 = 1_700_000_000_000;
const LEASE_MS: u64 = 1_000;

/// What the queue must hold: acknowledged pushes not yet acked, and the
/// acked ones that must never come back.
#[derive(Debug, Default)]
struct Model {
    live: BTreeMap<u64, String>,
    acked: BTreeSet<u64>,
}

/// The call the power cut short.
#[derive(Debug, Default)]
enum InFlight {
    #[default]
    Nothing,
    Push(String),
    Ack(u64),
}

fn options(clock: &Arc<ManualClock>) -> QueueOptions {
    QueueOptions {
        max_deliveries: 1_000,
        checkpoint_every: 1, // as often as the queue allows
        clock: clock.clone(),
        ..QueueOptions::default()
    }
}

/// Works the queue until the power goes out.
fn work_until_power_loss(
    queue: &Queue,
    clock: &ManualClock,
    rng: &mut Rng,
    model: &mut Model,
    next: &mut u64,
) -> InFlight {
    loop {
        clock.advance(rng.u64(..LEASE_MS / 2));
        if rng.u64(..2) == 0 {
            *next += 1;
            let payload = format!(
                r#"{{"n":{next},"pad":"{}"}}"#,
                "q".repeat(rng.u64(..300) as usize)
            );
            match queue.push(&payload, &PushOptions::default()) {
                Ok(id) => {
                    model.live.insert(id, payload);
                }
                Err(_) => return InFlight::Push(payload),
            }
            continue;
        }
        let delivery = match queue.pop(LEASE_MS) {
            Ok(Some(delivery)) => delivery,
            Ok(None) => continue,
            Err(_) => return InFlight::Nothing,
        };
        let result = match rng.u64(..4) {
            0 => continue, // the lease runs out; the message comes back
            1 => queue.nack(delivery.id, &delivery.token, rng.u64(..LEASE_MS)),
            _ => match queue.ack(delivery.id, &delivery.token) {
                Ok(()) => {
                    model.live.remove(&delivery.id);
                    model.acked.insert(delivery.id);
                    Ok(())
                }
                Err(_) => return InFlight::Ack(delivery.id),
            },
        };
        if result.is_err() {
            return InFlight::Nothing;
        }
    }
}

fn open_after_power_loss(dir: &Path, clock: &Arc<ManualClock>, what: &str) -> (Queue, bool) {
    match Queue::open_with(dir, options(clock)) {
        Ok(queue) => (queue, false),
        Err(QueueError::Storage(StateError::Journal(JournalError::Corrupt(damage)))) => {
            // Torn pages of unacknowledged writes (see power_loss.rs); the
            // checks below show nothing acknowledged was behind the damage.
            repair(damage.file.parent().expect("segment dir"))
                .unwrap_or_else(|e| panic!("{what}: repair: {e}"));
            let queue = Queue::open_with(dir, options(clock))
                .unwrap_or_else(|e| panic!("{what}: open after repair: {e}"));
            (queue, true)
        }
        Err(e) => panic!("{what}: open after a power loss: {e}"),
    }
}

/// Checks the queue against the model; the call in flight may or may not
/// have happened, and the model takes what the queue shows for it.
fn check(queue: &Queue, model: &mut Model, in_flight: InFlight, what: &str) {
    let mut present: BTreeMap<u64, String> = queue
        .peek(usize::MAX)
        .into_iter()
        .chain(queue.dead_letters())
        .map(|m| (m.id, m.payload))
        .collect();
    match in_flight {
        InFlight::Push(payload) => {
            let extra: Vec<u64> = present
                .iter()
                .filter(|(id, p)| !model.live.contains_key(id) && **p == payload)
                .map(|(id, _)| *id)
                .collect();
            assert!(extra.len() <= 1, "{what}: the push in flight stored twice");
            if let Some(&id) = extra.first() {
                model.live.insert(id, payload);
            }
        }
        InFlight::Ack(id) => {
            if !present.contains_key(&id) {
                model.live.remove(&id);
                model.acked.insert(id);
            }
        }
        InFlight::Nothing => {}
    }
    for (id, payload) in &model.live {
        assert_eq!(
            present.remove(id).as_ref(),
            Some(payload),
            "{what}: acknowledged push {id} lost"
        );
    }
    for id in present.keys() {
        assert!(
            !model.acked.contains(id),
            "{what}: acknowledged ack of {id} undone"
        );
    }
    assert!(
        present.is_empty(),
        "{what}: messages nobody pushed: {:?}",
        present.keys()
    );
}

#[test]
fn a_queue_keeps_acknowledged_pushes_and_acks_across_power_losses() {
    let mut repaired = 0;
    let mut compacted = 0;
    for round in 0..ROUNDS {
        let mut rng = Rng::with_seed(20_000 + round);
        let base = tmp();
        let dir = base.path().join("queue");
        let clock = Arc::new(ManualClock::new(T0));
        let mut model = Model::default();
        let mut next = 0;
        for life in 0..LIVES {
            let what = format!("round {round} life {life}");
            let fs = LossyFs::power_off_at_sync(1 + rng.u64(..80));
            let lossy = QueueOptions {
                segment_size: 1024 + rng.u64(..4096),
                preallocate: [0, 1 << 20][rng.u64(..2) as usize],
                fs: Arc::new(fs.clone()),
                ..options(&clock)
            };
            let in_flight = fs.run_until_power_loss(
                &mut rng,
                &what,
                || Queue::open_with(&dir, lossy),
                |queue, rng| work_until_power_loss(queue, &clock, rng, &mut model, &mut next),
            );
            if !dir.exists() {
                continue;
            }
            let (queue, was_repaired) = open_after_power_loss(&dir, &clock, &what);
            repaired += usize::from(was_repaired);
            check(&queue, &mut model, in_flight, &what);
            let journal = dir.join(mini_engine::state::JOURNAL_DIR);
            compacted += usize::from(segments(&journal).first().map_or(0, |s| s.0) > 1);
            clock.advance(LEASE_MS);
        }
    }
    eprintln!(
        "{ROUNDS} queues x {LIVES} power losses: {compacted} after a compaction, \
         {repaired} repaired after the acknowledged records"
    );
    assert!(compacted > 0, "no power loss came after a compaction");
}
