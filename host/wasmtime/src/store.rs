//! The host side of the `mini:storage/store` interface: durable journals.
//!
//! The host functions call the host's backend (see [`crate::backend`]):
//! the local engine's journals, or JetStream's. Nothing a guest passes in
//! can make the host panic or trap: bad records, bad names and stale
//! handles all come back as the WIT `error` variant.

use std::sync::Arc;

use mini_engine::JournalOptions;
use mini_engine::layout::UnitKind;
use wasmtime::component::Resource;

use crate::HostError;
use crate::backend::local::LocalJournal;
use crate::backend::{Backend, JournalBackend, Read, RecordCursor};
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
    journal: Arc<dyn JournalBackend>,
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

    /// The last seq stored in the journal, as this host knows it.
    pub fn last_seq(&self) -> u64 {
        self.journal.last_seq()
    }
}

/// A cursor held by a guest: the `cursor` resource of the WIT.
///
/// The backend's cursor moves into each read and comes back with it;
/// `None` only while a read is under way or after its task died. Once a
/// read fails (a damaged journal), every later `next` returns that error
/// again, so a guest never mistakes damage for the end of the journal.
#[derive(Debug)]
pub struct CursorHandle {
    cursor: Option<Box<dyn RecordCursor>>,
    failed: Option<Error>,
    /// The claim of the state whose recovery made the cursor.
    _claim: Option<Arc<Claim>>,
}

impl CursorHandle {
    /// A cursor over `cursor`.
    pub(crate) fn new(cursor: Box<dyn RecordCursor>) -> CursorHandle {
        CursorHandle {
            cursor: Some(cursor),
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
    fn journal_of(
        &self,
        handle: &Resource<JournalHandle>,
    ) -> Result<Arc<dyn JournalBackend>, Error> {
        self.table
            .get(handle)
            .map(|h| h.journal.clone())
            .map_err(|e| bad_handle("journal", e))
    }

    /// Appends `records` (one, or a batch) after checking their sizes; the
    /// backend counts them against the quota.
    async fn append_records(
        &mut self,
        handle: &Resource<JournalHandle>,
        records: Vec<String>,
    ) -> Result<u64, Error> {
        let bytes = self.check_record_sizes(&records)?;
        let journal = self.journal_of(handle)?;
        let appended = journal.append(records, bytes).await;
        self.count_write(appended, |_| true)
    }
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
            Ok(self.append_records(&handle, vec![record]).await?)
        })
    }

    async fn append_batch(
        &mut self,
        handle: Resource<JournalHandle>,
        records: Vec<String>,
    ) -> Result<u64, HostError> {
        observed!(self, "store", "append-batch", self.unit_of(&handle), {
            Ok(self.append_records(&handle, records).await?)
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
            Ok(self.journal_of(&handle)?.first_seq().await?)
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
        let journal: Arc<dyn JournalBackend> = match self.ctx.host.backend() {
            Backend::Local => self.open_local_journal(&name).await?,
            #[cfg(feature = "jetstream")]
            Backend::JetStream(_) => self.open_stream_journal(&name).await?,
        };
        self.push_handle(JournalHandle { journal, name })
    }

    async fn open_local_journal(&mut self, name: &str) -> Result<Arc<dyn JournalBackend>, Error> {
        let Admission { dir, ns_dir, usage } = self.admit(UnitKind::Journal, name).await?;
        let host = self.ctx.host.clone();
        let quota = self.ctx.limits.disk_quota;
        let options = JournalOptions {
            segment_size: self.ctx.limits.segment_size,
            max_record_size: self.ctx.limits.max_record_size,
            preallocate: preallocation(quota),
            fs: self.ctx.fs.clone(),
            ..JournalOptions::default()
        };
        let journal = blocking(move || {
            // Creates the directories (each synced into its parent) if needed.
            host.open_journal(&dir, options)
                .map_err(|e| journal_error(e, &ns_dir))
                .map(|journal| LocalJournal::new(journal, usage, ns_dir, quota))
        })
        .await??;
        Ok(Arc::new(journal))
    }

    /// Opens a journal on JetStream: the checks of an open (name,
    /// capability, handle limit) and the namespace's stream limit; nothing
    /// touches the local disk.
    #[cfg(feature = "jetstream")]
    async fn open_stream_journal(&mut self, name: &str) -> Result<Arc<dyn JournalBackend>, Error> {
        let backend = self.admit_remote(UnitKind::Journal, name)?;
        let runtime = backend.runtime().clone();
        let journal = self
            .ctx
            .host
            .open_stream_journal(&self.ctx.namespace, name, self.ctx.limits.max_streams)
            .await?;
        let quota = backend.quota_of(&self.ctx.namespace, self.ctx.limits.disk_quota);
        Ok(Arc::new(crate::backend::jetstream::StreamJournal::new(
            journal, runtime, quota,
        )))
    }

    async fn open_cursor(
        &mut self,
        handle: &Resource<JournalHandle>,
        from_seq: u64,
    ) -> Result<Resource<CursorHandle>, Error> {
        let journal = self.journal_of(handle)?;
        self.check_handle_limit()?;
        let cursor = journal.read_from(from_seq).await?;
        self.push_handle(CursorHandle::new(cursor))
    }
}

impl MiniCtxView<'_> {
    /// Reads the next block of the cursor: up to `max` records and about
    /// `max_bytes` of data. A read that met damage returns what it read
    /// before it; the damage is the error of the next call (and of every
    /// call after it), or of this one if it read nothing.
    async fn next_block(
        &mut self,
        handle: &Resource<CursorHandle>,
        max: u32,
        max_bytes: usize,
    ) -> Result<types::EntryBlock, Error> {
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        let held = self
            .table
            .get_mut(handle)
            .map_err(|e| bad_handle("cursor", e))?;
        if let Some(e) = &held.failed {
            return Err(e.clone());
        }
        let Some(cursor) = held.cursor.take() else {
            return Err(Error::Other(
                "the cursor was lost after a host failure; open a new one".into(),
            ));
        };
        let Read {
            cursor,
            block,
            failed,
        } = cursor.next_block(max, max_bytes).await;
        if let Ok(held) = self.table.get_mut(handle) {
            held.cursor = Some(cursor);
            held.failed.clone_from(&failed);
        }
        match failed {
            Some(e) if block.ends.is_empty() => Err(e),
            // The error comes with the next call.
            _ => Ok(block),
        }
    }
}

/// The records of `block`, one entry each.
fn entries(block: types::EntryBlock) -> Vec<types::Entry> {
    let mut start = 0usize;
    let mut out = Vec::with_capacity(block.ends.len());
    for (seq, end) in (block.first_seq..).zip(block.ends) {
        let end = usize::try_from(end)
            .unwrap_or(usize::MAX)
            .min(block.data.len());
        out.push(types::Entry {
            seq,
            data: block.data.get(start..end).unwrap_or_default().to_owned(),
        });
        start = end;
    }
    out
}

impl store::HostCursor for MiniCtxView<'_> {
    async fn next(
        &mut self,
        handle: Resource<CursorHandle>,
        max: u32,
    ) -> Result<Vec<types::Entry>, HostError> {
        observed!(self, "store", "next", self.unit_of(&handle), {
            let block = self.next_block(&handle, max, MAX_BYTES_PER_NEXT).await?;
            Ok(entries(block))
        })
    }

    async fn next_block(
        &mut self,
        handle: Resource<CursorHandle>,
        max: u32,
        max_bytes: u32,
    ) -> Result<types::EntryBlock, HostError> {
        observed!(self, "store", "next-block", self.unit_of(&handle), {
            let max_bytes = usize::try_from(max_bytes).unwrap_or(usize::MAX);
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
    fn entries_split_a_block_where_each_record_ends() {
        let block = types::EntryBlock {
            first_seq: 7,
            data: "1[22]\"é\"".into(),
            ends: vec![1, 5, 9],
        };
        let got: Vec<(u64, String)> = entries(block)
            .into_iter()
            .map(|e| (e.seq, e.data))
            .collect();
        assert_eq!(
            got,
            [(7, "1".into()), (8, "[22]".into()), (9, "\"é\"".into())]
        );
    }
}
