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
use crate::fs::FileRef;

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

    /// Checks what a seal says about itself: seqs in range and consistent,
    /// the index ascending and inside the segment.
    pub(super) fn check(&self) -> Result<(), String> {
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
    serde_json::from_slice(object).map_err(|e| e.to_string())
}

/// What the end of a segment file is.
#[derive(Debug)]
pub enum TailSeal {
    /// A seal line, read and checked; it starts at `at`.
    Sealed {
        /// The seal.
        seal: Seal,
        /// Where its line starts.
        at: u64,
    },
    /// A seal line that fails its checks, at `at`.
    Bad {
        /// Where its line starts.
        at: u64,
        /// What is wrong with it.
        why: String,
    },
    /// The last line is not a seal line (or the file does not end in a
    /// complete line): the segment must be scanned.
    None,
}

/// Reads the seal at the end of `file` (of length `len`), if it ends in one.
pub fn read_tail_seal(file: &FileRef, len: u64) -> std::io::Result<TailSeal> {
    // A seal of a 16 MiB segment holds about 256 index entries (~5 KB).
    let mut want = len.min(16 * 1024);
    loop {
        let start = len - want;
        let mut tail = vec![0; want as usize];
        read_exact_at(file, &mut tail, start)?;
        let Some((&b'\n', body)) = tail.split_last() else {
            return Ok(TailSeal::None);
        };
        let line_start = match memchr::memrchr(b'\n', body) {
            Some(i) => i + 1,
            None if start > 0 && want < (MAX_SEAL_LINE + 1).min(len) => {
                want = (want * 4).min(MAX_SEAL_LINE + 1).min(len);
                continue;
            }
            None if start > 0 => return Ok(TailSeal::None),
            None => 0,
        };
        let line = &body[line_start..];
        if !is_seal_line(line) {
            return Ok(TailSeal::None);
        }
        let at = start + line_start as u64;
        return Ok(match parse_seal_line(line) {
            Ok(seal) if seal.len != at => TailSeal::Bad {
                at,
                why: format!("it says the records end at {}, they end at {at}", seal.len),
            },
            Ok(seal) => TailSeal::Sealed { seal, at },
            Err(why) => TailSeal::Bad { at, why },
        });
    }
}

pub(crate) fn read_exact_at(file: &FileRef, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let n = file.read_at(&mut buf[done..], offset + done as u64)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        done += n;
    }
    Ok(())
}

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
    /// covers (see [`Mark`](super::mark::Mark)).
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
