//! The producer/worker pattern end to end, through the `mini` binary: the
//! `producer` and `worker` components share a queue the host grants them
//! (`--grant-queue jobs=broker`), in one process (`--with`); a second
//! process cannot open a queue the first holds (`locked`, nothing written);
//! a queue's messages, attempts and nacks survive from one run to the next.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mini_engine::queue::QueueState;
use mini_tests::{guest_component, mini_binary, read_journal};

/// How long one `mini run` may take before the test gives up on it
/// (compiling the components the first time is slow on a loaded machine).
const RUN_TIMEOUT: Duration = Duration::from_secs(300);
/// `--idle-ms` for workers expected to get their jobs: generous, so that
/// the producer's compilation in the same process never makes them give up.
const IDLE_MS: &str = "120000";

/// A child process killed when dropped (so a failing test leaves none).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one `mini run` printed.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn assert_ok(&self) {
        assert_eq!(
            self.code,
            Some(0),
            "the run failed\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
    }
}

/// Reads `pipe` to its end on a thread.
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

/// Runs `mini run <args>`, killing it after [`RUN_TIMEOUT`].
fn mini_run(args: &[OsString]) -> Run {
    let child = Command::new(mini_binary())
        .arg("run")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the mini binary starts");
    let mut child = Guard(child);
    let stdout = drain(child.0.stdout.take().expect("stdout"));
    let stderr = drain(child.0.stderr.take().expect("stderr"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait for mini") {
            break Some(status);
        }
        if start.elapsed() > RUN_TIMEOUT {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(child); // kills it if it is still running
    let run = Run {
        code: status.and_then(|s| s.code()),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    };
    assert!(
        status.is_some(),
        "mini run {args:?} did not end within {RUN_TIMEOUT:?}\n--- stdout\n{}\n--- stderr\n{}",
        run.stdout,
        run.stderr
    );
    run
}

fn os(s: impl AsRef<std::ffi::OsStr>) -> OsString {
    s.as_ref().to_os_string()
}

/// `--data <data> --grant-queue jobs=broker --time-limit-ms 300000`.
fn common(data: &Path) -> Vec<OsString> {
    vec![
        os("--data"),
        os(data),
        os("--grant-queue"),
        os("jobs=broker"),
        os("--time-limit-ms"),
        os("300000"),
    ]
}

fn producer() -> PathBuf {
    guest_component("producer")
}

fn worker() -> PathBuf {
    guest_component("worker")
}

/// `--with "<component> <args…>"` (the CLI splits it at spaces).
fn with(component: &Path, args: &str) -> [OsString; 2] {
    let component = component.to_str().expect("a UTF-8 path");
    assert!(!component.contains(' '), "--with splits at spaces");
    [os("--with"), os(format!("{component} {args}"))]
}

/// The granted queue's directory: `<data>/broker/queue/jobs`.
fn queue_dir(data: &Path) -> PathBuf {
    data.join("broker").join("queue").join("jobs")
}

/// The queue's state as on disk (read without its lock).
fn queue_state(data: &Path) -> QueueState {
    mini_engine::queue::inspect(&queue_dir(data))
        .expect("the queue's files read back")
        .0
}

/// The producer's `pushed <id> <n>` lines as (id, n), in order.
fn pushed(stdout: &str) -> Vec<(u64, u64)> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("pushed "))
        .map(|rest| {
            let (id, n) = rest.split_once(' ').expect("pushed <id> <n>");
            (id.parse().expect("id"), n.parse().expect("n"))
        })
        .collect()
}

/// One `done` or `nacked` line of the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Handled {
    id: u64,
    job: u64,
    attempt: u32,
}

/// The worker's `<verb> <id> <n> attempt <a>` lines for `verb`, in order.
fn handled(stdout: &str, verb: &str) -> Vec<Handled> {
    let prefix = format!("{verb} ");
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .map(|rest| {
            let words: Vec<&str> = rest.split(' ').collect();
            assert!(
                words.len() == 4 && words[2] == "attempt",
                "a {verb} line: {rest:?}"
            );
            Handled {
                id: words[0].parse().expect("id"),
                job: words[1].parse().expect("n"),
                attempt: words[3].parse().expect("attempt"),
            }
        })
        .collect()
}

/// Checks the pushes of jobs `1..=count`: one line each, distinct ids.
/// Returns job number by id.
fn check_pushed(stdout: &str, count: u64) -> BTreeMap<u64, u64> {
    let pushed = pushed(stdout);
    let jobs: Vec<u64> = pushed.iter().map(|&(_, n)| n).collect();
    assert_eq!(
        jobs,
        (1..=count).collect::<Vec<_>>(),
        "every job pushed once, in order:\n{stdout}"
    );
    let by_id: BTreeMap<u64, u64> = pushed.into_iter().collect();
    assert_eq!(by_id.len() as u64, count, "distinct ids:\n{stdout}");
    by_id
}

/// Checks that `done` holds every pushed job exactly once, with the job
/// number its id was pushed with.
fn check_done_once(done: &[Handled], by_id: &BTreeMap<u64, u64>, stdout: &str) {
    let mut seen = BTreeSet::new();
    for d in done {
        assert!(seen.insert(d.id), "message {} done twice:\n{stdout}", d.id);
        assert_eq!(
            by_id.get(&d.id),
            Some(&d.job),
            "message {} was pushed as another job:\n{stdout}",
            d.id
        );
    }
    assert_eq!(
        seen,
        by_id.keys().copied().collect(),
        "every pushed job is done:\n{stdout}"
    );
}

#[test]
fn producer_and_worker_share_a_granted_queue_in_one_process() {
    const JOBS: u64 = 60;
    let data = tempfile::tempdir().expect("tempdir");
    let mut args = vec![os(producer())];
    args.extend(common(data.path()));
    args.extend(with(&worker(), &format!("{JOBS} --idle-ms {IDLE_MS}")));
    args.extend([os("--"), os(JOBS.to_string())]);
    let run = mini_run(&args);
    run.assert_ok();

    let by_id = check_pushed(&run.stdout, JOBS);
    let done = handled(&run.stdout, "done");
    check_done_once(&done, &by_id, &run.stdout);
    assert!(
        done.iter().all(|d| d.attempt == 1),
        "no failures, so every job is done at its first delivery:\n{}",
        run.stdout
    );
    assert!(handled(&run.stdout, "nacked").is_empty());
    assert!(
        run.stdout
            .lines()
            .any(|l| l == format!("processed {JOBS} nacked 0")),
        "{}",
        run.stdout
    );

    // The queue lives in the owner's namespace only, and is empty.
    let state = queue_state(data.path());
    assert!(state.is_empty(), "the queue is empty: {state:?}");
    for ns in ["producer", "worker"] {
        assert!(
            !data.path().join(ns).join("queue").exists(),
            "the granted queue is not in the namespace {ns}"
        );
    }
}

#[test]
fn nacked_jobs_come_back_with_attempt_2_and_are_done() {
    nacked_jobs_come_back("");
}

/// The same with a worker that waits on the queue's `wasi:io` pollable
/// (`queue.subscribe`) instead of `pop-wait`: it starts waiting before the
/// producer's first push, and is woken by the pushes and by its own nacks.
#[test]
fn a_worker_waiting_on_the_queue_pollable_gets_every_job() {
    nacked_jobs_come_back("--poll");
}

fn nacked_jobs_come_back(worker_flags: &str) {
    const JOBS: u64 = 30;
    const FAIL_EVERY: u64 = 4;
    let data = tempfile::tempdir().expect("tempdir");
    let mut args = vec![os(producer())];
    args.extend(common(data.path()));
    args.extend(with(
        &worker(),
        format!("{JOBS} --fail-every {FAIL_EVERY} --idle-ms {IDLE_MS} {worker_flags}").trim_end(),
    ));
    // Pushed in atomic batches of 4 this time.
    args.extend([os("--"), os(JOBS.to_string()), os("--batch"), os("4")]);
    let run = mini_run(&args);
    run.assert_ok();

    let by_id = check_pushed(&run.stdout, JOBS);
    let done = handled(&run.stdout, "done");
    let nacked = handled(&run.stdout, "nacked");
    check_done_once(&done, &by_id, &run.stdout);

    // Every 4th first delivery is nacked: 7 of 30.
    assert_eq!(
        nacked.len() as u64,
        JOBS / FAIL_EVERY,
        "nacks:\n{}",
        run.stdout
    );
    let nacked_ids: BTreeSet<u64> = nacked.iter().map(|n| n.id).collect();
    assert_eq!(nacked_ids.len(), nacked.len(), "each job is nacked once");
    for n in &nacked {
        assert_eq!(n.attempt, 1, "only first deliveries are nacked");
        assert_eq!(by_id.get(&n.id), Some(&n.job));
    }
    // A nacked job comes back (attempt 2) and is done then; the others are
    // done at their first delivery.
    for d in &done {
        let expected = if nacked_ids.contains(&d.id) { 2 } else { 1 };
        assert_eq!(
            d.attempt, expected,
            "message {} done at attempt {}:\n{}",
            d.id, d.attempt, run.stdout
        );
    }
    let lines: Vec<&str> = run.stdout.lines().collect();
    for n in &nacked {
        let nack_at = lines
            .iter()
            .position(|l| *l == format!("nacked {} {} attempt 1", n.id, n.job))
            .expect("the nack line");
        let done_at = lines
            .iter()
            .position(|l| *l == format!("done {} {} attempt 2", n.id, n.job))
            .expect("the done line");
        assert!(nack_at < done_at, "redelivered after the nack");
    }
    assert!(
        lines.contains(&format!("processed {JOBS} nacked {}", JOBS / FAIL_EVERY).as_str()),
        "{}",
        run.stdout
    );

    let state = queue_state(data.path());
    assert!(state.is_empty(), "the queue is empty: {state:?}");
}

#[test]
fn a_second_process_gets_locked_and_writes_nothing() {
    let data = tempfile::tempdir().expect("tempdir");
    // Process A: a worker that holds the queue and waits (longer than one
    // host pop-wait call of 60 s, if it comes to that).
    let mut args = vec![os(worker())];
    args.extend(common(data.path()));
    args.extend([os("--"), os("1"), os("--idle-ms"), os("250000")]);
    let child = Command::new(mini_binary())
        .arg("run")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the mini binary starts");
    let mut a = Guard(child);
    let a_stdout = drain(a.0.stdout.take().expect("stdout"));
    let (lines_tx, lines_rx) = mpsc::channel();
    let a_stderr = BufReader::new(a.0.stderr.take().expect("stderr"));
    std::thread::spawn(move || {
        for line in a_stderr.lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    // Wait until A has opened the queue.
    let start = Instant::now();
    let mut a_said = Vec::new();
    loop {
        let left = RUN_TIMEOUT.saturating_sub(start.elapsed());
        match lines_rx.recv_timeout(left) {
            Ok(line) => {
                let open = line == "worker: waiting on queue jobs";
                a_said.push(line);
                if open {
                    break;
                }
            }
            Err(_) => panic!(
                "the worker never opened the queue (exit {:?}); stderr:\n{}",
                a.0.try_wait(),
                a_said.join("\n")
            ),
        }
    }

    // Process B: a producer on the same data directory and grant.
    let mut args = vec![os(producer())];
    args.extend(common(data.path()));
    args.extend([os("--"), os("5")]);
    let b = mini_run(&args);
    assert_ne!(b.code, Some(0), "the second process must fail: {b:?}");
    assert!(
        b.stderr.contains("locked"),
        "the error says the queue is locked: {}",
        b.stderr
    );
    assert!(
        pushed(&b.stdout).is_empty(),
        "nothing was pushed: {}",
        b.stdout
    );
    assert!(
        a.0.try_wait().expect("try_wait").is_none(),
        "A still held the queue while B ran"
    );

    drop(a); // kills the worker: the lock goes with its process
    let a_stdout = a_stdout.join().expect("stdout reader");
    assert!(
        handled(&a_stdout, "done").is_empty(),
        "A got no job: {a_stdout}"
    );
    let state = queue_state(data.path());
    assert!(state.is_empty(), "nothing was pushed: {state:?}");
    let records = read_journal(&queue_dir(data.path()).join("journal"));
    assert!(
        records.is_empty(),
        "nothing was written to the queue's journal: {records:?}"
    );
}

#[test]
fn a_queue_survives_from_one_run_to_the_next() {
    let data = tempfile::tempdir().expect("tempdir");
    let run = |component: PathBuf, component_args: &[&str]| {
        let mut args = vec![os(component)];
        args.extend(common(data.path()));
        args.push(os("--"));
        args.extend(component_args.iter().map(os));
        let run = mini_run(&args);
        run.assert_ok();
        run
    };

    // Run 1: five jobs pushed, nobody there to take them.
    let first = run(producer(), &["5"]);
    let by_id = check_pushed(&first.stdout, 5);
    let ids: Vec<u64> = by_id.keys().copied().collect();
    let state = queue_state(data.path());
    assert_eq!(state.len(), 5, "five messages on disk: {state:?}");
    assert_eq!(state.stats(u64::MAX).ready, 5);

    // Run 2: a worker does three, nacking every 2nd first delivery: jobs 1
    // and 3 are done, 2 and 4 nacked, 5 done. Jobs 2 and 4 stay, with one
    // attempt each.
    let second = run(worker(), &["3", "--fail-every", "2", "--idle-ms", "20000"]);
    let done = handled(&second.stdout, "done");
    let nacked = handled(&second.stdout, "nacked");
    let pairs = |h: &[Handled]| -> Vec<(u64, u64, u32)> {
        h.iter().map(|h| (h.id, h.job, h.attempt)).collect()
    };
    assert_eq!(
        pairs(&done),
        vec![(ids[0], 1, 1), (ids[2], 3, 1), (ids[4], 5, 1)],
        "FIFO order, first deliveries:\n{}",
        second.stdout
    );
    assert_eq!(
        pairs(&nacked),
        vec![(ids[1], 2, 1), (ids[3], 4, 1)],
        "{}",
        second.stdout
    );
    let state = queue_state(data.path());
    assert_eq!(state.len(), 2, "two messages left: {state:?}");
    for id in [ids[1], ids[3]] {
        let message = state.get(id).expect("a nacked message is still there");
        assert_eq!(message.attempts, 1, "its delivery counted: {message:?}");
    }

    // Run 3: the two nacked jobs come back, as second attempts.
    let third = run(worker(), &["2", "--idle-ms", "20000"]);
    assert_eq!(
        pairs(&handled(&third.stdout, "done")),
        vec![(ids[1], 2, 2), (ids[3], 4, 2)],
        "{}",
        third.stdout
    );
    assert!(queue_state(data.path()).is_empty());

    // Run 4: nothing left; the worker gives up after its idle time, with a
    // message and a failure status.
    let mut args = vec![os(worker())];
    args.extend(common(data.path()));
    args.extend([os("--"), os("1"), os("--idle-ms"), os("500")]);
    let fourth = mini_run(&args);
    assert_ne!(fourth.code, Some(0), "{fourth:?}");
    assert!(
        fourth.stderr.contains("no message for 500 ms"),
        "{}",
        fourth.stderr
    );
}
