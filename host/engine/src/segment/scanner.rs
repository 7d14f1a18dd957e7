//! Reading a segment file line by line, streamed, in large reads.
//!
//! A line that lies whole in the read buffer is handed out where it lies
//! (no copy); only a line that spans two reads is gathered into a buffer of
//! its own.

use std::io::{self, BufRead, BufReader};

use crate::fs::{FileReader, FileRef};

use super::MAX_LINE_LEN;

/// How much a scanner reads from its file at a time.
const READ_SIZE: usize = 256 * 1024;

/// One line read by a [`LineScanner`].
#[derive(Debug)]
pub struct RawLine<'a> {
    /// Byte offset of the line's first byte in the file.
    pub offset: u64,
    /// The line without its newline.
    pub bytes: &'a [u8],
    /// Byte offset just past the line and its newline.
    pub end: u64,
    /// False when the file ends before the line's newline (a torn write), or
    /// when the line is longer than [`MAX_LINE_LEN`].
    pub complete: bool,
}

/// The most times [`LineScanner::next_line`] reads a line with a NUL in it
/// again before taking it as it is.
pub const MAX_REREADS: usize = 8;

/// Reads a segment file line by line, streamed, tracking byte offsets.
#[derive(Debug)]
pub struct LineScanner {
    reader: BufReader<FileReader>,
    offset: u64,
    /// A line that spanned two reads.
    buf: Vec<u8>,
    /// Bytes of the read buffer handed out as the last line: consumed at
    /// the next call (the line borrows them until then).
    lent: usize,
}

impl LineScanner {
    /// A scanner over `file` from byte `offset`.
    pub fn new(file: FileRef, offset: u64) -> Self {
        LineScanner {
            reader: BufReader::with_capacity(READ_SIZE, FileReader::new(file, offset)),
            offset,
            buf: Vec::new(),
            lent: 0,
        }
    }

    /// The offset of the next line.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The file read.
    pub fn file(&self) -> &FileRef {
        self.reader.get_ref().file()
    }

    /// The next line, or `None` at the end of the file.
    ///
    /// A line with a NUL byte in it is read again, straight from the file,
    /// when it may be stale (a record line never holds a NUL): bytes
    /// buffered by an earlier call may be preallocated zeros that a writer
    /// has overwritten since, and a read that a writer overtakes while it
    /// overwrites zeros shows the zeros before the newline that follows
    /// them. A complete line is read until it has no NUL or two reads agree
    /// (a writer writes each byte once, so a read that repeats is what the
    /// file holds), at most [`MAX_REREADS`] times.
    pub fn next_line(&mut self) -> io::Result<Option<RawLine<'_>>> {
        self.reader.consume(std::mem::take(&mut self.lent));
        let start = self.offset;
        let fresh = self.reader.buffer().is_empty();
        if let Some(len) = self.whole_line_in_buffer()? {
            self.lent = len + 1;
            self.offset += self.lent as u64;
            return Ok(Some(RawLine {
                offset: start,
                bytes: &self.reader.buffer()[..len],
                end: self.offset,
                complete: true,
            }));
        }
        let mut complete = self.read_line()?;
        if (complete || !fresh) && self.buf.contains(&0) {
            let file = self.file().clone();
            let mut previous: Option<Vec<u8>> = None;
            for _ in 0..MAX_REREADS {
                *self = LineScanner::new(file.clone(), start);
                complete = self.read_line()?;
                if !complete || !self.buf.contains(&0) || previous.as_deref() == Some(&self.buf[..])
                {
                    break;
                }
                previous = Some(self.buf.clone());
                std::thread::yield_now();
            }
        }
        if self.offset == start {
            return Ok(None);
        }
        Ok(Some(RawLine {
            offset: start,
            bytes: &self.buf,
            end: self.offset,
            complete,
        }))
    }

    /// The length of the next line if the read buffer holds all of it and
    /// its newline, and it has no NUL (which may be stale: see `next_line`).
    fn whole_line_in_buffer(&mut self) -> io::Result<Option<usize>> {
        let available = self.reader.fill_buf()?;
        Ok(memchr::memchr(b'\n', available)
            .filter(|&len| len <= MAX_LINE_LEN && memchr::memchr(0, &available[..len]).is_none()))
    }

    /// Reads the next line into `buf`; true if it ended with a newline.
    fn read_line(&mut self) -> io::Result<bool> {
        self.buf.clear();
        let mut overlong = false;
        loop {
            let available = self.reader.fill_buf()?;
            if available.is_empty() {
                return Ok(false);
            }
            let (taken, found) = match memchr::memchr(b'\n', available) {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            let content = if found { taken - 1 } else { taken };
            let room = MAX_LINE_LEN - self.buf.len();
            overlong |= content > room;
            self.buf.extend_from_slice(&available[..content.min(room)]);
            self.reader.consume(taken);
            self.offset += taken as u64;
            if found {
                return Ok(!overlong);
            }
        }
    }
}

/// True for the zeros that end a segment grown ahead of its records
/// (preallocated space): an incomplete last line of NUL bytes only. A record
/// line never starts with a NUL byte, so this is never a record cut short.
pub fn is_preallocated(line: &RawLine<'_>) -> bool {
    !line.complete && line.bytes.len() as u64 == line.end - line.offset && all_zero(line.bytes)
}

/// True if every byte of `bytes` is 0. Preallocated space runs to a MiB:
/// this runs at memory speed (OR-ing whole chunks vectorises, an
/// early-exit `all` does not).
fn all_zero(bytes: &[u8]) -> bool {
    const CHUNK: usize = 4096;
    bytes
        .chunks(CHUNK)
        .all(|chunk| chunk.iter().fold(0u8, |acc, &b| acc | b) == 0)
}
