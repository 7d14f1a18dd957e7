//! The unlocked, read-only views the operator's tools use (DESIGN.md: "the
//! engine is the one place that knows what is on disk"): each must agree
//! with what a locked open of the same directory does.

use std::path::Path;
use std::sync::Arc;

use mini_engine::journal::list_segments;
use mini_engine::queue::{ManualClock, MessageState, PushOptions, Queue, QueueError, QueueOptions};
use mini_engine::snapshot::{SnapshotStore, check_unlocked, list_unlocked, read_file};
use mini_engine::state::{JOURNAL_DIR, SNAPSHOT_DIR, StateError, StateLog, StateOptions};
use mini_engine::verify::{plan_repair, repair};
use mini_engine::{Journal, JournalOptions};

fn small() -> StateOptions {
    StateOptions {
        segment_size: 1,
        keep_snapshots: 2,
        ..StateOptions::default()
    }
}

/// A state of records 1..=9 (a segment each) checkpointed at 3 and 6, so
/// its journal is compacted to 4..=9.
fn nine(dir: &Path) -> StateLog {
    let (log, _) = StateLog::open_with(dir, &small()).expect("open");
    for i in 1..=9u64 {
        log.commit(&i.to_string()).expect("commit");
        if i == 3 || i == 6 {
            log.checkpoint(i, &i.to_string()).expect("checkpoint");
        }
    }
    log
}

fn flip_state(path: &Path) {
    let text = std::fs::read_to_string(path).expect("snapshot");
    let (head, state) = text.rsplit_once("\"state\":").expect("a state field");
    let flipped = state.replacen(|c: char| c.is_ascii_digit(), "0", 1);
    assert_ne!(state, flipped);
    std::fs::write(path, format!("{head}\"state\":{flipped}")).expect("write");
}

fn snapshot(dir: &Path, seq: u64) -> std::path::PathBuf {
    dir.join(SNAPSHOT_DIR)
        .join(mini_engine::snapshot::snapshot_file_name(seq))
}

#[test]
fn check_agrees_with_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = nine(dir.path());
    let first = list_segments(&dir.path().join(JOURNAL_DIR)).expect("segments")[0];
    assert!(first > 1, "the journal was compacted");
    let check = StateLog::check(dir.path(), &mut |_, _| {}).expect("check");
    let plan = check.recovery.expect("recovers");
    assert_eq!(
        (plan.snapshot_seq, plan.replayed(), plan.skipped),
        (Some(6), 3, 0)
    );
    assert_eq!(check.snapshots.valid, [3, 6]);
    drop(log);

    // The newest snapshot damaged: the check falls back as an open does.
    flip_state(&snapshot(dir.path(), 6));
    let check = StateLog::check(dir.path(), &mut |_, _| {}).expect("check");
    let plan = check.recovery.expect("recovers from 3");
    assert_eq!((plan.snapshot_seq, plan.skipped), (Some(3), 1));
    let (_, point) = StateLog::open_with(dir.path(), &small()).expect("open");
    assert_eq!(point.seq(), 3);
    assert_eq!(point.warnings().len(), 1);
    assert!(point.warnings()[0].contains("falls back to snapshot 3"));

    // Every snapshot damaged and the journal compacted: neither recovers.
    flip_state(&snapshot(dir.path(), 3));
    let check = StateLog::check(dir.path(), &mut |_, _| {}).expect("check");
    let Err(e @ StateError::JournalCompacted { .. }) = check.recovery else {
        panic!("expected JournalCompacted, got {:?}", check.recovery);
    };
    assert!(
        e.to_string().contains("every snapshot is damaged (2)"),
        "{e}"
    );
    assert!(matches!(
        StateLog::read_unlocked(dir.path()),
        Err(StateError::JournalCompacted { .. })
    ));
    assert!(matches!(
        StateLog::open_with(dir.path(), &small()),
        Err(StateError::JournalCompacted { .. })
    ));
}

#[test]
fn a_snapshot_beyond_the_journal_fails_the_check_and_the_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(nine(dir.path()));
    SnapshotStore::open(dir.path().join(SNAPSHOT_DIR))
        .expect("store")
        .create(20, "20")
        .expect("snapshot");
    let check = StateLog::check(dir.path(), &mut |_, _| {}).expect("check");
    assert!(matches!(
        check.recovery,
        Err(StateError::SnapshotBeyondJournal {
            snapshot_seq: 20,
            journal_last_seq: 9
        })
    ));
    let (point, mut tail) = StateLog::read_unlocked(dir.path()).expect("read");
    assert_eq!(point.seq(), 20);
    assert!(matches!(
        tail.next_entry(),
        Err(StateError::SnapshotBeyondJournal {
            snapshot_seq: 20,
            journal_last_seq: 9
        })
    ));
}

/// Found by fuzzing (issue 11): the queue's inspection showed the state of
/// a snapshot beyond the journal's end, which an open refuses.
#[test]
fn a_queue_snapshot_beyond_the_journal_fails_the_inspection_as_the_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let queue = Queue::open(dir.path()).expect("open");
        queue.push("1", &PushOptions::default()).expect("push");
        queue.checkpoint().expect("checkpoint");
    }
    SnapshotStore::open(dir.path().join(SNAPSHOT_DIR))
        .expect("store")
        .create(20, r#"{"next_id":9,"messages":[],"dedup":{}}"#)
        .expect("snapshot");
    let beyond = |e: &QueueError| {
        matches!(
            e,
            QueueError::Storage(StateError::SnapshotBeyondJournal {
                snapshot_seq: 20,
                journal_last_seq: 1
            })
        )
    };
    match Queue::open(dir.path()) {
        Err(e) => assert!(beyond(&e), "{e:?}"),
        Ok(_) => panic!("the queue opened"),
    }
    match mini_engine::queue::inspect_queue(dir.path()) {
        Err(e) => assert!(beyond(&e), "{e:?}"),
        Ok(found) => panic!("inspected {} messages", found.state.len()),
    }
}

#[test]
fn the_tail_is_what_an_open_replays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = nine(dir.path());
    let (point, mut tail) = StateLog::read_unlocked(dir.path()).expect("read");
    assert_eq!(point.seq(), 6);
    let mut seqs = Vec::new();
    while let Some(entry) = tail.next_entry().expect("tail") {
        seqs.push(entry.seq);
    }
    assert_eq!(seqs, [7, 8, 9]);
    // Records appended later come on later calls.
    log.commit("10").expect("commit");
    assert_eq!(tail.next_entry().expect("tail").map(|e| e.seq), Some(10));
}

#[test]
fn a_damaged_journal_fails_the_check_and_the_plan_matches_the_repair() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = dir.path().join("j");
    let options = JournalOptions {
        segment_size: 1,
        ..JournalOptions::default()
    };
    {
        let j = Journal::open_with(&journal, options).expect("open");
        for i in 1..=5 {
            j.append(&format!("{{\"n\":{i}}}")).expect("append");
        }
    }
    let segments = list_segments(&journal).expect("segments");
    assert_eq!(segments.len(), 5, "{segments:?}");
    let second = journal.join(mini_engine::segment::segment_file_name(segments[1]));
    let text = std::fs::read_to_string(&second).expect("segment");
    std::fs::write(&second, text.replacen("\"n\":2", "\"n\":7", 1)).expect("write");

    let plan = plan_repair(&journal, &mut |_, _| {}).expect("plan");
    let damage = plan.damage.clone().expect("damage found");
    assert_eq!(damage.seq, 2);
    let before = std::fs::read(&second).expect("segment");
    assert_eq!(
        std::fs::read(&second).expect("segment"),
        before,
        "a plan changes nothing"
    );
    let done = repair(&journal).expect("repair");
    assert_eq!(done.bytes_removed, plan.bytes_to_remove);
    assert_eq!(done.records_left, 1);

    // A state whose journal is damaged does not recover.
    let state = dir.path().join("s");
    drop(StateLog::open_with(&state, &small()).expect("open"));
    {
        let (log, _) = StateLog::open_with(&state, &small()).expect("open");
        log.commit_batch(&["1", "2", "3"]).expect("commit");
    }
    let j = state.join(JOURNAL_DIR);
    let first = j.join(mini_engine::segment::segment_file_name(1));
    let text = std::fs::read_to_string(&first).expect("segment");
    std::fs::write(&first, text.replacen("\"data\":1", "\"data\":4", 1)).expect("write");
    let check = StateLog::check(&state, &mut |_, _| {}).expect("check");
    assert!(check.journal.damage.is_some());
    assert!(matches!(check.recovery, Err(StateError::Journal(_))));
}

#[test]
fn snapshot_listing_reads_and_checks_without_the_lock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SnapshotStore::open(dir.path()).expect("open");
    store.create(1, "[1]").expect("create");
    store.create(2, "[2]").expect("create");
    std::fs::write(dir.path().join(".tmp-left-by-a-crash"), "{").expect("temp");
    let listing = list_unlocked(dir.path()).expect("list");
    assert_eq!(
        listing.files.iter().map(|f| f.0).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(listing.temporary, 1);
    assert_eq!(
        read_file(&store.path_of(2)).expect("valid"),
        (2, "[2]".into())
    );
    // A copy under another name names its own seq; a renamed one is damage.
    let copy = dir.path().join("copy.json");
    std::fs::copy(store.path_of(2), &copy).expect("copy");
    assert_eq!(read_file(&copy).expect("valid").0, 2);
    std::fs::rename(
        store.path_of(2),
        dir.path()
            .join(mini_engine::snapshot::snapshot_file_name(5)),
    )
    .expect("rename");
    let check = check_unlocked(dir.path()).expect("check");
    assert_eq!((check.valid.clone(), check.newest()), (vec![1], Some(1)));
    assert_eq!(check.skipped().len(), 1);
    assert_eq!(check.skipped()[0].seq, 5);
}

#[test]
fn a_dry_run_selects_what_a_purge_deletes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(1_000_000));
    let options = QueueOptions {
        max_deliveries: 1,
        clock: clock.clone(),
        ..QueueOptions::default()
    };
    let queue = Queue::open_with(dir.path(), options).expect("open");
    for n in 1..=3 {
        queue
            .push(&n.to_string(), &PushOptions::default())
            .expect("push");
    }
    // 1 and 2 delivered once and expired: dead at their next pop.
    for _ in 0..2 {
        queue.pop(10).expect("pop").expect("a message");
    }
    clock.advance(20);
    let delivered = queue.pop_batch(10, 10).expect("pop");
    assert_eq!(delivered.iter().map(|d| d.id).collect::<Vec<_>>(), [3]);
    let (state, _) = mini_engine::queue::inspect(dir.path()).expect("inspect");
    let dead = state.select_dead_letters(None).expect("all");
    assert_eq!(dead, [1, 2]);
    assert_eq!(
        state.select_dead_letters(Some(&[2, 1, 2])).expect("ids"),
        [1, 2]
    );
    assert!(matches!(
        state.select_dead_letters(Some(&[3])),
        Err(QueueError::NotDead { id: 3 })
    ));
    let now = 1_000_020;
    let states: Vec<MessageState> = state.messages().map(|m| m.place.state_at(now)).collect();
    assert_eq!(
        states,
        [MessageState::Dead, MessageState::Dead, MessageState::Leased]
    );
    assert_eq!(state.stats(now).dead, 2);
    assert_eq!(queue.purge(None).expect("purge"), dead.len());
}
