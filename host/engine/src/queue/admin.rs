//! The operator's side of a queue: looking at messages, dead letters,
//! counts.

use super::fold::{Message, Place, QueueRecord};
use super::{MessageInfo, Queue, QueueError, QueueState, QueueStats};

impl Queue {
    /// Up to `max` messages in delivery order (ready first, then delayed and
    /// leased ones by the time they become deliverable), leasing nothing.
    pub fn peek(&self, max: usize) -> Vec<MessageInfo> {
        self.lock().state.peek(max)
    }

    /// The dead letters, by id.
    pub fn dead_letters(&self) -> Vec<MessageInfo> {
        self.lock().state.dead_letters()
    }

    /// Up to `max` dead letters with ids from `from_id` on, by id, stopping
    /// before their payloads pass `max_bytes` (at least one is returned if
    /// there is one): a page a caller can take in one reply.
    pub fn dead_letters_page(
        &self,
        from_id: u64,
        max: usize,
        max_bytes: usize,
    ) -> Vec<MessageInfo> {
        let inner = self.lock();
        let mut page = Vec::new();
        let mut bytes = 0usize;
        for message in inner.state.messages_from(from_id) {
            if page.len() >= max {
                break;
            }
            if message.place != Place::Dead {
                continue;
            }
            let size = message.payload.get().len();
            if !page.is_empty() && bytes.saturating_add(size) > max_bytes {
                break;
            }
            bytes = bytes.saturating_add(size);
            page.push(info(message));
        }
        page
    }

    /// Puts dead letters back in the queue (available now, attempts reset):
    /// the ones in `ids`, or all of them for `None`. Returns how many.
    pub fn requeue(&self, ids: Option<&[u64]>) -> Result<usize, QueueError> {
        let avail = self.now();
        self.dead_letter_change(ids, |id| QueueRecord::Requeue { id, avail })
    }

    /// Deletes dead letters: the ones in `ids`, or all of them for `None`.
    /// Returns how many.
    pub fn purge(&self, ids: Option<&[u64]>) -> Result<usize, QueueError> {
        self.dead_letter_change(ids, |id| QueueRecord::Purge { id })
    }

    fn dead_letter_change(
        &self,
        ids: Option<&[u64]>,
        record: impl Fn(u64) -> QueueRecord,
    ) -> Result<usize, QueueError> {
        let mut inner = self.lock();
        let ids: Vec<u64> = match ids {
            Some(ids) => {
                // Every named message settled at once, then all checked
                // under one hold of the lock.
                while ids.iter().any(|id| inner.pending.contains(id)) {
                    inner = self.wait(inner);
                }
                for &id in ids {
                    match inner.state.get(id).map(|m| &m.place) {
                        None => return Err(QueueError::UnknownMessage { id }),
                        Some(Place::Dead) => {}
                        Some(_) => return Err(QueueError::NotDead { id }),
                    }
                }
                let mut ids = ids.to_vec();
                ids.sort_unstable();
                ids.dedup();
                ids
            }
            None => inner
                .state
                .messages()
                .filter(|m| m.place == Place::Dead && !inner.pending.contains(&m.id))
                .map(|m| m.id)
                .collect(),
        };
        if ids.is_empty() {
            return Ok(0);
        }
        let count = ids.len();
        self.change(inner, ids.into_iter().map(record).collect())?;
        Ok(count)
    }

    /// How many messages are where, now.
    pub fn stats(&self) -> QueueStats {
        let inner = self.lock();
        QueueStats {
            journal_bytes: self.log.journal().size_bytes(),
            checkpoint_error: inner.checkpoint_error.clone(),
            snapshot_limit: self.snapshot_limit(),
            ..inner.state.stats(self.now())
        }
    }
}

impl QueueState {
    /// Up to `max` messages in delivery order (see [`Queue::peek`]).
    pub fn peek(&self, max: usize) -> Vec<MessageInfo> {
        self.by_visibility()
            .filter_map(|(_, id)| self.get(id))
            .take(max)
            .map(info)
            .collect()
    }

    /// The dead letters, by id.
    pub fn dead_letters(&self) -> Vec<MessageInfo> {
        self.messages()
            .filter(|m| m.place == Place::Dead)
            .map(info)
            .collect()
    }

    /// How many messages are where at `now` (ms); the journal's size is not
    /// known here (0).
    pub fn stats(&self, now: u64) -> QueueStats {
        let mut stats = QueueStats {
            bytes: self.payload_bytes(),
            snapshot_bytes: self.snapshot_bound(),
            ..QueueStats::default()
        };
        for message in self.messages() {
            match &message.place {
                Place::Ready { avail } if *avail > now => stats.delayed += 1,
                Place::Leased { deadline, .. } if *deadline > now => stats.leased += 1,
                Place::Ready { .. } | Place::Leased { .. } => stats.ready += 1,
                Place::Dead => stats.dead += 1,
            }
        }
        stats
    }
}

fn info(message: &Message) -> MessageInfo {
    MessageInfo {
        id: message.id,
        payload: message.payload.get().to_owned(),
        attempts: message.attempts,
        enqueued_at: message.at,
        place: message.place.clone(),
    }
}
