//! The storage limits of an instance ([`Limits`]) and the ranges they must
//! lie in: a limit out of range is refused when the context is built, never
//! wrapped or clamped into something else.

/// The default record size limit: 1 MiB.
pub const DEFAULT_MAX_RECORD_SIZE: usize = 1024 * 1024;
/// The default number of handles (journals, cursors, states, snapshot
/// stores, queues and their pollables) an instance may hold open.
pub const DEFAULT_MAX_OPEN_HANDLES: usize = 64;
/// The default disk quota of a namespace: 1 GiB.
pub const DEFAULT_DISK_QUOTA: u64 = 1024 * 1024 * 1024;
/// The default state size limit (snapshots, checkpoints, a queue's
/// snapshot): 64 MiB.
pub const DEFAULT_MAX_STATE_SIZE: usize = 64 * 1024 * 1024;
/// The default key size limit of `wasi:keyvalue` buckets: 4 KiB.
pub const DEFAULT_MAX_KEY_SIZE: usize = 4096;
/// The default number of `wasi:keyvalue` buckets a namespace may hold.
pub const DEFAULT_MAX_BUCKETS: usize = 256;
/// The default number of units (streams) a namespace may make on a remote
/// backend (JetStream).
pub const DEFAULT_MAX_STREAMS: usize = 256;
/// The default journal segment size: the engine's, 64 MiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = mini_engine::journal::DEFAULT_SEGMENT_SIZE;

/// The largest record size limit: 128 MiB (a record is one line of a
/// segment, and it passes through the guest's memory).
pub const MAX_RECORD_SIZE_LIMIT: usize = 128 * 1024 * 1024;
/// The largest state size limit: 1 GiB.
pub const MAX_STATE_SIZE_LIMIT: usize = 1024 * 1024 * 1024;
/// The most handles an instance may be allowed.
pub const MAX_OPEN_HANDLES_LIMIT: usize = 65_536;
/// The largest key size limit: 64 KiB.
pub const MAX_KEY_SIZE_LIMIT: usize = 64 * 1024;
/// The most buckets a namespace may be allowed.
pub const MAX_BUCKETS_LIMIT: usize = 65_536;
/// The smallest segment size: 1 KiB (a unit larger than a segment gets one
/// of its own, so any size works; tiny ones only make many files).
pub const MIN_SEGMENT_SIZE: u64 = 1024;
/// The largest segment size: 16 GiB.
pub const MAX_SEGMENT_SIZE: u64 = 16 * 1024 * 1024 * 1024;

/// The storage limits of one instance.
///
/// Build one with [`Limits::default`] and change fields, or through the
/// setters of [`MiniCtxBuilder`](crate::MiniCtxBuilder); [`Limits::check`]
/// (which the builder runs) refuses values out of range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Records (and each record of a batch, each queue payload) larger than
    /// this many bytes are refused with `record-too-large`. 1 to
    /// [`MAX_RECORD_SIZE_LIMIT`]; default [`DEFAULT_MAX_RECORD_SIZE`].
    pub max_record_size: usize,
    /// States (snapshots, checkpoints) larger than this many bytes are
    /// refused with `record-too-large`; a queue refuses pushes past what a
    /// snapshot of this size holds (at least 64 of its largest payloads)
    /// with `quota`. 1 to [`MAX_STATE_SIZE_LIMIT`]; default
    /// [`DEFAULT_MAX_STATE_SIZE`].
    pub max_state_size: usize,
    /// How many handles the instance may hold at once: journals, cursors,
    /// states, snapshot stores, queues and the pollables of
    /// `queue.subscribe`. One more is refused with `quota` (a pollable,
    /// which cannot return an error, traps). 1 to
    /// [`MAX_OPEN_HANDLES_LIMIT`]; default [`DEFAULT_MAX_OPEN_HANDLES`].
    pub max_open_handles: usize,
    /// Bytes the namespace directory may occupy on disk (blocks allocated,
    /// directories included). Checked before every write and before an
    /// open that creates a journal, state, snapshot store or queue: one
    /// that would go past it is refused with `quota`. Journals grow their
    /// files ahead of their records by up to 1/256 of it (at most 1 MiB, see
    /// [`JournalOptions::preallocate`](mini_engine::JournalOptions::preallocate));
    /// those bytes count, and an append needs room for them too.
    /// `u64::MAX` turns the check off; 0 is refused. Default
    /// [`DEFAULT_DISK_QUOTA`].
    pub disk_quota: u64,
    /// Segment size of journals this instance opens first (a journal
    /// already open in the process keeps the options it was opened with; a
    /// state's journal uses at most
    /// [`mini_engine::state::DEFAULT_STATE_SEGMENT_SIZE`], so that compaction
    /// keeps it small). [`MIN_SEGMENT_SIZE`] to [`MAX_SEGMENT_SIZE`];
    /// default [`DEFAULT_SEGMENT_SIZE`].
    pub segment_size: u64,
    /// `wasi:keyvalue` keys longer than this many bytes are refused (a
    /// value's limit is [`Limits::max_record_size`], and a bucket's
    /// contents are bounded by [`Limits::max_state_size`], what its
    /// snapshot may take). 1 to [`MAX_KEY_SIZE_LIMIT`]; default
    /// [`DEFAULT_MAX_KEY_SIZE`].
    pub max_key_size: usize,
    /// How many `wasi:keyvalue` buckets the namespace may hold: opening one
    /// more that does not exist yet is refused. 1 to [`MAX_BUCKETS_LIMIT`];
    /// default [`DEFAULT_MAX_BUCKETS`].
    pub max_buckets: usize,
    /// How many units (one stream each) the namespace may make on a remote
    /// backend (JetStream): opening one more that does not exist yet is
    /// refused with `quota`. Each stream holds at most
    /// [`Limits::disk_quota`] bytes. 1 to [`MAX_BUCKETS_LIMIT`]; default
    /// [`DEFAULT_MAX_STREAMS`].
    pub max_streams: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record_size: DEFAULT_MAX_RECORD_SIZE,
            max_state_size: DEFAULT_MAX_STATE_SIZE,
            max_open_handles: DEFAULT_MAX_OPEN_HANDLES,
            disk_quota: DEFAULT_DISK_QUOTA,
            segment_size: DEFAULT_SEGMENT_SIZE,
            max_key_size: DEFAULT_MAX_KEY_SIZE,
            max_buckets: DEFAULT_MAX_BUCKETS,
            max_streams: DEFAULT_MAX_STREAMS,
        }
    }
}

/// A limit outside the range it must lie in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the limit {name} is {value}; it must be between {min} and {max}")]
pub struct LimitOutOfRange {
    /// The limit's name (the field of [`Limits`]).
    pub name: &'static str,
    /// The value given.
    pub value: u64,
    /// The smallest value allowed.
    pub min: u64,
    /// The largest value allowed.
    pub max: u64,
}

fn in_range(name: &'static str, value: u64, min: u64, max: u64) -> Result<(), LimitOutOfRange> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(LimitOutOfRange {
            name,
            value,
            min,
            max,
        })
    }
}

/// `n` as a `u64` (saturating: no `usize` this crate meets is wider).
pub(crate) fn wide(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl Limits {
    /// Checks that every limit lies in its range.
    ///
    /// ```
    /// use mini_host::Limits;
    /// assert!(Limits::default().check().is_ok());
    /// let huge = Limits { max_record_size: usize::MAX / 2, ..Limits::default() };
    /// let err = huge.check().unwrap_err();
    /// assert_eq!(err.name, "max_record_size");
    /// ```
    pub fn check(&self) -> Result<(), LimitOutOfRange> {
        in_range(
            "max_record_size",
            wide(self.max_record_size),
            1,
            wide(MAX_RECORD_SIZE_LIMIT),
        )?;
        in_range(
            "max_state_size",
            wide(self.max_state_size),
            1,
            wide(MAX_STATE_SIZE_LIMIT),
        )?;
        in_range(
            "max_open_handles",
            wide(self.max_open_handles),
            1,
            wide(MAX_OPEN_HANDLES_LIMIT),
        )?;
        in_range("disk_quota", self.disk_quota, 1, u64::MAX)?;
        in_range(
            "max_key_size",
            wide(self.max_key_size),
            1,
            wide(MAX_KEY_SIZE_LIMIT),
        )?;
        in_range(
            "max_buckets",
            wide(self.max_buckets),
            1,
            wide(MAX_BUCKETS_LIMIT),
        )?;
        in_range(
            "max_streams",
            wide(self.max_streams),
            1,
            wide(MAX_BUCKETS_LIMIT),
        )?;
        in_range(
            "segment_size",
            self.segment_size,
            MIN_SEGMENT_SIZE,
            MAX_SEGMENT_SIZE,
        )
    }
}
