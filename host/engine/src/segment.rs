//! One segment file: its name, its header line, its record lines, and a
//! scanner that reads them back one line at a time.
//!
//! ```text
//! {"mini":"journal","version":1,"first_seq":1}
//! {"seq":1,"crc":"d2380d48","data":{"Inc":{"by":5}}}
//! {"seq":2,"crc":"172c4550","more":true,"data":{"Set":{"value":10}}}
//! {"seq":3,"crc":"4ce6a952","data":{"Inc":{"by":1}}}
//! ```
//!
//! Lines 2 and 3 above are one batch: every line of a batch but the last
//! carries `"more":true`, so a batch cut off by a crash is recognised and
//! dropped whole.

use std::io::{self, BufRead, BufReader};
use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::CorruptionKind;
use crate::fs::{FileReader, FileRef};

/// The extension of segment files.
pub const SEGMENT_EXTENSION: &str = "jsonl";

/// A line longer than this is garbage, not a record (it bounds the memory
/// a damaged file can make a reader use).
pub const MAX_LINE_LEN: usize = 256 * 1024 * 1024;

/// The largest sequence number a journal gives out. Sequence numbers run
/// from 1 to here; a seq or first_seq on disk outside that range is damage,
/// and once it is reached appends are refused
/// ([`JournalError::SequenceExhausted`](crate::JournalError::SequenceExhausted)):
/// no arithmetic on a seq can overflow.
pub const MAX_SEQ: u64 = u64::MAX - 1;

/// The file name of the segment whose first record is `first_seq`:
/// 20 digits, so that names sort like numbers.
pub fn segment_file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.{SEGMENT_EXTENSION}")
}

/// The first sequence number named by a segment file name, if it is one.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".jsonl")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The header line (with its newline) of a segment starting at `first_seq`.
pub fn header_line(first_seq: u64) -> String {
    format!("{{\"mini\":\"journal\",\"version\":1,\"first_seq\":{first_seq}}}\n")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header<'a> {
    #[serde(borrow)]
    mini: &'a str,
    version: u32,
    first_seq: u64,
}

/// Parses a header line (without its newline); returns its `first_seq`.
pub fn parse_header(line: &[u8]) -> Result<u64, String> {
    let header: Header<'_> = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    if header.mini != "journal" {
        return Err(format!("\"mini\" is {:?}, not \"journal\"", header.mini));
    }
    if header.version != 1 {
        return Err(format!("unsupported version {}", header.version));
    }
    Ok(header.first_seq)
}

/// Appends the line (with its newline) of record `data` at `seq` to `out`.
/// `more` marks every line of a batch but the last.
pub fn encode_line(out: &mut Vec<u8>, seq: u64, data: &str, more: bool) {
    use std::io::Write;
    let crc = crc32c::crc32c(data.as_bytes());
    let more = if more { ",\"more\":true" } else { "" };
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{{\"seq\":{seq},\"crc\":\"{crc:08x}\"{more},\"data\":");
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(b"}\n");
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineRepr<'a> {
    seq: u64,
    #[serde(borrow)]
    crc: &'a str,
    #[serde(default)]
    more: bool,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// A record line, parsed and checked against its CRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLine<'a> {
    /// The record's sequence number.
    pub seq: u64,
    /// Set on every line of a batch but the last.
    pub more: bool,
    /// The record exactly as stored.
    pub data: &'a str,
}

/// Why a line is not a valid record line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// Not a record line at all.
    Garbage(String),
    /// A record line whose data does not match its CRC.
    ChecksumMismatch {
        /// The line's sequence number.
        seq: u64,
        /// The CRC in the line.
        stored: u32,
        /// The CRC of the data.
        computed: u32,
    },
}

/// A crc as FORMAT.md writes it: exactly 8 lower-case hex digits. Any other
/// form (`+…`, upper case) is refused, so a flipped bit in a hex letter
/// (`e` ↔ `E` is one bit) cannot pass unnoticed.
pub(crate) fn parse_crc(text: &str) -> Option<u32> {
    if text.len() != 8 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u32::from_str_radix(text, 16).ok()
}

/// Parses one record line (without its newline) and checks its CRC.
pub fn parse_line(line: &[u8]) -> Result<RecordLine<'_>, LineError> {
    let repr: LineRepr<'_> =
        serde_json::from_slice(line).map_err(|e| LineError::Garbage(e.to_string()))?;
    let stored = parse_crc(repr.crc).ok_or_else(|| {
        LineError::Garbage(format!("crc {:?} is not 8 lower-case hex digits", repr.crc))
    })?;
    let data = repr.data.get();
    let computed = crc32c::crc32c(data.as_bytes());
    if stored != computed {
        return Err(LineError::ChecksumMismatch {
            seq: repr.seq,
            stored,
            computed,
        });
    }
    Ok(RecordLine {
        seq: repr.seq,
        more: repr.more,
        data,
    })
}

/// Parses the record line that must carry sequence number `expected`, and
/// says what kind of damage it is if it is not that record.
pub fn check_line(line: &[u8], expected: u64) -> Result<RecordLine<'_>, CorruptionKind> {
    match parse_line(line) {
        Ok(rec) if rec.seq == 0 || rec.seq > MAX_SEQ => Err(CorruptionKind::Garbage(format!(
            "seq {} is outside 1..={MAX_SEQ}",
            rec.seq
        ))),
        Ok(rec) if rec.seq == expected => Ok(rec),
        Ok(rec) => Err(CorruptionKind::SequenceGap {
            expected,
            found: rec.seq,
        }),
        Err(LineError::Garbage(why)) => Err(CorruptionKind::Garbage(why)),
        Err(LineError::ChecksumMismatch {
            stored, computed, ..
        }) => Err(CorruptionKind::ChecksumMismatch { stored, computed }),
    }
}

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
    buf: Vec<u8>,
}

impl LineScanner {
    /// A scanner over `file` from byte `offset`.
    pub fn new(file: FileRef, offset: u64) -> Self {
        LineScanner {
            reader: BufReader::with_capacity(64 * 1024, FileReader::new(file, offset)),
            offset,
            buf: Vec::new(),
        }
    }

    /// The offset of the next line.
    pub fn offset(&self) -> u64 {
        self.offset
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
        let start = self.offset;
        let fresh = self.reader.buffer().is_empty();
        let mut complete = self.read_line()?;
        if (complete || !fresh) && self.buf.contains(&0) {
            let file = self.reader.get_ref().file().clone();
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

    /// Reads the next line into `buf`; true if it ended with a newline.
    fn read_line(&mut self) -> io::Result<bool> {
        self.buf.clear();
        let mut overlong = false;
        loop {
            let available = self.reader.fill_buf()?;
            if available.is_empty() {
                return Ok(false);
            }
            let (taken, found) = match memchr_newline(available) {
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
    !line.complete
        && line.bytes.len() as u64 == line.end - line.offset
        && line.bytes.iter().all(|&b| b == 0)
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

/// The path of segment `first_seq` in `dir`.
pub fn segment_path(dir: &Path, first_seq: u64) -> std::path::PathBuf {
    dir.join(segment_file_name(first_seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort() {
        assert_eq!(segment_file_name(1), "00000000000000000001.jsonl");
        assert_eq!(
            parse_segment_file_name("00000000000000000042.jsonl"),
            Some(42)
        );
        assert_eq!(parse_segment_file_name("42.jsonl"), None);
        assert_eq!(parse_segment_file_name("LOCK"), None);
        assert!(segment_file_name(9) < segment_file_name(10));
    }

    #[test]
    fn lines_round_trip_and_crc_catches_flips() {
        let mut out = Vec::new();
        encode_line(&mut out, 7, r#"{"Inc":{"by":5}}"#, true);
        let line = &out[..out.len() - 1];
        let parsed = parse_line(line).unwrap();
        assert_eq!(
            parsed,
            RecordLine {
                seq: 7,
                more: true,
                data: r#"{"Inc":{"by":5}}"#
            }
        );
        let flipped = String::from_utf8(line.to_vec())
            .unwrap()
            .replace("5}", "6}");
        assert!(matches!(
            parse_line(flipped.as_bytes()),
            Err(LineError::ChecksumMismatch { seq: 7, .. })
        ));
    }

    #[test]
    fn header_round_trips() {
        let h = header_line(12);
        assert_eq!(parse_header(h.trim_end().as_bytes()), Ok(12));
        assert!(parse_header(b"// MINISTORE JOURNAL v0.1.4").is_err());
    }
}
