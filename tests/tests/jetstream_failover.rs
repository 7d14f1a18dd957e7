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
//! leader-kill tests (default 10 each).
//! The tests print how long the writer stalled; they assert no timing, and
//! every wait is bounded. Without a `nats-server` binary they skip with a
//! loud `SKIPPED` line (they fail in CI instead).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use mini_jetstream::{JetStream, JetStreamOptions, JsError, JsJournal, read_all};
use mini_tests::nats::NatsCluster;
use mini_tests::{block_on, guest_component, mini_binary, runtime};

/// The bound on every wait of these tests (a leader election, appends
/// resuming, a node coming back): against a hang, not a timing requirement.
const DEADLINE: Duration = Duration::from_secs(60);

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

/// The number of leader kills of each leader-kill test.
fn rounds() -> usize {
    match std::env::var("MINI_JS_FAILOVER_ROUNDS") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("MINI_JS_FAILOVER_ROUNDS={v:?} is not a number")),
        _ => 10,
    }
}

/// Every node's client URL, comma-separated: a client that fails over
/// between all three.
fn all_urls(cluster: &NatsCluster) -> String {
    cluster.urls().join(",")
}

// ---------------------------------------------------------------------------
// What a writer did, and the check of a journal against it.

/// One append a writer made, and its outcome.
#[derive(Debug, Clone)]
struct Attempt {
    /// The journal handle that made it (writer letter and generation).
    handle: String,
    /// The writer's number for it, unique across its handles.
    w: u64,
    /// The records, in order (one for `append`).
    records: Vec<String>,
    started: Instant,
    finished: Instant,
    /// The last seq, as acknowledged, or the error.
    result: Result<u64, JsError>,
}

/// The data of record `i` of the `n` of append `w` of `handle`.
fn record_data(handle: &str, w: u64, i: usize, n: usize) -> String {
    serde_json::json!({ "h": handle, "w": w, "i": i, "n": n }).to_string()
}

/// What [`check_journal`] found.
#[derive(Debug, Default)]
struct Summary {
    acked: usize,
    acked_records: usize,
    /// Appends that returned an error and are in the journal (whole, once).
    failed_present: usize,
    /// Appends that returned an error and are not.
    failed_absent: usize,
    /// The errors seen, by kind.
    errors: BTreeMap<String, usize>,
}

/// An error's kind, for the summary.
fn kind(e: &JsError) -> &'static str {
    match e {
        JsError::Connect(_) => "Connect",
        JsError::Locked(_) => "Locked",
        JsError::Unknown { .. } => "Unknown",
        JsError::Full { .. } => "Full",
        JsError::TooLarge(_) => "TooLarge",
        JsError::BatchTooLong { .. } => "BatchTooLong",
        JsError::OutOfRange { .. } => "OutOfRange",
        JsError::Corrupt { .. } => "Corrupt",
        JsError::Server(_) => "Server",
    }
}

/// Checks a journal's whole contents (`records`, as read back) against
/// every append made to it:
///
/// - its seqs are contiguous from 1;
/// - every record is one that an append wrote, with exactly that data;
/// - every append in it is there whole, once, its records in order at
///   consecutive seqs (a batch is never torn, nothing is duplicated);
/// - every acknowledged append is there at exactly the seqs it was
///   acknowledged at;
/// - an append that returned an error is there (whole, once) or not; not
///   at all if `failed_absent`;
/// - each handle's records are one run: once another handle has appended
///   after it, a (stale, fenced) handle never appends again.
fn check_journal(
    records: &[(u64, String)],
    attempts: &[Attempt],
    failed_absent: bool,
) -> Result<Summary, String> {
    for (position, (seq, _)) in records.iter().enumerate() {
        if *seq != position as u64 + 1 {
            return Err(format!(
                "record {position} read back has seq {seq}: the seqs are not contiguous from 1"
            ));
        }
    }
    let mut by_id: HashMap<(String, u64), usize> = HashMap::new();
    for (index, attempt) in attempts.iter().enumerate() {
        if by_id
            .insert((attempt.handle.clone(), attempt.w), index)
            .is_some()
        {
            return Err(format!(
                "the test made two appends {}/{}",
                attempt.handle, attempt.w
            ));
        }
    }
    // Where each append's records are: (seq, index in the append).
    let mut found: HashMap<usize, Vec<(u64, usize)>> = HashMap::new();
    // The runs of one handle's records: (handle, first seq).
    let mut runs: Vec<(&str, u64)> = Vec::new();
    for (seq, data) in records {
        let value: serde_json::Value = serde_json::from_str(data)
            .map_err(|e| format!("seq {seq} holds {data:?}, not a record of the test: {e}"))?;
        let (Some(h), Some(w), Some(i)) = (
            value["h"].as_str(),
            value["w"].as_u64(),
            value["i"].as_u64(),
        ) else {
            return Err(format!(
                "seq {seq} holds {data:?}, not a record of the test"
            ));
        };
        let Some(&index) = by_id.get(&(h.to_owned(), w)) else {
            return Err(format!("seq {seq} holds {data:?}, which no append wrote"));
        };
        let attempt = &attempts[index];
        let i = i as usize;
        if attempt.records.get(i) != Some(data) {
            return Err(format!(
                "seq {seq} holds {data:?}, which append {h}/{w} did not write as its record {i}"
            ));
        }
        found.entry(index).or_default().push((*seq, i));
        match runs.last() {
            Some((last, _)) if *last == attempt.handle => {}
            _ => runs.push((&attempt.handle, *seq)),
        }
    }
    for (&index, places) in &found {
        let attempt = &attempts[index];
        let n = attempt.records.len();
        let indexes: Vec<usize> = places.iter().map(|&(_, i)| i).collect();
        let consecutive = places.windows(2).all(|p| p[1].0 == p[0].0 + 1);
        if indexes != (0..n).collect::<Vec<_>>() || !consecutive {
            return Err(format!(
                "append {}/{} of {n} records is in the journal as (seq, index) {places:?}: \
                 not whole, once, in order",
                attempt.handle, attempt.w
            ));
        }
    }
    let mut summary = Summary::default();
    for (index, attempt) in attempts.iter().enumerate() {
        let id = (attempt.handle.as_str(), attempt.w);
        let n = attempt.records.len() as u64;
        let present = found.get(&index);
        match &attempt.result {
            Ok(last) => {
                let expected: Vec<u64> = (last.saturating_sub(n) + 1..=*last).collect();
                let at: Option<Vec<u64>> = present.map(|p| p.iter().map(|&(seq, _)| seq).collect());
                if *last < n || at.as_ref() != Some(&expected) {
                    return Err(format!(
                        "append {}/{} of {n} records was acknowledged at seq {last} \
                         (seqs {expected:?}) but the journal holds it at {at:?} \
                         (the journal's last seq is {})",
                        id.0,
                        id.1,
                        records.len()
                    ));
                }
                summary.acked += 1;
                summary.acked_records += n as usize;
            }
            Err(e) => {
                *summary.errors.entry(kind(e).to_owned()).or_default() += 1;
                match present {
                    Some(places) if failed_absent => {
                        return Err(format!(
                            "append {}/{} failed ({e}) but the journal holds it at {places:?}",
                            id.0, id.1
                        ));
                    }
                    Some(_) => summary.failed_present += 1,
                    None => summary.failed_absent += 1,
                }
            }
        }
    }
    let mut seen_handles = HashMap::new();
    for &(handle, seq) in &runs {
        if let Some(earlier) = seen_handles.insert(handle, seq) {
            return Err(format!(
                "the handle {handle} wrote from seq {earlier}, then another handle, then {handle} \
                 again from seq {seq}: a stale writer's records after another's"
            ));
        }
    }
    Ok(summary)
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

fn locked(log: &Mutex<WriterLog>) -> MutexGuard<'_, WriterLog> {
    log.lock().unwrap_or_else(|e| e.into_inner())
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

/// A JetStream context straight on async-nats, for the streams' cluster
/// info.
fn raw_context(cluster: &NatsCluster) -> jetstream::Context {
    let urls = cluster.urls();
    block_on(async {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(2))
            .request_timeout(Some(Duration::from_secs(2)))
            .connect(urls)
            .await?;
        let mut js = jetstream::new(client);
        js.set_timeout(Duration::from_secs(2));
        anyhow::Ok(js)
    })
    .expect("a raw client of the cluster")
}

/// The stream's leader as its cluster info reports it, once it has one
/// other than `not`; panics after [`DEADLINE`].
fn stream_leader(raw: &jetstream::Context, stream: &str, not: Option<&str>) -> String {
    block_on(async {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let last;
            match raw.get_stream(stream).await {
                Ok(mut s) => match s.info().await {
                    Ok(info) => match info.cluster.as_ref().and_then(|c| c.leader.clone()) {
                        Some(leader) if Some(leader.as_str()) != not => return leader,
                        other => last = format!("leader {other:?}"),
                    },
                    Err(e) => last = e.to_string(),
                },
                Err(e) => last = e.to_string(),
            }
            assert!(
                Instant::now() < deadline,
                "the stream {stream} has no leader (other than {not:?}) after {DEADLINE:?}: {last}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
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

        let leader = stream_leader(&raw, &stream, None);
        let killed = cluster
            .index_of(&leader)
            .unwrap_or_else(|| panic!("the leader {leader:?} is no node of the cluster"));
        cluster.kill9(killed);
        // From here on, the node is dead and reaped.
        let killed_at = Instant::now();
        assert!(!cluster.is_running(killed), "{leader} was killed");
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

/// The appender's padding (guest/examples/appender/src/main.rs).
const APPENDER_PAD: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyzAB";

/// The appender's record `i`, exactly as it appends it.
fn appender_record(i: u64) -> String {
    format!(r#"{{"i":{i},"pad":"{APPENDER_PAD}"}}"#)
}

/// The calls an appender run of `count` records in batches of `batch`
/// makes (the last batch may be shorter).
fn call_count(count: u64, batch: u64) -> usize {
    count.div_ceil(batch) as usize
}

/// The records (their `i`) of call `call` (from 0) of that run.
fn call_records(call: usize, count: u64, batch: u64) -> std::ops::RangeInclusive<u64> {
    let first = call as u64 * batch + 1;
    first..=(first + batch - 1).min(count)
}

/// One call of the appender, as its stdout reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    /// `ack <seq>`: stored, its last record at `seq`.
    Acked(u64),
    /// `error <kind>: <message>`.
    Failed(String),
}

/// What [`check_appender_journal`] found.
#[derive(Debug, Default)]
struct RunSummary {
    acked: usize,
    acked_records: usize,
    /// Failed calls whose records are in the journal (whole, once).
    failed_present: usize,
    /// Failed calls whose records are not.
    failed_absent: usize,
}

/// Checks a journal's whole contents (`records`, as read back) against
/// what one appender run of `count` records in batches of `batch` printed,
/// `calls` in order:
///
/// - the run made as many calls as it should;
/// - its seqs are contiguous from 1;
/// - every record is one the appender wrote (record `i` of the run, with
///   exactly its data), each `i` once, in the order they were appended;
/// - every call is there whole or not at all (a batch is never torn);
/// - every acknowledged call is there, its last record at the seq it was
///   acknowledged at and the others just before.
fn check_appender_journal(
    records: &[(u64, String)],
    count: u64,
    batch: u64,
    calls: &[Call],
) -> Result<RunSummary, String> {
    let expected = call_count(count, batch);
    if calls.len() != expected {
        return Err(format!(
            "the appender reported {} calls for {count} records in batches of {batch}, not {expected}",
            calls.len()
        ));
    }
    for (position, (seq, _)) in records.iter().enumerate() {
        if *seq != position as u64 + 1 {
            return Err(format!(
                "record {position} read back has seq {seq}: the seqs are not contiguous from 1"
            ));
        }
    }
    // Where each record is: i -> seq.
    let mut seq_of: HashMap<u64, u64> = HashMap::new();
    let mut last_i = 0;
    for (seq, data) in records {
        let i = serde_json::from_str::<serde_json::Value>(data)
            .ok()
            .and_then(|value| value["i"].as_u64())
            .filter(|i| (1..=count).contains(i))
            .ok_or_else(|| format!("seq {seq} holds {data:?}, not a record of the run"))?;
        if *data != appender_record(i) {
            return Err(format!(
                "seq {seq} holds {data:?}, not the appender's record {i}"
            ));
        }
        if let Some(earlier) = seq_of.insert(i, *seq) {
            return Err(format!(
                "record i={i} is in the journal twice: at seq {earlier} and at seq {seq}"
            ));
        }
        if i < last_i {
            return Err(format!(
                "seq {seq} holds record i={i} after record i={last_i}: out of order"
            ));
        }
        last_i = i;
    }
    let mut summary = RunSummary::default();
    for (call, outcome) in calls.iter().enumerate() {
        let wrote = call_records(call, count, batch);
        let n = wrote.clone().count();
        let at: Vec<Option<u64>> = wrote.clone().map(|i| seq_of.get(&i).copied()).collect();
        let present = at.iter().flatten().count();
        let consecutive = at.windows(2).all(|w| match (w[0], w[1]) {
            (Some(a), Some(b)) => b == a + 1,
            _ => true,
        });
        if (present != 0 && present != n) || !consecutive {
            return Err(format!(
                "call {call} (records {wrote:?}, {outcome:?}) is in the journal at seqs {at:?}: \
                 not whole"
            ));
        }
        match outcome {
            Call::Acked(seq) => {
                let expected: Vec<Option<u64>> = (seq.saturating_sub(n as u64) + 1..=*seq)
                    .map(Some)
                    .collect();
                if *seq < n as u64 || at != expected {
                    return Err(format!(
                        "call {call} (records {wrote:?}) was acknowledged at seq {seq} \
                         but the journal holds its records at {at:?} (the journal's last seq \
                         is {})",
                        records.len()
                    ));
                }
                summary.acked += 1;
                summary.acked_records += n;
            }
            Call::Failed(_) if present == n => summary.failed_present += 1,
            Call::Failed(_) => summary.failed_absent += 1,
        }
    }
    Ok(summary)
}

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
        let leader = stream_leader(&raw, &stream, None);
        let killed = cluster
            .index_of(&leader)
            .unwrap_or_else(|| panic!("the leader {leader:?} is no node of the cluster"));
        cluster.kill9(killed);
        // From here on, the node is dead and reaped.
        let killed_at = Instant::now();
        assert!(!cluster.is_running(killed), "{leader} was killed");
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

// ---------------------------------------------------------------------------
// The check itself catches what it must (no server needed).

#[test]
fn the_journal_check_catches_lost_duplicated_torn_foreign_and_interleaved_records() {
    let now = Instant::now();
    let attempt = |handle: &str, w: u64, n: usize, result: Result<u64, JsError>| Attempt {
        handle: handle.to_owned(),
        w,
        records: (0..n).map(|i| record_data(handle, w, i, n)).collect(),
        started: now,
        finished: now,
        result,
    };
    let unknown = || JsError::Unknown {
        stream: "s".into(),
        waited_ms: 1,
        reason: "test".into(),
    };
    let stored = |attempts: &[&Attempt]| -> Vec<(u64, String)> {
        attempts
            .iter()
            .flat_map(|a| a.records.iter().cloned())
            .enumerate()
            .map(|(i, data)| (i as u64 + 1, data))
            .collect()
    };
    let one = attempt("a0", 1, 1, Ok(1));
    let batch = attempt("a0", 2, 3, Ok(4));
    let failed = attempt("a0", 3, 2, Err(unknown()));
    let attempts = vec![one.clone(), batch.clone(), failed.clone()];
    let good = stored(&[&one, &batch]);
    let summary = check_journal(&good, &attempts, false).expect("the journal as written");
    assert_eq!((summary.acked, summary.failed_absent), (2, 1));
    let with_failed = stored(&[&one, &batch, &failed]);
    let summary = check_journal(&with_failed, &attempts, false).expect("a failed append stored");
    assert_eq!(summary.failed_present, 1);

    let fails =
        |records: &[(u64, String)], attempts: &[Attempt], failed_absent: bool, what: &str| {
            let found = check_journal(records, attempts, failed_absent);
            assert!(found.is_err(), "the check misses {what}: {found:?}");
            eprintln!("{what}: {}", found.unwrap_err());
        };
    // An acknowledged append lost (the batch, or its last record).
    fails(&good[..1], &attempts, false, "a lost batch");
    fails(&good[..3], &attempts, false, "a torn acknowledged batch");
    // A failed batch stored in part.
    fails(&with_failed[..5], &attempts, false, "a torn failed batch");
    // A failed append stored where it must not be.
    fails(&with_failed, &attempts, true, "a fenced append stored");
    // An append stored twice.
    let twice = stored(&[&one, &batch, &failed, &failed]);
    fails(&twice, &attempts, false, "a duplicate");
    let twice = stored(&[&one, &one, &batch]);
    fails(
        &twice,
        &attempts,
        false,
        "an acknowledged append duplicated",
    );
    // Acknowledged at other seqs than it is stored at.
    let moved = vec![attempt("a0", 1, 1, Ok(2)), batch.clone()];
    fails(&good, &moved, false, "an ack at the wrong seq");
    // A gap, a seq not from 1, changed data, a record nobody wrote.
    let mut gap = good.clone();
    gap[2].0 = 9;
    fails(&gap, &attempts, false, "a gap");
    let shifted: Vec<(u64, String)> = good.iter().map(|(s, d)| (s + 1, d.clone())).collect();
    fails(&shifted, &attempts, false, "seqs not from 1");
    let mut changed = good.clone();
    changed[1].1 = changed[1].1.replace("\"i\":0", "\"i\":0,\"x\":1");
    fails(&changed, &attempts, false, "changed data");
    let mut foreign = good.clone();
    foreign.push((5, record_data("z9", 1, 0, 1)));
    fails(&foreign, &attempts, false, "a record no append wrote");
    // Records of a batch out of order.
    let mut swapped = good.clone();
    let (x, y) = (swapped[1].1.clone(), swapped[2].1.clone());
    swapped[1].1 = y;
    swapped[2].1 = x;
    fails(&swapped, &attempts, false, "a batch out of order");
    // A stale handle's record after another handle's.
    let b = attempt("b0", 1, 1, Ok(5));
    let stale = attempt("a0", 4, 1, Ok(6));
    let all = vec![one.clone(), batch.clone(), b.clone(), stale.clone()];
    fails(
        &stored(&[&one, &batch, &b, &stale]),
        &all,
        false,
        "a stale writer interleaved",
    );
    check_journal(&stored(&[&one, &batch, &b]), &all[..3], false).expect("one run per handle");
}

#[test]
fn the_appender_check_catches_lost_duplicated_torn_foreign_and_reordered_records() {
    // 10 records in batches of 4: calls of records 1..=4, 5..=8, 9..=10.
    let (count, batch) = (10, 4);
    let stored = |is: &[u64]| -> Vec<(u64, String)> {
        is.iter()
            .enumerate()
            .map(|(position, &i)| (position as u64 + 1, appender_record(i)))
            .collect()
    };
    let all: Vec<u64> = (1..=10).collect();
    let acked = [Call::Acked(4), Call::Acked(8), Call::Acked(10)];
    let summary = check_appender_journal(&stored(&all), count, batch, &acked)
        .expect("the journal as written");
    assert_eq!((summary.acked, summary.acked_records), (3, 10));
    // A failed call stored (its outcome was unknown) or not, whole.
    let failed = [
        Call::Acked(4),
        Call::Failed("io: unknown".into()),
        Call::Acked(6),
    ];
    let without: Vec<u64> = [1, 2, 3, 4, 9, 10].into();
    let summary = check_appender_journal(&stored(&without), count, batch, &failed)
        .expect("a failed batch not stored");
    assert_eq!((summary.acked, summary.failed_absent), (2, 1));
    let with = [
        Call::Acked(4),
        Call::Failed("io: unknown".into()),
        Call::Acked(10),
    ];
    let summary =
        check_appender_journal(&stored(&all), count, batch, &with).expect("a failed batch stored");
    assert_eq!(summary.failed_present, 1);
    let singles: Vec<Call> = (1..=10).map(Call::Acked).collect();
    check_appender_journal(&stored(&all), count, 1, &singles).expect("single appends");

    let fails = |records: &[(u64, String)], batch: u64, calls: &[Call], what: &str| {
        let found = check_appender_journal(records, count, batch, calls);
        assert!(found.is_err(), "the check misses {what}: {found:?}");
        eprintln!("{what}: {}", found.unwrap_err());
    };
    // An acknowledged call lost: the last batch, a batch's last record, a single.
    fails(&stored(&all[..8]), batch, &acked, "a lost batch");
    fails(
        &stored(&all[..9]),
        batch,
        &acked,
        "a torn acknowledged batch",
    );
    let mut lost = all.clone();
    lost.remove(4);
    fails(&stored(&lost), 1, &singles, "a lost single append");
    // A failed batch stored in part.
    fails(
        &stored(&[1, 2, 3, 4, 5, 6, 9, 10]),
        batch,
        &failed,
        "a torn failed batch",
    );
    // Duplicates: a single twice, a batch twice.
    let mut twice = all.clone();
    twice.insert(3, 3);
    fails(&stored(&twice), 1, &singles, "a duplicated single append");
    let twice: Vec<u64> = [1, 2, 3, 4, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10].into();
    fails(&stored(&twice), batch, &acked, "a duplicated batch");
    // Acknowledged at another seq than it is stored at.
    let moved = [Call::Acked(4), Call::Acked(9), Call::Acked(10)];
    fails(&stored(&all), batch, &moved, "an ack at the wrong seq");
    // Out of order, a gap, seqs not from 1, changed data, a foreign record.
    let mut swapped = all.clone();
    swapped.swap(5, 6);
    fails(&stored(&swapped), batch, &acked, "records out of order");
    let mut gap = stored(&all);
    gap[6].0 = 99;
    fails(&gap, batch, &acked, "a gap");
    let shifted: Vec<(u64, String)> = stored(&all)
        .into_iter()
        .map(|(seq, data)| (seq + 1, data))
        .collect();
    fails(&shifted, batch, &acked, "seqs not from 1");
    let mut changed = stored(&all);
    changed[2].1 = changed[2].1.replace("0123", "0124");
    fails(&changed, batch, &acked, "changed data");
    let mut foreign = stored(&all);
    foreign.push((11, appender_record(11)));
    fails(&foreign, batch, &acked, "a record the run did not write");
    let mut foreign = stored(&all);
    foreign.push((11, r#"{"x":1}"#.to_owned()));
    fails(&foreign, batch, &acked, "a record of another writer");
    // Fewer calls reported than the run makes.
    fails(&stored(&all), batch, &acked[..2], "a call not reported");
}
