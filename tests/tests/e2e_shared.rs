//! Two instances in one host process append to the same journal at the same
//! time: through the shared registry they use one handle (no lock error),
//! and the sequence numbers are unique and contiguous.

use std::collections::BTreeMap;
use std::sync::Arc;

use mini_host::MiniHost;
use mini_tests::{
    assert_contiguous, block_on, default_runner, guest_component, journal_dir, mini_ctx,
    read_journal, run_with,
};

#[test]
fn two_instances_append_to_one_journal_concurrently() {
    const EACH: u64 = 300;
    let appender = guest_component("appender");
    let runner = default_runner();
    let host = MiniHost::new();
    let data = tempfile::tempdir().expect("tempdir");
    // Compile before the race so both instances start together.
    mini_tests::load(&runner, &appender);

    let outputs = block_on(async {
        let spawn = |args: &'static [&'static str]| {
            let (runner, appender) = (Arc::clone(&runner), appender.clone());
            let mini = mini_ctx(&host, data.path(), "shared");
            tokio::spawn(async move { run_with(&runner, &appender, mini, args).await })
        };
        // One appends record by record, the other in batches of 7.
        let a = spawn(&["log", "300"]);
        let b = spawn(&["log", "300", "7"]);
        [a.await.expect("task a"), b.await.expect("task b")]
    });
    for out in &outputs {
        assert_eq!(out.exit_code(), 0, "stderr: {}", out.stderr);
        assert!(
            out.stdout.starts_with(&format!("appended {EACH} last ")),
            "{}",
            out.stdout
        );
    }
    assert_eq!(
        host.open_journals(),
        0,
        "the journal is closed after both runs"
    );

    let stored = read_journal(&journal_dir(data.path(), "shared", "log"));
    assert_eq!(stored.len() as u64, 2 * EACH);
    assert_contiguous(&stored);
    // Each instance's records 1..=EACH are there exactly once per instance.
    let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
    for entry in &stored {
        let value: serde_json::Value = serde_json::from_str(&entry.data).expect("JSON record");
        *seen.entry(value["i"].as_u64().expect("i")).or_default() += 1;
    }
    assert_eq!(seen.len() as u64, EACH);
    assert!(
        seen.values().all(|&n| n == 2),
        "every record of both instances is stored once"
    );
    // The last seq each instance saw is one of the stored ones, and the
    // larger one is the end of the journal.
    let lasts: Vec<u64> = outputs
        .iter()
        .map(|o| {
            let words: Vec<&str> = o.stdout.split_whitespace().collect();
            // appended <count> last <seq> in <us> us
            words[3].parse().expect("seq")
        })
        .collect();
    assert_eq!(lasts.iter().max().copied(), Some(2 * EACH));
}

#[test]
fn two_instances_sharing_a_journal_see_each_others_records() {
    let counter = guest_component("counter");
    let runner = default_runner();
    let host = MiniHost::new();
    let data = tempfile::tempdir().expect("tempdir");
    mini_tests::load(&runner, &counter);
    let outputs = block_on(async {
        let spawn = |by: &'static str| {
            let (runner, counter) = (Arc::clone(&runner), counter.clone());
            let mini = mini_ctx(&host, data.path(), "counter");
            tokio::spawn(async move { run_with(&runner, &counter, mini, &[by]).await })
        };
        let (a, b) = (spawn("1"), spawn("10"));
        [a.await.expect("task a"), b.await.expect("task b")]
    });
    for out in &outputs {
        assert_eq!(out.exit_code(), 0, "stderr: {}", out.stderr);
    }
    // Whichever ran its replay last saw both records.
    assert!(
        outputs
            .iter()
            .any(|o| o.stdout == "total = 11 (records: 2, last seq: 2)\n"),
        "{outputs:?}"
    );
}
