//! `mini kv get|list|dump` and the other operator tools on key-value
//! buckets (`<data>/<ns>/bucket/<name>/`): what they print, their exit
//! codes, that they read without the lock, and that `verify`, `repair`,
//! `state` and `modules` know buckets.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use mini_engine::kv::{Bucket, BucketOptions};
use mini_engine::layout::DataRoot;
use mini_engine::state::{JOURNAL_DIR, StateLog, StateOptions};
use mini_tests::{mini_binary, os_args};
use serde_json::{Value, json};

/// The bytes of the one value that is not UTF-8.
const BLOB: [u8; 4] = [0xff, 0x00, 0x80, 0x7f];

/// A data root with the bucket `app/prefs`.
struct Data {
    dir: tempfile::TempDir,
}

impl Data {
    fn new() -> Data {
        let dir = tempfile::tempdir().expect("tempdir");
        DataRoot::create(dir.path()).expect("a data root");
        Data { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn bucket_dir(&self) -> PathBuf {
        self.path().join("app/bucket/prefs")
    }

    fn open(&self) -> Bucket {
        Bucket::open(self.bucket_dir(), &BucketOptions::default()).expect("the bucket opens")
    }

    /// Writes the entries [`expected_dump`] describes (seqs 1..=9), and
    /// leaves the bucket open.
    fn write(&self) -> Bucket {
        let bucket = self.open();
        bucket.set("greeting", b"hello").expect("set"); // 1
        bucket.set("blob", &BLOB).expect("set"); // 2
        bucket.set("gone", b"soon").expect("set"); // 3
        bucket.delete("gone").expect("delete"); // 4
        bucket
            .set_many(&[
                ("user/1".into(), b"ann".to_vec()),
                ("user/2".into(), b"bob".to_vec()),
                ("user/3".into(), b"line\nbreak \"q\"".to_vec()),
                ("two\nlines".into(), b"".to_vec()),
            ])
            .expect("set_many"); // 5..=8
        bucket.set("greeting", b"hello again").expect("set"); // 9
        bucket
    }
}

/// What `mini kv dump` prints for [`Data::write`], in key order.
fn expected_dump() -> Vec<Value> {
    vec![
        json!({"key": "blob", "base64": "/wCAfw==", "version": 2}),
        json!({"key": "greeting", "text": "hello again", "version": 9}),
        json!({"key": "two\nlines", "text": "", "version": 8}),
        json!({"key": "user/1", "text": "ann", "version": 5}),
        json!({"key": "user/2", "text": "bob", "version": 6}),
        json!({"key": "user/3", "text": "line\nbreak \"q\"", "version": 7}),
    ]
}

/// What `mini ARGS` did.
struct Run {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn out(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("stdout is UTF-8")
    }

    /// Each line of stdout parsed as JSON; every line must end in `\n`.
    fn json_lines(&self) -> Vec<Value> {
        let out = self.out();
        assert!(
            out.is_empty() || out.ends_with('\n'),
            "the last line ends: {out:?}"
        );
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .collect()
    }
}

/// Runs `mini ARGS`; asserts its exit code.
fn mini(expected: i32, args: Vec<OsString>) -> Run {
    let out = Command::new(mini_binary())
        .args(&args)
        .output()
        .expect("mini runs");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(
        run.code,
        expected,
        "mini {args:?}\n--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&run.stdout),
        run.stderr
    );
    run
}

/// `mini kv SUB --data DATA app prefs ARGS…`.
fn kv(expected: i32, data: &Data, sub: &str, args: &[&str]) -> Run {
    let mut all = os_args!["kv", sub, "--data", data.path(), "app", "prefs"];
    all.extend(args.iter().map(OsString::from));
    mini(expected, all)
}

/// The keys `mini kv list` prints with `args`.
fn list(data: &Data, args: &[&str]) -> Vec<String> {
    kv(0, data, "list", args)
        .json_lines()
        .into_iter()
        .map(|v| match v {
            Value::String(key) => key,
            other => panic!("a key is a JSON string: {other}"),
        })
        .collect()
}

/// Checks everything `get`, `list` and `dump` print for [`Data::write`].
fn check_reads(data: &Data) {
    let run = kv(0, data, "get", &["greeting"]);
    assert_eq!(
        run.json_lines(),
        [json!({"key": "greeting", "text": "hello again", "version": 9})]
    );
    let run = kv(0, data, "get", &["blob"]);
    assert_eq!(
        run.json_lines(),
        [json!({"key": "blob", "base64": "/wCAfw==", "version": 2})]
    );
    assert_eq!(kv(0, data, "get", &["blob", "--raw"]).stdout, BLOB);
    assert_eq!(
        kv(0, data, "get", &["--raw", "user/3"]).stdout,
        b"line\nbreak \"q\""
    );
    assert_eq!(kv(0, data, "get", &["--raw", "two\nlines"]).stdout, b"");

    for missing in ["gone", "nothing", "greeting "] {
        let run = kv(1, data, "get", &[missing]);
        assert!(run.stdout.is_empty(), "nothing on stdout: {}", run.out());
        assert!(
            run.stderr
                .contains(&format!("no key {missing:?} in bucket"))
                && run.stderr.contains("prefs"),
            "{}",
            run.stderr
        );
    }

    assert_eq!(
        list(data, &[]),
        [
            "blob",
            "greeting",
            "two\nlines",
            "user/1",
            "user/2",
            "user/3"
        ]
    );
    assert_eq!(
        list(data, &["--prefix", "user/"]),
        ["user/1", "user/2", "user/3"]
    );
    assert_eq!(
        list(data, &["--prefix", "user/", "--after", "user/1"]),
        ["user/2", "user/3"]
    );
    assert_eq!(
        list(data, &["--prefix", "user/", "--max", "2"]),
        ["user/1", "user/2"]
    );
    assert_eq!(
        list(data, &["--after", "greeting", "--max", "2"]),
        ["two\nlines", "user/1"]
    );
    assert_eq!(
        list(data, &["--after", "blob", "--prefix", "g"]),
        ["greeting"]
    );
    assert!(list(data, &["--after", "user/3"]).is_empty());
    assert!(list(data, &["--prefix", "user/", "--after", "user/3"]).is_empty());
    assert!(list(data, &["--prefix", "nope"]).is_empty());
    assert!(list(data, &["--max", "0"]).is_empty());

    assert_eq!(kv(0, data, "dump", &[]).json_lines(), expected_dump());
    // A PATH instead of NAMESPACE NAME.
    let run = mini(0, os_args!["kv", "dump", data.bucket_dir()]);
    assert_eq!(run.json_lines(), expected_dump());
    let run = mini(0, os_args!["kv", "get", data.bucket_dir(), "user/1"]);
    assert_eq!(
        run.json_lines(),
        [json!({"key": "user/1", "text": "ann", "version": 5})]
    );
}

#[test]
fn get_list_and_dump_print_what_the_bucket_holds() {
    let data = Data::new();
    drop(data.write());
    check_reads(&data);
    // After a checkpoint the contents come from the snapshot and the
    // records after it.
    let bucket = data.open();
    bucket.checkpoint().expect("checkpoint");
    bucket.set("user/1", b"ann").expect("set"); // 10
    drop(bucket);
    let mut expected = expected_dump();
    expected[3]["version"] = json!(10);
    assert_eq!(kv(0, &data, "dump", &[]).json_lines(), expected);
    // A key that starts with `-` goes after `--`.
    data.open().set("-k", b"dash").expect("set");
    let run = kv(0, &data, "get", &["--", "-k"]);
    assert_eq!(
        run.json_lines(),
        [json!({"key": "-k", "text": "dash", "version": 11})]
    );
}

#[test]
fn kv_reads_while_a_process_holds_the_bucket() {
    let data = Data::new();
    let bucket = data.write();
    // The lock is held: a second open is refused.
    assert!(Bucket::open(data.bucket_dir(), &BucketOptions::default()).is_err());
    check_reads(&data);
    bucket.set("late", b"1").expect("set");
    let run = kv(0, &data, "get", &["late"]);
    assert_eq!(
        run.json_lines(),
        [json!({"key": "late", "text": "1", "version": 10})]
    );
    bucket.delete("late").expect("delete");
    kv(1, &data, "get", &["late"]);
    drop(bucket);
}

#[test]
fn kv_refuses_what_is_not_a_bucket() {
    let data = Data::new();
    drop(data.write());
    let (log, _) = StateLog::open_with(
        data.path().join("app/state/prefs"),
        &StateOptions::default(),
    )
    .expect("a state");
    log.commit("{}").expect("commit");
    drop(log);
    // NAMESPACE NAME picks the bucket, not the state of the same name.
    assert_eq!(kv(0, &data, "dump", &[]).json_lines(), expected_dump());
    let run = mini(
        2,
        os_args!["kv", "dump", data.path().join("app/state/prefs")],
    );
    assert!(
        run.stderr
            .contains("is not a bucket directory: it is a state"),
        "{}",
        run.stderr
    );
    let run = mini(
        3,
        os_args!["kv", "list", "--data", data.path(), "app", "missing"],
    );
    assert!(
        run.stderr.contains("no bucket \"missing\""),
        "{}",
        run.stderr
    );
    mini(
        2,
        os_args!["kv", "list", "--data", data.path(), "app", "../x"],
    );
    // A key is needed, and one only.
    let run = kv(2, &data, "get", &[]);
    assert!(
        run.stderr.contains("give the bucket, then one key"),
        "{}",
        run.stderr
    );
    kv(2, &data, "get", &["greeting", "blob"]);
}

/// The journal segment of the bucket in `dir` (it has one).
fn segment(dir: &Path) -> PathBuf {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir.join(JOURNAL_DIR))
        .expect("the journal")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    assert_eq!(segments.len(), 1, "{segments:?}");
    segments.remove(0)
}

/// Flips the low bit of the byte at offset `at` in the value `needle` (its
/// only occurrence) in `path`.
fn flip(path: &Path, needle: &str, at: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    let found: Vec<usize> = bytes
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle.as_bytes())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(found.len(), 1, "{needle} once in {}", path.display());
    bytes[found[0] + at] ^= 0x01;
    std::fs::write(path, bytes).expect("write");
}

#[test]
fn verify_checks_buckets_and_names_their_damage() {
    let data = Data::new();
    drop(data.write());
    let dir = data.bucket_dir();
    let shown = dir.display().to_string();

    let run = mini(0, os_args!["verify", "--data", data.path()]);
    let out = run.out();
    assert!(
        out.contains("1 bucket checked, 0 damaged, 0 unknown entries"),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("ok")
            && l.contains(&format!(
                "{shown}: recovers from no snapshot + 9 journal record(s)"
            ))
            && l.ends_with("the bucket holds 6 keys")),
        "{out}"
    );
    let run = mini(0, os_args!["verify", "--data", data.path(), "--json"]);
    let report: Value = serde_json::from_str(run.out().trim_end()).expect("JSON");
    assert_eq!(report["checked"], json!({"bucket": 1}), "{report}");
    assert_eq!(report["units"][0]["kind"], "bucket");
    assert_eq!(report["units"][0]["bucket"], json!({"keys": 6}));
    assert_eq!(report["units"][0]["recovery"]["replayed"], 9);
    // NAMESPACE NAME with --kind bucket.
    let run = mini(
        0,
        os_args![
            "verify",
            "--data",
            data.path(),
            "app",
            "prefs",
            "--kind",
            "bucket"
        ],
    );
    assert!(
        run.out().contains("the bucket holds 6 keys"),
        "{}",
        run.out()
    );

    // A flip in the last record is a torn tail (what a write cut short
    // leaves), not damage: the next open cuts it.
    let segment = segment(&dir);
    let before = std::fs::read(&segment).expect("read");
    flip(&segment, r#""text":"hello again""#, 10);
    let run = mini(0, os_args!["verify", "--data", data.path()]);
    assert!(run.out().contains("a torn tail of"), "{}", run.out());
    std::fs::write(&segment, &before).expect("restore");

    // A flip in a record that others follow is damage.
    flip(&segment, r#""text":"bob""#, 9);
    let run = mini(1, os_args!["verify", "--data", data.path()]);
    let out = run.out();
    assert!(
        out.contains("1 bucket checked, 1 damaged, 0 unknown entries"),
        "{out}"
    );
    let journal = format!("{}: ", dir.join(JOURNAL_DIR).display());
    assert!(
        out.lines()
            .any(|l| l.starts_with("DAMAGED") && l.contains(&journal) && l.contains("seq 6")),
        "the journal's damage, with its seq: {out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("DAMAGED") && l.contains(&format!("{shown}: "))),
        "the bucket is named: {out}"
    );
    // The readers meet the damage too.
    let run = kv(1, &data, "dump", &[]);
    assert!(run.stdout.is_empty(), "{}", run.out());
    assert!(
        run.stderr.contains("cannot read the bucket"),
        "{}",
        run.stderr
    );

    // repair takes a bucket's journal: by --kind bucket (a dry run) ...
    let run = mini(
        0,
        os_args![
            "repair",
            "--data",
            data.path(),
            "app",
            "prefs",
            "--kind",
            "bucket"
        ],
    );
    assert!(
        run.out().contains(&format!(
            "would cut {} at the first damage",
            dir.join(JOURNAL_DIR).display()
        )),
        "{}",
        run.out()
    );
    // ... not the bucket's directory itself.
    let run = mini(2, os_args!["repair", &dir]);
    assert!(
        run.stderr
            .contains("is a bucket directory: repair its journal"),
        "{}",
        run.stderr
    );
    mini(0, os_args!["repair", dir.join(JOURNAL_DIR), "--yes"]);
    mini(0, os_args!["verify", "--data", data.path()]);
    // Seq 6 and after were cut: the batch of seqs 5..=8 goes whole.
    assert_eq!(
        kv(0, &data, "dump", &[]).json_lines(),
        [
            json!({"key": "blob", "base64": "/wCAfw==", "version": 2}),
            json!({"key": "greeting", "text": "hello", "version": 1}),
        ]
    );
}

#[test]
fn a_bucket_whose_records_are_not_kv_records_does_not_recover() {
    let data = Data::new();
    let dir = data.path().join("app/bucket/odd");
    let (log, _) = StateLog::open_with(&dir, &StateOptions::default()).expect("a state");
    log.commit("{\"nope\":1}").expect("commit");
    drop(log);
    let run = mini(1, os_args!["verify", "--data", data.path()]);
    let out = run.out();
    assert!(
        out.lines().any(|l| l.starts_with("DAMAGED")
            && l.contains(&format!("{}: ", dir.display()))
            && l.contains("does not recover")),
        "{out}"
    );
    assert!(out.contains("1 bucket checked, 1 damaged"), "{out}");
    let run = mini(
        1,
        os_args!["kv", "dump", "--data", data.path(), "app", "odd"],
    );
    assert!(
        run.stderr.contains("is not a key-value record"),
        "{}",
        run.stderr
    );
}

#[test]
fn modules_state_and_cat_show_buckets() {
    let data = Data::new();
    drop(data.write());
    let run = mini(0, os_args!["modules", "--data", data.path()]);
    assert!(run.out().contains("  buckets: prefs\n"), "{}", run.out());
    let run = mini(0, os_args!["modules", "--data", data.path(), "--json"]);
    let lines = run.json_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["namespace"], "app");
    assert_eq!(lines[0]["buckets"], json!(["prefs"]));
    assert_eq!(lines[0]["states"], json!([]));

    // `mini state` and `mini cat` read a bucket as the state it is.
    let run = mini(0, os_args!["state", data.bucket_dir()]);
    let lines = run.json_lines();
    assert_eq!(lines[0], json!({"snapshot": null, "warnings": []}));
    assert_eq!(
        lines[1],
        json!({"seq": 1, "data": {"set": {"key": "greeting", "text": "hello"}}})
    );
    assert_eq!(lines.len(), 10);
    let run = mini(
        0,
        os_args![
            "cat",
            "--data",
            data.path(),
            "app",
            "prefs",
            "--kind",
            "bucket"
        ],
    );
    assert_eq!(run.json_lines().len(), 9);
}

#[test]
fn a_damaged_newest_snapshot_is_passed_over_with_a_warning() {
    let data = Data::new();
    let bucket = data.write();
    bucket.checkpoint().expect("checkpoint"); // at seq 9
    bucket.set("user/1", b"amy").expect("set"); // 10
    bucket.checkpoint().expect("checkpoint"); // at seq 10
    drop(bucket);
    let newest = data
        .bucket_dir()
        .join("snapshots/snapshot-00000000000000000010.json");
    flip(&newest, r#""text":"amy""#, 9);
    let run = kv(0, &data, "get", &["user/1"]);
    assert_eq!(
        run.json_lines(),
        [json!({"key": "user/1", "text": "amy", "version": 10})],
        "the older snapshot and the record after it"
    );
    assert!(
        run.stderr.contains("warning: damaged") && run.stderr.contains("snapshot"),
        "{}",
        run.stderr
    );
}
