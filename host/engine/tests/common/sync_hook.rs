//! A file system that runs a hook around every file's `fdatasync`: to hold
//! a sync until the test lets it go, count syncs that overlap, or skip syncs
//! altogether. Everything else goes to the file system it wraps.

use std::fmt;
use std::fs::TryLockError;
use std::io;
use std::path::Path;
use std::sync::Arc;

use mini_engine::fs::{FileLock, FileRef, FileSystem, FsFile, StdFs};

/// Called for each `fdatasync` with the real sync to run (or not).
pub type SyncHook = dyn Fn(&dyn Fn() -> io::Result<()>) -> io::Result<()> + Send + Sync;

/// See the module documentation.
#[derive(Clone)]
pub struct SyncHookFs {
    inner: Arc<dyn FileSystem>,
    hook: Arc<SyncHook>,
    dir_syncs: bool,
}

impl SyncHookFs {
    /// `inner` with `hook` around each file sync.
    pub fn new(
        inner: impl FileSystem + 'static,
        hook: impl Fn(&dyn Fn() -> io::Result<()>) -> io::Result<()> + Send + Sync + 'static,
    ) -> SyncHookFs {
        SyncHookFs {
            inner: Arc::new(inner),
            hook: Arc::new(hook),
            dir_syncs: true,
        }
    }

    fn wrap(&self, inner: FileRef) -> FileRef {
        Arc::new(HookedFile {
            inner,
            hook: self.hook.clone(),
        })
    }
}

/// The real files without their flushes: file and directory syncs succeed
/// and do nothing. For
/// tests that check what a component does with its files (how many, how
/// big, what the state is after reopening in the same process), not what
/// survives a power loss, and that would otherwise spend minutes in
/// fdatasync.
pub fn no_sync_fs() -> SyncHookFs {
    SyncHookFs {
        dir_syncs: false,
        ..SyncHookFs::new(StdFs, |_sync| Ok(()))
    }
}

impl fmt::Debug for SyncHookFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SyncHookFs({:?})", self.inner)
    }
}

struct HookedFile {
    inner: FileRef,
    hook: Arc<SyncHook>,
}

impl fmt::Debug for HookedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HookedFile({:?})", self.inner)
    }
}

impl FsFile for HookedFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        (self.hook)(&|| self.inner.sync_data())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
}

impl FileSystem for SyncHookFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        self.inner.is_dir(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn open_read(&self, path: &Path) -> io::Result<FileRef> {
        Ok(self.wrap(self.inner.open_read(path)?))
    }
    fn open_write(&self, path: &Path) -> io::Result<FileRef> {
        Ok(self.wrap(self.inner.open_write(path)?))
    }
    fn create_new(&self, path: &Path) -> io::Result<FileRef> {
        Ok(self.wrap(self.inner.create_new(path)?))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        if !self.dir_syncs {
            return Ok(());
        }
        self.inner.sync_dir(path)
    }
    fn try_lock(&self, path: &Path) -> Result<FileLock, TryLockError> {
        self.inner.try_lock(path)
    }
    fn lock(&self, path: &Path) -> io::Result<FileLock> {
        self.inner.lock(path)
    }
}
