//! One segment file: its name, its header line, its record lines (`line`),
//! a scanner that reads them back one line at a time (`scanner`), and the
//! seal that closes it (`seal`).
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
//! dropped whole. A closed segment ends in a seal line (see [`seal`]).

use std::path::Path;

use serde::Deserialize;

mod line;
pub mod mark;
mod scanner;
pub mod seal;

pub use line::{LineError, RecordLine, check_line, encode_line, parse_line};
pub use scanner::{LineScanner, MAX_REREADS, RawLine, is_preallocated};

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

/// Checks the header line (without its newline) of the segment whose file
/// name says `first_seq`.
pub fn check_header(line: &[u8], first_seq: u64) -> Result<(), String> {
    check_first_seq(first_seq)?;
    let seq = parse_header(line)?;
    if seq != first_seq {
        return Err(format!(
            "header says first_seq {seq}, the file name says {first_seq}"
        ));
    }
    Ok(())
}

/// Checks that a segment's file name names a seq in 1..=[`MAX_SEQ`].
pub fn check_first_seq(first_seq: u64) -> Result<(), String> {
    if !(1..=MAX_SEQ).contains(&first_seq) {
        return Err(format!(
            "the file name's first_seq {first_seq} is outside 1..={MAX_SEQ}"
        ));
    }
    Ok(())
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

/// A crc as FORMAT.md writes it: exactly 8 lower-case hex digits. Any other
/// form (`+…`, upper case) is refused, so a flipped bit in a hex letter
/// (`e` ↔ `E` is one bit) cannot pass unnoticed.
pub(crate) fn parse_crc(text: &str) -> Option<u32> {
    let digits: &[u8; 8] = text.as_bytes().try_into().ok()?;
    let mut crc = 0u32;
    let mut bad = 0u8;
    for &digit in digits {
        let value = HEX_VALUE[usize::from(digit)];
        bad |= value;
        crc = crc << 4 | u32::from(value & 0xf);
    }
    // Every valid digit's value is below 16; `NOT_HEX` has the high bit set.
    (bad & NOT_HEX == 0).then_some(crc)
}

const NOT_HEX: u8 = 0x80;

/// The value of each byte as a lower-case hex digit, or [`NOT_HEX`].
const HEX_VALUE: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

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
    fn a_crc_is_exactly_eight_lower_case_hex_digits() {
        assert_eq!(parse_crc("0123abcd"), Some(0x0123_abcd));
        assert_eq!(parse_crc("ffffffff"), Some(u32::MAX));
        for byte in 0..=255u8 {
            let text = format!("0000000{}", char::from(byte));
            let hex = byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte);
            assert_eq!(parse_crc(&text).is_some(), hex, "{byte:#x}");
        }
        for bad in [
            "",
            "0123abc",
            "0123abcde",
            "+123abcd",
            "0123ABCD",
            " 123abcd",
        ] {
            assert_eq!(parse_crc(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn header_round_trips() {
        let h = header_line(12);
        assert_eq!(parse_header(h.trim_end().as_bytes()), Ok(12));
        assert!(parse_header(b"// MINISTORE JOURNAL v0.1.4").is_err());
    }
}
