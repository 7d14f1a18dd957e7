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
        if let Some(ids) = ids {
            // Every named message settled at once, then all checked under
            // one hold of the lock.
            while ids.iter().any(|id| inner.pending.contains(id)) {
                inner = self.wait(inner);
            }
        }
        let ids = inner
            .state
            .dead_letter_ids(ids, |id| inner.pending.contains(&id))?;
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
            match message.place.state_at(now) {
                MessageState::Ready => stats.ready += 1,
                MessageState::Delayed => stats.delayed += 1,
                MessageState::Leased => stats.leased += 1,
                MessageState::Dead => stats.dead += 1,
            }
        }
        stats
    }

    /// The dead letters that a requeue or a purge of `ids` (every dead
    /// letter for `None`) changes, ascending: the rule [`Queue::requeue`]
    /// and [`Queue::purge`] apply, for a dry run to show what they would
    /// do. An id that is no message, or no dead letter, fails the whole
    /// call.
    ///
    /// ```
    /// use mini_engine::queue::{QueueError, QueueState};
    /// let state = QueueState::default();
    /// assert_eq!(state.select_dead_letters(None)?, Vec::<u64>::new());
    /// assert!(matches!(
    ///     state.select_dead_letters(Some(&[7])),
    ///     Err(QueueError::UnknownMessage { id: 7 })
    /// ));
    /// # Ok::<(), QueueError>(())
    /// ```
    pub fn select_dead_letters(&self, ids: Option<&[u64]>) -> Result<Vec<u64>, QueueError> {
        self.dead_letter_ids(ids, |_| false)
    }

    /// [`QueueState::select_dead_letters`], leaving out of "every dead
    /// letter" the messages `busy` says are being changed.
    fn dead_letter_ids(
        &self,
        ids: Option<&[u64]>,
        busy: impl Fn(u64) -> bool,
    ) -> Result<Vec<u64>, QueueError> {
        let Some(ids) = ids else {
            return Ok(self
                .messages()
                .filter(|m| m.place == Place::Dead && !busy(m.id))
                .map(|m| m.id)
                .collect());
        };
        for &id in ids {
            match self.get(id).map(|m| &m.place) {
                None => return Err(QueueError::UnknownMessage { id }),
                Some(Place::Dead) => {}
                Some(_) => return Err(QueueError::NotDead { id }),
            }
        }
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }
}

/// Where a message is at a moment: what `stats` counts and what the
/// operator's tools show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageState {
    /// Deliverable now (a lease that ran out included).
    Ready,
    /// Pushed or nacked with a delay that has not passed.
    Delayed,
    /// Delivered, the lease running.
    Leased,
    /// In the dead letters.
    Dead,
}

impl MessageState {
    /// Its name in the tools' output: `ready`, `delayed`, `leased`, `dead`.
    pub fn name(self) -> &'static str {
        match self {
            MessageState::Ready => "ready",
            MessageState::Delayed => "delayed",
            MessageState::Leased => "leased",
            MessageState::Dead => "dead",
        }
    }
}

impl Place {
    /// Where a message in this place is at `now` (ms).
    ///
    /// ```
    /// use mini_engine::queue::{MessageState, Place};
    /// assert_eq!(Place::Ready { avail: 10 }.state_at(5), MessageState::Delayed);
    /// assert_eq!(Place::Ready { avail: 10 }.state_at(10), MessageState::Ready);
    /// let leased = Place::Leased { token: "t".into(), deadline: 10 };
    /// assert_eq!((leased.state_at(5), leased.state_at(10)), (MessageState::Leased, MessageState::Ready));
    /// ```
    pub fn state_at(&self, now: u64) -> MessageState {
        match self {
            Place::Ready { avail } if *avail > now => MessageState::Delayed,
            Place::Leased { deadline, .. } if *deadline > now => MessageState::Leased,
            Place::Ready { .. } | Place::Leased { .. } => MessageState::Ready,
            Place::Dead => MessageState::Dead,
        }
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
