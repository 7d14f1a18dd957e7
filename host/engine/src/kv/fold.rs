//! A bucket's contents as the fold of its records, and how values are
//! stored so that `cat` and `jq` still show them (FORMAT.md, "Key-value
//! buckets"): a value that is UTF-8 text is stored as a JSON string
//! (`"text"`), any other bytes in base64 (`"base64"`).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

/// A value as a record or snapshot stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoredValue {
    /// UTF-8 text, as itself.
    Text(String),
    /// Other bytes, in standard base64 with padding.
    Base64(String),
}

impl StoredValue {
    /// `bytes` as stored: text if they are UTF-8, else base64.
    pub fn of(bytes: &[u8]) -> StoredValue {
        match std::str::from_utf8(bytes) {
            Ok(text) => StoredValue::Text(text.to_owned()),
            Err(_) => StoredValue::Base64(STANDARD.encode(bytes)),
        }
    }

    /// The length of the bytes at most (base64's decoded length, padding
    /// not subtracted), without decoding them.
    pub fn stored_len(&self) -> u64 {
        match self {
            StoredValue::Text(text) => text.len() as u64,
            StoredValue::Base64(encoded) => (encoded.len() as u64).div_ceil(4) * 3,
        }
    }

    /// The bytes; `None` for base64 that does not decode.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        match self {
            StoredValue::Text(text) => Some(text.as_bytes().to_vec()),
            StoredValue::Base64(encoded) => STANDARD.decode(encoded).ok(),
        }
    }
}

/// One record of a bucket's journal: `{"set":{"key":"k","text":"v"}}` or
/// `{"delete":{"key":"k"}}`. A batch of them is all or nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KvRecord {
    /// Sets `key` to the value.
    Set {
        /// The key.
        key: String,
        /// The value.
        #[serde(flatten)]
        value: StoredValue,
    },
    /// Removes `key` (if it is there).
    Delete {
        /// The key.
        key: String,
    },
}

impl KvRecord {
    /// The key the record changes.
    pub fn key(&self) -> &str {
        match self {
            KvRecord::Set { key, .. } | KvRecord::Delete { key } => key,
        }
    }
}

/// A key's value and its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEntry {
    /// The value.
    #[serde(flatten)]
    pub value: StoredValue,
    /// The version: the seq of the record that last set the key. Seqs only
    /// grow, so a key set, changed and set back has a new version each time
    /// (no ABA for compare-and-swap), and replay finds the same versions.
    pub version: u64,
}

/// A bucket's contents: what its snapshot holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketState {
    /// The keys and their values.
    pub entries: BTreeMap<String, StoredEntry>,
}

impl BucketState {
    /// Applies `record`, the record at `seq`.
    pub fn apply(&mut self, seq: u64, record: KvRecord) {
        match record {
            KvRecord::Set { key, value } => {
                self.entries.insert(
                    key,
                    StoredEntry {
                        value,
                        version: seq,
                    },
                );
            }
            KvRecord::Delete { key } => {
                self.entries.remove(&key);
            }
        }
    }

    /// An upper bound of the bytes the snapshot takes.
    pub fn snapshot_bound(&self) -> u64 {
        self.entries
            .iter()
            .map(|(key, entry)| entry_bound(key, &entry.value))
            .fold(SNAPSHOT_FRAME, u64::saturating_add)
    }
}

/// The bytes of a snapshot around its entries.
const SNAPSHOT_FRAME: u64 = 16;

/// An upper bound of the bytes one entry takes in a snapshot:
/// `"KEY":{"text":"VALUE","version":N},`.
pub fn entry_bound(key: &str, value: &StoredValue) -> u64 {
    let value = match value {
        StoredValue::Text(text) => json_string_bound(text),
        StoredValue::Base64(encoded) => encoded.len() as u64 + 2,
    };
    json_string_bound(key)
        .saturating_add(value)
        .saturating_add(40)
}

/// An upper bound of `text`'s length as a JSON string: a control
/// character takes at most 6 bytes (`\u0000`), a quote or backslash 2.
fn json_string_bound(text: &str) -> u64 {
    let escaped: u64 = text
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' => 1,
            0..0x20 => 5,
            _ => 0,
        })
        .sum();
    (text.len() as u64 + 2).saturating_add(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_stays_text_and_other_bytes_round_trip_in_base64() {
        let set = KvRecord::Set {
            key: "greeting".into(),
            value: StoredValue::of(b"hello"),
        };
        assert_eq!(
            serde_json::to_string(&set).expect("json"),
            r#"{"set":{"key":"greeting","text":"hello"}}"#
        );
        let binary = StoredValue::of(&[0xff, 0x00, 0x80]);
        assert_eq!(binary, StoredValue::Base64("/wCA".into()));
        assert_eq!(binary.bytes(), Some(vec![0xff, 0x00, 0x80]));
        let back: KvRecord = serde_json::from_str(r#"{"delete":{"key":"k"}}"#).expect("parses");
        assert_eq!(back, KvRecord::Delete { key: "k".into() });
        assert_eq!(StoredValue::Base64("!!".into()).bytes(), None);
    }

    #[test]
    fn a_key_set_back_to_its_old_value_has_a_new_version() {
        let mut state = BucketState::default();
        let set = |v: &str| KvRecord::Set {
            key: "k".into(),
            value: StoredValue::of(v.as_bytes()),
        };
        state.apply(1, set("a"));
        let first = state.entries["k"].version;
        state.apply(2, set("b"));
        state.apply(3, set("a"));
        assert_eq!(state.entries["k"].value, StoredValue::of(b"a"));
        assert_ne!(state.entries["k"].version, first);
        state.apply(4, KvRecord::Delete { key: "k".into() });
        assert!(state.entries.is_empty());
    }

    #[test]
    fn the_snapshot_bound_holds_for_keys_and_values_that_need_escapes() {
        let mut state = BucketState::default();
        let nasty = "\"\\\u{0}\u{1f}\n é 😀";
        for (i, bytes) in [nasty.as_bytes(), &[0xff, 0, 1][..], b""]
            .iter()
            .enumerate()
        {
            state.apply(
                u64::MAX - i as u64,
                KvRecord::Set {
                    key: format!("{nasty}{i}"),
                    value: StoredValue::of(bytes),
                },
            );
        }
        let json = serde_json::to_string(&state).expect("json");
        assert!((json.len() as u64) <= state.snapshot_bound(), "{json}");
    }
}
