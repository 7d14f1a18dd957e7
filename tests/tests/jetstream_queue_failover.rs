//! A queue on JetStream (mini-jetstream's `JsQueue`) on a three-node
//! cluster, R3: a producer pushes in a loop and a worker pops and acks,
//! while the queue stream's leader is SIGKILLed (several rounds). After
//! each round the worker drains the queue, and:
//!
//! - every acknowledged push was delivered, under its id, with its payload;
//! - every push is stored once (a push sent again after a lost answer is
//!   kept once by its `Nats-Msg-Id`): no payload under two ids;
//! - no message is delivered again after an ack that succeeded.
//!
//! `MINI_JS_FAILOVER_ROUNDS` sets the number of leader kills (default 10).
//! The test prints how long pushes stalled; it asserts no timing, and every
//! wait is bounded. Without a `nats-server` binary it skips with a loud
//! `SKIPPED` line (it fails in CI instead).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mini_jetstream::{JetStream, JetStreamOptions, JsError, JsQueue, QueueConfig, stream_name};
use mini_tests::failover::{DEADLINE, kill_leader, locked, raw_context, rounds, stream_leader};
use mini_tests::nats::NatsCluster;
use mini_tests::{block_on, runtime};

/// The workers' lease, and the consumer's ack wait: a delivery whose ack an
/// election swallowed comes back soon.
const LEASE: Duration = Duration::from_secs(5);

/// One push and its outcome.
#[derive(Debug)]
struct Push {
    at: Instant,
    payload: String,
    result: Result<u64, JsError>,
}

/// One delivery and the outcome of its ack.
#[derive(Debug)]
struct Done {
    id: u64,
    attempt: u32,
    payload: String,
    acked: Result<(), JsError>,
}

/// Waits until `done` holds, checking every 20 ms; panics after
/// [`DEADLINE`] with `what`.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "not within {DEADLINE:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Checks a round: what the producer pushed against what the worker did.
fn check(pushes: &[Push], done: &[Done]) -> Result<(usize, usize), String> {
    let mut ids_of: HashMap<&str, Vec<u64>> = HashMap::new();
    for d in done {
        let ids = ids_of.entry(d.payload.as_str()).or_default();
        if !ids.contains(&d.id) {
            ids.push(d.id);
        }
    }
    if let Some((payload, ids)) = ids_of.iter().find(|(_, ids)| ids.len() > 1) {
        return Err(format!("the push {payload:?} is stored twice: ids {ids:?}"));
    }
    let mut acked_at: HashMap<u64, usize> = HashMap::new();
    for (i, d) in done.iter().enumerate() {
        if let Some(first) = acked_at.get(&d.id) {
            return Err(format!(
                "message {} was delivered again (delivery {i}, attempt {}) after its ack \
                 succeeded (delivery {first}, attempt {})",
                d.id, d.attempt, done[*first].attempt
            ));
        }
        if d.acked.is_ok() {
            acked_at.insert(d.id, i);
        }
    }
    let mut acked_pushes = 0;
    for push in pushes {
        let Ok(id) = push.result else { continue };
        acked_pushes += 1;
        match ids_of.get(push.payload.as_str()) {
            // Delivered under its id (acked: the queue drained, and an ack
            // whose answer was lost may still have taken it).
            Some(ids) if ids == &[id] => {}
            other => {
                return Err(format!(
                    "the push {:?} was acknowledged as id {id}, but it was delivered as {other:?}",
                    push.payload
                ));
            }
        }
    }
    Ok((acked_pushes, acked_at.len()))
}

#[test]
fn a_queue_loses_no_acknowledged_push_and_redelivers_no_acked_job_through_leader_kills()
-> anyhow::Result<()> {
    let Some(mut cluster) = NatsCluster::start(3)? else {
        return Ok(());
    };
    let raw = raw_context(&cluster);
    let options = JetStreamOptions {
        replicas: 3,
        retry_for: Duration::from_secs(30),
        ..JetStreamOptions::default()
    };
    let rounds = rounds();
    for round in 1..=rounds {
        let name = format!("jobs-{round}");
        let js = block_on(JetStream::connect(
            &cluster.urls().join(","),
            options.clone(),
        ))?;
        let config = QueueConfig {
            ack_wait: LEASE,
            max_deliveries: 1000,
        };
        let queue: JsQueue = block_on(js.open_queue("failover", &name, config))?;
        let stream = stream_name("mini", "queue", "failover", &name).stream;
        let (pushing, working) = (
            Arc::new(AtomicBool::new(true)),
            Arc::new(AtomicBool::new(true)),
        );
        let pushes: Arc<Mutex<Vec<Push>>> = Arc::default();
        let done: Arc<Mutex<Vec<Done>>> = Arc::default();
        let producer = runtime().spawn({
            let (queue, pushing, pushes) = (queue.clone(), pushing.clone(), pushes.clone());
            async move {
                let mut i = 0u64;
                while pushing.load(Ordering::Acquire) {
                    i += 1;
                    let payload = format!(r#"{{"round":{round},"job":{i}}}"#);
                    let result = queue.push(payload.clone(), None, Duration::ZERO).await;
                    locked(&pushes).push(Push {
                        at: Instant::now(),
                        payload,
                        result,
                    });
                }
            }
        });
        let worker = runtime().spawn({
            let (queue, working, done) = (queue.clone(), working.clone(), done.clone());
            async move {
                while working.load(Ordering::Acquire) {
                    match queue.pop(LEASE).await {
                        Ok(Some(d)) => {
                            let acked = queue.ack(d.id, &d.token).await;
                            locked(&done).push(Done {
                                id: d.id,
                                attempt: d.attempt,
                                payload: d.payload,
                                acked,
                            });
                        }
                        Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            }
        });
        let acked_since = |since: Instant| {
            locked(&pushes)
                .iter()
                .filter(|p| p.at >= since && p.result.is_ok())
                .count()
        };
        let begun = Instant::now();
        wait_until("30 pushes before the kill", || acked_since(begun) >= 30);
        let (leader, killed, killed_at) = kill_leader(&mut cluster, &raw, &stream);
        wait_until("20 pushes after the kill", || acked_since(killed_at) >= 20);
        let elected = stream_leader(&raw, &stream, Some(&leader));
        cluster.restart(killed)?;
        let back_at = Instant::now();
        wait_until("10 pushes after the restart", || acked_since(back_at) >= 10);
        pushing.store(false, Ordering::Release);
        block_on(async { tokio::time::timeout(DEADLINE, producer).await })??;

        // Drained: every stored message delivered and acked.
        let drain_deadline = Instant::now() + DEADLINE;
        loop {
            let stats = block_on(queue.stats());
            if stats.as_ref().is_ok_and(|s| (s.ready, s.leased) == (0, 0)) {
                break;
            }
            assert!(
                Instant::now() < drain_deadline,
                "round {round}: the queue not drained within {DEADLINE:?}: {stats:?}; {} deliveries, \
                 the last {:?}; worker finished: {}",
                locked(&done).len(),
                locked(&done).last(),
                worker.is_finished(),
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        working.store(false, Ordering::Release);
        block_on(async { tokio::time::timeout(DEADLINE, worker).await })??;

        let (pushes, done) = (locked(&pushes), locked(&done));
        let (acked_pushes, acked_jobs) = check(&pushes, &done).unwrap_or_else(|e| {
            panic!(
                "round {round}: {e}; {} pushes, {} deliveries",
                pushes.len(),
                done.len()
            )
        });
        let failed: Vec<String> = pushes
            .iter()
            .filter_map(|p| p.result.as_ref().err().map(ToString::to_string))
            .collect();
        let stall = pushes
            .windows(2)
            .map(|w| w[1].at - w[0].at)
            .max()
            .unwrap_or_default();
        eprintln!(
            "queue round {round}/{rounds}: killed {leader}, {elected} elected; {acked_pushes} pushes \
             acked, {} failed {:?}; {acked_jobs} jobs acked in {} deliveries; longest push {stall:?}",
            failed.len(),
            failed.iter().take(2).collect::<Vec<_>>(),
            done.len(),
        );
    }
    Ok(())
}

#[test]
fn the_queue_check_catches_lost_doubled_and_redelivered_jobs() {
    let at = Instant::now();
    let push = |payload: &str, result: Result<u64, JsError>| Push {
        at,
        payload: payload.into(),
        result,
    };
    let done = |id: u64, payload: &str, ok: bool| Done {
        id,
        attempt: 1,
        payload: payload.into(),
        acked: if ok {
            Ok(())
        } else {
            Err(JsError::Connect("no answer".into()))
        },
    };
    let pushes = [
        push("a", Ok(1)),
        push("b", Ok(2)),
        push("c", Err(JsError::Connect("unknown".into()))),
    ];
    // A failed ack delivered again, then acked; a failed push stored.
    let good = [
        done(1, "a", false),
        done(2, "b", true),
        done(1, "a", true),
        done(3, "c", true),
    ];
    assert_eq!(check(&pushes, &good), Ok((2, 3)));
    let fails = |done: &[Done], what: &str| {
        let found = check(&pushes, done);
        assert!(found.is_err(), "the check misses {what}: {found:?}");
    };
    fails(&[done(2, "b", true)], "a lost push");
    fails(
        &[done(1, "a", true), done(2, "b", true), done(1, "a", true)],
        "a redelivery after an ack",
    );
    fails(
        &[done(1, "a", true), done(2, "b", true), done(4, "b", true)],
        "a push stored twice",
    );
    fails(
        &[done(1, "a", true), done(5, "b", true)],
        "an ack at another id",
    );
}
