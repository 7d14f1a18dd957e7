//! Segment rotation with thousands of records: file names, reads from any
//! sequence across segment boundaries, nothing deleted until
//! `truncate_before`, which removes only whole segments below its argument.

mod common;

use std::path::Path;

use common::*;
use mini_engine::{Entry, Journal, JournalError};

const SEGMENT: u64 = 4096;
const TOTAL: u64 = 5000;

/// Appends records 1..=TOTAL in units of 1..=12 records (so rotation falls
/// both between single records and before batches), reopening the journal
/// halfway through.
fn write_many(dir: &Path) -> Journal {
    let mut rng = Rng::with_seed(0x5eed);
    let mut journal = Journal::open_with(dir, small(SEGMENT)).unwrap();
    let mut next = 1;
    while next <= TOTAL {
        let n = rng.u64(1..=12).min(TOTAL - next + 1);
        let unit: Vec<String> = (next..next + n).map(rec).collect();
        let last = if n == 1 && rng.u64(0..=1) == 0 {
            journal.append(&unit[0]).unwrap()
        } else {
            journal.append_batch(&unit).unwrap()
        };
        assert_eq!(last, next + n - 1);
        next += n;
        if next > TOTAL / 2 && next - n <= TOTAL / 2 {
            drop(journal);
            journal = Journal::open_with(dir, small(SEGMENT)).unwrap();
            assert_eq!(journal.next_seq(), next);
        }
    }
    journal
}

fn expect(from: u64, to: u64) -> Vec<Entry> {
    (from..=to)
        .map(|seq| Entry {
            seq,
            data: rec(seq),
        })
        .collect()
}

/// Checks the segment files: names are their first seqs, headers agree,
/// segments are contiguous and none is over the size (no unit here is).
fn check_segment_files(dir: &Path, first: u64, last: u64) -> Vec<u64> {
    let segs = segments(dir);
    let mut expected_first = first;
    for (seq, path) in &segs {
        assert_eq!(
            *seq,
            expected_first,
            "{} does not continue the previous segment",
            path.display()
        );
        let sealed = lines(path).last().is_some_and(is_seal);
        let is_last = Some(path) == segs.last().map(|(_, p)| p);
        assert_eq!(sealed, !is_last, "{} sealed", path.display());
        let lines = record_lines(path);
        assert_eq!(format!("{}\n", lines[0].text), header(*seq));
        let records_end = lines.last().map_or(0, |l| l.end);
        assert!(
            records_end <= SEGMENT,
            "{} holds {records_end} bytes of records",
            path.display(),
        );
        if let Some(line) = lines.get(1) {
            assert_eq!(seq_of(line), *seq, "first record of {}", path.display());
        }
        expected_first = lines
            .last()
            .map_or(*seq, |l| if l.offset == 0 { *seq } else { seq_of(l) + 1 });
    }
    assert_eq!(
        expected_first,
        last + 1,
        "the segments do not end at the last record"
    );
    segs.iter().map(|(s, _)| *s).collect()
}

#[test]
fn thousands_of_records_across_many_segments() {
    let dir = tmp();
    let journal = write_many(dir.path());
    assert_eq!(journal.last_seq(), TOTAL);
    let firsts = check_segment_files(dir.path(), 1, TOTAL);
    assert!(firsts.len() > 50, "only {} segments", firsts.len());
    assert_eq!(read_all(&journal), expect(1, TOTAL));

    let mut samples: Vec<u64> = (1..=TOTAL).step_by(97).collect();
    samples.extend([1, 2, TOTAL - 1, TOTAL]);
    for &first in &firsts[1..] {
        samples.extend([first - 1, first, first + 1]);
    }
    for from in samples {
        let got: Vec<Entry> = journal
            .read_from(from)
            .unwrap()
            .take(5)
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            got,
            expect(from, (from + 4).min(TOTAL)),
            "read_from({from})"
        );
    }
    // The tail from a late segment boundary is read whole.
    let late = firsts[firsts.len() - 3];
    assert_eq!(read_from(&journal, late), expect(late, TOTAL));
}

#[test]
fn truncate_before_deletes_only_whole_segments_below_it() {
    let dir = tmp();
    let journal = write_many(dir.path());
    let firsts = check_segment_files(dir.path(), 1, TOTAL);
    assert_eq!(firsts[0], 1, "nothing is deleted by rotation");

    // Inside the first segment: nothing to delete.
    assert_eq!(journal.truncate_before(firsts[1] - 1).unwrap(), 0);
    assert_eq!(journal.truncate_before(0).unwrap(), 0);
    assert_eq!(segments(dir.path()).len(), firsts.len());

    // Exactly at a segment boundary: every segment before it goes.
    let cut = firsts[10];
    assert_eq!(journal.truncate_before(cut).unwrap(), 10);
    assert_eq!(check_segment_files(dir.path(), cut, TOTAL), firsts[10..]);
    assert_eq!(journal.first_seq(), cut);
    assert_eq!(read_all(&journal), expect(cut, TOTAL));
    match journal.read_from(cut - 1) {
        Err(JournalError::OutOfRange {
            requested, first, ..
        }) => assert_eq!((requested, first), (cut - 1, cut)),
        other => panic!("read below the first seq gave {other:?}"),
    }

    // One short of a boundary keeps the segment that holds it.
    let keep = firsts[20] - 1;
    assert_eq!(journal.truncate_before(keep).unwrap(), 9);
    assert_eq!(journal.first_seq(), firsts[19]);
    assert!(
        read_from(&journal, keep)
            .first()
            .is_some_and(|e| e.seq == keep)
    );

    // Everything: the active segment stays, appends continue.
    let active = *firsts.last().unwrap();
    let removed = journal.truncate_before(u64::MAX).unwrap();
    assert_eq!(removed, firsts.len() - 20);
    assert_eq!(
        segments(dir.path())
            .iter()
            .map(|(s, _)| *s)
            .collect::<Vec<_>>(),
        [active]
    );
    assert_eq!(journal.first_seq(), active);
    assert_eq!(journal.append(&rec(TOTAL + 1)).unwrap(), TOTAL + 1);
    assert_eq!(read_all(&journal), expect(active, TOTAL + 1));
    drop(journal);

    // Reopen: the first seq and the seqs survive.
    let journal = Journal::open_with(dir.path(), small(SEGMENT)).unwrap();
    assert_eq!(journal.first_seq(), active);
    assert_eq!(journal.next_seq(), TOTAL + 2);
    assert!(matches!(
        journal.read_from(1),
        Err(JournalError::OutOfRange { .. })
    ));
    for i in TOTAL + 2..=TOTAL + 300 {
        assert_eq!(journal.append(&rec(i)).unwrap(), i);
    }
    assert_eq!(read_all(&journal), expect(active, TOTAL + 300));
    assert!(
        segments(dir.path()).len() > 1,
        "rotation goes on after truncation"
    );
    check_segment_files(dir.path(), active, TOTAL + 300);
}

#[test]
fn a_batch_bigger_than_a_segment_gets_a_segment() {
    let dir = tmp();
    let journal = Journal::open_with(dir.path(), small(SEGMENT)).unwrap();
    // First unit of an empty journal, already too big: written in segment 1.
    let big: Vec<String> = (1..=60)
        .map(|i| format!(r#"{{"i":{i},"pad":"{}"}}"#, "b".repeat(100)))
        .collect();
    assert_eq!(journal.append_batch(&big).unwrap(), 60);
    assert_eq!(journal.append(&rec(61)).unwrap(), 61);
    let huge = format!("\"{}\"", "h".repeat(3 * SEGMENT as usize));
    assert_eq!(journal.append(&huge).unwrap(), 62);
    assert_eq!(journal.append_batch(&big).unwrap(), 122);
    assert_eq!(journal.append(&rec(123)).unwrap(), 123);

    let firsts: Vec<u64> = segments(dir.path()).iter().map(|(s, _)| *s).collect();
    assert_eq!(
        firsts,
        [1, 61, 62, 63, 123],
        "each oversize unit gets a segment of its own"
    );
    let mut want: Vec<String> = big.clone();
    want.push(rec(61));
    want.push(huge);
    want.extend(big);
    want.push(rec(123));
    let got: Vec<String> = read_all(&journal).into_iter().map(|e| e.data).collect();
    assert_eq!(got, want);
    drop(journal);
    let journal = Journal::open_with(dir.path(), small(SEGMENT)).unwrap();
    assert_eq!(journal.recovery().dropped_bytes, 0);
    let got: Vec<String> = read_all(&journal).into_iter().map(|e| e.data).collect();
    assert_eq!(got, want);
    assert_eq!(journal.truncate_before(123).unwrap(), 4);
    assert_eq!(
        read_all(&journal),
        vec![Entry {
            seq: 123,
            data: rec(123)
        }]
    );
}
