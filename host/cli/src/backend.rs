//! `--backend` and `--replicas` of `mini run` and `mini up`: which backend
//! serves the components' storage.

use anyhow::{Context, Result, bail};
use mini_host::{Backend, MiniHost};
use mini_jetstream::{JetStream, JetStreamOptions};

/// Where the components' storage is served from.
#[derive(Debug, Clone, clap::Args)]
pub struct BackendArgs {
    /// The storage backend: `local` (files under --data) or NATS JetStream
    /// at `nats://HOST:PORT[,nats://HOST:PORT…]` (journals, states and
    /// snapshot stores on replicated streams; queues and key-value buckets
    /// are refused there for now). See the README, "Running on NATS
    /// JetStream".
    #[arg(
        long,
        value_name = "local|nats://HOST:PORT[,…]",
        default_value = "local"
    )]
    backend: String,
    /// Replicas of every stream made on JetStream: 1 on a single server, 3
    /// (or 5) on a cluster.
    #[arg(long, value_name = "N", default_value_t = 1)]
    replicas: usize,
}

/// A host and, for JetStream, the runtime its connection runs on (keep it
/// until the run ends).
pub struct Served {
    pub host: MiniHost,
    _runtime: Option<tokio::runtime::Runtime>,
}

impl BackendArgs {
    /// The host of the chosen backend, connected.
    pub fn host(&self) -> Result<Served> {
        if self.backend == "local" {
            return Ok(Served {
                host: MiniHost::new(),
                _runtime: None,
            });
        }
        if !self
            .backend
            .split(',')
            .all(|url| url.trim().starts_with("nats://"))
        {
            bail!(
                "--backend {:?}: expected `local` or nats://HOST:PORT[,nats://HOST:PORT…]",
                self.backend
            );
        }
        if !matches!(self.replicas, 1..=5) {
            bail!(
                "--replicas {}: JetStream keeps 1 to 5 replicas",
                self.replicas
            );
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("mini-jetstream")
            .enable_all()
            .build()
            .context("cannot start the JetStream client's runtime")?;
        let options = JetStreamOptions {
            replicas: self.replicas,
            ..JetStreamOptions::default()
        };
        let js = runtime
            .block_on(JetStream::connect(&self.backend, options))
            .with_context(|| format!("--backend {}", self.backend))?;
        let host = MiniHost::with_backend(Backend::jetstream(js, runtime.handle().clone()));
        Ok(Served {
            host,
            _runtime: Some(runtime),
        })
    }
}
