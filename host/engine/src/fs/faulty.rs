//! A file system that injects failures and records what reached the disk,
//! for tests of the engine's crash and error handling (and of programs
//! built on it). Built with the `faulty-fs` feature only: it is a test
//! tool, not part of the engine a program ships.

use std::fs::TryLockError;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{FileLock, FileRef, FileSystem, FsFile, StdFs};

/// One operation seen by [`FaultyFs`], in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsEvent {
    /// Bytes written to a file at an offset.
    Write {
        /// The file.
        path: PathBuf,
        /// Where the write started.
        offset: u64,
        /// How many bytes.
        len: usize,
    },
    /// `fdatasync` of a file.
    SyncData(PathBuf),
    /// `fsync` of a directory.
    SyncDir(PathBuf),
    /// A file created.
    Create(PathBuf),
    /// A file removed.
    Remove(PathBuf),
    /// A rename.
    Rename(PathBuf, PathBuf),
}

/// Counts down operations and fails the one that reaches zero.
#[derive(Debug)]
struct Failpoint(AtomicU64);

impl Failpoint {
    const NEVER: u64 = u64::MAX;

    fn new() -> Self {
        Failpoint(AtomicU64::new(Self::NEVER))
    }

    fn arm(&self, after: u64) {
        self.0.store(after, Ordering::SeqCst);
    }

    fn hit(&self) -> bool {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
                Self::NEVER => None,
                0 => Some(Self::NEVER),
                n => Some(n - 1),
            })
            .is_ok_and(|previous| previous == 0)
    }
}

#[derive(Debug)]
struct Shared {
    fail_sync_data: Failpoint,
    fail_write: Failpoint,
    fail_sync_dir: Failpoint,
    events: Mutex<Vec<FsEvent>>,
}

/// The real file system with failpoints and an event log.
///
/// ```
/// use std::sync::Arc;
/// use mini_engine::{Journal, JournalOptions, JournalError};
/// use mini_engine::fs::faulty::FaultyFs;
///
/// let dir = tempfile::tempdir()?;
/// let fs = FaultyFs::new();
/// let options = JournalOptions { fs: Arc::new(fs.clone()), ..Default::default() };
/// let journal = Journal::open_with(dir.path(), options)?;
/// fs.fail_sync_data_after(0);
/// assert!(journal.append("1").is_err());
/// assert!(matches!(journal.append("2"), Err(JournalError::Poisoned)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct FaultyFs {
    shared: Arc<Shared>,
}

impl Default for FaultyFs {
    fn default() -> Self {
        Self::new()
    }
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected {what} failure"))
}

impl FaultyFs {
    /// A file system with no failure armed.
    pub fn new() -> Self {
        FaultyFs {
            shared: Arc::new(Shared {
                fail_sync_data: Failpoint::new(),
                fail_write: Failpoint::new(),
                fail_sync_dir: Failpoint::new(),
                events: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Lets `n` more `fdatasync` calls succeed, then fails the next one (once).
    pub fn fail_sync_data_after(&self, n: u64) {
        self.shared.fail_sync_data.arm(n);
    }

    /// Lets `n` more writes succeed, then fails the next one (once) after
    /// writing only half of its bytes, as a full disk or a crash would.
    pub fn fail_write_after(&self, n: u64) {
        self.shared.fail_write.arm(n);
    }

    /// Lets `n` more directory fsyncs succeed, then fails the next one (once).
    pub fn fail_sync_dir_after(&self, n: u64) {
        self.shared.fail_sync_dir.arm(n);
    }

    /// Every operation so far, in order.
    pub fn events(&self) -> Vec<FsEvent> {
        self.lock_events().clone()
    }

    /// Forgets the recorded events.
    pub fn clear_events(&self) {
        self.lock_events().clear();
    }

    fn lock_events(&self) -> std::sync::MutexGuard<'_, Vec<FsEvent>> {
        // A panicking test thread must not hide the events from the others.
        self.shared
            .events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record(&self, event: FsEvent) {
        self.lock_events().push(event);
    }

    fn wrap(&self, path: &Path, file: FileRef) -> FileRef {
        Arc::new(FaultyFile {
            fs: self.clone(),
            path: path.to_path_buf(),
            inner: file,
        })
    }
}

#[derive(Debug)]
struct FaultyFile {
    fs: FaultyFs,
    path: PathBuf,
    inner: FileRef,
}

impl FsFile for FaultyFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if self.fs.shared.fail_write.hit() {
            let half = &buf[..buf.len() / 2];
            self.inner.write_all_at(half, offset)?;
            return Err(injected("write"));
        }
        self.inner.write_all_at(buf, offset)?;
        self.fs.record(FsEvent::Write {
            path: self.path.clone(),
            offset,
            len: buf.len(),
        });
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        if self.fs.shared.fail_sync_data.hit() {
            return Err(injected("fdatasync"));
        }
        self.inner.sync_data()?;
        self.fs.record(FsEvent::SyncData(self.path.clone()));
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
}

impl FileSystem for FaultyFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        StdFs.create_dir_all(path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        StdFs.is_dir(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        StdFs.list_dir(path)
    }
    fn open_read(&self, path: &Path) -> io::Result<FileRef> {
        Ok(self.wrap(path, StdFs.open_read(path)?))
    }
    fn open_write(&self, path: &Path) -> io::Result<FileRef> {
        Ok(self.wrap(path, StdFs.open_write(path)?))
    }
    fn create_new(&self, path: &Path) -> io::Result<FileRef> {
        let file = StdFs.create_new(path)?;
        self.record(FsEvent::Create(path.to_path_buf()));
        Ok(self.wrap(path, file))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        StdFs.remove_file(path)?;
        self.record(FsEvent::Remove(path.to_path_buf()));
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdFs.rename(from, to)?;
        self.record(FsEvent::Rename(from.to_path_buf(), to.to_path_buf()));
        Ok(())
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        if self.shared.fail_sync_dir.hit() {
            return Err(injected("directory fsync"));
        }
        StdFs.sync_dir(path)?;
        self.record(FsEvent::SyncDir(path.to_path_buf()));
        Ok(())
    }
    // Locks are not events: a lock file holds no data and is never synced.
    fn try_lock(&self, path: &Path) -> Result<FileLock, TryLockError> {
        StdFs.try_lock(path)
    }
    fn lock(&self, path: &Path) -> io::Result<FileLock> {
        StdFs.lock(path)
    }
}
