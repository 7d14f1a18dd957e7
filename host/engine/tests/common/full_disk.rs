//! Helpers for the tests of a full disk (`disk_full.rs`, which includes this
//! file with `#[path]`): a small real file system, a tmpfs mounted on a
//! fresh temporary directory and unmounted when its guard is dropped (also
//! while a failing test unwinds); what each case checks after a reopen; and
//! syncs held and failed on cue for the deterministic case.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use mini_engine::fs::FileSystem;
use mini_engine::queue::{Place, PushOptions, Queue, QueueError, QueueOptions};
use mini_engine::state::{StateLog, StateOptions};
use mini_engine::{Entry, Journal, JournalError, JournalOptions, SnapshotError, StateError};

use super::common::{Rng, SyncHookFs, read_all};

/// A mounted tmpfs; unmounted on drop.
#[derive(Debug)]
pub struct Tmpfs {
    // Dropped after `Drop::drop` unmounted it: then it removes the empty
    // mount point.
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it, e.g. "3m").
    /// `None`, after a loud message on stderr, where mounting is not allowed
    /// (not root, no mount permission in a container).
    pub fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("tempdir");
        let result = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size}"))
            .arg("tmpfs")
            .arg(dir.path())
            .output();
        let why = match result {
            Ok(out) if out.status.success() => return Some(Tmpfs { dir }),
            Ok(out) => format!(
                "{} ({})",
                String::from_utf8_lossy(&out.stderr).trim(),
                out.status
            ),
            Err(e) => e.to_string(),
        };
        eprintln!("\n**** SKIPPED: cannot mount a tmpfs: {why} ****\n");
        None
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A file `name` of `bytes` non-zero bytes, so that deleting it later
    /// frees that much space.
    pub fn ballast(&self, name: &str, bytes: usize) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, vec![0xa5u8; bytes]).expect("writing the ballast");
        path
    }

    /// `n` ballast files of `bytes` each, to free a little space at a time.
    pub fn crumbs(&self, n: usize, bytes: usize) -> Vec<PathBuf> {
        (0..n)
            .map(|i| self.ballast(&format!("crumb-{i}"), bytes))
            .collect()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let path = self.dir.path();
        let unmounted = Command::new("umount")
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Something still has a file open there (a test that panicked
            // with a handle alive elsewhere): detach it lazily instead.
            let _ = Command::new("umount").arg("-l").arg(path).status();
        }
    }
}

/// Frees a little space (deletes a crumb) after every other failure, so
/// that a writer meets the edge of a full disk many times, not once.
pub fn after_failure(failures: usize, crumbs: &mut Vec<PathBuf>) {
    if failures.is_multiple_of(2)
        && let Some(crumb) = crumbs.pop()
    {
        std::fs::remove_file(crumb).expect("removing a crumb");
    }
}

/// True for the error a full disk gives (ENOSPC), however it was wrapped.
pub fn is_disk_full(e: &io::Error) -> bool {
    e.raw_os_error() == Some(28) || e.kind() == io::ErrorKind::StorageFull
}

/// An error a full disk may give a journal call.
pub fn journal_error_ok(e: &JournalError) -> bool {
    match e {
        JournalError::Io { source, .. } => is_disk_full(source),
        JournalError::Poisoned => true,
        _ => false,
    }
}

/// An error a full disk may give a state call.
pub fn state_error_ok(e: &StateError) -> bool {
    match e {
        StateError::Journal(e) => journal_error_ok(e),
        StateError::Snapshot(SnapshotError::Io { source, .. }) => is_disk_full(source),
        _ => false,
    }
}

/// A record with a unique `id` and a pad of up to `max_pad` bytes.
pub fn record(id: u64, rng: &mut Rng, max_pad: u64) -> String {
    let pad = "p".repeat(rng.u64(0..=max_pad) as usize);
    format!(r#"{{"id":{id},"pad":"{pad}"}}"#)
}

/// The `id` of a [`record`].
pub fn id_of(data: &str) -> u64 {
    data.strip_prefix(r#"{"id":"#)
        .and_then(|rest| rest.split(',').next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("not a record of this test: {data}"))
}

/// Checks that `stored` is exactly `acked`, and first that no record whose
/// call failed is among them.
pub fn check_records(what: &str, stored: &[Entry], acked: &[Entry], failed: &BTreeSet<u64>) {
    let stray: Vec<u64> = stored
        .iter()
        .map(|e| id_of(&e.data))
        .filter(|id| failed.contains(id))
        .collect();
    assert!(
        stray.is_empty(),
        "{what}: {} records whose call failed are there after a restart (ids {:?}…)",
        stray.len(),
        &stray[..stray.len().min(5)]
    );
    let differ = (0..stored.len().max(acked.len())).find(|&i| stored.get(i) != acked.get(i));
    if let Some(i) = differ {
        panic!(
            "{what}: {} records stored, {} acknowledged; first difference at #{i}: \
             stored seq {:?}, acknowledged seq {:?}",
            stored.len(),
            acked.len(),
            stored.get(i).map(|e| e.seq),
            acked.get(i).map(|e| e.seq)
        );
    }
}

// ---- the checks after a reopen -----------------------------------------

/// Opens the journal in `dir` and checks it holds exactly `acked`.
pub fn reopen_journal(
    dir: &Path,
    options: &JournalOptions,
    acked: &[Entry],
    failed: &BTreeSet<u64>,
) -> Journal {
    let journal = Journal::open_with(dir, options.clone())
        .unwrap_or_else(|e| panic!("reopening after a full disk: {e}"));
    check_records("journal", &read_all(&journal), acked, failed);
    let recovery = journal.recovery();
    assert_eq!(
        (recovery.dropped_bytes, recovery.dropped_records),
        (0, 0),
        "a failed call left torn bytes behind: {recovery:?}"
    );
    journal
}

/// The test's fold: the list of every mutation, so that the state grows
/// and compaction cannot keep the disk from filling.
pub fn fold(mutations: &[Entry]) -> String {
    let items: Vec<&str> = mutations.iter().map(|e| e.data.as_str()).collect();
    format!("[{}]", items.join(","))
}

pub fn reopen_state(
    dir: &Path,
    options: &StateOptions,
    acked: &[Entry],
    failed: &BTreeSet<u64>,
) -> StateLog {
    let (log, point) = StateLog::open_with(dir, options)
        .unwrap_or_else(|e| panic!("reopening a state after a full disk: {e}"));
    assert!(
        point.skipped.is_empty(),
        "damaged snapshots: {:?}",
        point.skipped
    );
    let covered = acked.partition_point(|e| e.seq <= point.seq());
    if let Some(snapshot) = &point.snapshot {
        assert_eq!(
            acked[covered - 1].seq,
            snapshot.seq,
            "a snapshot between mutations"
        );
        assert!(
            snapshot.state == fold(&acked[..covered]),
            "the snapshot at {} is not the fold of the acknowledged mutations",
            snapshot.seq
        );
    }
    let tail: Vec<Entry> = log
        .mutations_after(&point)
        .expect("mutations after the snapshot")
        .collect::<Result<_, _>>()
        .expect("reading the mutations");
    check_records("state", &tail, &acked[covered..], failed);
    let recovery = log.journal_recovery();
    assert_eq!(
        (recovery.dropped_bytes, recovery.dropped_records),
        (0, 0),
        "{recovery:?}"
    );
    log
}

/// What the test knows of the live messages, by the `id` in their payload:
/// `None` ready, `Some((message id, token))` leased.
pub type Live = BTreeMap<u64, Option<(u64, String)>>;

pub const LEASE_MS: u64 = 3_600_000; // the clock never moves: leases never expire

pub fn reopen_queue(
    dir: &Path,
    options: &QueueOptions,
    live: &Live,
    failed: &BTreeSet<u64>,
) -> Queue {
    let queue = Queue::open_with(dir, options.clone())
        .unwrap_or_else(|e| panic!("reopening a queue after a full disk: {e}"));
    let recovery = queue.log().journal_recovery();
    assert_eq!(
        (recovery.dropped_bytes, recovery.dropped_records),
        (0, 0),
        "{recovery:?}"
    );
    assert!(queue.dead_letters().is_empty());
    let messages = queue.peek(usize::MAX);
    let mut found = Live::new();
    let mut ready_order = Vec::new();
    for m in &messages {
        let pid = id_of(&m.payload);
        assert!(!failed.contains(&pid), "a push that failed is there: {m:?}");
        let place = match &m.place {
            Place::Ready { .. } => {
                ready_order.push(pid);
                None
            }
            Place::Leased { token, .. } => Some((m.id, token.clone())),
            Place::Dead => unreachable!("no dead letters"),
        };
        assert!(found.insert(pid, place).is_none(), "payload {pid} twice");
    }
    assert!(ready_order.is_sorted(), "ready messages out of push order");
    if let Some((pid, _)) = live.iter().zip(found.iter()).find(|(a, b)| a != b) {
        panic!(
            "after a restart, message {pid:?} differs ({} live expected, {} found)",
            live.len(),
            found.len()
        );
    }
    assert_eq!(&found, live, "the live messages after a restart");
    queue
}

/// One push, pop or ack on `queue`, reflected in `live` if it succeeded.
pub fn queue_op(
    queue: &Queue,
    live: &mut Live,
    pid: &mut u64,
    rng: &mut Rng,
) -> Result<(), (QueueError, Option<u64>)> {
    let leased: Vec<u64> = live
        .iter()
        .filter(|(_, l)| l.is_some())
        .map(|(&p, _)| p)
        .collect();
    let op = rng.u64(0..=99);
    if op < 25 && !leased.is_empty() {
        let p = leased[rng.usize(..leased.len())];
        let Some(Some((id, token))) = live.get(&p).cloned() else {
            unreachable!()
        };
        queue.ack(id, &token).map_err(|e| (e, None))?;
        live.remove(&p);
    } else if op < 50 {
        let first_ready = live.iter().find(|(_, l)| l.is_none()).map(|(&p, _)| p);
        match queue.pop(LEASE_MS).map_err(|e| (e, None))? {
            Some(d) => {
                let p = id_of(&d.payload);
                assert_eq!(
                    Some(p),
                    first_ready,
                    "pop did not give the oldest ready message"
                );
                live.insert(p, Some((d.id, d.token)));
            }
            None => assert_eq!(
                first_ready, None,
                "pop found nothing though a message is ready"
            ),
        }
    } else {
        *pid += 1;
        queue
            .push(&record(*pid, rng, 800), &PushOptions::default())
            .map_err(|e| (e, Some(*pid)))?;
        live.insert(*pid, None);
    }
    Ok(())
}

// ---- syncs held and failed on cue ---------------------------------------

/// Counts file syncs once armed, from 1: holds sync #1 until released and
/// fails sync number `fail_at`, so a test can make a group form behind a
/// sync and then fail one of its operations.
#[derive(Debug, Clone, Default)]
pub struct HeldSyncs(Arc<(Mutex<Plan>, Condvar)>);

#[derive(Debug, Default)]
pub struct Plan {
    /// The journal is open: count the syncs.
    armed: bool,
    /// Hold sync #1 until the test lets it go.
    hold: bool,
    syncs: u64,
}

impl HeldSyncs {
    fn plan(&self) -> MutexGuard<'_, Plan> {
        self.0.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait<'a>(&self, plan: MutexGuard<'a, Plan>) -> MutexGuard<'a, Plan> {
        self.0.1.wait(plan).unwrap_or_else(|p| p.into_inner())
    }

    /// `inner` with these syncs.
    pub fn fs(&self, inner: impl FileSystem + 'static, fail_at: u64) -> SyncHookFs {
        let this = self.clone();
        SyncHookFs::new(inner, move |sync| {
            let mut plan = this.plan();
            if !plan.armed {
                return sync();
            }
            plan.syncs += 1;
            let n = plan.syncs;
            this.0.1.notify_all();
            while n == 1 && plan.hold {
                plan = this.wait(plan);
            }
            drop(plan);
            if n == fail_at {
                return Err(io::Error::other("injected fdatasync failure"));
            }
            sync()
        })
    }

    /// Starts counting (and holding sync #1).
    pub fn arm(&self) {
        *self.plan() = Plan {
            armed: true,
            hold: true,
            syncs: 0,
        };
    }

    /// Waits until sync #1 has begun.
    pub fn wait_for_first(&self) {
        let mut plan = self.plan();
        while plan.syncs == 0 {
            plan = self.wait(plan);
        }
    }

    /// Lets sync #1 go.
    pub fn release(&self) {
        self.plan().hold = false;
        self.0.1.notify_all();
    }
}
