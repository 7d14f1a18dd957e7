//! Torn tails: for every byte at which a crash can cut the last unit, open
//! keeps exactly the complete prefix, reports and syncs the cut, and appends
//! continue. Also a last line whose crc fails, zero-filled tails, and
//! segments whose header was cut while they were being created.

mod common;

use std::path::Path;

use common::*;
use mini_engine::{Entry, Journal};

/// A journal over several segments whose last unit is `last_unit`; returns
/// (records before it, byte offset of the unit in the last segment).
fn build(dir: &Path, last_unit: &[String]) -> (Vec<Entry>, u64) {
    let journal = Journal::open_with(dir, small(1024)).unwrap();
    let mut prefix = Vec::new();
    for i in 1..=40 {
        let seq = if i % 7 == 0 {
            journal.append_batch(&[rec(i), rec(i)]).unwrap() - 1
        } else {
            journal.append(&rec(i)).unwrap()
        };
        prefix.push(Entry { seq, data: rec(i) });
        if i % 7 == 0 {
            prefix.push(Entry {
                seq: seq + 1,
                data: rec(i),
            });
        }
    }
    let before = read_all(&journal).len();
    assert_eq!(before, prefix.len());
    let segs_before = segments(dir).len();
    let last = journal.append_batch(last_unit).unwrap();
    assert_eq!(last, prefix.len() as u64 + last_unit.len() as u64);
    drop(journal);
    assert!(
        segments(dir).len() >= 3,
        "the journal should span several segments"
    );
    let seg = last_segment(dir);
    let unit = encode_unit(
        prefix.len() as u64 + 1,
        &last_unit.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let len = file_len(&seg);
    let start = len - unit.len() as u64;
    let bytes = std::fs::read(&seg).unwrap();
    assert_eq!(
        &bytes[start as usize..],
        unit.as_bytes(),
        "the last unit is at the end of the last segment"
    );
    if segments(dir).len() > segs_before {
        assert_eq!(start, header(prefix.len() as u64 + 1).len() as u64);
    }
    (prefix, start)
}

/// Cuts a copy of the journal at every offset of its last unit and checks
/// what open makes of it.
fn every_cut(last_unit: &[String]) {
    let original = tmp();
    let (prefix, start) = build(original.path(), last_unit);
    let seg_name = last_segment(original.path())
        .file_name()
        .unwrap()
        .to_owned();
    let full = file_len(&original.path().join(&seg_name));
    let pristine = std::fs::read(original.path().join(&seg_name)).unwrap();
    let next = prefix.len() as u64 + 1;
    for cut in start..=full {
        let work = tmp();
        let dir = work.path().join("j");
        copy_journal(original.path(), &dir);
        let seg = dir.join(&seg_name);
        set_len(&seg, cut);

        let journal = Journal::open_with(&dir, small(1024))
            .unwrap_or_else(|e| panic!("open after a cut at {cut}: {e}"));
        let whole = cut == full;
        let report = journal.recovery();
        let kept = if whole { full } else { start };
        assert_eq!(
            report.dropped_bytes,
            cut - kept,
            "dropped bytes, cut at {cut}"
        );
        let complete_lines = pristine[start as usize..cut as usize]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        let dropped_records = if whole { 0 } else { complete_lines as u64 };
        assert_eq!(
            report.dropped_records, dropped_records,
            "dropped records, cut at {cut}"
        );
        let mut want = prefix.clone();
        if whole {
            want.extend(last_unit.iter().enumerate().map(|(i, d)| Entry {
                seq: next + i as u64,
                data: d.clone(),
            }));
        }
        assert_eq!(report.records, want.len() as u64);
        assert_eq!(read_all(&journal), want, "records after a cut at {cut}");
        assert_eq!(
            std::fs::read(&seg).unwrap(),
            pristine[..kept as usize],
            "file after a cut at {cut}"
        );

        let seq = journal.append(r#"{"after":"cut"}"#).unwrap();
        assert_eq!(seq, want.len() as u64 + 1, "next seq after a cut at {cut}");
        drop(journal);
        let journal = Journal::open_with(&dir, small(1024)).unwrap();
        assert_eq!(journal.recovery().dropped_bytes, 0);
        want.push(Entry {
            seq,
            data: r#"{"after":"cut"}"#.into(),
        });
        assert_eq!(read_all(&journal), want);
    }
}

#[test]
fn every_cut_of_a_last_batch() {
    every_cut(&[
        r#"{"b":1,"x":"first"}"#.into(),
        r#"{"b":2}"#.into(),
        r#"{"b":3,"x":[1,2,3]}"#.into(),
    ]);
}

#[test]
fn every_cut_of_a_last_single_record() {
    every_cut(&[r#"{"single":true,"x":"the last one"}"#.into()]);
}

/// Replaces one digit inside the data of the last line of the last segment.
fn flip_last_digit(dir: &Path) -> u64 {
    let seg = last_segment(dir);
    let last = lines(&seg).pop().unwrap();
    let at = last.text.rfind("12345").expect("digits in the last record") as u64 + 4;
    patch(&seg, last.offset + at, b"6");
    last.end - last.offset
}

#[test]
fn a_last_line_whose_crc_fails_is_cut() {
    for unit in [
        vec![r#"{"v":12345}"#],
        vec![r#"{"v":1}"#, r#"{"v":2}"#, r#"{"v":12345}"#],
    ] {
        let dir = tmp();
        let unit: Vec<String> = unit.into_iter().map(String::from).collect();
        let (prefix, start) = build(dir.path(), &unit);
        let line_len = flip_last_digit(dir.path());
        let seg = last_segment(dir.path());
        let full = file_len(&seg);
        let journal = Journal::open_with(dir.path(), small(1024)).unwrap();
        // The whole unit goes: a batch whose last line fails is unfinished.
        assert_eq!(journal.recovery().dropped_bytes, full - start);
        assert!(journal.recovery().dropped_bytes >= line_len);
        assert_eq!(journal.recovery().dropped_records, unit.len() as u64 - 1);
        assert_eq!(read_all(&journal), prefix);
        assert_eq!(file_len(&seg), start);
        assert_eq!(journal.append("7").unwrap(), prefix.len() as u64 + 1);
    }
}

#[test]
fn a_zero_filled_tail_is_cut() {
    let dir = tmp();
    let (mut prefix, _) = build(dir.path(), &[rec(99)]);
    prefix.push(Entry {
        seq: prefix.len() as u64 + 1,
        data: rec(99),
    });
    let seg = last_segment(dir.path());
    let len = file_len(&seg);
    append_bytes(&seg, &[0u8; 100]);
    let journal = Journal::open_with(dir.path(), small(1024)).unwrap();
    assert_eq!(journal.recovery().dropped_bytes, 100);
    assert_eq!(file_len(&seg), len);
    assert_eq!(read_all(&journal), prefix);
    assert_eq!(journal.append("1").unwrap(), prefix.len() as u64 + 1);
}

/// A crash while a segment was being created leaves it empty or with part of
/// its header: it holds no record, so open removes it.
#[test]
fn a_segment_cut_while_being_created_is_removed() {
    let hdr_len = header(1).len();
    for keep in [0, 1, hdr_len / 2, hdr_len - 1] {
        let dir = tmp();
        let (mut prefix, _) = build(dir.path(), &[rec(99)]);
        prefix.push(Entry {
            seq: prefix.len() as u64 + 1,
            data: rec(99),
        });
        let next = prefix.len() as u64 + 1;
        let before = snapshot(dir.path());
        let partial = dir.path().join(format!("{next:020}.jsonl"));
        std::fs::write(&partial, &header(next).as_bytes()[..keep]).unwrap();

        let journal = Journal::open_with(dir.path(), small(1024)).unwrap();
        assert_eq!(journal.recovery().dropped_bytes, keep as u64);
        assert!(!partial.exists(), "the torn segment is removed");
        assert_eq!(snapshot(dir.path()), before, "nothing else changes");
        assert_eq!(read_all(&journal), prefix);
        assert_eq!(journal.append("1").unwrap(), next);
        drop(journal);
        let journal = Journal::open_with(dir.path(), small(1024)).unwrap();
        assert_eq!(journal.recovery().dropped_bytes, 0);
        assert_eq!(journal.last_seq(), next);
    }
}

#[test]
fn a_brand_new_journal_cut_while_being_created_opens_empty() {
    for keep in [0, 10] {
        let dir = tmp();
        let seg = dir.path().join(format!("{:020}.jsonl", 1));
        std::fs::write(&seg, &header(1).as_bytes()[..keep]).unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        assert_eq!(journal.recovery().dropped_bytes, keep as u64);
        assert_eq!(journal.next_seq(), 1);
        assert_eq!(journal.append("1").unwrap(), 1);
        assert_eq!(
            std::fs::read_to_string(&seg).unwrap(),
            header(1) + &encode_unit(1, &["1"])
        );
    }
}
