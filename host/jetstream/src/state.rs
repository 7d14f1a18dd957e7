//! A state on JetStream: its mutations in a journal stream, its
//! checkpoints in a snapshot stream, as the local engine's `StateLog`
//! keeps them in files.
//!
//! A checkpoint stores the snapshot first, then compacts: the journal is
//! purged below the oldest snapshot kept (so the one before the newest
//! still has its tail), never below a snapshot that is not stored.

use crate::{JsError, JsJournal, JsReader, JsSnapshot, JsSnapshots};

/// How many snapshots a state keeps (the newest, and one to fall back to).
pub const STATE_KEEP: usize = 2;

/// A state's journal and snapshots on JetStream.
#[derive(Debug, Clone)]
pub struct JsState {
    journal: JsJournal,
    snapshots: JsSnapshots,
}

/// Where a recovery starts: the newest snapshot and the mutations after it.
#[derive(Debug)]
pub struct JsRecovery {
    /// The newest snapshot, if any.
    pub snapshot: Option<JsSnapshot>,
    /// The mutations after it.
    pub mutations: JsReader,
}

/// What a checkpoint did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsCheckpoint {
    /// The seq it covers.
    pub seq: u64,
    /// The seqs of the snapshots kept after it, oldest first.
    pub kept_snapshots: Vec<u64>,
    /// The journal's first seq after its compaction.
    pub first_seq: u64,
}

impl JsState {
    pub(crate) fn new(journal: JsJournal, snapshots: JsSnapshots) -> JsState {
        JsState { journal, snapshots }
    }

    /// The state's journal.
    pub fn journal(&self) -> &JsJournal {
        &self.journal
    }

    /// The state's snapshots.
    pub fn snapshots(&self) -> &JsSnapshots {
        &self.snapshots
    }

    /// The newest snapshot and a reader of the mutations after it.
    pub async fn recover(&self) -> Result<JsRecovery, JsError> {
        let snapshot = self.snapshots.newest().await?;
        let after = snapshot.as_ref().map_or(0, |s| s.seq);
        let first = self.journal.first_seq().await?;
        if after + 1 < first {
            return Err(JsError::Corrupt {
                stream: self.journal.stream_name().to_owned(),
                seq: after + 1,
                reason: format!(
                    "the journal starts at seq {first}, after the newest snapshot's {after}: mutations are missing"
                ),
            });
        }
        let mutations = self.journal.read_from(after + 1).await?;
        Ok(JsRecovery {
            snapshot,
            mutations,
        })
    }

    /// Logs `mutations` as one atomic batch; returns the last one's seq.
    pub async fn commit(&self, mutations: Vec<String>) -> Result<u64, JsError> {
        self.journal.append_batch(mutations).await
    }

    /// The seq of the newest checkpoint (0: none).
    pub async fn checkpoint_seq(&self) -> Result<u64, JsError> {
        Ok(self.snapshots.seqs().await?.last().copied().unwrap_or(0))
    }

    /// Stores `state` as the snapshot at `seq`, then compacts. `seq` must
    /// lie between the newest checkpoint and the last mutation; the caller
    /// checked `state` is JSON.
    pub async fn checkpoint(&self, seq: u64, state: String) -> Result<JsCheckpoint, JsError> {
        let newest = self.checkpoint_seq().await?;
        let last = self.journal.last_seq();
        if seq < newest || seq > last {
            return Err(JsError::OutOfRange {
                stream: self.journal.stream_name().to_owned(),
                seq,
                first: newest,
            });
        }
        if self.journal.is_failed() {
            return Err(JsError::Locked(self.journal.stream_name().to_owned()));
        }
        self.snapshots.create(seq, state).await?;
        let kept = self.snapshots.seqs().await?;
        // Compaction waits until the snapshots to fall back on exist.
        if kept.len() >= STATE_KEEP
            && let Some(&oldest) = kept.first()
        {
            self.journal.compact_before(oldest + 1).await?;
        }
        let first_seq = self.journal.first_seq().await?;
        Ok(JsCheckpoint {
            seq,
            kept_snapshots: kept,
            first_seq,
        })
    }
}
