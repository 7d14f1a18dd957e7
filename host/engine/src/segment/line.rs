//! A record line, read by its fixed layout.
//!
//! The writer writes every record line the same way
//! (`{"seq":S,"crc":"xxxxxxxx",["more":true,]"data":D}`), and its data was
//! checked to be one JSON value when it was appended. So a reader does not
//! parse the line as JSON: it matches the fixed parts byte for byte, reads
//! the seq's digits and the crc's hex digits, and checks the crc over `D`,
//! which it hands out as it is. Anything that does not match the layout
//! exactly is not a record line (FORMAT.md: unknown fields, other orders,
//! whitespace, a `"more":false` are all damage).

use crate::error::CorruptionKind;

use super::{MAX_SEQ, parse_crc};

const SEQ_KEY: &[u8] = b"{\"seq\":";
const CRC_KEY: &[u8] = b",\"crc\":\"";
const MORE: &[u8] = b",\"more\":true";
const DATA_KEY: &[u8] = b",\"data\":";

/// Appends the line (with its newline) of record `data` at `seq` to `out`.
/// `more` marks every line of a batch but the last.
pub fn encode_line(out: &mut Vec<u8>, seq: u64, data: &str, more: bool) {
    let crc = crc32c::crc32c(data.as_bytes());
    out.extend_from_slice(SEQ_KEY);
    out.extend_from_slice(itoa(seq, &mut [0; 20]));
    out.extend_from_slice(CRC_KEY);
    out.extend_from_slice(&hex8(crc));
    out.push(b'"');
    if more {
        out.extend_from_slice(MORE);
    }
    out.extend_from_slice(DATA_KEY);
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(b"}\n");
}

/// The decimal digits of `n`, written into the end of `buf`.
fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// `crc` as 8 lower-case hex digits.
fn hex8(crc: u32) -> [u8; 8] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0; 8];
    for (i, digit) in out.iter_mut().enumerate() {
        *digit = DIGITS[((crc >> (28 - 4 * i)) & 0xf) as usize];
    }
    out
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

fn garbage(why: impl Into<String>) -> LineError {
    LineError::Garbage(why.into())
}

/// Parses one record line (without its newline) and checks its CRC.
pub fn parse_line(line: &[u8]) -> Result<RecordLine<'_>, LineError> {
    let rest = line
        .strip_prefix(SEQ_KEY)
        .ok_or_else(|| garbage("does not start with {\"seq\":"))?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let seq = parse_seq(&rest[..digits])?;
    let rest = rest[digits..]
        .strip_prefix(CRC_KEY)
        .ok_or_else(|| garbage("no \"crc\" after the seq"))?;
    let (crc, rest) = rest
        .split_at_checked(8)
        .ok_or_else(|| garbage("line ends in the crc"))?;
    let stored = std::str::from_utf8(crc)
        .ok()
        .and_then(parse_crc)
        .ok_or_else(|| {
            garbage(format!(
                "crc {:?} is not 8 lower-case hex digits",
                lossy(crc)
            ))
        })?;
    let rest = rest
        .strip_prefix(b"\"")
        .ok_or_else(|| garbage("crc is not 8 characters long"))?;
    let (more, rest) = match rest.strip_prefix(MORE) {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let data = rest
        .strip_prefix(DATA_KEY)
        .and_then(|rest| rest.strip_suffix(b"}"))
        .filter(|data| !data.is_empty())
        .ok_or_else(|| garbage("not ,\"data\":… } after the crc"))?;
    let computed = crc32c::crc32c(data);
    if stored != computed {
        return Err(LineError::ChecksumMismatch {
            seq,
            stored,
            computed,
        });
    }
    // The crc matched, so these are the bytes the writer wrote: a record it
    // checked (valid UTF-8, one JSON value). Checked again all the same,
    // since a hand-made file can carry a matching crc over anything.
    let data = std::str::from_utf8(data).map_err(|e| garbage(format!("data: {e}")))?;
    Ok(RecordLine { seq, more, data })
}

/// A seq as JSON writes a number: digits without a leading zero.
fn parse_seq(digits: &[u8]) -> Result<u64, LineError> {
    if digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') {
        return Err(garbage(format!("seq {:?} is not a number", lossy(digits))));
    }
    digits
        .iter()
        .try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .ok_or_else(|| garbage(format!("seq {} does not fit 64 bits", lossy(digits))))
}

fn lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(&bytes[..bytes.len().min(64)])
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

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seq: u64, data: &str, more: bool) -> Vec<u8> {
        let mut out = Vec::new();
        encode_line(&mut out, seq, data, more);
        out.pop();
        out
    }

    #[test]
    fn lines_round_trip_and_crc_catches_flips() {
        let encoded = line(7, r#"{"Inc":{"by":5}}"#, true);
        let parsed = parse_line(&encoded).unwrap();
        assert_eq!(
            parsed,
            RecordLine {
                seq: 7,
                more: true,
                data: r#"{"Inc":{"by":5}}"#
            }
        );
        let flipped = String::from_utf8(encoded).unwrap().replace("5}", "6}");
        assert!(matches!(
            parse_line(flipped.as_bytes()),
            Err(LineError::ChecksumMismatch { seq: 7, .. })
        ));
    }

    #[test]
    fn the_encoding_is_what_serde_would_write() {
        for (seq, more) in [(1, false), (u64::MAX, true), (1_000_000, false)] {
            let data = r#"{"a":[1,2,"x"]}"#;
            let crc = format!("{:08x}", crc32c::crc32c(data.as_bytes()));
            let more_field = if more { ",\"more\":true" } else { "" };
            let expected = format!(r#"{{"seq":{seq},"crc":"{crc}"{more_field},"data":{data}}}"#);
            assert_eq!(String::from_utf8(line(seq, data, more)).unwrap(), expected);
            let value: serde_json::Value = serde_json::from_str(&expected).unwrap();
            assert_eq!(value["seq"], seq);
        }
    }

    #[test]
    fn every_other_form_is_garbage() {
        let good = String::from_utf8(line(12, "[1]", false)).unwrap();
        let crc = &good[good.find("crc").unwrap() + 6..][..8];
        let variants = [
            format!(r#"{{"seq": 12,"crc":"{crc}","data":[1]}}"#),
            format!(r#"{{"seq":012,"crc":"{crc}","data":[1]}}"#),
            format!(r#"{{"crc":"{crc}","seq":12,"data":[1]}}"#),
            format!(r#"{{"seq":12,"crc":"{crc}","more":false,"data":[1]}}"#),
            format!(r#"{{"seq":12,"crc":"{crc}","data":[1],"x":1}}"#),
            format!(r#"{{"seq":12,"crc":"{}","data":[1]}}"#, crc.to_uppercase()),
            format!(r#"{{"seq":12,"crc":"{crc}","data":}}"#),
            format!(r#"{{"seq":99999999999999999999,"crc":"{crc}","data":[1]}}"#),
            format!(r#"{{"seq":12,"crc":"{crc}","data":[1]"#),
            r#"{"seq":12,"crc":"1234567","data":[1]}"#.to_string(),
        ];
        // A field after `data` is read as part of the data: its crc fails.
        for variant in &variants {
            assert!(parse_line(variant.as_bytes()).is_err(), "{variant}");
        }
        assert!(parse_line(good.as_bytes()).is_ok());
    }

    #[test]
    fn data_that_is_not_utf8_is_garbage_even_with_a_matching_crc() {
        let data = [b'"', 0xff, b'"'];
        let crc = format!("{:08x}", crc32c::crc32c(&data));
        let mut bytes = format!(r#"{{"seq":1,"crc":"{crc}","data":"#).into_bytes();
        bytes.extend_from_slice(&data);
        bytes.push(b'}');
        assert!(matches!(parse_line(&bytes), Err(LineError::Garbage(_))));
    }
}
