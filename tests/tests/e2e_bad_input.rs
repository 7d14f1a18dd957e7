//! Bad input gets a clear error and loses nothing (DESIGN.md, "The
//! contract", 9): the `bad-input` component throws bad records and bad names
//! at the host; each gets the right error variant, the journal's earlier
//! records are unchanged, the host keeps serving and does not panic.

use std::sync::atomic::{AtomicUsize, Ordering};

use mini_engine::Journal;
use mini_tests::backends::{
    BAD_RECORD_REFUSALS, QUEUE_PROBE_PUSHES, QUEUE_PROBE_REST, assert_bad_input_cases, assert_cases,
};
use mini_tests::{
    assert_contiguous, guest_component, journal_dir, read_journal, run_component, segment_text,
};

/// Panics anywhere in this process (host threads included) since the hook was set.
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
}

#[test]
fn bad_input_gets_the_right_errors_and_changes_nothing() {
    count_panics();
    let bad_input = guest_component("bad-input");
    let data = tempfile::tempdir().expect("tempdir");
    let dir = journal_dir(data.path(), "bad", "victim");

    // Records already in the journal before the component runs.
    {
        let journal = Journal::open(&dir).expect("open");
        journal.append(r#"{"before":1}"#).expect("append");
        journal
            .append_batch(&[r#"{"before":2}"#, r#""two""#])
            .expect("append batch");
    }

    let (code, out, err) = run_component(&bad_input, data.path(), "bad", &[]);
    assert_eq!(
        code, 0,
        "the host kept serving; stdout:\n{out}\nstderr:\n{err}"
    );
    assert_bad_input_cases(
        "local",
        &out,
        &err,
        &[
            ("open-victim", "ok 3"),
            ("setup-1", "ok 4"),
            ("setup-2", "ok 5"),
            ("after", "ok 6"),
            ("block-all", "ok 6"),
            ("block-none", "ok 0"),
            ("block-one", "ok 1"),
            ("block-rest", "ok 5"),
        ],
    );

    // The records the component read back: nothing of the refused batch.
    let records = out
        .lines()
        .find_map(|l| l.strip_prefix("records: "))
        .expect("a records line");
    let records: Vec<String> = serde_json::from_str(records).expect("a JSON array");
    assert_eq!(
        records,
        [
            r#"{"before":1}"#,
            r#"{"before":2}"#,
            r#""two""#,
            r#"{"ok":1}"#,
            r#"{"ok":2}"#,
            r#"{"ok":3}"#
        ]
    );

    // On disk: the same six records, contiguous, and no stray journal from
    // the bad names anywhere in the data directory.
    let stored = read_journal(&dir);
    assert_contiguous(&stored);
    let data_of: Vec<&str> = stored.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(data_of, records);
    let journals: Vec<String> = std::fs::read_dir(data.path().join("bad/journal"))
        .expect("the namespace's journal dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(journals, ["victim"]);
    let mut top: Vec<String> = std::fs::read_dir(data.path())
        .expect("data dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    // Besides the namespace, only the data root's own marker.
    assert_eq!(
        top,
        [mini_engine::layout::ROOT_MARKER, "bad"],
        "nothing escaped the namespace"
    );

    // Error messages the guest saw do not show host paths.
    let root = data.path().to_string_lossy();
    assert!(
        !err.contains(root.as_ref()),
        "host path leaked to the guest: {err}"
    );

    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "the host panicked");
}

#[test]
fn a_damaged_journal_gives_the_guest_a_corrupt_error_without_host_paths() {
    let counter = guest_component("counter");
    let data = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = run_component(&counter, data.path(), "counter", &[]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run_component(&counter, data.path(), "counter", &[]);
    assert_eq!(code, 0, "{err}");

    // Damage record 1 (its crc no longer matches); record 2 follows it, so
    // this is not a torn tail but corruption.
    let segment = journal_dir(data.path(), "counter", "counter").join("00000000000000000001.jsonl");
    let text = std::fs::read_to_string(&segment).expect("segment");
    let offset = text.find(r#"{"seq":1,"#).expect("line 1");
    std::fs::write(&segment, text.replacen(r#""by":1"#, r#""by":9"#, 1)).expect("write");

    let (code, out, err) = run_component(&counter, data.path(), "counter", &[]);
    assert_eq!(code, 1, "the guest reports the error: {out}{err}");
    let expected = format!(
        "journal corrupt: corrupt journal <namespace>/journal/counter/00000000000000000001.jsonl at byte {offset} (seq 1)"
    );
    assert!(err.contains(&expected), "{err}");
    assert!(
        !err.contains(data.path().to_string_lossy().as_ref()),
        "{err}"
    );
    // Nothing was appended to the damaged journal.
    assert_eq!(segment_text(&segment).lines().count(), 3);
}

#[test]
fn bad_state_and_snapshot_input_gets_the_right_errors_and_changes_nothing() {
    count_panics();
    let probe = guest_component("state-probe");
    let data = tempfile::tempdir().expect("tempdir");

    let (code, out, err) = run_component(&probe, data.path(), "probe", &[]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert_cases(
        "local state-probe",
        &out,
        &err,
        &[
            &[("open", "ok 0"), ("commit-1", "ok 1"), ("commit-2", "ok 2")],
            BAD_RECORD_REFUSALS,
            &[
                ("checkpoint-beyond", "err out-of-range"),
                ("checkpoint-invalid", "err invalid-record"),
                ("checkpoint", "ok 2"),
                ("checkpoint-below", "err out-of-range"),
                ("open-again", "err locked"),
                ("name-empty", "err invalid-name"),
                ("name-dotdot", "err invalid-name"),
                ("name-slash", "err invalid-name"),
                ("snaps-open", "ok 0"),
                ("snaps-invalid", "err invalid-record"),
                ("snaps-create", "ok 5"),
                ("snaps-restore", "ok 5"),
                ("snaps-open-again", "err locked"),
                ("snaps-name-dotdot", "err invalid-name"),
                ("after", "ok 3"),
            ],
        ],
    );
    assert!(
        out.contains(r#"recovery: 2 {"sum":3} ["{\"n\":3}"]"#),
        "recovery from the checkpoint: {out}"
    );
    assert!(out.contains("stats: 3 2 1"), "stats: {out}");
    assert!(
        !err.contains(&data.path().display().to_string()),
        "host paths leaked to the guest: {err}"
    );

    // On disk: exactly the accepted mutations, and the one checkpoint.
    let state = data.path().join("probe/state/probe");
    let records: Vec<String> = read_journal(&state.join("journal"))
        .into_iter()
        .map(|e| e.data)
        .collect();
    assert_eq!(records, [r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n":3}"#]);
    let snapshot =
        std::fs::read_to_string(state.join("snapshots/snapshot-00000000000000000002.json"))
            .expect("the checkpoint's snapshot");
    assert!(snapshot.contains(r#""state":{"sum":3}"#), "{snapshot}");

    // A second run resumes: the state handle of the first was released.
    let (code, out, err) = run_component(&probe, data.path(), "probe", &[]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let cases = mini_tests::cases(&out);
    assert_eq!(cases.get("open").map(String::as_str), Some("ok 3"), "{out}");
    assert_eq!(
        cases.get("after").map(String::as_str),
        Some("ok 6"),
        "{out}"
    );
    assert!(
        out.contains(r#"recovery: 5 {"sum":3} ["{\"n\":3}"]"#),
        "{out}"
    );
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "the host panicked");
}

#[test]
fn bad_queue_input_gets_the_right_errors_and_changes_nothing() {
    count_panics();
    let probe = guest_component("queue-probe");
    let data = tempfile::tempdir().expect("tempdir");

    let (code, out, err) = run_component(&probe, data.path(), "probe", &[]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert_cases(
        "local queue-probe",
        &out,
        &err,
        &[QUEUE_PROBE_PUSHES, BAD_RECORD_REFUSALS, QUEUE_PROBE_REST],
    );
    assert!(
        out.contains("stats: ready 2 leased 0 delayed 0 dead 0"),
        "{out}"
    );
    assert!(
        !err.contains(&data.path().display().to_string()),
        "host paths leaked to the guest: {err}"
    );

    // On disk: exactly the accepted messages that were not acked.
    let (state, skipped) =
        mini_engine::queue::inspect(&data.path().join("probe/queue/probe")).expect("inspect");
    assert!(skipped.is_empty());
    let live: Vec<(u64, String)> = state
        .peek(10)
        .into_iter()
        .map(|m| (m.id, m.payload))
        .collect();
    assert_eq!(
        live,
        [(2, r#"{"n":2}"#.to_string()), (3, r#"{"n":3}"#.to_string())]
    );
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "the host panicked");
}
