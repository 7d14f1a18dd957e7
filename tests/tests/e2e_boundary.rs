//! The guest boundary against a hostile guest (the `boundary-probe`
//! example): every resource it can consume is bounded — disk (opens
//! count), host memory (lists capped by bytes, listeners removed, pollables
//! counted), time (limits hold inside waiting calls) — and hitting a bound
//! is an error variant or a stop with a clear message that loses nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use mini_engine::queue::{Queue, QueueOptions};
use mini_host::runner::{RunError, RunnerConfig};
use mini_host::{MiniCtx, MiniHost};
use mini_tests::{block_on, cases, guest_component, mini, new_runner, os_args, run_with};

const NS: &str = "probe";

fn probe() -> std::path::PathBuf {
    guest_component("boundary-probe")
}

/// What `dir` and everything under it take on disk: allocated blocks
/// (directories included), as `du` counts.
fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(dir).expect("metadata");
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            total += disk_usage(&entry.expect("entry").path());
        }
    }
    total
}

/// The `key value…` fact lines the probe prints, by key.
fn fact<'a>(stdout: &'a str, key: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {key:?} line in:\n{stdout}"))
}

fn numbers(line: &str) -> Vec<u64> {
    line.split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

fn run_probe(mini: MiniCtx, args: &[&str]) -> mini_tests::RunOutput {
    block_on(run_with(
        &mini_tests::default_runner(),
        &probe(),
        mini,
        args,
    ))
}

#[test]
fn opening_names_counts_against_the_disk_quota() {
    const QUOTA: u64 = 1024 * 1024;
    for kind in ["journal", "state", "queue", "snapshots"] {
        let data = tempfile::tempdir().expect("tempdir");
        let mini = MiniCtx::builder(&MiniHost::new(), data.path(), NS)
            .disk_quota(QUOTA)
            .build()
            .expect("ctx");
        let out = run_probe(mini, &["open-many", kind, "5000"]);
        let opened = numbers(fact(&out.stdout, "opened"))[0];
        assert!(
            fact(&out.stdout, "first-error").starts_with("quota "),
            "{kind}: {}",
            out.stdout
        );
        assert!(opened > 0 && opened < 5000, "{kind}: opened {opened}");
        let used = disk_usage(&data.path().join(NS));
        // The namespace's directory itself and the module record are not
        // all the open's; a few blocks of slack.
        assert!(
            used <= QUOTA + 16 * 4096,
            "{kind}: {used} bytes on disk under a quota of {QUOTA}"
        );
    }
}

#[test]
fn a_queue_refuses_pushes_past_what_its_snapshot_can_hold() {
    let data = tempfile::tempdir().expect("tempdir");
    // 16 KiB payloads and a 2 MiB state limit: the queue's snapshot may take
    // 2 MiB (at least 64 payloads).
    let mini = MiniCtx::builder(&MiniHost::new(), data.path(), NS)
        .max_record_size(16 * 1024)
        .max_state_size(2 * 1024 * 1024)
        .build()
        .expect("ctx");
    let out = run_probe(mini, &["flood", "1000000"]);
    let found = cases(&out.stdout);
    assert!(found["flood"].starts_with("err quota"), "{}", out.stdout);
    assert!(found["flood"].contains("full"), "{}", found["flood"]);
    assert!(found["fill"].starts_with("err quota"), "{}", out.stdout);
    assert!(found["push-after-acks"].starts_with("ok"), "{}", out.stdout);
    let accepted = numbers(fact(&out.stdout, "accepted"))[0];
    let stats = fact(&out.stdout, "stats");
    let [ready, snapshot, limit] = numbers(stats)[..] else {
        panic!("{stats}");
    };
    assert_eq!(ready, accepted, "a refused batch added nothing");
    assert!(snapshot <= limit && limit == 2 * 1024 * 1024, "{stats}");
    assert!(stats.ends_with("checkpoint-error none"), "{stats}");
    // Everything accepted is there after a restart, and a checkpoint of it
    // works.
    let queue = Queue::open_with(
        data.path().join(NS).join("queue/flood"),
        QueueOptions {
            max_payload_size: 16 * 1024,
            max_snapshot_size: 2 * 1024 * 1024,
            ..QueueOptions::default()
        },
    )
    .expect("reopen");
    assert_eq!(queue.stats().ready, accepted - 100 + 1);
    queue.checkpoint().expect("a checkpoint fits");
}

#[test]
fn batch_pops_and_dead_letter_listings_are_capped_by_bytes() {
    let data = tempfile::tempdir().expect("tempdir");
    let mini = MiniCtx::builder(&MiniHost::new(), data.path(), NS)
        .build()
        .expect("ctx");
    let out = run_probe(mini, &["pop-batch-big", "20", "1000"]);
    assert!(
        cases(&out.stdout)["pop-batch-big"].starts_with("ok"),
        "{}",
        out.stdout
    );
    let [popped, bytes] = numbers(fact(&out.stdout, "popped"))[..] else {
        panic!("{}", out.stdout);
    };
    assert!((1..=4).contains(&popped), "popped {popped}");
    assert!(bytes <= 4 * 1024 * 1024, "{bytes} bytes in one reply");
    let [leased, ready] = numbers(fact(&out.stdout, "leased"))[..] else {
        panic!("{}", out.stdout);
    };
    assert_eq!(
        (leased, ready),
        (popped, 20 - popped),
        "only what was returned is leased"
    );

    let mini = MiniCtx::builder(&MiniHost::new(), data.path(), NS)
        .build()
        .expect("ctx");
    let out = run_probe(mini, &["dead-big", "24", "500"]);
    assert!(
        cases(&out.stdout)["dead-big"].starts_with("ok"),
        "{}",
        out.stdout
    );
    let [page, bytes] = numbers(fact(&out.stdout, "dead-page"))[..] else {
        panic!("{}", out.stdout);
    };
    assert!(
        (1..=8).contains(&page) && bytes <= 4 * 1024 * 1024,
        "{page} {bytes}"
    );
    assert_eq!(numbers(fact(&out.stdout, "dead-total")), [24]);
}

#[test]
fn a_dropped_pollable_leaves_no_listener_behind() {
    let data = tempfile::tempdir().expect("tempdir");
    let host = MiniHost::new();
    // Held by the test too, so the queue (and its listeners) outlives the run.
    let queue = host
        .open_queue(
            &data.path().join(NS).join("queue/watched"),
            QueueOptions::default(),
        )
        .expect("queue");
    let mini = MiniCtx::builder(&host, data.path(), NS)
        .build()
        .expect("ctx");
    let out = run_probe(mini, &["subscribe-many", "20000"]);
    assert_eq!(out.exit_code(), 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(fact(&out.stdout, "subscribed"), "20000");
    assert_eq!(queue.listener_count(), 0, "listeners of dropped pollables");
}

#[test]
fn pollables_count_against_the_handle_limit() {
    let data = tempfile::tempdir().expect("tempdir");
    let mini = MiniCtx::builder(&MiniHost::new(), data.path(), NS)
        .max_open_handles(16)
        .build()
        .expect("ctx");
    let out = run_probe(mini, &["hold-pollables", "100000"]);
    let Err(RunError::Trap(why)) = &out.exit else {
        panic!("not stopped: {:?}\n{}", out.exit, out.stdout);
    };
    assert!(why.contains("too many open handles"), "{why}");
    // The queue's handle and 15 pollables.
    let held = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("holding "))
        .count();
    assert_eq!(held, 15, "{}", out.stdout);
}

#[test]
fn the_time_limit_holds_inside_a_waiting_pop() {
    let runner = new_runner(RunnerConfig {
        time_limit: Some(Duration::from_secs(1)),
        ..RunnerConfig::default()
    });
    let data = tempfile::tempdir().expect("tempdir");
    let mini = MiniCtx::builder(&MiniHost::new(), data.path(), NS)
        .build()
        .expect("ctx");
    let started = Instant::now();
    let out = block_on(run_with(&runner, &probe(), mini, &["pop-wait", "60000"]));
    let took = started.elapsed();
    assert!(
        matches!(out.exit, Err(RunError::TimeLimit(_))),
        "{:?}\n{}",
        out.exit,
        out.stdout
    );
    assert!(out.stdout.contains("waiting"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("case pop-wait"),
        "the wait returned: {}",
        out.stdout
    );
    // Not a timing assertion: a wait that ran to its end would take 60 s.
    assert!(took < Duration::from_secs(30), "stopped after {took:?}");
}

#[test]
fn messages_say_what_happened() {
    let data = tempfile::tempdir().expect("tempdir");
    let mini = MiniCtx::builder(&MiniHost::new(), data.path(), NS)
        .build()
        .expect("ctx");
    let out = run_probe(mini, &["messages"]);
    let found = cases(&out.stdout);
    let twice = &found["state-twice"];
    assert!(
        twice.starts_with("err locked") && twice.contains("open already in this process"),
        "{twice}"
    );
    assert!(!twice.contains("another process"), "{twice}");
    assert!(
        found["state-after-drop"].starts_with("ok"),
        "{}",
        out.stdout
    );
    let wrong = &found["wrong-token"];
    assert!(
        wrong.starts_with("err stale-token") && wrong.contains("wrong lease token"),
        "{wrong}"
    );
    assert!(!wrong.contains("delivered again"), "{wrong}");
    assert!(
        found["stale-token"].contains("delivered again"),
        "{}",
        out.stdout
    );
}

#[test]
fn limit_flags_out_of_range_are_refused_before_anything_runs() {
    let data = tempfile::tempdir().expect("tempdir");
    for (flag, value) in [
        ("--max-record-kb", "18014398509481983"),
        ("--max-record-kb", "0"),
        ("--quota-mb", "18446744073709551615"),
        ("--quota-mb", "0"),
        ("--max-handles", "0"),
        ("--segment-kb", "18446744073709551615"),
        ("--memory-mb", "18446744073709551615"),
    ] {
        let (code, out, err) = mini(os_args![
            "run",
            probe(),
            "--data",
            data.path(),
            flag,
            value,
            "--",
            "open-many",
            "journal",
            "1"
        ]);
        assert_ne!(code, 0, "{flag} {value}: {out}{err}");
        assert!(err.contains(flag), "{flag} {value}: {err}");
        assert!(!out.contains("opened"), "{flag} {value} ran: {out}");
    }
    assert_eq!(
        std::fs::read_dir(data.path()).expect("data").count(),
        0,
        "nothing is created"
    );
}

#[test]
fn a_run_stopped_at_a_limit_says_what_it_wrote() {
    let data = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = mini(os_args![
        "run",
        probe(),
        "--data",
        data.path(),
        "--time-limit-ms",
        "500",
        "--",
        "pop-wait",
        "60000"
    ]);
    assert_eq!(code, 137, "{err}");
    // Its pop found nothing, and the pop-wait was stopped: no write.
    assert!(err.contains("wrote nothing"), "{err}");
    assert!(!err.contains("are on disk"), "{err}");
}
