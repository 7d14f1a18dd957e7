//! The writer of a journal on a stream: fenced appends, atomic batches,
//! group commit, and how an append whose answer was lost is resolved.
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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use tokio::sync::oneshot;

use crate::names::StreamName;
use crate::reader::JsReader;
use crate::{JetStreamOptions, JsError, retry};

/// The most records one append (one JetStream atomic batch) holds.
pub const MAX_BATCH: usize = 1000;

const WRITE_ID: &str = "Mini-Write";

/// A journal on a stream. Clones share one writer.
#[derive(Debug, Clone)]
pub struct JsJournal {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: async_nats::Client,
    context: jetstream::Context,
    stream: stream::Stream,
    names: StreamName,
    retry_for: Duration,
    /// Who this handle is in the write ids it stores.
    writer: String,
    /// The last seq this handle knows is stored.
    last_seq: AtomicU64,
    /// Set when the writer failed for good.
    failed: std::sync::atomic::AtomicBool,
    /// The appends waiting for the next round trip.
    waiting: Mutex<Vec<Waiting>>,
    /// Held by the one task sending a round trip.
    sending: tokio::sync::Mutex<Sender>,
}

#[derive(Debug)]
struct Waiting {
    records: Vec<String>,
    done: oneshot::Sender<Result<u64, JsError>>,
}

#[derive(Debug)]
struct Sender {
    /// Where the stream ends, as far as this writer knows.
    last: u64,
    /// Round trips sent, for the write ids.
    sent: u64,
    /// Set once the handle's view of the stream cannot be trusted.
    failed: Option<JsError>,
}

/// What reading the stream says about an append whose answer was lost.
enum Outcome {
    /// Stored at these seqs.
    Stored(u64),
    /// Not stored: send it again.
    Absent,
}

impl JsJournal {
    pub(crate) async fn open(
        client: async_nats::Client,
        context: jetstream::Context,
        stream: stream::Stream,
        names: StreamName,
        options: &JetStreamOptions,
    ) -> Result<JsJournal, JsError> {
        let last = stream_state(&stream, &names.stream, options.retry_for)
            .await?
            .last_sequence;
        let writer = format!("{}-{}", std::process::id(), unique());
        Ok(JsJournal {
            inner: Arc::new(Inner {
                client,
                context,
                stream,
                names,
                retry_for: options.retry_for,
                writer,
                last_seq: AtomicU64::new(last),
                failed: std::sync::atomic::AtomicBool::new(false),
                waiting: Mutex::new(Vec::new()),
                sending: tokio::sync::Mutex::new(Sender {
                    last,
                    sent: 0,
                    failed: None,
                }),
            }),
        })
    }

    /// Whether the handle failed (another writer, or an append whose outcome
    /// is unknown): it writes no more, and a new open is needed.
    pub fn is_failed(&self) -> bool {
        self.inner.failed.load(Ordering::Acquire)
    }

    /// The stream holding the journal.
    pub fn stream_name(&self) -> &str {
        &self.inner.names.stream
    }

    /// Appends one record; returns its seq once the stream has stored it
    /// (on a quorum of its replicas, each fsync'd with `sync_interval:
    /// always`).
    pub async fn append(&self, record: String) -> Result<u64, JsError> {
        self.append_batch(vec![record]).await
    }

    /// Appends `records` as one atomic batch: all stored or none. Returns
    /// the last one's seq.
    pub async fn append_batch(&self, records: Vec<String>) -> Result<u64, JsError> {
        if records.len() > MAX_BATCH {
            return Err(JsError::BatchTooLong {
                max: MAX_BATCH,
                len: records.len(),
            });
        }
        if records.is_empty() {
            return Ok(self.last_seq());
        }
        let (done, mut answer) = oneshot::channel();
        lock(&self.inner.waiting).push(Waiting { records, done });
        loop {
            if let Ok(result) = answer.try_recv() {
                return result;
            }
            let mut sender = self.inner.sending.lock().await;
            if let Ok(result) = answer.try_recv() {
                return result;
            }
            let round = self.take_round();
            self.inner.send_round(&mut sender, round).await;
        }
    }

    /// The appends of the next round trip: those waiting, in order, up to
    /// [`MAX_BATCH`] records (the first one always).
    fn take_round(&self) -> Vec<Waiting> {
        let mut waiting = lock(&self.inner.waiting);
        let mut records = 0;
        let take = waiting
            .iter()
            .take_while(|w| {
                records += w.records.len();
                records <= MAX_BATCH
            })
            .count()
            .max(1)
            .min(waiting.len());
        waiting.drain(..take).collect()
    }

    /// The last seq this handle knows is stored (0 for an empty journal).
    pub fn last_seq(&self) -> u64 {
        self.inner.last_seq.load(Ordering::Acquire)
    }

    /// The journal's first seq: 1 until compaction, then the first record
    /// kept (one past the last when it holds none).
    pub async fn first_seq(&self) -> Result<u64, JsError> {
        let state =
            stream_state(&self.inner.stream, self.stream_name(), self.inner.retry_for).await?;
        Ok(if state.messages == 0 {
            state.last_sequence + 1
        } else {
            state.first_sequence.max(1)
        })
    }

    /// A reader from `from_seq` (0 and 1 both mean the first record).
    pub async fn read_from(&self, from_seq: u64) -> Result<JsReader, JsError> {
        let first = self.first_seq().await?;
        let from = from_seq.max(1);
        if from < first && first > 1 {
            return Err(JsError::OutOfRange {
                stream: self.stream_name().to_owned(),
                seq: from_seq,
                first,
            });
        }
        let max_payload = self.inner.client.server_info().max_payload;
        Ok(JsReader::new(
            self.clone(),
            self.inner.stream.clone(),
            from,
            self.inner.retry_for,
            max_payload,
        ))
    }

    /// Deletes the records before `seq` (compaction, once a snapshot
    /// covers them); seqs are never reused.
    pub async fn compact_before(&self, seq: u64) -> Result<(), JsError> {
        let stream = self.inner.stream.clone();
        retry(self.inner.retry_for, || async {
            stream.purge().sequence(seq).await
        })
        .await
        .map(|_| ())
        .map_err(|e| JsError::Server(format!("cannot compact {}: {e}", self.stream_name())))
    }
}

impl Inner {
    /// Sends one round trip for `round` and answers each append of it.
    async fn send_round(&self, sender: &mut Sender, round: Vec<Waiting>) {
        let result = match &sender.failed {
            Some(failed) => Err(failed.clone()),
            None => {
                sender.sent += 1;
                let id = format!("{}-{}", self.writer, sender.sent);
                let records: Vec<&str> = round
                    .iter()
                    .flat_map(|w| w.records.iter().map(String::as_str))
                    .collect();
                self.append_fenced(sender.last, &records, &id).await
            }
        };
        match result {
            Ok(last) => {
                let mut seq = sender.last;
                sender.last = last;
                self.last_seq.store(last, Ordering::Release);
                for waiting in round {
                    seq += waiting.records.len() as u64;
                    let _ = waiting.done.send(Ok(seq));
                }
            }
            Err(e) => {
                if e.poisons() {
                    tracing::warn!(stream = %self.names.stream, error = %e, "journal handle failed; it must be opened again");
                    sender.failed = Some(e.clone());
                    self.failed.store(true, Ordering::Release);
                }
                for waiting in round {
                    let _ = waiting.done.send(Err(e.clone()));
                }
            }
        }
    }

    /// Appends `records` after `expected`, resolving a lost answer by
    /// reading the stream (see the module's doc). Returns the last seq.
    async fn append_fenced(
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
        if last > expected {
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
        let text = e.to_string();
        let code = std::error::Error::source(&e)
            .and_then(|source| source.downcast_ref::<jetstream::Error>())
            .map(|error| error.error_code());
        let stream = self.names.stream.clone();
        match (e.kind(), code) {
            (PublishErrorKind::MaxPayloadExceeded, _)
            | (_, Some(ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM))
            | (_, Some(ErrorCode::ATOMIC_PUBLISH_TOO_LARGE_BATCH)) => Definite(JsError::TooLarge(
                format!("JetStream refused the append: {text}"),
            )),
            (_, Some(ErrorCode::STREAM_STORE_FAILED))
            | (_, Some(ErrorCode::INSUFFICIENT_RESOURCES)) => Definite(JsError::Full {
                stream,
                reason: text,
            }),
            // A lost answer, a leader being elected, a batch missing a
            // message, or the fence (our own earlier try may have landed):
            // only the stream knows.
            _ => Unclear(text),
        }
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

/// The stream's state, asked until a leader answers (or `within` passes).
async fn stream_state(
    stream: &stream::Stream,
    name: &str,
    within: Duration,
) -> Result<stream::State, JsError> {
    retry(within, || {
        let mut stream = stream.clone();
        async move { stream.info().await.map(|info| info.state.clone()) }
    })
    .await
    .map_err(|e| JsError::Connect(format!("cannot read the stream {name}: {e}")))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A number no other handle of this process has had, nor (with the time)
/// one of an earlier process with the same pid.
fn unique() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{now:x}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}
