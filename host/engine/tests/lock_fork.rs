//! A handle dropped while another thread forks a child must not leave its
//! lock behind: the child holds a copy of the lock file's description from
//! fork to exec, and a `flock` belongs to the description, so without an
//! explicit unlock on drop the reopen right after the drop gets `Locked`.
//!
//! A platform embedding mini spawns processes from other threads; the
//! children here sleep a little between fork and exec (`pre_exec`) to model
//! one that does work there, which makes the window wide enough to hit
//! reliably.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use mini_engine::queue::{PushOptions, Queue};
use mini_engine::snapshot::SnapshotStore;
use mini_engine::{Journal, JournalError};

/// Open, use and drop cycles per kind of handle.
const ROUNDS: u64 = 300;

/// Runs `round(i)` for `i` in `0..ROUNDS` while another thread keeps
/// spawning children that pause between fork and exec; returns the rounds
/// whose open failed with a lock error, with the error.
fn while_spawning<E: std::fmt::Debug>(
    mut round: impl FnMut(u64) -> Result<(), E>,
) -> Vec<(u64, String)> {
    let stop = Arc::new(AtomicBool::new(false));
    let spawned = Arc::new(AtomicU64::new(0));
    let spawner = {
        let stop = stop.clone();
        let spawned = spawned.clone();
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let mut command = Command::new("true");
                // SAFETY: the closure runs in the forked child before exec
                // and only calls nanosleep, which is async-signal-safe.
                unsafe {
                    command.pre_exec(|| {
                        thread::sleep(Duration::from_millis(2));
                        Ok(())
                    });
                }
                let mut child = command.spawn().expect("spawn `true`");
                child.wait().expect("wait for `true`");
                spawned.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    // Let the spawner get going, so every round runs while children fork.
    while spawned.load(Ordering::Relaxed) == 0 {
        thread::yield_now();
    }
    let mut failures = Vec::new();
    for i in 0..ROUNDS {
        if let Err(e) = round(i) {
            failures.push((i, format!("{e:?}")));
        }
    }
    stop.store(true, Ordering::Relaxed);
    spawner.join().expect("spawner thread");
    failures
}

fn assert_no_failures(what: &str, failures: &[(u64, String)]) {
    assert!(
        failures.is_empty(),
        "{what}: {} of {ROUNDS} reopens failed while children were forked; first: {:?}",
        failures.len(),
        failures.first()
    );
}

#[test]
fn journal_reopens_while_children_are_forked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal");
    let failures = while_spawning(|i| -> Result<(), JournalError> {
        let journal = Journal::open(&path)?;
        let seq = journal.append(&format!(r#"{{"i":{i}}}"#))?;
        assert_eq!(seq, journal.last_seq());
        drop(journal);
        Ok(())
    });
    assert_no_failures("journal", &failures);
    let journal = Journal::open(&path).expect("final open");
    assert_eq!(
        journal.last_seq(),
        ROUNDS,
        "every append of every round is there"
    );
}

#[test]
fn queue_reopens_while_children_are_forked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("queue");
    let failures = while_spawning(|i| -> Result<(), mini_engine::queue::QueueError> {
        let queue = Queue::open(&path)?;
        queue.push(&format!(r#"{{"i":{i}}}"#), &PushOptions::default())?;
        drop(queue);
        Ok(())
    });
    assert_no_failures("queue", &failures);
    let queue = Queue::open(&path).expect("final open");
    assert_eq!(queue.stats().ready, ROUNDS, "every push is there");
}

#[test]
fn snapshot_store_reopens_while_children_are_forked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("snapshots");
    let failures = while_spawning(|i| -> Result<(), mini_engine::SnapshotError> {
        let store = SnapshotStore::open(&path)?;
        store.create(i + 1, &format!(r#"{{"i":{i}}}"#))?;
        drop(store);
        Ok(())
    });
    assert_no_failures("snapshot store", &failures);
    let store = SnapshotStore::open(&path).expect("final open");
    let newest = store.restore().expect("restore").expect("a snapshot");
    assert_eq!(newest.seq, ROUNDS);
}
