//! The operator's tools on real journals, through the `mini` binary:
//! `verify` names the damage, `repair` cuts only with `--yes`, `cat` streams
//! records and stops loudly at damage, `import-ministore` reads upstream logs.

use std::path::{Path, PathBuf};

use mini_engine::Journal;
use mini_engine::layout::DataRoot;
use mini_tests::{mini, os_args, read_journal};
use serde_json::{Value, json};

const SEGMENT: &str = "00000000000000000001.jsonl";

/// A journal with records `{"n":1}` … `{"n":5}` in the data root `root`
/// (made one); returns its directory.
fn journal_with_five(root: &Path) -> PathBuf {
    DataRoot::create(root).expect("a data root");
    let dir = root.join("ns/journal/five");
    let journal = Journal::open(&dir).expect("open");
    for n in 1..=5 {
        journal.append(&format!(r#"{{"n":{n}}}"#)).expect("append");
    }
    dir
}

/// Changes record 3's data on disk (still valid JSON, so only the crc
/// tells); returns the byte offset of its line.
fn damage_record_three(dir: &Path) -> u64 {
    let path = dir.join(SEGMENT);
    let text = std::fs::read_to_string(&path).expect("segment");
    let offset = text.find(r#"{"seq":3,"#).expect("line 3");
    let damaged = text.replacen(r#"{"n":3}"#, r#"{"n":8}"#, 1);
    assert_ne!(damaged, text);
    std::fs::write(&path, damaged).expect("write");
    offset as u64
}

#[test]
fn verify_names_file_offset_and_seq_of_damage() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = journal_with_five(root.path());
    let (code, out, err) = mini(os_args!["verify", dir]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("ok") && out.contains("5 records (seq 1..=5)"),
        "{out}"
    );

    let offset = damage_record_three(&dir);
    let (code, out, err) = mini(os_args!["verify", root.path()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("DAMAGED"), "{out}");
    for needle in [
        SEGMENT.to_owned(),
        format!("byte {offset}"),
        "seq 3".to_owned(),
    ] {
        assert!(
            out.contains(&needle) && err.contains(&needle),
            "{needle} in:\n{out}\n{err}"
        );
    }
    assert!(err.contains("mini repair"), "{err}");
}

#[test]
fn repair_cuts_only_with_yes() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = journal_with_five(root.path());
    damage_record_three(&dir);
    let before = std::fs::read(dir.join(SEGMENT)).expect("segment");

    let (code, out, err) = mini(os_args!["repair", dir]);
    assert_eq!(code, 0, "a dry run: {out}{err}");
    assert!(out.contains("would cut") && out.contains("seq 3"), "{out}");
    assert_eq!(
        std::fs::read(dir.join(SEGMENT)).expect("segment"),
        before,
        "nothing changed"
    );

    let (code, out, err) = mini(os_args!["repair", dir, "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 records left"), "{out}");
    let data: Vec<String> = read_journal(&dir).into_iter().map(|e| e.data).collect();
    assert_eq!(data, [r#"{"n":1}"#, r#"{"n":2}"#]);
    let saved = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().starts_with("repair-"));
    assert!(saved, "the cut-off part is kept");
    let (code, out, err) = mini(os_args!["verify", dir]);
    assert_eq!(code, 0, "{out}{err}");
    // The journal takes appends again, from seq 3.
    assert_eq!(
        Journal::open(&dir)
            .expect("open")
            .append("{}")
            .expect("append"),
        3
    );
}

#[test]
fn cat_streams_records_and_fails_loudly_at_damage() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = journal_with_five(root.path());
    let (code, out, err) = mini(os_args!["cat", dir, "--from", "4"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(
        lines,
        [
            json!({"seq":4,"data":{"n":4}}),
            json!({"seq":5,"data":{"n":5}})
        ]
    );

    damage_record_three(&dir);
    let (code, out, err) = mini(os_args!["cat", dir]);
    assert_ne!(code, 0, "{out}");
    assert_eq!(
        out.lines().count(),
        2,
        "the records before the damage: {out}"
    );
    assert!(err.contains("seq 3") && err.contains(SEGMENT), "{err}");

    let missing = root.path().join("no-such-journal");
    let (code, _, err) = mini(os_args!["cat", missing]);
    assert_ne!(code, 0);
    assert!(err.contains("not a journal directory"), "{err}");
}

#[test]
fn import_ministore_appends_upstream_records() {
    let root = tempfile::tempdir().expect("tempdir");
    let base = root.path().join("app.journal");
    std::fs::write(
        root.path().join("app.journal.001"),
        "// MINISTORE JOURNAL v0.1.4\n{\"Set\":{\"value\":1}}\n",
    )
    .expect("write");
    std::fs::write(
        &base,
        "// MINISTORE JOURNAL v0.1.4\n{\"Inc\":{\"by\":2}}\n{\"Inc\":{\"by\":3}}\n",
    )
    .expect("write");
    let dir = root.path().join("data/app/journal/events");
    let (code, out, err) = mini(os_args!["import-ministore", base, dir]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("imported 3 records"), "{out}");
    let data: Vec<String> = read_journal(&dir).into_iter().map(|e| e.data).collect();
    assert_eq!(
        data,
        [
            r#"{"Set":{"value":1}}"#,
            r#"{"Inc":{"by":2}}"#,
            r#"{"Inc":{"by":3}}"#
        ]
    );

    let (code, _, err) = mini(os_args![
        "import-ministore",
        root.path().join("missing"),
        dir
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("missing"), "{err}");
}
