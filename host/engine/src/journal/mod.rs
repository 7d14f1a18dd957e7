//! The journal: an append-only log of JSON records in segment files.
//!
//! [`Journal`] is the writer (one per directory, guarded by a lock file);
//! recovery on open lives in `scan`, group commit in `writer`, streamed reads
//! in `reader`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};

use crate::error::JournalError;
use crate::fs::{FileSystem, StdFs};
use crate::lock::DirLock;
use crate::record::DEFAULT_MAX_RECORD_SIZE;

mod files;
pub(crate) mod mark;
mod reader;
pub(crate) mod scan;
mod sealing;
mod writer;

pub use files::DEFAULT_PREALLOCATE;
use files::{SegmentFiles, SegmentIndex};
pub use mark::{DEFAULT_MARK_EVERY, MARK_FILE, MARK_TEMP};
pub use reader::{Reader, read_unlocked};
use scan::{Depth, TornTail};
use writer::CommitQueue;

/// The first sequence numbers of the segment files of the journal in `dir`,
/// ascending, listed without taking its lock. The first is the first seq the
/// journal still holds; a segment starting at `n` means the journal reached
/// seq `n - 1` (a segment starts only after the one before it is full).
///
/// ```
/// use mini_engine::{Journal, JournalOptions, journal::list_segments};
/// let dir = tempfile::tempdir()?;
/// let options = JournalOptions { segment_size: 1, ..JournalOptions::default() };
/// let journal = Journal::open_with(dir.path(), options)?; // a segment per record
/// journal.append("1")?;
/// journal.append("2")?;
/// assert_eq!(list_segments(dir.path())?, [1, 2]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn list_segments(dir: &Path) -> Result<Vec<u64>, JournalError> {
    scan::list_segments(&StdFs, dir)
}

/// The default segment size: a new segment starts once a segment holds
/// 64 MiB. Open reads one seal per closed segment and the active one from
/// its mark, so bigger segments open faster (fewer seals); smaller ones let
/// compaction free space sooner (BENCHMARKS.md, issue 11).
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 * 1024 * 1024;

/// How a journal is opened.
#[derive(Debug, Clone)]
pub struct JournalOptions {
    /// A segment that would grow past this many bytes is closed and a new one
    /// started (a single batch larger than this gets a segment of its own).
    pub segment_size: u64,
    /// Records larger than this many bytes are refused.
    pub max_record_size: usize,
    /// The most bytes of zeros the active segment is grown by ahead of its
    /// records, so that syncs write data only (see FORMAT.md, "Preallocated
    /// space"); 0 turns preallocation off. A segment grows by as many bytes
    /// as it holds, up to this, so a small journal stays small. Preallocated
    /// bytes take disk space: they count in the file's length.
    pub preallocate: u64,
    /// How often the writer leaves a mark of the active segment (after this
    /// many more bytes of it are synced), so that an open scans at most
    /// about this much of the segment (FORMAT.md, "Marks"); 0 turns marks
    /// off. A mark is one small file, written without a sync.
    pub mark_every: u64,
    /// The file system (the real one, or a fault-injecting one in tests).
    pub fs: Arc<dyn FileSystem>,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            segment_size: DEFAULT_SEGMENT_SIZE,
            max_record_size: DEFAULT_MAX_RECORD_SIZE,
            preallocate: DEFAULT_PREALLOCATE,
            mark_every: DEFAULT_MARK_EVERY,
            fs: Arc::new(StdFs),
        }
    }
}

/// What recovery found and repaired when the journal was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Bytes cut from the end of the journal (an incomplete last line, an
    /// incomplete last batch, a last line whose crc failed).
    pub dropped_bytes: u64,
    /// Complete records cut with them (the first lines of an unfinished batch).
    pub dropped_records: u64,
    /// Records found in the journal after recovery.
    pub records: u64,
}

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its sequence number.
    pub seq: u64,
    /// The record exactly as stored (JSON text).
    pub data: String,
}

/// A durable journal, opened for writing.
///
/// Cloning is cheap and shares the handle; every method takes `&self`, so a
/// journal is used from many threads at once, and concurrent appenders share
/// fsyncs (group commit). The directory stays locked until the last clone is
/// dropped.
#[derive(Debug, Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

/// A handle that does not keep the journal open; see [`Journal::downgrade`].
#[derive(Debug, Clone)]
pub struct WeakJournal {
    inner: Weak<Inner>,
}

impl WeakJournal {
    /// The journal, if some [`Journal`] clone still keeps it open.
    pub fn upgrade(&self) -> Option<Journal> {
        self.inner.upgrade().map(|inner| Journal { inner })
    }
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    options: JournalOptions,
    recovery: RecoveryReport,
    /// The segment files; written by the leader of a commit group.
    files: Mutex<SegmentFiles>,
    /// The segments as readers see them.
    index: Mutex<SegmentIndex>,
    /// Bytes of records and headers in all segment files.
    size_bytes: AtomicU64,
    /// Appends waiting to be written; group commit's state.
    queue: Mutex<CommitQueue>,
    /// Signalled when a group is done (durable or failed).
    synced: Condvar,
    /// Signalled to a gathering leader when an appender queues or leaves.
    queued: Condvar,
    /// Last sequence number known durable; readers never go past it.
    durable_seq: AtomicU64,
    poisoned: AtomicBool,
    _lock: DirLock,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded state stays consistent across a panic (it is updated after
    // the I/O succeeds), so a poisoned mutex is still usable.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Journal {
    /// Opens (or creates) the journal in directory `dir` with default options.
    ///
    /// Recovery runs first: an incomplete last line or batch, or a last line
    /// whose crc fails, is cut off and the cut is synced
    /// ([`Journal::recovery`] reports it); damage before the tail fails with
    /// [`JournalError::Corrupt`] naming the file, offset and sequence.
    pub fn open(dir: impl AsRef<Path>) -> Result<Journal, JournalError> {
        Self::open_with(dir, JournalOptions::default())
    }

    /// Opens (or creates) the journal in `dir` with `options`.
    pub fn open_with(
        dir: impl AsRef<Path>,
        options: JournalOptions,
    ) -> Result<Journal, JournalError> {
        let dir = dir.as_ref().to_path_buf();
        let fs = options.fs.clone();
        create_dir_durably(fs.as_ref(), &dir)?;
        let lock = DirLock::acquire(fs.as_ref(), &dir)?;
        let mut scan = scan::scan_dir(fs.as_ref(), &dir, Depth::Seals, &mut |_, _| {})?;
        let mut recovery = RecoveryReport {
            records: scan.records,
            ..RecoveryReport::default()
        };
        if let Some(tail) = scan.tail.take() {
            recovery.dropped_bytes = tail.dropped_bytes();
            if let TornTail::Cut {
                dropped_records, ..
            } = &tail
            {
                recovery.dropped_records = *dropped_records;
            }
            cut_torn_tail(fs.as_ref(), &dir, &tail)?;
        }
        sealing::seal_closed_segments(fs.as_ref(), &mut scan.segments)?;
        if scan.segments.is_empty() {
            let first = sealing::new_segment(fs.as_ref(), &dir, scan.next_seq)?;
            scan.segments.push(first);
        }
        let Some(active) = scan.segments.last_mut() else {
            unreachable!("a segment was just created");
        };
        let built = sealing::reopen_active(fs.as_ref(), active)?;
        let files = SegmentFiles::open(fs.as_ref(), scan.segments, built, &options)?;
        let last = scan.next_seq - 1;
        Ok(Journal {
            inner: Arc::new(Inner {
                dir,
                options,
                recovery,
                index: Mutex::new(files.index()),
                size_bytes: AtomicU64::new(files.size_bytes()),
                files: Mutex::new(files),
                queue: Mutex::new(CommitQueue::new(scan.next_seq)),
                synced: Condvar::new(),
                queued: Condvar::new(),
                durable_seq: AtomicU64::new(last),
                poisoned: AtomicBool::new(false),
                _lock: lock,
            }),
        })
    }

    /// What recovery cut when this journal was opened.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.inner.recovery
    }

    /// The journal's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The options the journal was opened with.
    pub fn options(&self) -> &JournalOptions {
        &self.inner.options
    }

    /// The first sequence number still stored (after compaction), or the next
    /// sequence number if the journal holds no record.
    pub fn first_seq(&self) -> u64 {
        lock(&self.inner.index)[0].first_seq
    }

    /// The last durable sequence number; 0 when nothing was ever appended.
    pub fn last_seq(&self) -> u64 {
        self.inner.durable_seq.load(Ordering::Acquire)
    }

    /// The sequence number the next append gets.
    pub fn next_seq(&self) -> u64 {
        lock(&self.inner.queue).next_seq
    }

    /// Bytes of the journal's records and segment headers (preallocated
    /// zeros at the end of the active segment are not counted).
    pub fn size_bytes(&self) -> u64 {
        self.inner.size_bytes.load(Ordering::Acquire)
    }

    /// True after a write or fsync failed: the handle refuses writes until
    /// the journal is opened again.
    pub fn is_poisoned(&self) -> bool {
        self.inner.poisoned.load(Ordering::Acquire)
    }

    /// A handle that does not keep the journal open (nor its lock).
    pub fn downgrade(&self) -> WeakJournal {
        WeakJournal {
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// Deletes the segments whose records all have sequence numbers below
    /// `seq`, oldest first, each removal made durable before the next. The
    /// segment being written is never deleted. Returns how many segments were
    /// deleted. This is the only way data leaves a journal: call it only for
    /// records a durable snapshot covers.
    pub fn truncate_before(&self, seq: u64) -> Result<usize, JournalError> {
        if self.is_poisoned() {
            return Err(JournalError::Poisoned);
        }
        let fs = self.inner.options.fs.as_ref();
        let mut files = lock(&self.inner.files);
        let mut removed = 0;
        while files.segments.len() > 1 && files.segments[1].first_seq <= seq {
            let oldest = files.segments[0].path.clone();
            fs.remove_file(&oldest).map_err(JournalError::io(&oldest))?;
            files.remove_oldest_segment();
            *lock(&self.inner.index) = files.index();
            self.inner
                .size_bytes
                .store(files.size_bytes(), Ordering::Release);
            if let Err(source) = fs.sync_dir(&self.inner.dir) {
                // A failed fsync poisons the handle, as in `append`.
                self.inner.poisoned.store(true, Ordering::Release);
                tracing::warn!(dir = %self.inner.dir.display(), error = %source, "journal poisoned: a directory fsync failed during compaction; reopen it");
                return Err(JournalError::Io {
                    path: self.inner.dir.clone(),
                    source,
                });
            }
            removed += 1;
        }
        if removed > 0 {
            tracing::debug!(dir = %self.inner.dir.display(), before_seq = seq, segments_deleted = removed, "journal compacted");
        }
        Ok(removed)
    }
}

/// Creates `dir` and its missing ancestors, each followed by an fsync of its
/// parent so the new directory entries survive a power loss.
pub(crate) fn create_dir_durably(fs: &dyn FileSystem, dir: &Path) -> Result<(), JournalError> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !fs.is_dir(d)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    fs.create_dir_all(dir).map_err(JournalError::io(dir))?;
    for created in missing.iter().rev() {
        // The parent of a relative one-component path is "": the working directory.
        let parent = match created.parent() {
            Some(p) if p.as_os_str().is_empty() => Path::new("."),
            Some(p) => p,
            None => continue,
        };
        fs.sync_dir(parent).map_err(JournalError::io(parent))?;
    }
    Ok(())
}

fn cut_torn_tail(fs: &dyn FileSystem, dir: &Path, tail: &TornTail) -> Result<(), JournalError> {
    match tail {
        TornTail::Cut {
            path,
            first_seq,
            offset,
            dropped_records,
            ..
        } => {
            // Never an acknowledged record (those were synced whole): what a
            // crash cut short. An operator still wants to know it happened.
            tracing::warn!(
                file = %path.display(),
                offset,
                bytes = tail.dropped_bytes(),
                records = dropped_records,
                "journal open: torn tail cut"
            );
            mark::forget_past(fs, dir, *first_seq, *offset).map_err(JournalError::io(dir))?;
            let file = fs.open_write(path).map_err(JournalError::io(path))?;
            file.set_len(*offset).map_err(JournalError::io(path))?;
            file.sync_data().map_err(JournalError::io(path))?;
        }
        TornTail::RemoveSegment { path, .. } => {
            tracing::warn!(
                file = %path.display(),
                bytes = tail.dropped_bytes(),
                "journal open: torn segment header, segment removed"
            );
            fs.remove_file(path).map_err(JournalError::io(path))?;
            fs.sync_dir(dir).map_err(JournalError::io(dir))?;
        }
    }
    Ok(())
}
