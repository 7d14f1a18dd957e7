//! The writer of a journal on a stream: its handle, atomic batches, and
//! group commit (the appends waiting while a round trip is out go in the
//! next one, as one atomic batch). How one round trip is fenced and how a
//! lost answer is resolved: [`crate::fence`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use tokio::sync::oneshot;

use crate::names::StreamName;
use crate::reader::JsReader;
use crate::{JetStreamOptions, JsError, retry};

/// The most records one append (one JetStream atomic batch) holds.
pub const MAX_BATCH: usize = 1000;

/// A journal on a stream. Clones share one writer.
#[derive(Debug, Clone)]
pub struct JsJournal {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) client: async_nats::Client,
    pub(crate) context: jetstream::Context,
    pub(crate) stream: stream::Stream,
    pub(crate) names: StreamName,
    pub(crate) retry_for: Duration,
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
        Ok(self.usage().await?.0)
    }

    /// The journal's first seq and the bytes its stream holds.
    pub async fn usage(&self) -> Result<(u64, u64), JsError> {
        let state =
            stream_state(&self.inner.stream, self.stream_name(), self.inner.retry_for).await?;
        let first = if state.messages == 0 {
            state.last_sequence + 1
        } else {
            state.first_sequence.max(1)
        };
        Ok((first, state.bytes))
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
}

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
