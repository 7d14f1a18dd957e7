//! The JetStream backend's journals (mini-jetstream) on a three-node
//! cluster, R3 streams: a writer keeps appending while the stream's leader
//! is SIGKILLed (several rounds), while the whole cluster is SIGKILLed and
//! started again, and while a second writer on another client takes the
//! journal over. After each, the journal is read back and must hold every
//! acknowledged append at the seqs it was acknowledged at, with its data,
//! contiguous from seq 1, each append once and whole (a batch is all there
//! or not at all), and no record of a fenced writer after another's.
//!
//! The same once more through the real `mini run` process: the appender
//! guest on `--backend` (all three nodes) with `--replicas 3`, its stdout
//! read while it runs, the stream's leader SIGKILLed after some acks
//! (several rounds, single appends and batches in turn); acks must resume,
//! and the journal read back must hold every acknowledged call whole, once,
//! at its seqs, contiguous from 1.
//!
//! `MINI_JS_FAILOVER_ROUNDS` sets the number of leader kills of both
//! leader-kill tests (default 10 each). The checks of a journal read back
//! are `mini_tests::journal_check` and `mini_tests::appender_check`.
//! The tests print how long the writer stalled; they assert no timing, and
//! every wait is bounded. Without a `nats-server` binary they skip with a
//! loud `SKIPPED` line (they fail in CI instead).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use mini_jetstream::{JetStream, JetStreamOptions, JsError, JsJournal, read_all};
use mini_tests::appender_check::{Call, check_appender_journal};
use mini_tests::failover::{DEADLINE, kill_leader, locked, raw_context, rounds, stream_leader};
use mini_tests::journal_check::{Attempt, Summary, check_journal, record_data};
use mini_tests::nats::NatsCluster;
use mini_tests::{block_on, guest_component, mini_binary, runtime};

/// The namespace of every journal here.
const NS: &str = "failover";

/// The backend's options on the cluster: R3 streams, and an append that
/// keeps trying through an election for 30 s.
fn options() -> JetStreamOptions {
    JetStreamOptions {
        replicas: 3,
        retry_for: Duration::from_secs(30),
        ..JetStreamOptions::default()
    }
}

/// Every node's client URL, comma-separated: a client that fails over
/// between all three.
fn all_urls(cluster: &NatsCluster) -> String {
    cluster.urls().join(",")
}

// ---------------------------------------------------------------------------
// A writer that appends until told to stop.

/// What a writer has done so far.
#[derive(Debug, Default)]
struct WriterLog {
    attempts: Vec<Attempt>,
    /// Opens (after the handle failed) that failed.
    open_errors: Vec<String>,
    /// The handles it has used.
    handles: usize,
}

/// A task appending to one journal in bursts of one to three concurrent
/// appends on one handle (so they share round trips), singles and batches
/// of two to four records, each record saying which append it is. When the
/// handle fails (fenced, or an outcome it could not learn), it opens the
/// journal again and goes on.
struct Writer {
    name: String,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<WriterLog>>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    /// Starts writing `journal` (of `js`, named `name`) as writer `letter`.
    fn start(js: JetStream, name: &str, letter: char, journal: JsJournal) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(WriterLog {
            handles: 1,
            ..WriterLog::default()
        }));
        let task = runtime().spawn(write(
            js,
            name.to_owned(),
            letter,
            journal,
            stop.clone(),
            log.clone(),
        ));
        Writer {
            name: format!("writer {letter} of {name}"),
            stop,
            log,
            task,
        }
    }

    fn log(&self) -> MutexGuard<'_, WriterLog> {
        locked(&self.log)
    }

    /// Waits until `count` appends started at or after `since` are
    /// acknowledged; panics after [`DEADLINE`] with what the writer saw.
    fn wait_acked(&self, since: Instant, count: usize, what: &str) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            {
                let log = self.log();
                let acked = log
                    .attempts
                    .iter()
                    .filter(|a| a.started >= since && a.result.is_ok())
                    .count();
                if acked >= count {
                    return;
                }
                if Instant::now() > deadline || self.task.is_finished() {
                    let errors: Vec<String> = log
                        .attempts
                        .iter()
                        .filter_map(|a| a.result.as_ref().err())
                        .map(ToString::to_string)
                        .collect();
                    panic!(
                        "{}: only {acked} of {count} appends acknowledged {what} within \
                         {DEADLINE:?} (task finished: {}); {} errors, the last: {:?}; \
                         failed opens: {:?}",
                        self.name,
                        self.task.is_finished(),
                        errors.len(),
                        errors.iter().rev().take(3).collect::<Vec<_>>(),
                        log.open_errors.iter().rev().take(3).collect::<Vec<_>>(),
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the writer and waits (bounded) for its last appends; returns
    /// everything it did.
    fn stop(self) -> WriterLog {
        self.stop.store(true, Ordering::Release);
        let bound = options().retry_for * 2 + DEADLINE;
        let name = self.name.clone();
        block_on(async { tokio::time::timeout(bound, self.task).await })
            .unwrap_or_else(|_| panic!("{name} did not stop within {bound:?}"))
            .unwrap_or_else(|e| panic!("{name} panicked: {e}"));
        std::mem::take(&mut *locked(&self.log))
    }
}

async fn write(
    js: JetStream,
    name: String,
    letter: char,
    mut journal: JsJournal,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<WriterLog>>,
) {
    let mut generation = 0;
    let mut w = 0u64;
    let mut burst = 0u64;
    while !stop.load(Ordering::Acquire) {
        burst += 1;
        let handle = format!("{letter}{generation}");
        let mut appends = tokio::task::JoinSet::new();
        for _ in 0..burst % 3 + 1 {
            w += 1;
            // Singles and batches of 2, 3 and 4, in turn.
            let n = match w % 4 {
                0 | 2 => 1,
                1 => 3,
                _ => 2 + (w / 4 % 3) as usize,
            };
            let records: Vec<String> = (0..n).map(|i| record_data(&handle, w, i, n)).collect();
            let journal = journal.clone();
            let handle = handle.clone();
            appends.spawn(async move {
                let started = Instant::now();
                let result = if n == 1 {
                    journal.append(records[0].clone()).await
                } else {
                    journal.append_batch(records.clone()).await
                };
                Attempt {
                    handle,
                    w,
                    records,
                    started,
                    finished: Instant::now(),
                    result,
                }
            });
        }
        while let Some(done) = appends.join_next().await {
            let attempt = done.expect("an append task panicked");
            locked(&log).attempts.push(attempt);
        }
        if journal.is_failed() {
            loop {
                if stop.load(Ordering::Acquire) {
                    return;
                }
                match js.open_journal(NS, &name).await {
                    Ok(again) => {
                        journal = again;
                        generation += 1;
                        locked(&log).handles += 1;
                        break;
                    }
                    Err(e) => {
                        locked(&log).open_errors.push(e.to_string());
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    }
}

/// Reads journal `name` back on a new client and handle and checks it
/// against `attempts` ([`check_journal`]); panics with what is wrong.
fn read_and_check(
    cluster: &NatsCluster,
    name: &str,
    attempts: &[Attempt],
    failed_absent: bool,
) -> Summary {
    let records = read_journal(cluster, NS, name);
    match check_journal(&records, attempts, failed_absent) {
        Ok(summary) => {
            assert!(summary.acked > 0, "{name}: nothing was acknowledged");
            summary
        }
        Err(e) => panic!(
            "{name}: {e}\n{} records read back; {} appends made",
            records.len(),
            attempts.len()
        ),
    }
}

/// Journal `name` of `namespace`, read back whole on a new client and
/// handle: (seq, data) of every record. Panics if it cannot be read or the
/// stream's last seq is not the last record's.
fn read_journal(cluster: &NatsCluster, namespace: &str, name: &str) -> Vec<(u64, String)> {
    block_on(async {
        let js = JetStream::connect(&all_urls(cluster), options()).await?;
        let journal = js.open_journal(namespace, name).await?;
        let records = read_all(&journal).await?;
        assert_eq!(
            journal.last_seq(),
            records.len() as u64,
            "{namespace}/{name}: the stream's last seq and the records read back"
        );
        anyhow::Ok(records)
    })
    .unwrap_or_else(|e| panic!("{namespace}/{name}: cannot read the journal back: {e:#}"))
}

/// The longest time between two consecutive acknowledgements in `attempts`
/// (how long the writer was stalled at worst) and the longest append.
fn stalls(attempts: &[Attempt]) -> (Duration, Duration) {
    let mut acks: Vec<Instant> = attempts
        .iter()
        .filter(|a| a.result.is_ok())
        .map(|a| a.finished)
        .collect();
    acks.sort();
    let gap = acks
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    let longest = attempts
        .iter()
        .map(|a| a.finished - a.started)
        .max()
        .unwrap_or_default();
    (gap, longest)
}

/// How long after `at` the first append started after it was acknowledged.
fn resumed_after(attempts: &[Attempt], at: Instant) -> Option<Duration> {
    attempts
        .iter()
        .filter(|a| a.started >= at && a.result.is_ok())
        .map(|a| a.finished - at)
        .min()
}

// ---------------------------------------------------------------------------
// The tests.

#[test]
fn a_writer_survives_leader_kills_without_losing_duplicating_or_tearing() -> anyhow::Result<()> {
    let Some(mut cluster) = NatsCluster::start(3)? else {
        return Ok(());
    };
    let raw = raw_context(&cluster);
    let rounds = rounds();
    let started = Instant::now();
    for round in 1..=rounds {
        let name = format!("leader-kill-{round}");
        let js = block_on(JetStream::connect(&all_urls(&cluster), options()))?;
        let journal = block_on(js.open_journal(NS, &name))?;
        let stream = journal.stream_name().to_owned();
        let begun = Instant::now();
        let writer = Writer::start(js, &name, 'a', journal);
        writer.wait_acked(begun, 30, "before the kill");

        let (leader, killed, killed_at) = kill_leader(&mut cluster, &raw, &stream);
        writer.wait_acked(killed_at, 20, "after the leader was killed");
        let elected = stream_leader(&raw, &stream, Some(&leader));

        let restarted_at = Instant::now();
        cluster.restart(killed)?;
        let back_in = restarted_at.elapsed();
        writer.wait_acked(restarted_at, 10, "after the killed node came back");
        let log = writer.stop();

        let summary = read_and_check(&cluster, &name, &log.attempts, false);
        let (gap, longest) = stalls(&log.attempts);
        eprintln!(
            "round {round}/{rounds}: killed the leader {leader}, {elected} elected; appends \
             resumed {:?} after the kill; longest gap between acks {gap:?}, longest append \
             {longest:?}; {leader} back in {back_in:?}; {} appends acked ({} records), \
             errors {:?} ({} stored, {} not), {} handles; round {:?}",
            resumed_after(&log.attempts, killed_at).unwrap_or_default(),
            summary.acked,
            summary.acked_records,
            summary.errors,
            summary.failed_present,
            summary.failed_absent,
            log.handles,
            begun.elapsed(),
        );
    }
    eprintln!("{rounds} rounds in {:?}", started.elapsed());
    Ok(())
}

#[test]
fn a_restart_of_the_whole_cluster_loses_no_acknowledged_append() -> anyhow::Result<()> {
    let Some(mut cluster) = NatsCluster::start(3)? else {
        return Ok(());
    };
    let name = "whole-cluster";
    let js = block_on(JetStream::connect(&all_urls(&cluster), options()))?;
    let journal = block_on(js.open_journal(NS, name))?;
    let begun = Instant::now();
    let writer = Writer::start(js, name, 'a', journal);
    writer.wait_acked(begun, 100, "before the kill");

    for i in 0..cluster.len() {
        cluster.kill9(i);
    }
    // From here on, all three are dead and reaped.
    let killed_at = Instant::now();
    let acked_before: usize = writer
        .log()
        .attempts
        .iter()
        .filter(|a| a.result.is_ok() && a.finished <= killed_at)
        .count();
    for i in 0..cluster.len() {
        assert!(!cluster.is_running(i), "{} was killed", cluster.name(i));
    }
    // All three again, each ready (a meta leader, its streams current)
    // once they make a quorum.
    cluster.restart_all()?;
    for i in 0..cluster.len() {
        assert!(
            cluster.is_running(i),
            "{} was started again",
            cluster.name(i)
        );
    }
    let back_in = killed_at.elapsed();
    let restarted_at = Instant::now();
    writer.wait_acked(restarted_at, 20, "after the cluster came back");
    let log = writer.stop();

    let summary = read_and_check(&cluster, name, &log.attempts, false);
    let (gap, longest) = stalls(&log.attempts);
    eprintln!(
        "whole cluster killed with {acked_before} appends acknowledged, back in {back_in:?}; \
         appends resumed {:?} after the kill; longest gap between acks {gap:?}, longest append \
         {longest:?}; {} appends acked ({} records), errors {:?} ({} stored, {} not), {} handles",
        resumed_after(&log.attempts, killed_at).unwrap_or_default(),
        summary.acked,
        summary.acked_records,
        summary.errors,
        summary.failed_present,
        summary.failed_absent,
        log.handles,
    );
    Ok(())
}

#[test]
fn two_writers_on_two_clients_are_fenced_and_never_interleave() -> anyhow::Result<()> {
    let Some(cluster) = NatsCluster::start(3)? else {
        return Ok(());
    };
    let urls = cluster.urls();
    let (a_urls, b_urls) = (
        urls.join(","),
        urls.iter().rev().cloned().collect::<Vec<_>>().join(","),
    );
    // Turn by turn: a writes, b opens and writes, a is fenced for good; a
    // opens again and writes, b is fenced.
    let name = "two-writers";
    let mut attempts = Vec::new();
    block_on(async {
        let a_js = JetStream::connect(&a_urls, options()).await?;
        let b_js = JetStream::connect(&b_urls, options()).await?;
        let mut w = 0;
        let mut append = |handle: &str, journal: &JsJournal, n: usize| {
            w += 1;
            let records: Vec<String> = (0..n).map(|i| record_data(handle, w, i, n)).collect();
            let (handle, journal, w) = (handle.to_owned(), journal.clone(), w);
            async move {
                let started = Instant::now();
                let result = journal.append_batch(records.clone()).await;
                Attempt {
                    handle,
                    w,
                    records,
                    started,
                    finished: Instant::now(),
                    result,
                }
            }
        };
        let a0 = a_js.open_journal(NS, name).await?;
        for n in [1, 3, 1] {
            let attempt = append("a0", &a0, n).await;
            assert!(attempt.result.is_ok(), "a0: {:?}", attempt.result);
            attempts.push(attempt);
        }
        let b0 = b_js.open_journal(NS, name).await?;
        assert_eq!(b0.last_seq(), 5, "b sees a's appends");
        for n in [1, 2] {
            let attempt = append("b0", &b0, n).await;
            assert!(attempt.result.is_ok(), "b0: {:?}", attempt.result);
            attempts.push(attempt);
        }
        for n in [1, 2, 1] {
            let attempt = append("a0", &a0, n).await;
            assert!(
                matches!(attempt.result, Err(JsError::Locked(_))),
                "the stale writer a0 is fenced: {:?}",
                attempt.result
            );
            assert!(a0.is_failed(), "a0 stays failed");
            attempts.push(attempt);
        }
        let attempt = append("b0", &b0, 1).await;
        assert_eq!(attempt.result, Ok(9), "b0 still writes");
        attempts.push(attempt);
        let a1 = a_js.open_journal(NS, name).await?;
        let attempt = append("a1", &a1, 2).await;
        assert_eq!(attempt.result, Ok(11), "a, opened again, writes");
        attempts.push(attempt);
        let attempt = append("b0", &b0, 1).await;
        assert!(
            matches!(attempt.result, Err(JsError::Locked(_))),
            "now b0 is fenced: {:?}",
            attempt.result
        );
        attempts.push(attempt);
        anyhow::Ok(())
    })?;
    let summary = read_and_check(&cluster, name, &attempts, true);
    assert_eq!(
        (summary.acked_records, summary.errors.get("Locked").copied()),
        (11, Some(4)),
        "{summary:?}"
    );

    // Both at once, flat out, each opening the journal again when fenced:
    // whatever interleaving of round trips the cluster sees, the journal
    // holds exactly what was acknowledged, one handle's run after another's.
    let name = "two-writers-racing";
    let (a_js, b_js) = block_on(async {
        anyhow::Ok((
            JetStream::connect(&a_urls, options()).await?,
            JetStream::connect(&b_urls, options()).await?,
        ))
    })?;
    let (a, b) = block_on(async {
        anyhow::Ok((
            a_js.open_journal(NS, name).await?,
            b_js.open_journal(NS, name).await?,
        ))
    })?;
    let begun = Instant::now();
    let writers = [
        Writer::start(a_js, name, 'a', a),
        Writer::start(b_js, name, 'b', b),
    ];
    let deadline = Instant::now() + DEADLINE;
    // Until both have been fenced at least once and 200 appends are acked.
    loop {
        let (acked, handles): (usize, Vec<usize>) = {
            let logs: Vec<_> = writers.iter().map(Writer::log).collect();
            (
                logs.iter()
                    .flat_map(|l| &l.attempts)
                    .filter(|a| a.result.is_ok())
                    .count(),
                logs.iter().map(|l| l.handles).collect(),
            )
        };
        if acked >= 200 && handles.iter().all(|&h| h > 1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after {DEADLINE:?}: {acked} appends acknowledged, handles per writer {handles:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut attempts = Vec::new();
    let mut handles = Vec::new();
    for writer in writers {
        let log = writer.stop();
        handles.push(log.handles);
        attempts.extend(log.attempts);
    }
    let summary = read_and_check(&cluster, name, &attempts, true);
    assert_eq!(
        summary.errors.keys().collect::<Vec<_>>(),
        ["Locked"],
        "the only error two writers meet is the fence: {summary:?}"
    );
    eprintln!(
        "two writers racing for {:?}: {} appends acked ({} records), {} fenced; handles {handles:?}",
        begun.elapsed(),
        summary.acked,
        summary.acked_records,
        summary.failed_absent
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// The same through `mini run`: the appender guest on the CLI's JetStream
// backend, as an operator runs it, its stream's leader killed mid-write.

/// The namespace of the `mini run` test's journals.
const RUN_NS: &str = "fo";

/// The calls of one appender run (single appends or batches).
const APPENDER_CALLS: u64 = 600;

/// A `mini run` of the appender guest on the cluster (a child process),
/// its stdout read line by line while it runs by a thread that stamps each
/// line with the time it read it. SIGKILLed on drop if still running.
struct AppenderRun {
    what: String,
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
    /// Every call reported so far, in order, with when its line was read.
    calls: Vec<(Instant, Call)>,
    /// The last line, `appended <count> last <seq> in <us> us`.
    appended: Option<String>,
    /// Lines that are none of those.
    other: Vec<String>,
    /// Whether its stdout is closed.
    eof: bool,
}

impl AppenderRun {
    /// Starts `mini run … appender -- name count [batch] --print-each
    /// --keep-going` on all three nodes, R3, no time limit (every wait
    /// on it here is bounded).
    fn start(
        cluster: &NatsCluster,
        data: &Path,
        name: &str,
        count: u64,
        batch: u64,
    ) -> AppenderRun {
        let mut command = Command::new(mini_binary());
        command
            .arg("run")
            .arg("--data")
            .arg(data)
            .args(["--namespace", RUN_NS, "--backend", &all_urls(cluster)])
            .args(["--replicas", "3", "--time-limit-ms", "0"])
            .arg(guest_component("appender"))
            .args(["--", name, &count.to_string()]);
        if batch > 1 {
            command.arg(batch.to_string());
        }
        command
            .args(["--print-each", "--keep-going"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let what = format!("{command:?}");
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        let stdout = child.stdout.take().expect("a piped stdout");
        let stderr = child.stderr.take().expect("a piped stderr");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        let errors = Arc::new(Mutex::new(String::new()));
        let into = errors.clone();
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut text = into.lock().unwrap_or_else(|e| e.into_inner());
                text.push_str(&line);
                text.push('\n');
            }
        });
        AppenderRun {
            what,
            child,
            lines,
            stderr: errors,
            stderr_reader: Some(stderr_reader),
            calls: Vec::new(),
            appended: None,
            other: Vec::new(),
            eof: false,
        }
    }

    fn take(&mut self, at: Instant, line: String) {
        if let Some(seq) = line.strip_prefix("ack ") {
            match seq.parse() {
                Ok(seq) => self.calls.push((at, Call::Acked(seq))),
                Err(_) => self.other.push(line),
            }
        } else if let Some(error) = line.strip_prefix("error ") {
            self.calls.push((at, Call::Failed(error.to_owned())));
        } else if line.starts_with("appended ") && self.appended.is_none() {
            self.appended = Some(line);
        } else {
            self.other.push(line);
        }
    }

    /// Reads its stdout until `done`; panics with what it printed if its
    /// stdout closes first or `deadline` passes.
    fn pump_until(&mut self, what: &str, deadline: Instant, done: impl Fn(&AppenderRun) -> bool) {
        if !self.pump_until_or_end(what, deadline, done) {
            panic!(
                "mini run: its stdout closed before {what}; {}",
                self.report()
            );
        }
    }

    /// Reads its stdout until `done` (true) or until it closes (false);
    /// panics with what it printed if `deadline` passes first.
    fn pump_until_or_end(
        &mut self,
        what: &str,
        deadline: Instant,
        done: impl Fn(&AppenderRun) -> bool,
    ) -> bool {
        loop {
            if done(self) {
                return true;
            }
            if self.eof {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                panic!(
                    "mini run: the deadline passed before {what}; {}",
                    self.report()
                );
            }
            match self.lines.recv_timeout(deadline - now) {
                Ok((at, line)) => self.take(at, line),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => self.eof = true,
            }
        }
    }

    /// The calls acknowledged so far.
    fn acks(&self) -> usize {
        self.acks_since(None)
    }

    /// The calls acknowledged (their line read) at or after `since`.
    fn acks_since(&self, since: impl Into<Option<Instant>>) -> usize {
        let since = since.into();
        self.calls
            .iter()
            .filter(|(at, call)| matches!(call, Call::Acked(_)) && since.is_none_or(|s| *at >= s))
            .count()
    }

    /// When the first ack at or after `since` was read.
    fn first_ack_since(&self, since: Instant) -> Option<Instant> {
        self.calls
            .iter()
            .find(|(at, call)| matches!(call, Call::Acked(_)) && *at >= since)
            .map(|(at, _)| *at)
    }

    /// What it printed to stderr so far.
    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The failed calls' messages.
    fn errors(&self) -> Vec<&str> {
        self.calls
            .iter()
            .filter_map(|(_, call)| match call {
                Call::Failed(e) => Some(e.as_str()),
                Call::Acked(_) => None,
            })
            .collect()
    }

    /// Reads its stdout to the end and waits for it to exit (and its
    /// stderr to be read); panics with what it printed if that takes past
    /// `deadline`.
    fn finish(&mut self, deadline: Instant) -> ExitStatus {
        self.pump_until("it ended", deadline, |r| r.eof);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    // Its stderr closed when it exited.
                    if let Some(reader) = self.stderr_reader.take() {
                        let _ = reader.join();
                    }
                    return status;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => panic!(
                    "mini run did not exit before the deadline ({other:?}); {}",
                    self.report()
                ),
            }
        }
    }

    /// What it has done, for a failure's message.
    fn report(&mut self) -> String {
        let status = self.child.try_wait();
        let errors = self.errors();
        format!(
            "{}\nexit status {status:?}; {} calls reported, {} acknowledged, {} failed \
             (the last: {:?}); final line {:?}; other lines {:?}; the last 40 lines of its \
             stderr:\n{}",
            self.what,
            self.calls.len(),
            self.acks(),
            errors.len(),
            errors.iter().rev().take(3).collect::<Vec<_>>(),
            self.appended,
            self.other.iter().take(10).collect::<Vec<_>>(),
            {
                let stderr = self.stderr();
                let lines: Vec<&str> = stderr.lines().collect();
                lines[lines.len().saturating_sub(40)..].join("\n")
            },
        )
    }
}

impl Drop for AppenderRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the appender (see [`AppenderRun::start`]) and reads its stdout
/// until it has 30 acks, the leader still untouched. Anything that ends
/// the run before (the open of its journal just after a node came back
/// among them: mini-jetstream retries those requests) fails the test.
fn start_appender(
    cluster: &NatsCluster,
    data: &Path,
    name: &str,
    count: u64,
    batch: u64,
) -> AppenderRun {
    let mut run = AppenderRun::start(cluster, data, name, count, batch);
    if run.pump_until_or_end("30 acks", Instant::now() + DEADLINE, |r| r.acks() >= 30) {
        return run;
    }
    let _ = run.finish(Instant::now() + DEADLINE);
    panic!("mini run ended before 30 acks; {}", run.report());
}

/// The replicas of stream `stream` as its configuration says.
fn stream_replicas(raw: &jetstream::Context, stream: &str) -> usize {
    block_on(async {
        let mut s = raw.get_stream(stream).await?;
        anyhow::Ok(s.info().await?.config.num_replicas)
    })
    .unwrap_or_else(|e| panic!("no info of the stream {stream}: {e:#}"))
}

#[test]
fn mini_run_appends_through_leader_kills_without_losing_duplicating_or_tearing()
-> anyhow::Result<()> {
    let Some(mut cluster) = NatsCluster::start(3)? else {
        return Ok(());
    };
    let raw = raw_context(&cluster);
    let data = tempfile::Builder::new().prefix("mini-fo-").tempdir()?;
    // Built (the first time) before any round starts.
    let _ = (mini_binary(), guest_component("appender"));
    let rounds = rounds();
    let started = Instant::now();
    for round in 1..=rounds {
        // Single appends and batches in turn: batches of 4, 7 and 10, each
        // run's last one a record short.
        let batch: u64 = if round % 2 == 1 {
            1
        } else {
            [4, 7, 10][(round / 2 - 1) % 3]
        };
        let count = APPENDER_CALLS * batch - u64::from(batch > 1);
        let name = format!("log-{round}");
        let stream = mini_jetstream::stream_name("mini", "journal", RUN_NS, &name).stream;
        let begun = Instant::now();
        let mut run = start_appender(&cluster, data.path(), &name, count, batch);
        let (leader, killed, killed_at) = kill_leader(&mut cluster, &raw, &stream);
        let acked_before = run.acks();
        // Appends resume once a new leader is elected (an append keeps
        // trying through the election). An ack counts as after the kill
        // when its line was read after it: the reader thread reads every
        // line as it comes, and the appender stalls through the election.
        run.pump_until(
            "20 acks after the leader was killed",
            killed_at + DEADLINE,
            |r| r.acks_since(killed_at) >= 20,
        );
        let resumed = run
            .first_ack_since(killed_at)
            .map(|at| at - killed_at)
            .unwrap_or_default();
        let elected = stream_leader(&raw, &stream, Some(&leader));

        let restarted_at = Instant::now();
        cluster.restart(killed)?;
        let back_at = Instant::now();
        let status = run.finish(Instant::now() + DEADLINE);
        let acked_after_restart = run.acks_since(back_at);

        // What it printed: a line per call, then the last acked seq; exit
        // status 1 exactly when a call failed.
        let errors: Vec<String> = run.errors().into_iter().map(str::to_owned).collect();
        let report = run.report();
        assert!(run.other.is_empty(), "unexpected output; {report}");
        let last_acked = run
            .calls
            .iter()
            .rev()
            .find_map(|(_, call)| match call {
                Call::Acked(seq) => Some(*seq),
                Call::Failed(_) => None,
            })
            .unwrap_or(0);
        let finale = format!("appended {count} last {last_acked} in ");
        assert!(
            run.appended
                .as_ref()
                .is_some_and(|l| l.starts_with(&finale)),
            "the appender's last line is not {finale:?}…; {report}"
        );
        assert_eq!(
            status.code(),
            Some(if errors.is_empty() { 0 } else { 1 }),
            "mini run's exit status, with {} failed calls; {report}",
            errors.len()
        );
        assert_eq!(stream_replicas(&raw, &stream), 3, "{stream}: --replicas 3");

        let records = read_journal(&cluster, RUN_NS, &name);
        let calls: Vec<Call> = run.calls.iter().map(|(_, call)| call.clone()).collect();
        let summary = check_appender_journal(&records, count, batch, &calls).unwrap_or_else(|e| {
            panic!(
                "{RUN_NS}/{name}: {e}\n{} records read back; {} calls, {} acknowledged; {report}",
                records.len(),
                calls.len(),
                run.acks()
            )
        });
        eprintln!(
            "mini run round {round}/{rounds}: {count} records in batches of {batch}; killed the \
             leader {leader} after {acked_before} acks, {elected} elected; acks resumed \
             {resumed:?} after the kill; {leader} back in {:?}, {acked_after_restart} acks \
             after; {} calls acked ({} records), {} failed ({} stored, {} not) {:?}; \
             {status}; round {:?}",
            back_at - restarted_at,
            summary.acked,
            summary.acked_records,
            errors.len(),
            summary.failed_present,
            summary.failed_absent,
            errors.iter().take(3).collect::<Vec<_>>(),
            begun.elapsed(),
        );
    }
    eprintln!("mini run: {rounds} rounds in {:?}", started.elapsed());
    Ok(())
}
