//! [`Journal<T>`] and [`Records<T>`]: a journal of `T` values, stored as
//! JSON.

use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::raw::{RawJournal, RawRecords};
use crate::{Error, to_json};

/// A durable, append-only journal of records of type `T`, stored as JSON.
///
/// `T` is serialized with `serde_json` on [`append`](Journal::append) and
/// deserialized on reads. `Journal<serde_json::Value>` reads any journal;
/// [`Journal::raw`] gives the untyped view of the same handle.
///
/// ```no_run
/// use mini_guest::Journal;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, Debug)]
/// struct Event {
///     user: String,
///     action: String,
/// }
///
/// let journal = Journal::<Event>::open("events")?;
/// journal.append(&Event { user: "ada".into(), action: "login".into() })?;
/// for record in journal.replay()? {
///     let (seq, event) = record?;
///     println!("{seq}: {event:?}");
/// }
/// # Ok::<(), mini_guest::Error>(())
/// ```
pub struct Journal<T> {
    raw: RawJournal,
    _records: PhantomData<fn(T) -> T>,
}

impl<T> Journal<T> {
    /// Opens the journal `name` in this instance's namespace, creating it if
    /// it does not exist.
    ///
    /// Fails with [`Error::InvalidName`] for a bad name, [`Error::Locked`]
    /// when another process holds it, [`Error::Corrupt`] when it is damaged.
    ///
    /// ```no_run
    /// let journal = mini_guest::Journal::<serde_json::Value>::open("events")?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Self, Error> {
        Ok(Self::from_raw(RawJournal::open(name)?))
    }

    /// Makes a typed view of an open raw journal.
    ///
    /// ```no_run
    /// use mini_guest::{Journal, RawJournal};
    ///
    /// let raw = RawJournal::open("events")?;
    /// let journal: Journal<serde_json::Value> = Journal::from_raw(raw);
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn from_raw(raw: RawJournal) -> Self {
        Self {
            raw,
            _records: PhantomData,
        }
    }

    /// The untyped view of this journal, for appending or reading JSON text.
    ///
    /// ```no_run
    /// let journal = mini_guest::Journal::<serde_json::Value>::open("events")?;
    /// journal.raw().append(r#"{"already":"json"}"#)?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn raw(&self) -> &RawJournal {
        &self.raw
    }

    /// Gives back the untyped journal.
    ///
    /// ```no_run
    /// let journal = mini_guest::Journal::<serde_json::Value>::open("events")?;
    /// let raw = journal.into_raw();
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn into_raw(self) -> RawJournal {
        self.raw
    }

    /// The sequence number of the first record still stored, or the next
    /// sequence number when the journal holds no record.
    ///
    /// ```no_run
    /// let journal = mini_guest::Journal::<serde_json::Value>::open("events")?;
    /// let first = journal.first_seq()?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn first_seq(&self) -> Result<u64, Error> {
        self.raw.first_seq()
    }

    /// The sequence number of the last durable record; `0` when nothing was
    /// ever appended.
    ///
    /// ```no_run
    /// let journal = mini_guest::Journal::<serde_json::Value>::open("events")?;
    /// let last = journal.last_seq()?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn last_seq(&self) -> Result<u64, Error> {
        self.raw.last_seq()
    }
}

impl<T: Serialize> Journal<T> {
    /// Appends one record durably and returns its sequence number. The record
    /// is on stable storage when this returns.
    ///
    /// Fails with [`Error::Serialize`] (nothing sent to the host) when `T`
    /// cannot be written as JSON, and with the host's error otherwise.
    ///
    /// ```no_run
    /// let journal = mini_guest::Journal::<serde_json::Value>::open("events")?;
    /// let seq = journal.append(&serde_json::json!({"n": 1}))?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn append(&self, record: &T) -> Result<u64, Error> {
        let json = to_json(record)?;
        self.raw.append(&json)
    }

    /// Appends records as one atomic unit (after a crash either all of them
    /// are stored or none) and returns the sequence number of the last one.
    ///
    /// ```no_run
    /// use serde_json::json;
    ///
    /// let journal = mini_guest::Journal::<serde_json::Value>::open("events")?;
    /// let last = journal.append_batch(&[json!({"n": 1}), json!({"n": 2})])?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn append_batch(&self, records: &[T]) -> Result<u64, Error> {
        let json = records.iter().map(to_json).collect::<Result<Vec<_>, _>>()?;
        self.raw.append_batch(&json)
    }
}

impl<T: DeserializeOwned> Journal<T> {
    /// Reads every record still stored, from the first one, in sequence
    /// order. Same as [`Journal::read_from`]`(0)`.
    ///
    /// ```no_run
    /// let journal = mini_guest::Journal::<serde_json::Value>::open("events")?;
    /// for record in journal.replay()? {
    ///     let (seq, value) = record?;
    ///     println!("{seq}: {value}");
    /// }
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn replay(&self) -> Result<Records<T>, Error> {
        self.read_from(0)
    }

    /// Reads the records from sequence number `seq` on, in sequence order;
    /// `0` means from the first record still stored.
    ///
    /// Fails with [`Error::OutOfRange`] when `seq` is before the first record
    /// still stored (after compaction).
    ///
    /// ```no_run
    /// let journal = mini_guest::Journal::<serde_json::Value>::open("events")?;
    /// let last = journal.last_seq()?;
    /// let recent: Vec<_> = journal
    ///     .read_from(last.saturating_sub(9).max(1))?
    ///     .collect::<Result<_, _>>()?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn read_from(&self, seq: u64) -> Result<Records<T>, Error> {
        Ok(Records {
            raw: self.raw.read_from(seq)?,
            _records: PhantomData,
        })
    }
}

impl<T> fmt::Debug for Journal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("type", &std::any::type_name::<T>())
            .field("raw", &self.raw)
            .finish()
    }
}

/// A streamed read over a [`Journal<T>`]: an iterator of `(seq, record)`
/// pairs in sequence order.
///
/// Records are fetched from the host in chunks of at most [`DEFAULT_CHUNK`](super::DEFAULT_CHUNK)
/// (see [`Records::chunk_size`]). A record that does not deserialize into `T`
/// yields [`Error::Deserialize`] and iteration may go on with the next one;
/// after an error from the host the iterator yields that error once and
/// then ends.
///
/// ```no_run
/// let journal = mini_guest::Journal::<u64>::open("numbers")?;
/// let sum: u64 = journal
///     .replay()?
///     .map(|r| r.map(|(_seq, n)| n))
///     .sum::<Result<u64, _>>()?;
/// # Ok::<(), mini_guest::Error>(())
/// ```
pub struct Records<T> {
    raw: RawRecords,
    _records: PhantomData<fn() -> T>,
}

impl<T> Records<T> {
    /// Sets how many records are fetched from the host per call (at least
    /// 1; the default is [`DEFAULT_CHUNK`](super::DEFAULT_CHUNK)).
    ///
    /// ```no_run
    /// let journal = mini_guest::Journal::<serde_json::Value>::open("events")?;
    /// let records = journal.replay()?.chunk_size(16);
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn chunk_size(mut self, max: u32) -> Self {
        self.raw = self.raw.chunk_size(max);
        self
    }

    /// The untyped records underneath (the JSON text of each record).
    ///
    /// ```no_run
    /// let journal = mini_guest::Journal::<serde_json::Value>::open("events")?;
    /// for record in journal.replay()?.into_raw() {
    ///     let (seq, json) = record?;
    ///     println!("{seq}: {json}");
    /// }
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn into_raw(self) -> RawRecords {
        self.raw
    }
}

impl<T: DeserializeOwned> Iterator for Records<T> {
    type Item = Result<(u64, T), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.raw.next_ref()?.and_then(|(seq, json)| {
            serde_json::from_str(json)
                .map(|value| (seq, value))
                .map_err(|e| Error::Deserialize {
                    seq,
                    message: e.to_string(),
                })
        }))
    }
}

impl<T: DeserializeOwned> std::iter::FusedIterator for Records<T> {}

impl<T> fmt::Debug for Records<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Records")
            .field("type", &std::any::type_name::<T>())
            .field("raw", &self.raw)
            .finish()
    }
}
