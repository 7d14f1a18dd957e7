//! Crash-point exploration on the examples that show why (issue 12): the
//! bank that commits a transfer as two mutations loses money at a crash
//! point and exploration names it; the bank that commits one batch passes.
//! The queue worker that acks before its work loses a job; the one that
//! acks after passes.

use std::collections::BTreeSet;

use mini_testing::{Exploration, PointResult, Report, Sandbox};
use mini_tests::{guest_component, mini};

fn explore(component: &str, exploration: &Exploration) -> Report {
    let sandbox = Sandbox::new(guest_component(component)).expect("a sandbox");
    exploration
        .run(&sandbox, &mut |_, _| {})
        .expect("the exploration runs")
}

fn failing_points(report: &Report) -> BTreeSet<(String, String)> {
    report
        .failures()
        .map(|p: &PointResult| {
            (
                p.storage_call
                    .as_ref()
                    .map_or_else(|| "?".into(), |c| c.to_string()),
                p.moment.clone().unwrap_or_default(),
            )
        })
        .collect()
}

const TRANSFER: [&str; 4] = ["transfer", "alice", "bob", "10"];

#[test]
fn exploration_finds_the_crash_point_that_loses_money_between_two_commits() {
    let report = explore(
        "bank-two-commits",
        &Exploration::crashes(&TRANSFER, &["check"]),
    );
    assert!(!report.passed(), "{}", report.to_json());
    assert!(
        report.without_crash.is_none(),
        "a transfer alone keeps the total"
    );
    assert_eq!(report.points.len() as u64, 2 * report.calls);
    assert!(report.points.iter().all(|p| p.reached));
    // The crash after the debit is durable and before the credit has any
    // effect: the same moment seen from the two calls around it.
    let commits: Vec<u64> = report
        .points
        .iter()
        .filter(|p| {
            p.storage_call
                .as_ref()
                .is_some_and(|c| c.function == "commit")
                && p.moment.as_deref() == Some("after-durable")
        })
        .map(|p| p.call)
        .collect();
    assert_eq!(commits.len(), 2, "a debit and a credit: {commits:?}");
    let failures: Vec<(u64, String)> = report
        .failures()
        .map(|p| (p.call, p.moment.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        failures,
        [
            (commits[0], "after-durable".to_owned()),
            (commits[1], "before-effect".to_owned()),
        ],
        "{}",
        report.to_json()
    );
    for failure in report.failures() {
        let call = failure.storage_call.as_ref().expect("the call");
        assert_eq!(call.to_string(), "state.commit(\"accounts\")");
        assert!(
            failure
                .check
                .stdout
                .contains("invariant broken: total is 190"),
            "{failure}"
        );
    }
}

#[test]
fn exploration_passes_the_bank_that_commits_one_batch() {
    let report = explore("bank", &Exploration::crashes(&TRANSFER, &["check"]));
    assert!(report.passed(), "{}", report.to_json());
    assert!(report.calls >= 2);
    assert!(report.points.iter().all(|p| p.reached && p.check.passed));
    assert!(
        report.points.iter().any(|p| p
            .storage_call
            .as_ref()
            .is_some_and(|c| c.function == "commit-batch")),
        "{}",
        report.to_json()
    );
}

#[test]
fn exploration_finds_the_job_a_worker_that_acks_first_loses() {
    let exploration = Exploration::crashes(&["work"], &["check", "3"]).setup(&["enqueue", "3"]);
    let report = explore("jobs-ack-first", &exploration);
    assert!(!report.passed(), "{}", report.to_json());
    let failing = failing_points(&report);
    assert!(
        failing.contains(&("queue.ack(\"jobs\")".into(), "after-durable".into())),
        "{failing:?}"
    );
    for (call, moment) in &failing {
        assert!(
            (call == "queue.ack(\"jobs\")" && moment == "after-durable")
                || (call == "store.append(\"done\")" && moment == "before-effect"),
            "only a crash between the ack and the work loses the job: {failing:?}"
        );
    }
    assert!(
        report
            .failures()
            .all(|p| p.check.stdout.contains("lost jobs"))
    );
}

#[test]
fn exploration_passes_the_worker_that_acks_after_its_work() {
    let exploration = Exploration::crashes(&["work"], &["check", "3"]).setup(&["enqueue", "3"]);
    let report = explore("jobs", &exploration);
    assert!(report.passed(), "{}", report.to_json());
    assert!(report.calls >= 3 * 3, "a pop, an append and an ack per job");
}

#[test]
fn the_same_seed_gives_the_same_sample_and_the_same_report() {
    let sampled = |seed: u64| {
        explore(
            "bank-two-commits",
            &Exploration::crashes(&TRANSFER, &["check"])
                .sample(3)
                .seed(seed),
        )
    };
    let first = sampled(5);
    assert_eq!(first.points.len(), 3);
    assert_eq!(first.to_json(), sampled(5).to_json());
    let others: Vec<Vec<u64>> = (6..10)
        .map(|seed| sampled(seed).points.iter().map(|p| p.call).collect())
        .collect();
    let mine: Vec<u64> = first.points.iter().map(|p| p.call).collect();
    assert!(
        others.iter().any(|o| *o != mine),
        "seeds pick other samples"
    );
}

#[test]
fn mini_test_crash_reports_the_failing_call_and_exits_1() {
    let buggy = guest_component("bank-two-commits");
    let (code, stdout, stderr) = mini([
        "test".as_ref(),
        "crash".as_ref(),
        buggy.as_os_str(),
        "--check".as_ref(),
        "check".as_ref(),
        "--".as_ref(),
        "transfer".as_ref(),
        "alice".as_ref(),
        "bob".as_ref(),
        "10".as_ref(),
    ]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("FAILED call")
            && stdout.contains("state.commit(\"accounts\"), after-durable"),
        "{stdout}"
    );
    assert!(stdout.contains("invariant broken"), "{stdout}");
    assert!(stdout.contains("2 of "), "{stdout}");

    let fixed = guest_component("bank");
    let args = |component: &std::path::Path, json: bool| {
        let mut args = vec![
            "test".into(),
            "crash".into(),
            component.as_os_str().to_owned(),
            "--check".into(),
            "check".into(),
        ];
        if json {
            args.push("--json".into());
        }
        args.extend(["--", "transfer", "alice", "bob", "10"].map(std::ffi::OsString::from));
        args
    };
    let (code, stdout, stderr) = mini(args(&fixed, false));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("ok: every check passed"), "{stdout}");

    let (code, stdout, stderr) = mini(args(&buggy, true));
    assert_eq!(code, 1, "{stderr}");
    let report: Report = serde_json::from_str(&stdout).expect("a JSON report");
    assert_eq!(report.failures().count(), 2);
    assert_eq!(report.points.len() as u64, 2 * report.calls);
}

#[test]
fn mini_test_faults_injects_the_fault_at_each_call() {
    let appender = guest_component("appender");
    let base = |fault: &str| -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = vec![
            "test".into(),
            "faults".into(),
            appender.as_os_str().to_owned(),
            "--fault".into(),
            fault.into(),
            "--check".into(),
            "events 0".into(),
            "--json".into(),
            "--".into(),
        ];
        args.extend(["events", "3", "--keep-going"].map(std::ffi::OsString::from));
        args
    };
    let (code, stdout, stderr) = mini(base("fsync-fails"));
    assert_eq!(
        code, 0,
        "the check only opens the journal: {stdout}{stderr}"
    );
    let report: Report = serde_json::from_str(&stdout).expect("a JSON report");
    assert_eq!(
        report.probe,
        mini_testing::Probe::Fault(mini_testing::Fault::FsyncFails)
    );
    assert_eq!(report.points.len() as u64, report.calls);
    let appends: Vec<&PointResult> = report
        .points
        .iter()
        .filter(|p| {
            p.storage_call
                .as_ref()
                .is_some_and(|c| c.function == "append")
        })
        .collect();
    assert_eq!(appends.len(), 3);
    for point in appends {
        assert!(point.reached, "an append syncs: {point}");
        assert_eq!(point.scenario_exit, "exit 1", "{point}");
        assert!(point.scenario_stdout.contains("error io:"), "{point}");
    }
    let (code, _, stderr) = mini(base("bogus"));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("unknown fault"), "{stderr}");
}
