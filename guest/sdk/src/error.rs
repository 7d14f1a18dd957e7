//! [`Error`]: every failure of the SDK, mirroring the WIT `error` variant
//! plus the failures that happen inside the guest, and [`Resource`]: the
//! kind of thing an error is about.

use std::fmt;

use crate::bindings::mini::storage::types as wit;

/// The kind of storage a call went to: what an [`Error::InvalidName`] or an
/// [`Error::Corrupt`] is about (its `Display` is what the messages say:
/// `journal`, `state`, `snapshot store`, `queue`).
///
/// ```no_run
/// use mini_guest::{Error, RawQueue, Resource};
///
/// match RawQueue::open("a/b") {
///     Err(Error::InvalidName { resource: Resource::Queue, reason }) => {
///         eprintln!("not a queue name: {reason}")
///     }
///     other => println!("{other:?}"),
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// A journal (`mini:storage/store`: [`Journal`](crate::Journal),
    /// [`RawJournal`](crate::RawJournal) and their reads).
    Journal,
    /// A state (`mini:storage/state`: [`StateManager`](crate::StateManager)).
    State,
    /// A snapshot store (`mini:storage/snapshot`:
    /// [`Snapshots`](crate::Snapshots)).
    Snapshots,
    /// A queue (`mini:storage/queue`: [`Queue`](crate::Queue),
    /// [`RawQueue`](crate::RawQueue) and their deliveries).
    Queue,
}

impl Resource {
    /// What the messages call it: `"journal"`, `"state"`, `"snapshot
    /// store"`, `"queue"`.
    ///
    /// ```no_run
    /// assert_eq!(mini_guest::Resource::Snapshots.noun(), "snapshot store");
    /// ```
    pub fn noun(self) -> &'static str {
        match self {
            Resource::Journal => "journal",
            Resource::State => "state",
            Resource::Snapshots => "snapshot store",
            Resource::Queue => "queue",
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.noun())
    }
}

/// Why an operation failed.
///
/// The variants from [`Error::InvalidRecord`] to [`Error::Other`] mirror
/// the WIT `error` variant of `mini:storage/types` (which every interface
/// uses) one to one; [`Error::InvalidName`] and [`Error::Corrupt`] also say
/// which kind of storage ([`Resource`]) they are about.
/// [`Error::Serialize`], [`Error::Deserialize`], [`Error::BadMutation`],
/// [`Error::BadSnapshot`] and [`Error::BadPayload`] are failures of
/// `serde_json` inside the guest. Nothing already stored changes when an
/// operation fails, with one exception that says so:
/// [`Error::AutoCheckpoint`] (the mutation was stored and applied, the
/// checkpoint after it failed).
///
/// ```no_run
/// use mini_guest::{Error, RawJournal};
///
/// let journal = RawJournal::open("events")?;
/// match journal.append("not json") {
///     Err(Error::InvalidRecord(reason)) => eprintln!("rejected: {reason}"),
///     other => println!("{other:?}"),
/// }
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The record is not exactly one JSON value; carries the host's reason.
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// The record is larger than the host's record size limit; carries the
    /// limit in bytes.
    #[error("record too large: the limit is {0} bytes")]
    RecordTooLarge(u64),
    /// The name is not valid for a journal, state, snapshot store or queue
    /// (empty, too long, `.`/`..`, `/`, `\`, NUL or control characters).
    #[error("invalid {resource} name: {reason}")]
    InvalidName {
        /// What the name was to name.
        resource: Resource,
        /// The host's reason (it quotes the name).
        reason: String,
    },
    /// The stored data is damaged: a journal before its tail (the reason
    /// carries the file, the byte offset and the sequence number), a state
    /// or queue that cannot be recovered, a snapshot store whose snapshots
    /// are all damaged. An operator runs `mini verify`.
    #[error("{resource} corrupt: {reason}")]
    Corrupt {
        /// What is damaged.
        resource: Resource,
        /// The host's description of the damage.
        reason: String,
    },
    /// An I/O error on the host. After a failed fsync the handle stays
    /// failed until it is opened again.
    #[error("i/o error: {0}")]
    Io(String),
    /// A limit of this instance is exhausted (disk quota, open handles, what
    /// a queue's snapshot can hold).
    #[error("quota exceeded: {0}")]
    Quota(String),
    /// The module's manifest does not grant this name (storage is granted
    /// by capability, deny by default); nothing was created.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// Another process (or handle) holds the lock of the journal, state,
    /// snapshot store or queue.
    #[error("locked: {0}")]
    Locked(String),
    /// A sequence number outside the journal (for example before its first
    /// record after compaction), or a checkpoint's outside the state's.
    #[error("sequence number out of range: {0}")]
    OutOfRange(String),
    /// An argument the call cannot take whatever the stored data (a zero
    /// lease, a zero `max`); carries the reason.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// No such item: a queue message that is not (or no longer) in the
    /// queue, or not where the call needs it; carries the reason.
    #[error("not found: {0}")]
    NotFound(String),
    /// A lease token that is no longer current: the lease ended and the
    /// message was delivered again, or the message is not leased.
    #[error("stale lease token: {0}")]
    StaleToken(String),
    /// Any other failure reported by the host.
    #[error("{0}")]
    Other(String),
    /// A value (a record, a mutation, a state, a message) could not be
    /// serialized to JSON in the guest (nothing was sent to the host).
    #[error("cannot serialize to JSON: {0}")]
    Serialize(String),
    /// A journal record could not be deserialized into the requested type.
    #[error("cannot deserialize record {seq}: {message}")]
    Deserialize {
        /// The sequence number of the record.
        seq: u64,
        /// What `serde_json` reported.
        message: String,
    },
    /// A queue message's payload could not be deserialized into the
    /// [`Queue`](crate::Queue)'s message type `T` (see
    /// [`Delivery::payload`](crate::Delivery::payload) and
    /// [`DeadLetter::parse`](crate::DeadLetter::parse)).
    #[error("cannot deserialize the payload of message {id}: {message}")]
    BadPayload {
        /// The message id.
        id: u64,
        /// What `serde_json` reported.
        message: String,
    },
    /// A mutation stored in a state's journal could not be deserialized into
    /// the [`StateManager`](crate::StateManager)'s mutation type `M`: the
    /// state cannot be recovered with this type (was `M` changed
    /// incompatibly?).
    #[error("cannot deserialize the mutation at seq {seq}: {message}")]
    BadMutation {
        /// The sequence number of the mutation.
        seq: u64,
        /// What `serde_json` reported.
        message: String,
    },
    /// A snapshot's state could not be deserialized into the state type `S`
    /// (the snapshot file itself is intact: the host checked it).
    #[error("cannot deserialize the snapshot at seq {seq}: {message}")]
    BadSnapshot {
        /// The sequence number the snapshot covers.
        seq: u64,
        /// What `serde_json` reported.
        message: String,
    },
    /// A mutation was stored durably and applied in memory, but the
    /// automatic checkpoint that followed it failed. The mutation stands
    /// (`seq` is its sequence number, or the last one of a batch); the
    /// checkpoint can be retried with
    /// [`StateManager::checkpoint`](crate::StateManager::checkpoint), and
    /// the next mutation tries again anyway. Why it failed is `source`
    /// (also [`std::error::Error::source`], so `anyhow`'s `{:#}` prints it).
    #[error("mutation {seq} is stored and applied, but the automatic checkpoint after it failed")]
    AutoCheckpoint {
        /// The sequence number of the stored and applied mutation.
        seq: u64,
        /// Why the checkpoint failed.
        source: Box<Error>,
    },
}

impl Error {
    /// The variant's name in kebab case, as in the WIT (`"invalid-record"`,
    /// `"record-too-large"`, …; `"serialize"`, `"deserialize"`,
    /// `"bad-mutation"`, `"bad-snapshot"`, `"bad-payload"` and
    /// `"auto-checkpoint"` for the others). Handy for logs and
    /// machine-checked output.
    ///
    /// ```no_run
    /// use mini_guest::RawJournal;
    ///
    /// let journal = RawJournal::open("events")?;
    /// if let Err(e) = journal.append("{") {
    ///     assert_eq!(e.kind(), "invalid-record");
    /// }
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidRecord(_) => "invalid-record",
            Error::RecordTooLarge(_) => "record-too-large",
            Error::InvalidName { .. } => "invalid-name",
            Error::Corrupt { .. } => "corrupt",
            Error::Io(_) => "io",
            Error::Quota(_) => "quota",
            Error::AccessDenied(_) => "access-denied",
            Error::Locked(_) => "locked",
            Error::OutOfRange(_) => "out-of-range",
            Error::InvalidArgument(_) => "invalid-argument",
            Error::NotFound(_) => "not-found",
            Error::StaleToken(_) => "stale-token",
            Error::Other(_) => "other",
            Error::Serialize(_) => "serialize",
            Error::Deserialize { .. } => "deserialize",
            Error::BadMutation { .. } => "bad-mutation",
            Error::BadSnapshot { .. } => "bad-snapshot",
            Error::BadPayload { .. } => "bad-payload",
            Error::AutoCheckpoint { .. } => "auto-checkpoint",
        }
    }
}

impl Error {
    /// For [`Error::AutoCheckpoint`], the sequence number of the mutation
    /// that was stored and applied before the checkpoint failed; `None` for
    /// every other error (nothing was stored).
    ///
    /// ```no_run
    /// use mini_guest::{Mutator, StateManager};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Default, Serialize, Deserialize)]
    /// struct Total(u64);
    /// #[derive(Serialize, Deserialize)]
    /// struct Add(u64);
    /// impl Mutator<Total> for Add {
    ///     fn apply(&self, state: &mut Total) {
    ///         state.0 += self.0;
    ///     }
    /// }
    ///
    /// let mut total = StateManager::<Total, Add>::open("total")?;
    /// match total.apply(Add(1)) {
    ///     Ok(seq) => println!("stored as {seq}"),
    ///     Err(e) => match e.stored_seq() {
    ///         Some(seq) => eprintln!("stored as {seq}, but: {e}"),
    ///         None => eprintln!("not stored: {e}"),
    ///     },
    /// }
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn stored_seq(&self) -> Option<u64> {
        match self {
            Error::AutoCheckpoint { seq, .. } => Some(*seq),
            _ => None,
        }
    }
}

impl Error {
    /// The SDK's error for `error`, an error the host returned from a call
    /// to `resource` through the raw [`bindings`](crate::bindings).
    ///
    /// ```no_run
    /// use mini_guest::bindings::mini::storage::state::State;
    /// use mini_guest::{Error, Resource};
    ///
    /// let state = State::open("app").map_err(|e| Error::from_host(Resource::State, e))?;
    /// # Ok::<(), Error>(())
    /// ```
    pub fn from_host(resource: Resource, error: wit::Error) -> Self {
        match error {
            wit::Error::InvalidRecord(s) => Error::InvalidRecord(s),
            wit::Error::RecordTooLarge(n) => Error::RecordTooLarge(n),
            wit::Error::InvalidName(reason) => Error::InvalidName { resource, reason },
            wit::Error::Corrupt(reason) => Error::Corrupt { resource, reason },
            wit::Error::Io(s) => Error::Io(s),
            wit::Error::Quota(s) => Error::Quota(s),
            wit::Error::AccessDenied(s) => Error::AccessDenied(s),
            wit::Error::Locked(s) => Error::Locked(s),
            wit::Error::OutOfRange(s) => Error::OutOfRange(s),
            wit::Error::InvalidArgument(s) => Error::InvalidArgument(s),
            wit::Error::NotFound(s) => Error::NotFound(s),
            wit::Error::StaleToken(s) => Error::StaleToken(s),
            wit::Error::Other(s) => Error::Other(s),
        }
    }
}

/// Host results made SDK results, with the [`Resource`] they came from.
pub(crate) trait HostResult<T> {
    /// `self` with its error made an [`Error`] about `resource`.
    fn on(self, resource: Resource) -> Result<T, Error>;
}

impl<T> HostResult<T> for Result<T, wit::Error> {
    fn on(self, resource: Resource) -> Result<T, Error> {
        self.map_err(|e| Error::from_host(resource, e))
    }
}
