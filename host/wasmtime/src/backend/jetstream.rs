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

use mini_jetstream::{JetStream, JsError, JsJournal, JsReader, JsSnapshots, JsState, MAX_BATCH};
use tokio::runtime::Handle;

use super::stream_usage::StreamUsage;
use super::{
    BoxFuture, JetStreamBackend, JournalBackend, Read, RecordCursor, Recovered, SnapshotsBackend,
    StateBackend, empty_block, push_record,
};
use crate::bindings::types::{
    CheckpointInfo, Error, Restored, SnapshotInfo, SnapshotPoint, StateStats,
};
use crate::store::{MAX_BYTES_PER_NEXT, MAX_ENTRIES_PER_NEXT};

/// A namespace's quota use and the instance's quota.
#[derive(Debug, Clone)]
pub(crate) struct StreamQuota {
    pub usage: std::sync::Arc<StreamUsage>,
    pub quota: u64,
}

impl StreamQuota {
    pub(crate) async fn reserve(&self, bytes: u64, records: usize) -> Result<(), Error> {
        self.usage.reserve(self.quota, bytes, records as u64).await
    }
}

/// Runs `work` on `runtime` and waits for it.
pub(crate) fn on<T: Send + 'static>(
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
        JsError::StaleToken(_) => Error::StaleToken(text),
        JsError::NotFound(_) => Error::NotFound(text),
        JsError::InvalidArgument(_) => Error::InvalidArgument(text),
        JsError::Corrupt { .. } => Error::Corrupt(text),
        JsError::Connect(_) | JsError::Unknown { .. } | JsError::Server(_) => Error::Io(text),
    }
}

/// `records` as a journal stores them (each [`checked_value`]), or the
/// error the local engine gives: `invalid-record` for a record that is not
/// one JSON value and for an empty batch. Sizes are checked before.
fn checked_batch(records: Vec<String>) -> Result<Vec<String>, Error> {
    if records.is_empty() {
        return Err(Error::InvalidRecord("empty batch".into()));
    }
    records.into_iter().map(checked_value).collect()
}

/// `value` as it is stored (one JSON value on one line, without the
/// whitespace around it), or `invalid-record`.
pub(crate) fn checked_value(value: String) -> Result<String, Error> {
    match check_record(&value, usize::MAX) {
        Ok(Cow::Borrowed(stored)) if stored.len() == value.len() => Ok(value),
        Ok(stored) => Ok(stored.into_owned()),
        Err(JournalError::InvalidRecord(reason)) => Err(Error::InvalidRecord(reason)),
        Err(e) => Err(Error::InvalidRecord(e.to_string())),
    }
}

/// `Ok` if the unit `name` of `kind` exists, or its namespace (whose
/// usage `usage` is) may make the `streams` more it takes (`quota` past
/// `max_streams`).
async fn within_stream_limit(
    usage: &StreamUsage,
    kind: &str,
    name: &str,
    streams: usize,
    max_streams: usize,
) -> Result<(), Error> {
    if usage
        .js()
        .unit_exists(kind, usage.namespace(), name)
        .await
        .map_err(js_error)?
    {
        return Ok(());
    }
    match usage.admit_streams(streams, max_streams).await? {
        None => Ok(()),
        Some(held) => Err(Error::Quota(format!(
            "cannot create the {kind} {name:?}: the namespace holds {held} streams on JetStream, and its limit is {max_streams}"
        ))),
    }
}

/// The unit `name` of `namespace`, a `kind` taking `streams` streams,
/// opened by `open` (given the client, the namespace and the name) on the
/// backend's runtime; a unit that does not exist yet is refused with
/// `quota` past the namespace's `max_streams`.
pub(crate) async fn open_unit<T, F>(
    backend: &JetStreamBackend,
    namespace: &str,
    (kind, streams): (&'static str, usize),
    name: &str,
    max_streams: usize,
    open: impl FnOnce(JetStream, String, String) -> F + Send + 'static,
) -> Result<T, Error>
where
    T: Send + 'static,
    F: Future<Output = Result<T, JsError>> + Send,
{
    let (js, ns, n) = (backend.js().clone(), namespace.to_owned(), name.to_owned());
    let usage = backend.usage_of(namespace);
    on(backend.runtime(), async move {
        within_stream_limit(&usage, kind, &n, streams, max_streams).await?;
        open(js, ns, n).await.map_err(js_error)
    })
    .await
}

/// Opens the state `name` of `namespace` on `backend`.
pub(crate) async fn open_state(
    backend: &JetStreamBackend,
    namespace: &str,
    name: &str,
    max_streams: usize,
    quota: u64,
) -> Result<StreamState, Error> {
    // A journal and its snapshots.
    let state = open_unit(
        backend,
        namespace,
        ("state", 2),
        name,
        max_streams,
        |js, ns, n| async move { js.open_state(&ns, &n).await },
    )
    .await?;
    Ok(StreamState {
        state,
        runtime: backend.runtime().clone(),
        quota: backend.quota_of(namespace, quota),
    })
}

/// Opens the snapshot store `name` of `namespace` on `backend`.
pub(crate) async fn open_snapshots(
    backend: &JetStreamBackend,
    namespace: &str,
    name: &str,
    max_streams: usize,
    quota: u64,
) -> Result<StreamSnapshots, Error> {
    let snapshots = open_unit(
        backend,
        namespace,
        ("snapshot", 1),
        name,
        max_streams,
        |js, ns, n| async move {
            js.open_snapshots(&ns, &n, mini_engine::snapshot::DEFAULT_KEEP)
                .await
        },
    )
    .await?;
    Ok(StreamSnapshots {
        snapshots,
        runtime: backend.runtime().clone(),
        quota: backend.quota_of(namespace, quota),
    })
}

/// A snapshot store on a stream.
#[derive(Debug)]
pub(crate) struct StreamSnapshots {
    snapshots: JsSnapshots,
    runtime: Handle,
    quota: StreamQuota,
}

impl SnapshotsBackend for StreamSnapshots {
    fn create(&self, seq: u64, state: String, bytes: u64) -> BoxFuture<Result<(), Error>> {
        let (snapshots, quota) = (self.snapshots.clone(), self.quota.clone());
        on(&self.runtime, async move {
            let state = checked_value(state)?;
            quota.reserve(bytes, 1).await?;
            snapshots.create(seq, state).await.map_err(js_error)
        })
    }

    fn restore(&self) -> BoxFuture<Result<Option<Restored>, Error>> {
        let snapshots = self.snapshots.clone();
        on(&self.runtime, async move {
            Ok(snapshots
                .newest()
                .await
                .map_err(js_error)?
                .map(|s| Restored {
                    warnings: Vec::new(),
                    seq: s.seq,
                    state: s.state,
                }))
        })
    }

    fn list(&self) -> BoxFuture<Result<Vec<SnapshotInfo>, Error>> {
        let snapshots = self.snapshots.clone();
        on(&self.runtime, async move {
            let mut out = Vec::new();
            for seq in snapshots.seqs().await.map_err(js_error)? {
                if let Some(s) = snapshots.get(seq).await.map_err(js_error)? {
                    out.push(SnapshotInfo {
                        seq,
                        size: s.state.len() as u64,
                    });
                }
            }
            Ok(out)
        })
    }

    fn delete_older_than(&self, seq: u64) -> BoxFuture<Result<u32, Error>> {
        let snapshots = self.snapshots.clone();
        on(&self.runtime, async move {
            snapshots.delete_older_than(seq).await.map_err(js_error)
        })
    }
}

/// A state on streams.
#[derive(Debug)]
pub(crate) struct StreamState {
    state: JsState,
    runtime: Handle,
    quota: StreamQuota,
}

impl StateBackend for StreamState {
    fn recover(&self) -> BoxFuture<Result<Recovered, Error>> {
        let (state, runtime) = (self.state.clone(), self.runtime.clone());
        on(&self.runtime, async move {
            let recovery = state.recover().await.map_err(js_error)?;
            Ok(Recovered {
                snapshot: recovery.snapshot.map(|s| SnapshotPoint {
                    seq: s.seq,
                    state: s.state,
                }),
                warnings: Vec::new(),
                mutations: Box::new(StreamCursor {
                    reader: recovery.mutations,
                    runtime,
                }),
            })
        })
    }

    fn commit(&self, mutations: Vec<String>, bytes: u64) -> BoxFuture<Result<u64, Error>> {
        let mutations = match checked_batch(mutations) {
            Ok(mutations) => mutations,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let (state, quota) = (self.state.clone(), self.quota.clone());
        on(&self.runtime, async move {
            quota.reserve(bytes, mutations.len()).await?;
            state.commit(mutations).await.map_err(js_error)
        })
    }

    fn checkpoint(
        &self,
        seq: u64,
        snapshot: String,
        bytes: u64,
    ) -> BoxFuture<Result<CheckpointInfo, Error>> {
        let (state, quota) = (self.state.clone(), self.quota.clone());
        on(&self.runtime, async move {
            let snapshot = checked_value(snapshot)?;
            quota.reserve(bytes, 1).await?;
            let done = state.checkpoint(seq, snapshot).await.map_err(|e| match e {
                JsError::OutOfRange { seq, first, .. } => Error::OutOfRange(format!(
                    "cannot checkpoint at seq {seq}: it must lie between the newest checkpoint ({first}) and the last mutation ({})",
                    state.journal().last_seq()
                )),
                e => js_error(e),
            })?;
            Ok(CheckpointInfo {
                seq: done.seq,
                // Newest first, as the local engine lists them.
                kept_snapshots: done.kept_snapshots.into_iter().rev().collect(),
                // Streams have no segments: a purge removes records.
                segments_deleted: 0,
            })
        })
    }

    fn last_seq(&self) -> u64 {
        self.state.journal().last_seq()
    }

    fn stats(&self) -> BoxFuture<Result<StateStats, Error>> {
        let state = self.state.clone();
        on(&self.runtime, async move {
            let seq = state.journal().last_seq();
            let checkpoint_seq = state.checkpoint_seq().await.map_err(js_error)?;
            let (first, bytes) = state.journal().usage().await.map_err(js_error)?;
            Ok(StateStats {
                seq,
                checkpoint_seq,
                records_since_checkpoint: seq.saturating_sub(checkpoint_seq),
                journal_bytes: bytes,
                journal_first_seq: first,
            })
        })
    }
}

/// A journal on a stream.
#[derive(Debug)]
pub(crate) struct StreamJournal {
    journal: JsJournal,
    runtime: Handle,
    quota: StreamQuota,
}

impl StreamJournal {
    pub(crate) fn new(journal: JsJournal, runtime: Handle, quota: StreamQuota) -> Self {
        StreamJournal {
            journal,
            runtime,
            quota,
        }
    }
}

impl JournalBackend for StreamJournal {
    fn append(&self, records: Vec<String>, bytes: u64) -> BoxFuture<Result<u64, Error>> {
        if records.len() > MAX_BATCH {
            return Box::pin(std::future::ready(Err(js_error(JsError::BatchTooLong {
                max: MAX_BATCH,
                len: records.len(),
            }))));
        }
        // The local engine's checks, so that both backends store the same
        // text and refuse the same records.
        let records = match checked_batch(records) {
            Ok(records) => records,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let (journal, quota) = (self.journal.clone(), self.quota.clone());
        on(&self.runtime, async move {
            quota.reserve(bytes, records.len()).await?;
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
