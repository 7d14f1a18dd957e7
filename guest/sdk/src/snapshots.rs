//! [`Snapshots<S>`]: typed, atomic, durable snapshots over the WIT resource
//! `mini:storage/snapshot.snapshots`.

use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::mini::storage::snapshot as wit;
use crate::error::HostResult;
use crate::{Error, Resource, to_json};

const SNAPSHOTS: Resource = Resource::Snapshots;

/// A snapshot file as listed by [`Snapshots::list`].
///
/// ```no_run
/// let snapshots = mini_guest::Snapshots::<serde_json::Value>::open("app")?;
/// for info in snapshots.list()? {
///     println!("snapshot at {}: {} bytes", info.seq, info.size);
/// }
/// # Ok::<(), mini_guest::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The sequence number the snapshot covers.
    pub seq: u64,
    /// The file's size in bytes.
    pub size: u64,
}

/// The newest valid snapshot, as returned by [`Snapshots::restore`].
///
/// ```no_run
/// let snapshots = mini_guest::Snapshots::<Vec<String>>::open("app")?;
/// if let Some(restored) = snapshots.restore()? {
///     for warning in &restored.warnings {
///         eprintln!("warning: {warning}");
///     }
///     println!("{} items at seq {}", restored.state.len(), restored.seq);
/// }
/// # Ok::<(), mini_guest::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored<S> {
    /// The sequence number the state covers.
    pub seq: u64,
    /// The state.
    pub state: S,
    /// Newer snapshots that were damaged and passed over, newest first, one
    /// description each: warn about them.
    pub warnings: Vec<String>,
}

/// The snapshots of a state of type `S`, stored under one name in this
/// instance's namespace.
///
/// A snapshot is one JSON value (`S` via `serde_json`) with the sequence
/// number it covers. The host writes it atomically and durably (after a
/// crash it is there whole or not at all) and keeps the newest valid ones
/// (two by default), so that a damaged newest snapshot falls back to the one
/// before it. One handle at a time may hold a name (another open fails with
/// [`Error::Locked`]).
///
/// [`StateManager`](crate::StateManager) manages its own snapshots; use
/// `Snapshots` directly when the state is not a fold of mutations (or the
/// mutations live elsewhere).
///
/// ```no_run
/// use std::collections::BTreeMap;
///
/// use mini_guest::Snapshots;
///
/// type Config = BTreeMap<String, String>;
///
/// let snapshots = Snapshots::<Config>::open("config")?;
/// let (seq, mut config) = match snapshots.restore()? {
///     Some(restored) => (restored.seq, restored.state),
///     None => (0, Config::new()),
/// };
/// config.insert("mode".into(), "fast".into());
/// snapshots.create(&config, seq + 1)?; // durable when it returns
/// # Ok::<(), mini_guest::Error>(())
/// ```
pub struct Snapshots<S> {
    handle: wit::Snapshots,
    _state: PhantomData<fn(S) -> S>,
}

impl<S> Snapshots<S> {
    /// Opens (or creates) the snapshots `name`.
    ///
    /// Fails with [`Error::InvalidName`] for a bad name and
    /// [`Error::Locked`] when another handle holds it.
    ///
    /// ```no_run
    /// let snapshots = mini_guest::Snapshots::<serde_json::Value>::open("app")?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Self, Error> {
        Ok(Self::from_bindings(
            wit::Snapshots::open(name).on(SNAPSHOTS)?,
        ))
    }

    /// Every snapshot file, ascending by sequence number. The files are not
    /// checked (a damaged one is listed too).
    ///
    /// ```no_run
    /// let snapshots = mini_guest::Snapshots::<serde_json::Value>::open("app")?;
    /// let newest = snapshots.list()?.last().map(|info| info.seq);
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn list(&self) -> Result<Vec<SnapshotInfo>, Error> {
        Ok(self
            .handle
            .list()
            .on(SNAPSHOTS)?
            .into_iter()
            .map(|info| SnapshotInfo {
                seq: info.seq,
                size: info.size,
            })
            .collect())
    }

    /// Deletes the snapshots for sequence numbers below `seq`; returns how
    /// many were deleted.
    ///
    /// ```no_run
    /// let snapshots = mini_guest::Snapshots::<serde_json::Value>::open("app")?;
    /// let deleted = snapshots.delete_older_than(100)?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn delete_older_than(&self, seq: u64) -> Result<u32, Error> {
        self.handle.delete_older_than(seq).on(SNAPSHOTS)
    }

    /// Wraps a WIT resource handle obtained from the raw
    /// [`bindings`](crate::bindings).
    ///
    /// ```no_run
    /// use mini_guest::bindings::mini::storage::snapshot::Snapshots as Raw;
    ///
    /// let snapshots = mini_guest::Snapshots::<serde_json::Value>::from_bindings(Raw::open("app")?);
    /// # Ok::<(), mini_guest::bindings::mini::storage::types::Error>(())
    /// ```
    pub fn from_bindings(handle: wit::Snapshots) -> Self {
        Self {
            handle,
            _state: PhantomData,
        }
    }

    /// The underlying WIT resource handle.
    ///
    /// ```no_run
    /// use mini_guest::{Error, Resource, Snapshots};
    ///
    /// let snapshots = Snapshots::<serde_json::Value>::open("app")?;
    /// let raw = snapshots // the state as JSON text
    ///     .as_bindings()
    ///     .restore()
    ///     .map_err(|e| Error::from_host(Resource::Snapshots, e))?;
    /// # Ok::<(), Error>(())
    /// ```
    pub fn as_bindings(&self) -> &wit::Snapshots {
        &self.handle
    }

    /// Gives back the WIT resource handle.
    ///
    /// ```no_run
    /// let snapshots = mini_guest::Snapshots::<serde_json::Value>::open("app")?;
    /// let handle = snapshots.into_bindings();
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn into_bindings(self) -> wit::Snapshots {
        self.handle
    }
}

impl<S: Serialize> Snapshots<S> {
    /// Stores `state` as the snapshot for `seq`, durably (whole or not at
    /// all after a crash); then the host deletes the snapshots beyond the
    /// newest ones it keeps.
    ///
    /// Fails with [`Error::Serialize`] (nothing sent) when `state` cannot be
    /// written as JSON, [`Error::RecordTooLarge`] above the host's size
    /// limit.
    ///
    /// ```no_run
    /// let snapshots = mini_guest::Snapshots::<Vec<u32>>::open("app")?;
    /// snapshots.create(&vec![1, 2, 3], 3)?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn create(&self, state: &S, seq: u64) -> Result<(), Error> {
        let json = to_json(state)?;
        self.handle.create(&json, seq).on(SNAPSHOTS)
    }
}

impl<S: DeserializeOwned> Snapshots<S> {
    /// The newest valid snapshot, or `None` when there is none. Damaged newer
    /// snapshots the host passed over are in [`Restored::warnings`].
    ///
    /// Fails with [`Error::Corrupt`] when snapshot files exist but all are
    /// damaged, and with [`Error::BadSnapshot`] when the newest valid
    /// snapshot is not a valid `S`.
    ///
    /// ```no_run
    /// let snapshots = mini_guest::Snapshots::<Vec<u32>>::open("app")?;
    /// let state = snapshots.restore()?.map(|r| r.state).unwrap_or_default();
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn restore(&self) -> Result<Option<Restored<S>>, Error> {
        let Some(restored) = self.handle.restore().on(SNAPSHOTS)? else {
            return Ok(None);
        };
        let state = serde_json::from_str(&restored.state).map_err(|e| Error::BadSnapshot {
            seq: restored.seq,
            message: e.to_string(),
        })?;
        Ok(Some(Restored {
            seq: restored.seq,
            state,
            warnings: restored.warnings,
        }))
    }
}

impl<S> fmt::Debug for Snapshots<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshots")
            .field("type", &std::any::type_name::<S>())
            .field("handle", &self.handle.handle())
            .finish()
    }
}
