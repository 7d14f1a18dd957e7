//! A queue's push-batches: one JetStream atomic batch, all stored or none,
//! and what the servers have of a batch whose answer was lost or whose
//! dedup keys were pushed before.
//!
//! An atomic batch holding a `Nats-Msg-Id` the stream has seen within its
//! duplicate window is refused whole (ADR-50). Such a batch is either this
//! batch sent again after a lost answer (stored: every id is known), or one
//! whose dedup keys were pushed before. Either way the host asks the stream
//! which ids it has ([`Inner::stored_seq`]: a batch that cannot be stored)
//! and sends the rest again as one batch.

use async_nats::HeaderMap;
use async_nats::jetstream::context::PublishError;
use async_nats::jetstream::{self, ErrorCode};

use super::{Inner, JsPush, JsQueue, Outgoing, nonce};
use crate::fence::refused;
use crate::{JsError, MAX_BATCH};

/// How one try of a batch ended, when it did not store it.
enum Failed {
    /// Some message's `Nats-Msg-Id` is stored already.
    Duplicate,
    /// Not stored, and sending it again would not change that.
    Refused(JsError),
    /// Stored or not: the servers did not say.
    Unclear(String),
}

impl JsQueue {
    /// Pushes `messages` as one atomic batch: all stored (on a quorum, at
    /// consecutive seqs) before it returns their ids, in order, or none. A
    /// message whose dedup key was pushed within the duplicate window (or
    /// earlier in the batch) stores nothing and gets the first message's id,
    /// as [`JsQueue::push`]. At most [`MAX_BATCH`] messages.
    pub async fn push_batch(&self, messages: Vec<JsPush>) -> Result<Vec<u64>, JsError> {
        if messages.is_empty() {
            return Err(JsError::InvalidArgument("empty batch".into()));
        }
        if messages.len() > MAX_BATCH {
            return Err(JsError::BatchTooLong {
                max: MAX_BATCH,
                len: messages.len(),
            });
        }
        let inner = &self.inner;
        let outgoing: Vec<Outgoing> = messages
            .into_iter()
            .map(|m| inner.outgoing(m.payload, m.dedup_key.as_deref(), m.delay))
            .collect();
        // A key twice in the batch: the later message is the earlier one.
        let same_as: Vec<Option<usize>> = outgoing
            .iter()
            .enumerate()
            .map(|(i, o)| outgoing[..i].iter().position(|e| e.msg_id == o.msg_id))
            .collect();
        let mut ids: Vec<Option<u64>> = vec![None; outgoing.len()];
        let deadline = tokio::time::Instant::now() + inner.retry_for;
        let mut pause = std::time::Duration::from_millis(25);
        loop {
            let send: Vec<usize> = (0..outgoing.len())
                .filter(|&i| ids[i].is_none() && same_as[i].is_none())
                .collect();
            if send.is_empty() {
                break;
            }
            let batch: Vec<&Outgoing> = send.iter().map(|&i| &outgoing[i]).collect();
            let failed = match inner.publish_atomic(&batch).await {
                Ok(last) => {
                    let first = last + 1 - send.len() as u64;
                    for (k, &i) in send.iter().enumerate() {
                        ids[i] = Some(first + k as u64);
                    }
                    break;
                }
                Err(Failed::Refused(e)) => return Err(e),
                Err(Failed::Duplicate) => {
                    let mut known = 0;
                    for &i in &send {
                        if let Some(seq) = inner.stored_seq(&outgoing[i]).await? {
                            ids[i] = Some(seq);
                            known += 1;
                        }
                    }
                    if known > 0 {
                        continue;
                    }
                    // Refused for a duplicate, yet none is: the window moved
                    // on meanwhile. Sending again settles it.
                    "a batch refused for a duplicate holds none".to_owned()
                }
                Err(Failed::Unclear(e)) => e,
            };
            if tokio::time::Instant::now() + pause >= deadline {
                return Err(JsError::Connect(format!(
                    "{} did not answer whether it stored the batch: {failed}",
                    inner.work_names.stream
                )));
            }
            tracing::debug!(error = %failed, "a push-batch got no answer; sending it again");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_millis(500));
        }
        (0..ids.len())
            .map(|i| {
                ids[same_as[i].unwrap_or(i)]
                    .ok_or_else(|| JsError::Server("a pushed message got no id".into()))
            })
            .collect()
    }
}

impl Inner {
    /// One try of `batch` as an atomic batch (a new batch id each try);
    /// the seq of its last message once stored.
    async fn publish_atomic(&self, batch: &[&Outgoing]) -> Result<u64, Failed> {
        let batch_id = format!("push-batch-{}", nonce());
        let client = self.context.client();
        let (last, rest) = batch
            .split_last()
            .ok_or_else(|| Failed::Refused(JsError::InvalidArgument("empty batch".into())))?;
        let with_batch = |o: &Outgoing, i: usize| {
            let mut headers = o.headers.clone();
            headers.insert("Nats-Batch-Id", batch_id.as_str());
            headers.insert("Nats-Batch-Sequence", (i + 1).to_string().as_str());
            headers
        };
        for (i, o) in rest.iter().enumerate() {
            client
                .publish_with_headers(o.subject.clone(), with_batch(o, i), o.payload.clone())
                .await
                .map_err(|e| match e.kind() {
                    async_nats::client::PublishErrorKind::MaxPayloadExceeded => {
                        Failed::Refused(JsError::TooLarge(format!(
                            "JetStream refused the push-batch: message {} of it: {e}",
                            i + 1
                        )))
                    }
                    _ => Failed::Unclear(e.to_string()),
                })?;
        }
        let mut headers = with_batch(last, rest.len());
        headers.insert("Nats-Batch-Commit", "1");
        let ack = async {
            self.context
                .publish_with_headers(last.subject.clone(), headers, last.payload.clone())
                .await?
                .await
        };
        match ack.await {
            Ok(ack) => Ok(ack.sequence),
            Err(e)
                if error_code(&e) == Some(ErrorCode::ATOMIC_PUBLISH_CONTAINS_DUPLICATE_MESSAGE) =>
            {
                Err(Failed::Duplicate)
            }
            Err(e) => match refused(&e, &self.work_names.stream) {
                Some(refusal) => Err(Failed::Refused(refusal)),
                None => Err(Failed::Unclear(e.to_string())),
            },
        }
    }

    /// The seq the stream stored `push`'s `Nats-Msg-Id` at within its
    /// duplicate window, if it did. The servers check what a publish
    /// expects before its `Nats-Msg-Id`, so a single publish cannot ask
    /// without storing; a batch can: `push`'s id, then a message expecting
    /// a seq no subject reaches. The batch is refused either way, for the
    /// duplicate if there is one. A duplicate's seq is then the answer to
    /// `push` sent alone (a duplicate stores nothing; should the window
    /// have passed in between, it is a push of its own).
    async fn stored_seq(&self, push: &Outgoing) -> Result<Option<u64>, JsError> {
        let ask = || async {
            let batch_id = format!("probe-{}", nonce());
            let mut first = HeaderMap::new();
            first.insert("Nats-Msg-Id", push.msg_id.as_str());
            first.insert("Nats-Batch-Id", batch_id.as_str());
            first.insert("Nats-Batch-Sequence", "1");
            self.context
                .client()
                .publish_with_headers(push.subject.clone(), first, bytes::Bytes::new())
                .await
                .map_err(|e| e.to_string())?;
            let mut last = HeaderMap::new();
            last.insert("Nats-Batch-Id", batch_id.as_str());
            last.insert("Nats-Batch-Sequence", "2");
            last.insert("Nats-Batch-Commit", "1");
            last.insert(
                "Nats-Expected-Last-Subject-Sequence",
                u64::MAX.to_string().as_str(),
            );
            let answer = async {
                self.context
                    .publish_with_headers(push.subject.clone(), last, bytes::Bytes::new())
                    .await?
                    .await
            };
            match answer.await {
                Err(e) => match error_code(&e) {
                    Some(ErrorCode::ATOMIC_PUBLISH_CONTAINS_DUPLICATE_MESSAGE) => Ok(true),
                    Some(ErrorCode::STREAM_WRONG_LAST_SEQUENCE)
                    | Some(ErrorCode::STREAM_WRONG_LAST_SEQUENCE_CONSTANT) => Ok(false),
                    _ => Err(e.to_string()),
                },
                Ok(ack) => Err(format!(
                    "a probe expecting an unreachable seq was stored at seq {}",
                    ack.sequence
                )),
            }
        };
        let stored = crate::retry_unless(self.retry_for, ask, |_: &String| None::<()>)
            .await
            .map_err(|e| {
                JsError::Connect(format!(
                    "{} did not say whether it holds a pushed message: {e}",
                    self.work_names.stream
                ))
            })?;
        if !stored {
            return Ok(None);
        }
        let names = &self.work_names;
        let seq = self
            .publish(
                names,
                push.subject.clone(),
                push.headers.clone(),
                push.payload.clone(),
            )
            .await?;
        Ok(Some(seq))
    }
}

/// The JetStream error code of a publish error, if the servers gave one.
fn error_code(e: &PublishError) -> Option<ErrorCode> {
    std::error::Error::source(e)
        .and_then(|source| source.downcast_ref::<jetstream::Error>())
        .map(|error| error.error_code())
}
