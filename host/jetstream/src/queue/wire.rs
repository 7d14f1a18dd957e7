//! The round trips of a queue on the servers: a fetch that cannot hang,
//! a publish sent again after a lost answer, a removal that survives its
//! leader.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::stream::{DeleteMessageError, DeleteMessageErrorKind};
use async_nats::jetstream::{self, ErrorCode, consumer, stream};
use bytes::Bytes;
use futures_util::StreamExt;

use super::Inner;
use crate::fence::refused;
use crate::names::StreamName;
use crate::{JsError, REQUEST_TIMEOUT, retry, retry_unless};

/// How long a pop waits for messages stored but not yet in the consumer's
/// view.
const CATCH_UP: Duration = Duration::from_millis(500);

impl Inner {
    /// Takes `message` off the work queue for good: first a delete of its
    /// seq, which the stream's replicas commit before the leader answers
    /// (an ack alone is answered by the consumer's leader before its
    /// replicas have it: with that leader killed, the message would be
    /// delivered again), then its ack, which only clears it from the
    /// consumer's pending at once (if lost, the consumer passes over the
    /// deleted message when its lease ends).
    pub(super) async fn remove(&self, message: &jetstream::Message) -> Result<(), JsError> {
        let seq = message
            .info()
            .map_err(|e| JsError::Server(format!("a delivery without its info: {e}")))?
            .stream_sequence;
        let gone = |e: &DeleteMessageError| {
            matches!(e.kind(), DeleteMessageErrorKind::JetStream(error)
                if error.error_code() == ErrorCode::NO_MESSAGE_FOUND)
            .then_some(())
        };
        match retry_unless(self.retry_for, || self.work.delete_message(seq), gone).await {
            Ok(_) => {}
            // Deleted by an earlier try whose answer was lost.
            Err(e) if gone(&e).is_some() => {}
            Err(e) => {
                return Err(JsError::Connect(format!(
                    "cannot delete message {seq} of {}: {e}",
                    self.work_names.stream
                )));
            }
        }
        let _ = tokio::time::timeout(REQUEST_TIMEOUT, message.double_ack()).await;
        Ok(())
    }

    /// Up to `max` messages of the consumer: those available now, or, with
    /// `wait`, as soon as one is (the servers hold the request open up to
    /// `wait`). A fetch the servers do not answer (its request lost with a
    /// leader) is given up after [`REQUEST_TIMEOUT`] past its wait and sent
    /// again: the client would wait for it forever. A message delivered to
    /// a fetch given up is leased to no one and comes back when its lease
    /// ends.
    pub(super) async fn fetch(
        &self,
        max: usize,
        wait: Option<Duration>,
    ) -> Result<Vec<jetstream::Message>, JsError> {
        let fetched = self.fetch_once(max, wait).await?;
        if !fetched.is_empty() || wait.is_some() || self.pending().await? == 0 {
            return Ok(fetched);
        }
        // Stored, and not yet in the consumer's view (a push that just
        // returned): wait for it, briefly, so that a pop sees the pushes
        // before it.
        self.fetch_once(max, Some(CATCH_UP)).await
    }

    /// Messages stored and not yet delivered, as the consumer's leader
    /// counts them from the stream.
    async fn pending(&self) -> Result<u64, JsError> {
        Ok(self.consumer_info().await?.num_pending)
    }

    /// The shared consumer's info, asked until its leader answers.
    pub(super) async fn consumer_info(&self) -> Result<consumer::Info, JsError> {
        retry(self.retry_for, || {
            let mut consumer = self.consumer.clone();
            async move { consumer.info().await.cloned() }
        })
        .await
        .map_err(|e| JsError::Connect(format!("no answer about the queue's consumer: {e}")))
    }

    /// The dead-letter stream's state, asked until its leader answers.
    pub(super) async fn dead_state(&self) -> Result<stream::State, JsError> {
        retry(self.retry_for, || {
            let mut dead = self.dead.clone();
            async move { dead.info().await.map(|info| info.state.clone()) }
        })
        .await
        .map_err(|e| JsError::Connect(format!("no answer about the dead letters: {e}")))
    }

    async fn fetch_once(
        &self,
        max: usize,
        wait: Option<Duration>,
    ) -> Result<Vec<jetstream::Message>, JsError> {
        let fetched = retry(self.retry_for, || async {
            let fetch = async {
                let mut batch = match wait {
                    None => self.consumer.fetch().max_messages(max).messages().await,
                    Some(wait) => {
                        self.consumer
                            .batch()
                            .max_messages(max)
                            .expires(wait)
                            .messages()
                            .await
                    }
                }
                .map_err(|e| e.to_string())?;
                let mut messages = Vec::new();
                while let Some(message) = batch.next().await {
                    messages.push(message.map_err(|e| e.to_string())?);
                    if wait.is_some() {
                        // One is enough: what a wait is for.
                        break;
                    }
                }
                Ok::<_, String>(messages)
            };
            let bound = REQUEST_TIMEOUT + wait.unwrap_or_default();
            tokio::time::timeout(bound, fetch)
                .await
                .map_err(|_| format!("no answer to a fetch within {bound:?}"))?
        })
        .await;
        fetched.map_err(|e| {
            JsError::Connect(format!("cannot fetch from {}: {e}", self.work_names.stream))
        })
    }

    /// Publishes to `names`' subject and waits for the stream to store it;
    /// returns its seq (the first message's, for a duplicate). `headers`
    /// carry a `Nats-Msg-Id`: a publish whose answer was lost (a leader
    /// killed, an election) is sent again until the stream answers, and
    /// the duplicate window keeps it once.
    pub(super) async fn publish(
        &self,
        names: &StreamName,
        headers: HeaderMap,
        payload: Bytes,
    ) -> Result<u64, JsError> {
        let ack = retry_unless(
            self.retry_for,
            || async {
                self.context
                    .publish_with_headers(names.subject.clone(), headers.clone(), payload.clone())
                    .await?
                    .await
            },
            |e| refused(e, &names.stream),
        )
        .await;
        ack.map(|ack| ack.sequence).map_err(|e| {
            refused(&e, &names.stream).unwrap_or_else(|| {
                JsError::Connect(format!(
                    "{} did not answer whether it stored the message: {e}",
                    names.stream
                ))
            })
        })
    }
}
