//! The types around a [`StateManager`](super::StateManager): the
//! [`Mutator`] trait, the [`CheckpointPolicy`], and what recovery, a
//! checkpoint and `stats` report.

#[cfg(doc)]
use super::StateManager;
use crate::bindings::mini::storage::types as wit;

/// A mutation of a state `S`.
///
/// `apply` must be deterministic and free of side effects: recovery replays
/// the mutations stored after the newest snapshot and must reach the same
/// state. It cannot fail: check what must be checked *before* calling
/// [`StateManager::apply`], when nothing is stored yet.
///
/// ```no_run
/// use mini_guest::Mutator;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Default, Serialize, Deserialize)]
/// struct Counter {
///     value: i64,
/// }
///
/// #[derive(Serialize, Deserialize)]
/// enum Op {
///     Inc { by: i64 },
///     Set { value: i64 },
/// }
///
/// impl Mutator<Counter> for Op {
///     fn apply(&self, state: &mut Counter) {
///         match self {
///             Op::Inc { by } => state.value += by,
///             Op::Set { value } => state.value = *value,
///         }
///     }
/// }
/// ```
pub trait Mutator<S> {
    /// Applies this mutation to `state`. Called only after the mutation is
    /// durable in the journal (and again for each stored mutation when the
    /// state is recovered).
    fn apply(&self, state: &mut S);
}

/// When a [`StateManager`] checkpoints on its own, after a mutation.
///
/// The counters are kept in the guest: the records (and their bytes, as
/// JSON) replayed at recovery plus those committed since, reset by every
/// checkpoint. Both limits `None` (the [`Default`]) means never: call
/// [`StateManager::checkpoint`] yourself.
///
/// ```no_run
/// use mini_guest::CheckpointPolicy;
///
/// let policy = CheckpointPolicy::every_records(500);
/// let both = CheckpointPolicy {
///     every_records: Some(500),
///     every_bytes: Some(1 << 20),
/// };
/// assert_eq!(CheckpointPolicy::default(), CheckpointPolicy::never());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// Checkpoint once this many mutations were stored since the last
    /// checkpoint.
    pub every_records: Option<u64>,
    /// Checkpoint once this many bytes of mutations (as JSON) were stored
    /// since the last checkpoint.
    pub every_bytes: Option<u64>,
}

impl CheckpointPolicy {
    /// No automatic checkpoint (the default).
    ///
    /// ```no_run
    /// let policy = mini_guest::CheckpointPolicy::never();
    /// assert_eq!(policy.every_records, None);
    /// ```
    pub const fn never() -> Self {
        CheckpointPolicy {
            every_records: None,
            every_bytes: None,
        }
    }

    /// A checkpoint every `n` mutations (`0` means never).
    ///
    /// ```no_run
    /// let policy = mini_guest::CheckpointPolicy::every_records(500);
    /// assert_eq!(policy.every_records, Some(500));
    /// ```
    pub const fn every_records(n: u64) -> Self {
        CheckpointPolicy {
            every_records: if n == 0 { None } else { Some(n) },
            every_bytes: None,
        }
    }

    /// A checkpoint every `n` bytes of mutations, as JSON (`0` means never).
    ///
    /// ```no_run
    /// let policy = mini_guest::CheckpointPolicy::every_bytes(1 << 20);
    /// assert_eq!(policy.every_bytes, Some(1 << 20));
    /// ```
    pub const fn every_bytes(n: u64) -> Self {
        CheckpointPolicy {
            every_records: None,
            every_bytes: if n == 0 { None } else { Some(n) },
        }
    }

    /// True when a checkpoint is due after `records` mutations of `bytes`
    /// bytes since the last one.
    ///
    /// ```no_run
    /// let policy = mini_guest::CheckpointPolicy::every_records(2);
    /// assert!(!policy.is_due(1, 100));
    /// assert!(policy.is_due(2, 200));
    /// ```
    pub fn is_due(&self, records: u64, bytes: u64) -> bool {
        self.every_records.is_some_and(|n| n > 0 && records >= n)
            || self.every_bytes.is_some_and(|n| n > 0 && bytes >= n)
    }
}

/// What [`StateManager::open`] recovered from.
///
/// ```no_run
/// # use mini_guest::{Mutator, StateManager};
/// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct S;
/// # #[derive(serde::Serialize, serde::Deserialize)] struct M;
/// # impl Mutator<S> for M { fn apply(&self, _: &mut S) {} }
/// let mgr = StateManager::<S, M>::open("app")?;
/// let recovery = mgr.recovery();
/// for warning in &recovery.warnings {
///     eprintln!("warning: {warning}");
/// }
/// println!(
///     "from snapshot {:?}, {} mutations replayed",
///     recovery.snapshot_seq, recovery.replayed
/// );
/// # Ok::<(), mini_guest::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// The sequence number of the snapshot recovery started from; `None`
    /// when there was none (the state started from `S::default()`).
    pub snapshot_seq: Option<u64>,
    /// Mutations replayed on top of the snapshot.
    pub replayed: u64,
    /// Damaged snapshots the host passed over, newest first, one
    /// description each. Not fatal (recovery used an older snapshot and a
    /// longer replay), but worth telling an operator.
    pub warnings: Vec<String>,
}

/// What [`StateManager::checkpoint`] did.
///
/// ```no_run
/// # use mini_guest::{Mutator, StateManager};
/// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct S;
/// # #[derive(serde::Serialize, serde::Deserialize)] struct M;
/// # impl Mutator<S> for M { fn apply(&self, _: &mut S) {} }
/// let mut mgr = StateManager::<S, M>::open("app")?;
/// let done = mgr.checkpoint()?;
/// println!(
///     "snapshot at {}, kept {:?}, {} segments deleted",
///     done.seq, done.kept_snapshots, done.segments_deleted
/// );
/// # Ok::<(), mini_guest::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// The sequence number the new snapshot covers.
    pub seq: u64,
    /// The sequence numbers of the snapshots kept, newest first.
    pub kept_snapshots: Vec<u64>,
    /// Journal segment files deleted by the compaction.
    pub segments_deleted: u32,
}

impl From<wit::CheckpointInfo> for Checkpoint {
    fn from(info: wit::CheckpointInfo) -> Self {
        Checkpoint {
            seq: info.seq,
            kept_snapshots: info.kept_snapshots,
            segments_deleted: info.segments_deleted,
        }
    }
}

/// The host's counters for a state ([`StateManager::stats`]).
///
/// ```no_run
/// # use mini_guest::{Mutator, StateManager};
/// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct S;
/// # #[derive(serde::Serialize, serde::Deserialize)] struct M;
/// # impl Mutator<S> for M { fn apply(&self, _: &mut S) {} }
/// let mgr = StateManager::<S, M>::open("app")?;
/// let stats = mgr.stats()?;
/// println!(
///     "seq {}, {} since the checkpoint at {}, journal {} bytes from seq {}",
///     stats.seq,
///     stats.records_since_checkpoint,
///     stats.checkpoint_seq,
///     stats.journal_bytes,
///     stats.journal_first_seq
/// );
/// # Ok::<(), mini_guest::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateStats {
    /// The sequence number of the last durable mutation (0: none).
    pub seq: u64,
    /// The sequence number of the newest checkpoint (0: none).
    pub checkpoint_seq: u64,
    /// Mutations logged since that checkpoint.
    pub records_since_checkpoint: u64,
    /// Bytes of the state's journal files on disk.
    pub journal_bytes: u64,
    /// The first sequence number the journal still holds.
    pub journal_first_seq: u64,
}

impl From<wit::StateStats> for StateStats {
    fn from(stats: wit::StateStats) -> Self {
        StateStats {
            seq: stats.seq,
            checkpoint_seq: stats.checkpoint_seq,
            records_since_checkpoint: stats.records_since_checkpoint,
            journal_bytes: stats.journal_bytes,
            journal_first_seq: stats.journal_first_seq,
        }
    }
}
