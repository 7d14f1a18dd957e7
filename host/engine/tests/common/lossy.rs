//! A file system that loses power: it remembers what each file held at its
//! last `fdatasync` and which directory entries were made durable by a
//! directory fsync; [`LossyFs::power_loss`] then rewrites the real files as
//! a power loss may leave them. Every page written since the last sync
//! reaches the disk or not, independently (so a write can land torn, with
//! a later page on disk and an earlier one not); a file's length is the
//! synced one or the newest one; a file created, removed or renamed since
//! its directory's last fsync may be there or not, or under its old name.
//! Directories themselves always survive.
//!
//! Nothing is really synced (the test needs no disk flushes), so rounds are
//! fast. At the `n`th `fdatasync` the power goes: that sync and every file
//! operation after it fail, as a dead machine would.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::TryLockError;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use mini_engine::fs::{FileLock, FileRef, FileSystem, FsFile, StdFs};

use super::Rng;

/// A page: the unit in which unsynced data reaches the disk or not.
const PAGE: usize = 4096;

#[derive(Debug, Default)]
struct State {
    /// What each file known to be on disk held at its last sync.
    synced: BTreeMap<PathBuf, Vec<u8>>,
    /// Files created since their directory's last fsync.
    created: BTreeSet<PathBuf>,
    /// Files removed since their directory's last fsync, with their synced
    /// contents (they may come back).
    removed: BTreeMap<PathBuf, Vec<u8>>,
    /// Renames since their directory's last fsync, oldest first (they may
    /// be undone).
    renamed: Vec<Renamed>,
    /// Syncs left before the power goes (`None`: it never does).
    syncs_left: Option<u64>,
    down: bool,
}

#[derive(Debug)]
struct Renamed {
    from: PathBuf,
    to: PathBuf,
    /// The synced contents of the file the rename replaced, if any.
    replaced: Option<Vec<u8>>,
    /// The contents of the file the rename replaced if that file was itself
    /// created since its directory's last fsync (a mark renamed over the
    /// one before it): undoing the rename brings it back, as unsynced as
    /// it was.
    replaced_unsynced: Option<Vec<u8>>,
}

/// See the module documentation.
#[derive(Clone, Default)]
pub struct LossyFs {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for LossyFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LossyFs")
    }
}

fn power_is_out() -> io::Error {
    io::Error::other("the power went out")
}

impl LossyFs {
    /// Power goes out at the `n`th `fdatasync` from now (n ≥ 1).
    pub fn power_off_at_sync(n: u64) -> LossyFs {
        let fs = LossyFs::default();
        fs.lock().syncs_left = Some(n);
        fs
    }

    /// True once the power went out.
    pub fn is_down(&self) -> bool {
        self.lock().down
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check_up(&self) -> io::Result<()> {
        if self.lock().down {
            return Err(power_is_out());
        }
        Ok(())
    }

    /// A file's synced contents: what it held when first seen (files this
    /// file system did not write are on disk already) or at its last sync.
    fn remember(&self, path: &Path) {
        let mut state = self.lock();
        if !state.synced.contains_key(path)
            && !state.created.contains(path)
            && let Ok(bytes) = std::fs::read(path)
        {
            state.synced.insert(path.to_path_buf(), bytes);
        }
    }

    /// One life of a writer on this file system: `open`, then `work` until
    /// the power goes out, then the power loss (see [`LossyFs::power_loss`]).
    /// Returns what `work` returned (the call it was in when the power
    /// went), or the default if the power went while opening.
    pub fn run_until_power_loss<H, E: fmt::Display, R: Default>(
        &self,
        rng: &mut Rng,
        what: &str,
        open: impl FnOnce() -> Result<H, E>,
        work: impl FnOnce(&H, &mut Rng) -> R,
    ) -> R {
        let in_flight = match open() {
            Ok(handle) => {
                let in_flight = work(&handle, rng);
                assert!(self.is_down(), "{what}: a call failed with the power on");
                in_flight
            }
            Err(_) if self.is_down() => R::default(),
            Err(e) => panic!("{what}: open: {e}"),
        };
        self.power_loss(rng);
        in_flight
    }

    /// Rewrites the files under the power-loss rules (see the module
    /// documentation). Call it once the writer is gone; every file this file
    /// system touched must still be closed by then.
    pub fn power_loss(&self, rng: &mut Rng) {
        let mut state = self.lock();
        state.down = true;
        for renamed in std::mem::take(&mut state.renamed).into_iter().rev() {
            if rng.bool() {
                continue;
            }
            std::fs::rename(&renamed.to, &renamed.from).expect("undo a rename");
            if let Some(bytes) = state.synced.remove(&renamed.to) {
                state.synced.insert(renamed.from.clone(), bytes);
            }
            if state.created.remove(&renamed.to) {
                state.created.insert(renamed.from.clone());
            }
            if let Some(bytes) = renamed.replaced {
                std::fs::write(&renamed.to, &bytes).expect("bring a replaced file back");
                state.synced.insert(renamed.to, bytes);
            } else if let Some(bytes) = renamed.replaced_unsynced {
                std::fs::write(&renamed.to, &bytes).expect("bring a replaced file back");
                state.created.insert(renamed.to);
            }
        }
        for path in std::mem::take(&mut state.created) {
            if rng.bool() {
                let _ = std::fs::remove_file(&path);
                state.synced.remove(&path);
            } else {
                state.synced.entry(path).or_default();
            }
        }
        for (path, bytes) in std::mem::take(&mut state.removed) {
            if rng.bool() {
                std::fs::write(&path, &bytes).expect("bring a removed file back");
                state.synced.insert(path, bytes);
            }
        }
        for (path, synced) in &state.synced {
            let Ok(now) = std::fs::read(path) else {
                continue;
            };
            std::fs::write(path, torn(synced, &now, rng)).expect("rewrite after power loss");
        }
    }
}

/// What a file that held `synced` at its last sync and `now` in the page
/// cache may hold after a power loss.
fn torn(synced: &[u8], now: &[u8], rng: &mut Rng) -> Vec<u8> {
    let len = if synced.len() == now.len() || rng.bool() {
        now.len()
    } else {
        synced.len()
    };
    let mut out = Vec::with_capacity(len);
    for start in (0..len).step_by(PAGE) {
        let end = (start + PAGE).min(len);
        let old = |i: usize| synced.get(i).copied().unwrap_or(0);
        let new = |i: usize| now.get(i).copied().unwrap_or(0);
        let changed = (start..end).any(|i| old(i) != new(i));
        let reached_disk = !changed || rng.bool();
        out.extend((start..end).map(|i| if reached_disk { new(i) } else { old(i) }));
    }
    out
}

struct LossyFile {
    fs: LossyFs,
    path: PathBuf,
    inner: FileRef,
}

impl fmt::Debug for LossyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LossyFile({})", self.path.display())
    }
}

impl FsFile for LossyFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.fs.check_up()?;
        self.inner.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        let mut state = self.fs.lock();
        if state.down {
            return Err(power_is_out());
        }
        if let Some(left) = state.syncs_left.as_mut() {
            *left -= 1;
            if *left == 0 {
                state.down = true;
                return Err(power_is_out());
            }
        }
        let bytes = std::fs::read(&self.path)?;
        state.synced.insert(self.path.clone(), bytes);
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.fs.check_up()?;
        self.inner.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
}

impl LossyFs {
    fn wrap(&self, path: &Path, inner: FileRef) -> FileRef {
        Arc::new(LossyFile {
            fs: self.clone(),
            path: path.to_path_buf(),
            inner,
        })
    }
}

impl FileSystem for LossyFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.check_up()?;
        StdFs.create_dir_all(path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        StdFs.is_dir(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        StdFs.list_dir(path)
    }
    fn open_read(&self, path: &Path) -> io::Result<FileRef> {
        let file = StdFs.open_read(path)?;
        self.remember(path);
        Ok(self.wrap(path, file))
    }
    fn open_write(&self, path: &Path) -> io::Result<FileRef> {
        self.check_up()?;
        let file = StdFs.open_write(path)?;
        self.remember(path);
        Ok(self.wrap(path, file))
    }
    fn create_new(&self, path: &Path) -> io::Result<FileRef> {
        self.check_up()?;
        let file = StdFs.create_new(path)?;
        let mut state = self.lock();
        state.created.insert(path.to_path_buf());
        state.removed.remove(path);
        Ok(self.wrap(path, file))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.check_up()?;
        self.remember(path);
        StdFs.remove_file(path)?;
        let mut state = self.lock();
        if !state.created.remove(path)
            && let Some(bytes) = state.synced.remove(path)
        {
            state.removed.insert(path.to_path_buf(), bytes);
        }
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check_up()?;
        self.remember(from);
        self.remember(to);
        let replaced_unsynced = if self.lock().created.contains(to) {
            std::fs::read(to).ok()
        } else {
            None
        };
        StdFs.rename(from, to)?;
        let mut state = self.lock();
        let replaced = state.synced.remove(to);
        if let Some(bytes) = state.synced.remove(from) {
            state.synced.insert(to.to_path_buf(), bytes);
        }
        if state.created.remove(from) {
            state.created.insert(to.to_path_buf());
        }
        state.renamed.push(Renamed {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
            replaced,
            replaced_unsynced,
        });
        Ok(())
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.check_up()?;
        let mut state = self.lock();
        let created: Vec<PathBuf> = state
            .created
            .iter()
            .filter(|p| p.parent() == Some(path))
            .cloned()
            .collect();
        for file in created {
            state.created.remove(&file);
            // Its entry is durable now; its data only as far as it was synced.
            state.synced.entry(file).or_default();
        }
        state.removed.retain(|p, _| p.parent() != Some(path));
        state.renamed.retain(|r| r.to.parent() != Some(path));
        Ok(())
    }
    // A lock file holds no data, and a lock ends with the process (which a
    // power loss ends too): there is nothing to lose.
    fn try_lock(&self, path: &Path) -> Result<FileLock, TryLockError> {
        StdFs.try_lock(path)
    }
    fn lock(&self, path: &Path) -> io::Result<FileLock> {
        StdFs.lock(path)
    }
}
