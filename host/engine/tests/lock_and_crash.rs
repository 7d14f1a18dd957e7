//! Real processes: the test binary runs itself as a child. One writer per
//! journal across processes, a lock the kernel releases when its holder is
//! killed, and no acknowledged record lost when a writer is SIGKILLed at a
//! random moment (batches whole, sequence numbers contiguous).

mod common;

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::path::Path;
use std::process::Stdio;

use common::*;
use mini_engine::{Journal, JournalError};

#[test]
#[ignore = "child process of a_locked_journal_is_refused_until_its_holder_dies"]
fn lock_child() {
    let Ok(dir) = std::env::var("MINI_LOCK_CHILD") else {
        return;
    };
    let journal = Journal::open(&dir).unwrap();
    journal.append(r#"{"by":"child"}"#).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "MINI-LOCKED").unwrap();
    out.flush().unwrap();
    // Hold the lock until killed (or until the parent closes stdin).
    let mut buf = String::new();
    let _ = std::io::stdin().read_line(&mut buf);
}

#[test]
fn a_locked_journal_is_refused_until_its_holder_dies() {
    let dir = tmp();
    let mut child = child_test(
        "lock_child",
        &[("MINI_LOCK_CHILD", dir.path().to_str().unwrap())],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    if next_line(&mut out, "MINI-LOCKED").is_none() {
        child_failed(child, "the child did not lock the journal");
    }
    let lock_path = dir.path().join("LOCK");
    for _ in 0..3 {
        match Journal::open(dir.path()) {
            Err(e @ JournalError::Locked { .. }) => {
                let JournalError::Locked { path } = &e else {
                    unreachable!()
                };
                assert_eq!(*path, lock_path);
                let shown = e.to_string();
                assert!(
                    shown.contains("locked") && shown.contains(&lock_path.display().to_string()),
                    "{shown}"
                );
            }
            other => panic!("open while another process holds the journal: {other:?}"),
        }
    }
    assert!(matches!(
        mini_engine::verify::repair(dir.path()),
        Err(JournalError::Locked { .. })
    ));
    // Reading without the lock works while it is held.
    let report = mini_engine::verify::verify(dir.path(), &mut |_, _| {}).unwrap();
    assert_eq!((report.records, report.damage), (1, None));

    kill(&mut child);
    let journal =
        Journal::open(dir.path()).expect("the kernel released the lock of the killed process");
    assert_eq!(read_all(&journal)[0].data, r#"{"by":"child"}"#);
    assert_eq!(journal.append("2").unwrap(), 2);
}

/// The record at `seq` of a unit of `n` records starting at `first`: every
/// record says which unit it belongs to, so a partial unit is detectable.
fn crash_record(seq: u64, first: u64, n: u64) -> String {
    format!(
        r#"{{"i":{seq},"b":{first},"n":{n},"pad":"{}"}}"#,
        "p".repeat((seq % 61) as usize)
    )
}

#[test]
#[ignore = "child process of killed_writers_lose_no_acknowledged_record"]
fn crash_child() {
    let Ok(dir) = std::env::var("MINI_CRASH_CHILD") else {
        return;
    };
    let var = |name: &str| std::env::var(name).unwrap().parse::<u64>().unwrap();
    let journal = Journal::open_with(&dir, small(var("MINI_CRASH_SEGMENT"))).unwrap();
    let mut rng = Rng::with_seed(var("MINI_CRASH_SEED"));
    let mut out = std::io::stdout().lock();
    writeln!(out, "MINI-OPEN {}", journal.next_seq()).unwrap();
    out.flush().unwrap();
    // Bounded, so that a parent that stops reading cannot hang forever.
    for _ in 0..20_000 {
        let first = journal.next_seq();
        let n = if rng.u64(0..=2) == 0 {
            rng.u64(1..=8)
        } else {
            1
        };
        let unit: Vec<String> = (first..first + n)
            .map(|seq| crash_record(seq, first, n))
            .collect();
        let last = if n == 1 && rng.u64(0..=1) == 0 {
            journal.append(&unit[0])
        } else {
            journal.append_batch(&unit)
        }
        .unwrap();
        assert_eq!(last, first + n - 1);
        writeln!(out, "MINI-ACK {last} {n}").unwrap();
        out.flush().unwrap();
    }
}

/// Checks the journal after a kill: contiguous from 1, every record the
/// pattern says, every unit whole, every acknowledged unit there. Returns
/// (next seq, bytes recovery dropped).
fn check_after_crash(dir: &Path, acked: &BTreeMap<u64, u64>) -> (u64, u64) {
    let journal = Journal::open(dir).expect("open after a crash");
    let dropped = journal.recovery().dropped_bytes;
    let mut units = BTreeMap::new();
    let mut expected_seq = 1;
    for entry in journal.read_from(0).unwrap() {
        let entry = entry.unwrap();
        assert_eq!(entry.seq, expected_seq, "seqs are not contiguous");
        expected_seq += 1;
        let v: serde_json::Value = serde_json::from_str(&entry.data).unwrap();
        let (first, n) = (v["b"].as_u64().unwrap(), v["n"].as_u64().unwrap());
        assert_eq!(
            entry.data,
            crash_record(entry.seq, first, n),
            "record {} damaged",
            entry.seq
        );
        *units.entry((first, n)).or_insert(0) += 1;
    }
    for (&(first, n), &count) in &units {
        assert_eq!(
            count, n,
            "the unit of {n} records from seq {first} is not whole"
        );
    }
    for (&last, &n) in acked {
        assert!(
            units.contains_key(&(last + 1 - n, n)),
            "acknowledged unit ending at {last} lost"
        );
    }
    (expected_seq, dropped)
}

#[test]
fn killed_writers_lose_no_acknowledged_record() {
    const ROUNDS: u64 = 100;
    const ROUNDS_PER_JOURNAL: u64 = 20;
    let seed = seed_from_env();
    eprintln!("seed {seed} (set MINI_TEST_SEED to replay)");
    let mut rng = Rng::with_seed(seed);
    let base = tmp();
    let (mut acks_total, mut torn, mut unacked, mut max_segments) = (0, 0, 0, 0);
    let mut dir = base.path().join("j0");
    let mut acked: BTreeMap<u64, u64> = BTreeMap::new();
    let mut next = 1;
    for round in 0..ROUNDS {
        if round % ROUNDS_PER_JOURNAL == 0 {
            dir = base.path().join(format!("j{round}"));
            acked.clear();
            next = 1;
        }
        // Mostly small segments, so that kills also land around rotations.
        let segment = if round % 4 == 3 {
            1 << 20
        } else {
            rng.u64(600..=3000)
        };
        let mut child = child_test(
            "crash_child",
            &[
                ("MINI_CRASH_CHILD", dir.to_str().unwrap()),
                ("MINI_CRASH_SEGMENT", &segment.to_string()),
                ("MINI_CRASH_SEED", &rng.u64(..).to_string()),
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        match next_line(&mut out, "MINI-OPEN ") {
            Some(line) => assert_eq!(
                line,
                format!("MINI-OPEN {next}"),
                "the child does not continue the journal"
            ),
            None => child_failed(child, "the child did not open the journal"),
        }
        let target = if rng.u64(0..=3) == 0 {
            rng.u64(1..=10)
        } else {
            rng.u64(1..=300)
        };
        let mut seen = 0;
        while seen < target {
            let Some(line) = next_line(&mut out, "MINI-ACK ") else {
                child_failed(child, "the child stopped appending");
            };
            let mut parts = line.split(' ').skip(1).map(|p| p.parse::<u64>().unwrap());
            let (last, n) = (parts.next().unwrap(), parts.next().unwrap());
            acked.insert(last, n);
            seen += 1;
        }
        kill(&mut child);
        // Acks the child printed before it died, not read yet, count too.
        while let Some(line) = next_line(&mut out, "MINI-ACK ") {
            let mut parts = line.split(' ').skip(1).map(|p| p.parse::<u64>().unwrap());
            acked.insert(parts.next().unwrap(), parts.next().unwrap());
            seen += 1;
        }
        acks_total += seen;
        let (after, dropped) = check_after_crash(&dir, &acked);
        let last_acked = acked.keys().next_back().copied().unwrap_or(0);
        assert!(after > last_acked);
        // Written but killed before its acknowledgement was printed.
        unacked += u64::from(after - 1 > last_acked);
        torn += u64::from(dropped > 0);
        max_segments = max_segments.max(segments(&dir).len());
        next = after;
    }
    eprintln!(
        "{ROUNDS} kills, {acks_total} acknowledged units checked, {unacked} kills left an unacknowledged unit, \
         {torn} torn tails cut, up to {max_segments} segments"
    );
    assert!(max_segments > 10, "the small segments never rotated much");
}
