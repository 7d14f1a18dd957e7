//! `mini copy`: a namespace moved from local files to NATS JetStream keeps
//! its seqs and its states, so its components go on where they were; a
//! second copy, or one of a namespace in use, copies nothing.

use mini_tests::backends::{TestBackend, comparable};
use mini_tests::{guest_component, mini};

#[test]
fn a_copied_namespace_goes_on_where_it_was_on_jetstream() {
    let backends = TestBackend::all();
    let Some(jetstream) = backends.iter().find(|b| b.is_jetstream()) else {
        return;
    };
    let local = &backends[0];
    let url = jetstream.flags()[1].clone();
    let data = tempfile::tempdir().expect("tempdir");
    let (counter, registry) = (guest_component("counter"), guest_component("registry"));
    let probe = guest_component("state-probe");
    let run = |backend: &TestBackend, component, args: &[&str]| {
        let (code, out, err) = backend.run(data.path(), "app", component, &[], args);
        assert_eq!(code, 0, "{} {args:?}: {out}{err}", backend.name());
        out
    };
    for by in ["1", "2", "3"] {
        run(local, &counter, &[by]);
    }
    run(local, &registry, &["bulk", "30"]);
    run(local, &registry, &["checkpoint"]);
    run(local, &registry, &["bulk", "4", "--batch", "2"]);
    // A state and a snapshot store of its own, with a checkpoint each.
    run(local, &probe, &[]);

    let data_arg = data.path().to_string_lossy().into_owned();
    let (code, out, err) = mini(["copy", "app", "--data", &data_arg, "--to", &url]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("journal counter: 3 records, seqs from 1"),
        "{out}"
    );
    assert!(
        out.contains("state registry: snapshot at seq 30, 4 mutations after it"),
        "{out}"
    );

    // Run on, from the copy and from the files: the same outcomes.
    let on_jetstream = run(jetstream, &counter, &["10"]);
    let on_files = run(local, &counter, &["10"]);
    assert_eq!(on_jetstream, on_files);
    assert_eq!(on_jetstream.trim(), "total = 16 (records: 4, last seq: 4)");
    for args in [&["bulk", "3"][..], &["list"], &["stats"]] {
        let (a, b) = (run(jetstream, &registry, args), run(local, &registry, args));
        assert_eq!(comparable(&a), comparable(&b), "registry {args:?}");
    }
    let (a, b) = (run(jetstream, &probe, &[]), run(local, &probe, &[]));
    assert_eq!(a, b, "state-probe after the copy");
    assert!(
        out.lines()
            .any(|l| l.starts_with("snapshot ") && l.ends_with(" snapshots")),
        "a snapshot store was copied: {out}"
    );

    // A second copy finds the units there and copies nothing.
    let (code, out, err) = mini(["copy", "app", "--data", &data_arg, "--to", &url]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("exists on JetStream already"), "{err}");
    let again = run(jetstream, &counter, &["0"]);
    assert_eq!(again.trim(), "total = 16 (records: 5, last seq: 5)");
}

#[test]
fn a_namespace_in_use_is_not_copied() {
    let backends = TestBackend::all();
    let Some(jetstream) = backends.iter().find(|b| b.is_jetstream()) else {
        return;
    };
    let url = jetstream.flags()[1].clone();
    let data = tempfile::tempdir().expect("tempdir");
    let dir = mini_tests::journal_dir(data.path(), "busy", "log");
    let journal = mini_engine::Journal::open(&dir).expect("open");
    journal.append("1").expect("append");
    let data_arg = data.path().to_string_lossy().into_owned();
    let (code, out, err) = mini(["copy", "busy", "--data", &data_arg, "--to", &url]);
    assert_ne!(code, 0, "{out}");
    assert!(err.to_lowercase().contains("lock"), "{err}");
    drop(journal);
    let (code, out, err) = mini(["copy", "busy", "--data", &data_arg, "--to", &url]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("journal log: 1 records, seqs from 1"), "{out}");
}
