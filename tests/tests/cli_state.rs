//! The operator's tools on states and snapshots, through the `mini` binary:
//! `mini state` prints the newest valid snapshot and the journal after it
//! (falling back past a damaged snapshot, failing loudly when the state
//! cannot be recovered), `mini cat` prints a state's journal and snapshot
//! files, `mini verify` checks snapshots and states.
//!
//! The fixtures are written by the engine the way `StateManager` writes a
//! state directory: mutations in `journal/`, snapshots in `snapshots/`, and
//! a checkpoint that makes the snapshot durable, then compacts the journal
//! up to the oldest of the two snapshots kept. (The state and mutation types
//! are plain JSON here: this crate has no serde derive for a typed
//! `StateManager<S, M>`.)

use std::path::{Path, PathBuf};

use mini_engine::layout::DataRoot;
use mini_engine::state::{JOURNAL_DIR, SNAPSHOT_DIR};
use mini_engine::{Journal, JournalOptions, SnapshotStore};
use mini_tests::{mini, os_args};
use serde_json::{Value, json};

const NS: &str = "app";
const NAME: &str = "cart";
/// Room for the header and two records: segments hold 1-2, 3-4, 5-6, …
const SEGMENT_SIZE: u64 = 150;

/// A state being written: `{"total":N}` folded from `{"add":n}` mutations,
/// with two journal records per segment (so that compaction deletes
/// segments, and a tail can start in the middle of one).
struct Counter {
    dir: PathBuf,
    journal: Journal,
    snapshots: SnapshotStore,
    total: i64,
}

impl Counter {
    /// Opens (creates) the state `NS`/`NAME` under the data directory `data`.
    fn open(data: &Path) -> Counter {
        let dir = data.join(NS).join("state").join(NAME);
        let journal = Journal::open_with(
            dir.join(JOURNAL_DIR),
            JournalOptions {
                segment_size: SEGMENT_SIZE,
                ..JournalOptions::default()
            },
        )
        .expect("open the journal");
        let snapshots = SnapshotStore::open(dir.join(SNAPSHOT_DIR)).expect("open the snapshots");
        Counter {
            dir,
            journal,
            snapshots,
            total: 0,
        }
    }

    /// Logs `{"add":n}` durably, then applies it.
    fn add(&mut self, n: i64) -> u64 {
        let seq = self
            .journal
            .append(&format!(r#"{{"add":{n}}}"#))
            .expect("append");
        self.total += n;
        seq
    }

    /// Snapshots the state at the last seq, then compacts the journal up to
    /// the oldest snapshot kept (once two are kept), as `StateManager`
    /// does.
    fn checkpoint(&self) {
        let seq = self.journal.last_seq();
        let created = self
            .snapshots
            .create(seq, &format!(r#"{{"total":{}}}"#, self.total))
            .expect("snapshot");
        if created.kept.len() >= 2
            && let Some(&oldest) = created.kept.last()
        {
            self.journal.truncate_before(oldest + 1).expect("compact");
        }
    }
}

/// A state with records 1..=9 (`{"add":n}`), snapshots at 3 (`{"total":6}`)
/// and 6 (`{"total":21}`), the journal compacted to 3..=9 (segments 3-4,
/// 5-6, 7-8, 9); returns the
/// writer (still open: its locks are held).
fn nine_records(data: &Path) -> Counter {
    let mut counter = Counter::open(data);
    for n in 1..=9 {
        counter.add(n);
        if n % 3 == 0 && n < 9 {
            counter.checkpoint();
        }
    }
    assert_eq!(
        segments(&counter.dir),
        [3, 5, 7, 9],
        "the fixture's journal is compacted"
    );
    counter
}

/// The first seqs of the state's journal segments (from their names).
fn segments(state: &Path) -> Vec<u64> {
    let mut firsts: Vec<u64> = std::fs::read_dir(state.join(JOURNAL_DIR))
        .expect("journal dir")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".jsonl")?.parse().ok()
        })
        .collect();
    firsts.sort_unstable();
    firsts
}

/// The snapshot file at `seq` of the state in `state`.
fn snapshot_file(state: &Path, seq: u64) -> PathBuf {
    state
        .join(SNAPSHOT_DIR)
        .join(mini_engine::snapshot::snapshot_file_name(seq))
}

/// Flips one bit of the first digit of the state in a snapshot file (still
/// valid JSON: only the crc tells).
fn flip_state_byte(file: &Path) {
    let mut bytes = std::fs::read(file).expect("snapshot file");
    let text = String::from_utf8(bytes.clone()).expect("text");
    let at = text.find(r#""total":"#).expect("the state") + r#""total":"#.len();
    bytes[at] ^= 0x01;
    std::fs::write(file, bytes).expect("write");
}

/// Parses every line of `out` as JSON.
fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

/// `{"seq":n,"data":{"add":n}}` for each n in `seqs`.
fn records(seqs: std::ops::RangeInclusive<u64>) -> Vec<Value> {
    seqs.map(|n| json!({"seq": n, "data": {"add": n}}))
        .collect()
}

#[test]
fn state_prints_the_newest_snapshot_and_the_records_after_it() {
    let data = tempfile::tempdir().expect("tempdir");
    // The writer stays open: `mini state` takes no lock.
    let counter = nine_records(data.path());
    let (code, out, err) = mini(os_args!["state", NS, NAME, "--data", data.path()]);
    assert_eq!(code, 0, "{out}{err}");
    // The snapshot's state is put in verbatim, and every line is exact.
    let expected = [
        r#"{"snapshot":{"seq":6,"state":{"total":21}},"warnings":[]}"#,
        r#"{"seq":7,"data":{"add":7}}"#,
        r#"{"seq":8,"data":{"add":8}}"#,
        r#"{"seq":9,"data":{"add":9}}"#,
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), expected, "{err}");
    assert!(err.is_empty(), "no warning: {err}");

    // The same through --dir, and only the first line with --snapshot-only.
    let (code, by_dir, err) = mini(os_args!["state", "--dir", counter.dir]);
    assert_eq!((code, by_dir.as_str()), (0, out.as_str()), "{err}");
    let (code, head, err) = mini(os_args!["state", "--dir", counter.dir, "--snapshot-only"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(head.lines().collect::<Vec<_>>(), &expected[..1]);

    // Records appended later show up in the next run.
    let mut counter = counter;
    counter.add(10);
    let (code, out, err) = mini(os_args!["state", "--dir", counter.dir]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json_lines(&out)[1..], records(7..=10)[..]);

    // A state with no snapshot yet: null, then every record.
    let fresh = tempfile::tempdir().expect("tempdir");
    let mut young = Counter::open(fresh.path());
    young.add(1);
    young.add(2);
    let (code, out, err) = mini(os_args!["state", NS, NAME, "--data", fresh.path()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            r#"{"snapshot":null,"warnings":[]}"#,
            r#"{"seq":1,"data":{"add":1}}"#,
            r#"{"seq":2,"data":{"add":2}}"#,
        ]
    );

    let (code, out, err) = mini(os_args!["state", NS, "nothing", "--data", data.path()]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("no state \"nothing\""), "{err}");
}

#[test]
fn state_falls_back_past_a_damaged_snapshot_with_a_warning() {
    let data = tempfile::tempdir().expect("tempdir");
    let counter = nine_records(data.path());
    let newest = snapshot_file(&counter.dir, 6);
    flip_state_byte(&newest);
    let (code, out, err) = mini(os_args!["state", NS, NAME, "--data", data.path()]);
    assert_eq!(code, 0, "{out}{err}");
    let lines = json_lines(&out);
    assert_eq!(
        lines[0]["snapshot"],
        json!({"seq": 3, "state": {"total": 6}}),
        "{out}"
    );
    let warnings = lines[0]["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{out}");
    let warning = warnings[0].as_str().expect("a string");
    for needle in [
        "snapshot 6",
        "checksum mismatch",
        &newest.display().to_string(),
        "falls back to snapshot 3",
    ] {
        assert!(warning.contains(needle), "{needle} in {warning}");
    }
    assert!(
        err.contains("warning") && err.contains(&newest.display().to_string()),
        "{err}"
    );
    // The older snapshot plus the longer tail: the same state.
    assert_eq!(lines[1..], records(4..=9)[..]);

    // `cat --after-snapshot` prints the same tail, and warns too.
    let (code, out, err) = mini(os_args!["cat", counter.dir, "--after-snapshot"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json_lines(&out), records(4..=9));
    assert!(err.contains("checksum mismatch"), "{err}");
}

#[test]
fn state_refuses_when_every_snapshot_is_damaged_and_the_journal_is_compacted() {
    let data = tempfile::tempdir().expect("tempdir");
    let counter = nine_records(data.path());
    flip_state_byte(&snapshot_file(&counter.dir, 6));
    flip_state_byte(&snapshot_file(&counter.dir, 3));
    let (code, out, err) = mini(os_args!["state", NS, NAME, "--data", data.path()]);
    assert_ne!(code, 0, "{out}");
    assert!(out.is_empty(), "no state at all is printed: {out}");
    for needle in [
        "cannot recover",
        "every snapshot is damaged (2)",
        "from seq 1",
        "starts at seq 3",
    ] {
        assert!(err.contains(needle), "{needle} in {err}");
    }
    // `cat --after-snapshot` refuses too.
    let (code, out, err) = mini(os_args!["cat", counter.dir, "--after-snapshot"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.is_empty() && err.contains("cannot recover"), "{err}");
}

#[test]
fn state_refuses_a_snapshot_beyond_the_journal() {
    let data = tempfile::tempdir().expect("tempdir");
    let counter = nine_records(data.path());
    counter
        .snapshots
        .create(20, r#"{"total":1000}"#)
        .expect("snapshot");
    let (code, out, err) = mini(os_args!["state", "--dir", counter.dir]);
    assert_ne!(code, 0, "{out}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("snapshot 20 is beyond the end of the journal (last seq 9)"),
        "{err}"
    );
}

#[test]
fn cat_prints_a_state_journal_and_snapshots() {
    let data = tempfile::tempdir().expect("tempdir");
    let counter = nine_records(data.path());

    // A state directory: its journal, from the first stored record.
    let (code, out, err) = mini(os_args!["cat", counter.dir]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json_lines(&out), records(3..=9));
    let (code, by_name, err) = mini(os_args![
        "cat",
        "--data",
        data.path(),
        "--namespace",
        NS,
        "--state",
        NAME
    ]);
    assert_eq!((code, by_name.as_str()), (0, out.as_str()), "{err}");
    let (code, out, err) = mini(os_args!["cat", counter.dir, "--after-snapshot"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json_lines(&out), records(7..=9));
    let (code, out, err) = mini(os_args!["cat", counter.dir, "--from", "8"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json_lines(&out), records(8..=9));

    // A snapshot file, and a snapshot directory (ascending).
    let (code, out, err) = mini(os_args!["cat", snapshot_file(&counter.dir, 6)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "{\"seq\":6,\"state\":{\"total\":21}}\n");
    let (code, out, err) = mini(os_args!["cat", counter.dir.join(SNAPSHOT_DIR)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "{\"seq\":3,\"state\":{\"total\":6}}\n{\"seq\":6,\"state\":{\"total\":21}}\n"
    );

    // A damaged snapshot file is an error that names it.
    let newest = snapshot_file(&counter.dir, 6);
    flip_state_byte(&newest);
    let (code, out, err) = mini(os_args!["cat", newest]);
    assert_ne!(code, 0, "{out}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains(&newest.display().to_string()) && err.contains("checksum mismatch"),
        "{err}"
    );
    // In a directory, the valid ones still print.
    let (code, out, err) = mini(os_args!["cat", counter.dir.join(SNAPSHOT_DIR)]);
    assert_ne!(code, 0, "{out}");
    assert_eq!(out, "{\"seq\":3,\"state\":{\"total\":6}}\n");
    assert!(err.contains(&newest.display().to_string()), "{err}");

    // --after-snapshot is for states only.
    let (code, _, err) = mini(os_args![
        "cat",
        counter.dir.join(JOURNAL_DIR),
        "--after-snapshot"
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("needs a state directory"), "{err}");
}

#[test]
fn verify_checks_snapshots_and_states() {
    let data = tempfile::tempdir().expect("tempdir");
    DataRoot::create(data.path()).expect("a data root");
    let counter = nine_records(data.path());
    // A plain journal and a snapshot directory beside the state.
    let journal = Journal::open(data.path().join(NS).join("journal/events")).expect("open");
    journal.append("{}").expect("append");
    let store = SnapshotStore::open(data.path().join(NS).join("snapshot/config")).expect("open");
    store.create(1, r#"{"on":true}"#).expect("snapshot");

    let (code, out, err) = mini(os_args!["verify", data.path()]);
    assert_eq!(code, 0, "{out}{err}");
    let state = counter.dir.display().to_string();
    for needle in [
        format!("ok       {state}/snapshots: 2 snapshot(s) (seq 3, 6)"),
        format!("ok       {state}/journal: 7 records (seq 3..=9)"),
        format!("ok       {state}: recovers from snapshot 6 + 3 journal record(s) (seq 7..=9)"),
        "snapshot/config: 1 snapshot(s) (seq 1)".to_owned(),
        "journal/events: 1 records".to_owned(),
        "1 journal, 1 state, 1 snapshot directory checked, 0 damaged".to_owned(),
    ] {
        assert!(out.contains(&needle), "{needle} in:\n{out}");
    }

    // A flipped byte in the newest snapshot: damage (exit 1) that names the
    // file, and says that recovery falls back.
    let newest = snapshot_file(&counter.dir, 6);
    flip_state_byte(&newest);
    let (code, out, err) = mini(os_args!["verify", data.path()]);
    assert_eq!(code, 1, "{out}{err}");
    let file = newest.display().to_string();
    assert!(
        out.contains(&format!("DAMAGED  {file}: checksum mismatch")),
        "{out}"
    );
    assert!(err.contains(&file), "{err}");
    assert!(
        out.contains("falling back past 1 damaged newer snapshot(s)")
            && out.contains("recovers from snapshot 3 + 6 journal record(s)"),
        "{out}"
    );
    assert!(out.contains("1 damaged"), "{out}");
    // The file alone, too.
    let (code, out, _) = mini(os_args!["verify", newest]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("DAMAGED"), "{out}");

    // Every snapshot damaged and the journal compacted: unrecoverable.
    flip_state_byte(&snapshot_file(&counter.dir, 3));
    let (code, out, err) = mini(os_args!["verify", &counter.dir]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains(&format!("DAMAGED  {state}: cannot recover"))
            && err.contains("starts at seq 3"),
        "{out}{err}"
    );
}

#[test]
fn verify_finds_a_snapshot_beyond_the_journal() {
    let data = tempfile::tempdir().expect("tempdir");
    let counter = nine_records(data.path());
    counter
        .snapshots
        .create(20, r#"{"total":1000}"#)
        .expect("snapshot");
    let (code, out, err) = mini(os_args!["verify", counter.dir]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("snapshot 20 is beyond the end of the journal (last seq 9)"),
        "{out}"
    );
}
