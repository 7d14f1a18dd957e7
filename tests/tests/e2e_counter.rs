//! The quick start, end to end: the `counter` component keeps its total in a
//! journal across runs, in this process and through `mini run`; the records
//! are on disk where the design says and `mini cat` prints them.

use std::path::Path;

use mini_tests::{
    guest_component, journal_dir, mini, os_args, read_journal, run_component, segment_text,
};
use serde_json::{Value, json};

/// The segment file the counter's first records go to.
fn first_segment(data: &Path) -> std::path::PathBuf {
    journal_dir(data, "counter", "counter").join("00000000000000000001.jsonl")
}

/// Checks the segment file line by line: header, then one line per record.
fn assert_segment_holds(data: &Path, records: &[Value]) {
    let text = segment_text(&first_segment(data));
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    assert_eq!(
        lines.len(),
        records.len() + 1,
        "header + one line per record:\n{text}"
    );
    assert_eq!(lines[0]["mini"], "journal");
    assert_eq!(lines[0]["first_seq"], 1);
    for (i, (line, record)) in lines[1..].iter().zip(records).enumerate() {
        assert_eq!(line["seq"], i as u64 + 1, "{text}");
        assert_eq!(&line["data"], record, "{text}");
    }
}

#[test]
fn counter_in_process_keeps_its_total_across_runs() {
    let counter = guest_component("counter");
    let data = tempfile::tempdir().expect("tempdir");

    let (code, out, err) = run_component(&counter, data.path(), "counter", &[]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "total = 1 (records: 1, last seq: 1)\n");

    let (code, out, err) = run_component(&counter, data.path(), "counter", &[]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "total = 2 (records: 2, last seq: 2)\n");

    let inc1 = json!({"Inc": {"by": 1}});
    assert_segment_holds(data.path(), &[inc1.clone(), inc1]);
    let entries = read_journal(&journal_dir(data.path(), "counter", "counter"));
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].data, r#"{"Inc":{"by":1}}"#);
}

#[test]
fn counter_through_the_mini_binary_and_mini_cat() {
    let counter = guest_component("counter");
    let data = tempfile::tempdir().expect("tempdir");
    let run = |extra: &[&str]| {
        let mut args = os_args!["run", counter, "--data", data.path()];
        if !extra.is_empty() {
            args.push("--".into());
            args.extend(extra.iter().map(Into::into));
        }
        mini(args)
    };

    let (code, out, err) = run(&[]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "total = 1 (records: 1, last seq: 1)\n");
    let (code, out, err) = run(&[]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "total = 2 (records: 2, last seq: 2)\n");
    let (code, out, err) = run(&["5"]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "total = 7 (records: 3, last seq: 3)\n");

    // The namespace defaults to the component's file stem.
    let inc = |by: u64| json!({"Inc": {"by": by}});
    assert_segment_holds(data.path(), &[inc(1), inc(1), inc(5)]);

    // `mini cat DIR`: one JSON line per record, jq-friendly.
    let dir = journal_dir(data.path(), "counter", "counter");
    let (code, out, err) = mini(os_args!["cat", dir]);
    assert_eq!(code, 0, "stderr: {err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(
        lines,
        vec![
            json!({"seq": 1, "data": inc(1)}),
            json!({"seq": 2, "data": inc(1)}),
            json!({"seq": 3, "data": inc(5)}),
        ]
    );

    // The same journal by data dir, namespace and name, from seq 3.
    let (code, out, err) = mini(os_args![
        "cat",
        "--data",
        data.path(),
        "--namespace",
        "counter",
        "--journal",
        "counter",
        "--from",
        "3",
    ]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "{\"seq\":3,\"data\":{\"Inc\":{\"by\":5}}}\n");

    // And the log checks out.
    let (code, out, err) = mini(os_args!["verify", data.path()]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("3 records (seq 1..=3)"), "{out}");
}

#[test]
fn mini_run_reports_a_failing_component_with_its_exit_code() {
    let counter = guest_component("counter");
    let data = tempfile::tempdir().expect("tempdir");
    let (code, out, err) = mini(os_args![
        "run",
        counter,
        "--data",
        data.path(),
        "--",
        "not-a-number"
    ]);
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    assert!(err.contains("not-a-number"), "{err}");
    let dir = journal_dir(data.path(), "counter", "counter");
    assert!(
        !dir.exists() || read_journal(&dir).is_empty(),
        "nothing was appended"
    );
}
