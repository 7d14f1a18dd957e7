//! A queue's dead letters: a stream of their own, each message with its
//! id, deliveries and enqueue time in headers; listed, requeued, purged.

use async_nats::HeaderMap;
use async_nats::jetstream;

use super::{ATTEMPTS, ENQUEUED, ID, Inner, JsQueue, header_u64};
use crate::{JsError, retry};

/// A dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsDeadLetter {
    /// The message's id.
    pub id: u64,
    /// The payload.
    pub payload: String,
    /// How many times it was delivered.
    pub attempts: u32,
    /// When it was pushed (ms since the Unix epoch).
    pub enqueued_at: u64,
}

impl JsQueue {
    /// Up to `max` dead letters with ids from `from_id` on, by id.
    pub async fn dead_letters(
        &self,
        from_id: u64,
        max: usize,
    ) -> Result<Vec<JsDeadLetter>, JsError> {
        let mut all: Vec<JsDeadLetter> = self
            .inner
            .dead_messages()
            .await?
            .into_iter()
            .map(|(_, letter)| letter)
            .filter(|letter| letter.id >= from_id)
            .collect();
        all.sort_by_key(|letter| letter.id);
        all.truncate(max);
        Ok(all)
    }

    /// Puts dead letters back on the queue (available now, attempts from 0,
    /// id and enqueue time kept): those of `ids`, or all. Returns how many.
    /// An id of `ids` that is no dead letter is `not-found`, and nothing
    /// moves.
    pub async fn requeue(&self, ids: Option<&[u64]>) -> Result<u32, JsError> {
        let mut moved = 0;
        for (dead_seq, letter) in self.inner.named_dead_letters(ids).await? {
            let mut headers = HeaderMap::new();
            headers.insert(ID, letter.id.to_string().as_str());
            headers.insert(ENQUEUED, letter.enqueued_at.to_string().as_str());
            // Once, though a requeue dies between the two steps.
            headers.insert("Nats-Msg-Id", format!("requeue-{dead_seq}").as_str());
            let subject = self.inner.work_names.subject.clone();
            self.inner
                .publish(
                    &self.inner.work_names,
                    subject,
                    headers,
                    letter.payload.into(),
                )
                .await?;
            self.inner.delete_dead(dead_seq).await?;
            moved += 1;
        }
        Ok(moved)
    }

    /// Deletes dead letters: those of `ids`, or all. Returns how many. An
    /// id of `ids` that is no dead letter is `not-found`, and nothing is
    /// deleted.
    pub async fn purge(&self, ids: Option<&[u64]>) -> Result<u32, JsError> {
        let mut deleted = 0;
        for (dead_seq, _) in self.inner.named_dead_letters(ids).await? {
            self.inner.delete_dead(dead_seq).await?;
            deleted += 1;
        }
        Ok(deleted)
    }
}

impl Inner {
    /// The dead letters of `ids` (all for `None`), or `not-found` for the
    /// first id that is none.
    async fn named_dead_letters(
        &self,
        ids: Option<&[u64]>,
    ) -> Result<Vec<(u64, JsDeadLetter)>, JsError> {
        let all = self.dead_messages().await?;
        let Some(ids) = ids else {
            return Ok(all);
        };
        if let Some(missing) = ids
            .iter()
            .find(|id| !all.iter().any(|(_, letter)| letter.id == **id))
        {
            return Err(JsError::NotFound(format!(
                "message {missing} is not a dead letter"
            )));
        }
        Ok(all
            .into_iter()
            .filter(|(_, letter)| ids.contains(&letter.id))
            .collect())
    }

    /// Moves `message` (id `id`, delivered `attempts` times) to the dead
    /// letters.
    pub(super) async fn bury(
        &self,
        message: &jetstream::Message,
        id: u64,
        attempts: u32,
        headers: &HeaderMap,
    ) -> Result<(), JsError> {
        let mut dead = HeaderMap::new();
        dead.insert(ID, id.to_string().as_str());
        dead.insert(ATTEMPTS, attempts.to_string().as_str());
        let enqueued = header_u64(headers, ENQUEUED).unwrap_or(0);
        dead.insert(ENQUEUED, enqueued.to_string().as_str());
        let seq = message.info().map(|i| i.stream_sequence).unwrap_or(id);
        dead.insert("Nats-Msg-Id", format!("dead-{seq}").as_str());
        let subject = self.dead_names.subject.clone();
        self.publish(&self.dead_names, subject, dead, message.payload.clone())
            .await?;
        self.remove(message).await
    }

    /// Every dead letter, with its seq in the dead-letter stream.
    pub(super) async fn dead_messages(&self) -> Result<Vec<(u64, JsDeadLetter)>, JsError> {
        let state = self.stream_info(&self.dead).await?.state;
        let mut letters = Vec::new();
        if state.messages == 0 {
            return Ok(letters);
        }
        for seq in state.first_sequence..=state.last_sequence {
            let message = match self.dead.get_raw_message(seq).await {
                Ok(message) => message,
                // A gap: a dead letter requeued or purged.
                Err(e)
                    if e.kind()
                        == async_nats::jetstream::stream::RawMessageErrorKind::NoMessageFound =>
                {
                    continue;
                }
                Err(e) => {
                    return Err(JsError::Connect(format!(
                        "cannot read the dead letter at {seq} of {}: {e}",
                        self.dead_names.stream
                    )));
                }
            };
            let id = header_u64(&message.headers, ID).unwrap_or(0);
            letters.push((
                seq,
                JsDeadLetter {
                    id,
                    payload: String::from_utf8_lossy(&message.payload).into_owned(),
                    attempts: header_u64(&message.headers, ATTEMPTS)
                        .and_then(|a| u32::try_from(a).ok())
                        .unwrap_or(0),
                    enqueued_at: header_u64(&message.headers, ENQUEUED).unwrap_or(0),
                },
            ));
        }
        Ok(letters)
    }

    pub(super) async fn delete_dead(&self, seq: u64) -> Result<(), JsError> {
        retry(self.retry_for, || self.dead.delete_message(seq))
            .await
            .map(drop)
            .map_err(|e| {
                JsError::Connect(format!(
                    "cannot delete the dead letter at {seq} of {}: {e}",
                    self.dead_names.stream
                ))
            })
    }
}
