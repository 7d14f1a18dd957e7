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

/// A key's value and its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEntry {
    /// The value.
    #[serde(flatten)]
    pub value: StoredValue,
    /// The version: the bucket's change count when the key was last set.
    pub version: u64,
}

/// A bucket's contents: what its snapshot holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketState {
    /// Records applied since the bucket was made (every set and delete):
    /// the source of versions, so that a key set, changed and set back has
    /// a new version each time (no ABA for compare-and-swap).
    pub changes: u64,
    /// The keys and their values.
    pub entries: BTreeMap<String, StoredEntry>,
}

impl BucketState {
    /// Applies `record`.
    pub fn apply(&mut self, record: KvRecord) {
        self.changes += 1;
        match record {
            KvRecord::Set { key, value } => {
                self.entries.insert(
                    key,
                    StoredEntry {
                        value,
                        version: self.changes,
                    },
                );
            }
            KvRecord::Delete { key } => {
                self.entries.remove(&key);
            }
        }
    }
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
        state.apply(set("a"));
        let first = state.entries["k"].version;
        state.apply(set("b"));
        state.apply(set("a"));
        assert_eq!(state.entries["k"].value, StoredValue::of(b"a"));
        assert_ne!(state.entries["k"].version, first);
        state.apply(KvRecord::Delete { key: "k".into() });
        assert!(state.entries.is_empty());
        assert_eq!(state.changes, 4);
    }
}
