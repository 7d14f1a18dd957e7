//! Torn tails: for every byte at which a crash can cut the last unit, open
//! keeps exactly the complete prefix, reports and syncs the cut, and appends
//! continue. A crash cuts a unit in two ways: the file ends inside it (a
//! segment written without preallocation, or grown by this very write), or
//! the unit's later bytes are still the preallocated zeros they were to
//! overwrite. Also a last line whose crc fails, zero-filled tails, and
//! segments whose header was cut while they were being created.

mod common;

use std::path::Path;

use common::*;
use mini_engine::{Entry, Journal, JournalError, JournalOptions};

/// How a crash leaves the bytes of a unit it cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// The file ends where the write stopped.
    Truncated,
    /// The bytes the write did not reach are preallocated zeros.
    OverZeros,
}

/// Small segments; preallocated for [`Cut::OverZeros`].
fn options(cut: Cut) -> JournalOptions {
    JournalOptions {
        preallocate: if cut == Cut::OverZeros { 1 << 20 } else { 0 },
        ..small(1024)
    }
}

/// A journal over several segments whose last unit is `last_unit`; returns
/// (records before it, byte offset of the unit in the last segment).
fn build(dir: &Path, last_unit: &[String]) -> (Vec<Entry>, u64) {
    build_with(dir, last_unit, Cut::OverZeros)
}

fn build_with(dir: &Path, last_unit: &[String], cut: Cut) -> (Vec<Entry>, u64) {
    let journal = Journal::open_with(dir, options(cut)).unwrap();
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
    let bytes = contents(&seg);
    let start = bytes.len() as u64 - unit.len() as u64;
    assert_eq!(
        &bytes[start as usize..],
        unit.as_bytes(),
        "the last unit is at the end of the last segment"
    );
    assert_eq!(
        file_len(&seg) > bytes.len() as u64,
        cut == Cut::OverZeros,
        "preallocated zeros follow the records"
    );
    if segments(dir).len() > segs_before {
        assert_eq!(start, header(prefix.len() as u64 + 1).len() as u64);
    }
    (prefix, start)
}

/// Cuts a copy of the journal at every offset of its last unit, both ways a
/// crash can, and checks what open makes of it.
fn every_cut(last_unit: &[String]) {
    for how in [Cut::Truncated, Cut::OverZeros] {
        every_cut_one_way(last_unit, how);
    }
}

fn every_cut_one_way(last_unit: &[String], how: Cut) {
    let original = tmp();
    let (prefix, start) = build_with(original.path(), last_unit, how);
    let seg_name = last_segment(original.path())
        .file_name()
        .unwrap()
        .to_owned();
    let pristine = contents(&original.path().join(&seg_name));
    let full = pristine.len() as u64;
    let allocated = file_len(&original.path().join(&seg_name));
    let next = prefix.len() as u64 + 1;
    for cut in start..=full {
        let work = tmp();
        let dir = work.path().join("j");
        copy_journal(original.path(), &dir);
        let seg = dir.join(&seg_name);
        match how {
            Cut::Truncated => set_len(&seg, cut),
            Cut::OverZeros => patch(&seg, cut, &vec![0; (full - cut) as usize]),
        }

        let journal = Journal::open_with(&dir, options(how))
            .unwrap_or_else(|e| panic!("open after a cut at {cut} ({how:?}): {e}"));
        let whole = cut == full;
        let report = journal.recovery();
        let kept = if whole { full } else { start };
        assert_eq!(
            report.dropped_bytes,
            cut - kept,
            "dropped bytes, cut at {cut} ({how:?})"
        );
        let complete_lines = pristine[start as usize..cut as usize]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        let dropped_records = if whole { 0 } else { complete_lines as u64 };
        assert_eq!(
            report.dropped_records, dropped_records,
            "dropped records, cut at {cut} ({how:?})"
        );
        let mut want = prefix.clone();
        if whole {
            want.extend(last_unit.iter().enumerate().map(|(i, d)| Entry {
                seq: next + i as u64,
                data: d.clone(),
            }));
        }
        assert_eq!(report.records, want.len() as u64);
        assert_eq!(
            read_all(&journal),
            want,
            "records after a cut at {cut} ({how:?})"
        );
        assert_eq!(
            contents(&seg),
            pristine[..kept as usize],
            "file after a cut at {cut} ({how:?})"
        );
        if how == Cut::OverZeros && (cut == start || whole) {
            assert_eq!(file_len(&seg), allocated, "nothing to cut: zeros kept");
        }

        let seq = journal.append(r#"{"after":"cut"}"#).unwrap();
        assert_eq!(seq, want.len() as u64 + 1, "next seq after a cut at {cut}");
        drop(journal);
        let journal = Journal::open_with(&dir, options(how)).unwrap();
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
    for (unit, how) in [
        (vec![r#"{"v":12345}"#], Cut::Truncated),
        (vec![r#"{"v":12345}"#], Cut::OverZeros),
        (
            vec![r#"{"v":1}"#, r#"{"v":2}"#, r#"{"v":12345}"#],
            Cut::OverZeros,
        ),
    ] {
        let dir = tmp();
        let unit: Vec<String> = unit.into_iter().map(String::from).collect();
        let (prefix, start) = build_with(dir.path(), &unit, how);
        let line_len = flip_last_digit(dir.path());
        let seg = last_segment(dir.path());
        let full = records_end(&seg);
        let journal = Journal::open_with(dir.path(), options(how)).unwrap();
        // The whole unit goes: a batch whose last line fails is unfinished.
        assert_eq!(journal.recovery().dropped_bytes, full - start);
        assert!(journal.recovery().dropped_bytes >= line_len);
        assert_eq!(journal.recovery().dropped_records, unit.len() as u64 - 1);
        assert_eq!(read_all(&journal), prefix);
        assert_eq!(file_len(&seg), start);
        assert_eq!(journal.append("7").unwrap(), prefix.len() as u64 + 1);
    }
}

/// Zeros after the last line are preallocated space whether the journal
/// grew them or a crash did (a file system that extended the file but had
/// not written the data yet): nothing is cut, and appends overwrite them.
#[test]
fn a_zero_filled_tail_is_preallocated_space() {
    for how in [Cut::Truncated, Cut::OverZeros] {
        let dir = tmp();
        let (mut prefix, _) = build_with(dir.path(), &[rec(99)], how);
        prefix.push(Entry {
            seq: prefix.len() as u64 + 1,
            data: rec(99),
        });
        let seg = last_segment(dir.path());
        let end = records_end(&seg);
        let len = file_len(&seg) + 100;
        set_len(&seg, len);
        let journal = Journal::open_with(dir.path(), options(how)).unwrap();
        assert_eq!(journal.recovery().dropped_bytes, 0, "{how:?}");
        assert_eq!(file_len(&seg), len, "{how:?}: the zeros are kept");
        assert_eq!(read_all(&journal), prefix);
        let seq = journal.append("1").unwrap();
        assert_eq!(seq, prefix.len() as u64 + 1);
        assert_eq!(
            records_end(&seg),
            end + encode_unit(seq, &["1"]).len() as u64,
            "{how:?}: the record follows the last line, over the zeros"
        );
        drop(journal);
        let journal = Journal::open_with(dir.path(), options(how)).unwrap();
        assert_eq!(read_all(&journal).len() as u64, seq);
    }
}

/// Zeros followed by a line are not preallocated space but damage (what a
/// power loss can leave when a later page reached the disk and an earlier
/// one did not): reported, not cut, unless the line is the last and torn.
#[test]
fn zeros_before_a_line_are_damage() {
    let dir = tmp();
    let (prefix, _) = build(dir.path(), &[rec(99)]);
    let seq = prefix.len() as u64 + 2;
    let seg = last_segment(dir.path());
    let end = records_end(&seg);
    let next = encode_unit(seq, &[&rec(100)]);
    let after = encode_unit(seq + 1, &[&rec(101)]);
    patch(&seg, end + 20, format!("{next}{after}").as_bytes());
    match Journal::open_with(dir.path(), small(1024)) {
        Err(JournalError::Corrupt(c)) => {
            assert_eq!((c.offset, c.seq), (end, seq), "{c:?}");
        }
        other => panic!("zeros before two lines gave {other:?}"),
    }
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
            String::from_utf8(contents(&seg)).unwrap(),
            header(1) + &encode_unit(1, &["1"])
        );
    }
}
