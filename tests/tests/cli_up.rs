//! `mini up`: modules from Arcella deployment specs in one host process — a
//! producer and two worker replicas over a queue the producer's manifest
//! owns and the worker's manifest is granted — and a graceful stop by
//! SIGTERM that loses nothing acknowledged; and replicas sharing a journal,
//! their capabilities held, on every backend (`--backend`).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use mini_tests::backends::TestBackend;
use mini_tests::{guest_component, mini, mini_binary, os_args};

/// A deployment directory: the producer pushes `jobs` jobs (with dedup keys,
/// `pause_ms` apart), two workers take them until the queue is idle.
fn deployment(dir: &Path, jobs: u64, pause_ms: u64) {
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).expect("write");
    write(
        "producer.component.toml",
        "[component]\nname = \"producer\"\nversion = \"1.0.0\"\n\
         [component.capabilities.storage]\nqueues = [\"jobs\"]\n",
    );
    write(
        "worker.component.toml",
        "[component]\nname = \"worker\"\nversion = \"1.0.0\"\n\
         [component.capabilities.storage]\n\
         shared_queues = [{ name = \"jobs\", module = \"producer\" }]\n",
    );
    write(
        "producer.deployment.toml",
        &format!(
            "[deployment]\nmodule_id = \"producer@1.0.0\"\ngroup = \"g\"\nreplicas = 1\n\
             [deployment.mini]\nargs = [\"{jobs}\", \"--dedup\", \"--pause-ms\", \"{pause_ms}\"]\n"
        ),
    );
    write(
        "worker.deployment.toml",
        "[deployment]\nmodule_id = \"worker@1.0.0\"\ngroup = \"g\"\nreplicas = 2\n\
         [deployment.mini]\n\
         args = [\"0\", \"--until-idle\", \"--idle-ms\", \"6000\", \"--lease-ms\", \"2000\"]\n",
    );
}

/// `mini up DIR --components <the built guests> --data DATA`.
fn up_args(dir: &Path, data: &Path) -> Vec<std::ffi::OsString> {
    let components: PathBuf = guest_component("producer")
        .parent()
        .expect("the components' directory")
        .to_path_buf();
    os_args!["up", dir, "--components", components, "--data", data]
}

/// The job numbers of `<word> <id> <n>…` lines.
fn jobs(stdout: &str, word: &str) -> Vec<u64> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix(word))
        .filter_map(|rest| rest.split_whitespace().nth(1))
        .map(|n| n.parse().expect("a job number"))
        .collect()
}

fn queue_is_empty(data: &Path) {
    let (code, out, err) = mini(os_args![
        "queue", "stats", "producer", "jobs", "--data", data
    ]);
    assert_eq!(code, 0, "{err}");
    for key in ["ready", "leased", "delayed", "dead"] {
        assert!(
            out.lines().any(|l| l == format!("{key} 0")) || out.contains(&format!("\"{key}\":0")),
            "{key} is not 0:\n{out}"
        );
    }
}

#[test]
fn a_producer_and_two_worker_replicas_process_every_job_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("tempdir");
    deployment(dir.path(), 60, 1);
    let (code, out, err) = mini(up_args(dir.path(), data.path()));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains("3 instance(s)"), "{err}");
    for instance in ["producer@1.0.0 #0", "worker@1.0.0 #0", "worker@1.0.0 #1"] {
        assert!(err.contains(&format!("{instance}: exited with 0")), "{err}");
    }
    let mut done = jobs(&out, "done ");
    done.sort_unstable();
    assert_eq!(
        done,
        (1..=60).collect::<Vec<u64>>(),
        "each job done once:\n{out}"
    );
    queue_is_empty(data.path());
}

#[test]
fn sigterm_stops_every_instance_gracefully_and_a_restart_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("tempdir");
    const JOBS: u64 = 400;
    deployment(dir.path(), JOBS, 20);
    let mut child = Command::new(mini_binary())
        .args(up_args(dir.path(), data.path()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mini up starts");
    let stdout = child.stdout.take().expect("stdout");
    let (lines, got) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("a line");
            all.push_str(&line);
            all.push('\n');
            let _ = lines.send(line);
        }
        all
    });
    // In the middle: some jobs done, most not pushed yet.
    let mut done = 0;
    while done < 10 {
        let line = got
            .recv_timeout(Duration::from_secs(120))
            .expect("mini up makes progress");
        if line.starts_with("done ") {
            done += 1;
        }
    }
    // SIGTERM, not `Child::kill`'s SIGKILL: the graceful stop is under test.
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM)
        .expect("cannot signal mini up");
    let status = child.wait().expect("mini up ends");
    let first = reader.join().expect("the reader");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("stderr");
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("SIGTERM: stopping"), "{err}");
    assert!(!err.contains("trapped") && !err.contains("failed"), "{err}");
    let pushed_first: BTreeSet<u64> = jobs(&first, "pushed ").into_iter().collect();
    assert!(
        (pushed_first.len() as u64) < JOBS,
        "the producer was not stopped in the middle: {} pushed\n{err}\n{first}",
        pushed_first.len()
    );

    // Again, to the end: the producer pushes what it had not (its dedup
    // keys drop the rest), the workers take everything left.
    let (code, second, err) = mini(up_args(dir.path(), data.path()));
    assert_eq!(code, 0, "{second}\n{err}");
    let done: BTreeSet<u64> = jobs(&first, "done ")
        .into_iter()
        .chain(jobs(&second, "done "))
        .collect();
    // A worker prints `done` after its ack: the stop may come between the
    // two (printing is a host call too, refused once stopping), so each of
    // the two workers may have acked one job without a `done`. Such a job
    // is gone from the queue (checked below: it is empty), never lost to it.
    let unprinted: Vec<u64> = (1..=JOBS).filter(|job| !done.contains(job)).collect();
    assert!(
        unprinted.len() <= 2,
        "jobs pushed and never done (more than one unprinted ack per worker): {unprinted:?}"
    );
    for job in &unprinted {
        assert!(
            pushed_first.contains(job),
            "job {job} was not pushed before the stop, yet not done after the restart"
        );
    }
    queue_is_empty(data.path());
}

/// A deployment of the counter module: `replicas` instances adding 2 each to
/// the journal `counter` their manifest grants; and a module whose manifest
/// grants `tally` only, which opens `counter` too.
fn counters(dir: &Path, replicas: u32) {
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).expect("write");
    write(
        "counter.component.toml",
        "[component]\nname = \"counter\"\nversion = \"1.0.0\"\n\
         [component.capabilities.storage]\njournals = [\"counter\"]\n",
    );
    write(
        "counter.deployment.toml",
        &format!(
            "[deployment]\nmodule_id = \"counter@1.0.0\"\ngroup = \"g\"\nreplicas = {replicas}\n\
             [deployment.mini]\nargs = [\"2\"]\n"
        ),
    );
}

#[test]
fn mini_up_runs_the_replicas_on_every_backend() {
    let components = guest_component("counter")
        .parent()
        .expect("the components' directory")
        .to_path_buf();
    for backend in TestBackend::all() {
        let name = backend.name();
        let dir = tempfile::tempdir().expect("tempdir");
        let data = tempfile::tempdir().expect("tempdir");
        counters(dir.path(), 3);
        let mut args = os_args![
            "up",
            dir.path(),
            "--components",
            &components,
            "--data",
            data.path()
        ];
        args.extend(backend.flags().into_iter().map(Into::into));
        let (code, out, err) = mini(args);
        assert_eq!(code, 0, "{name}: {out}\n{err}");
        for replica in 0..3 {
            assert!(
                err.contains(&format!("counter@1.0.0 #{replica}: exited with 0")),
                "{name}: {err}"
            );
        }
        // One journal for the three: each replica read back its own
        // append and those before it (k of 3), the last to append all 3.
        let seen: Vec<u64> = out
            .lines()
            .map(|line| {
                (1..=3)
                    .find(|k| line == format!("total = {} (records: {k}, last seq: {k})", 2 * k))
                    .unwrap_or_else(|| panic!("{name}: not a count of 1 to 3 records: {line:?}"))
            })
            .collect();
        assert_eq!(seen.len(), 3, "{name}: {out}");
        assert_eq!(seen.iter().max(), Some(&3), "{name}: {out}");
        // The module's journal, run again as the module: it goes on.
        let mut run = os_args![
            "run",
            "--data",
            data.path(),
            "--manifest",
            dir.path().join("counter.component.toml")
        ];
        run.extend(backend.flags().into_iter().map(Into::into));
        run.extend(os_args![guest_component("counter"), "--", "1"]);
        let (code, out, err) = mini(run);
        assert_eq!(code, 0, "{name}: {out}\n{err}");
        assert_eq!(
            out.trim(),
            "total = 7 (records: 4, last seq: 4)",
            "{name}: {err}"
        );
        // Where it lives: under --data locally, nowhere there on JetStream.
        let journal = data.path().join("counter/journal/counter");
        assert_eq!(journal.is_dir(), !backend.is_jetstream(), "{name}");

        // A module granted another journal than the one it opens is
        // refused it on either backend, and nothing is made for it.
        let denied = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            denied.path().join("counter.component.toml"),
            "[component]\nname = \"tally\"\nversion = \"1.0.0\"\n\
             [component.capabilities.storage]\njournals = [\"tally\"]\n",
        )
        .expect("write");
        std::fs::write(
            denied.path().join("tally.deployment.toml"),
            "[deployment]\nmodule_id = \"tally@1.0.0\"\ngroup = \"g\"\nreplicas = 1\n",
        )
        .expect("write");
        let mut args = os_args![
            "up",
            denied.path(),
            "--components",
            &components,
            "--data",
            data.path()
        ];
        args.extend(backend.flags().into_iter().map(Into::into));
        let (code, out, err) = mini(args);
        assert_eq!(code, 1, "{name}: {out}\n{err}");
        assert!(
            err.contains("counter: ") && err.contains("access denied"),
            "{name}: {err}"
        );
        assert!(!data.path().join("tally/journal").exists(), "{name}");
        if let TestBackend::JetStream(server) = &backend {
            let exists = mini_tests::block_on(async {
                let js = mini_jetstream::JetStream::connect(
                    &server.url(),
                    mini_jetstream::JetStreamOptions::default(),
                )
                .await?;
                js.unit_exists("journal", "tally", "counter").await
            })
            .expect("the servers answer");
            assert!(!exists, "a stream was made for the refused journal");
        }
    }
}
