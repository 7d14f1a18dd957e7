//! Checking records before they are written: exactly one JSON value, within
//! the size limit, stored on one line.

use std::borrow::Cow;

use serde_json::value::RawValue;

use crate::JournalError;

/// The default record size limit: 1 MiB.
pub const DEFAULT_MAX_RECORD_SIZE: usize = 1024 * 1024;

/// Checks that `record` is exactly one JSON value of at most `limit` bytes and
/// returns the text to store: the value without surrounding whitespace, and
/// with whitespace outside strings removed if it spans several lines (a
/// journal line must not contain a raw newline). Everything else is kept
/// byte for byte.
///
/// ```
/// use mini_engine::record::check_record;
/// assert_eq!(check_record(" {\"a\": 1}\n", 1024)?, "{\"a\": 1}");
/// assert_eq!(check_record("{\n  \"a\": \"x y\"\n}", 1024)?, "{\"a\":\"x y\"}");
/// assert!(check_record("{\"a\":1} {\"b\":2}", 1024).is_err());
/// # Ok::<(), mini_engine::JournalError>(())
/// ```
pub fn check_record(record: &str, limit: usize) -> Result<Cow<'_, str>, JournalError> {
    if record.len() > limit {
        return Err(JournalError::RecordTooLarge {
            size: record.len(),
            limit,
        });
    }
    let raw: &RawValue =
        serde_json::from_str(record).map_err(|e| JournalError::InvalidRecord(e.to_string()))?;
    let value = raw.get();
    if memchr::memchr2(b'\n', b'\r', value.as_bytes()).is_some() {
        Ok(Cow::Owned(strip_whitespace_outside_strings(value)))
    } else {
        Ok(Cow::Borrowed(value))
    }
}

fn strip_whitespace_outside_strings(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_one_value() {
        for bad in [
            "",
            " ",
            "{\"a\":",
            "{\"a\":1} {\"b\":2}",
            "1 2",
            "nope",
            "\"unterminated",
        ] {
            assert!(
                matches!(check_record(bad, 1024), Err(JournalError::InvalidRecord(_))),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn refuses_oversize_before_parsing() {
        let big = format!("\"{}\"", "x".repeat(2000));
        assert!(matches!(
            check_record(&big, 1024),
            Err(JournalError::RecordTooLarge {
                size: 2002,
                limit: 1024
            })
        ));
    }

    #[test]
    fn keeps_strings_with_escaped_quotes_and_spaces() {
        let rec = "{\n\"a b\": \"q\\\" x\",\n\"n\": [1, 2]\n}";
        assert_eq!(
            check_record(rec, 1024).unwrap(),
            "{\"a b\":\"q\\\" x\",\"n\":[1,2]}"
        );
    }
}
