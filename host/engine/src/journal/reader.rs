//! Streamed reads: one segment open at a time, read in large chunks, one
//! line checked at a time. A read that starts inside a segment seeks to the
//! unit that holds its first seq through the segment's index; a closed
//! segment is read up to where its seal says its records end.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::files::ReadSegment;
use super::{Entry, Inner, Journal, lock, scan};
use crate::error::{Corruption, CorruptionKind, JournalError};
use crate::fs::{FileRef, FileSystem, StdFs};
use crate::segment::seal::{self, Seal, TailSeal};
use crate::segment::{self, LineScanner};

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
    path: PathBuf,
    file: FileRef,
    scanner: LineScanner,
    /// Where a closed segment's records end (its seal starts).
    end: Option<u64>,
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
    /// Lines of a batch whose closing line is not read yet.
    batch: Vec<Entry>,
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
    /// the last), or the durable end is reached for now. Returns how many
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
        while count < max && bytes < max_bytes {
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
        while count < max && bytes < max_bytes {
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

    fn fs(&self) -> &dyn FileSystem {
        match &self.source {
            Source::Journal(inner) => inner.options.fs.as_ref(),
            Source::Unlocked { fs, .. } => fs.as_ref(),
        }
    }

    fn limit(&self) -> u64 {
        match &self.source {
            Source::Journal(inner) => inner.durable_seq.load(Ordering::Acquire),
            Source::Unlocked { .. } => u64::MAX,
        }
    }

    /// The segment holding `self.expected` (the last one starting at or
    /// before it), if there is one.
    fn segment_holding_expected(&self) -> Result<Option<ReadSegment>, JournalError> {
        let holds = |first: u64| first <= self.expected;
        match &self.source {
            Source::Journal(inner) => {
                let segments = lock(&inner.index);
                let at = segments.partition_point(|s| holds(s.first_seq));
                Ok(at.checked_sub(1).map(|i| segments[i].clone()))
            }
            Source::Unlocked { fs, dir } => {
                let seqs = scan::list_segments(fs.as_ref(), dir)?;
                let at = seqs.partition_point(|&first| holds(first));
                Ok(at.checked_sub(1).map(|i| ReadSegment {
                    first_seq: seqs[i],
                    path: segment::segment_path(dir, seqs[i]),
                    seal: None,
                    index: Arc::new([]),
                }))
            }
        }
    }

    /// Opens the segment holding `self.expected` (or the one starting right
    /// after the open one). Returns false when there is none yet.
    fn open_segment(&mut self) -> Result<bool, JournalError> {
        let Some(ReadSegment {
            first_seq,
            path,
            seal,
            index,
        }) = self.segment_holding_expected()?
        else {
            return Err(JournalError::OutOfRange {
                requested: self.from,
                first: self.expected,
                next: self.expected,
            });
        };
        if let Some(open) = &self.segment
            && open.path == path
        {
            return Ok(false);
        }
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
        let corrupt = |why: String| Corruption {
            file: path.clone(),
            offset: 0,
            seq: first_seq,
            kind: CorruptionKind::BadHeader(why),
        };
        match header {
            Some(line) if line.complete => {
                segment::check_header(line.bytes, first_seq).map_err(corrupt)?;
            }
            // A segment being created right now by another process.
            _ => return Ok(false),
        }
        let seal = match seal {
            Some(seal) => Some(seal),
            None => read_seal(&file, &path)?,
        };
        let index = seal
            .as_ref()
            .map_or(index, |seal| seal.index.as_slice().into());
        // Seek to the unit holding the first seq wanted, if it is past the
        // segment's first (and, in a live journal, durable: the index of the
        // active segment may name a unit still being written).
        let target = self.expected.min(self.limit());
        self.expected = first_seq;
        if let Some((seq, offset)) = Seal::offset_for(&index, target)
            && seq > first_seq
        {
            scanner = LineScanner::new(file.clone(), offset);
            self.expected = seq;
        }
        self.batch.clear();
        self.segment = Some(OpenSegment {
            path,
            file,
            scanner,
            end: seal.map(|seal| seal.len),
        });
        Ok(true)
    }

    /// Reads lines until a record (or a whole batch) has gone to `sink`
    /// (`Ok(true)`), the end is reached (`Ok(false)`), or damage is found.
    /// A single record goes to `sink` where it lies in the read buffer; the
    /// lines of a batch are kept until its closing line is read.
    fn fill(&mut self, sink: &mut dyn FnMut(u64, &str)) -> Result<bool, JournalError> {
        loop {
            if self.expected > self.limit() {
                return Ok(false);
            }
            if self.segment.is_none() && !self.open_segment()? {
                return Ok(false);
            }
            let Some(open) = self.segment.as_mut() else {
                return Ok(false);
            };
            let start = open.scanner.offset();
            if open.end.is_some_and(|end| start >= end) {
                // A closed segment's records are all read.
                if self.open_segment()? {
                    continue;
                }
                return Ok(false);
            }
            let line = open
                .scanner
                .next_line()
                .map_err(JournalError::io(&open.path))?;
            let at_seal = line
                .as_ref()
                .is_some_and(|l| l.complete && seal::is_seal_line(l.bytes));
            if at_seal {
                // The active segment, sealed since it was opened (or a
                // segment read without its lock): it ends here if its seal
                // reads. Read again from the seal next time if the next
                // segment is not there yet.
                let offset = start;
                let bad = line.and_then(|l| seal::parse_seal_line(l.bytes).err());
                if let Some(why) = bad {
                    return Err(Corruption {
                        file: open.path.clone(),
                        offset,
                        seq: self.expected,
                        kind: CorruptionKind::BadSeal(why),
                    }
                    .into());
                }
                open.scanner = LineScanner::new(open.file.clone(), start);
                open.end = Some(start);
                if self.open_segment()? {
                    continue;
                }
                return Ok(false);
            }
            let Some(line) = line.filter(|l| l.complete) else {
                // End of this segment (or a line still being written by
                // another process, which is read again from its start next
                // time): continue in the next segment if any.
                if open.scanner.offset() != start {
                    open.scanner = LineScanner::new(open.file.clone(), start);
                }
                if self.open_segment()? {
                    continue;
                }
                return Ok(false);
            };
            let offset = line.offset;
            let kind = match segment::check_line(line.bytes, self.expected) {
                Ok(rec) => {
                    self.expected += 1;
                    let wanted = rec.seq >= self.from;
                    // A batch is held back until its closing line only
                    // where it may still be cut: in a segment that another
                    // process may be writing. A live journal's reader stops
                    // at the durable end, which never falls inside a batch,
                    // and a sealed segment holds whole batches.
                    let whole = matches!(self.source, Source::Journal(_)) || open.end.is_some();
                    if rec.more && !whole {
                        if wanted {
                            self.batch.push(Entry {
                                seq: rec.seq,
                                data: rec.data.to_owned(),
                            });
                        }
                        continue;
                    }
                    let delivered = wanted || !self.batch.is_empty();
                    for entry in self.batch.drain(..) {
                        sink(entry.seq, &entry.data);
                    }
                    if wanted {
                        sink(rec.seq, rec.data);
                    }
                    if !delivered {
                        continue;
                    }
                    return Ok(true);
                }
                Err(kind) => kind,
            };
            return Err(Corruption {
                file: open.path.clone(),
                offset,
                seq: self.expected,
                kind,
            }
            .into());
        }
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
