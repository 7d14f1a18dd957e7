//! The round trips of a queue on the servers: a fetch that cannot hang,
//! a publish sent again after a lost answer, a removal that survives its
//! leader.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::stream::{
    DeleteMessageError, DeleteMessageErrorKind, RawMessageErrorKind,
};
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
/// What the servers answer a fetch whose next message is larger than its
/// `max_bytes` (status 409).
const MAX_BYTES_EXCEEDED: &str = "Exceeds MaxBytes";
/// What the servers answer when a fetch ended before its count (status
/// 409): what came is all there is for it.
const BATCH_COMPLETED: &str = "Batch Completed";

/// The largest seq or byte count the servers parse (a Go `int`).
const MAX_SEQ: u64 = i64::MAX as u64;

/// How many bytes a fetch may bring, as the servers count a message's size.
#[derive(Debug, Clone, Copy)]
pub(super) enum ByteLimit {
    /// No bound.
    Any,
    /// Within the bound, but the next message even if it alone is larger.
    AtLeastOne(usize),
    /// Within the bound (nothing if the next message alone is larger).
    Within(usize),
}

/// What one fetch brought.
enum Fetched {
    Messages(Vec<jetstream::Message>),
    /// Nothing: the next message alone is larger than the fetch's bytes.
    TooLarge,
}

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

    /// Up to `max` messages of `consumer` (the ready messages' or the
    /// delayed ones'), their sizes within `bytes` as the servers count them:
    /// those available now, or,
    /// with `wait`, as soon as one is (the servers hold the request open up
    /// to `wait`). A fetch the servers do not answer (its request lost with
    /// a leader) is given up after [`REQUEST_TIMEOUT`] past its wait and
    /// sent again: the client would wait for it forever. A message
    /// delivered to a fetch given up is leased to no one and comes back
    /// when the servers' ack wait ends.
    pub(super) async fn fetch(
        &self,
        consumer: &PullConsumer,
        max: usize,
        bytes: ByteLimit,
        wait: Option<Duration>,
    ) -> Result<Vec<jetstream::Message>, JsError> {
        let fetched = self.fetch_within(consumer, max, bytes, wait).await?;
        let ready_messages = std::ptr::eq(consumer, &self.consumer);
        if !fetched.is_empty() || wait.is_some() || !ready_messages || self.pending().await? == 0 {
            return Ok(fetched);
        }
        // Stored, and not yet in the consumer's view (a push that just
        // returned): wait for it, briefly, so that a pop sees the pushes
        // before it.
        self.fetch_within(consumer, max, bytes, Some(CATCH_UP))
            .await
    }

    /// [`Inner::fetch_once`] within `bytes`; when the next message alone is
    /// larger, that message alone if `bytes` says one always comes.
    async fn fetch_within(
        &self,
        consumer: &PullConsumer,
        max: usize,
        bytes: ByteLimit,
        wait: Option<Duration>,
    ) -> Result<Vec<jetstream::Message>, JsError> {
        let limit = match bytes {
            ByteLimit::Any => None,
            ByteLimit::AtLeastOne(limit) | ByteLimit::Within(limit) => Some(limit),
        };
        match self.fetch_once(consumer, max, limit, wait).await? {
            Fetched::Messages(messages) => Ok(messages),
            Fetched::TooLarge if matches!(bytes, ByteLimit::AtLeastOne(_)) => {
                match self.fetch_once(consumer, 1, None, wait).await? {
                    Fetched::Messages(messages) => Ok(messages),
                    Fetched::TooLarge => Ok(Vec::new()),
                }
            }
            Fetched::TooLarge => Ok(Vec::new()),
        }
    }

    /// Messages stored and not yet delivered, as the consumer's leader
    /// counts them from the stream.
    async fn pending(&self) -> Result<u64, JsError> {
        Ok(self.consumer_info(&self.consumer).await?.num_pending)
    }

    /// `consumer`'s info, asked until its leader answers.
    pub(super) async fn consumer_info(
        &self,
        consumer: &PullConsumer,
    ) -> Result<consumer::Info, JsError> {
        retry(self.retry_for, || {
            let mut consumer = consumer.clone();
            async move { consumer.info().await.cloned() }
        })
        .await
        .map_err(|e| JsError::Connect(format!("no answer about the queue's consumer: {e}")))
    }

    /// `stream`'s (the work queue's, the dead letters') info, asked until
    /// its leader answers.
    pub(super) async fn stream_info(
        &self,
        stream: &stream::Stream,
    ) -> Result<stream::Info, JsError> {
        retry(self.retry_for, || {
            let mut stream = stream.clone();
            async move { stream.info().await.cloned() }
        })
        .await
        .map_err(|e| JsError::Connect(format!("no answer about a stream of the queue: {e}")))
    }

    /// Whether the work stream holds a message at seq `id`.
    pub(super) async fn in_work_queue(&self, id: u64) -> Result<bool, JsError> {
        if id == 0 || id > MAX_SEQ {
            return Ok(false);
        }
        let found = retry(self.retry_for, || async {
            match self.work.get_raw_message(id).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await;
        found.map_err(|e| {
            JsError::Connect(format!(
                "cannot look up message {id} of {}: {e}",
                self.work_names.stream
            ))
        })
    }

    async fn fetch_once(
        &self,
        consumer: &PullConsumer,
        max: usize,
        max_bytes: Option<usize>,
        wait: Option<Duration>,
    ) -> Result<Fetched, JsError> {
        // The servers parse a Go `int`.
        let max_bytes = max_bytes.filter(|b| (*b as u64) < MAX_SEQ);
        let fetched = retry(self.retry_for, || async {
            let fetch = async {
                let mut batch = match wait {
                    None => {
                        let fetch = consumer.fetch().max_messages(max);
                        let fetch = match max_bytes {
                            Some(b) => fetch.max_bytes(b),
                            None => fetch,
                        };
                        fetch.messages().await
                    }
                    Some(wait) => {
                        let batch = consumer.batch().max_messages(max).expires(wait);
                        let batch = match max_bytes {
                            Some(b) => batch.max_bytes(b),
                            None => batch,
                        };
                        batch.messages().await
                    }
                }
                .map_err(|e| e.to_string())?;
                let mut messages = Vec::new();
                while let Some(message) = batch.next().await {
                    match message {
                        Ok(message) => messages.push(message),
                        Err(e) if e.to_string().contains(MAX_BYTES_EXCEEDED) => {
                            if messages.is_empty() {
                                return Ok(Fetched::TooLarge);
                            }
                            break;
                        }
                        Err(e) if e.to_string().contains(BATCH_COMPLETED) => break,
                        // What came before the error is leased: handed out.
                        Err(_) if !messages.is_empty() => break,
                        Err(e) => return Err(e.to_string()),
                    }
                    if wait.is_some() {
                        // One is enough: what a wait is for.
                        break;
                    }
                }
                Ok::<_, String>(Fetched::Messages(messages))
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

    /// Publishes to `subject` of `names`' stream and waits for the stream to store it;
    /// returns its seq (the first message's, for a duplicate). `headers`
    /// carry a `Nats-Msg-Id`: a publish whose answer was lost (a leader
    /// killed, an election) is sent again until the stream answers, and
    /// the duplicate window keeps it once.
    pub(super) async fn publish(
        &self,
        names: &StreamName,
        subject: String,
        headers: HeaderMap,
        payload: Bytes,
    ) -> Result<u64, JsError> {
        let ack = retry_unless(
            self.retry_for,
            || async {
                self.context
                    .publish_with_headers(subject.clone(), headers.clone(), payload.clone())
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
