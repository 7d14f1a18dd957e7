//! Why a state operation failed.

use std::path::PathBuf;

use crate::error::JournalError;
use crate::snapshot::{SkippedSnapshot, SnapshotError};

/// Why a state operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The journal failed (I/O, corruption, lock, poisoned handle, bad record).
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The snapshot store failed.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// A mutation or the state could not be serialized to JSON.
    #[error("serialization failed: {0}")]
    Serialize(#[source] serde_json::Error),
    /// A journal record is not a mutation of this type.
    #[error("journal record {seq} is not a valid mutation: {source}")]
    BadMutation {
        /// The record's sequence number.
        seq: u64,
        /// Why it did not deserialize.
        source: serde_json::Error,
    },
    /// An intact snapshot does not hold a state of this type.
    #[error("snapshot {seq} ({}) is not a valid state: {source}", path.display())]
    BadSnapshotState {
        /// The snapshot's sequence number.
        seq: u64,
        /// The snapshot file.
        path: PathBuf,
        /// Why it did not deserialize.
        source: serde_json::Error,
    },
    /// The newest valid snapshot covers records the journal does not have.
    #[error(
        "snapshot {snapshot_seq} is beyond the end of the journal (last seq {journal_last_seq})"
    )]
    SnapshotBeyondJournal {
        /// The snapshot's sequence number.
        snapshot_seq: u64,
        /// The journal's last sequence number.
        journal_last_seq: u64,
    },
    /// The journal does not reach back to the newest valid snapshot (it was
    /// compacted past it, e.g. because newer snapshots are damaged): the
    /// state cannot be recovered without losing mutations.
    #[error("{}", compacted(*snapshot_seq, *journal_first_seq, skipped.len()))]
    JournalCompacted {
        /// The seq of the snapshot recovery starts from (0: none).
        snapshot_seq: u64,
        /// The first seq the journal still holds.
        journal_first_seq: u64,
        /// The damaged snapshots that were passed over, newest first.
        skipped: Vec<SkippedSnapshot>,
    },
    /// A checkpoint was asked for a seq that is not between the newest
    /// checkpoint and the last durable mutation.
    #[error(
        "cannot checkpoint at seq {seq}: it must lie between the newest checkpoint \
        ({checkpoint_seq}) and the last durable mutation ({last_seq})"
    )]
    CheckpointOutOfRange {
        /// The seq asked for.
        seq: u64,
        /// The seq of the newest checkpoint.
        checkpoint_seq: u64,
        /// The seq of the last durable mutation.
        last_seq: u64,
    },
    /// The mutation was logged and applied (it has seq `seq`), but the
    /// automatic checkpoint that followed failed.
    #[error("mutation {seq} applied, but the automatic checkpoint failed: {source}")]
    AutoCheckpoint {
        /// The seq of the applied mutation.
        seq: u64,
        /// Why the checkpoint failed.
        source: Box<StateError>,
    },
}

/// Why a state cannot be recovered when its journal starts at
/// `journal_first`, after the records that recovery from `snapshot_seq`
/// (0: no snapshot; `damaged` newer ones passed over) needs.
fn compacted(snapshot_seq: u64, journal_first: u64, damaged: usize) -> String {
    let start = match (snapshot_seq, damaged) {
        (0, 0) => "there is no snapshot, so recovery starts from the beginning".to_owned(),
        (0, n) => format!("every snapshot is damaged ({n}), so recovery starts from the beginning"),
        (seq, 0) => format!("recovery starts from snapshot {seq}"),
        (seq, n) => format!(
            "recovery starts from snapshot {seq} (the newest valid one; {n} newer snapshot(s) \
             damaged)"
        ),
    };
    format!(
        "{start} and needs the journal from seq {}, but the journal starts at seq {journal_first} \
         (older records were compacted away)",
        snapshot_seq + 1
    )
}
