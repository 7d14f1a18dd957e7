//! The sandbox's file system: the real one, with one fault at a time armed
//! for the storage call a [`Plan`](crate::Plan) names, and (by default)
//! without the syncs a process crash does not need.
//!
//! A crash point stops the instance as a process crash would: what the
//! process wrote is in the kernel's page cache and survives it, synced or
//! not. So the sandbox skips `fdatasync` and directory syncs unless told
//! otherwise ([`SandboxBuilder::real_syncs`](crate::SandboxBuilder::real_syncs)):
//! nothing a crash point can show depends on them, and exploring a
//! thousand crash points takes seconds. A power loss (which loses what was
//! not synced) is what the engine's own power-loss tests simulate.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use mini_engine::fs::{FileLock, FileRef, FileSystem, FsFile, StdFs};
use serde::{Deserialize, Serialize};

/// A fault injected into one storage call: its first file operation of the
/// kind the fault names fails, once; the engine reacts as it does to a real
/// one (and the guest gets the error the engine's reaction gives).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// The call's first file operation (a read, a write, an open, a
    /// creation, a rename, a removal) fails with `EIO`: the guest gets `io`.
    Io,
    /// The call's first write, growth or creation of a file fails with
    /// `ENOSPC`: the guest gets `quota` ("the disk is full"), nothing of the
    /// call is stored.
    DiskFull,
    /// The call's first sync (`fdatasync` or a directory's fsync) fails
    /// with `EIO`: the guest gets `io` and the handle is poisoned (DESIGN,
    /// contract 6) until it is opened again.
    FsyncFails,
}

impl Fault {
    /// Every fault, for seeded choices.
    pub const ALL: [Fault; 3] = [Fault::Io, Fault::DiskFull, Fault::FsyncFails];

    /// Its name on the command line and in reports (`io`, `disk-full`,
    /// `fsync-fails`).
    pub fn name(self) -> &'static str {
        match self {
            Fault::Io => "io",
            Fault::DiskFull => "disk-full",
            Fault::FsyncFails => "fsync-fails",
        }
    }

    /// The fault named `name` (see [`Fault::name`]).
    pub fn from_name(name: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The file operations a fault can hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    Write,
    Grow,
    Create,
    Rename,
    Remove,
    Sync,
}

impl Fault {
    fn hits(self, op: Op) -> bool {
        match self {
            Fault::Io => op != Op::Sync,
            Fault::DiskFull => matches!(op, Op::Write | Op::Grow | Op::Create),
            Fault::FsyncFails => op == Op::Sync,
        }
    }

    fn error(self) -> io::Error {
        io::Error::from_raw_os_error(match self {
            Fault::DiskFull => libc::ENOSPC,
            Fault::Io | Fault::FsyncFails => libc::EIO,
        })
    }
}

#[derive(Debug, Default)]
struct Armed {
    fault: Option<Fault>,
    fired: bool,
}

/// The real file system with an armed fault and optional syncs.
#[derive(Debug, Clone)]
pub(crate) struct SandboxFs {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    real_syncs: bool,
    armed: Mutex<Armed>,
}

impl SandboxFs {
    pub(crate) fn new(real_syncs: bool) -> SandboxFs {
        SandboxFs {
            shared: Arc::new(Shared {
                real_syncs,
                armed: Mutex::new(Armed::default()),
            }),
        }
    }

    /// Arms `fault` for the operations from now until [`SandboxFs::disarm`].
    pub(crate) fn arm(&self, fault: Fault) {
        *self.shared.lock() = Armed {
            fault: Some(fault),
            fired: false,
        };
    }

    /// Disarms the fault; whether it fired.
    pub(crate) fn disarm(&self) -> bool {
        std::mem::take(&mut *self.shared.lock()).fired
    }

    fn wrap(&self, file: FileRef) -> FileRef {
        Arc::new(SandboxFile {
            file,
            shared: self.shared.clone(),
        })
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Armed> {
        self.armed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The armed fault's error if it hits `op` (it then fires, once).
    fn check(&self, op: Op) -> io::Result<()> {
        let mut armed = self.lock();
        match armed.fault {
            Some(fault) if !armed.fired && fault.hits(op) => {
                armed.fired = true;
                Err(fault.error())
            }
            _ => Ok(()),
        }
    }

    fn sync(&self, real: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        self.check(Op::Sync)?;
        if self.real_syncs { real() } else { Ok(()) }
    }
}

#[derive(Debug)]
struct SandboxFile {
    file: FileRef,
    shared: Arc<Shared>,
}

impl FsFile for SandboxFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.shared.check(Op::Read)?;
        self.file.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.shared.check(Op::Write)?;
        self.file.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.shared.sync(|| self.file.sync_data())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.shared.check(Op::Grow)?;
        self.file.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }
}

impl FileSystem for SandboxFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        if !path.is_dir() {
            self.shared.check(Op::Create)?;
        }
        StdFs.create_dir_all(path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        StdFs.is_dir(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.shared.check(Op::Read)?;
        StdFs.list_dir(path)
    }
    fn open_read(&self, path: &Path) -> io::Result<FileRef> {
        self.shared.check(Op::Read)?;
        StdFs.open_read(path).map(|f| self.wrap(f))
    }
    fn open_write(&self, path: &Path) -> io::Result<FileRef> {
        self.shared.check(Op::Read)?;
        StdFs.open_write(path).map(|f| self.wrap(f))
    }
    fn create_new(&self, path: &Path) -> io::Result<FileRef> {
        self.shared.check(Op::Create)?;
        StdFs.create_new(path).map(|f| self.wrap(f))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.shared.check(Op::Remove)?;
        StdFs.remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.shared.check(Op::Rename)?;
        StdFs.rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.shared.sync(|| StdFs.sync_dir(path))
    }
    fn try_lock(&self, path: &Path) -> Result<FileLock, std::fs::TryLockError> {
        StdFs.try_lock(path)
    }
    fn lock(&self, path: &Path) -> io::Result<FileLock> {
        StdFs.lock(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_armed_fault_fails_the_first_operation_it_hits_once() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let fs = SandboxFs::new(false);
        let file = fs.create_new(&dir.path().join("f")).expect("created");
        fs.arm(Fault::FsyncFails);
        file.write_all_at(b"abc", 0).expect("a write is not a sync");
        let err = file.sync_data().expect_err("the first sync fails");
        assert_eq!(err.raw_os_error(), Some(libc::EIO));
        file.sync_data().expect("only once");
        assert!(fs.disarm());

        fs.arm(Fault::DiskFull);
        file.read_at(&mut [0; 3], 0).expect("a read is not a write");
        let err = file.write_all_at(b"d", 3).expect_err("the write fails");
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
        assert!(fs.disarm());

        fs.arm(Fault::Io);
        assert!(!fs.disarm(), "nothing was done while it was armed");
        file.write_all_at(b"d", 3).expect("disarmed");
        let mut buf = [0; 4];
        assert_eq!(file.read_at(&mut buf, 0).expect("read"), 4);
        assert_eq!(&buf, b"abcd");
    }
}
