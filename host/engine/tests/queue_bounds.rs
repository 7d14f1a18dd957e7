//! What a queue's caller can make it hold and hand out is bounded: pushes
//! past what a snapshot can hold are refused (so checkpoints keep working),
//! batch pops and dead-letter listings stop at a byte budget and lease only
//! what they return, listeners go when their waiter does, and a stale token
//! is told apart from a wrong one.

mod common;

use common::*;
use mini_engine::queue::{PushOptions, Queue, QueueError, QueueOptions, QueueSnapshot};

/// A queue with 1 KiB payloads: its snapshot limit is the floor of 1 MiB.
fn small_queue(dir: &std::path::Path) -> Queue {
    Queue::open_with(
        dir,
        QueueOptions {
            max_payload_size: 1024,
            max_snapshot_size: 0,
            max_deliveries: 1,
            ..QueueOptions::default()
        },
    )
    .unwrap()
}

fn keyed(key: String) -> PushOptions {
    PushOptions {
        delay_ms: 0,
        dedup: Some(key),
    }
}

/// The size of the snapshot the queue would write now.
fn snapshot_len(dir: &std::path::Path) -> usize {
    let restored = mini_engine::snapshot::restore_unlocked(
        &dir.join(mini_engine::state::SNAPSHOT_DIR),
        &mini_engine::snapshot::SnapshotOptions::default(),
    )
    .unwrap()
    .expect("a snapshot");
    let _: QueueSnapshot = serde_json::from_str(&restored.state).unwrap();
    restored.state.len()
}

#[test]
fn a_push_past_what_a_snapshot_holds_is_refused_and_checkpoints_keep_working() {
    let dir = tmp();
    let q = small_queue(dir.path());
    let limit = q.stats().snapshot_limit;
    assert_eq!(limit, 1024 * 1024);
    let mut accepted = 0u64;
    let batch: Vec<(String, PushOptions)> = (0..100)
        .map(|_| ("1".to_owned(), PushOptions::default()))
        .collect();
    let refusal = loop {
        match q.push_batch(&batch) {
            Ok(ids) => accepted += ids.len() as u64,
            Err(e) => break e,
        }
        assert!(accepted < 100_000, "never refused");
    };
    assert!(
        matches!(refusal, QueueError::Full { limit: l, .. } if l == limit),
        "{refusal:?}"
    );
    assert!(refusal.to_string().contains("full"), "{refusal}");
    let stats = q.stats();
    assert_eq!(stats.ready, accepted, "a refused batch added nothing");
    assert!(stats.snapshot_bytes <= limit);
    // A checkpoint of everything accepted fits, and its file is within the
    // bound the queue counted.
    q.checkpoint().unwrap();
    assert_eq!(q.stats().checkpoint_error, None);
    let written = snapshot_len(dir.path()) as u64;
    assert!(
        written <= stats.snapshot_bytes,
        "{written} > {}",
        stats.snapshot_bytes
    );
    // Consuming makes room again.
    for d in q.pop_batch(500, 60_000).unwrap() {
        q.ack(d.id, &d.token).unwrap();
    }
    q.push("2", &PushOptions::default()).unwrap();
    drop(q);
    let q = small_queue(dir.path());
    assert_eq!(q.stats().ready, accepted - 500 + 1);
}

#[test]
fn the_snapshot_bound_holds_for_leases_dedup_keys_and_dead_letters() {
    let dir = tmp();
    let q = small_queue(dir.path());
    for n in 0..200u32 {
        // Keys that JSON escapes at up to 6 bytes a byte.
        let key = format!("\u{1}\"{n}\\\u{7f}");
        q.push(&format!("{{\"n\":{n}}}"), &keyed(key)).unwrap();
    }
    let leased = q.pop_batch(150, 60_000).unwrap();
    for d in &leased[..50] {
        q.ack(d.id, &d.token).unwrap();
    }
    for d in &leased[50..100] {
        q.nack(d.id, &d.token, 0).unwrap();
    }
    // max_deliveries 1: a pop now moves the nacked ones to the dead letters.
    q.pop_batch(200, 60_000).unwrap();
    assert!(q.stats().dead > 0);
    let bound = q.stats().snapshot_bytes;
    q.checkpoint().unwrap();
    let written = snapshot_len(dir.path()) as u64;
    assert!(
        written <= bound,
        "snapshot of {written} bytes over the bound {bound}"
    );
    assert!(
        written * 3 > bound,
        "the bound {bound} is far from the size {written}"
    );
}

#[test]
fn a_batch_pop_leases_only_what_fits_its_byte_budget() {
    let dir = tmp();
    let q = small_queue(dir.path());
    let payload = format!("\"{}\"", "x".repeat(998)); // 1000 bytes
    for _ in 0..10 {
        q.push(&payload, &PushOptions::default()).unwrap();
    }
    let got = q.pop_batch_within(10, 3500, 60_000).unwrap();
    assert_eq!(got.len(), 3);
    let stats = q.stats();
    assert_eq!((stats.leased, stats.ready), (3, 7));
    // One message always comes, even over the budget.
    assert_eq!(q.pop_batch_within(10, 10, 60_000).unwrap().len(), 1);
}

#[test]
fn dead_letters_come_in_pages_by_id_and_bytes() {
    let dir = tmp();
    let q = small_queue(dir.path());
    let payload = format!("\"{}\"", "d".repeat(98)); // 100 bytes
    for _ in 0..20 {
        q.push(&payload, &PushOptions::default()).unwrap();
    }
    for d in q.pop_batch(20, 60_000).unwrap() {
        q.nack(d.id, &d.token, 0).unwrap();
    }
    q.pop_batch(20, 60_000).unwrap(); // all 20 die (max_deliveries 1)
    assert_eq!(q.stats().dead, 20);
    let mut seen = Vec::new();
    let mut from = 0;
    loop {
        let page = q.dead_letters_page(from, 8, 550);
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 5, "a page of {} over 550 bytes", page.len());
        from = page.last().unwrap().id + 1;
        seen.extend(page.into_iter().map(|m| m.id));
    }
    assert_eq!(seen, (1..=20).collect::<Vec<u64>>());
    assert_eq!(q.dead_letters_page(1, 3, usize::MAX).len(), 3);
}

#[test]
fn a_removed_listener_is_gone_at_once() {
    let dir = tmp();
    let q = small_queue(dir.path());
    let ids: Vec<_> = (0..1000).map(|_| q.add_listener(|| true)).collect();
    assert_eq!(q.listener_count(), 1000);
    for id in ids {
        q.remove_listener(id);
    }
    assert_eq!(
        q.listener_count(),
        0,
        "removed without a change of the queue"
    );
}

#[test]
fn a_stale_token_is_told_apart_from_a_wrong_one() {
    let dir = tmp();
    let q = Queue::open_with(
        dir.path(),
        QueueOptions {
            max_deliveries: 3,
            ..QueueOptions::default()
        },
    )
    .unwrap();
    q.push("1", &PushOptions::default()).unwrap();
    let first = q.pop(60_000).unwrap().unwrap();
    q.nack(first.id, &first.token, 0).unwrap();
    let second = q.pop(60_000).unwrap().unwrap();
    let stale = q.ack(first.id, &first.token).unwrap_err();
    assert!(
        matches!(
            stale,
            QueueError::StaleToken {
                redelivered: true,
                ..
            }
        ),
        "{stale:?}"
    );
    assert!(stale.to_string().contains("delivered again"), "{stale}");
    for wrong in [
        "nonsense",
        "1.9.0123456789abcdef",
        "2.1.0123456789abcdef",
        "",
    ] {
        let err = q.ack(second.id, wrong).unwrap_err();
        assert!(
            matches!(
                err,
                QueueError::StaleToken {
                    redelivered: false,
                    ..
                }
            ),
            "{wrong}: {err:?}"
        );
        assert!(!err.to_string().contains("delivered again"), "{err}");
    }
    q.ack(second.id, &second.token).unwrap();
}
