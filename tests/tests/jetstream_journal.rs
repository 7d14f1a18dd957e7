//! The JetStream backend's journals (mini-jetstream) against a real
//! nats-server: seqs, atomic batches, cursors, fencing of a second writer,
//! limits, a SIGKILL of the server, and failover of an R3 stream.
//!
//! Without a `nats-server` binary these tests skip with a loud `SKIPPED`
//! line (they fail in CI instead).

use std::time::Duration;

use mini_jetstream::{JetStream, JetStreamOptions, JsError, JsJournal, MAX_BATCH, read_all};
use mini_tests::block_on;
use mini_tests::nats::NatsServer;

fn options() -> JetStreamOptions {
    JetStreamOptions {
        retry_for: Duration::from_secs(20),
        ..JetStreamOptions::default()
    }
}

fn seqs(records: &[(u64, String)]) -> Vec<u64> {
    records.iter().map(|(seq, _)| *seq).collect()
}

#[test]
fn a_journal_on_a_stream_keeps_mini_seqs_batches_and_cursors() -> anyhow::Result<()> {
    let Some(server) = NatsServer::start_single()? else {
        return Ok(());
    };
    block_on(async {
        let js = JetStream::connect(&server.url(), options()).await?;
        let journal = js.open_journal("shop", "orders.eu").await?;
        assert_eq!((journal.first_seq().await?, journal.last_seq()), (1, 0));
        assert_eq!(journal.append("1".into()).await?, 1);
        let batch: Vec<String> = (2..=5).map(|n| n.to_string()).collect();
        assert_eq!(journal.append_batch(batch).await?, 5);
        assert_eq!(
            journal.append_batch(Vec::new()).await?,
            5,
            "an empty batch writes nothing"
        );
        let all = read_all(&journal).await?;
        assert_eq!(seqs(&all), [1, 2, 3, 4, 5]);
        assert_eq!(all[3].1, "4");
        // A cursor sees records appended after it reached the end.
        let mut reader = journal.read_from(4).await?;
        let mut got = Vec::new();
        reader
            .next_records(10, 1 << 20, &mut |seq, _| got.push(seq))
            .await?;
        assert_eq!(got, [4, 5]);
        journal.append("6".into()).await?;
        got.clear();
        reader
            .next_records(10, 1 << 20, &mut |seq, _| got.push(seq))
            .await?;
        assert_eq!(got, [6]);
        // max and max_bytes cap a read, which still returns one record.
        let mut reader = journal.read_from(1).await?;
        got.clear();
        reader
            .next_records(2, 1 << 20, &mut |seq, _| got.push(seq))
            .await?;
        reader
            .next_records(10, 0, &mut |seq, _| got.push(seq))
            .await?;
        assert_eq!(got, [1, 2, 3]);
        // Another handle (a later process) reads the same journal.
        let again = js.open_journal("shop", "orders.eu").await?;
        assert_eq!(again.last_seq(), 6);
        // Another name, or the same name in another namespace, is another journal.
        let other = js.open_journal("shop_orders", "eu").await?;
        assert_eq!(other.last_seq(), 0);
        assert_ne!(other.stream_name(), journal.stream_name());
        assert_eq!(js.namespace_streams("shop").await?.0, 1);
        anyhow::Ok(())
    })
}

#[test]
fn ten_thousand_records_read_back_in_order_and_concurrent_appends_share_round_trips()
-> anyhow::Result<()> {
    let Some(server) = NatsServer::start_single()? else {
        return Ok(());
    };
    block_on(async {
        let js = JetStream::connect(&server.url(), options()).await?;
        let journal = js.open_journal("ns", "many").await?;
        for chunk in 0..10 {
            let batch = (0..1000)
                .map(|i| format!("{{\"n\":{}}}", chunk * 1000 + i))
                .collect();
            journal.append_batch(batch).await?;
        }
        // 16 appenders at once: every seq handed out once.
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let journal = journal.clone();
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    for i in 0..50 {
                        mine.push(journal.append(format!("[{t},{i}]")).await?);
                    }
                    Ok::<_, JsError>(mine)
                })
            })
            .collect();
        let mut acked = Vec::new();
        for task in tasks {
            acked.extend(task.await??);
        }
        acked.sort_unstable();
        assert_eq!(acked, (10_001..=10_800).collect::<Vec<u64>>());
        let all = read_all(&journal).await?;
        assert_eq!(seqs(&all), (1..=10_800).collect::<Vec<u64>>());
        assert_eq!(all[9_999].1, "{\"n\":9999}");
        anyhow::Ok(())
    })
}

#[test]
fn a_second_writer_is_fenced_and_nothing_interleaves() -> anyhow::Result<()> {
    let Some(server) = NatsServer::start_single()? else {
        return Ok(());
    };
    block_on(async {
        let js = JetStream::connect(&server.url(), options()).await?;
        let first = js.open_journal("ns", "one-writer").await?;
        first.append("\"a1\"".into()).await?;
        let second = js.open_journal("ns", "one-writer").await?;
        assert_eq!(second.append("\"b1\"".into()).await?, 2);
        // The first writer's view is stale: refused, and it stays refused.
        let err = first.append("\"a2\"".into()).await.expect_err("fenced");
        assert!(matches!(err, JsError::Locked(_)), "{err}");
        let err = first
            .append_batch(vec!["1".into(), "2".into()])
            .await
            .expect_err("still");
        assert!(matches!(err, JsError::Locked(_)), "{err}");
        assert_eq!(second.append("\"b2\"".into()).await?, 3);
        let all = read_all(&second).await?;
        let data: Vec<&str> = all.iter().map(|(_, d)| d.as_str()).collect();
        assert_eq!(data, ["\"a1\"", "\"b1\"", "\"b2\""]);

        // A stale batch reaching past where the other writer stopped: the
        // stream holds no message at its last seq, and that too is the fence
        // (not an outcome asked after for `retry_for`, then `Unknown`).
        let first = js.open_journal("ns", "one-writer-then-idle").await?;
        let second = js.open_journal("ns", "one-writer-then-idle").await?;
        assert_eq!(second.append("\"b1\"".into()).await?, 1);
        let err = first
            .append_batch(vec!["1".into(), "2".into(), "3".into()])
            .await
            .expect_err("fenced");
        assert!(matches!(err, JsError::Locked(_)), "{err}");
        let all = read_all(&second).await?;
        assert_eq!(seqs(&all), [1], "nothing of the stale batch is stored");
        anyhow::Ok(())
    })
}

#[test]
fn limits_refuse_without_losing_anything() -> anyhow::Result<()> {
    let Some(server) = NatsServer::start_single()? else {
        return Ok(());
    };
    block_on(async {
        let small = JetStreamOptions {
            max_stream_bytes: 64 * 1024,
            ..options()
        };
        let js = JetStream::connect(&server.url(), small).await?;
        let journal = js.open_journal("ns", "small").await?;
        let too_long = vec!["1".to_owned(); MAX_BATCH + 1];
        let err = journal.append_batch(too_long).await.expect_err("too long");
        assert!(matches!(err, JsError::BatchTooLong { .. }), "{err}");
        let big = format!("\"{}\"", "x".repeat(2 << 20));
        let err = journal.append(big).await.expect_err("above max_payload");
        assert!(matches!(err, JsError::TooLarge(_)), "{err}");
        // Fill the stream: the append past it is refused, the old ones stay.
        let record = format!("\"{}\"", "y".repeat(1000));
        let mut stored = 0u64;
        let err = loop {
            match journal.append(record.clone()).await {
                Ok(seq) => stored = seq,
                Err(e) => break e,
            }
            assert!(stored < 1000, "the stream never filled");
        };
        assert!(matches!(err, JsError::Full { .. }), "{err}");
        let batch = vec![record.clone(); 3];
        assert!(matches!(
            journal.append_batch(batch).await,
            Err(JsError::Full { .. })
        ));
        let all = read_all(&journal).await?;
        assert_eq!(seqs(&all), (1..=stored).collect::<Vec<u64>>());
        assert_eq!(journal.last_seq(), stored);
        anyhow::Ok(())
    })
}

#[test]
fn every_acked_append_survives_a_sigkill_of_the_server() -> anyhow::Result<()> {
    let Some(mut server) = NatsServer::start_single()? else {
        return Ok(());
    };
    let acked = block_on(async {
        let js = JetStream::connect(&server.url(), options()).await?;
        let journal = js.open_journal("ns", "durable").await?;
        let mut acked = Vec::new();
        for i in 0..100u64 {
            let seq = if i % 10 == 0 {
                journal
                    .append_batch(vec![i.to_string(), i.to_string()])
                    .await?
            } else {
                journal.append(i.to_string()).await?
            };
            acked.push(seq);
        }
        anyhow::Ok(acked)
    })?;
    server.kill9();
    server.restart()?;
    block_on(async {
        let js = JetStream::connect(&server.url(), options()).await?;
        let journal: JsJournal = js.open_journal("ns", "durable").await?;
        let last = *acked.last().expect("acked");
        assert_eq!(journal.last_seq(), last);
        assert_eq!(
            seqs(&read_all(&journal).await?),
            (1..=last).collect::<Vec<u64>>()
        );
        anyhow::Ok(())
    })
}
