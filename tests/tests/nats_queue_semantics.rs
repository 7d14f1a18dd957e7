//! What a queue on JetStream can build on (issue 14, next step): a
//! work-queue stream with a durable pull consumer, tested against a real
//! nats-server. Each test states one fact the queue backend will rely on or
//! must work around; if a server release changes it, the test says so.
//!
//! Then the queue mini-jetstream builds on them (`JsQueue`): push and
//! dedup, leases and host-kept tokens, nack delays, extend, dead letters
//! and their requeue and purge, two hosts sharing one queue, and pushes
//! kept through a SIGKILL of the server.
//!
//! Without a `nats-server` binary these tests skip with a loud `SKIPPED`
//! line (they fail in CI instead).

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::message::AckKind;
use async_nats::jetstream::stream::{Config, RetentionPolicy, StorageType, Stream};
use async_nats::jetstream::{self, Context, Message};
use futures_util::StreamExt;
use mini_jetstream::{JetStream, JetStreamOptions, JsDelivery, JsError, JsQueue, QueueConfig};
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
        let first = pop_within(&consumer, ACK_WAIT * 4).await?.expect("the job");
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
        let first = pop_within(&consumer, ACK_WAIT * 4).await?.expect("the job");
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
        let job = pop_within(&consumer, ACK_WAIT * 4).await?.expect("the job");
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

// ---------------------------------------------------------------------------
// The queue mini-jetstream builds on those facts (JsQueue).

/// A queue's lease in these tests.
const LEASE: Duration = Duration::from_millis(800);

async fn js_queue(
    server: &NatsServer,
    name: &str,
    max_deliveries: u32,
) -> anyhow::Result<(JetStream, JsQueue)> {
    let js = JetStream::connect(&server.url(), JetStreamOptions::default()).await?;
    let config = QueueConfig {
        ack_wait: LEASE,
        max_deliveries,
    };
    let queue = js.open_queue("qs", name, config).await?;
    Ok((js, queue))
}

/// The next delivery within `within`.
async fn js_pop_within(queue: &JsQueue, within: Duration) -> anyhow::Result<Option<JsDelivery>> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(delivery) = queue.pop(LEASE).await? {
            return Ok(Some(delivery));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Pops until the message `id` is among the dead letters (bounded); no pop
/// may hand anything out meanwhile. Returns the dead letters.
async fn pop_until_dead(
    queue: &JsQueue,
    id: u64,
) -> anyhow::Result<Vec<mini_jetstream::JsDeadLetter>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(delivery) = queue.pop(LEASE).await? {
            anyhow::bail!("delivered past its deliveries: {delivery:?}");
        }
        let dead = queue.dead_letters(0, 10).await?;
        if dead.iter().any(|letter| letter.id == id) {
            return Ok(dead);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "message {id} never went to the dead letters"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn a_js_queue_pushes_dedups_leases_acks_and_refuses_stale_tokens() -> anyhow::Result<()> {
    let Some(server) = NatsServer::start_single()? else {
        return Ok(());
    };
    block_on(async {
        let (_js, queue) = js_queue(&server, "jobs", 5).await?;
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as u64;
        assert_eq!(
            queue
                .push(r#"{"job":1}"#.into(), Some("k1"), Duration::ZERO)
                .await?,
            1
        );
        assert_eq!(
            queue
                .push(r#"{"job":2}"#.into(), None, Duration::ZERO)
                .await?,
            2
        );
        // The same key again: nothing stored, the first message's id.
        assert_eq!(
            queue
                .push(r#"{"job":"again"}"#.into(), Some("k1"), Duration::ZERO)
                .await?,
            1
        );
        // A key that is no header value: any text.
        assert_eq!(
            queue
                .push("3".into(), Some("k\r\n1: x"), Duration::ZERO)
                .await?,
            3
        );
        let stats = queue.stats().await?;
        assert_eq!((stats.ready, stats.leased, stats.dead), (3, 0, 0));

        let first = queue.pop(LEASE).await?.expect("a message");
        assert_eq!(
            (first.id, first.payload.as_str(), first.attempt),
            (1, r#"{"job":1}"#, 1)
        );
        assert!(first.enqueued_at >= before, "{first:?}");
        assert!(first.deadline >= first.enqueued_at + LEASE.as_millis() as u64);
        let second = queue.pop(LEASE).await?.expect("a message");
        assert_eq!(second.id, 2);
        assert_eq!(queue.stats().await?.leased, 2);
        // Tokens: another message's, a made-up one, then the right one, twice.
        let err = queue
            .ack(1, &second.token)
            .await
            .expect_err("not 1's token");
        assert!(matches!(err, JsError::StaleToken(_)), "{err}");
        let err = queue
            .ack(1, "1.1.0000000000000000")
            .await
            .expect_err("guessed");
        assert!(matches!(err, JsError::StaleToken(_)), "{err}");
        queue.ack(1, &first.token).await?;
        // Acked, it is gone: as on the local engine, `not-found`.
        let err = queue.ack(1, &first.token).await.expect_err("acked already");
        assert!(matches!(err, JsError::NotFound(_)), "{err}");
        // Its lease ends: 2 comes back, attempt 2, and the old token is
        // refused although no one else took it yet.
        tokio::time::sleep(LEASE + Duration::from_millis(100)).await;
        let err = queue.ack(2, &second.token).await.expect_err("lease ended");
        assert!(matches!(err, JsError::StaleToken(_)), "{err}");
        let mut seen = Vec::new();
        while let Some(d) = js_pop_within(&queue, LEASE * 4).await? {
            seen.push((d.id, d.attempt));
            queue.ack(d.id, &d.token).await?;
            if seen.len() == 2 {
                break;
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, [(2, 2), (3, 1)]);
        let stats = queue.stats().await?;
        assert_eq!((stats.ready, stats.leased, stats.dead), (0, 0, 0));
        assert!(queue.pop(LEASE).await?.is_none(), "every message acked");
        anyhow::Ok(())
    })
}

#[test]
fn a_js_queue_nack_delays_extend_holds_and_dead_letters_come_back() -> anyhow::Result<()> {
    let Some(server) = NatsServer::start_single()? else {
        return Ok(());
    };
    block_on(async {
        let (_js, queue) = js_queue(&server, "retries", 2).await?;
        let id = queue
            .push(r#""flaky""#.into(), None, Duration::ZERO)
            .await?;
        let job = queue.pop(LEASE).await?.expect("the job");
        queue.nack(id, &job.token, LEASE * 2).await?;
        let err = queue
            .extend(id, &job.token, LEASE)
            .await
            .expect_err("given back");
        assert!(matches!(err, JsError::StaleToken(_)), "{err}");
        assert!(
            js_pop_within(&queue, LEASE).await?.is_none(),
            "back before its delay"
        );
        let job = js_pop_within(&queue, LEASE * 6)
            .await?
            .expect("back after the delay");
        assert_eq!(job.attempt, 2);
        // Extended every half lease for three leases: never delivered again.
        // (Each extension is for three leases, so that a slow round trip on
        // a loaded machine does not end one.)
        let mut token_deadline = job.deadline;
        for _ in 0..6 {
            tokio::time::sleep(LEASE / 2).await;
            let deadline = queue.extend(id, &job.token, LEASE * 3).await?;
            assert!(deadline >= token_deadline, "the deadline moves on");
            token_deadline = deadline;
            assert!(
                queue.pop(LEASE).await?.is_none(),
                "delivered while extended"
            );
        }
        // Given back once more: past its two deliveries, the next pop takes
        // it to the dead letters instead of handing it out.
        queue.nack(id, &job.token, Duration::ZERO).await?;
        let dead = pop_until_dead(&queue, id).await?;
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert_eq!(
            (dead[0].id, dead[0].payload.as_str(), dead[0].attempts),
            (id, r#""flaky""#, 2)
        );
        let stats = queue.stats().await?;
        assert_eq!((stats.ready, stats.leased, stats.dead), (0, 0, 1));
        assert!(queue.dead_letters(id + 1, 10).await?.is_empty());

        // Requeued: the same id, attempts from 1 again, enqueue time kept.
        assert_eq!(queue.requeue(None).await?, 1);
        assert!(queue.dead_letters(0, 10).await?.is_empty());
        let back = js_pop_within(&queue, LEASE * 4).await?.expect("requeued");
        assert_eq!((back.id, back.attempt), (id, 1));
        assert_eq!(back.enqueued_at, job.enqueued_at);
        // To the dead letters again, then purged by id.
        queue.nack(id, &back.token, Duration::ZERO).await?;
        let again = js_pop_within(&queue, LEASE * 4).await?.expect("attempt 2");
        queue.nack(id, &again.token, Duration::ZERO).await?;
        pop_until_dead(&queue, id).await?;
        // An id that is no dead letter: `not-found`, and nothing purged.
        let err = queue
            .purge(Some(&[id, id + 7]))
            .await
            .expect_err("not dead");
        assert!(matches!(err, JsError::NotFound(_)), "{err}");
        assert_eq!(queue.purge(Some(&[id])).await?, 1);
        let stats = queue.stats().await?;
        assert_eq!((stats.ready, stats.leased, stats.dead), (0, 0, 0));
        anyhow::Ok(())
    })
}

#[test]
fn two_hosts_share_a_js_queue_and_every_job_is_done_once() -> anyhow::Result<()> {
    let Some(server) = NatsServer::start_single()? else {
        return Ok(());
    };
    const JOBS: u64 = 200;
    block_on(async {
        let (_producer_js, producer) = js_queue(&server, "shared", 5).await?;
        for job in 1..=JOBS {
            producer
                .push(format!(r#"{{"job":{job}}}"#), None, Duration::ZERO)
                .await?;
        }
        // Two other connections, as two hosts: competing consumers.
        let worker = |name: &'static str| {
            let url = server.url();
            tokio::spawn(async move {
                let js = JetStream::connect(&url, JetStreamOptions::default()).await?;
                let config = QueueConfig {
                    ack_wait: Duration::from_secs(30),
                    max_deliveries: 5,
                };
                let queue = js.open_queue("qs", "shared", config).await?;
                let mut done = Vec::new();
                while let Some(job) = queue.pop(LEASE).await? {
                    queue.ack(job.id, &job.token).await?;
                    done.push(job.id);
                }
                anyhow::Ok((name, done))
            })
        };
        let (a, b) = (worker("a"), worker("b"));
        let (a, b) = (a.await??, b.await??);
        let mut all: Vec<u64> = a.1.iter().chain(&b.1).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (1..=JOBS).collect::<Vec<_>>(), "each job once");
        eprintln!("two hosts: a did {}, b did {}", a.1.len(), b.1.len());
        let stats = producer.stats().await?;
        assert_eq!((stats.ready, stats.leased), (0, 0));
        anyhow::Ok(())
    })
}

#[test]
fn a_js_queue_keeps_every_acknowledged_push_through_a_sigkill_of_the_server() -> anyhow::Result<()>
{
    let Some(mut server) = NatsServer::start_single()? else {
        return Ok(());
    };
    let ids = block_on(async {
        let (_js, queue) = js_queue(&server, "kept", 5).await?;
        let mut ids = Vec::new();
        for job in 0..50 {
            ids.push(queue.push(format!("{job}"), None, Duration::ZERO).await?);
        }
        anyhow::Ok(ids)
    })?;
    server.kill9();
    server.restart()?;
    block_on(async {
        let (_js, queue) = js_queue(&server, "kept", 5).await?;
        let mut popped = Vec::new();
        while let Some(job) = js_pop_within(&queue, Duration::from_secs(5)).await? {
            assert_eq!(job.payload, (job.id - 1).to_string());
            queue.ack(job.id, &job.token).await?;
            popped.push(job.id);
            if popped.len() == ids.len() {
                break;
            }
        }
        assert_eq!(popped, ids, "every acknowledged push, once, in order");
        anyhow::Ok(())
    })
}

#[test]
fn a_js_queue_refuses_oversized_pushes_and_any_strange_token_and_keeps_serving()
-> anyhow::Result<()> {
    let Some(server) = NatsServer::start_single()? else {
        return Ok(());
    };
    block_on(async {
        let (_js, queue) = js_queue(&server, "hostile", 5).await?;
        // Past the server's max_payload (1 MiB): refused, nothing stored.
        let huge = format!("\"{}\"", "x".repeat(2 << 20));
        let err = queue
            .push(huge, None, Duration::ZERO)
            .await
            .expect_err("too large");
        assert!(matches!(err, JsError::TooLarge(_)), "{err}");
        // A dedup key of any size and bytes.
        let key = "k\0\r\n:".repeat(50_000);
        let id = queue.push("1".into(), Some(&key), Duration::ZERO).await?;
        assert_eq!(
            queue.push("2".into(), Some(&key), Duration::ZERO).await?,
            id
        );
        let stats = queue.stats().await?;
        assert_eq!((stats.ready, stats.leased), (1, 0), "only the first push");
        let job = queue.pop(LEASE).await?.expect("the job");
        for token in [
            String::new(),
            "\n".into(),
            "x".repeat(100_000),
            format!("{id}.1.{}", "0".repeat(16)),
            job.token.to_uppercase(),
        ] {
            for result in [
                queue.ack(id, &token).await,
                queue.nack(id, &token, Duration::ZERO).await,
                queue.extend(id, &token, LEASE).await.map(drop),
            ] {
                let err = result.expect_err("a token that is not the lease's");
                assert!(matches!(err, JsError::StaleToken(_)), "{err}");
            }
        }
        for other in [0, id + 1, u64::MAX] {
            let err = queue
                .ack(other, &job.token)
                .await
                .expect_err("no such message");
            assert!(matches!(err, JsError::NotFound(_)), "{err}");
        }
        // The lease held through all that; the right token still acks.
        queue.ack(id, &job.token).await?;
        assert!(queue.pop(LEASE).await?.is_none());
        anyhow::Ok(())
    })
}

#[test]
fn a_js_queue_pops_batches_within_their_bytes_waits_without_spinning_and_acks_next()
-> anyhow::Result<()> {
    let Some(server) = NatsServer::start_single()? else {
        return Ok(());
    };
    block_on(async {
        let (_js, queue) = js_queue(&server, "batches", 5).await?;
        for job in 1..=10 {
            let payload = format!("\"{job:0>9998}\"");
            queue.push(payload, None, Duration::ZERO).await?;
        }
        // 10,000 bytes a payload, and the server counts a message's subject
        // and headers too (under 1,000 bytes): 4 fit 44,000 bytes, 5 do not;
        // the fifth stays on the servers, not delivered.
        let four = queue.pop_batch(8, 44_000, LEASE).await?;
        let ids: Vec<u64> = four.iter().map(|d| d.id).collect();
        assert_eq!(ids, [1, 2, 3, 4]);
        // One always comes, however small the byte limit.
        let one = queue.pop_batch(8, 1, LEASE).await?;
        assert_eq!(one.len(), 1);
        // What was given back comes again (once the server has the naks).
        let mut all: Vec<u64> = ids
            .iter()
            .copied()
            .chain(one.iter().map(|d| d.id))
            .collect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while all.len() < 10 && tokio::time::Instant::now() < deadline {
            all.extend(
                queue
                    .pop_batch(100, usize::MAX, LEASE)
                    .await?
                    .iter()
                    .map(|d| d.id),
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        all.sort_unstable();
        assert_eq!(all, (1..=10).collect::<Vec<_>>(), "each leased once");
        assert!(queue.pop_batch(8, usize::MAX, LEASE).await?.is_empty());
        assert_eq!(queue.stats().await?.leased, 10);

        // ack-next: the ack, then the next message; the ack stands without one.
        let (first, second) = (&four[0], &four[1]);
        assert_eq!(queue.ack_next(first.id, &first.token, LEASE).await?, None);
        let err = queue
            .ack(first.id, &first.token)
            .await
            .expect_err("acked by ack-next");
        assert!(matches!(err, JsError::NotFound(_)), "{err}");
        queue.push(r#""late""#.into(), None, Duration::ZERO).await?;
        let next = queue
            .ack_next(second.id, &second.token, LEASE)
            .await?
            .expect("the late job");
        assert_eq!(next.payload, r#""late""#);

        // pop-wait: nothing within its time; then a push from another task
        // is taken while the fetch is held open.
        assert_eq!(
            queue.pop_wait(LEASE, Duration::from_millis(300)).await?,
            None
        );
        let pusher = {
            let queue = queue.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                queue
                    .push(r#""awaited""#.into(), None, Duration::ZERO)
                    .await
            })
        };
        let got = queue
            .pop_wait(LEASE, Duration::from_secs(20))
            .await?
            .expect("the awaited job");
        assert_eq!(got.payload, r#""awaited""#);
        assert_eq!(pusher.await??, got.id);
        anyhow::Ok(())
    })
}

/// A message of a push-batch.
fn batch_push(payload: &str, key: Option<&str>, delay_ms: u64) -> mini_jetstream::JsPush {
    mini_jetstream::JsPush {
        payload: payload.into(),
        dedup_key: key.map(str::to_owned),
        delay: Duration::from_millis(delay_ms),
    }
}

#[test]
fn a_js_queue_push_batch_is_all_or_nothing_and_keeps_dedup_keys() -> anyhow::Result<()> {
    let Some(server) = NatsServer::start_single()? else {
        return Ok(());
    };
    block_on(async {
        let (_js, queue) = js_queue(&server, "atomic", 5).await?;
        // One message past the server's max_payload: none of the batch.
        let huge = format!("\"{}\"", "x".repeat(2 << 20));
        let err = queue
            .push_batch(vec![
                batch_push("1", None, 0),
                batch_push(&huge, None, 0),
                batch_push("3", None, 0),
            ])
            .await
            .expect_err("too large");
        assert!(matches!(err, JsError::TooLarge(_)), "{err}");
        let err = queue
            .push_batch((0..1001).map(|_| batch_push("1", None, 0)).collect())
            .await
            .expect_err("past the most an atomic batch holds");
        assert!(matches!(err, JsError::BatchTooLong { .. }), "{err}");
        let err = queue.push_batch(Vec::new()).await.expect_err("empty");
        assert!(matches!(err, JsError::InvalidArgument(_)), "{err}");
        assert_eq!(queue.stats().await?.ready, 0, "nothing of refused batches");

        let a = queue
            .push("\"a\"".into(), Some("ka"), Duration::ZERO)
            .await?;
        // A key pushed before and a key twice in the batch: their first ids,
        // and the rest stored at consecutive seqs, in order.
        let ids = queue
            .push_batch(vec![
                batch_push("\"b\"", Some("kb"), 0),
                batch_push("\"a again\"", Some("ka"), 0),
                batch_push("\"c\"", None, 0),
                batch_push("\"b again\"", Some("kb"), 0),
                batch_push("\"d\"", None, 0),
            ])
            .await?;
        assert_eq!(ids, [a + 1, a, a + 2, a + 1, a + 3]);
        // The same keys again: nothing stored, the same ids.
        let again = queue
            .push_batch(vec![
                batch_push("\"b\"", Some("kb"), 0),
                batch_push("\"a\"", Some("ka"), 0),
            ])
            .await?;
        assert_eq!(again, [a + 1, a]);
        // A delayed message in a batch waits; the other is ready.
        let mixed = queue
            .push_batch(vec![
                batch_push("\"later\"", None, 60_000),
                batch_push("\"e\"", None, 0),
            ])
            .await?;
        assert_eq!(mixed, [a + 4, a + 5]);
        let stats = queue.stats().await?;
        assert_eq!((stats.ready, stats.delayed), (5, 1), "{stats:?}");
        let mut payloads = Vec::new();
        while let Some(job) = queue.pop(LEASE).await? {
            payloads.push(job.payload.clone());
            queue.ack(job.id, &job.token).await?;
        }
        assert_eq!(payloads, ["\"a\"", "\"b\"", "\"c\"", "\"d\"", "\"e\""]);
        anyhow::Ok(())
    })
}
