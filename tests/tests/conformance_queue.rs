//! The `queue` interface's behaviour, one source for every backend
//! (DESIGN.md, "Backends"): the same components through `mini run`, on the
//! local engine and on NATS JetStream. The `queue-probe`'s outcomes must be
//! the local engine's, except where the README's table says JetStream
//! differs (ids are the stream's seqs, and a delayed message's move to the
//! ready ones takes a seq of its own); jobs pushed by one process are
//! worked by another.

use mini_tests::backends::{
    BAD_RECORD_REFUSALS, QUEUE_PROBE_PUSHES, QUEUE_PROBE_REST, TestBackend, assert_cases,
};
use mini_tests::guest_component;

/// What JetStream prints unlike the local engine, and why.
const JETSTREAM_DIFFERS: &[(&str, &str)] = &[
    // The delayed `push-soon` (id 2) moved to the ready messages as seq 3:
    // the next push is seq 4.
    ("push-now", "ok 4"),
];

/// The `queue-probe`'s cases on `backend`.
fn expected_cases(backend: &TestBackend) -> Vec<(&'static str, &'static str)> {
    QUEUE_PROBE_REST
        .iter()
        .map(|&(case, outcome)| {
            let differs = JETSTREAM_DIFFERS.iter().find(|(c, _)| *c == case);
            match differs {
                Some(&(_, theirs)) if backend.is_jetstream() => (case, theirs),
                _ => (case, outcome),
            }
        })
        .collect()
}

#[test]
fn bad_queue_input_gets_the_same_answers_on_every_backend() {
    let probe = guest_component("queue-probe");
    for backend in TestBackend::all() {
        let name = backend.name();
        let data = tempfile::tempdir().expect("tempdir");
        let (code, out, err) = backend.run(data.path(), "probe", &probe, &[], &[]);
        assert_eq!(code, 0, "{name}: stdout:\n{out}\nstderr:\n{err}");
        let rest = expected_cases(&backend);
        assert_cases(
            name,
            &out,
            &err,
            &[QUEUE_PROBE_PUSHES, BAD_RECORD_REFUSALS, &rest],
        );
        // Messages 2 and 3 (the dedup'd one) are left, ready.
        assert!(
            out.contains("stats: ready 2 leased 0 delayed 0 dead 0"),
            "{name}: {out}"
        );
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert!(
            !err.contains(&data.path().display().to_string()),
            "{name}: host paths leaked to the guest: {err}"
        );
        if backend.is_jetstream() {
            assert!(
                std::fs::read_dir(data.path()).map_or(true, |mut d| d.next().is_none()),
                "{name}: a queue on JetStream wrote local files"
            );
        }
    }
}
