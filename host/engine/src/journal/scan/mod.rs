//! Reading a journal directory from disk and classifying what is there:
//! valid segments, a torn tail that recovery may cut, or damage that must be
//! reported. Recovery ([`super::Journal::open`]), `verify` and `repair` share
//! this one scan, so they can never disagree about what is damage.
//!
//! This module walks the segments in order and adds up what each holds;
//! `file` reads one segment and decides what lies where its records stop.

use std::path::{Path, PathBuf};

use crate::error::JournalError;
use crate::fs::FileSystem;
use crate::segment;

mod file;

use file::{SegmentOutcome, SegmentRef};

/// A segment that scanned clean (up to its torn tail, if it is the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentInfo {
    pub first_seq: u64,
    pub path: PathBuf,
    /// Bytes of the segment that hold valid, complete records (the whole file
    /// unless a torn tail is cut).
    pub valid_len: u64,
}

/// What recovery has to cut from the end of the last segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TornTail {
    /// Truncate `path` to `offset`.
    Cut {
        path: PathBuf,
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

/// Scans every segment of `dir`. Damage anywhere but the tail of the last
/// segment is an error; a torn tail is returned for the caller to cut.
/// `progress` is called with (bytes scanned, total bytes).
pub(crate) fn scan_dir(
    fs: &dyn FileSystem,
    dir: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Scan, JournalError> {
    let seqs = list_segments(fs, dir)?;
    let lens = file_lens(fs, dir, &seqs)?;
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
        };
        let outcome = file::scan_segment(fs, &seg, &mut |n| progress(done + n, total))?;
        done += len;
        progress(done, total);
        scan.add(path, first_seq, outcome);
    }
    Ok(scan)
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
    /// Adds the segment `first_seq` at `path`, scanned as `outcome`.
    fn add(&mut self, path: PathBuf, first_seq: u64, outcome: SegmentOutcome) {
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
            } => {
                self.records += records;
                self.bytes += valid_len;
                self.next_seq = next_seq;
                self.segments.push(SegmentInfo {
                    first_seq,
                    path,
                    valid_len,
                });
                self.tail = tail;
            }
        }
    }
}
