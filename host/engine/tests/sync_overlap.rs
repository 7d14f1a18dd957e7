//! fdatasyncs of one journal never overlap, rotation included: when two
//! overlap and one fails, Linux may report the error to only one of them, so
//! the other would acknowledge records on the word of a sync that lost them.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::SyncHookFs;
use mini_engine::fs::StdFs;
use mini_engine::{Journal, JournalOptions};

#[derive(Debug, Default)]
struct Overlap {
    in_flight: AtomicUsize,
    max: AtomicUsize,
    syncs: AtomicUsize,
}

/// The real file system; every fdatasync is counted while it runs and made
/// a little longer, so overlapping syncs would be seen.
fn overlap_fs(overlap: &Arc<Overlap>) -> SyncHookFs {
    let overlap = overlap.clone();
    SyncHookFs::new(StdFs, move |sync| {
        let now = overlap.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        overlap.max.fetch_max(now, Ordering::SeqCst);
        overlap.syncs.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(1));
        let result = sync();
        overlap.in_flight.fetch_sub(1, Ordering::SeqCst);
        result
    })
}

#[test]
fn syncs_never_overlap_even_while_rotating() {
    let dir = tempfile::tempdir().unwrap();
    let overlap = Arc::new(Overlap::default());
    let options = JournalOptions {
        segment_size: 2048,
        fs: Arc::new(overlap_fs(&overlap)),
        ..JournalOptions::default()
    };
    let journal = Journal::open_with(dir.path(), options).unwrap();
    std::thread::scope(|s| {
        for t in 0..8 {
            let journal = journal.clone();
            s.spawn(move || {
                for i in 0..60 {
                    journal
                        .append(&format!(
                            "{{\"t\":{t},\"i\":{i},\"pad\":\"{}\"}}",
                            "p".repeat(100)
                        ))
                        .unwrap();
                }
            });
        }
    });
    assert_eq!(journal.last_seq(), 480);
    let segments = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".jsonl")
        })
        .count();
    assert!(segments > 10, "the test rotates ({segments} segments)");
    assert!(overlap.syncs.load(Ordering::SeqCst) > 10);
    assert_eq!(
        overlap.max.load(Ordering::SeqCst),
        1,
        "two fdatasyncs of one journal ran at the same time"
    );
}
