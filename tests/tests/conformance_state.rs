//! The `state` and `snapshot` interfaces' behaviour, one source for every
//! backend (DESIGN.md, "Backends"): the same components, with the same
//! arguments, through `mini run` on the local engine and on NATS
//! JetStream, must print the same thing, run after run (so a later run
//! recovers the same state). The local engine's outcomes are checked on
//! their own in e2e_bad_input.rs and e2e_state.rs; here every other
//! backend must match them.

use mini_tests::backends::{TestBackend, comparable};
use mini_tests::guest_component;

/// One run of a scenario: the component and its arguments.
struct Step {
    component: &'static str,
    args: &'static [&'static str],
}

const fn step(component: &'static str, args: &'static [&'static str]) -> Step {
    Step { component, args }
}

/// Runs `steps` in order on `backend`, each a new process over one data
/// directory and namespace; returns each run's exit code and stdout.
fn outcomes(backend: &TestBackend, steps: &[Step]) -> Vec<(i32, String)> {
    let data = tempfile::tempdir().expect("tempdir");
    steps
        .iter()
        .map(|s| {
            let (code, out, err) = backend.run(
                data.path(),
                "conf",
                &guest_component(s.component),
                &[],
                s.args,
            );
            assert!(
                !err.contains(data.path().to_string_lossy().as_ref()),
                "{}: a host path reached the guest: {err}",
                backend.name()
            );
            assert!(!err.contains("panicked"), "{}: {err}", backend.name());
            (code, comparable(&out))
        })
        .collect()
}

/// Asserts every backend prints what the local engine prints for `steps`.
fn assert_conforms(steps: &[Step]) {
    let backends = TestBackend::all();
    let (local, others) = backends.split_first().expect("the local backend");
    let expected = outcomes(local, steps);
    for backend in others {
        let got = outcomes(backend, steps);
        for (i, (want, got)) in expected.iter().zip(&got).enumerate() {
            assert_eq!(
                want,
                got,
                "{}: run {} ({} {:?}) differs from the local engine's",
                backend.name(),
                i + 1,
                steps[i].component,
                steps[i].args
            );
        }
    }
}

#[test]
fn bad_state_and_snapshot_input_gets_the_same_answers_on_every_backend() {
    // Twice: the second run recovers what the first committed and checkpointed.
    assert_conforms(&[step("state-probe", &[]), step("state-probe", &[])]);
}

#[test]
fn a_state_manager_recovers_the_same_state_on_every_backend() {
    assert_conforms(&[
        step(
            "registry",
            &["install", "shop@1.0.0", "--description", "the shop"],
        ),
        step("registry", &["deploy", "shop@1.0.0", "shop-eu"]),
        step("registry", &["install", "shop@1.0.0"]),
        step(
            "registry",
            &["--checkpoint-every", "7", "bulk", "40", "--batch", "3"],
        ),
        step("registry", &["checkpoint"]),
        step("registry", &["bulk", "5"]),
        step("registry", &["checkpoint"]),
        step("registry", &["undeploy", "shop-eu"]),
        step("registry", &["uninstall", "shop@1.0.0"]),
        step("registry", &["list"]),
        step("registry", &["stats"]),
    ]);
}

#[test]
fn a_state_checkpointed_on_jetstream_is_compacted_and_recovers_its_tail() {
    for backend in TestBackend::all()
        .into_iter()
        .filter(TestBackend::is_jetstream)
    {
        let data = tempfile::tempdir().expect("tempdir");
        let registry = guest_component("registry");
        let run = |args: &[&str]| backend.run(data.path(), "conf", &registry, &[], args);
        for args in [
            &["bulk", "30"][..],
            &["checkpoint"],
            &["bulk", "4"],
            &["checkpoint"],
            &["bulk", "2"],
        ] {
            let (code, out, err) = run(args);
            assert_eq!(code, 0, "{args:?}: {out}{err}");
        }
        let (code, out, err) = run(&["stats"]);
        assert_eq!(code, 0, "{out}{err}");
        // Two snapshots kept (30 and 34): the journal keeps what the older
        // one does not cover, and a recovery replays what the newer does not.
        for line in [
            "seq 36",
            "checkpoint-seq 34",
            "records-since-checkpoint 2",
            "journal-first-seq 31",
            "recovered-snapshot 34",
            "replayed 2",
        ] {
            assert!(out.lines().any(|l| l == line), "no {line:?} in\n{out}");
        }
    }
}
