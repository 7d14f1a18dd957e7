//! mini's NATS JetStream backend: the same journals on replicated streams.
//!
//! A journal is one stream (file storage, R1 on one server, R3 on a
//! cluster) holding one subject; its stream sequence numbers are the
//! journal's seqs: contiguous from 1, because the streams deny deletes of
//! single messages. Appends are fenced with `Nats-Expected-Last-Sequence`,
//! so a writer whose view is stale never interleaves with another
//! ([`JsError::Locked`]); a batch is one JetStream atomic batch (all or
//! nothing); concurrent appends of one handle share one round trip (group
//! commit); an append whose answer was lost (a leader killed mid-write) is
//! resolved by reading the stream once a leader is back, never by
//! publishing twice. DESIGN.md, "Backends", and the README, "Running on
//! NATS JetStream", say which guarantees hold.
//!
//! A queue ([`JsQueue`]) is a work-queue stream and one durable pull
//! consumer shared by every host of the queue, with a stream of its dead
//! letters; its doc says what differs from the local engine.
//!
//! The crate knows nothing of wasmtime: mini-host turns it into the
//! `store`, `state` and `snapshot` interfaces' backend.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mini_jetstream::JsError> {
//! use mini_jetstream::{JetStream, JetStreamOptions};
//! let js = JetStream::connect("nats://127.0.0.1:4222", JetStreamOptions::default()).await?;
//! let journal = js.open_journal("shop", "orders").await?;
//! let seq = journal.append(r#"{"order":1}"#.to_owned()).await?;
//! let mut reader = journal.read_from(seq).await?;
//! let mut seen = Vec::new();
//! reader.next_records(10, 1 << 20, &mut |seq, data| seen.push((seq, data.to_owned()))).await?;
//! # Ok(()) }
//! ```

mod error;
mod fence;
mod journal;
mod names;
mod queue;
mod reader;
mod snapshots;
mod state;

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, stream};

pub use error::JsError;
pub use journal::{JsJournal, MAX_BATCH};
pub use names::{StreamName, stream_name};
pub use queue::{JsDeadLetter, JsDelivery, JsPush, JsQueue, JsQueueStats, QueueConfig};
pub use reader::{JsReader, read_all};
pub use snapshots::{JsSnapshot, JsSnapshots};
pub use state::{JsCheckpoint, JsRecovery, JsState, STATE_KEEP};

/// How the backend makes and uses its streams.
#[derive(Debug, Clone)]
pub struct JetStreamOptions {
    /// Replicas of every stream: 1 on a single server, 3 on a cluster.
    pub replicas: usize,
    /// The most bytes one stream may hold (-1: no limit of its own); past
    /// it an append is refused ([`JsError::Full`]), never an old record
    /// dropped. The server reserves this much of its storage for every
    /// stream made, so a limit makes the server full after a few streams:
    /// the default is none, and the host bounds a namespace by its quota.
    pub max_stream_bytes: i64,
    /// How long an append keeps trying through a leader election before
    /// its outcome is [`JsError::Unknown`].
    pub retry_for: Duration,
    /// The first part of every stream's name and subject.
    pub prefix: String,
}

impl Default for JetStreamOptions {
    fn default() -> Self {
        JetStreamOptions {
            replicas: 1,
            max_stream_bytes: -1,
            retry_for: Duration::from_secs(30),
            prefix: "mini".to_owned(),
        }
    }
}

/// A connection to a NATS server or cluster with JetStream.
#[derive(Debug, Clone)]
pub struct JetStream {
    client: async_nats::Client,
    context: jetstream::Context,
    options: JetStreamOptions,
}

/// How long a queue's dedup key holds (the local engine's
/// `DEFAULT_DEDUP_WINDOW_MS`).
const QUEUE_DEDUP_WINDOW: Duration = Duration::from_secs(5 * 60);

/// The answer time of one JetStream request; an append retries past it.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

impl JetStream {
    /// Connects to `urls` (`nats://host:port`, several separated by commas:
    /// the client fails over between them).
    pub async fn connect(urls: &str, options: JetStreamOptions) -> Result<JetStream, JsError> {
        let addrs: Vec<async_nats::ServerAddr> = urls
            .split(',')
            .map(|url| {
                url.trim()
                    .parse()
                    .map_err(|e| JsError::Connect(format!("{url:?} is not a NATS address: {e}")))
            })
            .collect::<Result<_, _>>()?;
        if addrs.is_empty() {
            return Err(JsError::Connect("no NATS address given".into()));
        }
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(REQUEST_TIMEOUT))
            .connect(addrs)
            .await
            .map_err(|e| JsError::Connect(format!("{urls}: {e}")))?;
        let context = jetstream::ContextBuilder::new()
            .timeout(REQUEST_TIMEOUT)
            .build(client.clone());
        Ok(JetStream {
            client,
            context,
            options,
        })
    }

    /// The options the streams are made with.
    pub fn options(&self) -> &JetStreamOptions {
        &self.options
    }

    /// Opens the journal `name` of `namespace`, making its stream if needed.
    pub async fn open_journal(&self, namespace: &str, name: &str) -> Result<JsJournal, JsError> {
        self.open_journal_from(namespace, name, 1).await
    }

    /// [`JetStream::open_journal`], a journal made here starting at seq
    /// `first_seq` (a copy of a compacted journal keeps its seqs).
    pub async fn open_journal_from(
        &self,
        namespace: &str,
        name: &str,
        first_seq: u64,
    ) -> Result<JsJournal, JsError> {
        self.journal_of("journal", namespace, name, first_seq).await
    }

    /// The journal on the stream of `kind` for `name`, made starting at
    /// `first_seq` if it does not exist.
    async fn journal_of(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        first_seq: u64,
    ) -> Result<JsJournal, JsError> {
        let names = stream_name(&self.options.prefix, kind, namespace, name);
        let mut config = self.stream_config(&names, kind, namespace, name);
        config.first_sequence = (first_seq > 1).then_some(first_seq);
        let stream = self.get_or_create(config, namespace, name).await?;
        JsJournal::open(
            self.client.clone(),
            self.context.clone(),
            stream,
            names,
            &self.options,
        )
        .await
    }

    /// Opens the snapshot store `name` of `namespace` (keeping the newest
    /// `keep` snapshots), making its stream if needed.
    pub async fn open_snapshots(
        &self,
        namespace: &str,
        name: &str,
        keep: usize,
    ) -> Result<JsSnapshots, JsError> {
        self.snapshots_of("snapshot", namespace, name, keep).await
    }

    async fn snapshots_of(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        keep: usize,
    ) -> Result<JsSnapshots, JsError> {
        let names = stream_name(&self.options.prefix, kind, namespace, name);
        let config = JsSnapshots::config(self.stream_config(&names, kind, namespace, name));
        let stream = self.get_or_create(config, namespace, name).await?;
        Ok(JsSnapshots::new(
            self.context.clone(),
            stream,
            names,
            keep,
            &self.options,
        ))
    }

    /// Opens the state `name` of `namespace`: its journal and snapshots
    /// streams, made if needed.
    pub async fn open_state(&self, namespace: &str, name: &str) -> Result<JsState, JsError> {
        self.open_state_from(namespace, name, 1).await
    }

    /// [`JetStream::open_state`], a state made here with its journal
    /// starting at seq `first_seq` (a copy of a checkpointed state).
    pub async fn open_state_from(
        &self,
        namespace: &str,
        name: &str,
        first_seq: u64,
    ) -> Result<JsState, JsError> {
        let journal = self.journal_of("state", namespace, name, first_seq).await?;
        let snapshots = self
            .snapshots_of("state-snapshot", namespace, name, STATE_KEEP)
            .await?;
        Ok(JsState::new(journal, snapshots))
    }

    /// Opens the queue `name` of `namespace`: its work-queue stream, the
    /// stream of its dead letters and the consumers every host of the queue
    /// shares, made if needed (`config` is the consumer's when this open
    /// makes it; an existing consumer keeps its own).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), mini_jetstream::JsError> {
    /// use std::time::Duration;
    /// use mini_jetstream::{JetStream, JetStreamOptions, QueueConfig};
    /// let js = JetStream::connect("nats://127.0.0.1:4222", JetStreamOptions::default()).await?;
    /// let jobs = js.open_queue("shop", "jobs", QueueConfig::default()).await?;
    /// jobs.push(r#"{"order":1}"#.to_owned(), Some("order-1"), Duration::ZERO).await?;
    /// if let Some(job) = jobs.pop(Duration::from_secs(60)).await? {
    ///     // ... do the work, then:
    ///     jobs.ack(job.id, &job.token).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn open_queue(
        &self,
        namespace: &str,
        name: &str,
        config: QueueConfig,
    ) -> Result<JsQueue, JsError> {
        let work_names = stream_name(&self.options.prefix, "queue", namespace, name);
        let work_config = stream::Config {
            subjects: vec![
                work_names.subject.clone(),
                queue::delayed_subject(&work_names.subject),
            ],
            retention: stream::RetentionPolicy::WorkQueue,
            // Acked messages leave the work queue.
            deny_delete: false,
            // A push-batch is one atomic batch.
            allow_atomic_publish: true,
            duplicate_window: QUEUE_DEDUP_WINDOW,
            ..self.stream_config(&work_names, "queue", namespace, name)
        };
        let mut work = self
            .get_or_create(work_config.clone(), namespace, name)
            .await?;
        if !work.cached_info().config.allow_atomic_publish {
            // Made by a mini whose push-batches were not atomic.
            let updated = stream::Config {
                allow_atomic_publish: true,
                ..work.cached_info().config.clone()
            };
            self.context.update_stream(updated).await.map_err(|e| {
                JsError::Server(format!(
                    "cannot allow atomic batches on {}: {e}",
                    work_config.name
                ))
            })?;
            work = self
                .context
                .get_stream(&work_config.name)
                .await
                .map_err(|e| {
                    JsError::Server(format!("cannot open the stream {}: {e}", work_config.name))
                })?;
        }
        let dead_names = stream_name(&self.options.prefix, "queue-dead", namespace, name);
        let dead_config = stream::Config {
            // A purge deletes single dead letters.
            deny_delete: false,
            allow_atomic_publish: false,
            duplicate_window: QUEUE_DEDUP_WINDOW,
            ..self.stream_config(&dead_names, "queue-dead", namespace, name)
        };
        let dead = self.get_or_create(dead_config, namespace, name).await?;
        JsQueue::open(
            self.context.clone(),
            (work, work_names),
            (dead, dead_names),
            config,
            &self.options,
        )
        .await
    }

    /// Whether the unit `name` of `kind` (`"journal"`, `"state"`,
    /// `"snapshot"`) of `namespace` exists.
    pub async fn unit_exists(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<bool, JsError> {
        let names = stream_name(&self.options.prefix, kind, namespace, name);
        // Asked until the servers answer (a node that just came back may
        // leave a request unanswered).
        retry(self.options.retry_for, || async {
            match self.context.get_stream(&names.stream).await {
                Ok(_) => Ok(true),
                Err(e)
                    if matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(error)
                        if error.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
                {
                    Ok(false)
                }
                Err(e) => Err(e),
            }
        })
        .await
        .map_err(|e| JsError::Connect(format!("no answer about the stream {}: {e}", names.stream)))
    }

    /// How many mini streams `namespace` has on the servers (a state has
    /// two), and the bytes they hold.
    pub async fn namespace_streams(&self, namespace: &str) -> Result<(usize, u64), JsError> {
        // The whole listing again until the servers answer it.
        retry(self.options.retry_for, || self.list_namespace(namespace))
            .await
            .map_err(|e| JsError::Connect(format!("no answer to the list of streams: {e}")))
    }

    async fn list_namespace(&self, namespace: &str) -> Result<(usize, u64), String> {
        use futures_util::StreamExt;
        let mut streams = self.context.streams();
        let (mut count, mut bytes) = (0, 0u64);
        while let Some(info) = streams.next().await {
            let info = info.map_err(|e| e.to_string())?;
            let meta = &info.config.metadata;
            if info
                .config
                .name
                .starts_with(&format!("{}-", self.options.prefix))
                && meta.contains_key(names::META_KIND)
                && meta.get(names::META_NAMESPACE).map(String::as_str) == Some(namespace)
            {
                count += 1;
                bytes = bytes.saturating_add(info.state.bytes);
            }
        }
        Ok((count, bytes))
    }

    fn stream_config(
        &self,
        names: &StreamName,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> stream::Config {
        stream::Config {
            name: names.stream.clone(),
            subjects: vec![names.subject.clone()],
            description: Some(format!(
                "mini {kind} {name:?} of the namespace {namespace:?}"
            )),
            storage: stream::StorageType::File,
            num_replicas: self.options.replicas,
            max_bytes: self.options.max_stream_bytes,
            // A full stream refuses new records; it never drops old ones.
            discard: stream::DiscardPolicy::New,
            retention: stream::RetentionPolicy::Limits,
            // Seqs stay contiguous: no message is deleted on its own, only
            // whole prefixes by compaction (a purge).
            deny_delete: true,
            allow_atomic_publish: true,
            allow_direct: true,
            duplicate_window: Duration::from_secs(120),
            metadata: HashMap::from([
                (names::META_KIND.to_owned(), kind.to_owned()),
                (names::META_NAMESPACE.to_owned(), namespace.to_owned()),
                (names::META_NAME.to_owned(), name.to_owned()),
            ]),
            ..stream::Config::default()
        }
    }

    /// The stream of `config`, made if it does not exist; refused if it
    /// exists for another unit.
    async fn get_or_create(
        &self,
        config: stream::Config,
        namespace: &str,
        name: &str,
    ) -> Result<stream::Stream, JsError> {
        let stream_name = config.name.clone();
        let kind = config.metadata.get(names::META_KIND).cloned();
        let mut stream = retry_unless(
            self.options.retry_for,
            || self.context.get_or_create_stream(config.clone()),
            |e: &jetstream::context::CreateStreamError| refusal(&e.to_string()),
        )
        .await
        .map_err(|e| {
            let text = format!("cannot open the stream {stream_name}: {e}");
            match refusal(&e.to_string()) {
                Some(Refusal::Full) => JsError::Full {
                    stream: stream_name.clone(),
                    reason: text,
                },
                _ => JsError::Server(text),
            }
        })?;
        let meta = stream.cached_info().config.metadata.clone();
        let holds = |key: &str, value: Option<&str>| meta.get(key).map(String::as_str) == value;
        if !(holds(names::META_KIND, kind.as_deref())
            && holds(names::META_NAMESPACE, Some(namespace))
            && holds(names::META_NAME, Some(name)))
        {
            return Err(JsError::Server(format!(
                "the stream {stream_name} exists but is not mini's {name:?} of {namespace:?}: refused"
            )));
        }
        // The config may have changed between versions; the info is fresh.
        let _ = stream.info().await;
        Ok(stream)
    }
}

/// A refusal that trying again does not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The server has no room (its storage, an account limit).
    Full,
    /// The request cannot be taken (a stream of that name with another
    /// config, a limit of the request itself).
    Definite,
}

/// Whether the error text `e` of a management request is a refusal.
fn refusal(e: &str) -> Option<Refusal> {
    let e = e.to_lowercase();
    if e.contains("insufficient") || e.contains("maximum number of streams") {
        Some(Refusal::Full)
    } else if e.contains("already in use") || e.contains("invalid") {
        Some(Refusal::Definite)
    } else {
        None
    }
}

/// Runs `attempt` until it succeeds or `within` has passed, backing off
/// between tries: what every request does through a leader election.
pub(crate) async fn retry<T, E: std::fmt::Display, F>(
    within: Duration,
    attempt: impl FnMut() -> F,
) -> Result<T, E>
where
    F: std::future::Future<Output = Result<T, E>>,
{
    retry_unless(within, attempt, |_| None::<Refusal>).await
}

/// [`retry`], but an error `refused` names is returned at once.
pub(crate) async fn retry_unless<T, E: std::fmt::Display, F, R>(
    within: Duration,
    mut attempt: impl FnMut() -> F,
    refused: impl Fn(&E) -> Option<R>,
) -> Result<T, E>
where
    F: std::future::Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + within;
    let mut pause = Duration::from_millis(25);
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(e) if refused(&e).is_some() => return Err(e),
            Err(e) if tokio::time::Instant::now() + pause >= deadline => return Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "JetStream request failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
        }
    }
}
