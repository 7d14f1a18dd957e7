//! Appending and reading: sequence numbers, the on-disk line format, refusal
//! of bad input without side effects, and readers that follow the journal.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use mini_engine::fs::faulty::{FaultyFs, FsEvent};
use mini_engine::{Entry, Journal, JournalError, JournalOptions};

fn entries(pairs: &[(u64, &str)]) -> Vec<Entry> {
    pairs
        .iter()
        .map(|&(seq, data)| Entry {
            seq,
            data: data.to_string(),
        })
        .collect()
}

#[test]
fn round_trip_seqs_start_at_one_and_are_contiguous() {
    let dir = tmp();
    let journal = Journal::open(dir.path()).unwrap();
    assert_eq!(
        (journal.first_seq(), journal.next_seq(), journal.last_seq()),
        (1, 1, 0)
    );
    let mut expected = Vec::new();
    for i in 1..=10 {
        assert_eq!(journal.append(&rec(i)).unwrap(), i);
        expected.push(Entry {
            seq: i,
            data: rec(i),
        });
    }
    let batch = [rec(11), rec(12), rec(13)];
    assert_eq!(
        journal.append_batch(&batch).unwrap(),
        13,
        "a batch returns its last seq"
    );
    expected.extend((11..=13).map(|i| Entry {
        seq: i,
        data: rec(i),
    }));
    assert_eq!(journal.append_batch(&[rec(14)]).unwrap(), 14);
    expected.push(Entry {
        seq: 14,
        data: rec(14),
    });
    assert_eq!(
        (journal.first_seq(), journal.next_seq(), journal.last_seq()),
        (1, 15, 14)
    );
    assert_eq!(read_all(&journal), expected);
    assert_eq!(read_from(&journal, 1), expected);
}

#[test]
fn on_disk_lines_follow_the_format() {
    let dir = tmp();
    let journal = Journal::open(dir.path()).unwrap();
    journal.append(r#"{"Inc":{"by":5}}"#).unwrap();
    journal
        .append_batch(&[r#"{"Set":{"value":10}}"#, "[1,2]", r#""é""#])
        .unwrap();
    drop(journal);
    let segs = segments(dir.path());
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].1.file_name().unwrap(), "00000000000000000001.jsonl");
    let text = String::from_utf8(contents(&segs[0].1)).unwrap();
    let expected = header(1)
        + &encode_unit(1, &[r#"{"Inc":{"by":5}}"#])
        + &encode_unit(2, &[r#"{"Set":{"value":10}}"#, "[1,2]", r#""é""#]);
    assert_eq!(text, expected);
    // Every line is JSON a person can feed to jq.
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
}

#[test]
fn reopen_continues_the_seqs() {
    let dir = tmp();
    {
        let journal = Journal::open(dir.path()).unwrap();
        journal.append(&rec(1)).unwrap();
        journal.append_batch(&[rec(2), rec(3)]).unwrap();
    }
    for round in 0..3u64 {
        let journal = Journal::open(dir.path()).unwrap();
        let next = 4 + 2 * round;
        assert_eq!(journal.next_seq(), next);
        assert_eq!(journal.last_seq(), next - 1);
        assert_eq!(journal.recovery().records, next - 1);
        assert_eq!(journal.recovery().dropped_bytes, 0);
        assert_eq!(journal.append(&rec(next)).unwrap(), next);
        assert_eq!(journal.append(&rec(next + 1)).unwrap(), next + 1);
        let all = read_all(&journal);
        let seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=next + 1).collect::<Vec<_>>());
        assert!(all.iter().all(|e| e.data == rec(e.seq)));
    }
}

#[test]
fn read_from_any_seq() {
    let dir = tmp();
    let journal = Journal::open(dir.path()).unwrap();
    let mut i = 1;
    while i <= 20 {
        if i % 3 == 0 && i + 2 <= 20 {
            journal
                .append_batch(&[rec(i), rec(i + 1), rec(i + 2)])
                .unwrap();
            i += 3;
        } else {
            journal.append(&rec(i)).unwrap();
            i += 1;
        }
    }
    for from in 0..=21 {
        let got = read_from(&journal, from);
        let want: Vec<Entry> = (from.max(1)..=20)
            .map(|s| Entry {
                seq: s,
                data: rec(s),
            })
            .collect();
        assert_eq!(got, want, "read_from({from})");
    }
    for from in [22, 1000, u64::MAX] {
        match journal.read_from(from) {
            Err(JournalError::OutOfRange {
                requested,
                first,
                next,
            }) => {
                assert_eq!((requested, first, next), (from, 1, 21));
            }
            other => panic!("read_from({from}) gave {other:?}"),
        }
    }
}

#[test]
fn invalid_records_are_refused_and_change_nothing() {
    let dir = tmp();
    let options = JournalOptions {
        max_record_size: 64,
        ..JournalOptions::default()
    };
    let journal = Journal::open_with(dir.path(), options).unwrap();
    journal.append(r#"{"a":1}"#).unwrap();
    journal.append_batch(&["2", "3"]).unwrap();
    let before = snapshot(dir.path());
    let at_limit = format!("\"{}\"", "y".repeat(62));
    let over_limit = format!("\"{}\"", "y".repeat(63));
    let invalid = [
        "",
        "   ",
        "\n",
        "{",
        r#"{"a":1} {"b":2}"#,
        "1 2",
        "nope",
        "'single'",
        r#"{"a":1}}"#,
        "\"unterminated",
    ];
    for bad in invalid {
        assert!(
            matches!(journal.append(bad), Err(JournalError::InvalidRecord(_))),
            "append({bad:?}) accepted"
        );
        assert!(
            matches!(
                journal.append_batch(&["4", bad, "5"]),
                Err(JournalError::InvalidRecord(_))
            ),
            "batch with {bad:?} accepted"
        );
        assert_eq!(
            snapshot(dir.path()),
            before,
            "refusing {bad:?} changed the files"
        );
    }
    match journal.append(&over_limit) {
        Err(JournalError::RecordTooLarge { size, limit }) => assert_eq!((size, limit), (65, 64)),
        other => panic!("oversize record gave {other:?}"),
    }
    assert!(matches!(
        journal.append_batch(&["4".to_string(), over_limit.clone()]),
        Err(JournalError::RecordTooLarge { .. })
    ));
    assert!(matches!(
        journal.append_batch::<&str>(&[]),
        Err(JournalError::InvalidRecord(_))
    ));
    assert_eq!(snapshot(dir.path()), before, "refusals changed the files");
    assert_eq!(journal.next_seq(), 4);
    assert!(
        !journal.is_poisoned(),
        "bad input must not poison the handle"
    );
    // The handle still works, and a record exactly at the limit is accepted.
    assert_eq!(journal.append(&at_limit).unwrap(), 4);
    let want = entries(&[(1, r#"{"a":1}"#), (2, "2"), (3, "3"), (4, &at_limit)]);
    assert_eq!(read_all(&journal), want);
    drop(journal);
    assert_eq!(read_all(&Journal::open(dir.path()).unwrap()), want);
}

#[test]
fn multi_line_json_is_stored_on_one_line() {
    let dir = tmp();
    let journal = Journal::open(dir.path()).unwrap();
    journal
        .append("{\n  \"a\": 1,\n  \"b\": \"x y\\nz\",\r\n  \"c\": [1,\n 2]\n}\n")
        .unwrap();
    journal.append("  \t[true, false]  ").unwrap();
    let want = entries(&[
        (1, r#"{"a":1,"b":"x y\nz","c":[1,2]}"#),
        (2, "[true, false]"),
    ]);
    assert_eq!(read_all(&journal), want);
    drop(journal);
    let text = String::from_utf8(contents(&last_segment(dir.path()))).unwrap();
    assert_eq!(
        text.lines().count(),
        3,
        "header plus one line per record:\n{text}"
    );
    let journal = Journal::open(dir.path()).unwrap();
    assert_eq!(read_all(&journal), want);
}

#[test]
fn a_reader_sees_records_appended_after_it_reached_the_end() {
    let dir = tmp();
    // Small segments, so following also crosses segment boundaries.
    let journal = Journal::open_with(dir.path(), small(300)).unwrap();
    let mut fresh = journal.read_from(0).unwrap();
    assert!(fresh.next().is_none(), "an empty journal reads nothing");
    journal.append(&rec(1)).unwrap();
    journal.append(&rec(2)).unwrap();
    let mut reader = journal.read_from(0).unwrap();
    let mut at_end = journal.read_from(3).unwrap();
    assert_eq!(reader.next().unwrap().unwrap().seq, 1);
    assert_eq!(reader.next().unwrap().unwrap().seq, 2);
    assert!(reader.next().is_none());
    assert!(at_end.next().is_none());
    for i in 3..=60 {
        if i % 5 == 0 {
            journal.append_batch(&[rec(i), rec(1000 + i)]).unwrap();
        } else {
            journal.append(&rec(i)).unwrap();
        }
        for r in [&mut reader, &mut at_end] {
            let mut got = Vec::new();
            for entry in r.by_ref() {
                got.push(entry.unwrap());
            }
            assert_eq!(
                got.first().map(|e| e.data.clone()),
                Some(rec(i)),
                "after append {i}"
            );
            assert_eq!(got.len(), if i % 5 == 0 { 2 } else { 1 });
        }
    }
    assert_eq!(
        fresh.next().unwrap().unwrap(),
        Entry {
            seq: 1,
            data: rec(1)
        }
    );
    assert!(
        segments(dir.path()).len() > 3,
        "the readers did not cross segments"
    );
    // A fresh reader over the whole journal agrees with what was followed.
    assert_eq!(read_all(&journal).len() as u64, journal.last_seq());
}

#[test]
fn a_second_handle_in_the_same_process_is_refused() {
    let dir = tmp();
    let journal = Journal::open(dir.path()).unwrap();
    journal.append("1").unwrap();
    match Journal::open(dir.path()) {
        Err(e @ JournalError::Locked { .. }) => assert!(e.to_string().contains("locked")),
        other => panic!("second open gave {other:?}"),
    }
    let weak = journal.downgrade();
    let clone = journal.clone();
    drop(journal);
    assert!(weak.upgrade().is_some(), "a clone keeps the journal open");
    assert!(Journal::open(dir.path()).is_err(), "a clone keeps the lock");
    drop(clone);
    assert!(weak.upgrade().is_none());
    let again = Journal::open(dir.path()).unwrap();
    assert_eq!(read_all(&again), entries(&[(1, "1")]));
}

#[test]
fn read_unlocked_follows_a_line_completed_later() {
    let dir = tmp();
    {
        let journal = Journal::open(dir.path()).unwrap();
        journal.append(&rec(1)).unwrap();
    }
    // Another process is half way through writing line 2.
    let seg = last_segment(dir.path());
    let line = encode_unit(2, &[&rec(2)]);
    let (first, rest) = line.as_bytes().split_at(line.len() / 2);
    append_bytes(&seg, first);
    let mut reader = mini_engine::read_unlocked(dir.path(), 0).unwrap();
    assert_eq!(
        reader.next().unwrap().unwrap(),
        Entry {
            seq: 1,
            data: rec(1)
        }
    );
    assert!(reader.next().is_none(), "a half line is not returned");
    append_bytes(&seg, rest);
    match reader.next() {
        Some(Ok(entry)) => assert_eq!(
            entry,
            Entry {
                seq: 2,
                data: rec(2)
            }
        ),
        other => panic!("after the line was completed the reader gave {other:?}"),
    }
    assert!(reader.next().is_none());
}

/// Child half of `open_a_relative_path`: runs with its working directory set
/// by the parent.
#[test]
#[ignore = "child process of open_a_relative_path"]
fn relative_path_child() {
    if std::env::var_os("MINI_RELATIVE_CHILD").is_none() {
        return;
    }
    let fs = FaultyFs::new();
    let options = JournalOptions {
        fs: Arc::new(fs.clone()),
        ..JournalOptions::default()
    };
    let journal = Journal::open_with("counter", options).expect("open a relative path");
    assert_eq!(journal.append("1").unwrap(), 1);
    // The new directory's entry lives in the working directory: it is synced.
    let cwd = std::env::current_dir().unwrap();
    let synced = fs
        .events()
        .into_iter()
        .any(|e| matches!(e, FsEvent::SyncDir(p) if p == Path::new(".") || p == cwd));
    assert!(synced, "working directory not synced: {:?}", fs.events());
    println!("relative-ok");
}

#[test]
fn open_a_relative_path() {
    let dir = tmp();
    let out = child_test("relative_path_child", &[("MINI_RELATIVE_CHILD", "1")])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("relative-ok"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let journal = Journal::open(dir.path().join("counter")).unwrap();
    assert_eq!(read_all(&journal), entries(&[(1, "1")]));
}
