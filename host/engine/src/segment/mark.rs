//! The mark: how far the active segment's records are known to be whole,
//! kept in the journal's `MARK` file so that opening a journal scans only
//! the records written since (FORMAT.md, "Marks").
//!
//! ```text
//! {"mark":{"seal":{"first_seq":1,"last_seq":5210,"records":5210,"len":1048620,"content_crc":"9a1c2e07","index":[[1,45],[327,65601],…]},"tail_crc":"70e3a9b4"},"crc":"c1d0f6a2"}
//! ```
//!
//! `seal` says what the segment's bytes before `seal.len` hold, as the seal
//! of a segment cut there would: its header and complete batches of
//! records. `tail_crc` is the CRC-32C of those bytes from the line of the
//! seal's last index entry on, so open checks the end of what a mark covers
//! against the file before it trusts the rest. A mark is a hint: one that
//! fails to read or to match its segment is passed over, and the segment
//! is scanned as if there were none.

use serde::{Deserialize, Serialize};

use super::seal::{IndexEntry, Seal, crc_hex, framed_line, parse_framed};

const PREFIX: &[u8] = b"{\"mark\":";

/// What the start of the active segment holds, as a mark says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mark {
    /// The seal of the segment's bytes before `seal.len`.
    pub seal: Seal,
    /// The CRC-32C of those bytes from the line of `seal`'s last index
    /// entry on.
    #[serde(with = "crc_hex")]
    pub tail_crc: u32,
}

impl Mark {
    /// The mark's line, with its newline.
    pub fn line(&self) -> Vec<u8> {
        framed_line(PREFIX, self)
    }

    /// The last index entry: the line from which `tail_crc` runs. A mark
    /// covers at least one record, so it has one.
    pub fn last_entry(&self) -> Option<IndexEntry> {
        self.seal.index.last().copied()
    }
}

/// Parses a mark line (without its newline): its crc, what its seal says
/// about itself, and that it covers at least one record.
pub fn parse_mark_line(line: &[u8]) -> Result<Mark, String> {
    let mark: Mark = parse_framed(PREFIX, line)?;
    mark.seal.check()?;
    if mark.seal.index.is_empty() {
        return Err("it covers no record".into());
    }
    Ok(mark)
}

/// What one index entry adds to a mark line at most: two numbers of up to
/// 20 digits, brackets and a comma.
const ENTRY_BYTES: u64 = 44;

/// The most a mark line grows by when `bytes` more are written to its
/// segment: the index entries they may add (one per
/// [`INDEX_EVERY`](super::seal::INDEX_EVERY) bytes, and one more).
pub fn mark_growth(bytes: u64) -> u64 {
    (bytes / super::seal::INDEX_EVERY + 1).saturating_mul(ENTRY_BYTES)
}

/// The most bytes the mark line of a segment of `segment_size` bytes takes:
/// a writer leaves no longer mark (a segment that one large batch made
/// longer is scanned whole).
pub fn max_mark_line(segment_size: u64) -> u64 {
    // Its fields but the index, at their longest.
    const FIXED: u64 = 256;
    let entries = segment_size / super::seal::INDEX_EVERY + 2;
    entries.saturating_mul(ENTRY_BYTES).saturating_add(FIXED)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark() -> Mark {
        Mark {
            seal: Seal {
                first_seq: 5,
                last_seq: 9,
                records: 5,
                len: 300,
                content_crc: 0xdead_beef,
                index: vec![(5, 45), (8, 200)],
            },
            tail_crc: 0x0123_4567,
        }
    }

    #[test]
    fn mark_lines_round_trip_and_catch_flips() {
        let mark = mark();
        let line = mark.line();
        let body = &line[..line.len() - 1];
        assert_eq!(parse_mark_line(body), Ok(mark.clone()));
        assert_eq!(mark.last_entry(), Some((8, 200)));
        assert!((line.len() as u64) < max_mark_line(64 * 1024));
        for i in 0..body.len() {
            let mut flipped = body.to_vec();
            flipped[i] ^= 0x20;
            assert!(parse_mark_line(&flipped).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn a_mark_of_no_record_or_a_bad_seal_is_refused() {
        let mut empty = mark();
        empty.seal.last_seq = 4;
        empty.seal.records = 0;
        empty.seal.index.clear();
        let mut contradicts = mark();
        contradicts.seal.records = 4;
        for bad in [empty, contradicts] {
            let line = bad.line();
            assert!(parse_mark_line(&line[..line.len() - 1]).is_err(), "{bad:?}");
        }
        let seal_line = mark().seal.line();
        assert!(parse_mark_line(&seal_line[..seal_line.len() - 1]).is_err());
    }

    #[test]
    fn the_bound_holds_for_the_longest_numbers() {
        let segment_size = 16 * 1024 * 1024;
        let entries = segment_size / super::super::seal::INDEX_EVERY + 2;
        let big = Mark {
            seal: Seal {
                first_seq: super::super::MAX_SEQ - entries,
                last_seq: super::super::MAX_SEQ,
                records: entries + 1,
                len: u64::MAX,
                content_crc: u32::MAX,
                index: (0..entries)
                    .map(|i| (super::super::MAX_SEQ - entries + i, u64::MAX - entries + i))
                    .collect(),
            },
            tail_crc: u32::MAX,
        };
        assert!(big.line().len() as u64 <= max_mark_line(segment_size));
    }
}
