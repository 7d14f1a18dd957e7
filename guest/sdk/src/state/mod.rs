//! [`StateManager<S, M>`]: a state that is the fold of durable mutations,
//! over the WIT resource `mini:storage/state.state`.
//!
//! The fold runs here, in the guest; the host keeps the mutations in a
//! journal and the state's snapshots. The shape is the one of the native
//! `mini_engine::state::StateManager` (and of the original `ministate`
//! crate): a [`Mutator<S>`] trait, `open`, `apply`, `apply_batch`,
//! `checkpoint`, `state`, `sequence`, `stats`, a [`CheckpointPolicy`].

use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::mini::storage::state as wit;
use crate::error::HostResult;
use crate::journal::Blocks;
use crate::{DEFAULT_CHUNK, Error, Resource, to_json};

const STATE: Resource = Resource::State;

mod types;

pub use types::{Checkpoint, CheckpointPolicy, Mutator, Recovery, StateStats};

/// What was stored since the last checkpoint, counted in the guest.
#[derive(Debug, Clone, Copy, Default)]
struct Since {
    records: u64,
    bytes: u64,
}

/// A state that survives crashes: the fold of durable mutations.
///
/// Every mutation is stored durably by the host before it is applied in
/// memory; opening recovers the newest valid snapshot plus the mutations
/// stored after it; a checkpoint stores the state as a snapshot and lets the
/// host compact the journal. A state has one owner: while one handle holds
/// it (in any instance or process), another open fails with
/// [`Error::Locked`].
///
/// `S` is the state (its snapshots are JSON, via `serde_json`), `M` the
/// mutation type (each mutation is one JSON record in the journal).
///
/// ```no_run
/// use mini_guest::{CheckpointPolicy, Mutator, StateManager};
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
///
/// let mut mgr: StateManager<Counter, Op> =
///     StateManager::open_with("counter", CheckpointPolicy::every_records(1000))?;
/// for warning in &mgr.recovery().warnings {
///     eprintln!("warning: {warning}");
/// }
/// let seq = mgr.apply(Op::Inc { by: 5 })?; // durable when it returns
/// mgr.apply_batch(vec![Op::Set { value: 10 }, Op::Inc { by: 1 }])?; // all or nothing
/// mgr.checkpoint()?; // snapshot, then the host compacts the journal
/// println!("value {} at seq {}", mgr.state().value, mgr.sequence());
/// # Ok::<(), mini_guest::Error>(())
/// ```
pub struct StateManager<S, M> {
    handle: wit::State,
    name: String,
    state: S,
    seq: u64,
    policy: CheckpointPolicy,
    since: Since,
    recovery: Recovery,
    _mutation: PhantomData<fn(M)>,
}

impl<S, M> StateManager<S, M>
where
    S: Serialize + DeserializeOwned + Default,
    M: Mutator<S> + Serialize + DeserializeOwned,
{
    /// Opens (or creates) the state `name` in this instance's namespace,
    /// without automatic checkpoints; see [`StateManager::open_with`].
    ///
    /// ```no_run
    /// # use mini_guest::{Mutator, StateManager};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct S;
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct M;
    /// # impl Mutator<S> for M { fn apply(&self, _: &mut S) {} }
    /// let mgr = StateManager::<S, M>::open("app")?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Self, Error> {
        Self::open_with(name, CheckpointPolicy::default())
    }

    /// Opens (or creates) the state `name` and recovers it: the newest valid
    /// snapshot's state (or `S::default()` when there is none), then every
    /// mutation stored after it, applied in order. The mutations are fetched
    /// from the host [`DEFAULT_CHUNK`] at a time, never the whole journal in
    /// one call. Nothing is printed: damaged snapshots the host passed over
    /// are in [`StateManager::recovery`]'s `warnings`.
    ///
    /// `policy` decides when [`apply`](StateManager::apply) checkpoints on
    /// its own; the mutations replayed here count towards it.
    ///
    /// Fails with the host's error ([`Error::Locked`] when another handle
    /// holds the state, [`Error::Corrupt`] when it cannot be recovered
    /// without losing mutations, …), with [`Error::BadSnapshot`] when the
    /// snapshot's state is not a valid `S`, and with [`Error::BadMutation`]
    /// when a stored mutation is not a valid `M`: never with a silently
    /// wrong state.
    ///
    /// ```no_run
    /// # use mini_guest::{CheckpointPolicy, Mutator, StateManager};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct S;
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct M;
    /// # impl Mutator<S> for M { fn apply(&self, _: &mut S) {} }
    /// let policy = CheckpointPolicy {
    ///     every_records: Some(500),
    ///     every_bytes: Some(4 << 20),
    /// };
    /// let mgr = StateManager::<S, M>::open_with("app", policy)?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn open_with(name: &str, policy: CheckpointPolicy) -> Result<Self, Error> {
        let handle = wit::State::open(name).on(STATE)?;
        let wit::Recovery {
            snapshot,
            warnings,
            mutations,
        } = handle.recover().on(STATE)?;
        let (mut state, snapshot_seq) = match snapshot {
            Some(point) => {
                let state: S =
                    serde_json::from_str(&point.state).map_err(|e| Error::BadSnapshot {
                        seq: point.seq,
                        message: e.to_string(),
                    })?;
                (state, Some(point.seq))
            }
            None => (S::default(), None),
        };
        let mut seq = snapshot_seq.unwrap_or(0);
        let mut since = Since::default();
        // A block at a time: each mutation is parsed where it lies in the
        // block, never copied on its own.
        let mut blocks = Blocks::new();
        while let Some(entry) = blocks.next(&mutations, DEFAULT_CHUNK, STATE) {
            let (entry_seq, data) = entry?;
            if entry_seq != seq + 1 {
                return Err(Error::Corrupt {
                    resource: STATE,
                    reason: format!(
                        "{name:?}: recovery returned mutation {entry_seq} after {seq} \
                         (sequence numbers must be contiguous)"
                    ),
                });
            }
            let mutation: M = serde_json::from_str(data).map_err(|e| Error::BadMutation {
                seq: entry_seq,
                message: e.to_string(),
            })?;
            mutation.apply(&mut state);
            since.records += 1;
            since.bytes += data.len() as u64;
            seq = entry_seq;
        }
        drop(mutations);
        let durable = handle.current_seq().on(STATE)?;
        if durable != seq {
            return Err(Error::Corrupt {
                resource: STATE,
                reason: format!(
                    "{name:?}: recovery reached seq {seq}, but the last durable \
                     mutation is {durable}"
                ),
            });
        }
        Ok(StateManager {
            handle,
            name: name.to_owned(),
            state,
            seq,
            policy,
            since,
            recovery: Recovery {
                snapshot_seq,
                replayed: since.records,
                warnings,
            },
            _mutation: PhantomData,
        })
    }

    /// Stores `mutation` durably, then applies it to the state in memory;
    /// returns its sequence number.
    ///
    /// If storing fails, nothing is applied and the error is the host's (or
    /// [`Error::Serialize`]). When the [`CheckpointPolicy`] says a checkpoint
    /// is due, one follows; if it fails the error is
    /// [`Error::AutoCheckpoint`], which carries the sequence number of the
    /// mutation, stored and applied all the same.
    ///
    /// ```no_run
    /// # use mini_guest::{Mutator, StateManager};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct S;
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct M;
    /// # impl Mutator<S> for M { fn apply(&self, _: &mut S) {} }
    /// let mut mgr = StateManager::<S, M>::open("app")?;
    /// let seq = mgr.apply(M)?;
    /// assert_eq!(seq, mgr.sequence());
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn apply(&mut self, mutation: M) -> Result<u64, Error> {
        let record = to_json(&mutation)?;
        let seq = self.handle.commit(&record).on(STATE)?;
        mutation.apply(&mut self.state);
        self.stored(seq, 1, record.len() as u64)
    }

    /// Stores `mutations` as one atomic batch (after a crash all of them are
    /// there or none), then applies them in order; returns the sequence
    /// number of the last one. An empty batch stores nothing, makes no host
    /// call and returns the current sequence number.
    ///
    /// Errors as for [`StateManager::apply`]; nothing is applied when the
    /// batch is refused (for example one mutation above the host's record
    /// size limit).
    ///
    /// ```no_run
    /// # use mini_guest::{Mutator, StateManager};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct S;
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct M;
    /// # impl Mutator<S> for M { fn apply(&self, _: &mut S) {} }
    /// let mut mgr = StateManager::<S, M>::open("app")?;
    /// let last = mgr.apply_batch(vec![M, M, M])?;
    /// assert_eq!(mgr.apply_batch(Vec::new())?, last);
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn apply_batch(&mut self, mutations: Vec<M>) -> Result<u64, Error> {
        if mutations.is_empty() {
            return Ok(self.seq);
        }
        let records = mutations
            .iter()
            .map(to_json)
            .collect::<Result<Vec<_>, _>>()?;
        let borrowed: Vec<&str> = records.iter().map(String::as_str).collect();
        let seq = self.handle.commit_batch(&borrowed).on(STATE)?;
        for mutation in &mutations {
            mutation.apply(&mut self.state);
        }
        let bytes = records.iter().map(|r| r.len() as u64).sum();
        self.stored(seq, records.len() as u64, bytes)
    }

    /// Bookkeeping after `records` mutations (`bytes` of JSON) were stored
    /// up to `seq` and applied: counters, then the automatic checkpoint.
    fn stored(&mut self, seq: u64, records: u64, bytes: u64) -> Result<u64, Error> {
        self.seq = seq;
        self.since.records += records;
        self.since.bytes += bytes;
        if self.policy.is_due(self.since.records, self.since.bytes) {
            self.checkpoint().map_err(|e| Error::AutoCheckpoint {
                seq,
                source: Box::new(e),
            })?;
        }
        Ok(seq)
    }

    /// Stores the current state as a snapshot at the current sequence
    /// number, durably; the host then compacts the journal (it deletes the
    /// segments the kept snapshots cover). Resets the automatic checkpoint
    /// counters.
    ///
    /// Fails with [`Error::Serialize`] when the state cannot be written as
    /// JSON, [`Error::RecordTooLarge`] when it is above the host's size
    /// limit, or another host error; the state and the journal are then as
    /// before.
    ///
    /// ```no_run
    /// # use mini_guest::{Mutator, StateManager};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct S;
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct M;
    /// # impl Mutator<S> for M { fn apply(&self, _: &mut S) {} }
    /// let mut mgr = StateManager::<S, M>::open("app")?;
    /// let done = mgr.checkpoint()?;
    /// assert_eq!(done.seq, mgr.sequence());
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn checkpoint(&mut self) -> Result<Checkpoint, Error> {
        let json = to_json(&self.state)?;
        let info = self.handle.checkpoint(&json, self.seq).on(STATE)?;
        self.since = Since::default();
        Ok(info.into())
    }
}

impl<S, M> StateManager<S, M> {
    /// The current state: every stored mutation applied.
    ///
    /// ```no_run
    /// # use mini_guest::{Mutator, StateManager};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct S;
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct M;
    /// # impl Mutator<S> for M { fn apply(&self, _: &mut S) {} }
    /// let mgr = StateManager::<S, M>::open("app")?;
    /// let state: &S = mgr.state();
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn state(&self) -> &S {
        &self.state
    }

    /// A copy of the current state.
    ///
    /// ```no_run
    /// # use mini_guest::{Mutator, StateManager};
    /// # #[derive(Default, Clone, serde::Serialize, serde::Deserialize)] struct S;
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct M;
    /// # impl Mutator<S> for M { fn apply(&self, _: &mut S) {} }
    /// let mgr = StateManager::<S, M>::open("app")?;
    /// let copy: S = mgr.snapshot();
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn snapshot(&self) -> S
    where
        S: Clone,
    {
        self.state.clone()
    }

    /// Gives up the handle (and the state's lock) and returns the state.
    ///
    /// ```no_run
    /// # use mini_guest::{Mutator, StateManager};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct S;
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct M;
    /// # impl Mutator<S> for M { fn apply(&self, _: &mut S) {} }
    /// let mgr = StateManager::<S, M>::open("app")?;
    /// let state: S = mgr.into_state();
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn into_state(self) -> S {
        self.state
    }

    /// The sequence number of the last applied mutation (`0`: none yet).
    /// Every mutation up to it is durable.
    ///
    /// ```no_run
    /// # use mini_guest::{Mutator, StateManager};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct S;
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct M;
    /// # impl Mutator<S> for M { fn apply(&self, _: &mut S) {} }
    /// let mgr = StateManager::<S, M>::open("app")?;
    /// println!("at seq {}", mgr.sequence());
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn sequence(&self) -> u64 {
        self.seq
    }

    /// The host's counters for this state (one host call).
    ///
    /// ```no_run
    /// # use mini_guest::{Mutator, StateManager};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct S;
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct M;
    /// # impl Mutator<S> for M { fn apply(&self, _: &mut S) {} }
    /// let mgr = StateManager::<S, M>::open("app")?;
    /// let stats = mgr.stats()?;
    /// println!("journal: {} bytes", stats.journal_bytes);
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn stats(&self) -> Result<StateStats, Error> {
        Ok(self.handle.stats().on(STATE)?.into())
    }

    /// What recovery found when the state was opened: the snapshot it
    /// started from, how many mutations it replayed, warnings about damaged
    /// snapshots.
    ///
    /// ```no_run
    /// # use mini_guest::{Mutator, StateManager};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct S;
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct M;
    /// # impl Mutator<S> for M { fn apply(&self, _: &mut S) {} }
    /// let mgr = StateManager::<S, M>::open("app")?;
    /// for warning in &mgr.recovery().warnings {
    ///     eprintln!("app: warning: {warning}");
    /// }
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The automatic checkpoint policy.
    ///
    /// ```no_run
    /// # use mini_guest::{Mutator, StateManager};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct S;
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct M;
    /// # impl Mutator<S> for M { fn apply(&self, _: &mut S) {} }
    /// let mgr = StateManager::<S, M>::open("app")?;
    /// assert_eq!(mgr.policy(), mini_guest::CheckpointPolicy::never());
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn policy(&self) -> CheckpointPolicy {
        self.policy
    }

    /// Changes the automatic checkpoint policy (the counters go on).
    ///
    /// ```no_run
    /// # use mini_guest::{CheckpointPolicy, Mutator, StateManager};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct S;
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct M;
    /// # impl Mutator<S> for M { fn apply(&self, _: &mut S) {} }
    /// let mut mgr = StateManager::<S, M>::open("app")?;
    /// mgr.set_policy(CheckpointPolicy::every_records(100));
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn set_policy(&mut self, policy: CheckpointPolicy) {
        self.policy = policy;
    }

    /// Mutations stored (replayed or applied) since the last checkpoint, as
    /// counted in the guest for the [`CheckpointPolicy`]: `(records, bytes)`.
    ///
    /// ```no_run
    /// # use mini_guest::{Mutator, StateManager};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct S;
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct M;
    /// # impl Mutator<S> for M { fn apply(&self, _: &mut S) {} }
    /// let mgr = StateManager::<S, M>::open("app")?;
    /// let (records, bytes) = mgr.since_checkpoint();
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn since_checkpoint(&self) -> (u64, u64) {
        (self.since.records, self.since.bytes)
    }

    /// The state's name.
    ///
    /// ```no_run
    /// # use mini_guest::{Mutator, StateManager};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct S;
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct M;
    /// # impl Mutator<S> for M { fn apply(&self, _: &mut S) {} }
    /// let mgr = StateManager::<S, M>::open("app")?;
    /// assert_eq!(mgr.name(), "app");
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The underlying WIT resource handle (for the raw [`bindings`](crate::bindings)).
    /// Committing through it behind the manager's back leaves the in-memory
    /// state behind the journal until the next open.
    ///
    /// ```no_run
    /// # use mini_guest::{Mutator, StateManager};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct S;
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct M;
    /// # impl Mutator<S> for M { fn apply(&self, _: &mut S) {} }
    /// use mini_guest::{Error, Resource};
    ///
    /// let mgr = StateManager::<S, M>::open("app")?;
    /// let durable = mgr
    ///     .as_bindings()
    ///     .current_seq()
    ///     .map_err(|e| Error::from_host(Resource::State, e))?;
    /// # Ok::<(), Error>(())
    /// ```
    pub fn as_bindings(&self) -> &wit::State {
        &self.handle
    }
}

impl<S, M> fmt::Debug for StateManager<S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateManager")
            .field("name", &self.name)
            .field("state", &std::any::type_name::<S>())
            .field("mutation", &std::any::type_name::<M>())
            .field("handle", &self.handle.handle())
            .field("seq", &self.seq)
            .field("policy", &self.policy)
            .field("since", &self.since)
            .field("recovery", &self.recovery)
            .finish()
    }
}
