//! The durable queue's behaviour: delivery order, leases, tokens, nacks,
//! extensions, dead letters, dedup, atomic batches and bad input, each also
//! across restarts (the queue dropped and its directory reopened with the
//! same manual clock); waiting without spinning; concurrent producers and
//! consumers; and compaction keeping the files bounded by the live messages.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use mini_engine::queue::{
    Clock, DEFAULT_DEDUP_WINDOW_MS, DEFAULT_MAX_DELIVERIES, Delivery, MAX_DEDUP_KEY, ManualClock,
    MessageInfo, Place, PushOptions, Queue, QueueError, QueueOptions, QueueStats, SystemClock,
};
use mini_engine::snapshot::DEFAULT_KEEP;
use mini_engine::state::{JOURNAL_DIR, SNAPSHOT_DIR};

/// The manual clock's start: a plausible "now" in ms since the epoch.
const T0: u64 = 1_700_000_000_000;

/// Everything a caller can observe of a queue without changing it.
#[derive(Debug, PartialEq)]
struct View {
    stats: QueueStats,
    peek: Vec<MessageInfo>,
    dead: Vec<MessageInfo>,
    last_seq: u64,
}

fn view(q: &Queue) -> View {
    View {
        stats: q.stats(),
        peek: q.peek(usize::MAX),
        dead: q.dead_letters(),
        last_seq: q.log().last_seq(),
    }
}

/// (ready, leased, delayed, dead, bytes).
fn counts(q: &Queue) -> (u64, u64, u64, u64, u64) {
    let s = q.stats();
    (s.ready, s.leased, s.delayed, s.dead, s.bytes)
}

fn ids(messages: &[MessageInfo]) -> Vec<u64> {
    messages.iter().map(|m| m.id).collect()
}

fn delivered_ids(deliveries: &[Delivery]) -> Vec<u64> {
    deliveries.iter().map(|d| d.id).collect()
}

fn now() -> PushOptions {
    PushOptions::default()
}

fn delay(ms: u64) -> PushOptions {
    PushOptions {
        delay_ms: ms,
        dedup: None,
    }
}

fn key(k: &str) -> PushOptions {
    PushOptions {
        delay_ms: 0,
        dedup: Some(k.to_string()),
    }
}

/// Runs a call that must fail, and checks that it changed nothing a caller
/// can observe (stats, peek, dead letters, the journal's last seq).
fn unchanged<T: Debug>(
    q: &Queue,
    call: impl FnOnce(&Queue) -> Result<T, QueueError>,
) -> QueueError {
    let before = view(q);
    let err = match call(q) {
        Ok(v) => panic!("the call succeeded with {v:?}"),
        Err(e) => e,
    };
    assert_eq!(view(q), before, "a failed call ({err}) changed the queue");
    err
}

/// A queue on a manual clock in a temporary directory. In the restarting
/// variant, [`Fx::restart`] drops the queue and reopens its directory (every
/// other time after an explicit checkpoint, so the state comes back from a
/// snapshot as well as from the journal) and checks that the reopened queue
/// shows exactly what the old one did.
struct Fx {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    clock: Arc<ManualClock>,
    options: QueueOptions,
    queue: Option<Queue>,
    restarts: bool,
    restarted: u32,
}

impl Fx {
    fn new(restarts: bool) -> Fx {
        Fx::with(restarts, |_| {})
    }

    fn with(restarts: bool, configure: impl FnOnce(&mut QueueOptions)) -> Fx {
        let tmp = tmp();
        let dir = tmp.path().join("queue");
        let clock = Arc::new(ManualClock::new(T0));
        let mut options = QueueOptions {
            clock: clock.clone(),
            ..QueueOptions::default()
        };
        configure(&mut options);
        let queue = Queue::open_with(&dir, options.clone()).expect("open");
        Fx {
            _tmp: tmp,
            dir,
            clock,
            options,
            queue: Some(queue),
            restarts,
            restarted: 0,
        }
    }

    fn q(&self) -> &Queue {
        self.queue.as_ref().expect("open")
    }

    fn advance(&self, ms: u64) {
        self.clock.advance(ms);
    }

    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    fn restart(&mut self) {
        if !self.restarts {
            return;
        }
        self.restarted += 1;
        if self.restarted.is_multiple_of(2) {
            self.q().checkpoint().expect("checkpoint");
        }
        let mut before = view(self.q());
        self.queue = None;
        let queue = Queue::open_with(&self.dir, self.options.clone()).expect("reopen");
        self.queue = Some(queue);
        let mut after = view(self.q());
        // What the journal's files take may change with a reopen; the
        // messages may not.
        before.stats.journal_bytes = 0;
        after.stats.journal_bytes = 0;
        assert_eq!(after, before, "the reopened queue differs");
    }
}

/// Each scenario runs twice: on one open queue, and with restarts between
/// its steps.
macro_rules! plain_and_restarted {
    ($($name:ident),* $(,)?) => {
        mod plain {
            $(#[test] fn $name() { super::$name(&mut super::Fx::new(false)); })*
        }
        mod restarted {
            $(#[test] fn $name() { super::$name(&mut super::Fx::new(true)); })*
        }
    };
}

/// Scenarios that configure their queue themselves.
macro_rules! plain_and_restarted_with {
    ($($name:ident),* $(,)?) => {
        mod plain_with {
            $(#[test] fn $name() { super::$name(false); })*
        }
        mod restarted_with {
            $(#[test] fn $name() { super::$name(true); })*
        }
    };
}

plain_and_restarted!(
    push_pop_ack_round_trip,
    fifo_among_equal_availability_and_delays_hide_messages,
    expired_lease_redelivers_with_the_next_attempt_and_stales_the_old_token,
    nack_with_a_delay_makes_the_message_available_later,
    extend_moves_the_deadline,
    dead_letter_after_default_max_deliveries_by_expiry,
    dead_letter_after_default_max_deliveries_by_nack,
    dedup_key_returns_the_same_id_until_the_window_passes,
    ack_next_acks_and_delivers_the_next_message_in_one_write,
);

plain_and_restarted_with!(
    dead_letter_after_custom_max_deliveries_by_expiry,
    dead_letter_after_custom_max_deliveries_by_nack,
    dead_letters_requeue_and_purge,
    push_batch_is_atomic_and_checked_whole,
    bad_input_is_a_clear_error_and_changes_nothing,
    stats_count_where_messages_are,
);

fn ack_next_acks_and_delivers_the_next_message_in_one_write(fx: &mut Fx) {
    for n in 1..=3 {
        fx.q().push(&n.to_string(), &now()).unwrap();
    }
    let first = fx.q().pop(1_000).unwrap().expect("message 1");
    // A stale or wrong token: an error, and nothing acked or leased.
    let err = unchanged(fx.q(), |q| q.ack_next(first.id, "nope", 1_000));
    assert!(matches!(err, QueueError::StaleToken { .. }), "{err:?}");
    let err = unchanged(fx.q(), |q| q.ack_next(first.id, &first.token, 0));
    assert!(matches!(err, QueueError::InvalidArgument(_)), "{err:?}");

    let synced = fx.q().log().last_seq();
    let second = fx
        .q()
        .ack_next(first.id, &first.token, 1_000)
        .unwrap()
        .expect("message 2");
    assert_eq!(
        (second.id, second.payload.as_str(), second.attempt),
        (2, "2", 1)
    );
    assert_eq!(
        fx.q().log().last_seq(),
        synced + 2,
        "the ack and the lease are one write of two records"
    );
    fx.restart();
    assert_eq!(
        counts(fx.q()),
        (1, 1, 0, 0, 2),
        "1 acked, 2 leased, 3 ready"
    );
    fx.advance(5_000);
    let third = fx
        .q()
        .ack_next(second.id, &second.token, 1_000)
        .unwrap()
        .expect("message 3");
    assert_eq!(third.id, 3);
    fx.restart();
    // The last one, its lease run out so that it is deliverable itself:
    // acked, and nothing to deliver.
    fx.advance(5_000);
    assert!(
        fx.q()
            .ack_next(third.id, &third.token, 1_000)
            .unwrap()
            .is_none()
    );
    fx.restart();
    assert_eq!(counts(fx.q()), (0, 0, 0, 0, 0));
    assert!(fx.q().pop(1_000).unwrap().is_none());
}

fn push_pop_ack_round_trip(fx: &mut Fx) {
    let id = fx.q().push(r#"{"job":1}"#, &now()).unwrap();
    assert_eq!(id, 1);
    assert_eq!(counts(fx.q()), (1, 0, 0, 0, 9));
    fx.restart();
    let d = fx.q().pop(30_000).unwrap().expect("the message");
    assert_eq!(
        (
            d.id,
            d.payload.as_str(),
            d.attempt,
            d.enqueued_at,
            d.deadline
        ),
        (id, r#"{"job":1}"#, 1, T0, T0 + 30_000)
    );
    assert!(!d.token.is_empty());
    assert_eq!(counts(fx.q()), (0, 1, 0, 0, 9));
    assert!(
        fx.q().pop(30_000).unwrap().is_none(),
        "a leased message was delivered twice"
    );
    fx.restart();
    fx.q().ack(id, &d.token).unwrap();
    assert_eq!(counts(fx.q()), (0, 0, 0, 0, 0));
    assert!(fx.q().pop(30_000).unwrap().is_none());
    fx.q().checkpoint().unwrap();
    fx.restart();
    assert!(
        fx.q().pop(30_000).unwrap().is_none(),
        "an acked message came back"
    );
    let err = unchanged(fx.q(), |q| q.ack(id, &d.token));
    assert!(
        matches!(err, QueueError::UnknownMessage { id: i } if i == id),
        "{err:?}"
    );
    // Ids are never reused, even after the newest message was acked and the
    // journal compacted.
    assert_eq!(fx.q().push("2", &now()).unwrap(), 2);
}

fn fifo_among_equal_availability_and_delays_hide_messages(fx: &mut Fx) {
    let q = fx.q();
    assert_eq!(q.push("1", &delay(1000)).unwrap(), 1);
    assert_eq!(q.push("2", &now()).unwrap(), 2);
    assert_eq!(q.push("3", &delay(500)).unwrap(), 3);
    assert_eq!(q.push("4", &now()).unwrap(), 4);
    assert_eq!(q.push("5", &delay(0)).unwrap(), 5);
    assert_eq!(counts(q), (3, 0, 2, 0, 5));
    assert_eq!(ids(&q.peek(10)), [2, 4, 5, 3, 1]);
    assert_eq!(ids(&q.peek(2)), [2, 4]);
    fx.restart();
    let q = fx.q();
    assert_eq!(delivered_ids(&q.pop_batch(2, 10_000).unwrap()), [2, 4]);
    assert_eq!(q.pop(10_000).unwrap().map(|d| d.id), Some(5));
    assert!(
        q.pop(10_000).unwrap().is_none(),
        "a delayed message was delivered early"
    );
    fx.advance(499);
    assert!(fx.q().pop_batch(10, 10_000).unwrap().is_empty());
    assert_eq!(counts(fx.q()), (0, 3, 2, 0, 5));
    fx.restart();
    fx.advance(1);
    let d = fx.q().pop(10_000).unwrap().expect("message 3 is due");
    assert_eq!((d.id, d.payload.as_str(), d.enqueued_at), (3, "3", T0));
    assert!(fx.q().pop(10_000).unwrap().is_none());
    // A message pushed later without a delay is available before an older
    // one whose delay has not passed yet.
    fx.advance(100);
    assert_eq!(fx.q().push("6", &now()).unwrap(), 6);
    fx.restart();
    fx.advance(399);
    assert_eq!(fx.q().pop(10_000).unwrap().map(|d| d.id), Some(6));
    assert!(fx.q().pop(10_000).unwrap().is_none());
    fx.advance(1);
    let d = fx.q().pop(10_000).unwrap().expect("message 1 is due");
    assert_eq!((d.id, d.attempt, d.enqueued_at), (1, 1, T0));
}

fn expired_lease_redelivers_with_the_next_attempt_and_stales_the_old_token(fx: &mut Fx) {
    let id = fx.q().push(r#""work""#, &now()).unwrap();
    let first = fx.q().pop(1000).unwrap().unwrap();
    assert_eq!(
        (first.id, first.attempt, first.deadline),
        (id, 1, T0 + 1000)
    );
    fx.advance(999);
    assert!(
        fx.q().pop(1000).unwrap().is_none(),
        "redelivered before the lease ended"
    );
    assert_eq!(counts(fx.q()), (0, 1, 0, 0, 6));
    fx.restart();
    fx.advance(1);
    assert_eq!(
        counts(fx.q()),
        (1, 0, 0, 0, 6),
        "an expired lease counts as ready"
    );
    let second = fx
        .q()
        .pop(1000)
        .unwrap()
        .expect("redelivered after the lease");
    assert_eq!(
        (second.id, second.attempt, second.payload.as_str()),
        (id, 2, r#""work""#)
    );
    assert_eq!(second.deadline, fx.now() + 1000);
    assert_ne!(second.token, first.token);
    fx.restart();
    let q = fx.q();
    let err = unchanged(q, |q| q.ack(id, &first.token));
    assert!(
        matches!(err, QueueError::StaleToken { id: i, .. } if i == id),
        "{err:?}"
    );
    let err = unchanged(q, |q| q.nack(id, &first.token, 0));
    assert!(matches!(err, QueueError::StaleToken { .. }), "{err:?}");
    let err = unchanged(q, |q| q.extend(id, &first.token, 5000));
    assert!(matches!(err, QueueError::StaleToken { .. }), "{err:?}");
    fx.restart();
    let err = unchanged(fx.q(), |q| q.ack(id, &first.token));
    assert!(matches!(err, QueueError::StaleToken { .. }), "{err:?}");
    fx.q().ack(id, &second.token).unwrap();
    assert_eq!(counts(fx.q()), (0, 0, 0, 0, 0));
    fx.restart();
    assert!(fx.q().pop(1000).unwrap().is_none());
}

fn nack_with_a_delay_makes_the_message_available_later(fx: &mut Fx) {
    let id = fx.q().push("[1]", &now()).unwrap();
    let first = fx.q().pop(10_000).unwrap().unwrap();
    fx.q().nack(id, &first.token, 500).unwrap();
    assert_eq!(counts(fx.q()), (0, 0, 1, 0, 3));
    assert_eq!(fx.q().peek(1)[0].place, Place::Ready { avail: T0 + 500 });
    let err = unchanged(fx.q(), |q| q.ack(id, &first.token));
    assert!(
        matches!(err, QueueError::NotLeased { id: i } if i == id),
        "{err:?}"
    );
    let err = unchanged(fx.q(), |q| q.nack(id, &first.token, 0));
    assert!(matches!(err, QueueError::NotLeased { .. }), "{err:?}");
    fx.restart();
    fx.advance(499);
    assert!(
        fx.q().pop(10_000).unwrap().is_none(),
        "delivered before the nack's delay"
    );
    fx.restart();
    fx.advance(1);
    let second = fx
        .q()
        .pop(10_000)
        .unwrap()
        .expect("due after the nack's delay");
    assert_eq!((second.id, second.attempt), (id, 2));
    // A nack without a delay makes it available at once; the attempts count on.
    fx.q().nack(id, &second.token, 0).unwrap();
    assert_eq!(counts(fx.q()), (1, 0, 0, 0, 3));
    fx.restart();
    let third = fx.q().pop(10_000).unwrap().unwrap();
    assert_eq!((third.id, third.attempt), (id, 3));
    let err = unchanged(fx.q(), |q| q.ack(id, &second.token));
    assert!(matches!(err, QueueError::StaleToken { .. }), "{err:?}");
    fx.q().ack(id, &third.token).unwrap();
    assert_eq!(counts(fx.q()), (0, 0, 0, 0, 0));
}

fn extend_moves_the_deadline(fx: &mut Fx) {
    let id = fx.q().push("true", &now()).unwrap();
    let d = fx.q().pop(1000).unwrap().unwrap();
    fx.advance(800);
    assert_eq!(fx.q().extend(id, &d.token, 1000).unwrap(), T0 + 1800);
    assert_eq!(
        fx.q().peek(1)[0].place,
        Place::Leased {
            token: d.token.clone(),
            deadline: T0 + 1800
        }
    );
    let err = unchanged(fx.q(), |q| q.extend(id, &d.token, 0));
    assert!(matches!(err, QueueError::InvalidArgument(_)), "{err:?}");
    fx.restart();
    fx.advance(999);
    assert!(
        fx.q().pop(1000).unwrap().is_none(),
        "redelivered before the extended deadline"
    );
    assert_eq!(counts(fx.q()), (0, 1, 0, 0, 4));
    fx.restart();
    fx.advance(1);
    let again = fx
        .q()
        .pop(1000)
        .unwrap()
        .expect("redelivered after the extended deadline");
    assert_eq!((again.id, again.attempt), (id, 2));
    let err = unchanged(fx.q(), |q| q.extend(id, &d.token, 1000));
    assert!(matches!(err, QueueError::StaleToken { .. }), "{err:?}");
    // Extending the current lease works, and keeps it from expiring.
    fx.advance(900);
    fx.q().extend(id, &again.token, 5000).unwrap();
    fx.restart();
    fx.advance(4999);
    assert!(fx.q().pop(1000).unwrap().is_none());
    fx.q().ack(id, &again.token).unwrap();
}

/// Lets message `id` (alone in the queue) expire `max` times, checking the
/// attempt of each delivery; returns the last delivery.
fn expire_deliveries(fx: &mut Fx, id: u64, max: u32) -> Delivery {
    let mut last = None;
    for attempt in 1..=max {
        let d = fx.q().pop(100).unwrap().expect("delivered again");
        assert_eq!((d.id, d.attempt), (id, attempt));
        fx.advance(100);
        if attempt % 2 == 1 {
            fx.restart();
        }
        last = Some(d);
    }
    last.unwrap()
}

/// After `max` deliveries message `id` goes to the dead letters, not out
/// again; a message behind it is delivered instead.
fn check_dead_lettered(fx: &mut Fx, id: u64, max: u32, last: &Delivery, payload: &str) {
    let next = fx.q().push(r#""next""#, &now()).unwrap();
    let d = fx.q().pop(100).unwrap().expect("the next message");
    assert_eq!(
        (d.id, d.attempt),
        (next, 1),
        "the exhausted message was delivered again"
    );
    let dead = fx.q().dead_letters();
    assert_eq!(ids(&dead), [id]);
    assert_eq!(
        (dead[0].attempts, &dead[0].place, dead[0].payload.as_str()),
        (max, &Place::Dead, payload)
    );
    assert_eq!(counts(fx.q()).3, 1);
    fx.restart();
    let err = unchanged(fx.q(), |q| q.ack(id, &last.token));
    assert!(matches!(err, QueueError::NotLeased { .. }), "{err:?}");
    fx.q().ack(d.id, &d.token).unwrap();
    fx.advance(1000);
    assert!(
        fx.q().pop(100).unwrap().is_none(),
        "a dead letter was delivered"
    );
    assert_eq!(ids(&fx.q().dead_letters()), [id]);
    assert_eq!(ids(&fx.q().peek(10)), Vec::<u64>::new());
}

fn dead_letter_after_default_max_deliveries_by_expiry(fx: &mut Fx) {
    assert_eq!(fx.q().options().max_deliveries, 5);
    assert_eq!(DEFAULT_MAX_DELIVERIES, 5);
    let id = fx.q().push(r#""poison""#, &now()).unwrap();
    let last = expire_deliveries(fx, id, 5);
    check_dead_lettered(fx, id, 5, &last, r#""poison""#);
}

fn dead_letter_after_custom_max_deliveries_by_expiry(restarts: bool) {
    let fx = &mut Fx::with(restarts, |o| o.max_deliveries = 2);
    let id = fx.q().push(r#""poison""#, &now()).unwrap();
    let last = expire_deliveries(fx, id, 2);
    check_dead_lettered(fx, id, 2, &last, r#""poison""#);
}

fn dead_letter_after_default_max_deliveries_by_nack(fx: &mut Fx) {
    nack_until_dead(fx, DEFAULT_MAX_DELIVERIES);
}

fn dead_letter_after_custom_max_deliveries_by_nack(restarts: bool) {
    nack_until_dead(&mut Fx::with(restarts, |o| o.max_deliveries = 3), 3);
}

/// Nacks message `id` `max` times; the next pop dead-letters it.
fn nack_until_dead(fx: &mut Fx, max: u32) {
    assert_eq!(fx.q().options().max_deliveries, max);
    let id = fx.q().push("{}", &now()).unwrap();
    let mut last = None;
    for attempt in 1..=max {
        let d = fx.q().pop(60_000).unwrap().expect("delivered again");
        assert_eq!((d.id, d.attempt), (id, attempt));
        fx.restart();
        fx.q().nack(id, &d.token, 10).unwrap();
        fx.advance(10);
        last = Some(d);
    }
    check_dead_lettered(fx, id, max, &last.unwrap(), "{}");
}

fn dead_letters_requeue_and_purge(restarts: bool) {
    let fx = &mut Fx::with(restarts, |o| o.max_deliveries = 1);
    for i in 1..=3 {
        assert_eq!(fx.q().push(&i.to_string(), &now()).unwrap(), i);
    }
    assert_eq!(fx.q().pop_batch(3, 10).unwrap().len(), 3);
    fx.advance(10);
    assert!(fx.q().pop(10).unwrap().is_none());
    assert_eq!(ids(&fx.q().dead_letters()), [1, 2, 3]);
    assert_eq!(counts(fx.q()), (0, 0, 0, 3, 3));
    fx.restart();
    assert_eq!(fx.q().requeue(Some(&[2])).unwrap(), 1);
    assert_eq!(ids(&fx.q().dead_letters()), [1, 3]);
    assert_eq!(counts(fx.q()), (1, 0, 0, 2, 3));
    fx.restart();
    let d = fx.q().pop(10).unwrap().expect("the requeued message");
    assert_eq!((d.id, d.attempt), (2, 1), "requeue resets the attempts");
    let err = unchanged(fx.q(), |q| q.requeue(Some(&[2])));
    assert!(matches!(err, QueueError::NotDead { id: 2 }), "{err:?}");
    // All or nothing: 1 stays dead when 99 is unknown.
    let err = unchanged(fx.q(), |q| q.requeue(Some(&[1, 99])));
    assert!(
        matches!(err, QueueError::UnknownMessage { id: 99 }),
        "{err:?}"
    );
    let err = unchanged(fx.q(), |q| q.purge(Some(&[1, 2])));
    assert!(matches!(err, QueueError::NotDead { id: 2 }), "{err:?}");
    assert_eq!(fx.q().requeue(Some(&[])).unwrap(), 0);
    fx.restart();
    assert_eq!(fx.q().purge(Some(&[1])).unwrap(), 1);
    assert_eq!(ids(&fx.q().dead_letters()), [3]);
    let err = unchanged(fx.q(), |q| q.purge(Some(&[1])));
    assert!(
        matches!(err, QueueError::UnknownMessage { id: 1 }),
        "{err:?}"
    );
    fx.restart();
    assert_eq!(fx.q().purge(None).unwrap(), 1);
    assert_eq!(fx.q().dead_letters(), []);
    assert_eq!(fx.q().purge(None).unwrap(), 0);
    assert_eq!(fx.q().requeue(None).unwrap(), 0);
    assert_eq!(counts(fx.q()), (0, 1, 0, 0, 1));
    // Message 2 dies again (max 1), then all dead letters come back.
    fx.advance(10);
    assert!(fx.q().pop(10).unwrap().is_none());
    assert_eq!(ids(&fx.q().dead_letters()), [2]);
    fx.restart();
    assert_eq!(fx.q().requeue(None).unwrap(), 1);
    fx.restart();
    let d = fx.q().pop(10).unwrap().expect("requeued again");
    assert_eq!((d.id, d.attempt, d.payload.as_str()), (2, 1, "2"));
    fx.q().ack(2, &d.token).unwrap();
    fx.restart();
    assert_eq!(counts(fx.q()), (0, 0, 0, 0, 0));
}

fn dedup_key_returns_the_same_id_until_the_window_passes(fx: &mut Fx) {
    assert_eq!(fx.q().options().dedup_window_ms, DEFAULT_DEDUP_WINDOW_MS);
    assert_eq!(fx.q().push(r#""a""#, &key("k")).unwrap(), 1);
    assert_eq!(fx.q().push(r#""b""#, &key("k")).unwrap(), 1);
    assert_eq!(counts(fx.q()), (1, 0, 0, 0, 3));
    assert_eq!(fx.q().peek(10)[0].payload, r#""a""#);
    fx.restart();
    let seq = fx.q().log().last_seq();
    assert_eq!(fx.q().push(r#""c""#, &key("k")).unwrap(), 1);
    assert_eq!(
        fx.q().log().last_seq(),
        seq,
        "a deduplicated push wrote a record"
    );
    assert_eq!(fx.q().push(r#""d""#, &key("other")).unwrap(), 2);
    let d = fx.q().pop(60_000).unwrap().unwrap();
    assert_eq!((d.id, d.payload.as_str()), (1, r#""a""#));
    fx.q().ack(1, &d.token).unwrap();
    fx.restart();
    // Acked, but within the window: still nothing added.
    assert_eq!(fx.q().push(r#""e""#, &key("k")).unwrap(), 1);
    assert_eq!(ids(&fx.q().peek(10)), [2]);
    fx.advance(DEFAULT_DEDUP_WINDOW_MS);
    assert_eq!(fx.q().push(r#""e""#, &key("k")).unwrap(), 1);
    fx.restart();
    fx.restart();
    assert_eq!(fx.q().push(r#""e""#, &key("k")).unwrap(), 1);
    fx.advance(1);
    // The window has passed: a new message.
    assert_eq!(fx.q().push(r#""f""#, &key("k")).unwrap(), 3);
    // A live message keeps its key beyond the window.
    assert_eq!(fx.q().push(r#""g""#, &key("other")).unwrap(), 2);
    assert_eq!(ids(&fx.q().peek(10)), [2, 3]);
    fx.restart();
    fx.restart();
    assert_eq!(fx.q().push(r#""f2""#, &key("k")).unwrap(), 3);
    // Within one batch, a repeated key gets the id of its first message.
    assert_eq!(
        fx.q()
            .push_batch(&[("4", key("z")), ("5", key("z")), ("6", now())])
            .unwrap(),
        [4, 4, 5]
    );
    fx.restart();
    assert_eq!(fx.q().push("7", &key("z")).unwrap(), 4);
    assert_eq!(ids(&fx.q().peek(10)), [2, 3, 4, 5]);
    assert_eq!(fx.q().peek(10)[2].payload, "4");
}

fn push_batch_is_atomic_and_checked_whole(restarts: bool) {
    let fx = &mut Fx::with(restarts, |o| o.max_payload_size = 64);
    assert_eq!(fx.q().push("0", &now()).unwrap(), 1);
    let big = format!(r#""{}""#, "x".repeat(70));
    let err = unchanged(fx.q(), |q| {
        q.push_batch(&[("1", now()), ("{", now()), ("3", now())])
    });
    assert!(matches!(err, QueueError::InvalidPayload(_)), "{err:?}");
    let err = unchanged(fx.q(), |q| {
        q.push_batch(&[("1", key("a")), (big.as_str(), now()), ("3", now())])
    });
    assert!(
        matches!(
            err,
            QueueError::PayloadTooLarge {
                size: 72,
                limit: 64
            }
        ),
        "{err:?}"
    );
    let long_key = "k".repeat(MAX_DEDUP_KEY + 1);
    let err = unchanged(fx.q(), |q| {
        q.push_batch(&[("1", now()), ("2", key(&long_key))])
    });
    assert!(matches!(err, QueueError::InvalidArgument(_)), "{err:?}");
    let err = unchanged(fx.q(), |q| q.push_batch::<&str>(&[]));
    assert!(matches!(err, QueueError::InvalidArgument(_)), "{err:?}");
    fx.restart();
    // The key of the refused batch was not taken.
    assert_eq!(
        fx.q()
            .push_batch(&[("1", key("a")), ("2", delay(100)), ("3", now())])
            .unwrap(),
        [2, 3, 4]
    );
    let seq = fx.q().log().last_seq();
    fx.restart();
    assert_eq!(fx.q().log().last_seq(), seq);
    assert_eq!(
        delivered_ids(&fx.q().pop_batch(10, 1000).unwrap()),
        [1, 2, 4]
    );
    fx.advance(100);
    assert_eq!(delivered_ids(&fx.q().pop_batch(10, 1000).unwrap()), [3]);
    let max_key = "k".repeat(MAX_DEDUP_KEY);
    assert_eq!(fx.q().push("5", &key(&max_key)).unwrap(), 5);
    fx.restart();
    assert_eq!(fx.q().push("6", &key(&max_key)).unwrap(), 5);
}

fn bad_input_is_a_clear_error_and_changes_nothing(restarts: bool) {
    let fx = &mut Fx::with(restarts, |o| {
        o.max_deliveries = 1;
        o.max_payload_size = 64;
    });
    // One message in each place: dead (1), leased (2), ready (3), delayed (4).
    fx.q().push(r#""dead""#, &now()).unwrap();
    fx.q().pop(10).unwrap().unwrap();
    fx.advance(10);
    fx.q().push(r#""leased""#, &now()).unwrap();
    fx.q().push(r#""ready""#, &now()).unwrap();
    fx.q().push(r#""delayed""#, &delay(1000)).unwrap();
    let leased = fx.q().pop(60_000).unwrap().unwrap();
    assert_eq!(leased.id, 2);
    assert_eq!(counts(fx.q()), (1, 1, 1, 1, 30));
    fx.restart();

    let q = fx.q();
    for bad in [
        "{",
        "1 2",
        "",
        " ",
        "nope",
        r#"{"a":1}{"b":2}"#,
        "\"unterminated",
    ] {
        let err = unchanged(q, |q| q.push(bad, &key("fresh")));
        assert!(
            matches!(err, QueueError::InvalidPayload(_)),
            "{bad:?}: {err:?}"
        );
    }
    let big = format!("[{}]", "1,".repeat(40) + "1");
    let err = unchanged(q, |q| q.push(&big, &now()));
    assert!(
        matches!(err, QueueError::PayloadTooLarge { size, limit: 64 } if size == big.len()),
        "{err:?}"
    );
    let long_key = "k".repeat(MAX_DEDUP_KEY + 1);
    let err = unchanged(q, |q| q.push("1", &key(&long_key)));
    assert!(matches!(err, QueueError::InvalidArgument(_)), "{err:?}");
    for id in [0, 99, u64::MAX] {
        let err = unchanged(q, |q| q.ack(id, &leased.token));
        assert!(
            matches!(err, QueueError::UnknownMessage { id: i } if i == id),
            "{err:?}"
        );
        let err = unchanged(q, |q| q.nack(id, &leased.token, 0));
        assert!(matches!(err, QueueError::UnknownMessage { .. }), "{err:?}");
        let err = unchanged(q, |q| q.extend(id, &leased.token, 10));
        assert!(matches!(err, QueueError::UnknownMessage { .. }), "{err:?}");
    }
    for id in [1, 3, 4] {
        let err = unchanged(q, |q| q.ack(id, &leased.token));
        assert!(
            matches!(err, QueueError::NotLeased { id: i } if i == id),
            "{err:?}"
        );
        let err = unchanged(q, |q| q.nack(id, &leased.token, 5));
        assert!(matches!(err, QueueError::NotLeased { .. }), "{err:?}");
        let err = unchanged(q, |q| q.extend(id, &leased.token, 5));
        assert!(matches!(err, QueueError::NotLeased { .. }), "{err:?}");
    }
    for token in ["", "bogus", "2.1.0000000000000000"] {
        let err = unchanged(q, |q| q.ack(2, token));
        assert!(
            matches!(err, QueueError::StaleToken { id: 2, .. }),
            "{err:?}"
        );
    }
    let err = unchanged(q, |q| q.pop(0));
    assert!(matches!(err, QueueError::InvalidArgument(_)), "{err:?}");
    let err = unchanged(q, |q| q.pop_batch(3, 0));
    assert!(matches!(err, QueueError::InvalidArgument(_)), "{err:?}");
    let err = unchanged(q, |q| q.pop_wait(0, Duration::from_millis(10)));
    assert!(matches!(err, QueueError::InvalidArgument(_)), "{err:?}");
    let err = unchanged(q, |q| q.extend(2, &leased.token, 0));
    assert!(matches!(err, QueueError::InvalidArgument(_)), "{err:?}");
    let err = unchanged(q, |q| q.push_batch::<String>(&[]));
    assert!(matches!(err, QueueError::InvalidArgument(_)), "{err:?}");
    for id in [2, 3, 4] {
        let err = unchanged(q, |q| q.requeue(Some(&[id])));
        assert!(
            matches!(err, QueueError::NotDead { id: i } if i == id),
            "{err:?}"
        );
        let err = unchanged(q, |q| q.purge(Some(&[id])));
        assert!(matches!(err, QueueError::NotDead { .. }), "{err:?}");
    }
    let err = unchanged(q, |q| q.purge(Some(&[99])));
    assert!(
        matches!(err, QueueError::UnknownMessage { id: 99 }),
        "{err:?}"
    );
    fx.restart();
    // After all that, the queue works as before: the refused pushes took no
    // dedup key and no id.
    let q = fx.q();
    assert_eq!(q.push("5", &key("fresh")).unwrap(), 5);
    q.ack(2, &leased.token).unwrap();
    assert_eq!(delivered_ids(&q.pop_batch(10, 10).unwrap()), [3, 5]);
    assert_eq!(ids(&q.dead_letters()), [1]);
}

fn stats_count_where_messages_are(restarts: bool) {
    let fx = &mut Fx::with(restarts, |o| o.max_deliveries = 1);
    let q = fx.q();
    assert_eq!(
        q.stats(),
        QueueStats {
            journal_bytes: q.stats().journal_bytes,
            snapshot_limit: 64 * 1024 * 1024,
            ..QueueStats::default()
        }
    );
    q.push(r#""a""#, &now()).unwrap(); // 3 bytes
    q.push("[1,2]", &delay(1000)).unwrap(); // 5
    q.push(r#"{"k":true}"#, &now()).unwrap(); // 10
    q.push(" 12345 ", &now()).unwrap(); // stored as 5 bytes
    let a = q.pop(500).unwrap().unwrap();
    assert_eq!(a.id, 1);
    assert_eq!(counts(q), (2, 1, 1, 0, 23));
    assert!(q.stats().journal_bytes > 0);
    fx.restart();
    fx.advance(500);
    assert_eq!(
        counts(fx.q()),
        (3, 0, 1, 0, 23),
        "an expired lease is ready"
    );
    // Max 1 delivery: message 1 dies on the way, 3 and 4 are leased.
    assert_eq!(delivered_ids(&fx.q().pop_batch(3, 10_000).unwrap()), [3, 4]);
    assert_eq!(counts(fx.q()), (0, 2, 1, 1, 23));
    fx.advance(500);
    assert_eq!(counts(fx.q()), (1, 2, 0, 1, 23));
    let leased = fx.q().peek(10);
    let Place::Leased { token, .. } = &leased.iter().find(|m| m.id == 3).unwrap().place else {
        panic!("3 is leased");
    };
    fx.q().ack(3, &token.clone()).unwrap();
    assert_eq!(counts(fx.q()), (1, 1, 0, 1, 13));
    fx.restart();
    assert_eq!(fx.q().purge(None).unwrap(), 1);
    assert_eq!(counts(fx.q()), (1, 1, 0, 0, 10));
    assert_eq!(fx.q().stats().checkpoint_error, None);
}

// ---------------------------------------------------------------------------
// Waiting for a message (real time: the system clock).

fn open_arc(dir: &std::path::Path) -> Arc<Queue> {
    Arc::new(Queue::open(dir).unwrap())
}

#[test]
fn pop_wait_blocks_until_a_push_from_another_thread() {
    let dir = tmp();
    let q = open_arc(dir.path());
    let pushed = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let waiter = {
        let (q, pushed) = (q.clone(), pushed.clone());
        thread::spawn(move || {
            let got = q.pop_wait(60_000, Duration::from_secs(30));
            // What the flag said when the wait returned.
            tx.send((pushed.load(Ordering::SeqCst), got)).unwrap();
        })
    };
    thread::sleep(Duration::from_millis(200));
    assert!(
        matches!(rx.try_recv(), Err(mpsc::TryRecvError::Empty)),
        "pop_wait returned while the queue was empty"
    );
    pushed.store(true, Ordering::SeqCst);
    let id = q.push(r#""hello""#, &now()).unwrap();
    let (flag, got) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("pop_wait woke up");
    waiter.join().unwrap();
    assert!(flag, "pop_wait returned before the push");
    let d = got.unwrap().expect("pop_wait returned the pushed message");
    assert_eq!((d.id, d.payload.as_str(), d.attempt), (id, r#""hello""#, 1));
    q.ack(d.id, &d.token).unwrap();
}

#[test]
fn pop_wait_returns_none_after_its_timeout() {
    let dir = tmp();
    let q = Queue::open(dir.path()).unwrap();
    assert!(
        q.pop_wait(1000, Duration::from_millis(50))
            .unwrap()
            .is_none()
    );
    // Neither a message leased to someone else nor one delayed beyond the
    // timeout is delivered.
    q.push("1", &delay(60_000)).unwrap();
    q.push("2", &now()).unwrap();
    let d = q.pop(60_000).unwrap().unwrap();
    assert_eq!(d.id, 2);
    let before = view(&q);
    assert!(
        q.pop_wait(1000, Duration::from_millis(50))
            .unwrap()
            .is_none()
    );
    assert_eq!(view(&q), before);
    assert!(q.pop_wait(1000, Duration::ZERO).unwrap().is_none());
}

#[test]
fn pop_wait_wakes_for_a_nack_from_another_thread() {
    let dir = tmp();
    let q = open_arc(dir.path());
    let id = q.push("1", &now()).unwrap();
    let first = q.pop(60_000).unwrap().unwrap();
    let nacked = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let waiter = {
        let (q, nacked) = (q.clone(), nacked.clone());
        thread::spawn(move || {
            let got = q.pop_wait(60_000, Duration::from_secs(30));
            tx.send((nacked.load(Ordering::SeqCst), got)).unwrap();
        })
    };
    thread::sleep(Duration::from_millis(100));
    assert!(matches!(rx.try_recv(), Err(mpsc::TryRecvError::Empty)));
    nacked.store(true, Ordering::SeqCst);
    q.nack(id, &first.token, 0).unwrap();
    let (flag, got) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    waiter.join().unwrap();
    assert!(flag);
    let d = got.unwrap().unwrap();
    assert_eq!((d.id, d.attempt), (id, 2));
}

/// A delay or a lease running out wakes a waiter (long before its timeout),
/// also after a restart; the message is not delivered before its time.
#[test]
fn pop_wait_wakes_when_a_delay_or_a_lease_runs_out_across_a_restart() {
    let dir = tmp();
    let id = {
        let q = Queue::open(dir.path()).unwrap();
        q.push(r#""later""#, &delay(300)).unwrap()
    };
    let q = Queue::open(dir.path()).unwrap();
    let started = Instant::now();
    let d = q
        .pop_wait(200, Duration::from_secs(30))
        .unwrap()
        .expect("delivered when its delay passed");
    let at = SystemClock.now_ms();
    assert_eq!((d.id, d.attempt), (id, 1));
    assert!(
        at >= d.enqueued_at + 300,
        "delivered before its delay passed"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "pop_wait was not woken by the delay"
    );
    drop(q);
    let q = Queue::open(dir.path()).unwrap();
    let d2 = q
        .pop_wait(60_000, Duration::from_secs(30))
        .unwrap()
        .expect("redelivered when the lease ran out");
    assert_eq!((d2.id, d2.attempt), (id, 2));
    assert!(
        SystemClock.now_ms() >= d.deadline,
        "redelivered before the lease ran out"
    );
    assert!(started.elapsed() < Duration::from_secs(40));
    let err = q.ack(id, &d.token).unwrap_err();
    assert!(matches!(err, QueueError::StaleToken { .. }), "{err:?}");
    q.ack(id, &d2.token).unwrap();
}

// ---------------------------------------------------------------------------
// Concurrency.

#[test]
fn eight_producers_and_two_consumers_deliver_everything_once() {
    const PRODUCERS: u64 = 8;
    const EACH: u64 = 200;
    const TOTAL: usize = (PRODUCERS * EACH) as usize;
    let dir = tmp();
    let q = open_arc(dir.path());
    let acked = Arc::new(AtomicUsize::new(0));
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let (q, acked) = (q.clone(), acked.clone());
            thread::spawn(move || {
                let mut got = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(300);
                while acked.load(Ordering::SeqCst) < TOTAL {
                    assert!(Instant::now() < deadline, "consumers starved");
                    let Some(d) = q.pop_wait(600_000, Duration::from_millis(50)).unwrap() else {
                        continue;
                    };
                    assert_eq!(d.attempt, 1, "message {} delivered twice", d.id);
                    q.ack(d.id, &d.token).unwrap();
                    acked.fetch_add(1, Ordering::SeqCst);
                    got.push((d.id, d.payload));
                }
                got
            })
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let q = q.clone();
            thread::spawn(move || {
                (0..EACH)
                    .map(|i| {
                        let payload = format!(r#"{{"p":{p},"i":{i}}}"#);
                        (q.push(&payload, &now()).unwrap(), payload)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut pushed = BTreeMap::new();
    for producer in producers {
        let ids = producer.join().unwrap();
        assert!(
            ids.windows(2).all(|w| w[0].0 < w[1].0),
            "one producer's ids are not in push order"
        );
        for (id, payload) in ids {
            assert!(pushed.insert(id, payload).is_none(), "id {id} given twice");
        }
    }
    let mut delivered = BTreeMap::new();
    for consumer in consumers {
        for (id, payload) in consumer.join().unwrap() {
            assert!(
                delivered.insert(id, payload).is_none(),
                "message {id} acked twice"
            );
        }
    }
    assert_eq!(pushed.len(), TOTAL);
    assert_eq!(
        delivered, pushed,
        "delivered messages differ from the pushed ones"
    );
    assert_eq!(counts(&q), (0, 0, 0, 0, 0));
    let any = *pushed.keys().next().unwrap();
    assert!(matches!(
        q.ack(any, "x"),
        Err(QueueError::UnknownMessage { .. })
    ));
    drop(q);
    let q = Queue::open(dir.path()).unwrap();
    assert_eq!(counts(&q), (0, 0, 0, 0, 0));
    assert!(q.pop(1000).unwrap().is_none());
    let ids: BTreeSet<u64> = pushed.keys().copied().collect();
    assert!(q.push("1", &now()).unwrap() > *ids.last().unwrap());
}

// ---------------------------------------------------------------------------
// Compaction.

/// 100,000 push/pop/ack cycles with 10 live messages: the journal and the
/// snapshots stay bounded by the live messages, and reopening gives them
/// back. (Flushes are skipped: this is about which files are kept, and
/// 100,000 fdatasyncs would take minutes.)
#[test]
fn compaction_keeps_files_bounded_by_live_messages() {
    const CYCLES: u64 = 100_000;
    const BATCH: u64 = 100;
    const DAY: u64 = 24 * 3600 * 1000;
    let dir = tmp();
    let clock = Arc::new(ManualClock::new(T0));
    let options = QueueOptions {
        clock: clock.clone(),
        fs: Arc::new(no_sync_fs()),
        ..QueueOptions::default()
    };
    let q = Queue::open_with(dir.path(), options.clone()).unwrap();
    // Five leased for a day, five delayed by a day.
    for i in 0..5 {
        q.push(&format!(r#"{{"live":{i},"leased":true}}"#), &now())
            .unwrap();
    }
    assert_eq!(q.pop_batch(5, DAY).unwrap().len(), 5);
    for i in 5..10 {
        q.push(&format!(r#"{{"live":{i},"delayed":true}}"#), &delay(DAY))
            .unwrap();
    }
    let live = q.peek(100);
    assert_eq!(live.len(), 10);
    let mut pushes = 0;
    let mut acks = 0;
    let mut history_bytes = 0u64;
    while pushes < CYCLES {
        let batch: Vec<(String, PushOptions)> = (pushes..pushes + BATCH)
            .map(|i| {
                (
                    format!(r#"{{"cycle":{i},"pad":"{}"}}"#, "p".repeat(20)),
                    now(),
                )
            })
            .collect();
        history_bytes += batch.iter().map(|(p, _)| p.len() as u64).sum::<u64>();
        let ids = q.push_batch(&batch).unwrap();
        pushes += BATCH;
        let deliveries = q.pop_batch(BATCH as usize, 60_000).unwrap();
        assert_eq!(delivered_ids(&deliveries), ids);
        for d in deliveries {
            q.ack(d.id, &d.token).unwrap();
            acks += 1;
        }
        clock.advance(1);
    }
    assert!(pushes >= CYCLES && acks >= CYCLES);
    let stats = q.stats();
    assert_eq!(
        counts(&q),
        (
            0,
            5,
            5,
            0,
            live.iter().map(|m| m.payload.len() as u64).sum()
        )
    );
    assert_eq!(stats.checkpoint_error, None);
    assert!(
        q.log().last_seq() >= 3 * CYCLES,
        "fewer records than pushes, leases and acks"
    );

    let journal = bytes_under(&dir.path().join(JOURNAL_DIR));
    let snapshots = files_under(&dir.path().join(SNAPSHOT_DIR));
    let snapshot_bytes: u64 = snapshots.iter().map(|(_, n)| n).sum();
    let journal_files = segments(&dir.path().join(JOURNAL_DIR));
    eprintln!(
        "journal: {journal} bytes in {} segments; snapshots: {snapshot_bytes} bytes in {} files; \
         payload history {history_bytes} bytes",
        journal_files.len(),
        snapshots.len()
    );
    assert!(history_bytes > 4 * 1024 * 1024);
    assert!(
        journal < 3 * 1024 * 1024,
        "the journal holds {journal} bytes after compaction"
    );
    assert!(
        journal_files.len() <= 3,
        "{} segments kept",
        journal_files.len()
    );
    assert!(
        journal_files[0].0 > 2 * CYCLES,
        "the journal still starts at seq {}",
        journal_files[0].0
    );
    let snapshot_files = snapshots
        .iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "json"))
        .count();
    assert!(snapshot_files <= DEFAULT_KEEP, "{snapshots:?}");
    assert!(
        snapshot_bytes < 128 * 1024,
        "snapshots hold {snapshot_bytes} bytes"
    );
    assert!(bytes_under(dir.path()) < 3 * 1024 * 1024 + 128 * 1024);

    let before = view(&q);
    drop(q);
    let q = Queue::open_with(dir.path(), options).unwrap();
    let mut after = view(&q);
    after.stats.journal_bytes = before.stats.journal_bytes;
    assert_eq!(after, before);
    assert_eq!(q.peek(100), live);
    // The leases and the delays are still a day long.
    clock.advance(DAY - 100_000);
    assert!(q.pop(1000).unwrap().is_none());
    clock.advance(100_000);
    let all = q.pop_batch(100, 1000).unwrap();
    assert_eq!(
        all.iter().map(|d| (d.id, d.attempt)).collect::<Vec<_>>(),
        live.iter()
            .map(|m| (m.id, m.attempts + 1))
            .collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------
// Limits and failures.

/// A payload at the size limit with a dedup key at its limit is valid input:
/// the push must be accepted whatever characters the key holds (JSON
/// escapes quotes and control characters, so the record is longer than the
/// key).
#[test]
fn a_payload_and_a_dedup_key_at_their_limits_are_accepted() {
    let fx = &mut Fx::with(true, |o| o.max_payload_size = 1000);
    let payload = format!(r#""{}""#, "x".repeat(998));
    assert_eq!(payload.len(), 1000);
    let mut refused = Vec::new();
    for c in ['k', '"', '\\', '\u{1}', '\n'] {
        let k: String = std::iter::repeat_n(c, MAX_DEDUP_KEY).collect();
        assert_eq!(k.len(), MAX_DEDUP_KEY);
        let before = view(fx.q());
        match fx.q().push(&payload, &key(&k)) {
            Ok(id) => {
                fx.restart();
                assert_eq!(
                    fx.q().push("1", &key(&k)).unwrap(),
                    id,
                    "the key was not kept"
                );
            }
            Err(e) => {
                assert_eq!(view(fx.q()), before, "a refused push changed the queue");
                refused.push(format!("{MAX_DEDUP_KEY} x {c:?}: {e:?}"));
            }
        }
    }
    // The queue still works.
    let id = fx.q().push("2", &now()).unwrap();
    assert!(fx.q().peek(10).iter().any(|m| m.id == id));
    assert!(refused.is_empty(), "valid pushes refused: {refused:#?}");
}

fn faulty(fs: &mini_engine::fs::faulty::FaultyFs, every: u64) -> QueueOptions {
    QueueOptions {
        clock: Arc::new(ManualClock::new(T0)),
        checkpoint_every: every,
        fs: Arc::new(fs.clone()),
        ..QueueOptions::default()
    }
}

/// A write that fails (its fdatasync) fails the call with a storage error
/// and changes nothing in memory; the queue refuses further writes until it
/// is reopened, and the reopened queue has the message either way.
#[test]
fn a_failed_sync_fails_the_call_and_changes_nothing() {
    let dir = tmp();
    let fs = mini_engine::fs::faulty::FaultyFs::new();
    let options = faulty(&fs, 1000);
    let q = Queue::open_with(dir.path(), options.clone()).unwrap();
    q.push("1", &key("one")).unwrap();
    let d = q.pop(60_000).unwrap().unwrap();

    // The bytes of a write whose sync failed are in the file: only the
    // journal's size may differ.
    let seen = |q: &Queue| {
        let mut v = view(q);
        v.stats.journal_bytes = 0;
        v
    };
    let before = seen(&q);
    fs.fail_sync_data_after(0);
    let err = q.push("2", &key("two")).unwrap_err();
    assert!(matches!(err, QueueError::Storage(_)), "{err:?}");
    assert_eq!(seen(&q), before, "a failed push changed the queue");
    let err = q.ack(d.id, &d.token).unwrap_err();
    assert!(matches!(err, QueueError::Storage(_)), "{err:?}");
    assert_eq!(seen(&q), before, "a failed ack changed the queue");
    let err = q.nack(d.id, &d.token, 0).unwrap_err();
    assert!(matches!(err, QueueError::Storage(_)), "{err:?}");
    let err = q.extend(d.id, &d.token, 10).unwrap_err();
    assert!(matches!(err, QueueError::Storage(_)), "{err:?}");
    assert_eq!(seen(&q), before);
    drop(q);

    let q = Queue::open_with(dir.path(), options).unwrap();
    // The first message is still leased with the same token; the refused
    // push may have reached the file (it was written, its sync failed).
    let peek = q.peek(10);
    assert_eq!(peek.iter().find(|m| m.id == d.id), Some(&before.peek[0]));
    assert!(peek.len() <= 2);
    let pushed_again = q.push("2", &key("two")).unwrap();
    assert_eq!(pushed_again, 2);
    q.ack(d.id, &d.token).unwrap();
    assert_eq!(ids(&q.peek(10)), [2]);
}

/// An automatic checkpoint that fails does not fail the call (which is
/// durable already): the error shows in the stats until a later checkpoint
/// succeeds, and nothing is lost.
#[test]
fn a_failed_automatic_checkpoint_does_not_fail_the_call() {
    let dir = tmp();
    let fs = mini_engine::fs::faulty::FaultyFs::new();
    let options = faulty(&fs, 3);
    let q = Queue::open_with(dir.path(), options.clone()).unwrap();
    q.push("1", &now()).unwrap();
    q.push("2", &now()).unwrap();
    fs.fail_sync_dir_after(0);
    assert_eq!(
        q.push("3", &now()).unwrap(),
        3,
        "the call failed with its checkpoint"
    );
    let error = q.stats().checkpoint_error;
    assert!(error.is_some(), "the failed checkpoint is not reported");
    // Not retried at every call (a checkpoint that keeps failing would slow
    // every call down), but after as many records again.
    for n in [4, 5] {
        assert_eq!(q.push(&n.to_string(), &now()).unwrap(), n);
        assert_eq!(q.stats().checkpoint_error, error, "retried at once");
    }
    assert_eq!(q.push("6", &now()).unwrap(), 6);
    assert_eq!(
        q.stats().checkpoint_error,
        None,
        "the next checkpoint was not retried"
    );
    let before = view(&q);
    drop(q);
    let q = Queue::open_with(dir.path(), options).unwrap();
    assert_eq!(q.peek(10), before.peek);
}

// ---------------------------------------------------------------------------
// Concurrent calls of every kind.

/// Threads push (with shared dedup keys), pop, ack, nack and extend at once
/// while the clock moves and checkpoints compact a small journal: the queue
/// in memory must be the fold of what it wrote (reopening shows the same),
/// each dedup key names one message, and no delivery is acked twice.
#[test]
fn concurrent_calls_leave_the_journal_that_folds_to_the_same_queue() {
    const THREADS: u64 = 6;
    const OPS: u64 = 150;
    let dir = tmp();
    let clock = Arc::new(ManualClock::new(T0));
    let options = QueueOptions {
        clock: clock.clone(),
        checkpoint_every: 10,
        segment_size: 2048,
        max_deliveries: 3,
        ..QueueOptions::default()
    };
    let q = Arc::new(Queue::open_with(dir.path(), options.clone()).unwrap());
    let seed = seed_from_env();
    eprintln!("seed {seed} (set MINI_TEST_SEED to replay)");
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (q, clock) = (q.clone(), clock.clone());
            let mut rng = Rng::with_seed(seed.wrapping_add(t));
            thread::spawn(move || {
                let mut keyed: Vec<(String, u64)> = Vec::new();
                let mut acked = Vec::new();
                for i in 0..OPS {
                    match rng.u64(0..=9) {
                        0 | 1 => {
                            let k = format!("key-{}", rng.u64(0..=20));
                            let payload = format!(r#"{{"t":{t},"i":{i}}}"#);
                            keyed.push((k.clone(), q.push(&payload, &key(&k)).unwrap()));
                        }
                        2 => {
                            let batch = [("1", now()), ("2", delay(rng.u64(0..=30)))];
                            q.push_batch(&batch).unwrap();
                        }
                        3 => clock.advance(rng.u64(0..=20)),
                        4 if rng.u64(0..=5) == 0 => {
                            q.checkpoint().unwrap();
                        }
                        4 => {
                            let _ = q.requeue(None).unwrap();
                        }
                        _ => {
                            for d in q
                                .pop_batch(rng.u64(1..=3) as usize, rng.u64(1..=40))
                                .unwrap()
                            {
                                let r = match rng.u64(0..=3) {
                                    0 => q.ack(d.id, &d.token).map(|()| acked.push(d.id)),
                                    1 => q.nack(d.id, &d.token, rng.u64(0..=10)),
                                    2 => q.extend(d.id, &d.token, 20).map(|_| ()),
                                    _ => Ok(()),
                                };
                                // The lease may have run out and the message
                                // gone to another thread meanwhile.
                                match r {
                                    Ok(()) | Err(QueueError::StaleToken { .. }) => {}
                                    Err(QueueError::UnknownMessage { .. })
                                    | Err(QueueError::NotLeased { .. }) => {}
                                    Err(e) => panic!("{e}"),
                                }
                            }
                        }
                    }
                }
                (keyed, acked)
            })
        })
        .collect();
    let mut acked = BTreeSet::new();
    let mut by_key: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for w in workers {
        let (keyed, ids) = w.join().unwrap();
        for id in ids {
            assert!(acked.insert(id), "message {id} acked twice");
        }
        for (k, id) in keyed {
            by_key.entry(k).or_default().insert(id);
        }
    }
    let before = view(&q);
    eprintln!(
        "{} acked, {} live, {} dead, journal from seq {}",
        acked.len(),
        before.peek.len(),
        before.dead.len(),
        q.log().journal().first_seq()
    );
    for m in before.peek.iter().chain(&before.dead) {
        assert!(!acked.contains(&m.id), "acked message {} still there", m.id);
    }
    // The clock moved by at most 20 ms a step, far less than the dedup
    // window: one message per key.
    for (k, ids) in &by_key {
        assert_eq!(ids.len(), 1, "key {k} named messages {ids:?}");
    }
    drop(q);
    let q = Queue::open_with(dir.path(), options).unwrap();
    let mut after = view(&q);
    after.stats.journal_bytes = before.stats.journal_bytes;
    assert_eq!(
        after, before,
        "the reopened queue differs from the one in memory"
    );
}

/// One process at a time: a second open of the same directory is refused
/// with the lock error and leaves the first one working.
#[test]
fn a_second_open_of_the_same_queue_is_refused() {
    let dir = tmp();
    let q = Queue::open(dir.path()).unwrap();
    q.push("1", &now()).unwrap();
    let err = Queue::open(dir.path()).unwrap_err();
    assert!(matches!(err, QueueError::Storage(_)), "{err:?}");
    assert_eq!(q.push("2", &now()).unwrap(), 2);
    drop(q);
    let q = Queue::open(dir.path()).unwrap();
    assert_eq!(ids(&q.peek(10)), [1, 2]);
}

/// Lowering the payload limit applies to new pushes: the messages already
/// stored stay readable.
#[test]
fn a_lower_payload_limit_on_reopen_keeps_the_stored_messages() {
    let dir = tmp();
    let big = format!(r#""{}""#, "x".repeat(10_000));
    {
        let q = Queue::open(dir.path()).unwrap();
        q.push(&big, &now()).unwrap();
        q.push("1", &now()).unwrap();
    }
    let options = QueueOptions {
        max_payload_size: 1000,
        ..QueueOptions::default()
    };
    let q = Queue::open_with(dir.path(), options).expect("reopen with a lower limit");
    assert_eq!(q.peek(10)[0].payload, big);
    let err = q.push(&big, &now()).unwrap_err();
    assert!(matches!(err, QueueError::PayloadTooLarge { .. }), "{err:?}");
}

/// "Wait as long as it takes" is a valid timeout: `Duration::MAX` must not
/// overflow the deadline arithmetic (a panic in the caller's thread).
#[test]
fn pop_wait_with_an_unbounded_timeout_does_not_panic() {
    let dir = tmp();
    let q = Queue::open(dir.path()).unwrap();
    let id = q.push("1", &now()).unwrap();
    let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        q.pop_wait(1000, Duration::MAX)
    }));
    let d = got
        .expect("pop_wait(Duration::MAX) panicked")
        .unwrap()
        .expect("the ready message");
    assert_eq!(d.id, id);
    // Also when the message comes later from another thread.
    let q = Arc::new(q);
    let waiter = {
        let q = q.clone();
        thread::spawn(move || q.pop_wait(1000, Duration::from_secs(u64::MAX / 4)))
    };
    thread::sleep(Duration::from_millis(50));
    let id = q.push("2", &now()).unwrap();
    let d = waiter.join().expect("pop_wait panicked").unwrap().unwrap();
    assert_eq!(d.id, id);
}
