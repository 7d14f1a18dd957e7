//! Reading a journal directory from disk and classifying what is there:
//! valid segments, a torn tail that recovery may cut, or damage that must be
//! reported. Recovery ([`super::Journal::open`]), `verify` and `repair` share
//! this one scan, so they can never disagree about what is damage.

use std::path::{Path, PathBuf};

use crate::error::{Corruption, CorruptionKind, JournalError};
use crate::fs::FileSystem;
use crate::segment::{self, LineScanner};

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
    let mut lens = Vec::with_capacity(seqs.len());
    for &seq in &seqs {
        let path = segment::segment_path(dir, seq);
        let file = fs.open_read(&path).map_err(JournalError::io(&path))?;
        lens.push(file.len().map_err(JournalError::io(&path))?);
    }
    let total: u64 = lens.iter().sum();
    let mut scan = Scan {
        next_seq: 1,
        ..Scan::default()
    };
    let mut done = 0;
    for (i, &first_seq) in seqs.iter().enumerate() {
        let is_last = i + 1 == seqs.len();
        let expected_first = (i > 0).then_some(scan.next_seq);
        let path = segment::segment_path(dir, first_seq);
        let outcome = scan_segment(fs, &path, first_seq, expected_first, is_last, &mut |n| {
            progress(done + n, total)
        })?;
        done += lens[i];
        progress(done, total);
        match outcome {
            SegmentOutcome::TornHeader { file_len } => {
                scan.tail = Some(TornTail::RemoveSegment {
                    path,
                    first_seq,
                    dropped_bytes: file_len,
                });
                if scan.segments.is_empty() {
                    scan.next_seq = first_seq;
                }
            }
            SegmentOutcome::Scanned {
                records,
                next_seq,
                valid_len,
                tail,
            } => {
                scan.records += records;
                scan.bytes += valid_len;
                scan.next_seq = next_seq;
                scan.segments.push(SegmentInfo {
                    first_seq,
                    path,
                    valid_len,
                });
                scan.tail = tail;
            }
        }
    }
    Ok(scan)
}

enum SegmentOutcome {
    TornHeader {
        file_len: u64,
    },
    Scanned {
        records: u64,
        next_seq: u64,
        valid_len: u64,
        tail: Option<TornTail>,
    },
}

/// An open batch: lines with `"more":true` not yet closed.
struct OpenBatch {
    offset: u64,
    first_seq: u64,
    lines: u64,
}

fn scan_segment(
    fs: &dyn FileSystem,
    path: &Path,
    first_seq: u64,
    expected_first: Option<u64>,
    is_last: bool,
    progress: &mut dyn FnMut(u64),
) -> Result<SegmentOutcome, JournalError> {
    let file = fs.open_read(path).map_err(JournalError::io(path))?;
    let file_len = file.len().map_err(JournalError::io(path))?;
    let corrupt = |offset, seq, kind| {
        JournalError::Corrupt(Corruption {
            file: path.to_path_buf(),
            offset,
            seq,
            kind,
        })
    };
    let mut scanner = LineScanner::new(file, 0);
    let header_end = match scanner.next_line().map_err(JournalError::io(path))? {
        Some(line) if line.complete => {
            let seq = segment::parse_header(line.bytes)
                .map_err(|why| corrupt(0, first_seq, CorruptionKind::BadHeader(why)))?;
            if seq != first_seq {
                return Err(corrupt(
                    0,
                    first_seq,
                    CorruptionKind::BadHeader(format!(
                        "header says first_seq {seq}, the file name says {first_seq}"
                    )),
                ));
            }
            line.end
        }
        // A header is written and synced before any record: an incomplete one
        // means the process died while creating this segment.
        _ if is_last => return Ok(SegmentOutcome::TornHeader { file_len }),
        _ => {
            return Err(corrupt(
                0,
                first_seq,
                CorruptionKind::BadHeader("missing or incomplete header".into()),
            ));
        }
    };
    if let Some(expected) = expected_first.filter(|&e| e != first_seq) {
        // The sequence named is the first one missing (the one expected here).
        return Err(corrupt(
            0,
            expected,
            CorruptionKind::MissingSegment {
                expected,
                found: first_seq,
            },
        ));
    }

    let mut expected = first_seq;
    let mut records = 0;
    let mut valid_len = header_end;
    let mut batch: Option<OpenBatch> = None;
    let mut lines_seen = 0u64;
    // Where the bytes written end: preallocated zeros after it are not data.
    let mut content_end = file_len;
    let damage_at = loop {
        let Some(line) = scanner.next_line().map_err(JournalError::io(path))? else {
            break None;
        };
        lines_seen += 1;
        if lines_seen.is_multiple_of(4096) {
            progress(line.end);
        }
        if !line.complete {
            if segment::is_preallocated(&line) {
                content_end = line.offset;
                break None;
            }
            // The file ends inside this line: a write cut short (followed by
            // the preallocated zeros it did not reach, if any).
            content_end = line.end - trailing_zeros(line.bytes);
            break Some((line.offset, None));
        }
        let kind = match segment::check_line(line.bytes, expected) {
            Ok(rec) => {
                expected += 1;
                if rec.more {
                    batch
                        .get_or_insert(OpenBatch {
                            offset: line.offset,
                            first_seq: rec.seq,
                            lines: 0,
                        })
                        .lines += 1;
                } else {
                    records += 1 + batch.take().map_or(0, |b| b.lines);
                    valid_len = line.end;
                }
                continue;
            }
            Err(kind) => kind,
        };
        break Some((line.offset, Some(kind)));
    };

    let tail_from = match damage_at {
        None => match &batch {
            None => None,
            Some(open) if is_last => Some(open.offset),
            Some(open) => {
                return Err(corrupt(
                    open.offset,
                    open.first_seq,
                    CorruptionKind::UnterminatedBatch,
                ));
            }
        },
        Some((offset, kind)) => {
            let last_line = match scanner.next_line().map_err(JournalError::io(path))? {
                None => true,
                Some(next) if segment::is_preallocated(&next) => {
                    content_end = next.offset;
                    true
                }
                Some(_) => false,
            };
            match kind {
                Some(kind) if !(is_last && last_line) => {
                    return Err(corrupt(offset, expected, kind));
                }
                None if !is_last => {
                    return Err(corrupt(
                        offset,
                        expected,
                        CorruptionKind::Garbage("incomplete line".into()),
                    ));
                }
                _ => Some(batch.as_ref().map_or(offset, |b| b.offset)),
            }
        }
    };
    let (next_seq, tail) = match tail_from {
        None => (expected, None),
        Some(offset) => {
            let dropped_records = batch.as_ref().map_or(0, |b| b.lines);
            let next_seq = batch.as_ref().map_or(expected, |b| b.first_seq);
            let tail = TornTail::Cut {
                path: path.to_path_buf(),
                offset,
                dropped_bytes: content_end - offset,
                dropped_records,
            };
            (next_seq, Some(tail))
        }
    };
    Ok(SegmentOutcome::Scanned {
        records,
        next_seq,
        valid_len,
        tail,
    })
}

/// How many NUL bytes `bytes` ends with.
fn trailing_zeros(bytes: &[u8]) -> u64 {
    bytes.iter().rev().take_while(|&&b| b == 0).count() as u64
}
