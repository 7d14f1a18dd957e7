//! One fenced round trip of a journal's writer, and how an append whose
//! answer was lost is resolved.
//!
//! Every append names the seq it expects the stream to end at
//! (`Nats-Expected-Last-Sequence`) and carries a write id of its own (the
//! header `Mini-Write` on its last message). A publish that fails without a
//! clear answer (a timeout, a leader killed, no responders while a new one
//! is elected) is never simply sent again: the writer waits for the stream
//! to answer and reads it. The stream ends where the writer expected: the
//! append is not there and is sent again, under the same fence. It ends at
//! the append's last seq with the write id: it is stored. Anything else:
//! another writer appended, and this handle is fenced off (`locked`). So
//! an acknowledged append is stored once, at the seqs it was told, and no
//! two writers interleave.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, ErrorCode};
use bytes::Bytes;

use crate::JsError;
use crate::journal::Inner;

const WRITE_ID: &str = "Mini-Write";

/// What reading the stream says about an append whose answer was lost.
enum Outcome {
    /// Stored at these seqs.
    Stored(u64),
    /// Not stored: send it again.
    Absent,
}

impl Inner {
    /// Appends `records` after `expected`, resolving a lost answer by
    /// reading the stream (see the module's doc). Returns the last seq.
    pub(crate) async fn append_fenced(
        &self,
        expected: u64,
        records: &[&str],
        id: &str,
    ) -> Result<u64, JsError> {
        let n = records.len() as u64;
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(25);
        loop {
            let reason = match self.publish(expected, records, id).await {
                Ok(seq) if seq == expected + n => return Ok(seq),
                Ok(seq) => {
                    return Err(JsError::Server(format!(
                        "the stream {} stored the append at seq {seq}, expected {}",
                        self.names.stream,
                        expected + n
                    )));
                }
                Err(Definite(e)) => return Err(e),
                Err(Unclear(reason)) => reason,
            };
            // Learn what happened, waiting for a leader if need be.
            loop {
                if started.elapsed() > self.retry_for {
                    return Err(JsError::Unknown {
                        stream: self.names.stream.clone(),
                        waited_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                        reason,
                    });
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
                match self.outcome(expected, n, id).await {
                    Ok(Outcome::Stored(last)) => return Ok(last),
                    Ok(Outcome::Absent) => break,
                    Err(Definite(e)) => return Err(e),
                    Err(Unclear(why)) => {
                        tracing::debug!(stream = %self.names.stream, why, "waiting for the stream to answer");
                    }
                }
            }
        }
    }

    /// Whether the append `id` of `n` records after `expected` is stored.
    async fn outcome(&self, expected: u64, n: u64, id: &str) -> Result<Outcome, Failure> {
        let mut stream = self.stream.clone();
        let last = stream
            .info()
            .await
            .map_err(|e| Unclear(e.to_string()))?
            .state
            .last_sequence;
        if last == expected {
            return Ok(Outcome::Absent);
        }
        // Stored, the stream would reach the append's last seq; short of it,
        // another writer appended (and may never append again: asking until
        // it does would end in `Unknown` instead of `locked`).
        if last >= expected + n {
            let message = stream
                .get_raw_message(expected + n)
                .await
                .map_err(|e| Unclear(e.to_string()))?;
            if message.headers.get(WRITE_ID).map(|v| v.as_str()) == Some(id) {
                return Ok(Outcome::Stored(expected + n));
            }
        }
        Err(Definite(JsError::Locked(self.names.stream.clone())))
    }

    /// One publish of `records` after `expected`: a plain message for one
    /// record, an atomic batch for more.
    async fn publish(&self, expected: u64, records: &[&str], id: &str) -> Result<u64, Failure> {
        let subject = self.names.subject.clone();
        let (last, rest) = records
            .split_last()
            .ok_or_else(|| Definite(JsError::Server("an empty append".into())))?;
        let mut commit = PublishMessage::build()
            .payload(Bytes::copy_from_slice(last.as_bytes()))
            .header(WRITE_ID, id);
        if rest.is_empty() {
            commit = commit.expected_last_sequence(expected);
        } else {
            for (i, record) in rest.iter().enumerate() {
                let mut headers = HeaderMap::new();
                headers.insert("Nats-Batch-Id", id);
                headers.insert("Nats-Batch-Sequence", (i + 1).to_string().as_str());
                if i == 0 {
                    // ADR-50: the fence goes on the batch's first message.
                    headers.insert("Nats-Expected-Last-Sequence", expected.to_string().as_str());
                }
                self.client
                    .publish_with_headers(
                        subject.clone(),
                        headers,
                        Bytes::copy_from_slice(record.as_bytes()),
                    )
                    .await
                    .map_err(|e| Unclear(e.to_string()))?;
            }
            commit = commit
                .header("Nats-Batch-Id", id)
                .header("Nats-Batch-Sequence", (rest.len() + 1).to_string().as_str())
                .header("Nats-Batch-Commit", "1");
        }
        let ack = self
            .context
            .send_publish(subject, commit)
            .await
            .map_err(|e| self.classify(e))?
            .await
            .map_err(|e| self.classify(e))?;
        Ok(ack.sequence)
    }

    /// Which publish errors say the append is not stored, and which leave
    /// it unclear (and so send the writer to read the stream).
    fn classify(&self, e: PublishError) -> Failure {
        match refused(&e, &self.names.stream) {
            Some(refusal) => Definite(refusal),
            // A lost answer, a leader being elected, a batch missing a
            // message, or the fence (our own earlier try may have landed):
            // only the stream knows.
            None => Unclear(e.to_string()),
        }
    }
}

/// The refusal a publish error to `stream` is, if it is one that sending
/// again would not change (too large, the stream or server full); `None`
/// when the message may or may not be stored.
pub(crate) fn refused(e: &PublishError, stream: &str) -> Option<JsError> {
    let text = e.to_string();
    let code = std::error::Error::source(e)
        .and_then(|source| source.downcast_ref::<jetstream::Error>())
        .map(|error| error.error_code());
    match (e.kind(), code) {
        (PublishErrorKind::MaxPayloadExceeded, _)
        | (_, Some(ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM))
        | (_, Some(ErrorCode::ATOMIC_PUBLISH_TOO_LARGE_BATCH)) => Some(JsError::TooLarge(format!(
            "JetStream refused the append: {text}"
        ))),
        (_, Some(ErrorCode::STREAM_STORE_FAILED))
        | (_, Some(ErrorCode::INSUFFICIENT_RESOURCES)) => Some(JsError::Full {
            stream: stream.to_owned(),
            reason: text,
        }),
        _ => None,
    }
}

/// How a publish failed.
enum Failure {
    /// The append is not stored, and sending it again would not help.
    Definite(JsError),
    /// Nothing is known: the stream must be asked.
    Unclear(String),
}
use Failure::{Definite, Unclear};
