//! The `store` interface's behaviour, one source for every backend
//! (DESIGN.md, "Backends"): the same components through `mini run`, on the
//! local engine and on NATS JetStream, must print the same outcomes. What
//! only one backend does (files on disk, what JetStream does not serve)
//! is tested beside it, in e2e_bad_input.rs and below.

use mini_tests::backends::{TestBackend, assert_bad_input_cases};
use mini_tests::guest_component;

/// The outcomes of the `bad-input` probe's accepted cases on a new journal.
const BAD_INPUT_ACCEPTED: &[(&str, &str)] = &[
    ("open-victim", "ok 0"),
    ("setup-1", "ok 1"),
    ("setup-2", "ok 2"),
    ("after", "ok 3"),
    ("block-all", "ok 3"),
    ("block-none", "ok 0"),
    ("block-one", "ok 1"),
    ("block-rest", "ok 2"),
];

#[test]
fn bad_input_gets_the_same_errors_on_every_backend_and_changes_nothing() {
    let probe = guest_component("bad-input");
    for backend in TestBackend::all() {
        let data = tempfile::tempdir().expect("tempdir");
        let (code, out, err) = backend.run(data.path(), "bad", &probe, &[], &[]);
        let name = backend.name();
        assert_eq!(code, 0, "{name}: stdout:\n{out}\nstderr:\n{err}");
        assert_bad_input_cases(name, &out, &err, BAD_INPUT_ACCEPTED);
        let records = out
            .lines()
            .find_map(|l| l.strip_prefix("records: "))
            .unwrap_or_else(|| panic!("{name}: a records line in\n{out}"));
        let records: Vec<String> = serde_json::from_str(records).expect("a JSON array");
        assert_eq!(
            records,
            [r#"{"ok":1}"#, r#"{"ok":2}"#, r#"{"ok":3}"#],
            "{name}: nothing of a refused record or batch is stored"
        );
        assert!(
            !err.contains(data.path().to_string_lossy().as_ref()),
            "{name}: a host path reached the guest: {err}"
        );
    }
}

#[test]
fn a_later_process_sees_every_earlier_append_on_every_backend() {
    let counter = guest_component("counter");
    let appender = guest_component("appender");
    for backend in TestBackend::all() {
        let name = backend.name();
        let data = tempfile::tempdir().expect("tempdir");
        for (by, expected) in [
            ("1", "total = 1 (records: 1, last seq: 1)"),
            ("41", "total = 42 (records: 2, last seq: 2)"),
        ] {
            let (code, out, err) = backend.run(data.path(), "counter", &counter, &[], &[by]);
            assert_eq!((code, out.trim()), (0, expected), "{name}: {err}");
        }
        // Single appends, then batches of 64 (the last one short): the seqs
        // go on where the earlier process left them.
        let (code, out, err) = backend.run(data.path(), "app", &appender, &[], &["log", "100"]);
        assert_eq!(code, 0, "{name}: {err}");
        assert!(out.starts_with("appended 100 last 100 "), "{name}: {out}");
        let (code, out, err) =
            backend.run(data.path(), "app", &appender, &[], &["log", "1000", "64"]);
        assert_eq!(code, 0, "{name}: {err}");
        assert!(out.starts_with("appended 1000 last 1100 "), "{name}: {out}");
    }
}

#[test]
fn instances_of_one_host_share_a_journal_on_every_backend() {
    let appender = guest_component("appender");
    let with = format!("{} shared 300 7 --print-each", appender.display());
    for backend in TestBackend::all() {
        let name = backend.name();
        let data = tempfile::tempdir().expect("tempdir");
        // Both instances are in the namespace `appender` (the file's name).
        let (code, out, err) = backend.run(
            data.path(),
            "appender",
            &appender,
            &["--with", &with],
            &["shared", "300", "--print-each"],
        );
        assert_eq!(code, 0, "{name}: stdout:\n{out}\nstderr:\n{err}");
        let mut acks: Vec<u64> = out
            .lines()
            .filter_map(|l| l.split("ack ").nth(1))
            .map(|seq| seq.trim().parse().expect("a seq"))
            .collect();
        acks.sort_unstable();
        acks.dedup();
        // 300 single appends and 43 batches (42 of 7, one of 6): 343 acks,
        // every one a distinct seq, the last one 600.
        assert_eq!(acks.len(), 343, "{name}: {out}");
        assert_eq!(acks.last(), Some(&600), "{name}: {out}");
    }
}

#[test]
fn jetstream_refuses_the_interfaces_it_does_not_serve_yet() {
    // `wasi:keyvalue` (the shortener opens its default bucket).
    let shortener = guest_component("shortener");
    for backend in TestBackend::all()
        .into_iter()
        .filter(TestBackend::is_jetstream)
    {
        let data = tempfile::tempdir().expect("tempdir");
        let (code, out, err) = backend.run(data.path(), "kv", &shortener, &[], &["stats"]);
        assert_ne!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
        assert!(err.contains("not served by the JetStream backend"), "{err}");
        // And nothing was written to the local data directory for it.
        assert!(
            std::fs::read_dir(data.path()).map_or(true, |mut d| d.next().is_none()),
            "the refused open wrote local files"
        );
    }
}

#[test]
fn the_disk_quota_holds_on_every_backend() {
    let appender = guest_component("appender");
    for backend in TestBackend::all() {
        let name = backend.name();
        let data = tempfile::tempdir().expect("tempdir");
        // 12,000 records of about 120 bytes, in batches of 100: more than
        // the 1 MiB quota.
        let (code, out, err) = backend.run(
            data.path(),
            "quota",
            &appender,
            &["--quota-mb", "1"],
            &["log", "12000", "100", "--print-each", "--keep-going"],
        );
        assert_eq!(code, 1, "{name}: the refused appends are reported: {err}");
        let acked = out.lines().filter(|l| l.starts_with("ack ")).count();
        let refused: Vec<&str> = out.lines().filter(|l| l.starts_with("error ")).collect();
        assert!(
            refused.iter().all(|l| l.starts_with("error quota: ")),
            "{name}: {refused:?}"
        );
        assert_eq!(acked + refused.len(), 120, "{name}: every batch answered");
        // What was taken fits the quota; a good part of it was used.
        assert!(
            (20..=88).contains(&acked),
            "{name}: {acked} batches of 100 records of ~120 bytes taken under a 1 MiB quota"
        );
        // A later run on the same namespace is refused as well: what the
        // first stored counts.
        let (_, out, _) = backend.run(
            data.path(),
            "quota",
            &appender,
            &["--quota-mb", "1"],
            &["log", "100", "100", "--print-each", "--keep-going"],
        );
        assert!(
            out.lines()
                .filter(|l| l.starts_with("error quota: "))
                .count()
                == 1
                && !out.contains("ack "),
            "{name}: {out}"
        );
    }
}
