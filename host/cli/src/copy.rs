//! `mini copy`: a namespace's journals, states and snapshot stores from
//! local files to NATS JetStream, seqs kept.
//!
//! Each unit is opened with its lock (a running component holding it makes
//! the copy fail, never copy half a unit), read whole, and written to an
//! empty unit on JetStream made to start at the same first seq. A state is
//! copied as its recovery point: the newest valid snapshot and the
//! mutations after it. A snapshot store is copied snapshot by snapshot. A
//! unit that exists already on JetStream and holds anything is refused:
//! nothing is merged. Queues and buckets are not served on JetStream yet
//! and are named as left behind.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use mini_engine::layout::{DataRoot, UnitKind, unit_names};
use mini_engine::snapshot::SnapshotStore;
use mini_engine::state::{StateLog, StateOptions};
use mini_engine::{Journal, Reader};
use mini_jetstream::{JetStream, JetStreamOptions, JsJournal, MAX_BATCH};

/// Copy a namespace's journals, states and snapshot stores from local files
/// to NATS JetStream (seqs kept), for `mini run --backend nats://…`. The
/// namespace must not be in use. Queues and buckets are not copied (not
/// served on JetStream yet).
#[derive(Debug, clap::Args)]
pub struct CopyArgs {
    /// The namespace.
    namespace: String,
    /// The data directory.
    #[arg(long, default_value_os_t = crate::default_data_dir())]
    data: PathBuf,
    /// The JetStream servers: `nats://HOST:PORT[,nats://HOST:PORT…]`.
    #[arg(long, value_name = "nats://HOST:PORT[,…]")]
    to: String,
    /// Replicas of every stream made.
    #[arg(long, value_name = "N", default_value_t = 1)]
    replicas: usize,
}

/// `mini copy`.
pub fn copy(args: CopyArgs) -> Result<ExitCode> {
    let ns_dir = DataRoot::new(&args.data)
        .namespace_dir(&args.namespace)
        .with_context(|| format!("the namespace {:?}", args.namespace))?;
    if !ns_dir.is_dir() {
        bail!("no namespace {} in {}", args.namespace, args.data.display());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")?;
    runtime.block_on(async {
        let options = JetStreamOptions {
            replicas: args.replicas,
            ..JetStreamOptions::default()
        };
        let js = JetStream::connect(&args.to, options)
            .await
            .with_context(|| format!("--to {}", args.to))?;
        let ns = args.namespace.as_str();
        for name in names(&ns_dir, UnitKind::Journal)? {
            let journal = Journal::open(ns_dir.join("journal").join(&name))
                .with_context(|| format!("the journal {name:?}"))?;
            let first = journal.first_seq();
            let target = js.open_journal_from(ns, &name, first).await?;
            let copied = copy_records(&target, journal.read_from(first)?, first, &name).await?;
            println!("journal {name}: {copied} records, seqs from {first}");
        }
        for name in names(&ns_dir, UnitKind::State)? {
            let dir = ns_dir.join("state").join(&name);
            let (log, point) = StateLog::open_with(&dir, &StateOptions::default())
                .with_context(|| format!("the state {name:?}"))?;
            let first = point.seq() + 1;
            let target = js.open_state_from(ns, &name, first).await?;
            if let Some(snapshot) = &point.snapshot {
                if target.checkpoint_seq().await? != 0 {
                    bail!("the state {name:?} has snapshots on JetStream already: nothing copied");
                }
                target.snapshots().create(snapshot.seq, snapshot.state.clone()).await?;
            }
            let mutations = log.mutations_after(&point)?;
            let copied = copy_records(target.journal(), mutations, first, &name).await?;
            println!(
                "state {name}: snapshot at seq {}, {copied} mutations after it",
                point.seq()
            );
        }
        for name in names(&ns_dir, UnitKind::Snapshots)? {
            let store = SnapshotStore::open(ns_dir.join("snapshot").join(&name))
                .with_context(|| format!("the snapshot store {name:?}"))?;
            let target = js
                .open_snapshots(ns, &name, mini_engine::snapshot::DEFAULT_KEEP)
                .await?;
            if !target.seqs().await?.is_empty() {
                bail!("the snapshot store {name:?} holds snapshots on JetStream already: nothing copied");
            }
            let mut copied = 0;
            for info in store.list()? {
                let bytes = std::fs::read(&info.path)
                    .with_context(|| format!("{}", info.path.display()))?;
                let (seq, state) = mini_engine::snapshot::decode_snapshot(&bytes).map_err(|e| {
                    anyhow::anyhow!("the snapshot {} of {name:?} is damaged ({e:?}): run `mini verify`", info.seq)
                })?;
                target.create(seq, state).await?;
                copied += 1;
            }
            println!("snapshot {name}: {copied} snapshots");
        }
        for kind in [UnitKind::Queue, UnitKind::Bucket] {
            for name in names(&ns_dir, kind)? {
                println!("{} {name}: not copied (not served on JetStream yet)", kind.noun());
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn names(ns_dir: &Path, kind: UnitKind) -> Result<Vec<String>> {
    unit_names(ns_dir, kind).with_context(|| format!("cannot list the {}s", kind.noun()))
}

/// Appends what `reader` reads to `target`, which must be empty and start
/// at `first`, in batches of at most [`MAX_BATCH`]; checks every seq.
async fn copy_records(target: &JsJournal, reader: Reader, first: u64, name: &str) -> Result<u64> {
    if target.last_seq() + 1 != first || target.first_seq().await? != first {
        bail!(
            "{name:?} exists on JetStream already (its seqs end at {}): nothing copied",
            target.last_seq()
        );
    }
    let mut batch = Vec::new();
    let mut copied = 0u64;
    let mut expected = first;
    for entry in reader {
        let entry = entry?;
        if entry.seq != expected {
            bail!(
                "{name:?}: seq {} read where {expected} was expected",
                entry.seq
            );
        }
        expected += 1;
        batch.push(entry.data);
        if batch.len() == MAX_BATCH {
            copied += flush(target, &mut batch, expected - 1).await?;
        }
    }
    if !batch.is_empty() {
        copied += flush(target, &mut batch, expected - 1).await?;
    }
    Ok(copied)
}

async fn flush(target: &JsJournal, batch: &mut Vec<String>, last: u64) -> Result<u64> {
    let n = batch.len() as u64;
    let stored = target.append_batch(std::mem::take(batch)).await?;
    if stored != last {
        bail!("JetStream stored up to seq {stored} where {last} was expected");
    }
    Ok(n)
}
