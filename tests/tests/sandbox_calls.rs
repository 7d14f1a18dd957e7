//! The testing harness's crash points and faults on a real component (the
//! `appender` example): both crash moments are real, and each injected
//! fault reaches the guest as the engine's reaction to a real one would.

use mini_host::calls::CallMoment;
use mini_testing::{Fault, Plan, Sandbox};
use mini_tests::guest_component;

/// The `i` field of each record of journal `name`, in seq order.
fn record_numbers(sandbox: &Sandbox, name: &str) -> Vec<u64> {
    sandbox
        .journal(name)
        .expect("the journal reads back")
        .iter()
        .map(|e| {
            let value: serde_json::Value = serde_json::from_str(&e.data).expect("JSON");
            value["i"].as_u64().expect("an i field")
        })
        .collect()
}

/// The `ack …` and `error …` lines the appender printed.
fn outcomes(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|l| l.starts_with("ack ") || l.starts_with("error "))
        .collect()
}

/// The number of the `nth` (1-based) call of `function` in a run.
fn nth_call(run: &mini_testing::Run, function: &str, nth: usize) -> u64 {
    let index = run
        .calls
        .iter()
        .enumerate()
        .filter(|(_, c)| c.interface == "store" && c.function == function)
        .nth(nth - 1)
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("no call {nth} of store.{function} in {:?}", run.calls));
    index as u64 + 1
}

#[test]
fn a_run_records_its_calls_and_inspection_reads_what_it_stored() {
    let sandbox = Sandbox::new(guest_component("appender")).expect("a sandbox");
    let run = sandbox
        .run(&["events", "3", "--print-each"])
        .expect("it runs");
    assert!(run.succeeded(), "{run:?}");
    assert_eq!(
        run.stdout.lines().filter(|l| l.starts_with("ack ")).count(),
        3
    );
    let appends = run.calls.iter().filter(|c| c.function == "append").count();
    assert_eq!(appends, 3, "{:?}", run.calls);
    assert_eq!(run.call_count as usize, run.calls.len());
    assert!(
        run.calls
            .iter()
            .all(|c| c.interface == "store" && c.unit.as_deref() == Some("events")),
        "{:?}",
        run.calls
    );
    assert_eq!(record_numbers(&sandbox, "events"), [1, 2, 3]);
    // A second run finds the first one's records.
    assert!(sandbox.run(&["events", "2"]).expect("it runs").succeeded());
    let seqs: Vec<u64> = sandbox
        .journal("events")
        .expect("reads")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert!(sandbox.journal("never-opened").expect("empty").is_empty());
}

#[test]
fn both_crash_moments_are_real() {
    let sandbox = Sandbox::new(guest_component("appender")).expect("a sandbox");
    let args = ["events", "3", "--print-each"];
    let reference = sandbox.run(&args).expect("it runs");
    let second_append = nth_call(&reference, "append", 2);
    let saved = sandbox.save().expect("saved");
    for (moment, stored) in [
        (CallMoment::BeforeEffect, vec![1, 2, 3, 1]),
        (CallMoment::AfterDurable, vec![1, 2, 3, 1, 2]),
    ] {
        sandbox.restore(&saved).expect("restored");
        let run = sandbox
            .run_with(&args, &Plan::new().crash_at(second_append, moment))
            .expect("it runs");
        let point = run.crash_point().expect("it crashed");
        assert_eq!((point.call.function, point.moment), ("append", moment));
        assert_eq!(run.call_count, second_append, "nothing ran after the crash");
        // The guest never saw the second append's result, either way.
        assert_eq!(
            run.stdout.lines().collect::<Vec<_>>(),
            ["ack 4"],
            "{moment}"
        );
        assert_eq!(record_numbers(&sandbox, "events"), stored, "{moment}");
        // The next run (a new open over the same data) goes on from there.
        assert!(sandbox.run(&["events", "1"]).expect("it runs").succeeded());
        assert_eq!(
            sandbox.journal("events").expect("reads").len(),
            stored.len() + 1
        );
    }
}

#[test]
fn a_failed_fsync_gives_io_poisons_the_handle_and_keeps_only_what_was_acknowledged() {
    let sandbox = Sandbox::new(guest_component("appender")).expect("a sandbox");
    let args = ["events", "4", "--print-each", "--keep-going"];
    let start = sandbox.save().expect("saved");
    let reference = sandbox.run(&args).expect("it runs");
    assert!(reference.succeeded(), "{reference:?}");
    sandbox.restore(&start).expect("restored");
    let k = nth_call(&reference, "append", 2);
    let run = sandbox
        .run_with(&args, &Plan::new().fault_at(k, Fault::FsyncFails))
        .expect("it runs");
    assert_eq!(run.exit_code(), Some(1), "{run:?}");
    assert_eq!(run.faults.len(), 1);
    assert!(run.faults[0].fired, "{:?}", run.faults);
    let lines = outcomes(&run.stdout);
    assert_eq!(lines[0], "ack 1", "{lines:?}");
    assert!(lines[1].starts_with("error io:"), "{lines:?}");
    // Poisoned: every later append on the handle fails too.
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(
        lines[2..].iter().all(|l| l.starts_with("error ")),
        "{lines:?}"
    );
    // A new open sees record 1 and nothing of the failed call.
    assert_eq!(record_numbers(&sandbox, "events"), [1]);
    let next = sandbox
        .run(&["events", "1", "--print-each"])
        .expect("it runs");
    assert!(next.succeeded(), "{next:?}");
    assert_eq!(next.stdout.lines().next(), Some("ack 2"));
}

#[test]
fn a_full_disk_gives_quota_and_stores_nothing_of_the_call() {
    let sandbox = Sandbox::new(guest_component("appender")).expect("a sandbox");
    let args = ["events", "3", "--print-each", "--keep-going"];
    let start = sandbox.save().expect("saved");
    let reference = sandbox.run(&args).expect("it runs");
    sandbox.restore(&start).expect("restored");
    let k = nth_call(&reference, "append", 2);
    let run = sandbox
        .run_with(&args, &Plan::new().fault_at(k, Fault::DiskFull))
        .expect("it runs");
    assert!(run.faults[0].fired, "{:?}", run.faults);
    let lines = outcomes(&run.stdout);
    assert_eq!(lines[0], "ack 1", "{lines:?}");
    assert!(lines[1].starts_with("error quota:"), "{lines:?}");
    let stored = record_numbers(&sandbox, "events");
    assert!(
        !stored.contains(&2),
        "the failed append is not there: {stored:?}"
    );
    assert_eq!(stored[0], 1);
}

#[test]
fn the_same_seed_gives_the_same_faults_and_the_same_outcome() {
    let outcome = |seed: u64| {
        let sandbox = Sandbox::builder(guest_component("appender"))
            .seed(seed)
            .build()
            .expect("a sandbox");
        let args = ["events", "20", "--print-each", "--keep-going"];
        let plan = Plan::seeded_faults(seed, 22, 3);
        let run = sandbox.run_with(&args, &plan).expect("it runs");
        (
            plan,
            run.stdout,
            run.faults,
            record_numbers(&sandbox, "events"),
        )
    };
    let first = outcome(11);
    assert_eq!(first, outcome(11));
    assert_ne!(first.0, outcome(12).0);
    assert!(!first.2.is_empty(), "some faults came");
}

#[test]
fn no_injected_fault_shows_the_guest_a_host_path() {
    let sandbox = Sandbox::new(guest_component("appender")).expect("a sandbox");
    let args = ["events", "2", "--print-each", "--keep-going"];
    let start = sandbox.save().expect("saved");
    let calls = sandbox.run(&args).expect("it runs").call_count;
    let root = sandbox.data_root().to_string_lossy().into_owned();
    let mut fired = 0;
    for k in 1..=calls {
        for fault in Fault::ALL {
            sandbox.restore(&start).expect("restored");
            let run = sandbox
                .run_with(&args, &Plan::new().fault_at(k, fault))
                .expect("it runs");
            fired += run.faults.iter().filter(|f| f.fired).count();
            for text in [&run.stdout, &run.stderr] {
                assert!(
                    !text.contains(&root) && !text.contains("/tmp"),
                    "{fault} at call {k} shows a host path: {text}"
                );
            }
        }
    }
    assert!(fired >= calls as usize, "the faults fired");
}

#[test]
fn a_fault_of_a_call_the_run_never_finished_does_not_reach_the_next_run() {
    let sandbox = Sandbox::new(guest_component("appender")).expect("a sandbox");
    let args = ["events", "2", "--print-each"];
    let start = sandbox.save().expect("saved");
    let reference = sandbox.run(&args).expect("it runs");
    sandbox.restore(&start).expect("restored");
    let k = nth_call(&reference, "append", 1);
    // Armed before the call's effect, and the run stops right there.
    let plan = Plan::new()
        .fault_at(k, Fault::FsyncFails)
        .crash_at(k, CallMoment::BeforeEffect);
    let crashed = sandbox.run_with(&args, &plan).expect("it runs");
    assert!(crashed.crash_point().is_some());
    assert_eq!(crashed.faults.len(), 1, "{:?}", crashed.faults);
    assert!(!crashed.faults[0].fired, "the call did nothing");
    let next = sandbox.run(&args).expect("it runs");
    assert!(next.succeeded(), "no fault left armed: {next:?}");
    assert_eq!(record_numbers(&sandbox, "events"), [1, 2]);
}
