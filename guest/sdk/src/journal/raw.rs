//! [`RawJournal`] and [`RawRecords`]: a journal of JSON text.

use std::fmt;

use super::{Blocks, DEFAULT_CHUNK};
use crate::bindings::mini::storage::store as wit;
use crate::error::HostResult;
use crate::{Error, Resource};

const JOURNAL: Resource = Resource::Journal;

/// A journal whose records are JSON text, passed to the host unchanged.
///
/// The host checks every record: exactly one JSON value, no larger than its
/// record size limit. Use this to store JSON you already have as text, or to
/// see exactly what the host accepts; use [`Journal<T>`](crate::Journal) for typed records.
///
/// ```no_run
/// use mini_guest::RawJournal;
///
/// let journal = RawJournal::open("events")?;
/// let seq = journal.append(r#"{"user":"ada","action":"login"}"#)?;
/// for record in journal.read_from(seq)? {
///     let (seq, json) = record?;
///     println!("{seq}: {json}");
/// }
/// # Ok::<(), mini_guest::Error>(())
/// ```
pub struct RawJournal {
    handle: wit::Journal,
}

impl RawJournal {
    /// Opens the journal `name` in this instance's namespace, creating it if
    /// it does not exist.
    ///
    /// Fails with [`Error::InvalidName`] for a bad name, [`Error::Locked`]
    /// when another process holds it, [`Error::Corrupt`] when it is damaged
    /// (both with [`Resource::Journal`]).
    ///
    /// ```no_run
    /// let journal = mini_guest::RawJournal::open("events")?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Self, Error> {
        Ok(Self {
            handle: wit::Journal::open(name).on(JOURNAL)?,
        })
    }

    /// Appends one record (the text of one JSON value) durably and returns
    /// its sequence number. The record is on stable storage when this
    /// returns.
    ///
    /// ```no_run
    /// let journal = mini_guest::RawJournal::open("events")?;
    /// let seq = journal.append(r#"{"n":1}"#)?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn append(&self, record: &str) -> Result<u64, Error> {
        self.handle.append(record).on(JOURNAL)
    }

    /// Appends records as one atomic unit (after a crash either all of them
    /// are stored or none) and returns the sequence number of the last one.
    /// If any record is rejected, none is stored.
    ///
    /// ```no_run
    /// let journal = mini_guest::RawJournal::open("events")?;
    /// let last = journal.append_batch(&[r#"{"n":1}"#, r#"{"n":2}"#])?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn append_batch<S: AsRef<str>>(&self, records: &[S]) -> Result<u64, Error> {
        let records: Vec<&str> = records.iter().map(AsRef::as_ref).collect();
        self.handle.append_batch(&records).on(JOURNAL)
    }

    /// Reads every record still stored, from the first one, in sequence
    /// order. Same as [`RawJournal::read_from`]`(0)`.
    ///
    /// ```no_run
    /// let journal = mini_guest::RawJournal::open("events")?;
    /// for record in journal.replay()? {
    ///     let (seq, json) = record?;
    ///     println!("{seq}: {json}");
    /// }
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn replay(&self) -> Result<RawRecords, Error> {
        self.read_from(0)
    }

    /// Reads the records from sequence number `seq` on, in sequence order;
    /// `0` means from the first record still stored.
    ///
    /// Fails with [`Error::OutOfRange`] when `seq` is before the first record
    /// still stored (after compaction).
    ///
    /// ```no_run
    /// let journal = mini_guest::RawJournal::open("events")?;
    /// let tail: Vec<(u64, String)> = journal.read_from(100)?.collect::<Result<_, _>>()?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn read_from(&self, seq: u64) -> Result<RawRecords, Error> {
        Ok(RawRecords::new(self.handle.read(seq).on(JOURNAL)?))
    }

    /// The sequence number of the first record still stored, or the next
    /// sequence number when the journal holds no record.
    ///
    /// ```no_run
    /// let journal = mini_guest::RawJournal::open("events")?;
    /// let first = journal.first_seq()?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn first_seq(&self) -> Result<u64, Error> {
        self.handle.first_seq().on(JOURNAL)
    }

    /// The sequence number of the last durable record; `0` when nothing was
    /// ever appended.
    ///
    /// ```no_run
    /// let journal = mini_guest::RawJournal::open("events")?;
    /// let last = journal.last_seq()?;
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn last_seq(&self) -> Result<u64, Error> {
        self.handle.last_seq().on(JOURNAL)
    }

    /// The underlying WIT resource handle.
    ///
    /// ```no_run
    /// let journal = mini_guest::RawJournal::open("events")?;
    /// let handle: &mini_guest::bindings::mini::storage::store::Journal = journal.as_bindings();
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn as_bindings(&self) -> &wit::Journal {
        &self.handle
    }

    /// Wraps a WIT resource handle obtained from the raw [`bindings`](crate::bindings).
    ///
    /// ```no_run
    /// use mini_guest::bindings::mini::storage::store::Journal;
    ///
    /// let handle = Journal::open("events")?;
    /// let journal = mini_guest::RawJournal::from_bindings(handle);
    /// # Ok::<(), mini_guest::bindings::mini::storage::types::Error>(())
    /// ```
    pub fn from_bindings(handle: wit::Journal) -> Self {
        Self { handle }
    }

    /// Gives back the WIT resource handle.
    ///
    /// ```no_run
    /// let journal = mini_guest::RawJournal::open("events")?;
    /// let handle = journal.into_bindings();
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn into_bindings(self) -> wit::Journal {
        self.handle
    }
}

impl fmt::Debug for RawJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawJournal")
            .field("handle", &self.handle.handle())
            .finish()
    }
}

/// A streamed read over a [`RawJournal`]: an iterator of `(seq, json)`
/// pairs in sequence order.
///
/// Records are fetched from the host in blocks of at most
/// [`DEFAULT_CHUNK`] records (see [`RawRecords::chunk_size`]) and about
/// [`BLOCK_BYTES`](super::BLOCK_BYTES) bytes, so only one block is held in
/// memory; a block crosses from the host as one string, and
/// [`RawRecords::next_ref`] hands its records out without copying them. The iterator ends at the journal's durable end as seen
/// when the last chunk was fetched. After an error from the host it yields
/// that error once and then ends.
///
/// ```no_run
/// let journal = mini_guest::RawJournal::open("events")?;
/// let mut count = 0;
/// for record in journal.replay()?.chunk_size(1024) {
///     let (_seq, _json) = record?;
///     count += 1;
/// }
/// # Ok::<(), mini_guest::Error>(())
/// ```
pub struct RawRecords {
    cursor: wit::Cursor,
    blocks: Blocks,
    chunk: u32,
}

impl RawRecords {
    fn new(cursor: wit::Cursor) -> Self {
        Self {
            cursor,
            blocks: Blocks::new(),
            chunk: DEFAULT_CHUNK,
        }
    }

    /// The next record as a slice of the block it came in (no copy); what
    /// the iterator returns, borrowed.
    ///
    /// ```no_run
    /// let journal = mini_guest::RawJournal::open("events")?;
    /// let mut records = journal.replay()?;
    /// while let Some(record) = records.next_ref() {
    ///     let (_seq, json) = record?;
    ///     assert!(!json.is_empty());
    /// }
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn next_ref(&mut self) -> Option<Result<(u64, &str), Error>> {
        self.blocks.next(&self.cursor, self.chunk, JOURNAL)
    }

    /// Sets how many records are fetched from the host per call (at least
    /// 1; the default is [`DEFAULT_CHUNK`]).
    ///
    /// ```no_run
    /// let journal = mini_guest::RawJournal::open("events")?;
    /// let records = journal.replay()?.chunk_size(16);
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn chunk_size(mut self, max: u32) -> Self {
        self.chunk = max.max(1);
        self
    }

    /// The underlying WIT cursor handle.
    ///
    /// ```no_run
    /// let journal = mini_guest::RawJournal::open("events")?;
    /// let records = journal.replay()?;
    /// let cursor: &mini_guest::bindings::mini::storage::store::Cursor = records.as_bindings();
    /// # Ok::<(), mini_guest::Error>(())
    /// ```
    pub fn as_bindings(&self) -> &wit::Cursor {
        &self.cursor
    }
}

impl Iterator for RawRecords {
    type Item = Result<(u64, String), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.next_ref()?.map(|(seq, json)| (seq, json.to_owned())))
    }
}

impl std::iter::FusedIterator for RawRecords {}

impl fmt::Debug for RawRecords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawRecords")
            .field("cursor", &self.cursor.handle())
            .field("buffered", &self.blocks.buffered())
            .field("chunk", &self.chunk)
            .finish()
    }
}
