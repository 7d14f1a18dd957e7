//! Which segment holds the next seq, and opening it: its header checked,
//! its place after the segment before it, its seal (the reader's own read
//! of it if open read only its head), and a seek through its index. A
//! segment whose records stop before the next segment's first seq is
//! damage, as open and `verify` say: a line cut short, a batch left open,
//! or a missing segment (a later segment exists only once the one before
//! it is whole on disk).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{OpenSegment, Reader, Source};
use crate::error::{Corruption, CorruptionKind, JournalError};
use crate::fs::FileRef;
use crate::journal::files::ReadSegment;
use crate::journal::{lock, scan};
use crate::segment::seal::{self, Seal, TailSeal};
use crate::segment::{self, LineScanner};

impl Reader {
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
    pub(super) fn damage_here(&self, offset: u64, seq: u64, kind: CorruptionKind) -> JournalError {
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
        let seal = match seal.as_ref().and_then(|cache| cache.get()) {
            Some(seal) => Some(seal.clone()),
            None => {
                let read = read_seal(&file, &path)?;
                if let (Some(cache), Some(seal)) = (&seal, &read) {
                    // Another reader may have been first: the same seal.
                    let _ = cache.set(seal.clone());
                }
                read
            }
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

    /// True if a segment later than the open one exists.
    pub(super) fn later_segment(&self) -> Result<bool, JournalError> {
        Ok(self.next_segment()?.is_some())
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
