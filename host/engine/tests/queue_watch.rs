//! Waiting without a thread: `Queue::next_available_in` says when a pop can
//! find a message, and listeners hear about every change (what an async
//! host's pollable is built on).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use mini_engine::queue::{ManualClock, PushOptions, Queue, QueueOptions};

const T0: u64 = 1_700_000_000_000;

fn open(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Queue {
    let options = QueueOptions {
        clock: clock.clone(),
        max_deliveries: 2,
        ..QueueOptions::default()
    };
    Queue::open_with(dir, options).unwrap()
}

fn delay(ms: u64) -> PushOptions {
    PushOptions {
        delay_ms: ms,
        ..PushOptions::default()
    }
}

#[test]
fn next_available_in_follows_delays_leases_and_dead_letters() {
    let tmp = tmp();
    let clock = Arc::new(ManualClock::new(T0));
    let queue = open(tmp.path(), &clock);
    assert_eq!(queue.next_available_in(), None, "an empty queue");

    queue.push("1", &delay(5_000)).unwrap();
    assert_eq!(
        queue.next_available_in(),
        Some(Duration::from_millis(5_000))
    );
    clock.advance(2_000);
    assert_eq!(
        queue.next_available_in(),
        Some(Duration::from_millis(3_000))
    );
    clock.advance(3_000);
    assert_eq!(
        queue.next_available_in(),
        Some(Duration::ZERO),
        "the delay ended"
    );

    let first = queue.pop(10_000).unwrap().expect("a delivery");
    assert_eq!(
        queue.next_available_in(),
        Some(Duration::from_millis(10_000)),
        "leased: available again when the lease ends"
    );
    queue.push("2", &PushOptions::default()).unwrap();
    assert_eq!(queue.next_available_in(), Some(Duration::ZERO));
    let second = queue.pop(10_000).unwrap().expect("a delivery");
    queue.ack(second.id, &second.token).unwrap();
    clock.advance(10_000);
    assert_eq!(
        queue.next_available_in(),
        Some(Duration::ZERO),
        "the lease ran out"
    );

    // The second delivery of message 1 is its last: once that lease ends
    // too, the next pop moves it to the dead letters.
    let again = queue.pop(1_000).unwrap().expect("delivered again");
    assert_eq!((again.id, again.attempt), (first.id, 2));
    clock.advance(1_000);
    assert_eq!(queue.pop(1_000).unwrap(), None);
    assert_eq!(queue.dead_letters().len(), 1);
    assert_eq!(queue.next_available_in(), None, "dead letters only");

    drop(queue);
    let queue = open(tmp.path(), &clock);
    assert_eq!(queue.next_available_in(), None, "the same after a restart");
    queue.requeue(None).unwrap();
    assert_eq!(queue.next_available_in(), Some(Duration::ZERO));
}

#[test]
fn listeners_hear_every_change_until_they_stop() {
    let tmp = tmp();
    let clock = Arc::new(ManualClock::new(T0));
    let queue = open(tmp.path(), &clock);
    let heard = Arc::new(AtomicU64::new(0));
    let forever = heard.clone();
    queue.add_listener(move || {
        forever.fetch_add(1, Ordering::SeqCst);
        true
    });
    let once = Arc::new(AtomicU64::new(0));
    let stops = once.clone();
    queue.add_listener(move || {
        stops.fetch_add(1, Ordering::SeqCst);
        false
    });

    queue.push("1", &PushOptions::default()).unwrap();
    let d = queue.pop(1_000).unwrap().unwrap();
    queue.nack(d.id, &d.token, 0).unwrap();
    let d = queue.pop(1_000).unwrap().unwrap();
    queue.ack(d.id, &d.token).unwrap();
    assert_eq!(heard.load(Ordering::SeqCst), 5, "push, pop, nack, pop, ack");
    assert_eq!(
        once.load(Ordering::SeqCst),
        1,
        "a listener that returns false is dropped"
    );

    // A failed call may or may not be heard; a change always is.
    assert!(queue.ack(d.id, &d.token).is_err());
    let before = heard.load(Ordering::SeqCst);
    queue.push("2", &PushOptions::default()).unwrap();
    assert!(heard.load(Ordering::SeqCst) > before);
}
