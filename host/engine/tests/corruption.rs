//! Damage before the tail is loud: open fails naming the file, byte offset
//! and sequence, and changes nothing; `verify` reports the same damage;
//! `repair` cuts there, keeps what it cut in `repair-*`, and the journal
//! then opens with exactly the records before the damage.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use mini_engine::segment::segment_file_name;
use mini_engine::verify::{repair, verify};
use mini_engine::{Corruption, CorruptionKind, Entry, Journal, JournalError};

/// 300 single records over about a dozen 2 KiB segments.
fn build(dir: &Path) -> Vec<(u64, PathBuf)> {
    let journal = Journal::open_with(dir, small(2048)).unwrap();
    for i in 1..=300 {
        assert_eq!(journal.append(&rec(i)).unwrap(), i);
    }
    drop(journal);
    let segs = segments(dir);
    assert!(segs.len() >= 8, "{} segments", segs.len());
    segs
}

/// A record line in the middle of segment `index`.
fn middle_line(segs: &[(u64, PathBuf)], index: usize) -> (PathBuf, Line, u64) {
    let path = segs[index].1.clone();
    let all = lines(&path);
    let line = all[all.len() / 2].clone();
    let seq = seq_of(&line);
    (path, line, seq)
}

fn same_kind(a: &CorruptionKind, b: &CorruptionKind) -> bool {
    match (a, b) {
        (CorruptionKind::Garbage(_), CorruptionKind::Garbage(_)) => true,
        (CorruptionKind::BadHeader(_), CorruptionKind::BadHeader(_)) => true,
        _ => a == b,
    }
}

/// The damage that opening the journal in `dir`, or else reading it
/// whole, meets: open reads only the seals of closed segments, so damage
/// under a seal that leaves its length alone is met by the read (which
/// returns every record before it first).
fn met_damage(dir: &Path) -> Corruption {
    let journal = match Journal::open(dir) {
        Err(JournalError::Corrupt(c)) => return c,
        Ok(journal) => journal,
        Err(other) => panic!("open of a damaged journal gave {other:?}"),
    };
    let mut next = 1;
    for entry in journal.read_from(0).unwrap() {
        match entry {
            Ok(entry) => {
                assert_eq!((entry.seq, entry.data), (next, rec(next)));
                next += 1;
            }
            Err(JournalError::Corrupt(c)) => {
                assert_eq!(
                    next, c.seq,
                    "the read returns every record before the damage"
                );
                return c;
            }
            Err(other) => panic!("a read of a damaged journal gave {other:?}"),
        }
    }
    panic!("neither open nor a read met the damage");
}

/// `bytes` of a segment without the seal line it ends in, if it does.
fn without_seal(bytes: &[u8]) -> &[u8] {
    let body = &bytes[..bytes.len().saturating_sub(1)];
    match body.iter().rposition(|&b| b == b'\n') {
        Some(i) if body[i + 1..].starts_with(b"{\"seal\":") => &bytes[..i + 1],
        _ => bytes,
    }
}

/// Checks open (or the read), verify and repair against the damage
/// expected, then that the repaired journal holds records 1..=kept and goes
/// on.
fn check_damage(dir: &Path, expected: Corruption, kept: u64) {
    let before = snapshot(dir);
    let damage = met_damage(dir);
    let shown = (&damage.file, damage.offset, damage.seq);
    assert_eq!(
        shown,
        (&expected.file, expected.offset, expected.seq),
        "{damage}"
    );
    assert!(
        same_kind(&damage.kind, &expected.kind),
        "kind {:?}, expected {:?}",
        damage.kind,
        expected.kind
    );
    assert_eq!(snapshot(dir), before, "meeting damage changed the journal");
    let text = JournalError::Corrupt(damage.clone()).to_string();
    for part in [
        expected.file.display().to_string(),
        format!("byte {}", expected.offset),
        format!("seq {}", expected.seq),
    ] {
        assert!(text.contains(&part), "{text:?} does not name {part:?}");
    }

    let report = verify(dir, &mut |_, _| {}).unwrap();
    assert_eq!(
        report.damage.as_ref(),
        Some(&damage),
        "verify disagrees with open"
    );
    assert_eq!(snapshot(dir), before, "verify changed the journal");

    let repaired = repair(dir).unwrap();
    assert_eq!(repaired.cut_at.as_ref(), Some(&damage));
    assert_eq!(repaired.records_left, kept);
    let backup = repaired.saved_to.clone().expect("a backup directory");
    assert_eq!(backup.parent(), Some(dir));
    let backup_name = backup.file_name().unwrap().to_str().unwrap();
    assert!(backup_name.starts_with("repair-"), "{backup_name}");
    // The backup holds exactly the bytes removed: the damaged segment from the
    // damaged line on, and every later segment whole.
    let damaged_name = expected
        .file
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let mut removed = 0;
    let after = snapshot(dir);
    let last_kept = before
        .keys()
        .rfind(|n| **n < damaged_name && expected.offset == 0);
    for (name, bytes) in &before {
        if *name < damaged_name {
            // The segment before the cut is the last one now: it is written
            // on, so its seal goes (all it held is metadata).
            let expected = if Some(name) == last_kept {
                without_seal(bytes)
            } else {
                &bytes[..]
            };
            assert_eq!(
                after.get(name).map(|b| &b[..]),
                Some(expected),
                "{name} before the damage changed"
            );
            continue;
        }
        let cut = if *name == damaged_name {
            expected.offset as usize
        } else {
            0
        };
        let saved = if cut == 0 {
            backup.join(name)
        } else {
            backup.join(format!("{name}.cut-at-{cut}"))
        };
        assert_eq!(
            std::fs::read(&saved).unwrap(),
            bytes[cut..],
            "{} in the backup",
            saved.display()
        );
        if cut == 0 {
            // Gone, or a fresh empty segment in its place: the one after
            // the records kept (the segment before it, sealed, is closed).
            let fresh = header(kept + 1).into_bytes();
            let left = after.get(name);
            assert!(
                left.is_none_or(|b| *b == fresh && *name == segment_file_name(kept + 1)),
                "{name} still in the journal"
            );
        } else {
            assert_eq!(after[name], bytes[..cut], "{name} not cut at {cut}");
        }
        removed += (bytes.len() - cut) as u64;
    }
    assert_eq!(repaired.bytes_removed, removed);

    let journal = Journal::open(dir).unwrap();
    let want: Vec<Entry> = (1..=kept)
        .map(|seq| Entry {
            seq,
            data: rec(seq),
        })
        .collect();
    assert_eq!(read_all(&journal), want);
    assert_eq!(journal.append(r#"{"after":"repair"}"#).unwrap(), kept + 1);
    drop(journal);
    let report = verify(dir, &mut |_, _| {}).unwrap();
    assert_eq!(
        (report.damage, report.records, report.last_seq),
        (None, kept + 1, kept + 1)
    );
}

#[test]
fn a_flipped_byte_is_a_checksum_mismatch() {
    let dir = tmp();
    let segs = build(dir.path());
    let (path, line, seq) = middle_line(&segs, 3);
    let digit_at =
        line.text.find(&format!("\"data\":{{\"i\":{seq}")).unwrap() + 12 + seq.to_string().len()
            - 1;
    let old = line.text.as_bytes()[digit_at];
    let new = if old == b'9' { b'0' } else { old + 1 };
    patch(&path, line.offset + digit_at as u64, &[new]);
    let text = lines(&path)
        .into_iter()
        .find(|l| l.offset == line.offset)
        .unwrap()
        .text;
    let data = &text[text.find("\"data\":").unwrap() + 7..text.len() - 1];
    let stored: serde_json::Value = serde_json::from_str(&line.text).unwrap();
    let stored = u32::from_str_radix(stored["crc"].as_str().unwrap(), 16).unwrap();
    let computed = crc32c(data.as_bytes());
    assert_ne!(stored, computed);
    let kind = CorruptionKind::ChecksumMismatch { stored, computed };
    check_damage(
        dir.path(),
        Corruption {
            file: path,
            offset: line.offset,
            seq,
            kind,
        },
        seq - 1,
    );
}

/// Rewrites segment `path` with `line` replaced by `with` (any length).
fn replace_line(path: &Path, line: &Line, with: &str) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes.splice(line.offset as usize..line.end as usize - 1, with.bytes());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_wrong_seq_is_a_sequence_gap() {
    let dir = tmp();
    let segs = build(dir.path());
    let (path, line, seq) = middle_line(&segs, 4);
    let changed = line.text.replacen(
        &format!("{{\"seq\":{seq},"),
        &format!("{{\"seq\":{},", seq + 1000),
        1,
    );
    replace_line(&path, &line, &changed);
    let kind = CorruptionKind::SequenceGap {
        expected: seq,
        found: seq + 1000,
    };
    check_damage(
        dir.path(),
        Corruption {
            file: path,
            offset: line.offset,
            seq,
            kind,
        },
        seq - 1,
    );
}

#[test]
fn a_repeated_line_is_a_sequence_gap() {
    let dir = tmp();
    let segs = build(dir.path());
    let (path, line, seq) = middle_line(&segs, 2);
    replace_line(&path, &line, &format!("{}\n{}", line.text, line.text));
    let kind = CorruptionKind::SequenceGap {
        expected: seq + 1,
        found: seq,
    };
    check_damage(
        dir.path(),
        Corruption {
            file: path,
            offset: line.end,
            seq: seq + 1,
            kind,
        },
        seq,
    );
}

#[test]
fn garbage_in_a_middle_line() {
    let dir = tmp();
    let segs = build(dir.path());
    let (path, line, seq) = middle_line(&segs, 5);
    patch(&path, line.offset, "x".repeat(line.text.len()).as_bytes());
    let kind = CorruptionKind::Garbage(String::new());
    check_damage(
        dir.path(),
        Corruption {
            file: path,
            offset: line.offset,
            seq,
            kind,
        },
        seq - 1,
    );
}

#[test]
fn garbage_in_the_last_segment_before_its_last_line_is_not_a_torn_tail() {
    let dir = tmp();
    let segs = build(dir.path());
    let (path, line, seq) = middle_line(&segs, segs.len() - 1);
    assert!(seq < 300);
    patch(&path, line.offset, b"\0\0\0\0");
    let kind = CorruptionKind::Garbage(String::new());
    check_damage(
        dir.path(),
        Corruption {
            file: path,
            offset: line.offset,
            seq,
            kind,
        },
        seq - 1,
    );
}

#[test]
fn a_cut_line_at_the_end_of_a_middle_segment() {
    let dir = tmp();
    let segs = build(dir.path());
    let path = segs[3].1.clone();
    // The last record line (its seal follows it).
    let last = lines(&path).into_iter().rev().nth(1).unwrap();
    let seq = seq_of(&last);
    set_len(&path, last.end - 5);
    // The journal then also misses the records of the cut line, but the first
    // damage is the incomplete line itself.
    let kind = CorruptionKind::Garbage(String::new());
    check_damage(
        dir.path(),
        Corruption {
            file: path,
            offset: last.offset,
            seq,
            kind,
        },
        seq - 1,
    );
}

#[test]
fn a_deleted_middle_segment_is_a_missing_segment() {
    let dir = tmp();
    let segs = build(dir.path());
    let (gone, gone_path) = segs[3].clone();
    let (found, found_path) = segs[4].clone();
    std::fs::remove_file(gone_path).unwrap();
    let kind = CorruptionKind::MissingSegment {
        expected: gone,
        found,
    };
    // The sequence named is the first one missing.
    check_damage(
        dir.path(),
        Corruption {
            file: found_path,
            offset: 0,
            seq: gone,
            kind,
        },
        gone - 1,
    );
}

#[test]
fn a_damaged_header() {
    for (index, damage) in [(3, "journaX"), (6, "first_seq+1"), (0, "journaX")] {
        let dir = tmp();
        let segs = build(dir.path());
        let (first, path) = segs[index].clone();
        let good = header(first);
        let bad = if damage == "journaX" {
            good.replace("\"journal\"", "\"journaX\"")
        } else {
            header(first + 1)
        };
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.splice(..good.len(), bad.bytes());
        std::fs::write(&path, bytes).unwrap();
        let kind = CorruptionKind::BadHeader(String::new());
        check_damage(
            dir.path(),
            Corruption {
                file: path,
                offset: 0,
                seq: first,
                kind,
            },
            first - 1,
        );
    }
}

#[test]
fn an_unterminated_batch_at_the_end_of_a_middle_segment() {
    let dir = tmp();
    let journal = Journal::open_with(dir.path(), small(1024)).unwrap();
    for i in (1..=120).step_by(3) {
        journal
            .append_batch(&[rec(i), rec(i + 1), rec(i + 2)])
            .unwrap();
    }
    drop(journal);
    let segs = segments(dir.path());
    assert!(segs.len() >= 4);
    let path = segs[2].1.clone();
    let all = lines(&path);
    // Before the seal, the last batch's lines.
    let closing = &all[all.len() - 2];
    let opening = &all[all.len() - 4];
    set_len(&path, closing.offset);
    let seq = seq_of(opening);
    let kind = CorruptionKind::UnterminatedBatch;
    check_damage(
        dir.path(),
        Corruption {
            file: path,
            offset: opening.offset,
            seq,
            kind,
        },
        seq - 1,
    );
}

/// A crc in a form FORMAT.md does not allow (upper-case hex, a sign) is
/// damage, not an accepted record: one bit flip (0x20) turns `e` into `E`,
/// and `u32::from_str_radix` alone reads both, and `+8dcda23`, as the same
/// number. Found by fuzzing the readers (issue 11).
#[test]
fn a_crc_in_a_non_canonical_form_is_damage() {
    for (index, rewrite) in [
        (
            2usize,
            (|crc: &str| crc.to_ascii_uppercase()) as fn(&str) -> String,
        ),
        (3, |crc: &str| format!("+{}", &crc[1..])),
    ] {
        let dir = tmp();
        let segs = build(dir.path());
        // The first middle line whose crc has a hex letter (for `E`) or a
        // leading zero (for the sign) to rewrite.
        let path = segs[index].1.clone();
        let all = lines(&path);
        let (line, crc) = all[1..all.len() - 1]
            .iter()
            .find_map(|l| {
                let v: serde_json::Value = serde_json::from_str(&l.text).ok()?;
                let crc = v["crc"].as_str()?.to_owned();
                (rewrite(&crc) != crc && (index == 2 || crc.starts_with('0')))
                    .then(|| (l.clone(), crc))
            })
            .unwrap_or_else(|| {
                // No leading zero in this segment: a sign over a letter.
                let l = all[all.len() / 2].clone();
                let v: serde_json::Value = serde_json::from_str(&l.text).unwrap();
                (l, v["crc"].as_str().unwrap().to_owned())
            });
        let seq = seq_of(&line);
        let changed = line.text.replacen(&crc, &rewrite(&crc), 1);
        assert_eq!(changed.len(), line.text.len());
        replace_line(&path, &line, &changed);
        check_damage(
            dir.path(),
            Corruption {
                file: path,
                offset: line.offset,
                seq,
                kind: CorruptionKind::Garbage(String::new()),
            },
            seq - 1,
        );
    }
}
