//! Key-value buckets under concurrency and at their size limit: writers of
//! one bucket share fsyncs while a write of the same key waits for the one
//! in flight, readers never wait for an fsync, compare-and-swap loops from
//! many threads lose no increment, and a bucket refuses to grow past what
//! its snapshot may hold.

mod common;

use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{SyncHookFs, no_sync_fs};
use mini_engine::fs::{FileSystem, StdFs};
use mini_engine::kv::{Bucket, BucketOptions, KvError, Swap};
use mini_engine::state::StateOptions;

fn options(fs: Arc<dyn FileSystem>, max_state_size: usize) -> BucketOptions {
    BucketOptions {
        state: StateOptions {
            preallocate: 0,
            max_state_size,
            fs,
            ..StateOptions::default()
        },
        checkpoint_every: 1000,
    }
}

/// Holds every fdatasync while closed.
#[derive(Default)]
struct Valve {
    state: Mutex<(bool, usize)>, // (closed, syncs held now)
    changed: Condvar,
}

impl Valve {
    fn set_closed(&self, closed: bool) {
        self.state.lock().unwrap().0 = closed;
        self.changed.notify_all();
    }

    fn pass(&self) {
        let mut state = self.state.lock().unwrap();
        state.1 += 1;
        self.changed.notify_all();
        while state.0 {
            state = self.changed.wait(state).unwrap();
        }
        state.1 -= 1;
    }

    fn wait_held(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut state = self.state.lock().unwrap();
        while state.1 == 0 {
            assert!(Instant::now() < deadline, "no fdatasync came");
            state = self
                .changed
                .wait_timeout(state, Duration::from_millis(50))
                .unwrap()
                .0;
        }
    }
}

/// Waits (up to 30 s, a bound for a hang, not a measure) until `done`.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn writers_share_fsyncs_a_write_of_the_same_key_waits_and_readers_do_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let valve = Arc::new(Valve::default());
    let hook = valve.clone();
    let fs = SyncHookFs::new(StdFs, move |sync| {
        hook.pass();
        sync()
    });
    let bucket = Arc::new(Bucket::open(dir.path(), &options(Arc::new(fs), 1 << 20)).expect("open"));
    bucket.set("a", b"0").expect("set");
    let journal = bucket.log().journal().clone();
    let base = journal.next_seq();

    valve.set_closed(true);
    let set = |key: &'static str, value: &'static [u8]| {
        let bucket = bucket.clone();
        thread::spawn(move || bucket.set(key, value).expect("set"))
    };
    let first = set("a", b"1");
    valve.wait_held();
    assert_eq!(
        bucket.get("a"),
        Some(b"0".to_vec()),
        "not durable yet, not seen"
    );
    let other_key = set("b", b"1");
    eventually(
        "a write of another key joins the journal while an fsync runs",
        || journal.next_seq() == base + 2,
    );
    let same_key = set("a", b"2");
    thread::sleep(Duration::from_millis(200));
    assert_eq!(
        journal.next_seq(),
        base + 2,
        "a write of a key being written waits for its outcome"
    );
    assert_eq!(bucket.get("a"), Some(b"0".to_vec()));

    valve.set_closed(false);
    for writer in [first, other_key, same_key] {
        writer.join().expect("writer");
    }
    assert_eq!(
        bucket.get("a"),
        Some(b"2".to_vec()),
        "the later decision wins"
    );
    assert_eq!(bucket.get("b"), Some(b"1".to_vec()));
    drop((bucket, journal));
    let reopened = Bucket::open(dir.path(), &options(Arc::new(StdFs), 1 << 20)).expect("reopen");
    assert_eq!(reopened.get("a"), Some(b"2".to_vec()), "the journal agrees");
}

#[test]
fn compare_and_swap_loops_from_many_threads_lose_no_increment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fs: Arc<dyn FileSystem> = Arc::new(no_sync_fs());
    let bucket = Arc::new(Bucket::open(dir.path(), &options(fs.clone(), 1 << 20)).expect("open"));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let bucket = bucket.clone();
            thread::spawn(move || {
                let (mut swaps, mut failures) = (0u64, 0u64);
                let mut seen = bucket.observe("counter");
                while swaps < 60 {
                    let n: u64 = seen
                        .value
                        .as_deref()
                        .map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
                    let next = (n + 1).to_string();
                    match bucket.compare_and_swap("counter", seen.version, next.as_bytes()) {
                        Ok(Swap::Swapped) => {
                            swaps += 1;
                            seen = bucket.observe("counter");
                        }
                        Ok(Swap::Changed(now)) => {
                            failures += 1;
                            seen = now;
                        }
                        Err(e) => panic!("swap failed: {e}"),
                    }
                    // Others interleave with plain writes of other keys.
                    bucket.set(&format!("noise{swaps}"), b"x").expect("set");
                }
                (swaps, failures)
            })
        })
        .collect();
    let (mut swaps, mut failures) = (0, 0);
    for worker in workers {
        let (s, f) = worker.join().expect("worker");
        swaps += s;
        failures += f;
    }
    assert_eq!(swaps, 480);
    assert_eq!(
        bucket.get("counter"),
        Some(b"480".to_vec()),
        "{failures} failed swaps"
    );
    drop(bucket);
    let reopened = Bucket::open(dir.path(), &options(fs, 1 << 20)).expect("reopen");
    assert_eq!(reopened.get("counter"), Some(b"480".to_vec()));
}

#[test]
fn a_bucket_refuses_to_grow_past_what_its_snapshot_may_hold() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fs: Arc<dyn FileSystem> = Arc::new(no_sync_fs());
    let limit = 4096;
    let bucket = Bucket::open(dir.path(), &options(fs.clone(), limit)).expect("open");
    let value = vec![b'v'; 100];
    let mut stored = 0;
    let refused = loop {
        match bucket.set(&format!("key{stored}"), &value) {
            Ok(()) => stored += 1,
            Err(e) => break e,
        }
        assert!(stored < 100, "never refused");
    };
    let KvError::Full {
        needed,
        limit: said,
    } = refused
    else {
        panic!("not full: {refused}");
    };
    assert!(needed > limit as u64 && said == limit as u64);
    assert!(bucket.snapshot_bytes() <= limit as u64);
    // Nothing of the refused write is there; smaller writes and deletes are.
    assert!(!bucket.exists(&format!("key{stored}")));
    bucket.set("key0", b"small").expect("a shrinking overwrite");
    bucket
        .delete_many(&["key1", "key2"])
        .expect("deletes are always taken");
    bucket.set("key1", &value).expect("room again");
    // What the bucket holds always fits its snapshot.
    bucket.checkpoint().expect("the checkpoint fits");
    let json = std::fs::read_dir(dir.path().join("snapshots"))
        .expect("snapshots")
        .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
        .map(|bytes| bytes.len())
        .max()
        .expect("a snapshot");
    assert!(json <= limit + 512, "a snapshot of {json} bytes");
    drop(bucket);
    let reopened = Bucket::open(dir.path(), &options(fs, limit)).expect("reopen");
    assert_eq!(reopened.len(), stored - 1);
}
