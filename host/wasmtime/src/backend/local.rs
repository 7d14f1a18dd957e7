//! The local engine as a backend: journals in files under the data root.
//!
//! Every engine call blocks (it writes and fdatasyncs, or scans a file), so
//! it runs through [`blocking`]: off the executor under an async linker,
//! inline under a sync one.

use std::path::PathBuf;
use std::sync::Arc;

use mini_engine::{Journal, JournalError, Reader};

use super::{BoxFuture, JournalBackend, Read, RecordCursor, empty_block, push_record};
use crate::bindings::types::{EntryBlock, Error};
use crate::disk::Usage;
use crate::error::journal_error;
use crate::offload::blocking;
use crate::store::{MAX_BYTES_PER_NEXT, MAX_ENTRIES_PER_NEXT};

/// A journal of the local engine, with the quota its appends count against.
#[derive(Debug)]
pub(crate) struct LocalJournal {
    journal: Journal,
    usage: Arc<Usage>,
    ns_dir: PathBuf,
    quota: u64,
}

impl LocalJournal {
    /// `journal`, whose appends count against `usage` (of the namespace in
    /// `ns_dir`, whose quota is `quota`).
    pub(crate) fn new(journal: Journal, usage: Arc<Usage>, ns_dir: PathBuf, quota: u64) -> Self {
        LocalJournal {
            journal,
            usage,
            ns_dir,
            quota,
        }
    }
}

impl JournalBackend for LocalJournal {
    fn append(&self, records: Vec<String>, bytes: u64) -> BoxFuture<Result<u64, Error>> {
        let (journal, usage, ns_dir, quota) = (
            self.journal.clone(),
            self.usage.clone(),
            self.ns_dir.clone(),
            self.quota,
        );
        Box::pin(async move {
            blocking(move || {
                usage.reserve(&ns_dir, quota, bytes)?;
                match records.as_slice() {
                    [record] => journal.append(record),
                    _ => journal.append_batch(&records),
                }
                .map_err(|e| journal_error(e, &ns_dir))
            })
            .await?
        })
    }

    fn first_seq(&self) -> BoxFuture<Result<u64, Error>> {
        let journal = self.journal.clone();
        // Takes the writer's lock, which an append may hold while it writes.
        Box::pin(async move { blocking(move || journal.first_seq()).await })
    }

    fn last_seq(&self) -> u64 {
        self.journal.last_seq()
    }

    fn read_from(&self, from_seq: u64) -> BoxFuture<Result<Box<dyn RecordCursor>, Error>> {
        let (journal, ns_dir) = (self.journal.clone(), self.ns_dir.clone());
        Box::pin(async move {
            blocking(move || {
                let reader = journal
                    .read_from(from_seq)
                    .map_err(|e| journal_error(e, &ns_dir))?;
                Ok(LocalCursor::boxed(reader, ns_dir))
            })
            .await?
        })
    }
}

/// A cursor over a local journal (or a state's mutations).
#[derive(Debug)]
pub(crate) struct LocalCursor {
    reader: Reader,
    ns_dir: PathBuf,
}

impl LocalCursor {
    /// A cursor over `reader`, its errors' paths hidden under `ns_dir`.
    pub(crate) fn boxed(reader: Reader, ns_dir: PathBuf) -> Box<dyn RecordCursor> {
        Box::new(LocalCursor { reader, ns_dir })
    }
}

impl RecordCursor for LocalCursor {
    fn next_block(mut self: Box<Self>, max: usize, max_bytes: usize) -> BoxFuture<Read> {
        Box::pin(async move {
            let read = blocking(move || {
                let (block, failed) = read_block(&mut self.reader, max, max_bytes);
                let failed = failed.map(|e| journal_error(e, &self.ns_dir));
                (self, block, failed)
            })
            .await;
            match read {
                Ok((cursor, block, failed)) => Read {
                    cursor,
                    block,
                    failed,
                },
                // The blocking work panicked: the reader went with it.
                Err(e) => Read {
                    cursor: Box::new(LostCursor),
                    block: empty_block(),
                    failed: Some(e),
                },
            }
        })
    }
}

/// The cursor of a read whose host task failed.
#[derive(Debug)]
pub(crate) struct LostCursor;

impl RecordCursor for LostCursor {
    fn next_block(self: Box<Self>, _: usize, _: usize) -> BoxFuture<Read> {
        Box::pin(async move {
            Read {
                cursor: self,
                block: empty_block(),
                failed: Some(Error::Other(
                    "the cursor was lost after a host failure; open a new one".into(),
                )),
            }
        })
    }
}

/// Reads the next records of `reader` into one block, up to `max` records
/// and about `max_bytes` of data (capped as `next` is). Returns the block
/// and, if a read failed, the error (the records before the damage are in
/// the block).
fn read_block(
    reader: &mut Reader,
    max: usize,
    max_bytes: usize,
) -> (EntryBlock, Option<JournalError>) {
    let mut block = empty_block();
    let max = max.min(MAX_ENTRIES_PER_NEXT);
    let max_bytes = max_bytes.min(MAX_BYTES_PER_NEXT);
    let failed = reader
        .next_records(max, max_bytes, &mut |seq, data| {
            push_record(&mut block, seq, data)
        })
        .err();
    (block, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_block_joins_records_and_says_where_each_ends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = Journal::open(dir.path()).expect("open");
        journal
            .append_batch(&["1", "[22]", "\"é\""])
            .expect("append");
        journal.append("{}").expect("append");
        let mut reader = journal.read_from(2).expect("reader");
        let (block, failed) = read_block(&mut reader, 2, usize::MAX);
        assert!(failed.is_none());
        assert_eq!(block.first_seq, 2);
        assert_eq!(block.data, "[22]\"é\"");
        assert_eq!(block.ends, [4, 8]);
        // A byte budget of 0 still moves on: one record, the one crossing it.
        let (block, _) = read_block(&mut reader, 10, 0);
        assert_eq!(
            (block.first_seq, block.data.as_str(), &block.ends[..]),
            (4, "{}", &[2][..])
        );
        let (block, failed) = read_block(&mut reader, 10, 10);
        assert!(block.ends.is_empty() && failed.is_none(), "the end");
        // A guest's max 0 returns none, and a huge one is capped.
        journal.append("5").expect("append");
        assert!(read_block(&mut reader, 0, usize::MAX).0.ends.is_empty());
        assert_eq!(read_block(&mut reader, usize::MAX, usize::MAX).0.ends, [1]);
    }

    #[test]
    fn read_block_returns_the_records_before_damage_then_the_error_next() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let journal = Journal::open(dir.path()).expect("open");
            for n in 1..=3 {
                journal.append(&n.to_string()).expect("append");
            }
        }
        let segment = dir.path().join("00000000000000000001.jsonl");
        let text = std::fs::read_to_string(&segment).expect("segment");
        std::fs::write(&segment, text.replacen("\"data\":2", "\"data\":7", 1)).expect("write");
        let mut reader = mini_engine::read_unlocked(dir.path(), 0).expect("reader");
        let (block, failed) = read_block(&mut reader, 10, usize::MAX);
        assert_eq!((block.ends.len(), failed.is_none()), (1, true));
        let (block, failed) = read_block(&mut reader, 10, usize::MAX);
        assert!(block.ends.is_empty());
        assert!(matches!(failed, Some(JournalError::Corrupt(c)) if c.seq == 2));
    }
}
