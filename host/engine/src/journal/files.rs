//! The segment files as the writer sees them: where the next line goes,
//! rotation, and preallocation.
//!
//! Preallocation: appending to the end of a file makes every `fdatasync`
//! write the inode too (the file size changed), which on ext4 and XFS means a
//! journal commit per sync. So the active segment is grown ahead of its
//! records by writing zeros, and records then overwrite zeros that are
//! already on disk: their sync writes data only. The zeros after the last
//! line are not a record (a line never starts with a NUL byte); recovery
//! recognises them as preallocated space, not as damage (FORMAT.md,
//! "Preallocated space"). A segment is trimmed to its records before the
//! next one starts, so only the active segment carries zeros.
//!
//! A full disk (or any failed write or sync) has a definite outcome: a
//! group whose records are not all durable is undone before its error is
//! returned, so a failed append is not there after a restart and a caller
//! that retries it gets no duplicate. Preallocation is best effort: zeros
//! that do not fit never fail records that do.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::JournalOptions;
use super::mark::write_mark;
use super::scan::{SealCache, SegmentInfo, SegmentState};
use super::sealing::write_seal;
use super::writer::Unit;
use crate::error::JournalError;
use crate::fs::{FileRef, FileSystem};
use crate::segment;
use crate::segment::seal::{BuilderMark, IndexEntry, SealBuilder};

/// The default for [`JournalOptions::preallocate`](super::JournalOptions::preallocate).
pub const DEFAULT_PREALLOCATE: u64 = 1024 * 1024;

/// A segment grows to a multiple of this (one page).
const PAGE: u64 = 4096;

/// The segment files: written only by the leader of a group.
#[derive(Debug)]
pub(super) struct SegmentFiles {
    pub segments: Vec<SegmentInfo>,
    file: FileRef,
    /// Where the next line goes in the active (last) segment.
    offset: u64,
    /// The active segment's length: from `offset` to here it holds zeros.
    /// (Never more than the real length; if it is less, the zeros after it
    /// are only rewritten or cut, which is harmless.)
    allocated: u64,
    /// Where the record bytes this group wrote to the active segment end
    /// (they may have landed even if the write failed): what an undo zeroes.
    touched: u64,
    /// The most the active segment is grown by ahead of its records.
    preallocate: u64,
    /// The active segment has bytes written since its last sync.
    unsynced: bool,
    /// Bytes of all segments but the active one.
    closed_bytes: u64,
    /// The active segment's seal as its records are written.
    built: SealBuilder,
    /// A mark is left once the active segment has grown this much past
    /// `marked` (0: never).
    mark_every: u64,
    /// How long the active segment was at the last mark (or at open).
    marked: u64,
}

/// Where the active segment stood before a group wrote to it: what an undo
/// restores.
#[derive(Debug, Clone, Copy)]
struct Mark {
    offset: u64,
    len: u64,
    built: BuilderMark,
}

/// A group that failed: its error, and how far it was made durable anyway
/// (the units synced into a segment before a rotation are; 0 if none).
#[derive(Debug)]
pub(super) struct Failed {
    pub durable_seq: u64,
    pub error: JournalError,
}

/// A segment as readers see it.
#[derive(Debug, Clone)]
pub(super) struct ReadSegment {
    pub first_seq: u64,
    pub path: PathBuf,
    /// Its seal, if it is closed (held whole, or left there by the first
    /// reader that reads it from the file): readers stop where its records
    /// end.
    pub seal: Option<SealCache>,
    /// Where units start in the active segment so far (a sealed segment's
    /// index is its seal's).
    pub index: Arc<[IndexEntry]>,
}

/// The segments as readers see them, oldest first: kept apart from the
/// files so that a reader never waits for a leader's fsync.
pub(super) type SegmentIndex = Vec<ReadSegment>;

impl SegmentFiles {
    /// The files of `segments`, the last of them active, its seal so far
    /// `built` (see [`reopen_active`]).
    pub fn open(
        fs: &dyn FileSystem,
        segments: Vec<SegmentInfo>,
        built: SealBuilder,
        options: &JournalOptions,
    ) -> Result<Self, JournalError> {
        let (active, closed) = segments
            .split_last()
            .expect("recovery leaves at least one segment");
        let file = fs
            .open_write(&active.path)
            .map_err(JournalError::io(&active.path))?;
        let allocated = file.len().map_err(JournalError::io(&active.path))?;
        let closed_bytes = closed.iter().map(|s| s.valid_len).sum();
        let offset = active.valid_len;
        Ok(SegmentFiles {
            segments,
            file,
            offset,
            allocated: allocated.max(offset),
            touched: offset,
            preallocate: options.preallocate,
            unsynced: false,
            closed_bytes,
            built,
            mark_every: options.mark_every,
            // The scan may have started at a mark; one more costs little.
            marked: 0,
        })
    }

    /// The index readers use.
    pub fn index(&self) -> SegmentIndex {
        let active = self.segments.len() - 1;
        self.segments
            .iter()
            .enumerate()
            .map(|(i, s)| {
                // A closed segment's index is its seal's (which a reader
                // reads from the file if open read only its head); the
                // active one's is renewed as it grows.
                let index: Arc<[IndexEntry]> = if i == active {
                    self.built.index().into()
                } else {
                    Arc::new([])
                };
                let seal = s.state.seal().cloned();
                ReadSegment {
                    first_seq: s.first_seq,
                    path: s.path.clone(),
                    seal,
                    index,
                }
            })
            .collect()
    }

    /// Entries in the active segment's index: readers' index is renewed
    /// when it grows.
    pub fn active_index_len(&self) -> usize {
        self.built.index().len()
    }

    /// Bytes of records (and headers) in all segments; preallocated zeros
    /// are not counted.
    pub fn size_bytes(&self) -> u64 {
        self.closed_bytes + self.offset
    }

    pub fn remove_oldest_segment(&mut self) {
        let oldest = self.segments.remove(0);
        self.closed_bytes -= oldest.valid_len;
    }

    fn active_path(&self) -> &Path {
        &self.segments[self.segments.len() - 1].path
    }

    fn active_holds_records(&self) -> bool {
        let first_seq = self.segments[self.segments.len() - 1].first_seq;
        self.offset > segment::header_line(first_seq).len() as u64
    }

    /// How long the active segment should be to take `len` more bytes: as
    /// long as needed plus room for as many bytes again as it holds (so a
    /// small journal stays small), rounded up to whole pages, at most
    /// `preallocate` more and not past the segment size.
    fn target_len(&self, len: u64, segment_size: u64) -> u64 {
        let needed = self.offset + len;
        if needed <= self.allocated || self.preallocate == 0 {
            return needed;
        }
        let growth = needed.min(self.preallocate);
        (needed + growth)
            .next_multiple_of(PAGE)
            .min(needed + self.preallocate)
            .min(segment_size)
            .max(needed)
    }

    /// Writes `bytes`, whole record lines of which the first is record
    /// `first_seq`, after the active segment's last line.
    fn write(
        &mut self,
        bytes: &[u8],
        first_seq: u64,
        segment_size: u64,
    ) -> Result<(), JournalError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let len = bytes.len() as u64;
        let target = self.target_len(len, segment_size);
        let end = self.offset + len;
        self.touched = self.touched.max(end);
        self.unsynced = true;
        self.file
            .write_all_at(bytes, self.offset)
            .map_err(JournalError::io(self.active_path()))?;
        self.built.add_lines(bytes, first_seq);
        self.offset = end;
        self.allocated = self.allocated.max(end);
        if target > self.allocated {
            // Zeros up to the new length go out before this group's sync, so
            // they are on disk before any record lands on them.
            let from = self.allocated;
            let zeros = vec![0u8; (target - from) as usize];
            self.allocated = match self.file.write_all_at(&zeros, from) {
                Ok(()) => target,
                // Best effort: the records are written and will be synced;
                // the zeros are an optimisation and must not fail them. As
                // many as landed are preallocated space like any other.
                Err(_) => self.file.len().unwrap_or(from).max(from),
            };
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), JournalError> {
        if self.unsynced {
            self.file
                .sync_data()
                .map_err(JournalError::io(self.active_path()))?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one at `first_seq`. The
    /// active one has been synced (by `commit`), so only the active segment
    /// ever holds unsynced records. It is trimmed to its records, its seal
    /// written after them and synced; only then is the next segment created
    /// (FORMAT.md, "Seals": a crash at any step leaves the last segment
    /// unsealed, or sealed with no successor, and open finishes the job).
    fn rotate(
        &mut self,
        fs: &dyn FileSystem,
        dir: &Path,
        first_seq: u64,
    ) -> Result<(), JournalError> {
        let seal = self.built.seal(first_seq - 1);
        let sealed_len = match write_seal(&self.file, &seal, self.allocated > self.offset) {
            Ok(len) => len,
            Err(source) => {
                // Best effort, as for a failed group: no torn seal left
                // behind (on a full disk the cut frees what it took).
                let _ = self
                    .file
                    .set_len(seal.len)
                    .and_then(|()| self.file.sync_data());
                return Err(JournalError::io(self.active_path())(source));
            }
        };
        self.allocated = sealed_len;
        let (path, file) = create_segment(fs, dir, first_seq)?;
        tracing::debug!(segment = %path.display(), first_seq, "journal: sealed the active segment and rotated to a new one");
        if let Some(active) = self.segments.last_mut() {
            active.valid_len = sealed_len;
            active.state = SegmentState::sealed(seal);
        }
        self.closed_bytes += sealed_len;
        let header = segment::header_line(first_seq);
        self.offset = header.len() as u64;
        self.allocated = self.offset;
        self.touched = self.offset;
        self.built = SealBuilder::new(first_seq, header.as_bytes());
        self.marked = self.offset;
        self.segments.push(SegmentInfo {
            first_seq,
            path,
            valid_len: self.offset,
            state: SegmentState::Unsealed {
                built: self.built.clone(),
                torn_seal_at: None,
            },
        });
        self.file = file;
        Ok(())
    }

    /// Writes a group of units and makes it durable. A unit that would take
    /// a segment holding records past `segment_size` starts a new segment;
    /// a unit never spans two segments.
    ///
    /// On failure, the units synced before a rotation stay durable (and
    /// [`Failed::durable_seq`] says up to where); what the group wrote after
    /// them is undone (see `undo`).
    pub fn commit(
        &mut self,
        fs: &dyn FileSystem,
        dir: &Path,
        segment_size: u64,
        buf: &[u8],
        units: &[Unit],
    ) -> Result<(), Failed> {
        let mut durable_seq = 0;
        let mut mark = self.mark();
        let mut written = 0; // bytes of `buf` already written
        let mut written_seq = units.first().map_or(0, |u| u.first_seq); // the first seq not written
        let mut start = 0; // where the current unit starts in `buf`
        for unit in units {
            let in_segment = self.offset + (start - written) as u64;
            let holds_records = self.active_holds_records() || start > written;
            if holds_records && in_segment + (unit.end - start) as u64 > segment_size {
                self.write(&buf[written..start], written_seq, segment_size)
                    .and_then(|()| self.sync())
                    .map_err(|error| self.undo(mark, error, durable_seq))?;
                written = start;
                written_seq = unit.first_seq;
                durable_seq = unit.first_seq - 1;
                self.rotate(fs, dir, unit.first_seq)
                    .map_err(|error| Failed { durable_seq, error })?;
                mark = self.mark();
            }
            start = unit.end;
        }
        self.write(&buf[written..], written_seq, segment_size)
            .and_then(|()| self.sync())
            .map_err(|error| self.undo(mark, error, durable_seq))?;
        if let Some(last) = units.last() {
            self.leave_mark(fs, dir, last.last_seq, segment_size);
        }
        Ok(())
    }

    /// Leaves a mark of the active segment, whose records (synced) end with
    /// `last_seq`, if it grew enough since the last one. Best effort: a
    /// mark only saves work at open.
    fn leave_mark(&mut self, fs: &dyn FileSystem, dir: &Path, last_seq: u64, segment_size: u64) {
        if self.mark_every == 0 || self.offset < self.marked.saturating_add(self.mark_every) {
            return;
        }
        self.marked = self.offset;
        if let Err(error) = write_mark(fs, dir, &self.file, &self.built, last_seq, segment_size) {
            tracing::debug!(dir = %dir.display(), %error, "journal: no mark left");
        }
    }

    fn mark(&mut self) -> Mark {
        self.touched = self.offset;
        Mark {
            offset: self.offset,
            len: self.allocated,
            built: self.built.mark(),
        }
    }

    /// After `error` (a failed write or sync), puts the active segment back
    /// as it was at `mark`: the file cut to its old length (first: on a full
    /// disk that frees space, which a copy-on-write file system needs to
    /// overwrite), the group's bytes in the old length zeroed again, and
    /// synced. Every byte the group wrote is thus written again or cut, so
    /// even after a failed fsync (whose pages the kernel may have marked
    /// clean) a successful sync here leaves the disk as before the group: a
    /// definite "not written". If the undo fails too, the outcome is
    /// unknown until a reopen reads the disk, and the error says so.
    fn undo(&mut self, mark: Mark, error: JournalError, durable_seq: u64) -> Failed {
        let zero_to = self.touched.min(mark.len);
        let undone = (|| {
            self.file.set_len(mark.len)?;
            if zero_to > mark.offset {
                let zeros = vec![0u8; (zero_to - mark.offset) as usize];
                self.file.write_all_at(&zeros, mark.offset)?;
            }
            self.file.sync_data()
        })();
        let error = match undone {
            Ok(()) => {
                self.built.restore(mark.built);
                self.offset = mark.offset;
                self.allocated = mark.len;
                self.touched = mark.offset;
                self.unsynced = false;
                error
            }
            Err(undo_error) => outcome_unknown(error, &undo_error),
        };
        Failed { durable_seq, error }
    }
}

/// `error`, saying that undoing the write it failed also failed.
fn outcome_unknown(error: JournalError, undo_error: &io::Error) -> JournalError {
    match error {
        JournalError::Io { path, source } => JournalError::Io {
            path,
            source: io::Error::new(
                source.kind(),
                format!(
                    "{source}; undoing the failed write also failed ({undo_error}): \
                     whether the records are on disk is unknown until the journal is reopened"
                ),
            ),
        },
        other => other,
    }
}

/// Creates segment `first_seq` in `dir`: header written and synced, then the
/// directory synced, so the segment exists durably before any record does.
/// Returns its path and the file, open for writing.
///
/// If the header cannot be written or synced (a full disk), the file is
/// removed again, best effort: nothing refers to it yet. Should that fail
/// too, a torn header in the last segment is what recovery removes on open
/// (a crash here leaves the same), never damage.
pub(super) fn create_segment(
    fs: &dyn FileSystem,
    dir: &Path,
    first_seq: u64,
) -> Result<(PathBuf, FileRef), JournalError> {
    let path = segment::segment_path(dir, first_seq);
    let file = fs.create_new(&path).map_err(JournalError::io(&path))?;
    let header = segment::header_line(first_seq);
    if let Err(source) = file
        .write_all_at(header.as_bytes(), 0)
        .and_then(|()| file.sync_data())
    {
        drop(file);
        if fs.remove_file(&path).is_ok() {
            let _ = fs.sync_dir(dir);
        }
        return Err(JournalError::Io { path, source });
    }
    fs.sync_dir(dir).map_err(JournalError::io(dir))?;
    Ok((path, file))
}
