//! Reading the seal at the end of a segment file: with one read of its last
//! bytes, whole (for a reader, which seeks through its index) or only its
//! head (for open, which needs no index).

use super::{
    INDEX_EVERY, MAX_SEAL_LINE, Seal, SealHead, is_seal_line, parse_seal_head, parse_seal_line,
};
use crate::fs::FileRef;

/// What the end of a segment file is.
#[derive(Debug)]
pub enum TailSeal<S = Seal> {
    /// A seal line, read and checked ([`Seal`], or only its [`SealHead`]);
    /// it starts at `at`.
    Sealed {
        /// The seal.
        seal: S,
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
    read_tail(file, len, parse_seal_line, |seal| seal.len)
}

/// Reads what the seal at the end of `file` (of length `len`) says but its
/// index ([`parse_seal_head`]), if it ends in one.
pub fn read_tail_seal_head(file: &FileRef, len: u64) -> std::io::Result<TailSeal<SealHead>> {
    read_tail(file, len, parse_seal_head, |head| head.len)
}

/// About how long the seal of a segment of `len` bytes is: its fields, and
/// an index entry per [`INDEX_EVERY`] bytes of a few dozen bytes each.
fn likely_seal_len(len: u64) -> u64 {
    1024 + (len / INDEX_EVERY + 1) * 32
}

fn read_tail<S>(
    file: &FileRef,
    len: u64,
    parse: fn(&[u8]) -> Result<S, String>,
    records_end: fn(&S) -> u64,
) -> std::io::Result<TailSeal<S>> {
    let mut want = len.min(likely_seal_len(len));
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
        return Ok(match parse(line) {
            Ok(seal) if records_end(&seal) != at => TailSeal::Bad {
                at,
                why: format!(
                    "it says the records end at {}, they end at {at}",
                    records_end(&seal)
                ),
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
