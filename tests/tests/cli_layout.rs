//! The operator's tools cannot be fooled by names (DESIGN.md, "The contract", 13):
//! a guest chooses the names of its namespaces, journals, states, snapshot
//! stores and queues, so `mini verify`, `cat`, `repair` and `modules` decide
//! what a directory is from its position under the data root (`.mini`),
//! never from the names inside it.
//!
//! Each attack below is a journal named like a file mini writes itself
//! (`LOCK`, `journal`, `snapshots`, `repair-x`, a segment, a snapshot), next
//! to a healthy journal of the same namespace with a damaged record: verify
//! must still check both, report the damage and exit with 1.

use std::path::{Path, PathBuf};

use mini_engine::layout::{DataRoot, ROOT_MARKER, UnitKind, record_module};
use mini_engine::queue::{PushOptions, Queue};
use mini_engine::state::{JOURNAL_DIR, SNAPSHOT_DIR};
use mini_engine::{Journal, SnapshotStore};
use mini_tests::{mini, os_args, read_journal};
use serde_json::{Value, json};
use tempfile::TempDir;

const SEGMENT: &str = "00000000000000000001.jsonl";

/// A fresh data root (with its marker).
fn data_root() -> (TempDir, DataRoot) {
    let data = tempfile::tempdir().expect("tempdir");
    let root = DataRoot::create(data.path()).expect("a data root");
    (data, root)
}

/// The journal `name` of namespace `ns`, written by the engine with records
/// `{"n":1}` … `{"n":records}`; returns its directory.
fn journal(root: &DataRoot, ns: &str, name: &str, records: u64) -> PathBuf {
    let dir = root
        .unit_dir(ns, UnitKind::Journal, name)
        .expect("valid names");
    let journal = Journal::open(&dir).expect("open");
    for n in 1..=records {
        journal.append(&format!(r#"{{"n":{n}}}"#)).expect("append");
    }
    dir
}

/// Changes record 3's data on disk (still valid JSON, so only the crc
/// tells).
fn damage_record_three(dir: &Path) {
    let path = dir.join(SEGMENT);
    let text = std::fs::read_to_string(&path).expect("segment");
    let damaged = text.replacen(r#"{"n":3}"#, r#"{"n":8}"#, 1);
    assert_ne!(damaged, text, "record 3 is in {}", path.display());
    std::fs::write(&path, damaged).expect("write");
}

fn ok_line(dir: &Path, text: &str) -> String {
    format!("ok       {}: {text}", dir.display())
}

fn damaged_line(dir: &Path) -> String {
    format!("DAMAGED  {}: ", dir.display())
}

/// A namespace `ns` holding the journal `name` (3 healthy records) and the
/// journal `events` (5 records, record 3 damaged): `mini verify DATA` must
/// check both as journals, name the damage and exit with 1.
fn attack(ns: &str, name: &str) {
    let (data, root) = data_root();
    let odd = journal(&root, ns, name, 3);
    let events = journal(&root, ns, "events", 5);
    damage_record_three(&events);

    let (code, out, err) = mini(os_args!["verify", data.path()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains(&ok_line(&odd, "3 records (seq 1..=3), 1 segment(s)")),
        "{name} is checked as a journal:\n{out}"
    );
    let damage = out
        .lines()
        .find(|l| l.starts_with(&damaged_line(&events)))
        .unwrap_or_else(|| panic!("the damage in events is reported:\n{out}"));
    assert!(
        damage.contains("seq 3") && damage.contains(SEGMENT),
        "{damage}"
    );
    assert!(
        out.contains("2 journals checked, 1 damaged, 0 unknown entries"),
        "{out}"
    );
    assert!(err.contains("mini repair"), "{err}");
}

#[test]
fn a_journal_named_lock_cannot_hide_damage() {
    attack("ns", "LOCK");
}

#[test]
fn a_namespace_named_lock_is_a_namespace() {
    attack("LOCK", "LOCK");
    attack("LOCK", "other");
}

#[test]
fn journals_named_journal_and_snapshots_are_journals() {
    let (data, root) = data_root();
    let journal_named_journal = journal(&root, "ns", JOURNAL_DIR, 3);
    let journal_named_snapshots = journal(&root, "ns", SNAPSHOT_DIR, 3);
    let events = journal(&root, "ns", "events", 5);
    damage_record_three(&events);

    let (code, out, err) = mini(os_args!["verify", data.path()]);
    assert_eq!(code, 1, "{out}{err}");
    for dir in [&journal_named_journal, &journal_named_snapshots] {
        assert!(
            out.contains(&ok_line(dir, "3 records (seq 1..=3)")),
            "{out}"
        );
    }
    assert!(out.contains(&damaged_line(&events)), "{out}");
    assert!(
        out.contains("3 journals checked, 1 damaged, 0 unknown entries"),
        "{out}"
    );
    assert!(!out.contains("state"), "no state here: {out}");
    // Each alone attack shape too.
    attack("ns", JOURNAL_DIR);
    attack("ns", SNAPSHOT_DIR);
}

#[test]
fn a_journal_named_repair_x_is_checked() {
    attack("ns", "repair-x");
    // Its own damage is found as well.
    let (data, root) = data_root();
    let odd = journal(&root, "ns", "repair-x", 5);
    damage_record_three(&odd);
    let (code, out, err) = mini(os_args!["verify", data.path()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains(&damaged_line(&odd)), "{out}");
}

#[test]
fn a_journal_named_like_a_segment_is_a_journal() {
    attack("ns", SEGMENT);
}

#[test]
fn a_journal_named_like_a_snapshot_is_a_journal() {
    attack("ns", &mini_engine::snapshot::snapshot_file_name(1));
}

#[test]
fn unknown_entries_are_reported_and_do_not_fail_verify() {
    let (data, root) = data_root();
    let events = journal(&root, "ns", "events", 2);
    let in_kind = data.path().join("ns/journal/notes.txt");
    let in_journal = events.join("stray");
    std::fs::write(&in_kind, "x").expect("write");
    std::fs::write(&in_journal, "x").expect("write");

    let (code, out, err) = mini(os_args!["verify", data.path()]);
    assert_eq!(code, 0, "unknown entries alone are not damage: {out}{err}");
    for path in [&in_kind, &in_journal] {
        let line = format!("unknown  {}: ", path.display());
        assert!(
            out.lines().any(|l| l.starts_with(&line)),
            "{line} in:\n{out}"
        );
    }
    assert!(out.contains(&ok_line(&events, "2 records")), "{out}");
    assert!(
        out.contains("1 journal checked, 0 damaged, 2 unknown entries"),
        "{out}"
    );
    // Verifying just the journal still reports the stray file inside it.
    let (code, out, _) = mini(os_args!["verify", events]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("unknown  {}: ", in_journal.display())));
    assert!(!out.contains("notes.txt"), "{out}");
}

#[test]
fn cat_and_repair_work_on_a_journal_named_lock() {
    let (data, root) = data_root();
    let dir = journal(&root, "ns", "LOCK", 5);
    let all: Vec<Value> = (1..=5)
        .map(|n| json!({"seq": n, "data": {"n": n}}))
        .collect();
    let lines = |out: &str| -> Vec<Value> {
        out.lines()
            .map(|l| serde_json::from_str(l).expect("JSON"))
            .collect()
    };
    let (code, out, err) = mini(os_args!["cat", dir]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(lines(&out), all);
    let (code, out, err) = mini(os_args![
        "cat",
        "--data",
        data.path(),
        "--namespace",
        "ns",
        "--journal",
        "LOCK"
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(lines(&out), all);
    // A journal named like a segment, too.
    let seg = journal(&root, "ns", SEGMENT, 1);
    let (code, out, err) = mini(os_args!["cat", seg]);
    assert_eq!(
        (code, out.as_str()),
        (0, "{\"seq\":1,\"data\":{\"n\":1}}\n"),
        "{err}"
    );

    damage_record_three(&dir);
    let (code, out, err) = mini(os_args!["repair", dir, "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 records left"), "{out}");
    let data_left: Vec<String> = read_journal(&dir).into_iter().map(|e| e.data).collect();
    assert_eq!(data_left, [r#"{"n":1}"#, r#"{"n":2}"#]);
    // The repair-* directory it keeps is known, and never checked as a
    // journal.
    let (code, out, err) = mini(os_args!["verify", data.path()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&ok_line(&dir, "2 records (seq 1..=2)")),
        "{out}"
    );
    assert!(
        out.contains("2 journals checked, 0 damaged, 0 unknown entries"),
        "{out}"
    );
    assert!(!out.contains("repair-"), "{out}");
}

#[test]
fn verify_checks_states_and_queues_whatever_their_names() {
    let (data, root) = data_root();
    // A state named `journal` and a queue named `snapshots`.
    let state = root
        .unit_dir("ns", UnitKind::State, JOURNAL_DIR)
        .expect("valid");
    let log = Journal::open(state.join(JOURNAL_DIR)).expect("open");
    for n in 1..=3 {
        log.append(&format!(r#"{{"add":{n}}}"#)).expect("append");
    }
    SnapshotStore::open(state.join(SNAPSHOT_DIR))
        .expect("open")
        .create(2, r#"{"total":3}"#)
        .expect("snapshot");
    drop(log);
    let queue_dir = root
        .unit_dir("ns", UnitKind::Queue, SNAPSHOT_DIR)
        .expect("valid");
    let queue = Queue::open(&queue_dir).expect("open");
    for n in 1..=3 {
        queue
            .push(&n.to_string(), &PushOptions::default())
            .expect("push");
    }
    drop(queue);

    let (code, out, err) = mini(os_args!["verify", data.path()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&ok_line(
            &state,
            "recovers from snapshot 2 + 1 journal record(s) (seq 3..=3)"
        )),
        "{out}"
    );
    let queue_line = out
        .lines()
        .find(|l| l.starts_with(&ok_line(&queue_dir, "")))
        .unwrap_or_else(|| panic!("the queue is checked:\n{out}"));
    assert!(queue_line.contains("3 ready"), "{queue_line}");
    assert!(
        out.contains("1 state, 1 queue checked, 0 damaged, 0 unknown entries"),
        "{out}"
    );
    // A part of a unit checks that part.
    let (code, out, err) = mini(os_args!["verify", queue_dir.join(JOURNAL_DIR)]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&ok_line(&queue_dir.join(JOURNAL_DIR), "3 records")),
        "{out}"
    );
    let (code, _, err) = mini(os_args!["verify", state.join(JOURNAL_DIR).join(SEGMENT)]);
    assert_ne!(code, 0);
    assert!(err.contains("is a journal segment"), "{err}");

    // A queue record that does not fold: the queue does not recover.
    let other = root.unit_dir("ns", UnitKind::Queue, "bad").expect("valid");
    let fake = Journal::open(other.join(JOURNAL_DIR)).expect("open");
    fake.append(r#"{"Inc":1}"#).expect("append");
    std::fs::create_dir(other.join(SNAPSHOT_DIR)).expect("snapshots/");
    drop(fake);
    let (code, out, err) = mini(os_args!["verify", data.path()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains(&damaged_line(&other)), "{out}");
}

#[test]
fn outside_any_root_a_path_must_be_a_unit() {
    let data = tempfile::tempdir().expect("tempdir");
    // A data directory written before the marker existed.
    let dir = data.path().join("ns/journal/events");
    let events = Journal::open(&dir).expect("open");
    events.append("{}").expect("append");
    drop(events);

    let (code, out, err) = mini(os_args!["verify", data.path()]);
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("no .mini marker") && err.contains("--root"),
        "{err}"
    );
    let (code, out, err) = mini(os_args!["verify", data.path(), "--root"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&ok_line(&dir, "1 records")), "{out}");
    assert!(
        !data.path().join(ROOT_MARKER).exists(),
        "--root writes no marker"
    );
    // A single unit is fine without a root.
    let (code, out, err) = mini(os_args!["verify", dir]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&ok_line(&dir, "1 records")), "{out}");
    let (code, _, err) = mini(os_args!["cat", data.path()]);
    assert_ne!(code, 0);
    assert!(err.contains("no .mini marker"), "{err}");
}

/// 2023-11-14T22:13:20Z in ms.
const T1: u64 = 1_700_000_000_000;
/// 2024-02-29T12:00:00Z in ms.
const T2: u64 = 1_709_208_000_000;

/// Bytes of every file under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).expect("dir") {
        let entry = entry.expect("entry");
        let kind = entry.file_type().expect("type");
        if kind.is_dir() {
            total += bytes_under(&entry.path());
        } else if kind.is_file() {
            total += entry.metadata().expect("metadata").len();
        }
    }
    total
}

#[test]
fn modules_lists_namespaces_versions_and_units() {
    let (data, root) = data_root();
    let billing = root.namespace_dir("billing").expect("valid");
    record_module(&billing, "billing@1.2.0", T1).expect("record");
    record_module(&billing, "billing@1.3.0", T2).expect("record");
    record_module(&billing, "billing@1.2.0", T2).expect("record");
    journal(&root, "billing", "LOCK", 2);
    journal(&root, "billing", "events", 1);
    let state = root
        .unit_dir("billing", UnitKind::State, "cart")
        .expect("valid");
    Journal::open(state.join(JOURNAL_DIR))
        .expect("open")
        .append("{}")
        .expect("append");
    SnapshotStore::open(state.join(SNAPSHOT_DIR)).expect("open");
    SnapshotStore::open(
        root.unit_dir("billing", UnitKind::Snapshots, "config")
            .expect("valid"),
    )
    .expect("open")
    .create(1, "{}")
    .expect("snapshot");
    drop(
        Queue::open(
            root.unit_dir("billing", UnitKind::Queue, "jobs")
                .expect("valid"),
        )
        .expect("open"),
    );
    let broken = root.namespace_dir("broken").expect("valid");
    journal(&root, "broken", "log", 1);
    std::fs::write(broken.join(".modules.json"), "{not json").expect("write");
    let bytes = bytes_under(&billing);

    let (code, out, err) = mini(os_args!["modules", "--data", data.path()]);
    assert_eq!(code, 0, "{out}{err}");
    for needle in [
        "billing".to_owned(),
        format!("{bytes} bytes"),
        "billing@1.2.0: first opened 2023-11-14T22:13:20Z, last opened 2024-02-29T12:00:00Z (2 opens)"
            .to_owned(),
        "billing@1.3.0: first opened 2024-02-29T12:00:00Z".to_owned(),
        "journals: LOCK, events".to_owned(),
        "states: cart".to_owned(),
        "snapshot stores: config".to_owned(),
        "queues: jobs".to_owned(),
        "broken".to_owned(),
        "journals: log".to_owned(),
    ] {
        assert!(out.contains(&needle), "{needle} in:\n{out}");
    }
    assert!(
        out.contains(".modules.json") && out.contains("damaged"),
        "the damaged record is reported: {out}"
    );

    let (code, out, err) = mini(os_args!["modules", "--data", data.path(), "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 2, "one object per namespace: {out}");
    let first = &lines[0];
    assert_eq!(first["namespace"], "billing");
    assert_eq!(first["bytes"], bytes);
    assert_eq!(first["journals"], json!(["LOCK", "events"]));
    assert_eq!(first["states"], json!(["cart"]));
    assert_eq!(first["snapshot_stores"], json!(["config"]));
    assert_eq!(first["queues"], json!(["jobs"]));
    assert_eq!(
        first["modules"][0],
        json!({
            "module": "billing@1.2.0",
            "first_opened": "2023-11-14T22:13:20Z",
            "last_opened": "2024-02-29T12:00:00Z",
            "first_opened_ms": T1,
            "last_opened_ms": T2,
            "opens": 2,
        })
    );
    assert_eq!(first["modules"][1]["module"], "billing@1.3.0");
    assert!(first["modules_error"].is_null(), "{first}");
    let second = &lines[1];
    assert_eq!(second["namespace"], "broken");
    assert_eq!(second["modules"], json!([]));
    assert!(
        second["modules_error"]
            .as_str()
            .is_some_and(|e| e.contains("damaged")),
        "{second}"
    );
}

#[test]
fn verify_reports_a_damaged_module_record() {
    let (data, root) = data_root();
    journal(&root, "billing", "events", 2);
    record_module(&data.path().join("billing"), "billing@1.0.0", 1).expect("record");
    let (code, out, err) = mini(os_args!["verify", data.path()]);
    assert_eq!(code, 0, "{out}{err}");
    std::fs::write(data.path().join("billing/.modules.json"), "{not json").expect("write");
    let (code, out, err) = mini(os_args!["verify", data.path()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("DAMAGED") && out.contains(".modules.json"),
        "{out}"
    );
    assert!(out.contains("1 damaged"), "{out}");
}
