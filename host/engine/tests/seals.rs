//! Seals (FORMAT.md, "Seals"): a closed segment ends in a seal line that
//! open trusts instead of reading the segment. What must hold: a bad seal
//! is loud (open refuses, `verify` names it, `repair` cuts the seal alone
//! and open seals the segment again); damage under a good seal is met by
//! the read; journals written before seals open with the same records and
//! get the seals the writer would have written; and a read from any seq,
//! which seeks through the seals' index, returns exactly the records from
//! there.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use mini_engine::segment::seal::{Seal, parse_seal_line};
use mini_engine::verify::{repair, verify};
use mini_engine::{CorruptionKind, Entry, Journal, JournalError, JournalOptions};

/// 300 single records over about a dozen 2 KiB segments; returns the
/// segments.
fn build(dir: &Path) -> Vec<(u64, PathBuf)> {
    let journal = Journal::open_with(dir, small(2048)).unwrap();
    for i in 1..=300 {
        assert_eq!(journal.append(&rec(i)).unwrap(), i);
    }
    drop(journal);
    segments(dir)
}

fn all_records() -> Vec<Entry> {
    (1..=300)
        .map(|seq| Entry {
            seq,
            data: rec(seq),
        })
        .collect()
}

/// The seal line of `path` and the seal it holds.
fn seal_of(path: &Path) -> (Line, Seal) {
    let line = lines(path).pop().unwrap();
    assert!(is_seal(&line), "{} is not sealed", path.display());
    let seal = parse_seal_line(line.text.as_bytes()).unwrap();
    (line, seal)
}

/// Replaces the seal line of `path` with the line of `seal`.
fn rewrite_seal(path: &Path, seal: &Seal) {
    let (line, _) = seal_of(path);
    set_len(path, line.offset);
    append_bytes(path, &seal.line());
}

#[test]
fn closed_segments_are_sealed_with_what_they_hold() {
    let dir = tmp();
    let segs = build(dir.path());
    assert!(segs.len() >= 8);
    for pair in segs.windows(2) {
        let ((first, path), (next, _)) = (&pair[0], &pair[1]);
        let (line, seal) = seal_of(path);
        let records = record_lines(path);
        assert_eq!(seal.first_seq, *first);
        assert_eq!(seal.last_seq, next - 1);
        assert_eq!(seal.records, records.len() as u64 - 1);
        assert_eq!(seal.len, line.offset);
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(seal.content_crc, crc32c(&bytes[..line.offset as usize]));
        assert_eq!(seal.index.first(), Some(&(*first, records[1].offset)));
    }
    assert!(!lines(&segs.last().unwrap().1).last().is_some_and(is_seal));
}

#[test]
fn damage_under_a_good_seal_is_met_by_the_read_and_by_verify() {
    let dir = tmp();
    let segs = build(dir.path());
    let (path, line) = find_line(dir.path(), seq_of(&record_lines(&segs[3].1)[5]));
    let seq = seq_of(&line);
    let at = line.offset + line.text.find("\"pad\"").unwrap() as u64 + 2;
    patch(&path, at, b"Q");
    // Open reads only the seal: the segment's length is unchanged.
    let journal = Journal::open(dir.path()).expect("open trusts the seal");
    let mut reader = journal.read_from(0).unwrap();
    for want in 1..seq {
        assert_eq!(reader.next().unwrap().unwrap().seq, want);
    }
    let Some(Err(JournalError::Corrupt(damage))) = reader.next() else {
        panic!("the damaged record was returned");
    };
    assert_eq!(
        (&damage.file, damage.offset, damage.seq),
        (&path, line.offset, seq)
    );
    assert!(matches!(
        damage.kind,
        CorruptionKind::ChecksumMismatch { .. }
    ));
    // A read that starts past the damaged segment never meets it; one that
    // starts in it before the damage does.
    assert!(journal.read_from(segs[4].0).unwrap().all(|r| r.is_ok()));
    assert!(journal.read_from(seq).unwrap().any(|r| r.is_err()));
    drop(journal);
    assert_eq!(
        verify(dir.path(), &mut |_, _| {}).unwrap().damage,
        Some(damage)
    );
}

#[test]
fn a_bad_seal_is_refused_loudly_and_repair_seals_again() {
    type Spoil = fn(&Path, Seal);
    let cases: [(&str, Spoil); 5] = [
        ("a flipped byte in the seal", |path, _| {
            let (line, _) = seal_of(path);
            let at = line.text.find("records").unwrap() as u64;
            patch(path, line.offset + at, b"R");
        }),
        ("a first seq other than the file name's", |path, seal| {
            rewrite_seal(
                path,
                &Seal {
                    first_seq: seal.first_seq + 1,
                    ..seal
                },
            )
        }),
        ("a length other than the records'", |path, seal| {
            rewrite_seal(
                path,
                &Seal {
                    len: seal.len - 1,
                    ..seal
                },
            )
        }),
        ("a last seq other than the records'", |path, seal| {
            let (last_seq, records) = (seal.last_seq - 1, seal.records - 1);
            rewrite_seal(
                path,
                &Seal {
                    last_seq,
                    records,
                    ..seal
                },
            )
        }),
        ("a content crc other than the records'", |path, seal| {
            rewrite_seal(
                path,
                &Seal {
                    content_crc: !seal.content_crc,
                    ..seal
                },
            )
        }),
    ];
    for (what, spoil) in cases {
        let dir = tmp();
        let segs = build(dir.path());
        let path = segs[4].1.clone();
        let (good_line, good) = seal_of(&path);
        spoil(&path, good.clone());
        let expect_bad_seal = |kind: &CorruptionKind| {
            assert!(
                matches!(kind, CorruptionKind::BadSeal(_)),
                "{what}: {kind:?}"
            );
        };
        // The cheap checks at open catch all but a wrong content crc, which
        // only reading the segment can tell (verify does).
        let opened = Journal::open(dir.path());
        if what.starts_with("a content crc") {
            assert_eq!(read_all(&opened.expect(what)), all_records(), "{what}");
        } else {
            match opened {
                Err(JournalError::Corrupt(c)) => {
                    expect_bad_seal(&c.kind);
                    assert_eq!((&c.file, c.offset), (&path, good_line.offset), "{what}");
                    assert!(c.to_string().contains("bad segment seal"), "{c}");
                }
                other => panic!("{what}: open gave {other:?}"),
            }
        }
        let damage = verify(dir.path(), &mut |_, _| {}).unwrap().damage;
        let damage = damage.unwrap_or_else(|| panic!("{what}: verify found nothing"));
        expect_bad_seal(&damage.kind);
        assert_eq!((&damage.file, damage.offset), (&path, good_line.offset));

        let repaired = repair(dir.path()).unwrap();
        assert_eq!(repaired.cut_at, Some(damage), "{what}");
        assert_eq!(
            repaired.records_left, 300,
            "{what}: a bad seal costs no record"
        );
        assert_eq!(segments(dir.path()), segs, "{what}: no segment moved out");
        assert_eq!(
            seal_of(&path),
            (good_line.clone(), good.clone()),
            "{what}: sealed again"
        );
        let journal = Journal::open(dir.path()).unwrap();
        assert_eq!(read_all(&journal), all_records());
        drop(journal);
        let report = verify(dir.path(), &mut |_, _| {}).unwrap();
        assert_eq!((report.damage, report.records), (None, 300), "{what}");
    }
}

/// The last segment's header torn (a crash while it was created): open
/// removes it, and the sealed segment before it becomes the one written
/// on. Its seal proves its records were whole, so damage in its last line
/// is damage, not a torn tail to cut (found by fuzzing).
#[test]
fn damage_under_the_seal_of_the_new_last_segment_is_not_taken_for_a_torn_tail() {
    let dir = tmp();
    let segs = build(dir.path());
    let (last_first, last_path) = segs.last().unwrap().clone();
    // The segment before it, its last record damaged.
    let (path, line) = find_line(dir.path(), last_first - 1);
    patch(&path, line.offset + 2, b"X");
    // The last segment's header cut short: open removes the segment.
    set_len(&last_path, 10);
    let Err(JournalError::Corrupt(damage)) = Journal::open(dir.path()) else {
        panic!("open took the damaged last record for a torn tail");
    };
    assert_eq!(
        (&damage.file, damage.offset, damage.seq),
        (&path, line.offset, last_first - 1)
    );
    assert_eq!(
        verify(dir.path(), &mut |_, _| {}).unwrap().damage,
        Some(damage)
    );
}

#[test]
fn journals_from_before_seals_open_the_same_and_get_the_same_seals() {
    let dir = tmp();
    let segs = build(dir.path());
    let sealed: Vec<(Line, Seal)> = segs[..segs.len() - 1]
        .iter()
        .map(|(_, p)| seal_of(p))
        .collect();
    // What an older mini leaves: no seals, and (its trim was not synced)
    // zeros after the records of a closed segment.
    for ((_, path), (line, _)) in segs.iter().zip(&sealed) {
        set_len(path, line.offset);
    }
    set_len(&segs[2].1, sealed[2].0.offset + 700);
    let unlocked: Vec<Entry> = mini_engine::read_unlocked(dir.path(), 0)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(unlocked, all_records());
    assert_eq!(verify(dir.path(), &mut |_, _| {}).unwrap().records, 300);

    let journal = Journal::open(dir.path()).unwrap();
    assert_eq!(journal.recovery().dropped_bytes, 0);
    assert_eq!(read_all(&journal), all_records());
    for ((_, path), old) in segs.iter().zip(&sealed) {
        assert_eq!(
            &seal_of(path),
            old,
            "{} sealed as the writer would",
            path.display()
        );
        assert_eq!(file_len(path), old.0.end);
    }
    assert_eq!(journal.append(&rec(301)).unwrap(), 301);
}

/// Records of 50 to 400 bytes in batches of 1 to 8 (and some of hundreds)
/// over segments of 256 KiB
/// (each with a few index entries), read from every seq: on the live
/// journal (the active segment's index as it grows), after a reopen (the
/// seals' index), and without the lock.
#[test]
fn reads_from_every_seq_return_exactly_the_records_from_there() {
    let dir = tmp();
    let options = JournalOptions {
        segment_size: 256 * 1024,
        ..JournalOptions::default()
    };
    let journal = Journal::open_with(dir.path(), options.clone()).unwrap();
    let mut rng = Rng::with_seed(seed_from_env());
    let mut model: Vec<String> = Vec::new();
    while model.len() < 6_000 {
        // Now and then a batch bigger than the index's spacing: entries
        // then fall inside batches.
        let len = if rng.u64(..20) == 0 {
            200 + rng.u64(..600)
        } else {
            1 + rng.u64(..8)
        };
        let batch: Vec<String> = (0..len)
            .map(|_| {
                let n = model.len();
                format!(r#"{{"n":{n},"pad":"{}"}}"#, "p".repeat(rng.usize(40..390)))
            })
            .collect();
        let last = journal.append_batch(&batch).unwrap();
        model.extend(batch);
        assert_eq!(last, model.len() as u64);
    }
    assert!(segments(dir.path()).len() >= 3);
    let entries = |from: u64| -> Vec<Entry> {
        (from..=model.len() as u64)
            .map(|seq| Entry {
                seq,
                data: model[seq as usize - 1].clone(),
            })
            .collect()
    };
    let check = |what: &str, read: &dyn Fn(u64) -> Vec<Entry>| {
        for from in 1..=model.len() as u64 + 1 {
            let got = read(from);
            let want = entries(from);
            // Every read's first records, and every 250th read whole.
            let n = if from.is_multiple_of(250) {
                want.len()
            } else {
                want.len().min(3)
            };
            assert_eq!(&got[..n.min(got.len())], &want[..n], "{what}: from {from}");
        }
    };
    let first = |reader: Box<dyn Iterator<Item = Result<Entry, JournalError>>>, from: u64| {
        let n = if from.is_multiple_of(250) {
            usize::MAX
        } else {
            3
        };
        reader.take(n).collect::<Result<Vec<_>, _>>().unwrap()
    };
    check("live", &|from| {
        first(Box::new(journal.read_from(from).unwrap()), from)
    });
    drop(journal);
    // The seals the writer built (index entries inside batches included)
    // are the ones the scanner builds from the records.
    let report = verify(dir.path(), &mut |_, _| {}).unwrap();
    assert_eq!((report.damage, report.records), (None, model.len() as u64));
    let entries: usize = segments(dir.path())
        .iter()
        .filter_map(|(_, path)| lines(path).pop().filter(is_seal))
        .map(|line| parse_seal_line(line.text.as_bytes()).unwrap().index.len())
        .sum();
    assert!(entries > 20, "{entries} index entries");
    let journal = Journal::open_with(dir.path(), options).unwrap();
    check("reopened", &|from| {
        first(Box::new(journal.read_from(from).unwrap()), from)
    });
    check("unlocked", &|from| {
        first(
            Box::new(mini_engine::read_unlocked(dir.path(), from).unwrap()),
            from,
        )
    });
}
