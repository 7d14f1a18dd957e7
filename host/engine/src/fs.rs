//! The file system the engine runs on.
//!
//! Every file operation of the engine goes through [`FileSystem`], so the same
//! engine runs on the real disk ([`StdFs`]) and, in tests, on file systems
//! that inject failures and record what was synced (`faulty::FaultyFs`,
//! with the `faulty-fs` feature). File handles use positioned I/O
//! (`pread`/`pwrite`) so that one thread can fsync a segment while another
//! writes to it.

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

#[cfg(feature = "faulty-fs")]
pub mod faulty;

/// An open file: positioned reads and writes, so it is shared without a cursor.
#[allow(clippy::len_without_is_empty)] // `len` is a fallible query of the file, not a collection's size
pub trait FsFile: Send + Sync + fmt::Debug {
    /// Reads at `offset`; returns the number of bytes read (0 at the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset`.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Flushes the file's data (and the metadata needed to read it) to stable storage.
    fn sync_data(&self) -> io::Result<()>;
    /// Truncates or extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The file's current length.
    fn len(&self) -> io::Result<u64>;
}

/// A shared open file.
pub type FileRef = Arc<dyn FsFile>;

/// An exclusive lock on a file, held until it is dropped.
#[derive(Debug)]
pub struct FileLock {
    _held: Box<dyn fmt::Debug + Send + Sync>,
}

impl FileLock {
    /// The lock that `held` keeps until it is dropped: what a
    /// [`FileSystem`] implementation returns from its `lock` and `try_lock`.
    pub fn new(held: impl fmt::Debug + Send + Sync + 'static) -> FileLock {
        FileLock {
            _held: Box::new(held),
        }
    }
}

/// The file system operations the engine needs.
pub trait FileSystem: Send + Sync + fmt::Debug {
    /// Creates `path` and its missing parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Whether `path` is a directory (false if it is missing or cannot be
    /// looked at).
    fn is_dir(&self, path: &Path) -> bool;
    /// The names of the entries of directory `path`.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Opens an existing file for reading.
    fn open_read(&self, path: &Path) -> io::Result<FileRef>;
    /// Opens an existing file for reading and writing (never truncates).
    fn open_write(&self, path: &Path) -> io::Result<FileRef>;
    /// Creates a new file for reading and writing; fails if it exists.
    fn create_new(&self, path: &Path) -> io::Result<FileRef>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Renames a file or directory.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the entries of directory `path` (creations, renames, removals) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on the file `path` (created empty if it is
    /// missing, never truncated), without waiting: [`TryLockError::WouldBlock`]
    /// while another holder has it. The lock must end with its holder's
    /// process, however that ends, so that a crash leaves no stale lock.
    fn try_lock(&self, path: &Path) -> Result<FileLock, TryLockError>;
    /// Takes an exclusive lock on the file `path` as [`FileSystem::try_lock`]
    /// does, waiting for it while another holder has it.
    fn lock(&self, path: &Path) -> io::Result<FileLock>;
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdFs;

#[derive(Debug)]
struct StdFile(File);

impl FsFile for StdFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        loop {
            match self.0.read_at(buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

/// A `flock` on an open file description of the lock file; see its `Drop`.
#[derive(Debug)]
struct StdLock(File);

impl StdLock {
    fn open(path: &Path) -> io::Result<File> {
        // Every lock opens its own description and never duplicates it (no
        // `try_clone`): that is what makes the unlock in `drop` safe.
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
    }
}

impl Drop for StdLock {
    /// Unlocks before the file is closed. Closing alone is not enough: a
    /// child that another thread forked holds a copy of the description
    /// until it execs (close-on-exec only acts at exec), so the description,
    /// and a `flock` on it, would outlive this handle, and a reopen in this
    /// process right after the drop would find it locked. `flock(LOCK_UN)`
    /// acts on the description, so the child's copy holds no lock either.
    ///
    /// This never releases a lock someone else relies on: a `flock` is held
    /// by one description, every lock opens its own (a second one on the
    /// same file, in this process or another, is refused or waits rather
    /// than sharing it), and nothing duplicates it except a fork, whose
    /// copies only exist until exec or exit and never lock anything. (A
    /// child that runs on without exec and drops a copied lock would unlock
    /// its parent's lock: handles are not meant to cross a fork.)
    fn drop(&mut self) {
        // An error leaves nothing to do: the close that follows releases the
        // lock as before, and a drop cannot report it.
        let _ = self.0.unlock();
    }
}

impl FileSystem for StdFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }
    fn open_read(&self, path: &Path) -> io::Result<FileRef> {
        Ok(Arc::new(StdFile(File::open(path)?)))
    }
    fn open_write(&self, path: &Path) -> io::Result<FileRef> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Arc::new(StdFile(file)))
    }
    fn create_new(&self, path: &Path) -> io::Result<FileRef> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(Arc::new(StdFile(file)))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
    /// A `flock`: the kernel releases it when the process dies (even by
    /// SIGKILL), with the last copy of its open file description.
    fn try_lock(&self, path: &Path) -> Result<FileLock, TryLockError> {
        let file = StdLock::open(path).map_err(TryLockError::Error)?;
        file.try_lock()?;
        Ok(FileLock::new(StdLock(file)))
    }
    fn lock(&self, path: &Path) -> io::Result<FileLock> {
        let file = StdLock::open(path)?;
        file.lock()?;
        Ok(FileLock::new(StdLock(file)))
    }
}

/// Reads a [`FsFile`] sequentially from an offset, for buffered line reading.
#[derive(Debug)]
pub struct FileReader {
    file: FileRef,
    offset: u64,
}

impl FileReader {
    /// A reader over `file` starting at `offset`.
    pub fn new(file: FileRef, offset: u64) -> Self {
        FileReader { file, offset }
    }

    /// The file read.
    pub fn file(&self) -> &FileRef {
        &self.file
    }
}

impl Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}
