//! The seal: the last line of a closed segment, saying what the segment
//! holds so that opening a journal need not read it.
//!
//! ```text
//! {"seal":{"first_seq":1,"last_seq":4096,"records":4096,"len":618937,"content_crc":"5e1f0c2a","index":[[1,45],[431,65589]]},"crc":"0d3e4b11"}
//! ```
//!
//! `len` is where the seal line starts: the segment's header and records
//! are the bytes before it, and `content_crc` is their CRC-32C. `index`
//! holds a sparse map from seq to the byte offset of its line: one entry for
//! the first record, then one for the first record line that starts at
//! least [`INDEX_EVERY`] bytes after the previous entry. `crc` is the CRC-32C of the object after
//! `"seal":`. FORMAT.md, "Seals", has the crash argument.

use serde::{Deserialize, Serialize};

use super::{MAX_SEQ, parse_crc};

mod builder;
mod tail;

pub use builder::{BuilderMark, SealBuilder};
pub(crate) use tail::read_exact_at;
pub use tail::{TailSeal, read_tail_seal, read_tail_seal_head};

/// The spacing of a seal's index entries, in bytes of the segment.
pub const INDEX_EVERY: u64 = 64 * 1024;

/// A seal line longer than this is not read as one (it bounds what a
/// damaged file can make open read).
pub const MAX_SEAL_LINE: u64 = 16 * 1024 * 1024;

const PREFIX: &[u8] = b"{\"seal\":";
const CRC_KEY: &[u8] = b",\"crc\":\"";

/// One index entry: a record's seq and the byte offset of its line.
pub type IndexEntry = (u64, u64);

/// What a closed segment holds, as its seal line says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seal {
    /// The first seq the segment holds (its name's).
    pub first_seq: u64,
    /// Its last record's seq (`first_seq - 1` if it holds none).
    pub last_seq: u64,
    /// How many records it holds.
    pub records: u64,
    /// Bytes of the header and the records: where the seal line starts.
    pub len: u64,
    /// The CRC-32C of those bytes, 8 lower-case hex digits.
    #[serde(with = "crc_hex")]
    pub content_crc: u32,
    /// Seq → offset of its line, ascending in both.
    pub index: Vec<IndexEntry>,
}

pub(super) mod crc_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(crc: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{crc:08x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let text = <&str>::deserialize(d)?;
        super::parse_crc(text)
            .ok_or_else(|| serde::de::Error::custom("content_crc is not 8 lower-case hex digits"))
    }
}

impl Seal {
    /// The seal line, with its newline.
    pub fn line(&self) -> Vec<u8> {
        framed_line(PREFIX, self)
    }

    /// Where to start reading to reach `seq`: the last entry at or before
    /// it, or `None` if the index has none (then from the segment's start).
    pub fn offset_for(index: &[IndexEntry], seq: u64) -> Option<IndexEntry> {
        let after = index.partition_point(|&(s, _)| s <= seq);
        after.checked_sub(1).map(|i| index[i])
    }

    /// What the seal says but its index.
    pub fn head(&self) -> SealHead {
        SealHead {
            first_seq: self.first_seq,
            last_seq: self.last_seq,
            records: self.records,
            len: self.len,
            content_crc: self.content_crc,
        }
    }

    /// Checks what a seal says about itself: seqs in range and consistent,
    /// the index ascending and inside the segment.
    pub(in crate::segment) fn check(&self) -> Result<(), String> {
        self.head().check()?;
        let mut previous: Option<IndexEntry> = None;
        for &(seq, offset) in &self.index {
            let ordered = previous.is_none_or(|(s, o)| seq > s && offset > o);
            if !ordered || seq < self.first_seq || seq > self.last_seq || offset >= self.len {
                return Err(format!(
                    "index entry [{seq},{offset}] is out of order or range"
                ));
            }
            previous = Some((seq, offset));
        }
        Ok(())
    }
}

/// What a seal says of its segment but its index: what open needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealHead {
    /// See [`Seal::first_seq`].
    pub first_seq: u64,
    /// See [`Seal::last_seq`].
    pub last_seq: u64,
    /// See [`Seal::records`].
    pub records: u64,
    /// See [`Seal::len`].
    pub len: u64,
    /// See [`Seal::content_crc`].
    pub content_crc: u32,
}

impl SealHead {
    /// Seqs in range, and as many records as they span.
    fn check(&self) -> Result<(), String> {
        if !(1..=MAX_SEQ).contains(&self.first_seq) || self.last_seq > MAX_SEQ {
            return Err(format!(
                "seqs {}..={} are outside 1..={MAX_SEQ}",
                self.first_seq, self.last_seq
            ));
        }
        if self
            .last_seq
            .checked_add(1)
            .map(|n| n.checked_sub(self.first_seq))
            != Some(Some(self.records))
        {
            return Err(format!(
                "{} records do not run from seq {} to {}",
                self.records, self.first_seq, self.last_seq
            ));
        }
        Ok(())
    }
}

/// True if `line` is meant to be a seal line (it may still be a bad one).
pub fn is_seal_line(line: &[u8]) -> bool {
    line.starts_with(PREFIX)
}

/// True if `bytes` (an incomplete last line, NUL bytes after it left out)
/// is the start of a seal line: what a crash while sealing leaves.
pub fn is_torn_seal(bytes: &[u8]) -> bool {
    let written = &bytes[..bytes.len() - bytes.iter().rev().take_while(|&&b| b == 0).count()];
    !written.is_empty() && (written.starts_with(PREFIX) || PREFIX.starts_with(written))
}

/// Parses a seal line (without its newline) and checks its crc and what it
/// says about itself.
pub fn parse_seal_line(line: &[u8]) -> Result<Seal, String> {
    let seal: Seal = parse_framed(PREFIX, line)?;
    seal.check()?;
    Ok(seal)
}

/// Parses what a seal line (without its newline) says but its index, and
/// checks its crc and what that says about itself. The index is read as it
/// is written (`"index":[…]` last); it is parsed and checked only where it
/// is used, by [`parse_seal_line`]. A seal written another way (fields in
/// another order) is parsed whole.
pub fn parse_seal_head(line: &[u8]) -> Result<SealHead, String> {
    let object = framed_object(PREFIX, line)?;
    let head = match head_as_written(object) {
        Some(head) => head,
        None => {
            let seal: Seal = serde_json::from_slice(object).map_err(|e| e.to_string())?;
            seal.check()?;
            seal.head()
        }
    };
    head.check()?;
    Ok(head)
}

/// The head of a seal object in the layout [`Seal::line`] writes, if it is
/// in it.
fn head_as_written(object: &[u8]) -> Option<SealHead> {
    fn number<'a>(rest: &'a [u8], key: &[u8]) -> Option<(u64, &'a [u8])> {
        let rest = rest.strip_prefix(key)?;
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let text = std::str::from_utf8(&rest[..digits]).ok()?;
        let canonical = digits == 1 || !text.starts_with('0');
        let value = text.parse().ok().filter(|_| canonical)?;
        Some((value, &rest[digits..]))
    }
    let (first_seq, rest) = number(object, b"{\"first_seq\":")?;
    let (last_seq, rest) = number(rest, b",\"last_seq\":")?;
    let (records, rest) = number(rest, b",\"records\":")?;
    let (len, rest) = number(rest, b",\"len\":")?;
    let rest = rest.strip_prefix(b",\"content_crc\":\"")?;
    let crc = std::str::from_utf8(rest.get(..8)?)
        .ok()
        .and_then(parse_crc)?;
    let index = rest.get(8..)?.strip_prefix(b"\",\"index\":[")?;
    index.strip_suffix(b"]}")?;
    Some(SealHead {
        first_seq,
        last_seq,
        records,
        len,
        content_crc: crc,
    })
}

/// `{"<key>":<value>,"crc":"<crc of value>"}` and a newline: how a seal and
/// a mark are written (`prefix` is `{"<key>":`).
pub(super) fn framed_line(prefix: &[u8], value: &impl Serialize) -> Vec<u8> {
    // Serializing a struct of numbers and strings cannot fail.
    let object = serde_json::to_vec(value).unwrap_or_default();
    let mut line = Vec::with_capacity(object.len() + 32);
    line.extend_from_slice(prefix);
    line.extend_from_slice(&object);
    line.extend_from_slice(CRC_KEY);
    line.extend_from_slice(format!("{:08x}\"}}\n", crc32c::crc32c(&object)).as_bytes());
    line
}

/// The value of a [`framed_line`] (without its newline), its crc checked.
pub(super) fn parse_framed<T: serde::de::DeserializeOwned>(
    prefix: &[u8],
    line: &[u8],
) -> Result<T, String> {
    serde_json::from_slice(framed_object(prefix, line)?).map_err(|e| e.to_string())
}

/// The bytes of the value of a [`framed_line`] (without its newline), its
/// crc checked.
fn framed_object<'a>(prefix: &[u8], line: &'a [u8]) -> Result<&'a [u8], String> {
    let rest = line
        .strip_prefix(prefix)
        .ok_or_else(|| format!("does not start with {}", String::from_utf8_lossy(prefix)))?;
    let (object, tail) = rest
        .len()
        .checked_sub(CRC_KEY.len() + 10)
        .map(|at| rest.split_at(at))
        .ok_or("too short")?;
    let crc = tail
        .strip_prefix(CRC_KEY)
        .and_then(|t| t.strip_suffix(b"\"}"))
        .and_then(|t| std::str::from_utf8(t).ok())
        .and_then(parse_crc)
        .ok_or_else(|| "no crc of 8 lower-case hex digits at its end".to_string())?;
    let computed = crc32c::crc32c(object);
    if crc != computed {
        return Err(format!(
            "checksum mismatch (stored {crc:08x}, computed {computed:08x})"
        ));
    }
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_lines_round_trip_and_catch_flips() {
        let seal = Seal {
            first_seq: 5,
            last_seq: 9,
            records: 5,
            len: 300,
            content_crc: 0xdeadbeef,
            index: vec![(5, 45), (8, 200)],
        };
        let line = seal.line();
        assert_eq!(line.last(), Some(&b'\n'));
        let body = &line[..line.len() - 1];
        assert_eq!(parse_seal_line(body), Ok(seal.clone()));
        for i in 0..body.len() {
            let mut flipped = body.to_vec();
            flipped[i] ^= 0x20;
            assert!(parse_seal_line(&flipped).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn a_seal_that_contradicts_itself_is_refused() {
        let good = Seal {
            first_seq: 5,
            last_seq: 9,
            records: 5,
            len: 300,
            content_crc: 1,
            index: vec![(5, 45)],
        };
        let bad = [
            Seal {
                records: 4,
                ..good.clone()
            },
            Seal {
                first_seq: 0,
                ..good.clone()
            },
            Seal {
                index: vec![(5, 45), (5, 60)],
                ..good.clone()
            },
            Seal {
                index: vec![(10, 45)],
                ..good.clone()
            },
            Seal {
                index: vec![(5, 300)],
                ..good.clone()
            },
            Seal {
                last_seq: u64::MAX,
                ..good.clone()
            },
        ];
        for seal in bad {
            let line = seal.line();
            assert!(
                parse_seal_line(&line[..line.len() - 1]).is_err(),
                "{seal:?}"
            );
        }
    }

    /// `object` framed as a seal line, its crc right.
    fn framed(object: &str) -> Vec<u8> {
        let crc = crc32c::crc32c(object.as_bytes());
        format!("{{\"seal\":{object},\"crc\":\"{crc:08x}\"}}").into_bytes()
    }

    #[test]
    fn the_head_is_read_without_the_index_as_written_and_otherwise_whole() {
        let seal = Seal {
            first_seq: 5,
            last_seq: 9,
            records: 5,
            len: 300,
            content_crc: 0x00ab_cdef,
            index: vec![(5, 45), (8, 200)],
        };
        let line = seal.line();
        let body = &line[..line.len() - 1];
        assert_eq!(parse_seal_head(body), Ok(seal.head()));
        // Another order of the fields: parsed whole.
        let reordered = framed(
            r#"{"index":[[5,45]],"len":300,"records":5,"last_seq":9,"first_seq":5,"content_crc":"00abcdef"}"#,
        );
        assert_eq!(parse_seal_head(&reordered), Ok(seal.head()));
        // The index is not read for the head: a bad one is found by the
        // whole parse (a reader's), not by open's.
        let bad_index = framed(
            r#"{"first_seq":5,"last_seq":9,"records":5,"len":300,"content_crc":"00abcdef","index":[[9,45],[5,40]]}"#,
        );
        assert_eq!(parse_seal_head(&bad_index), Ok(seal.head()));
        assert!(parse_seal_line(&bad_index).is_err());
        // What the head says is checked, leading zeros are not its form.
        for bad in [
            r#"{"first_seq":5,"last_seq":9,"records":4,"len":300,"content_crc":"00abcdef","index":[]}"#,
            r#"{"first_seq":0,"last_seq":9,"records":10,"len":300,"content_crc":"00abcdef","index":[]}"#,
            r#"{"first_seq":05,"last_seq":9,"records":5,"len":300,"content_crc":"00abcdef","index":[]}"#,
            r#"{"first_seq":5,"last_seq":9,"records":5,"len":300,"content_crc":"00ABCDEF","index":[]}"#,
        ] {
            assert!(parse_seal_head(&framed(bad)).is_err(), "{bad}");
        }
        let mut flipped = body.to_vec();
        flipped[20] ^= 1;
        assert!(parse_seal_head(&flipped).is_err());
    }

    #[test]
    fn torn_seals_are_told_from_torn_records() {
        assert!(is_torn_seal(b"{\"seal\":{\"first"));
        assert!(is_torn_seal(b"{\"se\0\0\0"));
        assert!(!is_torn_seal(b"{\"seq\":1"));
        assert!(!is_torn_seal(b"\0\0"));
    }

    #[test]
    fn offsets_for_seqs() {
        let index = [(1, 45), (100, 70000), (250, 140000)];
        assert_eq!(Seal::offset_for(&index, 0), None);
        assert_eq!(Seal::offset_for(&index, 1), Some((1, 45)));
        assert_eq!(Seal::offset_for(&index, 99), Some((1, 45)));
        assert_eq!(Seal::offset_for(&index, 100), Some((100, 70000)));
        assert_eq!(Seal::offset_for(&index, 1000), Some((250, 140000)));
    }
}
