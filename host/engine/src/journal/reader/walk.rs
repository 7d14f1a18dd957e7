//! The reader's walk through the open segment (`segments` finds and opens
//! it): reading its lines, and what the end of its records means. In the
//! last segment, an unlocked reader takes a bad last line for the torn tail
//! it is to open and stops there.

use std::sync::atomic::Ordering;

use super::{OpenBatch, Reader, Source};
use crate::error::{CorruptionKind, JournalError};
use crate::fs::FileSystem;
use crate::journal::Entry;
use crate::segment::seal::{self, Seal};
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
    pub(super) fn fs(&self) -> &dyn FileSystem {
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
