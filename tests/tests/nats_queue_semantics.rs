//! What a queue on JetStream can build on (issue 14, next step): a
//! work-queue stream with a durable pull consumer, tested against a real
//! nats-server. Each test states one fact the queue backend will rely on or
//! must work around; if a server release changes it, the test says so.
//!
//! Without a `nats-server` binary these tests skip with a loud `SKIPPED`
//! line (they fail in CI instead).

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::message::AckKind;
use async_nats::jetstream::stream::{Config, RetentionPolicy, StorageType, Stream};
use async_nats::jetstream::{self, Context, Message};
use futures_util::StreamExt;
use mini_tests::block_on;
use mini_tests::nats::NatsServer;

const ACK_WAIT: Duration = Duration::from_millis(800);

async fn work_queue(
    server: &NatsServer,
    name: &str,
    max_deliver: i64,
) -> anyhow::Result<(Context, Stream, PullConsumer)> {
    let client = async_nats::connect(server.url()).await?;
    let js = jetstream::new(client);
    let stream = js
        .create_stream(Config {
            name: name.to_owned(),
            subjects: vec![format!("{name}.jobs")],
            storage: StorageType::File,
            retention: RetentionPolicy::WorkQueue,
            ..Default::default()
        })
        .await?;
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("workers".into()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            max_deliver,
            ..Default::default()
        })
        .await?;
    Ok((js, stream, consumer))
}

/// The one message available now, if any (no wait).
async fn pop(consumer: &PullConsumer) -> anyhow::Result<Option<Message>> {
    let mut batch = consumer.fetch().max_messages(1).messages().await?;
    match batch.next().await {
        Some(message) => Ok(Some(message.map_err(|e| anyhow::anyhow!("{e}"))?)),
        None => Ok(None),
    }
}

/// The one message available within `within`.
async fn pop_within(consumer: &PullConsumer, within: Duration) -> anyhow::Result<Option<Message>> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(message) = pop(consumer).await? {
            return Ok(Some(message));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn delivered(message: &Message) -> i64 {
    message.info().expect("a JetStream message").delivered
}

#[test]
fn an_unacked_message_comes_back_after_ack_wait_and_an_ack_removes_it() -> anyhow::Result<()> {
    let Some(server) = NatsServer::start_single()? else {
        return Ok(());
    };
    block_on(async {
        let (js, mut stream, consumer) = work_queue(&server, "redeliver", -1).await?;
        js.publish("redeliver.jobs", "job".into()).await?.await?;
        let first = pop(&consumer).await?.expect("the job");
        assert_eq!(delivered(&first), 1);
        assert!(
            pop(&consumer).await?.is_none(),
            "leased: not handed out twice"
        );
        let again = pop_within(&consumer, ACK_WAIT * 4)
            .await?
            .expect("redelivered");
        assert_eq!(delivered(&again), 2, "the delivery count goes up");
        again
            .double_ack()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        assert_eq!(
            stream.info().await?.state.messages,
            0,
            "an acked job leaves the work queue"
        );
        anyhow::Ok(())
    })
}

#[test]
fn an_ack_through_an_earlier_delivery_is_taken_so_tokens_must_be_checked_by_the_host()
-> anyhow::Result<()> {
    let Some(server) = NatsServer::start_single()? else {
        return Ok(());
    };
    block_on(async {
        let (js, mut stream, consumer) = work_queue(&server, "stale", -1).await?;
        js.publish("stale.jobs", "job".into()).await?.await?;
        let first = pop(&consumer).await?.expect("the job");
        let second = pop_within(&consumer, ACK_WAIT * 4)
            .await?
            .expect("redelivered");
        assert_eq!(delivered(&second), 2);
        // The first worker's lease ran out; it acks through its old reply
        // subject. JetStream takes it: the job is gone though the second
        // worker holds it. A queue on JetStream must keep its own lease
        // tokens (mini's `stale-token`) rather than rely on the server.
        let _ = first.double_ack().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            stream.info().await?.state.messages,
            0,
            "a stale ack was refused: the host may rely on the server for stale tokens"
        );
        anyhow::Ok(())
    })
}

#[test]
fn a_nak_with_a_delay_holds_the_message_back_and_progress_extends_a_lease() -> anyhow::Result<()> {
    let Some(server) = NatsServer::start_single()? else {
        return Ok(());
    };
    block_on(async {
        let (js, _stream, consumer) = work_queue(&server, "delays", -1).await?;
        js.publish("delays.jobs", "job".into()).await?.await?;
        let job = pop(&consumer).await?.expect("the job");
        job.ack_with(AckKind::Nak(Some(ACK_WAIT * 3)))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        assert!(
            pop_within(&consumer, ACK_WAIT).await?.is_none(),
            "a nak'd job came back before its delay"
        );
        let job = pop_within(&consumer, ACK_WAIT * 6)
            .await?
            .expect("back after the delay");
        // Progress every half ack-wait for three ack-waits: not redelivered.
        for _ in 0..6 {
            tokio::time::sleep(ACK_WAIT / 2).await;
            job.ack_with(AckKind::Progress)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            assert!(
                pop(&consumer).await?.is_none(),
                "redelivered while in progress"
            );
        }
        job.double_ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        anyhow::Ok(())
    })
}

#[test]
fn past_max_deliver_a_message_stays_in_the_stream_and_an_advisory_names_it() -> anyhow::Result<()> {
    let Some(server) = NatsServer::start_single()? else {
        return Ok(());
    };
    block_on(async {
        let (js, mut stream, consumer) = work_queue(&server, "dead", 2).await?;
        let client = async_nats::connect(server.url()).await?;
        let mut advisories = client
            .subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.dead.workers")
            .await?;
        let ack = js.publish("dead.jobs", "poison".into()).await?.await?;
        for attempt in 1..=2 {
            let job = pop_within(&consumer, ACK_WAIT * 4)
                .await?
                .expect("delivered");
            assert_eq!(delivered(&job), attempt);
        }
        assert!(
            pop_within(&consumer, ACK_WAIT * 3).await?.is_none(),
            "delivered past max_deliver"
        );
        let advisory = tokio::time::timeout(Duration::from_secs(10), advisories.next())
            .await?
            .expect("an advisory");
        let advisory: serde_json::Value = serde_json::from_slice(&advisory.payload)?;
        assert_eq!(advisory["stream_seq"], ack.sequence, "{advisory}");
        // A work-queue stream keeps it: the backend must move it to its
        // dead letters itself (and then remove it here).
        assert_eq!(stream.info().await?.state.messages, 1);
        anyhow::Ok(())
    })
}
