//! The reader's walk over a journal: which segment holds the next seq,
//! opening it (its header checked, seeking through its index), reading its
//! lines, and what the end of a segment's records means. A segment whose
//! records stop before the next segment's first seq is damage, as open and
//! `verify` say: a line cut short, a batch left open, or a missing segment
//! (a later segment exists only once the one before it is whole on disk).
//! In the last segment, an unlocked reader takes a bad last line for the
//! torn tail it is to open and stops there.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{OpenBatch, OpenSegment, Reader, Source};
use crate::error::{Corruption, CorruptionKind, JournalError};
use crate::fs::{FileRef, FileSystem};
use crate::journal::files::ReadSegment;
use crate::journal::{Entry, lock, scan};
use crate::segment::seal::{self, Seal, TailSeal};
use crate::segment::{self, LineScanner};

/// What one line of the open segment was.
enum Step {
    /// A record (or a batch's last) went to the sink.
    Delivered,
    /// A line was read and nothing delivered (a batch line held back, a
    /// record before the first one wanted).
    Skipped,
    /// The segment's records stop at `start`: at the end of the file or of
    /// its records, at a line cut short (`short_line`: where) or zeros, or
    /// at its seal (`at_seal`).
    End {
        start: u64,
        short_line: Option<u64>,
        at_seal: bool,
    },
    /// The line at `offset` (from `start`) is damage at `seq`, or (if
    /// `may_be_torn`) perhaps a torn tail.
    Bad {
        start: u64,
        offset: u64,
        seq: u64,
        kind: CorruptionKind,
        may_be_torn: bool,
    },
}

impl Reader {
    fn fs(&self) -> &dyn FileSystem {
        match &self.source {
            Source::Journal(inner) => inner.options.fs.as_ref(),
            Source::Unlocked { fs, .. } => fs.as_ref(),
        }
    }

    pub(super) fn limit(&self) -> u64 {
        match &self.source {
            Source::Journal(inner) => inner.durable_seq.load(Ordering::Acquire),
            Source::Unlocked { .. } => u64::MAX,
        }
    }

    /// The segment holding `seq` (the last one starting at or before it,
    /// `None` if `seq` lies before the first) and whether a later one
    /// exists; `None` if the journal has no segment.
    fn holding(&self, seq: u64) -> Result<Option<(Option<ReadSegment>, bool)>, JournalError> {
        self.segment_near(seq, true)
    }

    /// The segment after the open one, if one exists, and whether one
    /// exists after that.
    fn next_segment(&self) -> Result<Option<(ReadSegment, bool)>, JournalError> {
        let Some(open) = &self.segment else {
            return Ok(None);
        };
        Ok(self
            .segment_near(open.first_seq, false)?
            .and_then(|(segment, later)| segment.map(|s| (s, later))))
    }

    /// Of the source's segments, the last one starting at or before `seq`
    /// (`before`) or the first one after it, and whether a later one
    /// exists; `None` if there is no segment. Only the segment needed is
    /// copied out of the index (a reader waiting at the end asks at every
    /// poll).
    fn segment_near(
        &self,
        seq: u64,
        before: bool,
    ) -> Result<Option<(Option<ReadSegment>, bool)>, JournalError> {
        let pick = |at: usize, len: usize| {
            let i = if before { at.checked_sub(1) } else { Some(at) };
            (i.filter(|&i| i < len), i.map_or(0, |i| i + 1) < len)
        };
        Ok(match &self.source {
            Source::Journal(inner) => {
                let segments = lock(&inner.index);
                let at = segments.partition_point(|s| s.first_seq <= seq);
                let (i, later) = pick(at, segments.len());
                (!segments.is_empty()).then(|| (i.map(|i| segments[i].clone()), later))
            }
            Source::Unlocked { fs, dir } => {
                let firsts = scan::list_segments(fs.as_ref(), dir)?;
                let at = firsts.partition_point(|&first| first <= seq);
                let (i, later) = pick(at, firsts.len());
                (!firsts.is_empty()).then(|| {
                    let segment = i.map(|i| ReadSegment {
                        first_seq: firsts[i],
                        path: segment::segment_path(dir, firsts[i]),
                        seal: None,
                        index: Arc::new([]),
                    });
                    (segment, later)
                })
            }
        })
    }

    /// Opens the segment holding `self.expected`, or the one after the open
    /// one. Returns false when there is none yet.
    pub(super) fn open_segment(&mut self) -> Result<bool, JournalError> {
        if self.segment.is_some() {
            return self.next_after_open();
        }
        let Some((holding, closed)) = self.holding(self.expected)? else {
            // A journal directory with no segment yet holds no record.
            return Ok(false);
        };
        let Some(holding) = holding else {
            return Err(JournalError::OutOfRange {
                requested: self.from,
                first: self.expected,
                next: self.expected,
            });
        };
        self.open(holding, closed)
    }

    /// The open segment's records ran out: goes on in the segment after it,
    /// which must start where they stopped, if there is one yet.
    fn next_after_open(&mut self) -> Result<bool, JournalError> {
        let Some((next, closed)) = self.next_segment()? else {
            // More records may follow in this segment.
            return Ok(false);
        };
        // Leaving the open segment: it must have ended whole, and the next
        // one must not start past the next seq (one that starts before it,
        // `open` names).
        let short = self.short_line.is_some() || self.open_batch.is_some();
        if short || next.first_seq > self.expected {
            let missing = (next.first_seq > self.expected).then_some((next.first_seq, next.path));
            return self.ended_short(missing);
        }
        self.open(next, closed)
    }

    /// The open segment's records stop short: at a line cut short, in a
    /// batch, or (`missing`: the next segment's first seq and path) before
    /// the seq the next segment starts at. Damage, once the end is read
    /// again (an unlocked reader may have read it while it was being
    /// written).
    fn ended_short(&mut self, missing: Option<(u64, PathBuf)>) -> Result<bool, JournalError> {
        if !std::mem::replace(&mut self.rechecked, true) {
            // `fill` reads the segment again from where its records stop.
            return Ok(true);
        }
        let expected = self.expected;
        // The first damage in the file, as the scan names it: a line cut
        // short, else a batch left open, else the records missing.
        Err(match (self.short_line, self.open_batch, missing) {
            (Some(offset), _, _) => {
                let kind = CorruptionKind::Garbage("incomplete line".into());
                self.damage_here(offset, expected, kind)
            }
            (None, Some(batch), _) => {
                self.damage_here(batch.offset, batch.seq, CorruptionKind::UnterminatedBatch)
            }
            // The sequence named is the first one missing.
            (None, None, Some((next_first, next_path))) => Corruption {
                file: next_path,
                offset: 0,
                seq: expected,
                kind: CorruptionKind::MissingSegment {
                    expected,
                    found: next_first,
                },
            }
            .into(),
            (None, None, None) => return Ok(true),
        })
    }

    /// Damage at `offset` of the open segment.
    fn damage_here(&self, offset: u64, seq: u64, kind: CorruptionKind) -> JournalError {
        let file = self
            .segment
            .as_ref()
            .map(|o| o.path.clone())
            .unwrap_or_default();
        Corruption {
            file,
            offset,
            seq,
            kind,
        }
        .into()
    }

    /// Opens `segment`, checks its header, and seeks to the line holding
    /// `self.expected` through its index. `closed`: a later segment exists.
    fn open(&mut self, segment: ReadSegment, closed: bool) -> Result<bool, JournalError> {
        let ReadSegment {
            first_seq,
            path,
            seal,
            index,
        } = segment;
        let file = match self.fs().open_read(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Compacted away under us.
                return Err(JournalError::OutOfRange {
                    requested: self.expected,
                    first: self.expected + 1,
                    next: self.expected + 1,
                });
            }
            Err(e) => return Err(JournalError::Io { path, source: e }),
        };
        let mut scanner = LineScanner::new(file.clone(), 0);
        let header = scanner.next_line().map_err(JournalError::io(&path))?;
        let bad_header = |why: String| Corruption {
            file: path.clone(),
            offset: 0,
            seq: first_seq,
            kind: CorruptionKind::BadHeader(why),
        };
        segment::check_first_seq(first_seq).map_err(bad_header)?;
        match header {
            Some(line) if line.complete => {
                segment::check_header(line.bytes, first_seq).map_err(bad_header)?;
            }
            // A header is synced before the next segment is created.
            _ if closed => return Err(bad_header("missing or incomplete header".into()).into()),
            // A segment being created right now by another process, if it
            // starts where the records before it stopped.
            _ if self.segment.is_none() || first_seq == self.expected => return Ok(false),
            _ => {}
        }
        // A segment after the one just read must start where its records
        // stopped.
        let moving_on = self.segment.is_some();
        if moving_on && first_seq != self.expected {
            let expected = self.expected;
            return Err(Corruption {
                file: path,
                offset: 0,
                seq: expected,
                kind: CorruptionKind::MissingSegment {
                    expected,
                    found: first_seq,
                },
            }
            .into());
        }
        let seal = match seal {
            Some(seal) => Some(seal),
            None => read_seal(&file, &path)?,
        };
        let index = seal.as_ref().map_or(&index[..], |seal| &seal.index[..]);
        // Seek to the line holding the first seq wanted, if it is past the
        // segment's first (and, in a live journal, durable: the index of
        // the active segment may name a line still being written).
        let target = self.expected.min(self.limit());
        self.expected = first_seq;
        if let Some((seq, offset)) = Seal::offset_for(index, target)
            && seq > first_seq
        {
            scanner = LineScanner::new(file.clone(), offset);
            self.expected = seq;
        }
        self.batch.clear();
        self.open_batch = None;
        self.short_line = None;
        self.rechecked = false;
        self.segment = Some(OpenSegment {
            first_seq,
            path,
            file,
            scanner,
            end: seal.map(|seal| seal.len),
        });
        Ok(true)
    }

    /// Reads lines until a record (or a whole batch) has gone to `sink`
    /// (`Ok(true)`), the end is reached (`Ok(false)`), or damage is found.
    /// A record goes to `sink` where it lies in the read buffer. The lines
    /// of a batch are held back until its closing line only where the batch
    /// may still be cut: in a segment that another process may be writing.
    /// A live journal's reader stops at the durable end, which never falls
    /// inside a batch, and a sealed segment holds whole batches.
    pub(super) fn fill(&mut self, sink: &mut dyn FnMut(u64, &str)) -> Result<bool, JournalError> {
        let unlocked = matches!(self.source, Source::Unlocked { .. });
        loop {
            if self.expected > self.limit() {
                return Ok(false);
            }
            if self.segment.is_none() && !self.open_segment()? {
                return Ok(false);
            }
            match self.step(unlocked, sink)? {
                Step::Delivered => return Ok(true),
                Step::Skipped => {}
                Step::End {
                    start,
                    short_line,
                    at_seal,
                } => {
                    // The end of this segment's records for now: read again
                    // from here next time (a line may be being written), or
                    // go on in the next segment.
                    if let Some(open) = self.segment.as_mut() {
                        if open.scanner.offset() != start {
                            open.scanner = LineScanner::new(open.file.clone(), start);
                        }
                        if at_seal {
                            open.end = Some(start);
                        }
                    }
                    self.short_line = short_line;
                    if !self.open_segment()? {
                        return Ok(false);
                    }
                }
                Step::Bad {
                    start,
                    offset,
                    seq,
                    kind,
                    may_be_torn,
                } => {
                    if unlocked && may_be_torn && self.at_torn_tail(start)? {
                        return Ok(false);
                    }
                    return Err(self.damage_here(offset, seq, kind));
                }
            }
        }
    }

    /// Reads the open segment's next line and hands its record to `sink`,
    /// or says why there is none.
    fn step(
        &mut self,
        unlocked: bool,
        sink: &mut dyn FnMut(u64, &str),
    ) -> Result<Step, JournalError> {
        let Some(open) = self.segment.as_mut() else {
            return Ok(Step::Skipped);
        };
        let start = open.scanner.offset();
        let end = |short_line, at_seal| Step::End {
            start,
            short_line,
            at_seal,
        };
        if open.end.is_some_and(|end| start >= end) {
            // A closed segment's records are all read: a batch they leave
            // open is damage (a segment is sealed only after its batches).
            return Ok(batch_left_open(self.open_batch, start).unwrap_or(end(None, false)));
        }
        let whole = !unlocked || open.end.is_some();
        let line = open
            .scanner
            .next_line()
            .map_err(JournalError::io(&open.path))?;
        let line = match line {
            None => return Ok(end(None, false)),
            Some(l) if !l.complete => {
                // Zeros, or the start of a seal that a crash cut short (open
                // seals the segment again), are no record cut short.
                let cut = !segment::is_preallocated(&l) && !seal::is_torn_seal(l.bytes);
                return Ok(end(cut.then_some(l.offset), false));
            }
            Some(l) if seal::is_seal_line(l.bytes) => {
                return match seal::parse_seal_line(l.bytes) {
                    // The active segment, sealed since it was opened (or a
                    // segment read without its lock): it ends here.
                    Ok(seal) => self.after_seal(start, &seal),
                    Err(why) => Ok(Step::Bad {
                        start,
                        offset: start,
                        seq: self.expected,
                        kind: CorruptionKind::BadSeal(why),
                        may_be_torn: true,
                    }),
                };
            }
            Some(l) => l,
        };
        let rec = match segment::check_line(line.bytes, self.expected) {
            Ok(rec) => rec,
            Err(kind) => {
                return Ok(Step::Bad {
                    start,
                    offset: line.offset,
                    seq: self.expected,
                    kind,
                    may_be_torn: true,
                });
            }
        };
        self.rechecked = false;
        self.expected += 1;
        let wanted = rec.seq >= self.from;
        if rec.more {
            self.open_batch.get_or_insert(OpenBatch {
                offset: line.offset,
                seq: rec.seq,
            });
            if !whole {
                if wanted {
                    self.batch.push(Entry {
                        seq: rec.seq,
                        data: rec.data.to_owned(),
                    });
                }
                return Ok(Step::Skipped);
            }
        } else {
            self.open_batch = None;
        }
        let delivered = wanted || !self.batch.is_empty();
        for entry in self.batch.drain(..) {
            sink(entry.seq, &entry.data);
        }
        if wanted {
            sink(rec.seq, rec.data);
        }
        Ok(if delivered {
            Step::Delivered
        } else {
            Step::Skipped
        })
    }

    /// At the good seal at `start`: the end of the segment's records, if
    /// nothing follows it (zeros only in the last segment, where a crash
    /// while sealing leaves them).
    fn after_seal(&mut self, start: u64, seal: &Seal) -> Result<Step, JournalError> {
        let later = self.later_segment()?;
        let Some(open) = self.segment.as_mut() else {
            return Ok(Step::Skipped);
        };
        let following = open
            .scanner
            .next_line()
            .map_err(JournalError::io(&open.path))?;
        let expected = self.expected;
        let bad = |kind| Step::Bad {
            start,
            offset: start,
            seq: expected,
            kind,
            may_be_torn: false,
        };
        // In the scan's order: what follows the seal, a batch it would
        // close, then what it says of the records (all a reader can check
        // without the content's crc, which `verify` compares with the rest).
        let follows = match following {
            None => None,
            Some(l) if segment::is_preallocated(&l) => later.then_some("zeros follow the seal"),
            Some(_) => Some("lines follow the seal"),
        };
        if let Some(why) = follows {
            return Ok(bad(CorruptionKind::BadSeal(why.into())));
        }
        if let Some(left_open) = batch_left_open(self.open_batch, start) {
            return Ok(left_open);
        }
        let says = (seal.first_seq, seal.last_seq.wrapping_add(1), seal.len);
        let read = (open.first_seq, self.expected, start);
        if says != read {
            return Ok(bad(CorruptionKind::BadSeal(format!(
                "it says first_seq {}, next seq {} and len {}; the segment's records give {}, {} and {}",
                says.0, says.1, says.2, read.0, read.1, read.2
            ))));
        }
        Ok(Step::End {
            start,
            short_line: None,
            at_seal: true,
        })
    }

    /// True if a segment later than the open one exists.
    fn later_segment(&self) -> Result<bool, JournalError> {
        Ok(self.next_segment()?.is_some())
    }

    /// For an unlocked reader at a bad line at `start`: true if it is the
    /// torn tail that open would cut (nothing but zeros after it, in the
    /// last segment); then the scanner is put back at `start`.
    fn at_torn_tail(&mut self, start: u64) -> Result<bool, JournalError> {
        if self.later_segment()? {
            return Ok(false);
        }
        let Some(open) = self.segment.as_mut() else {
            return Ok(false);
        };
        let following = open
            .scanner
            .next_line()
            .map_err(JournalError::io(&open.path))?;
        let last = following.is_none_or(|l| segment::is_preallocated(&l));
        if last {
            open.scanner = LineScanner::new(open.file.clone(), start);
        }
        Ok(last)
    }
}

/// The seal at the end of the segment `file` at `path`, read for a reader
/// that has no seal for it: `None` if it has none (the active segment). A
/// bad one is not an error here: the read meets it as a line.
fn read_seal(file: &FileRef, path: &Path) -> Result<Option<Arc<Seal>>, JournalError> {
    let len = file.len().map_err(JournalError::io(path))?;
    match seal::read_tail_seal(file, len).map_err(JournalError::io(path))? {
        TailSeal::Sealed { seal, .. } => Ok(Some(Arc::new(seal))),
        TailSeal::Bad { .. } | TailSeal::None => Ok(None),
    }
}

/// The damage of `batch`, still open where a sealed segment's records end
/// at `start` (a segment is sealed only after its batches), if one is.
fn batch_left_open(batch: Option<OpenBatch>, start: u64) -> Option<Step> {
    batch.map(|batch| Step::Bad {
        start,
        offset: batch.offset,
        seq: batch.seq,
        kind: CorruptionKind::UnterminatedBatch,
        may_be_torn: false,
    })
}
