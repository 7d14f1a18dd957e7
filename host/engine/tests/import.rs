//! Importing journals written by the original ministore crate: rotated
//! segments (`.001` and `.000001` style) oldest first, then the active file;
//! anything wrong imports nothing.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use mini_engine::import::{ImportError, import_ministore};
use mini_engine::{Journal, JournalOptions};

/// Writes an upstream file: the magic header, then one record per line.
fn upstream(path: &Path, version: &str, records: &[String]) {
    let mut text = format!("// MINISTORE JOURNAL v{version}\n");
    for r in records {
        text.push_str(r);
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// Varied JSON values, as upstream's `serde_json::to_string` writes them.
fn upstream_record(i: usize) -> String {
    let value = match i % 5 {
        0 => serde_json::json!({"Set": {"value": i}}),
        1 => serde_json::json!({"Inc": {"by": i % 7}}),
        2 => serde_json::json!(format!("text with spaces, \"quotes\" and é {i}")),
        3 => serde_json::json!([i, null, true, 1.5]),
        _ => serde_json::json!(i),
    };
    serde_json::to_string(&value).unwrap()
}

/// An upstream journal written by several versions: `.001`, `.002` (early
/// naming), `.000003`, `.000004` (later naming), and the active file. The
/// numbers, not the names, give the order. Returns (base, records in order).
fn mixed_journal(dir: &Path) -> (PathBuf, Vec<String>) {
    let base = dir.join("journal.jsonl");
    let all: Vec<String> = (0..2600).map(upstream_record).collect();
    let parts = [
        ("journal.jsonl.001", "0.1.2", 0..400),
        ("journal.jsonl.002", "0.1.2", 400..900),
        ("journal.jsonl.000003", "0.1.4", 900..1500),
        ("journal.jsonl.000004", "0.1.4", 1500..2590),
        ("journal.jsonl", "0.1.4", 2590..2600),
    ];
    for (name, version, range) in parts {
        upstream(&dir.join(name), version, &all[range]);
    }
    // Files that are not part of it, and would break the import if read.
    for decoy in [
        "journal.jsonl.bak",
        "other.jsonl.001",
        "journal.jsonl.001.tmp",
        "xjournal.jsonl.005",
    ] {
        std::fs::write(dir.join(decoy), "not a journal\n").unwrap();
    }
    (base, all)
}

fn data_of(journal: &Journal) -> Vec<String> {
    let all = read_all(journal);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.seq, journal.first_seq() + i as u64);
    }
    all.into_iter().map(|e| e.data).collect()
}

#[test]
fn a_mixed_rotated_journal_imports_in_order() {
    let src = tmp();
    let (base, records) = mixed_journal(src.path());
    let before = snapshot(src.path());
    let dst = tmp();
    let journal = Journal::open(dst.path().join("imported")).unwrap();
    assert_eq!(
        import_ministore(&base, &journal).unwrap(),
        records.len() as u64
    );
    assert_eq!(data_of(&journal), records);
    assert_eq!(snapshot(src.path()), before, "the upstream files changed");
    drop(journal);
    let journal = Journal::open(dst.path().join("imported")).unwrap();
    assert_eq!(data_of(&journal), records);
}

#[test]
fn an_import_appends_after_what_is_there() {
    let src = tmp();
    let (base, records) = mixed_journal(src.path());
    let dst = tmp();
    let journal = Journal::open(dst.path()).unwrap();
    journal.append(r#""before""#).unwrap();
    import_ministore(&base, &journal).unwrap();
    let mut want = vec![r#""before""#.to_string()];
    want.extend(records);
    assert_eq!(data_of(&journal), want);
}

#[test]
fn only_an_active_file_or_an_empty_active_file() {
    let src = tmp();
    let base = src.path().join("counter.log");
    let records: Vec<String> = (0..5).map(upstream_record).collect();
    upstream(&base, "0.1.0", &records);
    let dst = tmp();
    let journal = Journal::open(dst.path()).unwrap();
    assert_eq!(import_ministore(&base, &journal).unwrap(), 5);
    assert_eq!(data_of(&journal), records);

    // Upstream rotates by renaming the active file and then creating a new
    // one: a crash in between leaves it empty, and upstream replays such a
    // journal (an empty active file holds no records).
    let src = tmp();
    let base = src.path().join("journal.jsonl");
    upstream(&src.path().join("journal.jsonl.000001"), "0.1.4", &records);
    std::fs::write(&base, "").unwrap();
    let dst = tmp();
    let journal = Journal::open(dst.path()).unwrap();
    assert_eq!(import_ministore(&base, &journal).unwrap(), 5);
    assert_eq!(data_of(&journal), records);
}

/// Runs an import that must fail and checks that nothing was imported.
fn import_fails(base: &Path) -> ImportError {
    let dst = tmp();
    let journal = Journal::open(dst.path()).unwrap();
    journal.append(r#""already here""#).unwrap();
    let before = snapshot(dst.path());
    let err = import_ministore(base, &journal).expect_err("the import succeeded");
    assert_eq!(snapshot(dst.path()), before, "a failed import wrote");
    assert_eq!(journal.next_seq(), 2);
    assert_eq!(data_of(&journal), [r#""already here""#]);
    err
}

#[test]
fn a_file_without_the_header_is_not_ministore() {
    for (name, content) in [
        ("journal.jsonl", "{\"Set\":{\"value\":1}}\n"),
        (
            "journal.jsonl.000003",
            "{\"mini\":\"journal\",\"version\":1,\"first_seq\":1}\n",
        ),
        ("journal.jsonl.002", ""),
        ("journal.jsonl", "// SOMETHING ELSE v0.1.4\n1\n"),
    ] {
        let src = tmp();
        let (base, _) = mixed_journal(src.path());
        std::fs::write(src.path().join(name), content).unwrap();
        match import_fails(&base) {
            ImportError::NotMinistore(path) => assert_eq!(path, src.path().join(name)),
            other => panic!("{name} {content:?}: {other:?}"),
        }
    }
}

#[test]
fn a_bad_line_imports_nothing() {
    for bad in ["{\"Set\":", "{\"a\":1} {\"b\":2}", "nope", "{\"torn"] {
        let src = tmp();
        let (base, records) = mixed_journal(src.path());
        // Line 7 of the third file (the header is line 1).
        let path = src.path().join("journal.jsonl.000003");
        let mut lines: Vec<String> = records[900..1500].to_vec();
        lines[5] = bad.to_string();
        upstream(&path, "0.1.4", &lines);
        match import_fails(&base) {
            ImportError::InvalidLine {
                path: p,
                line,
                reason,
            } => {
                assert_eq!((p, line), (path.clone(), 7), "{bad:?}");
                let shown = ImportError::InvalidLine {
                    path: path.clone(),
                    line,
                    reason,
                }
                .to_string();
                assert!(shown.contains(&format!("{}:7", path.display())), "{shown}");
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

#[test]
fn a_record_over_the_size_limit_imports_nothing() {
    let src = tmp();
    let (base, mut records) = mixed_journal(src.path());
    // The last record of the active file is too big for the target journal.
    records[2599] = format!("\"{}\"", "z".repeat(2000));
    upstream(&base, "0.1.4", &records[2590..]);
    let dst = tmp();
    let options = JournalOptions {
        max_record_size: 1000,
        ..JournalOptions::default()
    };
    let journal = Journal::open_with(dst.path(), options).unwrap();
    let err = import_ministore(&base, &journal).expect_err("an oversize record was imported");
    assert!(
        matches!(&err, ImportError::InvalidLine { path, line: 11, .. } if *path == base),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("2002"),
        "the error names the size: {err}"
    );
    assert_eq!(
        journal.next_seq(),
        1,
        "records were imported before the failure"
    );
}

#[test]
fn no_journal_at_the_path() {
    let src = tmp();
    let base = src.path().join("journal.jsonl");
    std::fs::write(
        src.path().join("other.jsonl.001"),
        "// MINISTORE JOURNAL v0.1.4\n1\n",
    )
    .unwrap();
    match import_fails(&base) {
        ImportError::NotFound(p) => assert_eq!(p, base),
        other => panic!("{other:?}"),
    }
}
