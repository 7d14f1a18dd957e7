//! Building a segment's seal as its bytes go by.

use super::{INDEX_EVERY, IndexEntry, Seal};

/// Builds the seal of a segment as its bytes go by: the writer's as it
/// writes, the scanner's as it reads, by the same rules, so the two agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealBuilder {
    first_seq: u64,
    crc: u32,
    len: u64,
    index: Vec<IndexEntry>,
}

/// Where a [`SealBuilder`] stood: what [`SealBuilder::restore`] goes back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuilderMark {
    crc: u32,
    len: u64,
    entries: usize,
}

impl SealBuilder {
    /// A builder for segment `first_seq` whose header line (with its newline)
    /// is `header`.
    pub fn new(first_seq: u64, header: &[u8]) -> Self {
        let mut builder = SealBuilder {
            first_seq,
            crc: 0,
            len: 0,
            index: Vec::new(),
        };
        builder.add(header);
        builder
    }

    /// A builder that goes on from the bytes `seal` describes: the segment
    /// it sealed, written on once its seal is cut, or the records a mark
    /// covers (see [`Mark`](crate::segment::mark::Mark)).
    pub fn resume(seal: &Seal) -> Self {
        SealBuilder {
            first_seq: seal.first_seq,
            crc: seal.content_crc,
            len: seal.len,
            index: seal.index.clone(),
        }
    }

    /// The next bytes of the segment.
    pub fn add(&mut self, bytes: &[u8]) {
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.len += bytes.len() as u64;
    }

    /// The next bytes of the segment: whole record lines (the last one's
    /// newline may come with the next call), the first of them record
    /// `seq`. Index entries are taken from them: the first record line, then
    /// the first line that starts at least [`INDEX_EVERY`] bytes after the
    /// previous entry, inside a batch or not (a read that starts inside a
    /// batch hands out only its records from there on, with its closing
    /// line).
    pub fn add_lines(&mut self, bytes: &[u8], mut seq: u64) {
        let base = self.len;
        let mut line = 0; // a line starts here
        while line < bytes.len() {
            let due = self.index.last().map_or(0, |&(_, offset)| {
                (offset + INDEX_EVERY).saturating_sub(base)
            });
            let due = usize::try_from(due).unwrap_or(usize::MAX);
            if due > line {
                // The first line that starts at or after `due`: right
                // after the first newline at or after `due - 1`.
                let Some(newline) = bytes
                    .get(due - 1..)
                    .and_then(|rest| memchr::memchr(b'\n', rest))
                else {
                    break;
                };
                let next = due + newline;
                seq += memchr::memchr_iter(b'\n', &bytes[line..next]).count() as u64;
                line = next;
                if line >= bytes.len() {
                    break;
                }
            }
            self.index.push((seq, base + line as u64));
        }
        self.add(bytes);
    }

    /// The bytes added so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True if nothing was added (not even a header).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The index entries so far.
    pub fn index(&self) -> &[IndexEntry] {
        &self.index
    }

    /// Where the builder stands now.
    pub fn mark(&self) -> BuilderMark {
        BuilderMark {
            crc: self.crc,
            len: self.len,
            entries: self.index.len(),
        }
    }

    /// Goes back to `mark`: what was added after it is forgotten.
    pub fn restore(&mut self, mark: BuilderMark) {
        self.crc = mark.crc;
        self.len = mark.len;
        self.index.truncate(mark.entries);
    }

    /// The seal of the segment as it stands, whose last record is `last_seq`.
    pub fn seal(&self, last_seq: u64) -> Seal {
        Seal {
            first_seq: self.first_seq,
            last_seq,
            records: (last_seq + 1).saturating_sub(self.first_seq),
            len: self.len,
            content_crc: self.crc,
            index: self.index.clone(),
        }
    }
}
