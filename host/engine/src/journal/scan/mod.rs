//! Reading a journal directory from disk and classifying what is there:
//! valid segments, a torn tail that recovery may cut, or damage that must be
//! reported. Recovery ([`super::Journal::open`]), `verify` and `repair` share
//! this one scan, so they can never disagree about what is damage.
//!
//! This module walks the segments in order and adds up what each holds;
//! `file` reads one segment, `ending` decides what lies where its records
//! stop.
//! Open trusts the seals of closed segments ([`Depth::Seals`]: their
//! records are checked as they are read); `verify` and `repair` read every
//! record and check every seal against them ([`Depth::Records`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::error::JournalError;
use crate::fs::FileSystem;
use crate::segment;
use crate::segment::seal::{Seal, SealBuilder, SealHead};

mod ending;
mod file;

pub(crate) use file::Closing;
use file::{SegmentOutcome, SegmentRef};

/// How deep a scan reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Depth {
    /// A closed segment's seal stands for its records (open).
    Seals,
    /// Every record is read and checked, and every seal against them.
    Records,
}

/// A segment that scanned clean (up to its torn tail, if it is the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentInfo {
    pub first_seq: u64,
    pub path: PathBuf,
    /// Bytes of the segment that hold its header, its valid, complete
    /// records, and its seal if it is sealed (the whole file unless a torn
    /// tail, a torn seal or zeros are cut).
    pub valid_len: u64,
    pub state: SegmentState,
}

/// A closed segment's seal, once it is held whole: at once if this process
/// wrote it or read it whole, else once the first reader that seeks into
/// the segment has read it (open reads only its head).
pub(crate) type SealCache = Arc<OnceLock<Arc<Seal>>>;

/// Whether a segment is sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SegmentState {
    /// Closed, and its seal is on disk: held whole in the cache, or (where
    /// open read only what it says but its index, and checked that against
    /// the files) left there by the first reader that reads it whole;
    /// `verify` reads all of it.
    Sealed(SealCache),
    /// Not sealed (yet): the active segment, or a closed one written before
    /// seals existed or whose sealing a crash cut short. `built` is the
    /// seal its records call for, `torn_seal_at` where a torn seal (or, in
    /// the last segment, any seal) starts, to be cut.
    Unsealed {
        built: SealBuilder,
        torn_seal_at: Option<u64>,
    },
}

impl SegmentState {
    /// A sealed segment whose seal is held whole: `seal`.
    pub fn sealed(seal: Seal) -> Self {
        SegmentState::Sealed(Arc::new(OnceLock::from(Arc::new(seal))))
    }

    /// The seal, if the segment is sealed.
    pub fn seal(&self) -> Option<&SealCache> {
        match self {
            SegmentState::Sealed(seal) => Some(seal),
            SegmentState::Unsealed { .. } => None,
        }
    }
}

/// What recovery has to cut from the end of the last segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TornTail {
    /// Truncate `path` (segment `first_seq`) to `offset`.
    Cut {
        path: PathBuf,
        first_seq: u64,
        offset: u64,
        dropped_bytes: u64,
        dropped_records: u64,
    },
    /// The last segment's header itself is incomplete (a crash while the
    /// segment was created): remove the file.
    RemoveSegment {
        path: PathBuf,
        first_seq: u64,
        dropped_bytes: u64,
    },
}

impl TornTail {
    pub fn dropped_bytes(&self) -> u64 {
        match self {
            TornTail::Cut { dropped_bytes, .. } | TornTail::RemoveSegment { dropped_bytes, .. } => {
                *dropped_bytes
            }
        }
    }
}

/// The result of scanning a journal directory.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scan {
    pub segments: Vec<SegmentInfo>,
    pub next_seq: u64,
    pub records: u64,
    pub bytes: u64,
    pub tail: Option<TornTail>,
}

/// The first sequence numbers of the segment files in `dir`, ascending.
pub(crate) fn list_segments(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<u64>, JournalError> {
    let mut seqs: Vec<u64> = fs
        .list_dir(dir)
        .map_err(JournalError::io(dir))?
        .iter()
        .filter_map(|name| segment::parse_segment_file_name(name))
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// Scans every segment of `dir`, as deep as `depth`. Damage anywhere but
/// the tail of the last segment is an error; a torn tail is returned for the
/// caller to cut. `progress` is called with (bytes scanned, total bytes).
pub(crate) fn scan_dir(
    fs: &dyn FileSystem,
    dir: &Path,
    depth: Depth,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Scan, JournalError> {
    let seqs = list_segments(fs, dir)?;
    // Progress is for reading every record; open reads seals and reports
    // none, so it does not open every file once more for its length.
    let lens = match depth {
        Depth::Records => file_lens(fs, dir, &seqs)?,
        Depth::Seals => vec![0; seqs.len()],
    };
    let total: u64 = lens.iter().sum();
    let mut scan = Scan {
        next_seq: 1,
        ..Scan::default()
    };
    let mut done = 0;
    for (i, (&first_seq, &len)) in seqs.iter().zip(&lens).enumerate() {
        let path = segment::segment_path(dir, first_seq);
        let seg = SegmentRef {
            path: &path,
            first_seq,
            expected_first: (i > 0).then_some(scan.next_seq),
            is_last: i + 1 == seqs.len(),
            next_first: seqs.get(i + 1).copied(),
        };
        let sealed = match depth {
            Depth::Seals if !seg.is_last => file::read_sealed(fs, &seg)?,
            Depth::Seals | Depth::Records => None,
        };
        match sealed {
            Some((seal, file_len)) => scan.add_sealed(path, seal, file_len),
            None => {
                // Open starts the active segment where its mark says.
                let mark = (depth == Depth::Seals && seg.is_last)
                    .then(|| super::mark::read_mark(fs, dir))
                    .flatten();
                let outcome = file::scan_segment(fs, &seg, mark.as_ref(), &mut |n| {
                    progress(done + n, total)
                })?;
                let is_last = seg.is_last;
                scan.add(path, first_seq, outcome, is_last);
            }
        }
        done += len;
        progress(done, total);
    }
    Ok(scan)
}

/// Reads every record of the sealed segment `first_seq` at `path` as a
/// closed segment (no torn tail allowed): for a segment that open took from
/// its seal and is about to write on (the last one now, after the segment
/// after it was removed as a torn header), since once its seal is cut
/// nothing would tell damage in it from a torn tail. Returns the seal its
/// records call for, built as far as they go (where the seal starts).
pub(crate) fn check_sealed_segment(
    fs: &dyn FileSystem,
    path: &Path,
    first_seq: u64,
) -> Result<SealBuilder, JournalError> {
    let seg = SegmentRef {
        path,
        first_seq,
        expected_first: None,
        is_last: false,
        next_first: None,
    };
    match file::scan_segment(fs, &seg, None, &mut |_| {})? {
        SegmentOutcome::Scanned { built, .. } => Ok(built),
        // A closed segment's header is whole, or the scan failed.
        SegmentOutcome::TornHeader { .. } => unreachable!("a closed segment's torn header"),
    }
}

/// The lengths of the segment files `seqs` of `dir`, taken before the scan
/// so that progress can be reported against the total.
fn file_lens(fs: &dyn FileSystem, dir: &Path, seqs: &[u64]) -> Result<Vec<u64>, JournalError> {
    seqs.iter()
        .map(|&seq| {
            let path = segment::segment_path(dir, seq);
            let file = fs.open_read(&path).map_err(JournalError::io(&path))?;
            file.len().map_err(JournalError::io(&path))
        })
        .collect()
}

impl Scan {
    /// Adds the closed segment at `path`, of `file_len` bytes, as its seal
    /// (`head`) says.
    fn add_sealed(&mut self, path: PathBuf, head: SealHead, file_len: u64) {
        self.records += head.records;
        self.bytes += file_len;
        self.next_seq = head.last_seq + 1;
        self.segments.push(SegmentInfo {
            first_seq: head.first_seq,
            path,
            valid_len: file_len,
            state: SegmentState::Sealed(SealCache::default()),
        });
        self.tail = None;
    }

    /// Adds the segment `first_seq` at `path`, scanned as `outcome`. The
    /// last segment is never taken as sealed: a seal there is a rotation
    /// that a crash (or a full disk) stopped before the next segment was
    /// created, and the writer goes on in this segment once the seal is cut
    /// (which needs no space, unlike creating the next segment).
    fn add(&mut self, path: PathBuf, first_seq: u64, outcome: SegmentOutcome, is_last: bool) {
        match outcome {
            SegmentOutcome::TornHeader { file_len } => {
                self.tail = Some(TornTail::RemoveSegment {
                    path,
                    first_seq,
                    dropped_bytes: file_len,
                });
                if self.segments.is_empty() {
                    self.next_seq = first_seq;
                }
            }
            SegmentOutcome::Scanned {
                records,
                next_seq,
                valid_len,
                tail,
                built,
                closing,
            } => {
                let (state, valid_len) = match closing {
                    Closing::Sealed(_) if is_last => (
                        SegmentState::Unsealed {
                            built,
                            torn_seal_at: Some(valid_len),
                        },
                        valid_len,
                    ),
                    Closing::Sealed(seal) => {
                        let len = valid_len + seal.line().len() as u64;
                        (SegmentState::sealed(seal), len)
                    }
                    Closing::Open => (
                        SegmentState::Unsealed {
                            built,
                            torn_seal_at: None,
                        },
                        valid_len,
                    ),
                    Closing::TornSeal { at } => (
                        SegmentState::Unsealed {
                            built,
                            torn_seal_at: Some(at),
                        },
                        valid_len,
                    ),
                };
                self.records += records;
                self.bytes += valid_len;
                self.next_seq = next_seq;
                self.segments.push(SegmentInfo {
                    first_seq,
                    path,
                    valid_len,
                    state,
                });
                self.tail = tail;
            }
        }
    }
}
