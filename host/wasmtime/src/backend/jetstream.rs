//! NATS JetStream as a backend: journals on streams (mini-jetstream).
//!
//! Every call runs as a task on the backend's runtime, which also drives
//! the client's connection; the host function awaits the task. So the
//! calls work from an async linker on any runtime and from a sync linker
//! with none.

use std::borrow::Cow;
use std::future::Future;

use mini_engine::JournalError;
use mini_engine::record::check_record;

use mini_jetstream::{JsError, JsJournal, JsReader, MAX_BATCH};
use tokio::runtime::Handle;

use super::{BoxFuture, JournalBackend, Read, RecordCursor, empty_block, push_record};
use crate::bindings::types::Error;
use crate::store::{MAX_BYTES_PER_NEXT, MAX_ENTRIES_PER_NEXT};

/// Runs `work` on `runtime` and waits for it.
fn on<T: Send + 'static>(
    runtime: &Handle,
    work: impl Future<Output = Result<T, Error>> + Send + 'static,
) -> BoxFuture<Result<T, Error>> {
    let task = runtime.spawn(work);
    Box::pin(async move {
        task.await
            .map_err(|e| Error::Other(format!("host task failed: {e}")))?
    })
}

/// The WIT error for a JetStream error.
pub(crate) fn js_error(err: JsError) -> Error {
    let text = err.to_string();
    match err {
        JsError::Locked(_) => Error::Locked(text),
        JsError::Full { .. } => Error::Quota(text),
        JsError::TooLarge(_) | JsError::BatchTooLong { .. } => Error::Quota(text),
        JsError::OutOfRange { .. } => Error::OutOfRange(text),
        JsError::Corrupt { .. } => Error::Corrupt(text),
        JsError::Connect(_) | JsError::Unknown { .. } | JsError::Server(_) => Error::Io(text),
    }
}

/// `records` as a journal stores them (one JSON value each, on one line),
/// or the error the local engine gives: `invalid-record` for a record that
/// is not one JSON value and for an empty batch. Sizes are checked before.
fn checked(records: Vec<String>) -> Result<Vec<String>, Error> {
    if records.is_empty() {
        return Err(Error::InvalidRecord("empty batch".into()));
    }
    records
        .into_iter()
        .map(|record| match check_record(&record, usize::MAX) {
            // The value without the whitespace around it.
            Ok(Cow::Borrowed(value)) if value.len() == record.len() => Ok(record),
            Ok(Cow::Borrowed(value)) => Ok(value.to_owned()),
            Ok(Cow::Owned(stored)) => Ok(stored),
            Err(JournalError::InvalidRecord(reason)) => Err(Error::InvalidRecord(reason)),
            Err(e) => Err(Error::InvalidRecord(e.to_string())),
        })
        .collect()
}

/// A journal on a stream.
#[derive(Debug)]
pub(crate) struct StreamJournal {
    journal: JsJournal,
    runtime: Handle,
}

impl StreamJournal {
    pub(crate) fn new(journal: JsJournal, runtime: Handle) -> Self {
        StreamJournal { journal, runtime }
    }
}

impl JournalBackend for StreamJournal {
    fn append(&self, records: Vec<String>, _bytes: u64) -> BoxFuture<Result<u64, Error>> {
        if records.len() > MAX_BATCH {
            return Box::pin(std::future::ready(Err(js_error(JsError::BatchTooLong {
                max: MAX_BATCH,
                len: records.len(),
            }))));
        }
        // The local engine's checks, so that both backends store the same
        // text and refuse the same records.
        let records = match checked(records) {
            Ok(records) => records,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let journal = self.journal.clone();
        on(&self.runtime, async move {
            journal.append_batch(records).await.map_err(js_error)
        })
    }

    fn first_seq(&self) -> BoxFuture<Result<u64, Error>> {
        let journal = self.journal.clone();
        on(&self.runtime, async move {
            journal.first_seq().await.map_err(js_error)
        })
    }

    fn last_seq(&self) -> u64 {
        self.journal.last_seq()
    }

    fn read_from(&self, from_seq: u64) -> BoxFuture<Result<Box<dyn RecordCursor>, Error>> {
        let (journal, runtime) = (self.journal.clone(), self.runtime.clone());
        on(&self.runtime, async move {
            let reader = journal.read_from(from_seq).await.map_err(js_error)?;
            Ok(Box::new(StreamCursor { reader, runtime }) as Box<dyn RecordCursor>)
        })
    }
}

/// A cursor over a journal's stream.
#[derive(Debug)]
struct StreamCursor {
    reader: JsReader,
    runtime: Handle,
}

impl RecordCursor for StreamCursor {
    fn next_block(mut self: Box<Self>, max: usize, max_bytes: usize) -> BoxFuture<Read> {
        let max = max.min(MAX_ENTRIES_PER_NEXT);
        let max_bytes = max_bytes.min(MAX_BYTES_PER_NEXT);
        let task = self.runtime.clone().spawn(async move {
            let mut block = empty_block();
            let failed = if max == 0 {
                None
            } else {
                self.reader
                    .next_records(max, max_bytes, &mut |seq, data| {
                        push_record(&mut block, seq, data)
                    })
                    .await
                    .err()
                    .map(js_error)
            };
            Read {
                cursor: self,
                block,
                failed,
            }
        });
        Box::pin(async move {
            task.await.unwrap_or_else(|e| Read {
                cursor: Box::new(super::local::LostCursor),
                block: empty_block(),
                failed: Some(Error::Other(format!("host task failed: {e}"))),
            })
        })
    }
}
