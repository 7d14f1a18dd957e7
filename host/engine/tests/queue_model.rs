//! Model test of the durable queue: random sequences of pushes (with delays
//! and dedup keys), pops, acks, nacks and extensions with current, stale and
//! bogus tokens, clock advances, restarts, checkpoints, requeues and purges,
//! run against the real queue and against a simple in-memory model. Every
//! observable result — ids, which message a pop delivers with which attempt
//! and deadline, error variants, stats, peek and the dead letters — must be
//! the model's.
//!
//! The queue runs on `no_sync_fs` (the real files without fdatasync): the
//! model checks what the queue decides and what it reads back after a
//! restart in the same process; durability against crashes is the business
//! of `queue_crash.rs`.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use mini_engine::queue::{
    Clock, Delivery, ManualClock, MessageInfo, Place, PushOptions, Queue, QueueError, QueueOptions,
};
use proptest::prelude::*;

const T0: u64 = 1_700_000_000_000;
const MAX_DELIVERIES: u32 = 3;
const DEDUP_WINDOW: u64 = 2000;
/// An id no message ever gets.
const UNKNOWN: u64 = 1_000_000;

/// The error variants, with the ids they name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum E {
    InvalidPayload,
    PayloadTooLarge,
    Unknown(u64),
    Stale(u64),
    NotLeased(u64),
    NotDead(u64),
    InvalidArgument,
}

fn classify(e: QueueError) -> E {
    match e {
        QueueError::InvalidPayload(_) => E::InvalidPayload,
        QueueError::PayloadTooLarge { .. } => E::PayloadTooLarge,
        QueueError::UnknownMessage { id } => E::Unknown(id),
        QueueError::StaleToken { id, .. } => E::Stale(id),
        QueueError::NotLeased { id } => E::NotLeased(id),
        QueueError::NotDead { id } => E::NotDead(id),
        QueueError::InvalidArgument(_) => E::InvalidArgument,
        other => panic!("unexpected error: {other}"),
    }
}

#[derive(Debug, Clone)]
struct MMsg {
    payload: String,
    at: u64,
    attempts: u32,
    place: Place,
}

impl MMsg {
    fn visible_at(&self) -> Option<u64> {
        match &self.place {
            Place::Ready { avail } => Some(*avail),
            Place::Leased { deadline, .. } => Some(*deadline),
            Place::Dead => None,
        }
    }
}

/// What a delivery must be (its token is the queue's to choose).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    id: u64,
    payload: String,
    attempt: u32,
    enqueued_at: u64,
    deadline: u64,
}

/// The queue as it should be.
#[derive(Debug, Default)]
struct Model {
    next_id: u64,
    messages: BTreeMap<u64, MMsg>,
    dedup: BTreeMap<String, (u64, u64)>,
    /// Every token handed out per message, oldest first.
    tokens: BTreeMap<u64, Vec<String>>,
    /// Every id handed out, in order.
    seen: Vec<u64>,
}

impl Model {
    fn new() -> Model {
        Model {
            next_id: 1,
            ..Model::default()
        }
    }

    fn dedup_id(&self, key: &str, now: u64) -> Option<u64> {
        let since = now.saturating_sub(DEDUP_WINDOW);
        self.dedup
            .get(key)
            .filter(|(id, at)| *at >= since || self.messages.contains_key(id))
            .map(|(id, _)| *id)
    }

    fn push_batch(&mut self, batch: &[(String, PushOptions)], now: u64) -> Vec<u64> {
        let mut ids = Vec::new();
        for (payload, options) in batch {
            if let Some(id) = options.dedup.as_deref().and_then(|k| self.dedup_id(k, now)) {
                ids.push(id);
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            if let Some(k) = &options.dedup {
                self.dedup.insert(k.clone(), (id, now));
            }
            self.messages.insert(
                id,
                MMsg {
                    payload: payload.clone(),
                    at: now,
                    attempts: 0,
                    place: Place::Ready {
                        avail: now + options.delay_ms,
                    },
                },
            );
            self.seen.push(id);
            ids.push(id);
        }
        ids
    }

    /// The non-dead messages in delivery order: (visible_at, id).
    fn order(&self) -> Vec<(u64, u64)> {
        let mut order: Vec<(u64, u64)> = self
            .messages
            .iter()
            .filter_map(|(id, m)| Some((m.visible_at()?, *id)))
            .collect();
        order.sort();
        order
    }

    /// The deliveries a pop makes (dead-lettering exhausted messages met on
    /// the way); tokens are filled in by [`Model::leased`].
    fn pop_batch(&mut self, max: usize, lease: u64, now: u64) -> Vec<Expected> {
        let mut out = Vec::new();
        for (at, id) in self.order() {
            if at > now || out.len() >= max {
                break;
            }
            let m = self.messages.get_mut(&id).unwrap();
            if m.attempts >= MAX_DELIVERIES {
                m.place = Place::Dead;
                continue;
            }
            m.attempts += 1;
            m.place = Place::Leased {
                token: String::new(),
                deadline: now + lease,
            };
            out.push(Expected {
                id,
                payload: m.payload.clone(),
                attempt: m.attempts,
                enqueued_at: m.at,
                deadline: now + lease,
            });
        }
        out
    }

    /// Records the token the queue chose for a delivery.
    fn leased(&mut self, id: u64, token: &str) {
        if let Some(Place::Leased { token: t, .. }) =
            self.messages.get_mut(&id).map(|m| &mut m.place)
        {
            *t = token.to_string();
        }
        self.tokens.entry(id).or_default().push(token.to_string());
    }

    /// The check ack, nack and extend make.
    fn check_lease(&self, id: u64, token: &str) -> Result<(), E> {
        match self.messages.get(&id).map(|m| &m.place) {
            None => Err(E::Unknown(id)),
            Some(Place::Leased { token: t, .. }) if t == token => Ok(()),
            Some(Place::Leased { .. }) => Err(E::Stale(id)),
            Some(_) => Err(E::NotLeased(id)),
        }
    }

    fn ack(&mut self, id: u64, token: &str) -> Result<(), E> {
        self.check_lease(id, token)?;
        self.messages.remove(&id);
        Ok(())
    }

    fn nack(&mut self, id: u64, token: &str, delay: u64, now: u64) -> Result<(), E> {
        self.check_lease(id, token)?;
        self.messages.get_mut(&id).unwrap().place = Place::Ready { avail: now + delay };
        Ok(())
    }

    fn extend(&mut self, id: u64, token: &str, lease: u64, now: u64) -> Result<u64, E> {
        if lease == 0 {
            return Err(E::InvalidArgument);
        }
        self.check_lease(id, token)?;
        if let Place::Leased { deadline, .. } = &mut self.messages.get_mut(&id).unwrap().place {
            *deadline = now + lease;
        }
        Ok(now + lease)
    }

    /// The dead letters `ids` names (all for `None`), checked all or nothing.
    fn dead_ids(&self, ids: Option<&[u64]>) -> Result<Vec<u64>, E> {
        match ids {
            None => Ok(self
                .messages
                .iter()
                .filter(|(_, m)| m.place == Place::Dead)
                .map(|(id, _)| *id)
                .collect()),
            Some(ids) => {
                for &id in ids {
                    match self.messages.get(&id).map(|m| &m.place) {
                        None => return Err(E::Unknown(id)),
                        Some(Place::Dead) => {}
                        Some(_) => return Err(E::NotDead(id)),
                    }
                }
                let mut ids = ids.to_vec();
                ids.sort_unstable();
                ids.dedup();
                Ok(ids)
            }
        }
    }

    fn requeue(&mut self, ids: Option<&[u64]>, now: u64) -> Result<usize, E> {
        let ids = self.dead_ids(ids)?;
        for id in &ids {
            let m = self.messages.get_mut(id).unwrap();
            m.attempts = 0;
            m.place = Place::Ready { avail: now };
        }
        Ok(ids.len())
    }

    fn purge(&mut self, ids: Option<&[u64]>) -> Result<usize, E> {
        let ids = self.dead_ids(ids)?;
        for id in &ids {
            self.messages.remove(id);
        }
        Ok(ids.len())
    }

    fn info(&self, id: u64) -> MessageInfo {
        let m = &self.messages[&id];
        MessageInfo {
            id,
            payload: m.payload.clone(),
            attempts: m.attempts,
            enqueued_at: m.at,
            place: m.place.clone(),
        }
    }

    fn peek(&self) -> Vec<MessageInfo> {
        self.order()
            .into_iter()
            .map(|(_, id)| self.info(id))
            .collect()
    }

    fn dead_letters(&self) -> Vec<MessageInfo> {
        self.messages
            .iter()
            .filter(|(_, m)| m.place == Place::Dead)
            .map(|(id, _)| self.info(*id))
            .collect()
    }

    /// (ready, leased, delayed, dead, bytes).
    fn counts(&self, now: u64) -> (u64, u64, u64, u64, u64) {
        let mut c = (0, 0, 0, 0, 0);
        for m in self.messages.values() {
            match &m.place {
                Place::Ready { avail } if *avail > now => c.2 += 1,
                Place::Leased { deadline, .. } if *deadline > now => c.1 += 1,
                Place::Ready { .. } | Place::Leased { .. } => c.0 += 1,
                Place::Dead => c.3 += 1,
            }
            c.4 += m.payload.len() as u64;
        }
        c
    }

    /// The id `pick` names: a leased message or a dead letter if it asks
    /// for one and there is one, else any id handed out (live or not) or an
    /// unknown one.
    fn target(&self, pick: Pick) -> u64 {
        let (kind, i) = match pick {
            Pick::Leased(i) => (Some(false), i),
            Pick::Dead(i) => (Some(true), i),
            Pick::Any(i) => (None, i),
        };
        if let Some(dead) = kind {
            let ids: Vec<u64> = self
                .messages
                .iter()
                .filter(|(_, m)| match m.place {
                    Place::Dead => dead,
                    Place::Leased { .. } => !dead,
                    Place::Ready { .. } => false,
                })
                .map(|(id, _)| *id)
                .collect();
            if !ids.is_empty() {
                return ids[i % ids.len()];
            }
        }
        if self.seen.is_empty() || i % (self.seen.len() + 1) == self.seen.len() {
            UNKNOWN
        } else {
            self.seen[i % (self.seen.len() + 1)]
        }
    }

    fn token(&self, id: u64, tok: &Tok) -> String {
        let history = self.tokens.get(&id).map(Vec::as_slice).unwrap_or(&[]);
        match tok {
            Tok::Current => history.last().cloned().unwrap_or_else(|| "none".into()),
            Tok::Old(i) if !history.is_empty() => history[i % history.len()].clone(),
            Tok::Old(_) => "none".into(),
            Tok::Bogus => format!("{id}.1.0123456789abcdef"),
        }
    }
}

/// Which message an operation names.
#[derive(Debug, Clone, Copy)]
enum Pick {
    /// A leased message (any if none is).
    Leased(usize),
    /// A dead letter (any if there is none).
    Dead(usize),
    /// Any id handed out, or an unknown one.
    Any(usize),
}

/// Which token an ack, nack or extend presents.
#[derive(Debug, Clone)]
enum Tok {
    /// The newest one handed out for the message.
    Current,
    /// Any one handed out for it (often a stale one).
    Old(usize),
    /// One the queue never handed out.
    Bogus,
}

#[derive(Debug, Clone)]
enum Op {
    Push {
        delay: u64,
        key: Option<u8>,
    },
    PushBatch {
        n: usize,
        key: Option<u8>,
        bad: bool,
    },
    BadPush(usize),
    Pop {
        lease: u64,
    },
    PopBatch {
        max: usize,
        lease: u64,
    },
    PopWaitNow {
        lease: u64,
    },
    Ack {
        pick: Pick,
        tok: Tok,
    },
    Nack {
        pick: Pick,
        tok: Tok,
        delay: u64,
    },
    Extend {
        pick: Pick,
        tok: Tok,
        lease: u64,
    },
    Advance(u64),
    Restart,
    Checkpoint,
    Requeue(Option<Vec<Pick>>),
    Purge(Option<Vec<Pick>>),
}

fn ms() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(50),
        Just(100),
        Just(499),
        Just(500),
        Just(2000)
    ]
}

fn lease() -> impl Strategy<Value = u64> {
    prop_oneof![
        12 => prop_oneof![Just(1u64), Just(50), Just(100), Just(500), Just(1000)],
        1 => Just(0u64),
    ]
}

fn tok() -> impl Strategy<Value = Tok> {
    prop_oneof![5 => Just(Tok::Current), 3 => any::<usize>().prop_map(Tok::Old), 1 => Just(Tok::Bogus)]
}

fn pick_leased() -> impl Strategy<Value = Pick> {
    prop_oneof![4 => any::<usize>().prop_map(Pick::Leased), 1 => any::<usize>().prop_map(Pick::Any)]
}

fn pick_dead() -> impl Strategy<Value = Pick> {
    prop_oneof![4 => any::<usize>().prop_map(Pick::Dead), 1 => any::<usize>().prop_map(Pick::Any)]
}

fn picks() -> impl Strategy<Value = Option<Vec<Pick>>> {
    prop_oneof![
        1 => Just(None),
        3 => prop::collection::vec(pick_dead(), 0..3).prop_map(Some),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (ms(), prop::option::of(0u8..3)).prop_map(|(delay, key)| Op::Push { delay, key }),
        2 => (1usize..4, prop::option::of(0u8..3), prop::bool::weighted(0.2))
            .prop_map(|(n, key, bad)| Op::PushBatch { n, key, bad }),
        1 => (0usize..5).prop_map(Op::BadPush),
        7 => lease().prop_map(|lease| Op::Pop { lease }),
        3 => (0usize..4, lease()).prop_map(|(max, lease)| Op::PopBatch { max, lease }),
        1 => lease().prop_map(|lease| Op::PopWaitNow { lease }),
        2 => (pick_leased(), tok()).prop_map(|(pick, tok)| Op::Ack { pick, tok }),
        2 => (pick_leased(), tok(), ms()).prop_map(|(pick, tok, delay)| Op::Nack { pick, tok, delay }),
        2 => (pick_leased(), tok(), lease()).prop_map(|(pick, tok, lease)| Op::Extend { pick, tok, lease }),
        7 => ms().prop_map(Op::Advance),
        2 => Just(Op::Restart),
        1 => Just(Op::Checkpoint),
        1 => picks().prop_map(Op::Requeue),
        1 => picks().prop_map(Op::Purge),
    ]
}

const BAD_PAYLOADS: [&str; 5] = ["{", "1 2", "", "nope", r#"{"a":1}{"b":2}"#];

struct Harness {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    clock: Arc<ManualClock>,
    options: QueueOptions,
    queue: Option<Queue>,
    model: Model,
    /// Makes every payload different, of varying length.
    counter: u64,
}

impl Harness {
    fn new() -> Harness {
        let tmp = tmp();
        let dir = tmp.path().join("queue");
        let clock = Arc::new(ManualClock::new(T0));
        let options = QueueOptions {
            max_deliveries: MAX_DELIVERIES,
            dedup_window_ms: DEDUP_WINDOW,
            checkpoint_every: 7,
            segment_size: 2048,
            max_payload_size: 200,
            clock: clock.clone(),
            fs: Arc::new(no_sync_fs()),
            ..QueueOptions::default()
        };
        let queue = Queue::open_with(&dir, options.clone()).unwrap();
        Harness {
            _tmp: tmp,
            dir,
            clock,
            options,
            queue: Some(queue),
            model: Model::new(),
            counter: 0,
        }
    }

    fn q(&self) -> &Queue {
        self.queue.as_ref().unwrap()
    }

    fn payload(&mut self) -> String {
        self.counter += 1;
        let n = self.counter;
        format!(r#"{{"n":{n},"pad":"{}"}}"#, "x".repeat((n % 7) as usize))
    }

    fn key(k: Option<u8>) -> Option<String> {
        k.map(|k| format!("key-{k}"))
    }

    fn deliveries(
        &mut self,
        got: Result<Vec<Delivery>, QueueError>,
        want: Result<Vec<Expected>, E>,
    ) {
        let got = got.map_err(classify);
        let got_plain = got.as_ref().map_err(Clone::clone).map(|ds| {
            ds.iter()
                .map(|d| Expected {
                    id: d.id,
                    payload: d.payload.clone(),
                    attempt: d.attempt,
                    enqueued_at: d.enqueued_at,
                    deadline: d.deadline,
                })
                .collect::<Vec<_>>()
        });
        assert_eq!(got_plain, want, "deliveries");
        if let Ok(ds) = got {
            for d in ds {
                assert!(!d.token.is_empty());
                self.model.leased(d.id, &d.token);
            }
        }
    }

    fn step(&mut self, op: &Op) {
        let now = self.clock.now_ms();
        match op {
            Op::Push { delay, key } => {
                let options = PushOptions {
                    delay_ms: *delay,
                    dedup: Harness::key(*key),
                };
                let payload = self.payload();
                let got = self.q().push(&payload, &options).map_err(classify);
                let want = self.model.push_batch(&[(payload, options)], now);
                assert_eq!(got, Ok(want[0]), "push");
            }
            Op::PushBatch { n, key, bad } => {
                let mut batch: Vec<(String, PushOptions)> = (0..*n)
                    .map(|i| {
                        let options = PushOptions {
                            delay_ms: 0,
                            dedup: if i % 2 == 0 { Harness::key(*key) } else { None },
                        };
                        (self.payload(), options)
                    })
                    .collect();
                if *bad {
                    let at = n / 2;
                    batch[at].0 = "[1,".into();
                }
                let got = self.q().push_batch(&batch).map_err(classify);
                let want = if *bad {
                    Err(E::InvalidPayload)
                } else {
                    Ok(self.model.push_batch(&batch, now))
                };
                assert_eq!(got, want, "push_batch");
            }
            Op::BadPush(i) => {
                let got = self.q().push(BAD_PAYLOADS[*i], &PushOptions::default());
                assert_eq!(got.map_err(classify), Err(E::InvalidPayload));
                let big = format!(r#""{}""#, "b".repeat(200));
                let got = self.q().push(&big, &PushOptions::default());
                assert_eq!(got.map_err(classify), Err(E::PayloadTooLarge));
            }
            Op::Pop { lease } => {
                let got = self.q().pop(*lease).map(|d| d.into_iter().collect());
                let want = if *lease == 0 {
                    Err(E::InvalidArgument)
                } else {
                    Ok(self.model.pop_batch(1, *lease, now))
                };
                self.deliveries(got, want);
            }
            Op::PopBatch { max, lease } => {
                let got = self.q().pop_batch(*max, *lease);
                let want = if *lease == 0 {
                    Err(E::InvalidArgument)
                } else {
                    Ok(self.model.pop_batch(*max, *lease, now))
                };
                self.deliveries(got, want);
            }
            Op::PopWaitNow { lease } => {
                let got = self
                    .q()
                    .pop_wait(*lease, Duration::ZERO)
                    .map(|d| d.into_iter().collect());
                let want = if *lease == 0 {
                    Err(E::InvalidArgument)
                } else {
                    Ok(self.model.pop_batch(1, *lease, now))
                };
                self.deliveries(got, want);
            }
            Op::Ack { pick, tok } => {
                let id = self.model.target(*pick);
                let token = self.model.token(id, tok);
                let got = self.q().ack(id, &token).map_err(classify);
                assert_eq!(got, self.model.ack(id, &token), "ack {id} {token}");
            }
            Op::Nack { pick, tok, delay } => {
                let id = self.model.target(*pick);
                let token = self.model.token(id, tok);
                let got = self.q().nack(id, &token, *delay).map_err(classify);
                assert_eq!(
                    got,
                    self.model.nack(id, &token, *delay, now),
                    "nack {id} {token}"
                );
            }
            Op::Extend { pick, tok, lease } => {
                let id = self.model.target(*pick);
                let token = self.model.token(id, tok);
                let got = self.q().extend(id, &token, *lease).map_err(classify);
                assert_eq!(
                    got,
                    self.model.extend(id, &token, *lease, now),
                    "extend {id} {token}"
                );
            }
            Op::Advance(ms) => self.clock.advance(*ms),
            Op::Restart => {
                self.queue = None;
                self.queue = Some(Queue::open_with(&self.dir, self.options.clone()).unwrap());
            }
            Op::Checkpoint => {
                self.q().checkpoint().unwrap();
            }
            Op::Requeue(picks) => {
                let ids: Option<Vec<u64>> = picks
                    .as_ref()
                    .map(|p| p.iter().map(|&pick| self.model.target(pick)).collect());
                let got = self.q().requeue(ids.as_deref()).map_err(classify);
                assert_eq!(
                    got,
                    self.model.requeue(ids.as_deref(), now),
                    "requeue {ids:?}"
                );
            }
            Op::Purge(picks) => {
                let ids: Option<Vec<u64>> = picks
                    .as_ref()
                    .map(|p| p.iter().map(|&pick| self.model.target(pick)).collect());
                let got = self.q().purge(ids.as_deref()).map_err(classify);
                assert_eq!(got, self.model.purge(ids.as_deref()), "purge {ids:?}");
            }
        }
    }

    /// Everything observable matches the model.
    fn check(&self) {
        let now = self.clock.now_ms();
        let q = self.q();
        let s = q.stats();
        assert_eq!(
            (s.ready, s.leased, s.delayed, s.dead, s.bytes),
            self.model.counts(now),
            "stats"
        );
        assert_eq!(s.checkpoint_error, None);
        assert_eq!(q.peek(usize::MAX), self.model.peek(), "peek");
        assert_eq!(q.dead_letters(), self.model.dead_letters(), "dead letters");
    }
}

fn run(ops: &[Op]) {
    let mut h = Harness::new();
    for (i, op) in ops.iter().enumerate() {
        let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            h.step(op);
            h.check();
        }));
        if let Err(panic) = step {
            eprintln!(
                "failed at step {i}: {op:?} (clock at T0+{})",
                h.clock.now_ms() - T0
            );
            std::panic::resume_unwind(panic);
        }
    }
    // Whatever happened, a last restart gives back the same queue.
    h.step(&Op::Restart);
    h.check();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn queue_matches_the_model(ops in prop::collection::vec(op(), 1..120)) {
        run(&ops);
    }
}

/// A fixed sequence that exercises every operation once, so the model test
/// has a deterministic part that always covers the rare paths.
#[test]
fn queue_matches_the_model_on_a_fixed_sequence() {
    use Op::*;
    run(&[
        Push {
            delay: 0,
            key: Some(0),
        },
        Push {
            delay: 500,
            key: None,
        },
        Push {
            delay: 0,
            key: Some(0),
        },
        PushBatch {
            n: 3,
            key: Some(1),
            bad: false,
        },
        PushBatch {
            n: 3,
            key: Some(2),
            bad: true,
        },
        BadPush(1),
        Pop { lease: 100 },
        Pop { lease: 0 },
        PopBatch { max: 2, lease: 50 },
        Advance(50),
        Ack {
            pick: Pick::Leased(1),
            tok: Tok::Current,
        },
        Ack {
            pick: Pick::Leased(2),
            tok: Tok::Current,
        },
        Extend {
            pick: Pick::Leased(0),
            tok: Tok::Current,
            lease: 500,
        },
        Restart,
        Advance(100),
        PopWaitNow { lease: 1 },
        Nack {
            pick: Pick::Leased(0),
            tok: Tok::Old(0),
            delay: 0,
        },
        Nack {
            pick: Pick::Leased(0),
            tok: Tok::Current,
            delay: 0,
        },
        Pop { lease: 1 },
        Advance(1),
        Pop { lease: 1 },
        Advance(1),
        Checkpoint,
        Pop { lease: 1 },
        Advance(1),
        Pop { lease: 1 },
        Restart,
        Requeue(Some(vec![Pick::Dead(0)])),
        Purge(Some(vec![Pick::Any(1), Pick::Dead(0)])),
        Advance(2000),
        Push {
            delay: 0,
            key: Some(0),
        },
        Advance(1),
        Push {
            delay: 0,
            key: Some(0),
        },
        Requeue(None),
        Purge(None),
        Restart,
    ]);
}
