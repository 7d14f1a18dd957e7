//! Scanning one segment file: its header, its records line by line (from
//! its start, or from where a mark says they are whole), up to where they
//! stop; `ending` decides what that end means. Where they stop decides
//! everything: the end of the file, preallocated zeros or a seal that
//! agrees with the records are a clean end; a line cut short, or a bad last
//! line, in the last segment is a torn tail to cut; a seal cut short is a
//! sealing that a crash interrupted; anything else is damage, reported with
//! the file, offset and sequence. The scan builds the seal the segment's
//! records call for as it goes (the writer builds the same one as it writes
//! them).

use std::path::Path;

use super::TornTail;
use crate::error::{Corruption, CorruptionKind, JournalError};
use crate::fs::FileSystem;
use crate::journal::mark::{self, Resume};
use crate::segment::mark::Mark;
use crate::segment::seal::{self, BuilderMark, Seal, SealBuilder, SealHead};
use crate::segment::{self, LineScanner};

/// Progress is reported once per this many lines: often enough for a
/// progress bar, rarely enough to cost nothing.
const PROGRESS_EVERY: u64 = 4096;

/// What scanning one segment found.
pub(super) enum SegmentOutcome {
    /// The header is incomplete: the process died while creating this, the
    /// last, segment.
    TornHeader {
        /// The file's length: all of it is dropped.
        file_len: u64,
    },
    /// The segment's records, up to its torn tail if it has one.
    Scanned {
        /// Records in complete batches.
        records: u64,
        /// The sequence number after the last record kept.
        next_seq: u64,
        /// Where the last record kept ends.
        valid_len: u64,
        /// What recovery cuts, if anything.
        tail: Option<TornTail>,
        /// The seal of the records kept, built by the scan.
        built: SealBuilder,
        /// How the segment ends after its records.
        closing: Closing,
    },
}

/// What follows a segment's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Closing {
    /// Nothing: the segment is not sealed (the active one, or one written
    /// before seals existed).
    Open,
    /// Its seal, which agrees with the records.
    Sealed(Seal),
    /// The start of a seal line, cut short by a crash while it was written
    /// (at open, sealing a segment from before seals): cut it and seal again.
    TornSeal {
        /// Where the seal line starts.
        at: u64,
    },
}

/// The segment to scan, and where it stands in the journal.
pub(super) struct SegmentRef<'a> {
    pub path: &'a Path,
    /// The first sequence number its file name gives.
    pub first_seq: u64,
    /// The sequence number the previous segment ends before (`None` for the
    /// first segment, which may start anywhere after compaction).
    pub expected_first: Option<u64>,
    /// Only the last segment may end in a torn tail: every other one was
    /// synced whole before the next was created.
    pub is_last: bool,
    /// The first seq of the next segment's file name, if there is one.
    pub next_first: Option<u64>,
}

impl SegmentRef<'_> {
    pub(super) fn corrupt(&self, offset: u64, seq: u64, kind: CorruptionKind) -> JournalError {
        JournalError::Corrupt(Corruption {
            file: self.path.to_path_buf(),
            offset,
            seq,
            kind,
        })
    }

    pub(super) fn io(&self) -> impl FnOnce(std::io::Error) -> JournalError {
        JournalError::io(self.path)
    }
}

/// Where the lines of records stop.
pub(super) enum End {
    /// The file ends after a complete line.
    Eof,
    /// Preallocated zeros run from `at` to the end of the file.
    Preallocated { at: u64 },
    /// The line at `offset` has no newline before the end of the file (a
    /// write cut short) or is longer than [`segment::MAX_LINE_LEN`]. The
    /// bytes written end at `written_end`: preallocated zeros that the write
    /// did not reach may follow.
    /// `torn_seal`: the bytes written are the start of a seal line.
    TornLine {
        offset: u64,
        written_end: u64,
        torn_seal: bool,
    },
    /// The complete line at `offset` is not the record expected there.
    BadLine { offset: u64, kind: CorruptionKind },
    /// The line at `offset` is a seal line (`seal` says whether it reads).
    Seal {
        offset: u64,
        seal: Result<Seal, String>,
    },
}

/// The lines of a batch (`"more":true` on all but its last) whose last line
/// has not been read yet.
pub(super) struct OpenBatch {
    pub(super) offset: u64,
    pub(super) first_seq: u64,
    pub(super) lines: u64,
}

/// The records read so far.
pub(super) struct Records {
    /// The sequence number the next line must carry.
    pub(super) expected: u64,
    /// Records in complete batches (a single record is a batch of one).
    pub(super) complete: u64,
    /// Where the last complete batch ends.
    pub(super) valid_len: u64,
    pub(super) open: Option<OpenBatch>,
    /// The seal of every line read so far.
    pub(super) built: SealBuilder,
    /// Where `built` stood after the last complete batch.
    pub(super) valid_mark: BuilderMark,
}

/// The seal at the end of the closed segment `seg` and the file's length,
/// read without reading its records (the cheap checks: the seal's own crc
/// and consistency, its length against the file's, its first seq against
/// the file name, its last against the next file's name, and its place
/// after the previous segment). `None` if the
/// segment ends in no seal line or one that fails these checks: then the
/// segment is scanned, which names its first damage exactly (a changed
/// line changes the length, and the line comes before the seal).
pub(super) fn read_sealed(
    fs: &dyn FileSystem,
    seg: &SegmentRef<'_>,
) -> Result<Option<(SealHead, u64)>, JournalError> {
    let file = fs.open_read(seg.path).map_err(seg.io())?;
    let file_len = file.len().map_err(seg.io())?;
    match seal::read_tail_seal_head(&file, file_len).map_err(seg.io())? {
        seal::TailSeal::Sealed { seal, .. }
            if seal.first_seq == seg.first_seq
                && seg.next_first.is_none_or(|next| next == seal.last_seq + 1)
                && seg.expected_first.is_none_or(|e| e == seg.first_seq) =>
        {
            Ok(Some((seal, file_len)))
        }
        seal::TailSeal::Sealed { .. } | seal::TailSeal::Bad { .. } | seal::TailSeal::None => {
            Ok(None)
        }
    }
}

/// Scans the segment `seg`: from its start, or from where `mark` says its
/// records are whole if the mark holds for the file. `progress` is called
/// with the bytes scanned so far in this file.
pub(super) fn scan_segment(
    fs: &dyn FileSystem,
    seg: &SegmentRef<'_>,
    mark: Option<&Mark>,
    progress: &mut dyn FnMut(u64),
) -> Result<SegmentOutcome, JournalError> {
    let file = fs.open_read(seg.path).map_err(seg.io())?;
    let file_len = file.len().map_err(seg.io())?;
    // The header is checked in any case: it names the segment.
    let resume = mark
        .filter(|_| has_its_header(&file, seg.first_seq))
        .and_then(|m| mark::resume_at(m, seg.first_seq, &file, file_len));
    let (mut scanner, mut records) = match resume {
        Some(resume) => {
            segment::check_first_seq(seg.first_seq)
                .map_err(|why| seg.corrupt(0, seg.first_seq, CorruptionKind::BadHeader(why)))?;
            check_follows_previous(seg)?;
            let scanner = LineScanner::new(file, resume.built.len());
            (scanner, Records::resumed(resume))
        }
        None => {
            let mut scanner = LineScanner::new(file, 0);
            let Some(built) = read_header(&mut scanner, seg)? else {
                // A segment is created only once the one before it is whole:
                // one torn while being created still names where that one
                // ended.
                check_follows_previous(seg)?;
                return Ok(SegmentOutcome::TornHeader { file_len });
            };
            check_follows_previous(seg)?;
            (scanner, Records::after_header(seg.first_seq, built))
        }
    };
    let end = records.read(&mut scanner, seg, progress)?;
    let (tail, closing) = records.tail(&mut scanner, seg, end, file_len)?;
    let mut built = records.built;
    built.restore(records.valid_mark);
    Ok(SegmentOutcome::Scanned {
        records: records.complete,
        // Records of an open batch are cut with the tail: the next append
        // takes the first one's seq again.
        next_seq: records
            .open
            .as_ref()
            .map_or(records.expected, |b| b.first_seq),
        valid_len: records.valid_len,
        tail,
        built,
        closing,
    })
}

/// True if `file` starts with the header of segment `first_seq`, as the
/// writer writes it (anything else is read by the full scan, which says
/// what is wrong with it).
fn has_its_header(file: &crate::fs::FileRef, first_seq: u64) -> bool {
    let header = segment::header_line(first_seq);
    let mut bytes = vec![0; header.len()];
    seal::read_exact_at(file, &mut bytes, 0).is_ok() && bytes == header.as_bytes()
}

/// Reads and checks the header line; returns the segment's seal started
/// with it, or `None` when the last segment's header is incomplete.
fn read_header(
    scanner: &mut LineScanner,
    seg: &SegmentRef<'_>,
) -> Result<Option<SealBuilder>, JournalError> {
    let bad_header = |why| seg.corrupt(0, seg.first_seq, CorruptionKind::BadHeader(why));
    segment::check_first_seq(seg.first_seq).map_err(bad_header)?;
    let line = scanner.next_line().map_err(seg.io())?;
    let Some(line) = line.filter(|line| line.complete) else {
        // A header is written and synced before any record: an incomplete
        // one means the process died while creating this segment.
        if seg.is_last {
            return Ok(None);
        }
        return Err(bad_header("missing or incomplete header".into()));
    };
    segment::check_header(line.bytes, seg.first_seq).map_err(bad_header)?;
    let mut built = SealBuilder::new(seg.first_seq, line.bytes);
    built.add(b"\n");
    Ok(Some(built))
}

/// A segment must start where the previous one ended.
fn check_follows_previous(seg: &SegmentRef<'_>) -> Result<(), JournalError> {
    match seg.expected_first {
        // The sequence named is the first one missing (the one expected here).
        Some(expected) if expected != seg.first_seq => Err(seg.corrupt(
            0,
            expected,
            CorruptionKind::MissingSegment {
                expected,
                found: seg.first_seq,
            },
        )),
        _ => Ok(()),
    }
}

impl Records {
    /// None yet: the header (its line is `built`) was read.
    fn after_header(first_seq: u64, built: SealBuilder) -> Self {
        Records {
            expected: first_seq,
            complete: 0,
            valid_len: built.len(),
            open: None,
            valid_mark: built.mark(),
            built,
        }
    }

    /// Those a mark covers.
    fn resumed(resume: Resume) -> Self {
        Records {
            expected: resume.next_seq,
            complete: resume.records,
            valid_len: resume.built.len(),
            open: None,
            valid_mark: resume.built.mark(),
            built: resume.built,
        }
    }

    /// Reads record lines until they stop, and says where and why.
    fn read(
        &mut self,
        scanner: &mut LineScanner,
        seg: &SegmentRef<'_>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<End, JournalError> {
        let mut lines = 0u64;
        while let Some(line) = scanner.next_line().map_err(seg.io())? {
            lines += 1;
            if lines.is_multiple_of(PROGRESS_EVERY) {
                progress(line.end);
            }
            if !line.complete {
                return Ok(if segment::is_preallocated(&line) {
                    End::Preallocated { at: line.offset }
                } else {
                    End::TornLine {
                        offset: line.offset,
                        written_end: line.end - trailing_zeros(line.bytes),
                        torn_seal: seal::is_torn_seal(line.bytes),
                    }
                });
            }
            if seal::is_seal_line(line.bytes) {
                return Ok(End::Seal {
                    offset: line.offset,
                    seal: seal::parse_seal_line(line.bytes),
                });
            }
            match segment::check_line(line.bytes, self.expected) {
                Ok(rec) => {
                    self.built.add_lines(line.bytes, rec.seq);
                    self.built.add(b"\n");
                    self.add(rec.seq, rec.more, line.offset, line.end);
                }
                Err(kind) => {
                    return Ok(End::BadLine {
                        offset: line.offset,
                        kind,
                    });
                }
            }
        }
        Ok(End::Eof)
    }

    /// Adds the valid record line `seq` that runs from `offset` to `end`.
    fn add(&mut self, seq: u64, more: bool, offset: u64, end: u64) {
        self.expected += 1;
        if more {
            self.open
                .get_or_insert(OpenBatch {
                    offset,
                    first_seq: seq,
                    lines: 0,
                })
                .lines += 1;
        } else {
            self.complete += 1 + self.open.take().map_or(0, |b| b.lines);
            self.valid_len = end;
            self.valid_mark = self.built.mark();
        }
    }
}

/// How many NUL bytes `bytes` ends with.
fn trailing_zeros(bytes: &[u8]) -> u64 {
    bytes.iter().rev().take_while(|&&b| b == 0).count() as u64
}
