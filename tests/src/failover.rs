//! What the failover tests on a three-node cluster share: a client of the
//! cluster straight on async-nats, a stream's leader, and its SIGKILL.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_nats::jetstream;

use crate::block_on;
use crate::nats::NatsCluster;

/// The bound on every wait of the failover tests (a leader election, appends
/// resuming, a node coming back): against a hang, not a timing requirement.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The number of leader kills of each leader-kill test:
/// `MINI_JS_FAILOVER_ROUNDS`, 10 by default.
pub fn rounds() -> usize {
    match std::env::var("MINI_JS_FAILOVER_ROUNDS") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("MINI_JS_FAILOVER_ROUNDS={v:?} is not a number")),
        _ => 10,
    }
}

/// `mutex` locked, poisoned or not (a writer's log is read after a panic
/// too).
pub fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A JetStream context straight on async-nats, for the streams' cluster
/// info.
pub fn raw_context(cluster: &NatsCluster) -> jetstream::Context {
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

/// Kills the leader of `stream` with SIGKILL and reaps it; returns its
/// name, its index in the cluster and when it was dead.
pub fn kill_leader(
    cluster: &mut NatsCluster,
    raw: &jetstream::Context,
    stream: &str,
) -> (String, usize, Instant) {
    let leader = stream_leader(raw, stream, None);
    let killed = cluster
        .index_of(&leader)
        .unwrap_or_else(|| panic!("the leader {leader:?} is no node of the cluster"));
    cluster.kill9(killed);
    let killed_at = Instant::now();
    assert!(!cluster.is_running(killed), "{leader} was killed");
    (leader, killed, killed_at)
}

/// The stream's leader as its cluster info reports it, once it has one
/// other than `not`; panics after [`DEADLINE`].
pub fn stream_leader(raw: &jetstream::Context, stream: &str, not: Option<&str>) -> String {
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
