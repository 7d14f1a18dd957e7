//! SIGKILL at every step of a rotation: a child process appends records
//! over small segments through a file system that kills the process with
//! SIGKILL right before its k-th changing operation (a write, a sync, a
//! trim, a create), or halfway through it for a write (half the bytes
//! written). Every k from the first operation to the end of the run is
//! tried, with and without preallocation, with and without marks (left
//! every 100 bytes: every step of writing one, the old mark removed, the
//! new one written, renamed, is killed too), so the kill lands before the
//! seal, in the middle of the seal's write, after the seal is written but
//! not synced, after it is synced, in the middle of the next segment's
//! header, and after.
//!
//! What must hold after each kill: the journal opens, every acknowledged
//! record is there with its data, `verify` finds no damage, every closed
//! segment ends in a seal (one the rotation left unfinished is sealed
//! again, or its seal cut and the segment written on), and appends go on.

mod common;

use std::fmt;
use std::fs::TryLockError;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use mini_engine::fs::{FileLock, FileRef, FileSystem, FsFile, StdFs};
use mini_engine::verify::verify;
use mini_engine::{Journal, JournalOptions};

const RECORDS: u64 = 24;

/// Record `i`: 20 to 110 bytes, so a 600-byte segment holds a few, and
/// some lines are shorter than a seal (whose bytes would show after them
/// if a seal were written over rather than cut).
fn record(i: u64) -> String {
    format!(
        r#"{{"i":{i},"pad":"{}"}}"#,
        "s".repeat((i * 37 % 90) as usize)
    )
}

fn options(preallocate: u64, mark_every: u64, fs: Arc<dyn FileSystem>) -> JournalOptions {
    JournalOptions {
        segment_size: 600,
        preallocate,
        mark_every,
        fs,
        ..JournalOptions::default()
    }
}

/// A write cut short: how to write bytes, and the bytes.
type PartialWrite<'a> = (&'a dyn Fn(&[u8]) -> io::Result<()>, &'a [u8]);

/// Kills the process at the k-th changing operation.
#[derive(Debug, Clone)]
struct KillAt {
    count: Arc<AtomicU64>,
    at: u64,
    half: bool,
}

impl KillAt {
    /// Counts an operation; dies if it is the k-th (for a write with
    /// `half`, after writing half of `partial`'s bytes through `write`).
    fn step(&self, partial: Option<PartialWrite<'_>>) {
        if self.count.fetch_add(1, Ordering::SeqCst) + 1 != self.at {
            return;
        }
        if let (true, Some((write, bytes))) = (self.half, partial) {
            let _ = write(&bytes[..bytes.len() / 2]);
        }
        // SAFETY: raising a signal in our own process.
        unsafe { libc::raise(libc::SIGKILL) };
    }
}

struct KillFile {
    inner: FileRef,
    kill: KillAt,
}

impl fmt::Debug for KillFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KillFile({:?})", self.inner)
    }
}

impl FsFile for KillFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.kill
            .step(Some((&|b: &[u8]| self.inner.write_all_at(b, offset), buf)));
        self.inner.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.kill.step(None);
        self.inner.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.kill.step(None);
        self.inner.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
}

impl FileSystem for KillAt {
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
        StdFs.open_read(path)
    }
    fn open_write(&self, path: &Path) -> io::Result<FileRef> {
        let inner = StdFs.open_write(path)?;
        Ok(Arc::new(KillFile {
            inner,
            kill: self.clone(),
        }))
    }
    fn create_new(&self, path: &Path) -> io::Result<FileRef> {
        self.step(None);
        let inner = StdFs.create_new(path)?;
        Ok(Arc::new(KillFile {
            inner,
            kill: self.clone(),
        }))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.step(None);
        StdFs.remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.step(None);
        StdFs.rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.step(None);
        StdFs.sync_dir(path)
    }
    fn try_lock(&self, path: &Path) -> Result<FileLock, TryLockError> {
        StdFs.try_lock(path)
    }
    fn lock(&self, path: &Path) -> io::Result<FileLock> {
        StdFs.lock(path)
    }
}

/// The child: appends the records one by one, printing each acknowledged
/// seq, on a file system that kills it at operation `SEAL_CRASH_AT`.
#[test]
#[ignore = "run by killed_at_every_step_of_sealing"]
fn seal_crash_child() {
    let env = |name: &str| std::env::var(name).expect(name);
    let dir = env("SEAL_CRASH_DIR");
    let kill = KillAt {
        count: Arc::new(AtomicU64::new(0)),
        at: env("SEAL_CRASH_AT").parse().unwrap(),
        half: env("SEAL_CRASH_HALF") == "1",
    };
    let preallocate = env("SEAL_CRASH_PREALLOCATE").parse().unwrap();
    let mark_every = env("SEAL_CRASH_MARK_EVERY").parse().unwrap();
    let journal =
        Journal::open_with(&dir, options(preallocate, mark_every, Arc::new(kill))).unwrap();
    let mut out = io::stdout();
    for i in journal.next_seq()..=RECORDS {
        let seq = journal.append(&record(i)).unwrap();
        writeln!(out, "acked {seq}").unwrap();
        out.flush().unwrap();
    }
    writeln!(out, "done").unwrap();
}

#[test]
fn killed_at_every_step_of_sealing() {
    let mut kills = 0;
    for (preallocate, half, mark_every) in configurations() {
        for at in 1.. {
            let dir = tmp();
            let mut child = child_test(
                "seal_crash_child",
                &[
                    ("SEAL_CRASH_DIR", dir.path().to_str().unwrap()),
                    ("SEAL_CRASH_AT", &at.to_string()),
                    ("SEAL_CRASH_HALF", if half { "1" } else { "0" }),
                    ("SEAL_CRASH_PREALLOCATE", &preallocate.to_string()),
                    ("SEAL_CRASH_MARK_EVERY", &mark_every.to_string()),
                ],
            )
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
            let out = BufReader::new(child.stdout.take().unwrap());
            let mut acked = 0;
            let mut done = false;
            for line in out.lines() {
                let line = line.unwrap();
                if let Some(seq) = line.split("acked ").nth(1) {
                    acked = seq.trim().parse().unwrap();
                }
                done |= line.ends_with("done");
            }
            let status = child.wait().unwrap();
            let what = format!(
                "preallocate {preallocate}, half {half}, mark every {mark_every}, killed at op {at}"
            );
            if done {
                assert!(status.success(), "{what}: {status:?}");
                assert!(at > 20, "{what}: the run has too few operations to kill");
                break;
            }
            assert_eq!(status.signal(), Some(libc::SIGKILL), "{what}: {status:?}");
            kills += 1;
            check_after_kill(dir.path(), acked, preallocate, mark_every, &what);
        }
    }
    assert!(kills > 200, "only {kills} kills");
}

/// Every (preallocate, half, mark_every) the test runs.
fn configurations() -> Vec<(u64, bool, u64)> {
    let mut all = Vec::new();
    for preallocate in [0, 4096] {
        for half in [false, true] {
            for mark_every in [0, 100] {
                all.push((preallocate, half, mark_every));
            }
        }
    }
    all
}

fn check_after_kill(dir: &Path, acked: u64, preallocate: u64, mark_every: u64, what: &str) {
    let journal = Journal::open_with(dir, options(preallocate, mark_every, Arc::new(StdFs)))
        .unwrap_or_else(|e| panic!("{what}: open: {e}"));
    let stored = read_all(&journal);
    assert!(
        stored.len() as u64 >= acked,
        "{what}: {} of {acked} acked records",
        stored.len()
    );
    for entry in &stored {
        assert_eq!(
            entry.data,
            record(entry.seq),
            "{what}: record {}",
            entry.seq
        );
    }
    // The active segment is written on after its records: a seal a
    // rotation left there is cut by open, else shorter lines written over
    // it would leave part of it behind.
    let active = last_segment(dir);
    assert!(
        !lines(&active).iter().any(is_seal),
        "{what}: {} keeps a seal",
        active.display()
    );
    // Appends go on, until the segment open went on writing is sealed: its
    // seal is built on where open started (a mark, if one held).
    let segments_before = segments(dir).len();
    let mut next = journal.next_seq();
    while segments(dir).len() == segments_before {
        assert_eq!(
            journal.append(&record(next)).unwrap(),
            next,
            "{what}: appends go on"
        );
        next += 1;
    }
    let next = next - 1;
    drop(journal);
    let report = verify(dir, &mut |_, _| {}).unwrap();
    assert_eq!(report.damage, None, "{what}");
    assert_eq!(report.records, next, "{what}");
    let segs = segments(dir);
    for (_, path) in &segs[..segs.len() - 1] {
        let last = lines(path).pop();
        assert!(
            last.as_ref().is_some_and(is_seal),
            "{what}: {} is not sealed",
            path.display()
        );
    }
}
