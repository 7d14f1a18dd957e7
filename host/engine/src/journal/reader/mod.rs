//! Streamed reads: one segment open at a time, read in large chunks, one
//! line checked at a time. This module is the reader's interface; `walk`
//! finds and opens segments and reads their lines.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Entry, Inner, Journal, lock, scan};
use crate::error::JournalError;
use crate::fs::{FileRef, FileSystem, StdFs};
use crate::segment::LineScanner;

mod segments;
mod walk;

/// Where a reader finds segments and how far it may read.
#[derive(Debug)]
enum Source {
    /// A journal open in this process: read up to its durable end.
    Journal(Arc<Inner>),
    /// A directory read without the lock (another process may be writing):
    /// read up to the last complete batch.
    Unlocked {
        fs: Arc<dyn FileSystem>,
        dir: PathBuf,
    },
}

#[derive(Debug)]
struct OpenSegment {
    first_seq: u64,
    path: PathBuf,
    file: FileRef,
    scanner: LineScanner,
    /// Where a closed segment's records end (its seal starts).
    end: Option<u64>,
}

/// The first line of a batch whose closing line is not read yet.
#[derive(Debug, Clone, Copy)]
struct OpenBatch {
    offset: u64,
    seq: u64,
}

/// A streamed, checked read over a journal, in sequence order.
///
/// Each record's crc and sequence number are checked as it is read; damage
/// ends the read with [`JournalError::Corrupt`]. `next` returning `None`
/// means the reader has reached the journal's durable end *for now*: a later
/// call returns records appended since.
#[derive(Debug)]
pub struct Reader {
    source: Source,
    segment: Option<OpenSegment>,
    /// The sequence number of the next line in the open segment.
    expected: u64,
    /// Lines before this are checked but not returned.
    from: u64,
    /// Lines of a batch whose closing line is not read yet, where a batch
    /// may still be cut (see `fill`).
    batch: Vec<Entry>,
    /// Where that batch starts, whether its lines are held back or not.
    open_batch: Option<OpenBatch>,
    /// The line cut short where the open segment's records stopped, if
    /// they stopped at one.
    short_line: Option<u64>,
    /// The open segment's end was read again once since a later segment
    /// showed up (an unlocked reader may have read it while it was being
    /// written).
    rechecked: bool,
    ready: VecDeque<Entry>,
    /// The error that ended the read: the iterator returns it once, then
    /// `None`; `next_batch` returns it on every call.
    failure: Option<JournalError>,
}

impl Journal {
    /// Reads the records from `from_seq` on (0 means from the first stored
    /// record). Records before the first stored one (compacted away) are
    /// [`JournalError::OutOfRange`]; so is a `from_seq` past the next one.
    pub fn read_from(&self, from_seq: u64) -> Result<Reader, JournalError> {
        let (first, next) = {
            let first = lock(&self.inner.index)[0].first_seq;
            (first, lock(&self.inner.queue).next_seq)
        };
        let from = if from_seq == 0 { first } else { from_seq };
        if from < first || from > next {
            return Err(JournalError::OutOfRange {
                requested: from_seq,
                first,
                next,
            });
        }
        Ok(Reader::new(Source::Journal(self.inner.clone()), from))
    }
}

/// Reads the journal in `dir` without taking its lock, for inspecting a
/// journal that another process may be writing (`mini cat`). Stops at the
/// last complete batch; an unfinished batch or torn line at the end is not
/// returned.
pub fn read_unlocked(dir: &Path, from_seq: u64) -> Result<Reader, JournalError> {
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs);
    let seqs = scan::list_segments(fs.as_ref(), dir)?;
    let first = seqs.first().copied().unwrap_or(1);
    let from = from_seq.max(first);
    if from_seq != 0 && from_seq < first {
        return Err(JournalError::OutOfRange {
            requested: from_seq,
            first,
            next: first,
        });
    }
    let source = Source::Unlocked {
        fs,
        dir: dir.to_path_buf(),
    };
    Ok(Reader::new(source, from))
}

impl Reader {
    fn new(source: Source, from: u64) -> Self {
        Reader {
            source,
            segment: None,
            expected: from,
            from,
            batch: Vec::new(),
            open_batch: None,
            short_line: None,
            rechecked: false,
            ready: VecDeque::new(),
            failure: None,
        }
    }

    /// Up to `max` next records; an empty list means the durable end is
    /// reached for now. Records before damage are returned first; the damage
    /// is the error of the next call, and of every call after it.
    pub fn next_batch(&mut self, max: usize) -> Result<Vec<Entry>, JournalError> {
        let mut out = Vec::with_capacity(max.min(1024));
        self.next_records(max, usize::MAX, &mut |seq, data| {
            out.push(Entry {
                seq,
                data: data.to_owned(),
            });
        })?;
        Ok(out)
    }

    /// Hands the next records to `f` as they lie in the read buffer (no
    /// copy, no allocation per record), until `max` records or `max_bytes`
    /// bytes of them have gone by (the record that crosses `max_bytes` is
    /// the last, so at least one goes by if `max` is not 0), or the durable
    /// end is reached for now. Returns how many
    /// records `f` got: 0 at the end. Records before damage are handed out
    /// first; the damage is the error of the next call, and of every call
    /// after it.
    ///
    /// ```
    /// use mini_engine::Journal;
    /// let dir = tempfile::tempdir()?;
    /// let journal = Journal::open(dir.path())?;
    /// journal.append_batch(&["1", "2", "3"])?;
    /// let mut reader = journal.read_from(2)?;
    /// let mut seen = Vec::new();
    /// while reader.next_records(1024, 1 << 20, &mut |seq, data| seen.push((seq, data.len())))? > 0 {}
    /// assert_eq!(seen, [(2, 1), (3, 1)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn next_records(
        &mut self,
        max: usize,
        max_bytes: usize,
        f: &mut dyn FnMut(u64, &str),
    ) -> Result<usize, JournalError> {
        let mut count = 0;
        let mut bytes = 0usize;
        // At least one record, whatever `max_bytes`: the one that crosses it.
        let room = |count: usize, bytes: usize| count < max && (count == 0 || bytes < max_bytes);
        while room(count, bytes) {
            let Some(entry) = self.ready.pop_front() else {
                break;
            };
            bytes = bytes.saturating_add(entry.data.len());
            f(entry.seq, &entry.data);
            count += 1;
        }
        if let Some(failure) = &self.failure {
            return if count > 0 {
                Ok(count)
            } else {
                Err(failure.clone())
            };
        }
        // Records past `max` of a batch wait in `ready` for the next call.
        let mut ready = std::mem::take(&mut self.ready);
        while room(count, bytes) {
            let filled = self.fill(&mut |seq, data| {
                if count < max {
                    bytes = bytes.saturating_add(data.len());
                    f(seq, data);
                    count += 1;
                } else {
                    ready.push_back(Entry {
                        seq,
                        data: data.to_owned(),
                    });
                }
            });
            match filled {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    self.failure = Some(e.clone());
                    if count == 0 {
                        self.ready = ready;
                        return Err(e);
                    }
                    break;
                }
            }
        }
        self.ready = ready;
        Ok(count)
    }
}

impl Iterator for Reader {
    type Item = Result<Entry, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(entry) = self.ready.pop_front() {
            return Some(Ok(entry));
        }
        if self.failure.is_some() {
            return None;
        }
        let mut first = None;
        let mut ready = std::mem::take(&mut self.ready);
        let filled = self.fill(&mut |seq, data| {
            let entry = Entry {
                seq,
                data: data.to_owned(),
            };
            match first {
                None => first = Some(entry),
                Some(_) => ready.push_back(entry),
            }
        });
        self.ready = ready;
        match filled {
            Ok(_) => first.map(Ok),
            Err(e) => {
                self.failure = Some(e.clone());
                Some(Err(e))
            }
        }
    }
}
