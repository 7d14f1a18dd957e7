//! `mini` as a script sees it (issue 10, point 6): the exit codes (0 ok, 1
//! damage found or a check failed, 2 a usage error, 3 could not run), the
//! `--json` outputs, one way to address data (`--data DIR NAMESPACE NAME`,
//! or a path) in every command, and `mini completions`.

use std::path::{Path, PathBuf};

use mini_engine::Journal;
use mini_engine::layout::{DataRoot, UnitKind};
use mini_engine::queue::{ManualClock, PushOptions, Queue, QueueOptions};
use mini_engine::state::{StateLog, StateOptions};
use mini_tests::{mini, os_args};
use serde_json::Value;

const SEGMENT: &str = "00000000000000000001.jsonl";

/// A data root with the journal `app/events` (`{"n":1}`…`{"n":5}`), the
/// state `app/cart` (3 records, a snapshot at 2) and the queue `app/jobs`
/// (message 1 dead, 2 ready).
struct Data {
    dir: tempfile::TempDir,
}

impl Data {
    fn new() -> Data {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = DataRoot::create(dir.path()).expect("root");
        let journal = Journal::open(
            root.unit_dir("app", UnitKind::Journal, "events")
                .expect("name"),
        )
        .expect("open");
        for n in 1..=5 {
            journal.append(&format!(r#"{{"n":{n}}}"#)).expect("append");
        }
        let (log, _) = StateLog::open_with(
            root.unit_dir("app", UnitKind::State, "cart").expect("name"),
            &StateOptions::default(),
        )
        .expect("state");
        log.commit_batch(&["1", "2", "3"]).expect("commit");
        log.checkpoint(2, "3").expect("checkpoint");
        let clock = std::sync::Arc::new(ManualClock::new(1_700_000_000_000));
        let queue = Queue::open_with(
            root.unit_dir("app", UnitKind::Queue, "jobs").expect("name"),
            QueueOptions {
                max_deliveries: 1,
                clock: clock.clone(),
                ..QueueOptions::default()
            },
        )
        .expect("queue");
        queue.push("1", &PushOptions::default()).expect("push");
        queue.pop(10).expect("pop").expect("message 1");
        clock.advance(20);
        queue.push("2", &PushOptions::default()).expect("push");
        // Message 1 expired after its one delivery: dead at this pop, which
        // leases message 2 for an hour.
        queue.pop_batch(10, 3_600_000).expect("pop");
        assert_eq!(queue.dead_letters().len(), 1);
        Data { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn unit(&self, kind: &str, name: &str) -> PathBuf {
        self.path().join("app").join(kind).join(name)
    }

    /// Changes record 3 of `app/events` on disk (only its crc tells).
    fn damage_events(&self) {
        let path = self.unit("journal", "events").join(SEGMENT);
        let text = std::fs::read_to_string(&path).expect("segment");
        let damaged = text.replacen(r#"{"n":3}"#, r#"{"n":8}"#, 1);
        assert_ne!(damaged, text);
        std::fs::write(&path, damaged).expect("write");
    }
}

/// Runs `mini ARGS`; asserts its exit code; returns stdout and stderr.
fn code<S: AsRef<std::ffi::OsStr>>(expected: i32, args: Vec<S>) -> (String, String) {
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    let (code, out, err) = mini(args);
    assert_eq!(
        code, expected,
        "mini {shown:?}\n--- stdout\n{out}--- stderr\n{err}"
    );
    (out, err)
}

/// The one JSON document `out` holds.
fn json(out: &str) -> Value {
    serde_json::from_str(out.trim_end())
        .unwrap_or_else(|e| panic!("not one JSON value ({e}): {out}"))
}

#[test]
fn verify_exits_by_what_it_found_and_says_it_in_json() {
    let data = Data::new();
    let (out, _) = code(0, os_args!["verify", "--data", data.path(), "--json"]);
    let report = json(&out);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["damaged"], 0);
    assert_eq!(report["checked"]["journal"], 1);
    assert_eq!(report["checked"]["state"], 1);
    assert_eq!(report["checked"]["queue"], 1);
    let units = report["units"].as_array().expect("units");
    let state = units
        .iter()
        .find(|u| u["kind"] == "state")
        .expect("the state");
    assert_eq!(state["recovery"]["recovers"], true);
    assert_eq!(state["recovery"]["snapshot_seq"], 2);
    assert_eq!(state["recovery"]["replayed"], 1);
    let queue = units
        .iter()
        .find(|u| u["kind"] == "queue")
        .expect("the queue");
    assert_eq!(queue["queue"]["dead"], 1);
    // With no PATH verify checks --data; NAMESPACE NAME checks one unit.
    let (out, _) = code(
        0,
        os_args!["verify", "--data", data.path(), "app", "events"],
    );
    assert!(out.starts_with("ok       "), "{out}");

    data.damage_events();
    let (out, _) = code(1, os_args!["verify", data.path(), "--json"]);
    let report = json(&out);
    assert_eq!(
        (report["ok"].clone(), report["damaged"].clone()),
        (false.into(), 1.into())
    );
    let journal = report["units"]
        .as_array()
        .expect("units")
        .iter()
        .find(|u| u["kind"] == "journal")
        .expect("the journal")
        .clone();
    assert_eq!(journal["damaged"], true);
    assert_eq!(journal["journal"]["damage"]["seq"], 3);
    assert_eq!(journal["lines"][0]["status"], "damaged");
    code(1, os_args!["verify", data.path()]);

    // Usage errors: clap's own, and a path that is not what verify takes.
    code(2, os_args!["verify", "--no-such-flag"]);
    code(
        2,
        os_args!["verify", data.unit("journal", "events").join(SEGMENT)],
    );
    code(2, os_args!["verify", "a", "b", "c"]);
    code(2, os_args!["verify", "--data", data.path(), "..", "events"]);
    // Could not run: nothing there.
    code(3, os_args!["verify", data.path().join("nothing")]);
    code(
        3,
        os_args!["verify", "--data", data.path(), "app", "nothing"],
    );
}

#[test]
fn repair_is_a_dry_run_without_yes() {
    let data = Data::new();
    data.damage_events();
    let events = data.unit("journal", "events");
    let before = std::fs::read(events.join(SEGMENT)).expect("segment");
    let (out, _) = code(
        0,
        os_args!["repair", "--data", data.path(), "app", "events", "--json"],
    );
    let plan = json(&out);
    assert_eq!(plan["dry_run"], true, "{plan}");
    assert_eq!(plan["damage"]["seq"], 3);
    assert!(plan["bytes_to_remove"].as_u64().expect("bytes") > 0);
    assert_eq!(
        std::fs::read(events.join(SEGMENT)).expect("segment"),
        before
    );

    let (out, _) = code(0, os_args!["repair", &events, "--yes", "--json"]);
    let done = json(&out);
    assert_eq!(done["dry_run"], false, "{done}");
    assert_eq!(done["records_left"], 2);
    assert_eq!(done["bytes_removed"], plan["bytes_to_remove"]);
    assert!(
        done["saved_to"]
            .as_str()
            .expect("saved")
            .contains("repair-")
    );
    let (out, _) = code(0, os_args!["repair", &events, "--json"]);
    assert_eq!(json(&out)["damage"], Value::Null);

    code(2, os_args!["repair", data.unit("state", "cart")]);
    code(2, os_args!["repair"]);
    code(
        3,
        os_args!["repair", data.path().join("app/journal/nothing")],
    );
}

#[test]
fn a_held_lock_exits_3() {
    let data = Data::new();
    let events = data.unit("journal", "events");
    data.damage_events();
    let _held =
        mini_engine::lock::DirLock::acquire(&mini_engine::fs::StdFs, &events).expect("lock");
    let (_, err) = code(3, os_args!["repair", &events, "--yes"]);
    assert!(err.contains("lock"), "{err}");
}

#[test]
fn cat_and_state_take_a_path_or_namespace_name() {
    let data = Data::new();
    let events = data.unit("journal", "events");
    let (by_path, _) = code(0, os_args!["cat", &events]);
    let (by_name, _) = code(0, os_args!["cat", "--data", data.path(), "app", "events"]);
    assert_eq!(by_path, by_name);
    assert_eq!(by_path.lines().count(), 5);
    let (tail, _) = code(
        0,
        os_args![
            "cat",
            "--data",
            data.path(),
            "app",
            "cart",
            "--after-snapshot"
        ],
    );
    assert_eq!(tail, "{\"seq\":3,\"data\":3}\n");
    let cart = data.unit("state", "cart");
    let (by_path, _) = code(0, os_args!["state", &cart]);
    let (by_name, _) = code(0, os_args!["state", "--data", data.path(), "app", "cart"]);
    let (by_dir, _) = code(0, os_args!["state", "--dir", &cart]);
    assert_eq!(
        (by_path.as_str(), by_name.as_str()),
        (by_dir.as_str(), by_dir.as_str())
    );
    assert_eq!(
        by_path,
        "{\"snapshot\":{\"seq\":2,\"state\":3},\"warnings\":[]}\n{\"seq\":3,\"data\":3}\n"
    );

    code(2, os_args!["cat", events.join(SEGMENT)]);
    code(2, os_args!["cat", data.path()]);
    code(2, os_args!["cat", &events, "--after-snapshot"]);
    code(2, os_args!["state", &events]);
    code(2, os_args!["state"]);
    code(3, os_args!["cat", "--data", data.path(), "app", "nothing"]);
    code(
        3,
        os_args!["state", "--data", data.path(), "app", "nothing"],
    );

    data.damage_events();
    let (out, _) = code(1, os_args!["cat", &events]);
    assert_eq!(
        out.lines().count(),
        2,
        "the records before the damage: {out}"
    );
    // A damaged snapshot file.
    let snapshot = cart
        .join("snapshots")
        .join(mini_engine::snapshot::snapshot_file_name(2));
    let text = std::fs::read_to_string(&snapshot).expect("snapshot");
    std::fs::write(&snapshot, text.replace("\"state\":3", "\"state\":4")).expect("write");
    code(1, os_args!["cat", &snapshot]);
}

#[test]
fn queue_commands_exit_by_outcome_and_speak_json() {
    let data = Data::new();
    let d = data.path();
    let jobs = data.unit("queue", "jobs");
    let (out, _) = code(0, os_args!["queue", "stats", "--data", d, "app", "jobs"]);
    assert_eq!(json(&out)["dead"], 1);
    let (by_path, _) = code(0, os_args!["queue", "stats", &jobs]);
    assert_eq!(by_path, out);
    let (dead, _) = code(0, os_args!["queue", "dead", "--data", d, "app", "jobs"]);
    let dead = json(&dead);
    assert_eq!(dead["enqueued_at_ms"], 1_700_000_000_000u64);
    assert_eq!(dead["enqueued_at"], "2023-11-14T22:13:20.000Z");

    // A dry run: exit 0, what would go, nothing changed.
    let (out, _) = code(
        0,
        os_args![
            "queue", "purge", "--data", d, "app", "jobs", "--all", "--json"
        ],
    );
    assert_eq!(
        json(&out),
        serde_json::json!({"dry_run": true, "would_purge": [1]})
    );
    let (out, _) = code(
        0,
        os_args!["queue", "purge", "--data", d, "app", "jobs", "--all"],
    );
    assert!(out.starts_with("would purge 1 dead letter"), "{out}");
    // Ids that are no dead letter: a failed check (1); not an id: usage (2).
    code(
        1,
        os_args!["queue", "purge", "--data", d, "app", "jobs", "2", "--yes"],
    );
    code(
        1,
        os_args!["queue", "requeue", "--data", d, "app", "jobs", "9"],
    );
    code(
        2,
        os_args!["queue", "requeue", "--data", d, "app", "jobs", "x1"],
    );
    code(2, os_args!["queue", "requeue", "--data", d, "app", "jobs"]);
    code(2, os_args!["queue", "stats", data.unit("state", "cart")]);
    code(3, os_args!["queue", "stats", "--data", d, "app", "nothing"]);

    let (out, _) = code(0, os_args!["queue", "requeue", &jobs, "1", "--json"]);
    assert_eq!(json(&out), serde_json::json!({"requeued": 1}));
    let (out, _) = code(0, os_args!["queue", "requeue", &jobs, "--all", "--json"]);
    assert_eq!(json(&out), serde_json::json!({"requeued": 0}));
    let (out, _) = code(
        0,
        os_args!["queue", "purge", &jobs, "--all", "--yes", "--json"],
    );
    assert_eq!(
        json(&out),
        serde_json::json!({"dry_run": false, "purged": 0})
    );

    // A held lock: could not run.
    let held = Queue::open(&jobs).expect("open");
    code(3, os_args!["queue", "requeue", &jobs, "--all"]);
    drop(held);
}

#[test]
fn modules_import_and_completions() {
    let data = Data::new();
    let (out, _) = code(0, os_args!["modules", "--data", data.path(), "--json"]);
    let app = json(&out);
    assert_eq!(app["namespace"], "app");
    assert_eq!(app["journals"], serde_json::json!(["events"]));
    code(
        3,
        os_args!["modules", "--data", data.path().join("nothing")],
    );
    code(
        3,
        os_args![
            "import-ministore",
            data.path().join("nothing.journal"),
            data.path().join("app/journal/imported")
        ],
    );

    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let (out, _) = code(0, os_args!["completions", shell]);
        assert!(
            out.contains("verify") && out.contains("queue"),
            "{shell}: {out}"
        );
    }
    code(2, os_args!["completions", "nosuchshell"]);
    code(2, os_args!["no-such-command"]);
    code(0, os_args!["--help"]);
}
