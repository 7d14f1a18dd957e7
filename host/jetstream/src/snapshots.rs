//! Snapshots on a stream: one subject per snapshot's seq
//! (`<subject>.<seq, 20 digits>`), one message per subject (a new
//! snapshot at a seq replaces the old one), the state as the payload.
//!
//! A create keeps the newest `keep` snapshots by seq and removes the rest
//! (purges of their subjects), after the new one is stored, as the local
//! store does; so a store holds at most `keep` + 1 snapshots at any time.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use bytes::Bytes;

use crate::names::StreamName;
use crate::{JetStreamOptions, JsError, retry};

/// A snapshot store on a stream.
#[derive(Debug, Clone)]
pub struct JsSnapshots {
    context: jetstream::Context,
    stream: stream::Stream,
    names: StreamName,
    keep: usize,
    retry_for: Duration,
}

/// One stored snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsSnapshot {
    /// The seq it covers.
    pub seq: u64,
    /// Its state (JSON text).
    pub state: String,
}

impl JsSnapshots {
    pub(crate) fn new(
        context: jetstream::Context,
        stream: stream::Stream,
        names: StreamName,
        keep: usize,
        options: &JetStreamOptions,
    ) -> JsSnapshots {
        JsSnapshots {
            context,
            stream,
            names,
            keep: keep.max(1),
            retry_for: options.retry_for,
        }
    }

    /// The stream config of a snapshot store (see the module's doc).
    pub(crate) fn config(mut config: stream::Config) -> stream::Config {
        config.subjects = vec![format!("{}.*", config.subjects[0])];
        config.max_messages_per_subject = 1;
        // A replaced snapshot goes; a full stream refuses a new one.
        config.discard = stream::DiscardPolicy::New;
        config.deny_delete = false;
        config.allow_atomic_publish = false;
        config
    }

    /// The stream holding the snapshots.
    pub fn stream_name(&self) -> &str {
        &self.names.stream
    }

    fn subject(&self, seq: u64) -> String {
        format!("{}.{seq:020}", self.names.subject)
    }

    /// Stores `state` as the snapshot at `seq` (on a quorum of replicas),
    /// then removes all but the newest `keep`.
    pub async fn create(&self, seq: u64, state: String) -> Result<(), JsError> {
        let payload = Bytes::from(state);
        let subject = self.subject(seq);
        // Storing the same snapshot twice is harmless: a retry may.
        retry(self.retry_for, || {
            let (context, subject, payload) =
                (self.context.clone(), subject.clone(), payload.clone());
            async move {
                let ack = context
                    .publish(subject, payload)
                    .await
                    .map_err(|e| e.to_string())?;
                ack.await.map_err(|e| e.to_string())
            }
        })
        .await
        .map_err(|e| full_or(e, &self.names.stream))?;
        let seqs = self.seqs().await?;
        let old = seqs.len().saturating_sub(self.keep);
        for seq in &seqs[..old] {
            self.remove(*seq).await?;
        }
        Ok(())
    }

    /// The seqs of the snapshots stored, oldest first.
    pub async fn seqs(&self) -> Result<Vec<u64>, JsError> {
        let filter = format!("{}.*", self.names.subject);
        let subjects: HashMap<String, usize> = retry(self.retry_for, || {
            let (stream, filter) = (self.stream.clone(), filter.clone());
            async move {
                use futures_util::StreamExt;
                let mut info = stream
                    .info_with_subjects(filter)
                    .await
                    .map_err(|e| e.to_string())?;
                let mut subjects = HashMap::new();
                while let Some(entry) = info.next().await {
                    let (subject, count) = entry.map_err(|e| e.to_string())?;
                    subjects.insert(subject, count);
                }
                Ok::<_, String>(subjects)
            }
        })
        .await
        .map_err(JsError::Connect)?;
        let mut seqs: Vec<u64> = subjects
            .keys()
            .filter_map(|s| s.rsplit('.').next()?.parse().ok())
            .collect();
        seqs.sort_unstable();
        Ok(seqs)
    }

    /// The snapshot at `seq`, if there is one.
    pub async fn get(&self, seq: u64) -> Result<Option<JsSnapshot>, JsError> {
        let subject = self.subject(seq);
        let found = retry(self.retry_for, || {
            let (stream, subject) = (self.stream.clone(), subject.clone());
            async move {
                match stream.get_last_raw_message_by_subject(&subject).await {
                    Ok(message) => Ok(Some(message.payload)),
                    Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {
                        Ok(None)
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
        })
        .await
        .map_err(JsError::Connect)?;
        found
            .map(|payload| {
                String::from_utf8(payload.to_vec())
                    .map(|state| JsSnapshot { seq, state })
                    .map_err(|_| JsError::Corrupt {
                        stream: self.names.stream.clone(),
                        seq,
                        reason: "the snapshot is not UTF-8".into(),
                    })
            })
            .transpose()
    }

    /// The newest snapshot (by seq), if any.
    pub async fn newest(&self) -> Result<Option<JsSnapshot>, JsError> {
        match self.seqs().await?.last() {
            Some(&seq) => self.get(seq).await,
            None => Ok(None),
        }
    }

    /// Removes the snapshots below `seq`; returns how many went.
    pub async fn delete_older_than(&self, seq: u64) -> Result<u32, JsError> {
        let mut removed = 0u32;
        for old in self.seqs().await?.into_iter().filter(|s| *s < seq) {
            self.remove(old).await?;
            removed += 1;
        }
        Ok(removed)
    }

    async fn remove(&self, seq: u64) -> Result<(), JsError> {
        let subject = self.subject(seq);
        retry(self.retry_for, || {
            let (stream, subject) = (self.stream.clone(), subject.clone());
            async move {
                stream
                    .purge()
                    .filter(subject)
                    .await
                    .map_err(|e| e.to_string())
            }
        })
        .await
        .map(|_| ())
        .map_err(|e| JsError::Server(format!("cannot remove the snapshot {seq}: {e}")))
    }
}

/// `Full` for an error that says the stream is full, else `Connect`.
fn full_or(e: String, stream: &str) -> JsError {
    let lower = e.to_lowercase();
    if lower.contains("maximum bytes") || lower.contains("resources") || lower.contains("exceeds") {
        JsError::Full {
            stream: stream.to_owned(),
            reason: e,
        }
    } else {
        JsError::Connect(e)
    }
}
