//! What the fuzz targets share: a scratch directory per input, the
//! container that packs several files into one input, and the checks of a
//! journal directory that two targets run.
//!
//! The targets (`fuzz_targets/`) and the seed writer (`src/bin/seeds.rs`)
//! both use this crate, so the inputs the seeds write are exactly what the
//! targets read. A check that fails panics: that is a finding, and libFuzzer
//! saves the input. An engine call that returns an error is not a finding
//! by itself; the checks say which errors are expected where.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

pub mod container;
pub mod journal;
pub mod queue;
pub mod state;

/// A fresh directory for one input, removed when dropped.
///
/// It lives under `$MINI_FUZZ_TMPDIR` if set (`fuzz/run` sets it to a
/// directory it removes at the end, so a crash leaves nothing behind), else
/// under `/dev/shm` (tmpfs: the engine's fsyncs cost nothing there), else
/// under the system's temporary directory.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// Creates the directory. Panics if it cannot: without it no input can
    /// be tried, and that is the machine's problem, not the engine's.
    pub fn new() -> Scratch {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = scratch_root().join(format!("mini-fuzz-{}-{n}", std::process::id()));
        // A leftover of an earlier process that had the same pid.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create the scratch directory {path:?}: {e}"));
        Scratch { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn scratch_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        if let Some(dir) = std::env::var_os("MINI_FUZZ_TMPDIR") {
            return PathBuf::from(dir);
        }
        let shm = Path::new("/dev/shm");
        let probe = shm.join(format!("mini-fuzz-probe-{}", std::process::id()));
        if std::fs::create_dir(&probe).is_ok() {
            let _ = std::fs::remove_dir(&probe);
            return shm.to_path_buf();
        }
        std::env::temp_dir()
    })
}

/// Writes `bytes` to `path`, creating its directory. Panics on failure
/// (the scratch directory is ours: a failure is the machine's).
pub fn write_file(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("cannot create {parent:?}: {e}"));
    }
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("cannot write {path:?}: {e}"));
}
