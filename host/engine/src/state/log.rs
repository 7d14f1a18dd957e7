//! The untyped half of a state: the journal of mutations and the snapshots
//! of the state, both JSON text, with the rules of recovery and checkpoint.
//! The fold is the caller's: [`super::StateManager`] in native code, guest
//! code through the host's `state` interface.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::journal::{Journal, JournalOptions, Reader, RecoveryReport};
use crate::snapshot::{
    Restored, SkippedSnapshot, SnapshotError, SnapshotOptions, SnapshotStore, restore_unlocked,
};

use super::{Checkpoint, JOURNAL_DIR, SNAPSHOT_DIR, StateError, StateOptions};

/// Where a state resumes: the newest valid snapshot (if any) and the damaged
/// ones passed over. The mutations after it come from
/// [`StateLog::mutations_after`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryPoint {
    /// The newest valid snapshot; `None` when there is none (start from the
    /// empty state at seq 0).
    pub snapshot: Option<Restored>,
    /// Damaged snapshots passed over, newest first: warn about them.
    pub skipped: Vec<SkippedSnapshot>,
}

impl RecoveryPoint {
    /// The seq the snapshot covers (0 without one).
    pub fn seq(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |s| s.seq)
    }

    /// Whether recovery from this point works on a journal holding the seqs
    /// `journal_first..=journal_last` (`journal_last` is `journal_first - 1`
    /// when it is empty): the rule every opener and every operator's check
    /// applies (see [`reachable`]).
    pub fn check_journal(&self, journal_first: u64, journal_last: u64) -> Result<(), StateError> {
        reachable(self.seq(), &self.skipped, journal_first, journal_last)
    }

    /// One warning per damaged snapshot passed over, saying what recovery
    /// falls back to.
    ///
    /// ```
    /// use mini_engine::state::RecoveryPoint;
    /// assert!(RecoveryPoint::default().warnings().is_empty());
    /// ```
    pub fn warnings(&self) -> Vec<String> {
        let fallback = match &self.snapshot {
            Some(s) => format!("snapshot {}", s.seq),
            None => "the start of the journal".to_owned(),
        };
        self.skipped
            .iter()
            .map(|s| format!("damaged {s}; recovery falls back to {fallback}"))
            .collect()
    }

    /// The recovery point that a snapshot restore found: its snapshot and
    /// skipped ones; when every snapshot is damaged, none (start from the
    /// empty state) and all of them skipped.
    pub fn from_restore(
        restored: Result<Option<Restored>, SnapshotError>,
    ) -> Result<RecoveryPoint, SnapshotError> {
        match restored {
            Ok(Some(mut restored)) => Ok(RecoveryPoint {
                skipped: std::mem::take(&mut restored.skipped),
                snapshot: Some(restored),
            }),
            Ok(None) => Ok(RecoveryPoint::default()),
            Err(SnapshotError::AllDamaged { skipped }) => Ok(RecoveryPoint {
                snapshot: None,
                skipped,
            }),
            Err(e) => Err(e),
        }
    }
}

/// Whether a state whose newest valid snapshot covers `snapshot_seq` (0:
/// none; `skipped` the damaged newer ones) recovers from a journal holding
/// `journal_first..=journal_last`: the journal must reach back to the
/// record after the snapshot (else mutations were compacted away) and must
/// not end before the snapshot (else the snapshot covers records the
/// journal never had). Never a silently wrong state.
///
/// ```
/// use mini_engine::state::{StateError, reachable};
/// assert!(reachable(5, &[], 3, 9).is_ok());
/// assert!(matches!(reachable(0, &[], 3, 9), Err(StateError::JournalCompacted { .. })));
/// assert!(matches!(reachable(12, &[], 3, 9), Err(StateError::SnapshotBeyondJournal { .. })));
/// ```
pub fn reachable(
    snapshot_seq: u64,
    skipped: &[SkippedSnapshot],
    journal_first: u64,
    journal_last: u64,
) -> Result<(), StateError> {
    if snapshot_seq > journal_last {
        return Err(StateError::SnapshotBeyondJournal {
            snapshot_seq,
            journal_last_seq: journal_last,
        });
    }
    // Saturating: a snapshot store takes any seq, u64::MAX too, and the
    // unlocked reads pass u64::MAX as an end they do not know yet.
    if journal_first > snapshot_seq.saturating_add(1) {
        return Err(StateError::JournalCompacted {
            snapshot_seq,
            journal_first_seq: journal_first,
            skipped: skipped.to_vec(),
        });
    }
    Ok(())
}

/// The recovery point of the state (or queue) in `dir`, read without its
/// lock, for operators' tools: the snapshots only (the journal is not
/// checked against it). A missing snapshot directory is no snapshot; the
/// writer's state size limit is not known here, so size is no damage.
///
/// ```
/// use mini_engine::state::{recovery_point_unlocked, StateLog, StateOptions};
/// let dir = tempfile::tempdir()?;
/// let (log, _) = StateLog::open_with(dir.path(), &StateOptions::default())?;
/// log.commit("1")?;
/// log.checkpoint(1, "1")?;
/// assert_eq!(recovery_point_unlocked(dir.path())?.seq(), 1); // while `log` holds the lock
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn recovery_point_unlocked(dir: &Path) -> Result<RecoveryPoint, SnapshotError> {
    let snapshots = dir.join(SNAPSHOT_DIR);
    if !snapshots.is_dir() {
        return Ok(RecoveryPoint::default());
    }
    let options = SnapshotOptions {
        max_state_size: usize::MAX / 2,
        ..SnapshotOptions::default()
    };
    RecoveryPoint::from_restore(restore_unlocked(&snapshots, &options))
}

/// Counters of a [`StateLog`], for deciding when to checkpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// The seq of the last durable mutation (0: none).
    pub seq: u64,
    /// The seq of the newest checkpoint, made or recovered from (0: none).
    pub checkpoint_seq: u64,
    /// Mutations logged since that checkpoint.
    pub records_since_checkpoint: u64,
    /// Bytes of the journal's segment files.
    pub journal_bytes: u64,
    /// The first seq the journal still holds.
    pub journal_first_seq: u64,
}

/// A state's journal and snapshots, without the fold.
///
/// ```
/// use mini_engine::state::{StateLog, StateOptions};
///
/// let dir = tempfile::tempdir()?;
/// let (log, point) = StateLog::open_with(dir.path(), &StateOptions::default())?;
/// assert!(point.snapshot.is_none());
/// log.commit_batch(&[r#"{"add":2}"#, r#"{"add":3}"#])?;
/// log.checkpoint(2, r#"{"total":5}"#)?; // the caller's fold at seq 2
/// log.commit(r#"{"add":4}"#)?;
/// drop(log);
///
/// let (log, point) = StateLog::open_with(dir.path(), &StateOptions::default())?;
/// assert_eq!(point.snapshot.as_ref().map(|s| s.state.as_str()), Some(r#"{"total":5}"#));
/// let tail: Vec<u64> = log.mutations_after(&point)?.map(|e| e.map(|e| e.seq)).collect::<Result<_, _>>()?;
/// assert_eq!(tail, [3]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct StateLog {
    dir: PathBuf,
    journal: Journal,
    snapshots: SnapshotStore,
    /// The seq of the newest checkpoint; held while a checkpoint is made.
    checkpoint_seq: Mutex<u64>,
}

impl StateLog {
    /// Opens (or creates) the state in `dir` (`journal/` and `snapshots/`
    /// inside it) and finds its recovery point (see [`StateLog::recover`]).
    pub fn open_with(
        dir: impl AsRef<Path>,
        options: &StateOptions,
    ) -> Result<(StateLog, RecoveryPoint), StateError> {
        let dir = dir.as_ref().to_path_buf();
        let journal = Journal::open_with(
            dir.join(JOURNAL_DIR),
            JournalOptions {
                segment_size: options.segment_size,
                max_record_size: options.max_record_size,
                preallocate: options.preallocate,
                fs: options.fs.clone(),
                ..JournalOptions::default()
            },
        )?;
        let snapshots = SnapshotStore::open_with(
            dir.join(SNAPSHOT_DIR),
            SnapshotOptions {
                keep: options.keep_snapshots,
                max_state_size: options.max_state_size,
                fs: options.fs.clone(),
            },
        )?;
        let log = StateLog {
            dir,
            journal,
            snapshots,
            checkpoint_seq: Mutex::new(0),
        };
        let point = log.recover()?;
        *log.lock_checkpoint() = point.seq();
        Ok((log, point))
    }

    /// The newest valid snapshot, checked against the journal.
    ///
    /// Fails with [`StateError::SnapshotBeyondJournal`] if that snapshot
    /// covers records the journal never had, and with
    /// [`StateError::JournalCompacted`] if the journal no longer reaches back
    /// to it: never with a silently wrong state.
    pub fn recover(&self) -> Result<RecoveryPoint, StateError> {
        let point = RecoveryPoint::from_restore(self.snapshots.restore())?;
        point.check_journal(self.journal.first_seq(), self.journal.last_seq())?;
        Ok(point)
    }

    /// The mutations after `point`'s snapshot, streamed in seq order.
    pub fn mutations_after(&self, point: &RecoveryPoint) -> Result<Reader, StateError> {
        Ok(self.journal.read_from(point.seq() + 1)?)
    }

    /// Logs one mutation (one JSON value) durably; returns its seq.
    pub fn commit(&self, mutation: &str) -> Result<u64, StateError> {
        Ok(self.journal.append(mutation)?)
    }

    /// Logs `mutations` as one atomic batch; returns the seq of the last one.
    pub fn commit_batch<R: AsRef<str>>(&self, mutations: &[R]) -> Result<u64, StateError> {
        Ok(self.journal.append_batch(mutations)?)
    }

    /// Stores `state_json` as the snapshot at `seq` durably, and only then
    /// compacts the journal: segments wholly below the oldest snapshot kept
    /// are deleted (so that a damaged newest snapshot can still fall back to
    /// the one before it plus a longer tail). Compaction waits until `keep`
    /// valid snapshots exist.
    ///
    /// `state_json` must be the fold of every mutation up to `seq`; `seq`
    /// must lie between the newest checkpoint and the last durable mutation
    /// (else [`StateError::CheckpointOutOfRange`]).
    pub fn checkpoint(&self, seq: u64, state_json: &str) -> Result<Checkpoint, StateError> {
        let mut newest = self.lock_checkpoint();
        let last_seq = self.journal.last_seq();
        if seq > last_seq || seq < *newest {
            return Err(StateError::CheckpointOutOfRange {
                seq,
                checkpoint_seq: *newest,
                last_seq,
            });
        }
        let created = self.snapshots.create(seq, state_json)?;
        *newest = seq;
        let mut segments_deleted = 0;
        if created.kept.len() >= self.snapshots.options().keep
            && let Some(&oldest) = created.kept.last()
        {
            segments_deleted = self.journal.truncate_before(oldest + 1)?;
        }
        tracing::debug!(dir = %self.journal.dir().display(), seq, segments_deleted, "state checkpoint made");
        Ok(Checkpoint {
            seq,
            kept_snapshots: created.kept,
            segments_deleted,
        })
    }

    fn lock_checkpoint(&self) -> MutexGuard<'_, u64> {
        self.checkpoint_seq
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The seq of the last durable mutation (0 if none).
    pub fn last_seq(&self) -> u64 {
        self.journal.last_seq()
    }

    /// The seq of the newest checkpoint, made or recovered from (0: none).
    /// Waits for a checkpoint in progress.
    pub fn checkpoint_seq(&self) -> u64 {
        *self.lock_checkpoint()
    }

    /// Counters for deciding when to checkpoint.
    pub fn stats(&self) -> LogStats {
        let checkpoint_seq = self.checkpoint_seq();
        let seq = self.last_seq();
        LogStats {
            seq,
            checkpoint_seq,
            records_since_checkpoint: seq.saturating_sub(checkpoint_seq),
            journal_bytes: self.journal.size_bytes(),
            journal_first_seq: self.journal.first_seq(),
        }
    }

    /// What journal recovery cut from a torn tail when the state was opened.
    pub fn journal_recovery(&self) -> &RecoveryReport {
        self.journal.recovery()
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The journal of mutations.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The snapshot store.
    pub fn snapshots(&self) -> &SnapshotStore {
        &self.snapshots
    }
}
