//! What lies where a segment's records stop, and what it means: nothing
//! to cut, a torn tail to cut (only in the last segment), a seal that must
//! agree with the records, or damage.

use super::TornTail;
use super::file::{Closing, End, Records, SegmentRef};
use crate::error::{CorruptionKind, JournalError};
use crate::segment::seal::Seal;
use crate::segment::{self, LineScanner};

/// What follows a torn or bad line: whether it is the last line, which
/// only the last segment's last line may be to count as a torn tail.
enum Following {
    /// The end of the file.
    Nothing,
    /// Preallocated zeros from `at` to the end of the file.
    Preallocated { at: u64 },
    /// More lines: the line before them is damage.
    Lines,
}

impl Records {
    /// What the records' `end` means: nothing to cut, a torn tail to cut,
    /// or damage (the error); and how the segment is closed.
    pub(super) fn tail(
        &self,
        scanner: &mut LineScanner,
        seg: &SegmentRef<'_>,
        end: End,
        file_len: u64,
    ) -> Result<(Option<TornTail>, Closing), JournalError> {
        let (offset, content_end) = match end {
            End::Eof => return Ok((self.unfinished_batch(seg, file_len)?, Closing::Open)),
            End::Preallocated { at } => {
                return Ok((self.unfinished_batch(seg, at)?, Closing::Open));
            }
            End::TornLine {
                offset,
                written_end,
                torn_seal,
            } => {
                let following = read_following(scanner, seg)?;
                if !seg.is_last {
                    if torn_seal && self.open.is_none() && !matches!(following, Following::Lines) {
                        return Ok((None, Closing::TornSeal { at: offset }));
                    }
                    let kind = CorruptionKind::Garbage("incomplete line".into());
                    return Err(seg.corrupt(offset, self.expected, kind));
                }
                (offset, following.zeros_at().unwrap_or(written_end))
            }
            End::BadLine { offset, kind } => {
                let following = read_following(scanner, seg)?;
                // Only the very last line can be a write cut short: a bad
                // line with records after it was acknowledged damage.
                if !seg.is_last || matches!(following, Following::Lines) {
                    return Err(seg.corrupt(offset, self.expected, kind));
                }
                (offset, following.zeros_at().unwrap_or(file_len))
            }
            End::Seal { offset, seal } => {
                let following = read_following(scanner, seg)?;
                match seal {
                    Ok(seal) => return self.sealed(seg, offset, seal, &following),
                    // A rotation writes the seal before the next segment
                    // exists: in the last segment a bad one is what a crash
                    // left, and cutting it loses no record.
                    Err(_) if seg.is_last && !matches!(following, Following::Lines) => {
                        (offset, following.zeros_at().unwrap_or(file_len))
                    }
                    Err(why) => {
                        return Err(seg.corrupt(
                            offset,
                            self.expected,
                            CorruptionKind::BadSeal(why),
                        ));
                    }
                }
            }
        };
        Ok((Some(self.cut(seg, offset, content_end)), Closing::Open))
    }

    /// The segment's records end in `seal` at `offset`, followed by
    /// `following`: the seal must close them and say what they are.
    fn sealed(
        &self,
        seg: &SegmentRef<'_>,
        offset: u64,
        seal: Seal,
        following: &Following,
    ) -> Result<(Option<TornTail>, Closing), JournalError> {
        let bad = |why: String| seg.corrupt(offset, self.expected, CorruptionKind::BadSeal(why));
        match following {
            Following::Lines => return Err(bad("lines follow the seal".into())),
            // Zeros after a seal: a crash while the last segment was sealed
            // (the trim of its preallocated space not on disk). A closed
            // segment's length was synced before the next one was created.
            Following::Preallocated { .. } if !seg.is_last => {
                return Err(bad("zeros follow the seal".into()));
            }
            Following::Preallocated { .. } | Following::Nothing => {}
        }
        if let Some(open) = &self.open {
            return Err(seg.corrupt(
                open.offset,
                open.first_seq,
                CorruptionKind::UnterminatedBatch,
            ));
        }
        let built = self.built.seal(self.expected - 1);
        if let Some(why) = disagreement(&built, &seal) {
            return Err(bad(why));
        }
        Ok((None, Closing::Sealed(seal)))
    }

    /// At a clean end (`content_end`: the end of what was written), a batch
    /// still open is the last segment's torn tail, and damage in any other:
    /// a segment is only closed after the batches in it.
    fn unfinished_batch(
        &self,
        seg: &SegmentRef<'_>,
        content_end: u64,
    ) -> Result<Option<TornTail>, JournalError> {
        match &self.open {
            None => Ok(None),
            Some(open) if seg.is_last => Ok(Some(self.cut(seg, open.offset, content_end))),
            Some(open) => Err(seg.corrupt(
                open.offset,
                open.first_seq,
                CorruptionKind::UnterminatedBatch,
            )),
        }
    }

    /// The cut of everything from `offset` (or from the start of the batch
    /// still open, which goes whole) to `content_end`.
    fn cut(&self, seg: &SegmentRef<'_>, offset: u64, content_end: u64) -> TornTail {
        let offset = self.open.as_ref().map_or(offset, |b| b.offset);
        TornTail::Cut {
            path: seg.path.to_path_buf(),
            first_seq: seg.first_seq,
            offset,
            dropped_bytes: content_end - offset,
            dropped_records: self.open.as_ref().map_or(0, |b| b.lines),
        }
    }
}

/// Reads the line after a torn or bad one (the one-line lookahead).
fn read_following(
    scanner: &mut LineScanner,
    seg: &SegmentRef<'_>,
) -> Result<Following, JournalError> {
    Ok(match scanner.next_line().map_err(seg.io())? {
        None => Following::Nothing,
        Some(next) if segment::is_preallocated(&next) => {
            Following::Preallocated { at: next.offset }
        }
        Some(_) => Following::Lines,
    })
}

impl Following {
    /// Where preallocated zeros start, if they follow.
    fn zeros_at(&self) -> Option<u64> {
        match self {
            Following::Preallocated { at } => Some(*at),
            Following::Nothing | Following::Lines => None,
        }
    }
}

/// How the seal `found` at the end of a segment disagrees with the one its
/// records call for (`built`), if it does.
fn disagreement(built: &Seal, found: &Seal) -> Option<String> {
    let pairs = [
        ("first_seq", built.first_seq, found.first_seq),
        ("last_seq", built.last_seq, found.last_seq),
        ("records", built.records, found.records),
        ("len", built.len, found.len),
        (
            "content_crc",
            built.content_crc.into(),
            found.content_crc.into(),
        ),
    ];
    if let Some((field, is, says)) = pairs.iter().find(|(_, is, says)| is != says) {
        return Some(format!(
            "it says {field} {says}, the segment's records give {is}"
        ));
    }
    (built.index != found.index).then(|| "its index does not match the records".to_string())
}
