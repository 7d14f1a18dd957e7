//! Queue ids at the u64 edge (found by fuzzing the readers, issue 11): an
//! id read from disk outside 1..=MAX_ID is damage, and a counter read from
//! a snapshot at the edge makes pushes fail clearly, never wrap onto a
//! live message.

mod common;

use std::collections::BTreeMap;

use common::*;
use mini_engine::queue::{MAX_ID, PushOptions, Queue, QueueError, QueueSnapshot, QueueState};
use mini_engine::segment::{encode_line, parse_line};
use mini_engine::state::JOURNAL_DIR;

#[test]
fn a_pushed_id_of_u64_max_in_the_journal_is_damage_not_a_panic() {
    let dir = tmp();
    {
        let q = Queue::open(dir.path()).unwrap();
        assert_eq!(q.push("1", &PushOptions::default()).unwrap(), 1);
    }
    // Rewrite the push record with id u64::MAX, crc-valid, so the fold sees it.
    let journal = dir.path().join(JOURNAL_DIR);
    let (_, segment) = segments(&journal).into_iter().next().unwrap();
    let text = String::from_utf8(std::fs::read(&segment).unwrap()).unwrap();
    let mut out = Vec::new();
    let mut rewrote = false;
    for (i, line) in text.trim_end_matches('\0').lines().enumerate() {
        let parsed = (i > 0).then(|| parse_line(line.as_bytes()).unwrap());
        match parsed {
            Some(rec) if rec.data.contains("\"push\"") => {
                let data = rec
                    .data
                    .replacen("\"id\":1", &format!("\"id\":{}", u64::MAX), 1);
                assert_ne!(data, rec.data);
                encode_line(&mut out, rec.seq, &data, rec.more);
                rewrote = true;
            }
            _ => {
                out.extend_from_slice(line.as_bytes());
                out.push(b'\n');
            }
        }
    }
    assert!(rewrote, "no push record in {text}");
    std::fs::write(&segment, out).unwrap();
    match Queue::open(dir.path()) {
        Err(QueueError::BadRecord { .. }) => {}
        other => panic!("open gave {other:?}"),
    }
}

#[test]
fn a_snapshot_counter_at_the_edge_leaves_no_ids_to_give_out() {
    let at_edge = QueueState::from_snapshot(QueueSnapshot {
        next_id: u64::MAX,
        messages: Vec::new(),
        dedup: BTreeMap::new(),
    });
    assert_eq!(at_edge.ids_left(), 0);
    let one_left = QueueState::from_snapshot(QueueSnapshot {
        next_id: MAX_ID,
        messages: Vec::new(),
        dedup: BTreeMap::new(),
    });
    assert_eq!(one_left.ids_left(), 1);
    assert_eq!(QueueState::default().ids_left(), MAX_ID);
}
