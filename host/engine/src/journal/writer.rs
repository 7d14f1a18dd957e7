//! Appending: records are encoded and written under the writer mutex, then
//! made durable by group commit.
//!
//! Group commit needs no background thread. An appender whose records are
//! written but not yet durable becomes the sync leader if no sync is in
//! flight: it notes the last sequence number written so far, runs one
//! `fdatasync`, and marks everything up to that number durable for every
//! waiter. Appenders that wrote while that sync ran wait for it, then one of
//! them leads the next sync, which covers them all. Under load one fsync
//! therefore serves many appenders.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use serde::Serialize;

use super::scan::SegmentInfo;
use super::{Journal, lock};
use crate::error::JournalError;
use crate::fs::{FileRef, FileSystem};
use crate::record::check_record;
use crate::segment;

/// The segment being written and the list of all segments.
#[derive(Debug)]
pub(super) struct WriterState {
    pub segments: Vec<SegmentInfo>,
    file: FileRef,
    /// Where the next line goes in the active (last) segment.
    offset: u64,
    pub next_seq: u64,
    /// Bytes of all segments but the active one.
    closed_bytes: u64,
    buf: Vec<u8>,
}

/// Progress of group commit.
#[derive(Debug)]
pub(super) struct SyncState {
    /// Everything up to here is on stable storage.
    synced_seq: u64,
    /// A leader is running `fdatasync` now.
    syncing: bool,
}

impl SyncState {
    pub fn new(synced_seq: u64) -> Self {
        SyncState {
            synced_seq,
            syncing: false,
        }
    }
}

impl WriterState {
    pub fn open(
        fs: &dyn FileSystem,
        segments: Vec<SegmentInfo>,
        next_seq: u64,
    ) -> Result<Self, JournalError> {
        let (active, closed) = segments
            .split_last()
            .expect("recovery leaves at least one segment");
        let file = fs
            .open_write(&active.path)
            .map_err(JournalError::io(&active.path))?;
        let closed_bytes = closed.iter().map(|s| s.valid_len).sum();
        let offset = active.valid_len;
        Ok(WriterState {
            segments,
            file,
            offset,
            next_seq,
            closed_bytes,
            buf: Vec::new(),
        })
    }

    pub fn first_seq(&self) -> u64 {
        self.segments.first().map_or(self.next_seq, |s| s.first_seq)
    }

    pub fn size_bytes(&self) -> u64 {
        self.closed_bytes + self.offset
    }

    pub fn remove_oldest_segment(&mut self) {
        let oldest = self.segments.remove(0);
        self.closed_bytes -= oldest.valid_len;
    }

    /// (first seq, path) of every segment, for readers.
    pub fn segment_list(&self) -> Vec<(u64, PathBuf)> {
        self.segments
            .iter()
            .map(|s| (s.first_seq, s.path.clone()))
            .collect()
    }

    fn active_path(&self) -> &Path {
        &self.segments[self.segments.len() - 1].path
    }

    fn active_is_empty(&self) -> bool {
        let active = &self.segments[self.segments.len() - 1];
        self.offset <= segment::header_line(active.first_seq).len() as u64
    }

    /// Starts a new active segment at `next_seq`. The caller has made the
    /// active segment durable first.
    fn rotate(&mut self, fs: &dyn FileSystem, dir: &Path) -> Result<(), JournalError> {
        let path = create_segment(fs, dir, self.next_seq)?;
        let file = fs.open_write(&path).map_err(JournalError::io(&path))?;
        if let Some(active) = self.segments.last_mut() {
            active.valid_len = self.offset;
        }
        self.closed_bytes += self.offset;
        self.offset = segment::header_line(self.next_seq).len() as u64;
        self.segments.push(SegmentInfo {
            first_seq: self.next_seq,
            path,
            valid_len: self.offset,
        });
        self.file = file;
        Ok(())
    }
}

/// Creates segment `first_seq` in `dir`: header written and synced, then the
/// directory synced, so the segment exists durably before any record does.
pub(super) fn create_segment(
    fs: &dyn FileSystem,
    dir: &Path,
    first_seq: u64,
) -> Result<PathBuf, JournalError> {
    let path = segment::segment_path(dir, first_seq);
    let file = fs.create_new(&path).map_err(JournalError::io(&path))?;
    file.write_all_at(segment::header_line(first_seq).as_bytes(), 0)
        .map_err(JournalError::io(&path))?;
    file.sync_data().map_err(JournalError::io(&path))?;
    fs.sync_dir(dir).map_err(JournalError::io(dir))?;
    Ok(path)
}

impl Journal {
    /// Appends one record (exactly one JSON value) and returns its sequence
    /// number once it is on stable storage.
    pub fn append(&self, record: &str) -> Result<u64, JournalError> {
        self.append_batch(&[record])
    }

    /// Serializes `value` to JSON and appends it; see [`Journal::append`].
    pub fn append_json<T: Serialize + ?Sized>(&self, value: &T) -> Result<u64, JournalError> {
        let text =
            serde_json::to_string(value).map_err(|e| JournalError::InvalidRecord(e.to_string()))?;
        self.append(&text)
    }

    /// Appends `records` as one atomic unit and returns the sequence number
    /// of the last one once all are on stable storage. After a crash the
    /// batch is there whole or not at all. If any record is invalid, nothing
    /// is written.
    pub fn append_batch<S: AsRef<str>>(&self, records: &[S]) -> Result<u64, JournalError> {
        if records.is_empty() {
            return Err(JournalError::InvalidRecord("empty batch".into()));
        }
        let limit = self.inner.options.max_record_size;
        let checked = records
            .iter()
            .map(|r| check_record(r.as_ref(), limit))
            .collect::<Result<Vec<_>, _>>()?;
        let last = self.write_lines(&checked)?;
        self.wait_durable(last)?;
        Ok(last)
    }

    /// Writes the lines of a batch; returns the last sequence number written.
    fn write_lines(&self, records: &[Cow<'_, str>]) -> Result<u64, JournalError> {
        let inner = &*self.inner;
        let mut writer = lock(&inner.writer);
        if self.is_poisoned() {
            return Err(JournalError::Poisoned);
        }
        let mut buf = std::mem::take(&mut writer.buf);
        buf.clear();
        let first = writer.next_seq;
        for (i, record) in records.iter().enumerate() {
            segment::encode_line(&mut buf, first + i as u64, record, i + 1 < records.len());
        }
        let result = self.write_buf(&mut writer, &buf);
        writer.buf = buf;
        result?;
        writer.next_seq += records.len() as u64;
        Ok(writer.next_seq - 1)
    }

    fn write_buf(&self, writer: &mut WriterState, buf: &[u8]) -> Result<(), JournalError> {
        let inner = &*self.inner;
        let fs = inner.options.fs.as_ref();
        let full = writer.offset + buf.len() as u64 > inner.options.segment_size;
        let result = if full && !writer.active_is_empty() {
            // Every record of the closing segment must be durable before the
            // next segment exists: afterwards only the active one is synced.
            let (file, path) = (writer.file.clone(), writer.active_path().to_path_buf());
            let upto = writer.next_seq - 1;
            self.sync_file(&file, &path, upto, upto)
                .and_then(|()| writer.rotate(fs, &inner.dir))
        } else {
            Ok(())
        };
        let result = result.and_then(|()| {
            writer
                .file
                .write_all_at(buf, writer.offset)
                .map_err(JournalError::io(writer.active_path()))
        });
        if result.is_err() {
            // A partial write may be in the file and the page cache may not
            // match the disk: refuse everything until the journal is reopened
            // and recovery cuts what is torn.
            inner.poisoned.store(true, Ordering::Release);
            inner.synced.notify_all();
        } else {
            writer.offset += buf.len() as u64;
        }
        result
    }

    /// Returns once everything up to `target` is durable (group commit).
    fn wait_durable(&self, target: u64) -> Result<(), JournalError> {
        let inner = &*self.inner;
        loop {
            {
                let mut sync = lock(&inner.sync);
                loop {
                    if sync.synced_seq >= target {
                        return Ok(());
                    }
                    if self.is_poisoned() {
                        return Err(JournalError::Poisoned);
                    }
                    if !sync.syncing {
                        break;
                    }
                    sync = inner.synced.wait(sync).unwrap_or_else(|p| p.into_inner());
                }
            }
            // Lock order is writer, then sync: take the writer briefly to see
            // what is written, then lead a sync that covers all of it.
            let (file, path, upto) = {
                let writer = lock(&inner.writer);
                let path = writer.active_path().to_path_buf();
                (writer.file.clone(), path, writer.next_seq - 1)
            };
            self.sync_file(&file, &path, upto, target)?;
        }
    }

    /// Runs `fdatasync` on `file` to make every record up to `upto` durable,
    /// unless records up to `need` are already durable. Syncs never overlap:
    /// when two overlap and one fails, Linux may report the error to only
    /// one of them, and the other must not acknowledge records on its word.
    /// Older segments were synced when they were closed, so syncing the
    /// active one covers every record up to `upto`.
    fn sync_file(
        &self,
        file: &FileRef,
        path: &Path,
        upto: u64,
        need: u64,
    ) -> Result<(), JournalError> {
        let inner = &*self.inner;
        let mut sync = lock(&inner.sync);
        while sync.syncing {
            sync = inner.synced.wait(sync).unwrap_or_else(|p| p.into_inner());
        }
        if sync.synced_seq >= need {
            return Ok(());
        }
        if self.is_poisoned() {
            return Err(JournalError::Poisoned);
        }
        sync.syncing = true;
        drop(sync);
        let result = file.sync_data();
        let mut sync = lock(&inner.sync);
        sync.syncing = false;
        inner.synced.notify_all();
        match result {
            Ok(()) => {
                sync.synced_seq = sync.synced_seq.max(upto);
                inner.durable_seq.fetch_max(upto, Ordering::AcqRel);
                Ok(())
            }
            Err(source) => {
                inner.poisoned.store(true, Ordering::Release);
                Err(JournalError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }
}
