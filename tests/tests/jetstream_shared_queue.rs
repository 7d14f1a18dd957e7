//! Two hosts share one queue on a three-node JetStream cluster (R3): a
//! producer in one `mini run` process, workers in another, all on the queue
//! `jobs` of the namespace `broker` (`--grant-queue jobs=broker`).
//!
//! - Two workers in one process (`pop_wait`, `ack_next`) and a producer in
//!   another, started while they wait: every job is done, each under the one
//!   id it was pushed with (atomic batches of 7, with dedup keys: a second
//!   producer run stores nothing and gets the same ids), and the queue
//!   stream is empty after.
//! - A worker alone waiting on the queue's `wasi:io` pollable (`--poll`) in
//!   one process, the producer in another: the pollable wakes for pushes
//!   made by another host, and the worker does exactly its count.
//!
//! Without a `nats-server` binary it skips with a loud `SKIPPED` line (it
//! fails in CI instead). Every wait is bounded; no timing is asserted.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use mini_jetstream::stream_name;
use mini_tests::block_on;
use mini_tests::failover::raw_context;
use mini_tests::nats::NatsCluster;
use mini_tests::{guest_component, mini_binary};

/// How long a worker waits for a job before it takes the queue as drained.
const IDLE_MS: &str = "30000";

/// `mini run <flags> COMPONENT -- ARGS` on all three nodes, R3, the queue
/// `jobs` granted from `broker`, no time limit (every wait on it here is
/// bounded).
fn mini_run(
    cluster: &NatsCluster,
    data: &Path,
    flags: &[&str],
    component: &str,
    args: &[&str],
) -> Command {
    let mut command = Command::new(mini_binary());
    command
        .arg("run")
        .arg("--data")
        .arg(data)
        .args(["--backend", &cluster.urls().join(",")])
        .args(["--replicas", "3", "--time-limit-ms", "0"])
        .args(["--grant-queue", "jobs=broker"])
        .args(flags)
        .arg(guest_component(component));
    command
        .arg("--")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A `mini run` process with its stderr read line by line as it comes.
struct Running {
    child: Child,
    stderr_lines: mpsc::Receiver<String>,
    stderr_seen: String,
}

impl Running {
    fn start(mut command: Command) -> Running {
        let what = format!("{command:?}");
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        let stderr = child.stderr.take().expect("a piped stderr");
        let (send, stderr_lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            stderr_lines,
            stderr_seen: String::new(),
        }
    }

    /// Waits until `count` stderr lines contain `needle`.
    fn wait_for_stderr(&mut self, needle: &str, count: usize) {
        let mut seen = self.stderr_seen.matches(needle).count();
        while seen < count {
            let line = self
                .stderr_lines
                .recv_timeout(Duration::from_secs(120))
                .unwrap_or_else(|_| {
                    panic!(
                        "no {count} lines {needle:?} within 120 s; stderr:\n{}",
                        self.stderr_seen
                    )
                });
            if line.contains(needle) {
                seen += 1;
            }
            self.stderr_seen.push_str(&line);
            self.stderr_seen.push('\n');
        }
    }

    /// Waits for the process to end; returns (exit code, stdout, stderr).
    fn finish(mut self) -> (i32, String, String) {
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .expect("a piped stdout")
            .read_to_string(&mut out)
            .expect("stdout");
        let status = self.child.wait().expect("mini run ends");
        let mut err = self.stderr_seen;
        while let Ok(line) = self.stderr_lines.recv_timeout(Duration::from_secs(5)) {
            err.push_str(&line);
            err.push('\n');
        }
        (status.code().unwrap_or(-1), out, err)
    }
}

/// The jobs of `prefix` lines (`done <id> <n> …`, `pushed <id> <n>`), with
/// the ids each came under.
fn ids_by_job(out: &str, prefix: &str) -> BTreeMap<u64, BTreeSet<u64>> {
    let mut jobs: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for line in out.lines().filter_map(|l| l.strip_prefix(prefix)) {
        let mut words = line.split_whitespace();
        let id = words.next().and_then(|w| w.parse().ok());
        let job = words.next().and_then(|w| w.parse().ok());
        let (Some(id), Some(job)) = (id, job) else {
            panic!("not `{prefix}<id> <job>`: {line:?}");
        };
        jobs.entry(job).or_default().insert(id);
    }
    jobs
}

/// Every job of `from..=to` done, under the id it was pushed with.
fn assert_done(pushed: &str, done: &str, from: u64, to: u64) {
    let pushed = ids_by_job(pushed, "pushed ");
    let done = ids_by_job(done, "done ");
    let expected: Vec<u64> = (from..=to).collect();
    assert_eq!(
        pushed.keys().copied().collect::<Vec<_>>(),
        expected,
        "pushed"
    );
    assert_eq!(
        done.keys().copied().collect::<Vec<_>>(),
        expected,
        "every pushed job is done"
    );
    for (job, ids) in &done {
        assert_eq!(
            Some(ids),
            pushed.get(job),
            "job {job} is done under the ids it was pushed with"
        );
    }
}

/// The messages left in the queue stream of `jobs` in `broker`.
fn messages_left(cluster: &NatsCluster) -> u64 {
    let raw = raw_context(cluster);
    let stream = stream_name("mini", "queue", "broker", "jobs").stream;
    block_on(async {
        let mut stream = raw.get_stream(&stream).await?;
        anyhow::Ok(stream.info().await?.state.messages)
    })
    .expect("the queue stream's state")
}

#[test]
fn a_producer_and_workers_in_two_processes_share_one_queue_on_the_cluster() {
    let Some(cluster) = NatsCluster::start(3).expect("a cluster of three nodes") else {
        return;
    };
    let data = tempfile::tempdir().expect("tempdir");

    // Two workers in one process, waiting before any job is pushed.
    let second = guest_component("worker");
    let second = format!("{} 0 --until-idle --idle-ms {IDLE_MS}", second.display());
    let workers = mini_run(
        &cluster,
        data.path(),
        &["--with", &second],
        "worker",
        &["0", "--until-idle", "--idle-ms", IDLE_MS],
    );
    let mut workers = Running::start(workers);
    workers.wait_for_stderr("worker: waiting on queue jobs", 2);

    let producer = mini_run(
        &cluster,
        data.path(),
        &[],
        "producer",
        &["300", "--batch", "7", "--dedup"],
    );
    let (code, pushed, err) = Running::start(producer).finish();
    assert_eq!(code, 0, "producer:\n{pushed}\n{err}");
    // Started again, it pushes every batch again: its dedup keys store
    // nothing, and each job gets the id it got the first time.
    let again = mini_run(
        &cluster,
        data.path(),
        &[],
        "producer",
        &["300", "--batch", "7", "--dedup"],
    );
    let (code, pushed_again, err) = Running::start(again).finish();
    assert_eq!(code, 0, "producer again:\n{pushed_again}\n{err}");
    assert_eq!(
        ids_by_job(&pushed_again, "pushed "),
        ids_by_job(&pushed, "pushed "),
        "the same ids the second time"
    );

    let (code, done, err) = workers.finish();
    assert_eq!(code, 0, "workers:\n{done}\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_done(&pushed, &done, 1, 300);
    let by_worker: Vec<&str> = done
        .lines()
        .filter(|l| l.starts_with("processed "))
        .collect();
    assert_eq!(by_worker.len(), 2, "both workers ended: {done}");
    assert_eq!(messages_left(&cluster), 0, "the queue is drained");
}

#[test]
fn a_worker_waiting_on_the_pollable_wakes_for_another_hosts_pushes() {
    let Some(cluster) = NatsCluster::start(3).expect("a cluster of three nodes") else {
        return;
    };
    let data = tempfile::tempdir().expect("tempdir");
    let mut worker = Running::start(mini_run(
        &cluster,
        data.path(),
        &[],
        "worker",
        &["120", "--poll"],
    ));
    worker.wait_for_stderr("worker: waiting on queue jobs", 1);
    // Paced, so the worker waits on its pollable again and again.
    let producer = mini_run(
        &cluster,
        data.path(),
        &[],
        "producer",
        &["120", "--pause-ms", "10", "--dedup"],
    );
    let (code, pushed, err) = Running::start(producer).finish();
    assert_eq!(code, 0, "producer:\n{pushed}\n{err}");
    let (code, done, err) = worker.finish();
    assert_eq!(code, 0, "worker:\n{done}\n{err}");
    assert_done(&pushed, &done, 1, 120);
    assert!(done.contains("processed 120 nacked 0"), "{done}");
    assert_eq!(messages_left(&cluster), 0, "the queue is drained");
}
