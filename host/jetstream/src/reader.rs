//! A cursor over a journal's stream: an ephemeral pull consumer from the
//! cursor's position, made again where it left off if its server goes.

use std::collections::VecDeque;
use std::time::Duration;

use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::stream;
use futures_util::StreamExt;

use crate::{JsError, JsJournal};

/// Messages asked for per fetch.
const FETCH_MESSAGES: usize = 256;

/// Reads a journal's records in seq order, from a seq on. It sees records
/// appended after it was made; every record its own journal handle has
/// acknowledged is returned (it waits for a replica that lags).
#[derive(Debug)]
pub struct JsReader {
    journal: JsJournal,
    stream: stream::Stream,
    stream_name: String,
    /// The seq of the next record to return.
    next: u64,
    /// Fetched, not yet returned.
    fetched: VecDeque<(u64, String)>,
    consumer: Option<consumer::Consumer<pull::Config>>,
    retry_for: Duration,
    max_payload: usize,
}

impl JsReader {
    pub(crate) fn new(
        journal: JsJournal,
        stream: stream::Stream,
        from: u64,
        retry_for: Duration,
        max_payload: usize,
    ) -> JsReader {
        JsReader {
            stream_name: journal.stream_name().to_owned(),
            journal,
            stream,
            next: from,
            fetched: VecDeque::new(),
            consumer: None,
            retry_for,
            max_payload,
        }
    }

    /// Gives `add` the next records in order, up to `max` of them and
    /// about `max_bytes` of data (at least one record when one is there).
    /// Returns having given none at the end of the journal.
    pub async fn next_records(
        &mut self,
        max: usize,
        max_bytes: usize,
        add: &mut (dyn FnMut(u64, &str) + Send),
    ) -> Result<(), JsError> {
        let mut given = 0usize;
        let mut bytes = 0usize;
        while given < max && (given == 0 || bytes < max_bytes) {
            if let Some((seq, data)) = self.fetched.pop_front() {
                bytes += data.len();
                given += 1;
                add(seq, &data);
                continue;
            }
            // Wait for the records this process knows are stored; past them,
            // only what is there now.
            let wait = self.next <= self.journal.last_seq();
            if !self
                .fetch(max - given, max_bytes.saturating_sub(bytes), wait)
                .await?
            {
                break;
            }
        }
        Ok(())
    }

    /// Fetches up to `max` records into the buffer. Returns whether it got
    /// any.
    async fn fetch(&mut self, max: usize, max_bytes: usize, wait: bool) -> Result<bool, JsError> {
        let started = tokio::time::Instant::now();
        loop {
            match self.fetch_once(max, max_bytes, wait).await {
                Ok(got) if got || !wait => return Ok(got),
                Ok(_) => {}
                Err(Fetch::Damaged(e)) => return Err(e),
                Err(Fetch::Lost(why)) => {
                    tracing::debug!(stream = %self.stream_name, why, "cursor lost its consumer; making it again");
                    self.consumer = None;
                }
            }
            if started.elapsed() > self.retry_for {
                return Err(JsError::Connect(format!(
                    "the stream {} did not return seq {} in {} s",
                    self.stream_name,
                    self.next,
                    self.retry_for.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn fetch_once(
        &mut self,
        max: usize,
        max_bytes: usize,
        wait: bool,
    ) -> Result<bool, Fetch> {
        let consumer = match &self.consumer {
            Some(consumer) => consumer.clone(),
            None => {
                let config = pull::Config {
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: self.next,
                    },
                    ack_policy: AckPolicy::None,
                    inactive_threshold: Duration::from_secs(300),
                    num_replicas: 1,
                    memory_storage: true,
                    ..pull::Config::default()
                };
                let consumer = self
                    .stream
                    .create_consumer(config)
                    .await
                    .map_err(|e| Fetch::Lost(e.to_string()))?;
                self.consumer = Some(consumer.clone());
                consumer
            }
        };
        let count = max.clamp(1, FETCH_MESSAGES);
        // Room for one record of the largest size, whatever the caller's budget.
        let budget = max_bytes.max(self.max_payload + 64 * 1024);
        let mut messages = if wait {
            consumer
                .batch()
                .max_messages(count)
                .max_bytes(budget)
                .expires(Duration::from_millis(500))
                .messages()
                .await
        } else {
            consumer
                .fetch()
                .max_messages(count)
                .max_bytes(budget)
                .messages()
                .await
        }
        .map_err(|e| Fetch::Lost(e.to_string()))?;
        let mut got = false;
        while let Some(message) = messages.next().await {
            let message = message.map_err(|e| Fetch::Lost(e.to_string()))?;
            let seq = message
                .info()
                .map_err(|e| Fetch::Lost(format!("a message without its seq: {e}")))?
                .stream_sequence;
            if seq != self.next {
                return Err(Fetch::Damaged(JsError::Corrupt {
                    stream: self.stream_name.clone(),
                    seq: self.next,
                    reason: format!("the next message is seq {seq}: records are missing"),
                }));
            }
            let data = String::from_utf8(message.payload.to_vec()).map_err(|_| {
                Fetch::Damaged(JsError::Corrupt {
                    stream: self.stream_name.clone(),
                    seq,
                    reason: "the record is not UTF-8".into(),
                })
            })?;
            self.fetched.push_back((seq, data));
            self.next += 1;
            got = true;
        }
        Ok(got)
    }
}

impl Drop for JsReader {
    fn drop(&mut self) {
        // The server drops an idle consumer after its inactive threshold;
        // deleting it now frees it at once, when a runtime is there to.
        if let (Some(consumer), Ok(runtime)) =
            (self.consumer.take(), tokio::runtime::Handle::try_current())
        {
            let stream = self.stream.clone();
            let name = consumer.cached_info().name.clone();
            runtime.spawn(async move {
                let _ = stream.delete_consumer(&name).await;
            });
        }
    }
}

enum Fetch {
    /// The stream is not a journal's any more: the error of this read.
    Damaged(JsError),
    /// The consumer is gone or did not answer: make it again.
    Lost(String),
}

/// Reads the whole journal: a test and tool helper.
pub async fn read_all(journal: &JsJournal) -> Result<Vec<(u64, String)>, JsError> {
    let mut reader = journal.read_from(0).await?;
    let mut out = Vec::new();
    loop {
        let before = out.len();
        reader
            .next_records(1024, 4 << 20, &mut |seq, data| {
                out.push((seq, data.to_owned()))
            })
            .await?;
        if out.len() == before {
            return Ok(out);
        }
    }
}
