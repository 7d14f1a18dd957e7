//! The host side of the `mini:storage/store` interface: durable journals.
//!
//! Every engine call blocks (it writes and fdatasyncs), so it runs off the
//! executor (see `view::blocking`); other tasks never wait on a disk. Nothing a guest
//! passes in can make the host panic or trap: bad records, bad names and
//! stale handles all come back as the WIT `error` variant.

use std::sync::Arc;

use mini_engine::layout::UnitKind;
use mini_engine::{Entry, Journal, JournalError, JournalOptions, Reader};
use wasmtime::component::Resource;

use crate::HostError;
use crate::bindings::store;
use crate::bindings::types::{self, Error};
use crate::calls::{UnitName, observed};
use crate::ctx::MiniCtxView;
use crate::disk::preallocation;
use crate::error::{bad_handle, journal_error};
use crate::offload::blocking;
use crate::registry::Claim;
use crate::view::Admission;

/// A cursor returns at most this many entries per `next` call, whatever the
/// guest asks for.
pub const MAX_ENTRIES_PER_NEXT: usize = 1024;
/// A cursor stops filling a `next` batch once it holds this many bytes of
/// records (it always returns at least one record if one is available).
pub const MAX_BYTES_PER_NEXT: usize = 4 * 1024 * 1024;

/// A journal handle held by a guest: the `journal` resource of the WIT.
#[derive(Debug)]
pub struct JournalHandle {
    journal: Journal,
    name: String,
}

impl UnitName for JournalHandle {
    fn unit_name(&self) -> Option<&str> {
        Some(&self.name)
    }
}

/// A cursor is read from a journal the guest named when it made it.
impl UnitName for CursorHandle {
    fn unit_name(&self) -> Option<&str> {
        None
    }
}

impl JournalHandle {
    /// The journal's name inside the namespace.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The engine journal behind the handle.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }
}

/// A cursor held by a guest: the `cursor` resource of the WIT.
///
/// The reader is moved to a blocking thread for each `next` call and moved
/// back afterwards; `None` only if that thread died. Once a read fails (a
/// damaged journal), every later `next` returns that error again, so a
/// guest never mistakes damage for the end of the journal.
#[derive(Debug)]
pub struct CursorHandle {
    reader: Option<Reader>,
    failed: Option<Error>,
    /// The claim of the state whose recovery made the cursor.
    _claim: Option<Arc<Claim>>,
}

impl CursorHandle {
    /// A cursor over `reader`.
    pub(crate) fn new(reader: Reader) -> CursorHandle {
        CursorHandle {
            reader: Some(reader),
            failed: None,
            _claim: None,
        }
    }

    /// The cursor, holding `claim` while it lives.
    pub(crate) fn holding(mut self, claim: Arc<Claim>) -> CursorHandle {
        self._claim = Some(claim);
        self
    }
}

impl MiniCtxView<'_> {
    fn journal_of(&self, handle: &Resource<JournalHandle>) -> Result<Journal, Error> {
        self.table
            .get(handle)
            .map(|h| h.journal.clone())
            .map_err(|e| bad_handle("journal", e))
    }

    /// Appends through `write` after checking the disk quota for `bytes`.
    async fn append_with(
        &mut self,
        handle: &Resource<JournalHandle>,
        bytes: u64,
        write: impl FnOnce(&Journal) -> Result<u64, JournalError> + Send + 'static,
    ) -> Result<u64, Error> {
        let journal = self.journal_of(handle)?;
        let ns_dir = self.ctx.namespace_dir.clone();
        self.write_within_quota(bytes, move || {
            write(&journal).map_err(|e| journal_error(e, &ns_dir))
        })
        .await
    }
}

/// Reads up to `max` entries, stopping early at [`MAX_BYTES_PER_NEXT`].
/// Returns the entries read and, if a read failed, the error (the entries
/// before the damage are still returned).
fn read_some(reader: &mut Reader, max: usize) -> (Vec<Entry>, Option<JournalError>) {
    let max = max.min(MAX_ENTRIES_PER_NEXT);
    let mut out: Vec<Entry> = Vec::new();
    let mut bytes = 0usize;
    while out.len() < max && bytes < MAX_BYTES_PER_NEXT {
        match reader.next() {
            Some(Ok(entry)) => {
                bytes += entry.data.len();
                out.push(entry);
            }
            Some(Err(e)) => return (out, Some(e)),
            None => break,
        }
    }
    (out, None)
}

impl store::Host for MiniCtxView<'_> {}

impl store::HostJournal for MiniCtxView<'_> {
    async fn open(&mut self, name: String) -> Result<Resource<JournalHandle>, HostError> {
        observed!(self, "store", "open", Some(name.clone()), {
            Ok(self.open_journal(name).await?)
        })
    }

    async fn append(
        &mut self,
        handle: Resource<JournalHandle>,
        record: String,
    ) -> Result<u64, HostError> {
        observed!(self, "store", "append", self.unit_of(&handle), {
            let bytes = self.check_record_sizes([&record])?;
            Ok(self
                .append_with(&handle, bytes, move |j| j.append(&record))
                .await?)
        })
    }

    async fn append_batch(
        &mut self,
        handle: Resource<JournalHandle>,
        records: Vec<String>,
    ) -> Result<u64, HostError> {
        observed!(self, "store", "append-batch", self.unit_of(&handle), {
            let bytes = self.check_record_sizes(&records)?;
            Ok(self
                .append_with(&handle, bytes, move |j| j.append_batch(&records))
                .await?)
        })
    }

    async fn read(
        &mut self,
        handle: Resource<JournalHandle>,
        from_seq: u64,
    ) -> Result<Resource<CursorHandle>, HostError> {
        observed!(self, "store", "read", self.unit_of(&handle), {
            Ok(self.open_cursor(&handle, from_seq).await?)
        })
    }

    async fn first_seq(&mut self, handle: Resource<JournalHandle>) -> Result<u64, HostError> {
        observed!(self, "store", "first-seq", self.unit_of(&handle), {
            let journal = self.journal_of(&handle)?;
            // Takes the writer's lock, which an append may hold while it writes.
            Ok(blocking(move || journal.first_seq()).await?)
        })
    }

    async fn last_seq(&mut self, handle: Resource<JournalHandle>) -> Result<u64, HostError> {
        observed!(self, "store", "last-seq", self.unit_of(&handle), {
            Ok(self.journal_of(&handle)?.last_seq())
        })
    }

    async fn drop(&mut self, handle: Resource<JournalHandle>) -> wasmtime::Result<()> {
        self.drop_handle(handle);
        Ok(())
    }
}

impl MiniCtxView<'_> {
    async fn open_journal(&mut self, name: String) -> Result<Resource<JournalHandle>, Error> {
        let Admission { dir, ns_dir, .. } = self.admit(UnitKind::Journal, &name).await?;
        let host = self.ctx.host.clone();
        let options = JournalOptions {
            segment_size: self.ctx.limits.segment_size,
            max_record_size: self.ctx.limits.max_record_size,
            preallocate: preallocation(self.ctx.limits.disk_quota),
            fs: self.ctx.fs.clone(),
            ..JournalOptions::default()
        };
        let journal = blocking(move || {
            // Creates the directories (each synced into its parent) if needed.
            host.open_journal(&dir, options)
                .map_err(|e| journal_error(e, &ns_dir))
        })
        .await??;
        self.push_handle(JournalHandle { journal, name })
    }

    async fn open_cursor(
        &mut self,
        handle: &Resource<JournalHandle>,
        from_seq: u64,
    ) -> Result<Resource<CursorHandle>, Error> {
        let journal = self.journal_of(handle)?;
        self.check_handle_limit()?;
        let ns_dir = self.ctx.namespace_dir.clone();
        let reader = blocking(move || {
            journal
                .read_from(from_seq)
                .map_err(|e| journal_error(e, &ns_dir))
        })
        .await??;
        self.push_handle(CursorHandle::new(reader))
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
) -> (types::EntryBlock, Option<JournalError>) {
    let mut block = types::EntryBlock {
        first_seq: 0,
        data: String::new(),
        ends: Vec::new(),
    };
    let max = max.min(MAX_ENTRIES_PER_NEXT);
    let max_bytes = max_bytes.min(MAX_BYTES_PER_NEXT);
    let mut add = |seq: u64, data: &str| {
        if block.ends.is_empty() {
            block.first_seq = seq;
        }
        block.data.push_str(data);
        // A block holds at most 4 MiB plus one record of at most 128 MiB.
        block
            .ends
            .push(u32::try_from(block.data.len()).unwrap_or(u32::MAX));
    };
    let failed = reader.next_records(max, max_bytes, &mut add).err();
    (block, failed)
}

impl MiniCtxView<'_> {
    async fn next_entries(
        &mut self,
        handle: &Resource<CursorHandle>,
        max: u32,
    ) -> Result<Vec<Entry>, Error> {
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        let entries = self
            .with_reader(handle, move |reader| read_some(reader, max))
            .await?;
        Ok(entries)
    }

    async fn next_block(
        &mut self,
        handle: &Resource<CursorHandle>,
        max: u32,
        max_bytes: u32,
    ) -> Result<types::EntryBlock, Error> {
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        let max_bytes = usize::try_from(max_bytes).unwrap_or(usize::MAX);
        self.with_reader(handle, move |reader| read_block(reader, max, max_bytes))
            .await
    }

    /// Runs `read` on the cursor's reader off the executor. A read that met
    /// damage returns what it read before it; the damage is the error of the
    /// next call (and of every call after it), or of this one if it read
    /// nothing.
    async fn with_reader<T: Send + Empty + 'static>(
        &mut self,
        handle: &Resource<CursorHandle>,
        read: impl FnOnce(&mut Reader) -> (T, Option<JournalError>) + Send + 'static,
    ) -> Result<T, Error> {
        let cursor = self
            .table
            .get_mut(handle)
            .map_err(|e| bad_handle("cursor", e))?;
        if let Some(e) = &cursor.failed {
            return Err(e.clone());
        }
        let Some(mut reader) = cursor.reader.take() else {
            return Err(Error::Other(
                "the cursor was lost after a host failure; open a new one".into(),
            ));
        };
        let ns_dir = self.ctx.namespace_dir.clone();
        let (reader, records, failed) = blocking(move || {
            let (records, failed) = read(&mut reader);
            (reader, records, failed.map(|e| journal_error(e, &ns_dir)))
        })
        .await?;
        if let Ok(cursor) = self.table.get_mut(handle) {
            cursor.reader = Some(reader);
            cursor.failed.clone_from(&failed);
        }
        match failed {
            Some(e) if records.is_empty() => Err(e),
            // The error comes with the next call.
            _ => Ok(records),
        }
    }
}

/// What a cursor read returned: nothing, or records.
trait Empty {
    fn is_empty(&self) -> bool;
}

impl Empty for Vec<Entry> {
    fn is_empty(&self) -> bool {
        Vec::is_empty(self)
    }
}

impl Empty for types::EntryBlock {
    fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

impl store::HostCursor for MiniCtxView<'_> {
    async fn next(
        &mut self,
        handle: Resource<CursorHandle>,
        max: u32,
    ) -> Result<Vec<types::Entry>, HostError> {
        observed!(self, "store", "next", self.unit_of(&handle), {
            let entries = self.next_entries(&handle, max).await?;
            Ok(entries
                .into_iter()
                .map(|Entry { seq, data }| types::Entry { seq, data })
                .collect())
        })
    }

    async fn next_block(
        &mut self,
        handle: Resource<CursorHandle>,
        max: u32,
        max_bytes: u32,
    ) -> Result<types::EntryBlock, HostError> {
        observed!(self, "store", "next-block", self.unit_of(&handle), {
            Ok(self.next_block(&handle, max, max_bytes).await?)
        })
    }

    async fn drop(&mut self, handle: Resource<CursorHandle>) -> wasmtime::Result<()> {
        self.drop_handle(handle);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_some_caps_the_batch_and_sees_later_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = Journal::open(dir.path()).expect("open");
        journal.append_batch(&["1", "2", "3"]).expect("append");
        let mut reader = journal.read_from(0).expect("reader");
        let mut seqs = |max| {
            let (entries, failed) = read_some(&mut reader, max);
            assert!(failed.is_none());
            entries.into_iter().map(|e| e.seq).collect::<Vec<_>>()
        };
        assert_eq!(seqs(2), [1, 2]);
        assert_eq!(seqs(usize::MAX), [3]);
        assert!(seqs(10).is_empty());
        journal.append("4").expect("append");
        assert_eq!(seqs(10), [4]);
    }

    #[test]
    fn read_some_returns_the_records_before_damage_then_the_error() {
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
        let (entries, failed) = read_some(&mut reader, 10);
        assert_eq!(entries.len(), 1);
        assert!(matches!(failed, Some(JournalError::Corrupt(c)) if c.seq == 2));
    }

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
}
