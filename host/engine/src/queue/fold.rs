//! A queue's state as the fold of its journal records: the records, the
//! messages, and the index pops take messages from.
//!
//! The fold never looks at the clock: every decision that depends on time
//! (a lease's deadline, a delay, which message a pop takes, dead-lettering)
//! is made by the live queue and written into the record, so replaying the
//! records gives the same state at any later time.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// One journal record of a queue: a change of its state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum QueueRecord {
    /// A message was pushed.
    Push {
        /// The message id (allocated in push order).
        id: u64,
        /// When it was pushed (ms since the Unix epoch).
        at: u64,
        /// When it becomes available (ms; later than `at` for a delay).
        avail: u64,
        /// Its deduplication key, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dedup: Option<String>,
        /// The payload (one JSON value).
        payload: Box<RawValue>,
    },
    /// A message was delivered with a lease.
    Lease {
        /// The message id.
        id: u64,
        /// The delivery attempt, from 1.
        attempt: u32,
        /// The lease token an ack, nack or extend must present.
        token: String,
        /// When the lease expires (ms).
        deadline: u64,
    },
    /// A delivered message was acknowledged: it is gone.
    Ack {
        /// The message id.
        id: u64,
    },
    /// A delivered message was given back, available again at `avail`.
    Nack {
        /// The message id.
        id: u64,
        /// When it becomes available again (ms).
        avail: u64,
    },
    /// A lease was extended to a new deadline.
    Extend {
        /// The message id.
        id: u64,
        /// The new deadline (ms).
        deadline: u64,
    },
    /// A message reached the maximum number of deliveries.
    Dead {
        /// The message id.
        id: u64,
    },
    /// A dead letter was put back in the queue, its attempts reset.
    Requeue {
        /// The message id.
        id: u64,
        /// When it becomes available (ms).
        avail: u64,
    },
    /// A dead letter was deleted.
    Purge {
        /// The message id.
        id: u64,
    },
}

impl QueueRecord {
    /// The id of the message the record changes.
    pub fn id(&self) -> u64 {
        match self {
            QueueRecord::Push { id, .. }
            | QueueRecord::Lease { id, .. }
            | QueueRecord::Ack { id }
            | QueueRecord::Nack { id, .. }
            | QueueRecord::Extend { id, .. }
            | QueueRecord::Dead { id }
            | QueueRecord::Requeue { id, .. }
            | QueueRecord::Purge { id } => *id,
        }
    }
}

/// Where a message is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Place {
    /// Waiting to be delivered from `avail` (ms) on.
    Ready {
        /// When it becomes available.
        avail: u64,
    },
    /// Delivered; redelivered when the lease expires at `deadline` (ms).
    Leased {
        /// The current lease token.
        token: String,
        /// When the lease expires.
        deadline: u64,
    },
    /// In the dead letters.
    Dead,
}

/// A message in the queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// Its id.
    pub id: u64,
    /// The payload (one JSON value).
    pub payload: Box<RawValue>,
    /// When it was pushed (ms).
    pub at: u64,
    /// How many times it was delivered.
    pub attempts: u32,
    /// Where it is.
    pub place: Place,
    /// Its deduplication key, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup: Option<String>,
}

impl Message {
    /// When the message can be delivered (again): a ready message's
    /// availability, a leased one's deadline; `None` for a dead letter.
    pub fn visible_at(&self) -> Option<u64> {
        match &self.place {
            Place::Ready { avail } => Some(*avail),
            Place::Leased { deadline, .. } => Some(*deadline),
            Place::Dead => None,
        }
    }
}

/// Why a record cannot be applied to the state (the journal does not fit
/// its snapshot, or was written by something else).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{record} of message {id}: {problem}")]
pub struct FoldError {
    /// The message the record names.
    pub id: u64,
    /// The kind of record (`push`, `lease`, `ack`, …).
    pub record: &'static str,
    /// What does not fit.
    pub problem: &'static str,
}

fn bound_of(message: &Message) -> u64 {
    message_snapshot_bound(message.payload.get().len(), message.dedup.as_deref())
}

/// The snapshot of a queue: its live messages and recent dedup keys.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSnapshot {
    /// The next id to allocate.
    pub next_id: u64,
    /// Every live message (ready, delayed, leased, dead), by id.
    pub messages: Vec<Message>,
    /// Deduplication keys seen: key → (message id, push time in ms).
    pub dedup: BTreeMap<String, (u64, u64)>,
}

/// The state of a queue: the fold of its records, with the index of
/// deliverable messages.
#[derive(Debug, Default)]
pub struct QueueState {
    next_id: u64,
    messages: BTreeMap<u64, Message>,
    dedup: BTreeMap<String, (u64, u64)>,
    /// (visible_at, id) of every message that is not a dead letter: a pop
    /// takes the first one whose time has come (FIFO among equal times).
    visible: BTreeSet<(u64, u64)>,
    bytes: u64,
    /// An upper bound of the bytes the snapshot of this state takes.
    snapshot_bytes: u64,
}

/// The most bytes a message takes in a snapshot besides its payload and
/// its dedup key: the largest id, times, attempt count and lease token,
/// with the JSON around them.
pub const MESSAGE_SNAPSHOT_OVERHEAD: u64 = 256;
/// The most bytes a dedup entry takes in a snapshot besides its key.
pub const DEDUP_SNAPSHOT_OVERHEAD: u64 = 64;

/// The most bytes a dedup key takes in a snapshot (JSON escapes a byte in
/// at most 6).
fn escaped(key: &str) -> u64 {
    6 * key.len() as u64
}

/// The most bytes `message` takes in a snapshot.
pub fn message_snapshot_bound(payload_len: usize, dedup: Option<&str>) -> u64 {
    payload_len as u64 + MESSAGE_SNAPSHOT_OVERHEAD + dedup.map_or(0, escaped)
}

/// The most bytes a dedup entry for `key` takes in a snapshot.
pub fn dedup_snapshot_bound(key: &str) -> u64 {
    escaped(key) + DEDUP_SNAPSHOT_OVERHEAD
}

/// The largest message id a queue gives out: ids run from 1 to here, an id
/// on disk outside that range is damage, and once they are used up pushes
/// are refused ([`QueueError::IdsExhausted`](super::QueueError::IdsExhausted)).
pub const MAX_ID: u64 = u64::MAX - 1;

impl QueueState {
    /// The state a snapshot holds.
    pub fn from_snapshot(snapshot: QueueSnapshot) -> QueueState {
        let mut state = QueueState {
            next_id: snapshot.next_id,
            snapshot_bytes: snapshot.dedup.keys().map(|k| dedup_snapshot_bound(k)).sum(),
            dedup: snapshot.dedup,
            ..QueueState::default()
        };
        for message in snapshot.messages {
            state.next_id = state.next_id.max(message.id.saturating_add(1));
            state.put(message);
        }
        state
    }

    /// The snapshot of this state (dedup keys older than `dedup_since` ms
    /// are dropped).
    pub fn to_snapshot(&self, dedup_since: u64) -> QueueSnapshot {
        QueueSnapshot {
            next_id: self.next_id,
            messages: self.messages.values().cloned().collect(),
            dedup: self
                .dedup
                .iter()
                .filter(|(_, (id, at))| *at >= dedup_since || self.messages.contains_key(id))
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        }
    }

    /// Applies one record.
    pub fn apply(&mut self, record: QueueRecord) -> Result<(), FoldError> {
        let id = record.id();
        match record {
            QueueRecord::Push {
                id,
                at,
                avail,
                dedup,
                payload,
            } => self.apply_push(Message {
                id,
                payload,
                at,
                attempts: 0,
                place: Place::Ready { avail },
                dedup,
            })?,
            QueueRecord::Lease {
                attempt,
                token,
                deadline,
                ..
            } => {
                self.not_dead(id, "lease")?;
                self.update(id, |message| {
                    message.attempts = attempt;
                    message.place = Place::Leased { token, deadline };
                });
            }
            QueueRecord::Ack { .. } => {
                self.leased(id, "ack")?;
                self.take(id);
            }
            QueueRecord::Nack { avail, .. } => {
                self.leased(id, "nack")?;
                self.update(id, |message| message.place = Place::Ready { avail });
            }
            QueueRecord::Extend { deadline, .. } => {
                self.leased(id, "extend")?;
                self.update(id, |message| {
                    if let Place::Leased { deadline: d, .. } = &mut message.place {
                        *d = deadline;
                    }
                });
            }
            QueueRecord::Dead { .. } => {
                self.not_dead(id, "dead")?;
                self.update(id, |message| message.place = Place::Dead);
            }
            QueueRecord::Requeue { avail, .. } => {
                self.dead(id, "requeue")?;
                self.update(id, |message| {
                    message.attempts = 0;
                    message.place = Place::Ready { avail };
                });
            }
            QueueRecord::Purge { .. } => {
                self.dead(id, "purge")?;
                self.take(id);
            }
        }
        Ok(())
    }

    /// Applies the push of `message`, which must be new.
    fn apply_push(&mut self, message: Message) -> Result<(), FoldError> {
        let id = message.id;
        if id == 0 || id > MAX_ID {
            return Err(FoldError {
                id,
                record: "push",
                problem: "the id is outside 1..=2^64-2",
            });
        }
        if self.messages.contains_key(&id) {
            return Err(FoldError {
                id,
                record: "push",
                problem: "the message exists already",
            });
        }
        self.next_id = self.next_id.max(id + 1);
        if let Some(key) = &message.dedup {
            self.insert_dedup(key.clone(), (id, message.at));
        }
        self.put(message);
        Ok(())
    }

    /// Changes message `id`, if it is live, and indexes it again (a change
    /// of place moves it in the index of deliverable messages).
    fn update(&mut self, id: u64, change: impl FnOnce(&mut Message)) {
        if let Some(mut message) = self.take(id) {
            change(&mut message);
            self.put(message);
        }
    }

    /// Message `id`, or the error of a `record` naming an unknown message.
    fn live(&self, id: u64, record: &'static str) -> Result<&Message, FoldError> {
        self.messages.get(&id).ok_or(FoldError {
            id,
            record,
            problem: "no such message",
        })
    }

    fn leased(&self, id: u64, record: &'static str) -> Result<(), FoldError> {
        match self.live(id, record)?.place {
            Place::Leased { .. } => Ok(()),
            _ => Err(FoldError {
                id,
                record,
                problem: "the message is not leased",
            }),
        }
    }

    fn not_dead(&self, id: u64, record: &'static str) -> Result<(), FoldError> {
        match self.live(id, record)?.place {
            Place::Dead => Err(FoldError {
                id,
                record,
                problem: "the message is a dead letter",
            }),
            _ => Ok(()),
        }
    }

    fn dead(&self, id: u64, record: &'static str) -> Result<(), FoldError> {
        match self.live(id, record)?.place {
            Place::Dead => Ok(()),
            _ => Err(FoldError {
                id,
                record,
                problem: "the message is not a dead letter",
            }),
        }
    }

    /// Removes message `id` (and its index entry), returning it.
    pub fn take(&mut self, id: u64) -> Option<Message> {
        let message = self.messages.remove(&id)?;
        if let Some(at) = message.visible_at() {
            self.visible.remove(&(at, id));
        }
        self.bytes -= message.payload.get().len() as u64;
        self.snapshot_bytes = self.snapshot_bytes.saturating_sub(bound_of(&message));
        Some(message)
    }

    /// Puts `message` in (replacing one with its id), indexed.
    pub fn put(&mut self, message: Message) {
        self.take(message.id);
        if let Some(at) = message.visible_at() {
            self.visible.insert((at, message.id));
        }
        self.bytes += message.payload.get().len() as u64;
        self.snapshot_bytes += bound_of(&message);
        self.messages.insert(message.id, message);
    }

    /// Message `id`, if it is live.
    pub fn get(&self, id: u64) -> Option<&Message> {
        self.messages.get(&id)
    }

    /// Every live message, by id.
    pub fn messages(&self) -> impl Iterator<Item = &Message> {
        self.messages.values()
    }

    /// The live messages with ids from `from_id` on, by id.
    pub fn messages_from(&self, from_id: u64) -> impl Iterator<Item = &Message> {
        self.messages.range(from_id..).map(|(_, m)| m)
    }

    /// Messages that are not dead letters, in delivery order:
    /// (visible_at, id).
    pub fn by_visibility(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.visible.iter().copied()
    }

    /// How many ids are left to give out (ids run from 1 to [`MAX_ID`]; a
    /// counter read from disk may be anywhere).
    pub fn ids_left(&self) -> u64 {
        let next = self.next_id.max(1);
        if next > MAX_ID { 0 } else { MAX_ID - next + 1 }
    }

    /// The id the next push gets; advances the counter. Check
    /// [`Self::ids_left`] first: past [`MAX_ID`] it gives [`MAX_ID`] + 1.
    pub fn allocate_id(&mut self) -> u64 {
        let id = self.next_id.max(1);
        self.next_id = id.saturating_add(1);
        id
    }

    /// The message a dedup key names, if it was pushed at or after `since`
    /// (ms) or is still live.
    pub fn dedup(&self, key: &str, since: u64) -> Option<u64> {
        self.dedup
            .get(key)
            .filter(|(id, at)| *at >= since || self.messages.contains_key(id))
            .map(|(id, _)| *id)
    }

    /// Records `key` for message `id` pushed at `at` (before the push is
    /// durable, so concurrent pushes with the same key agree).
    pub fn reserve_dedup(&mut self, key: String, id: u64, at: u64) {
        self.insert_dedup(key, (id, at));
    }

    fn insert_dedup(&mut self, key: String, entry: (u64, u64)) {
        let bound = dedup_snapshot_bound(&key);
        if self.dedup.insert(key, entry).is_none() {
            self.snapshot_bytes += bound;
        }
    }

    /// Forgets the dedup keys pushed before `since` (ms) whose message is
    /// gone.
    pub fn prune_dedup(&mut self, since: u64) {
        let messages = &self.messages;
        let mut freed = 0;
        self.dedup.retain(|key, (id, at)| {
            let keep = *at >= since || messages.contains_key(id);
            if !keep {
                freed += dedup_snapshot_bound(key);
            }
            keep
        });
        self.snapshot_bytes = self.snapshot_bytes.saturating_sub(freed);
    }

    /// Forgets a dedup key reserved for a push that failed.
    pub fn release_dedup(&mut self, key: &str, id: u64) {
        if self.dedup.get(key).is_some_and(|(i, _)| *i == id) {
            self.dedup.remove(key);
            self.snapshot_bytes = self
                .snapshot_bytes
                .saturating_sub(dedup_snapshot_bound(key));
        }
    }

    /// Bytes of the live payloads.
    pub fn payload_bytes(&self) -> u64 {
        self.bytes
    }

    /// An upper bound of the bytes [`QueueState::to_snapshot`] serializes
    /// to: a queue refuses pushes past what a checkpoint can hold.
    pub fn snapshot_bound(&self) -> u64 {
        self.snapshot_bytes
    }

    /// How many messages are live.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// True when no message is live.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}
