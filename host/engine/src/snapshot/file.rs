//! The snapshot file: its name, its one line, and what can be wrong with it.

use std::fmt;
use std::path::PathBuf;

use crate::segment::parse_crc;
use serde::Deserialize;
use serde_json::value::RawValue;

/// What is wrong with a snapshot file that restore skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotDamage {
    /// The file could not be read.
    Unreadable(String),
    /// The file does not end with a newline: it was cut short.
    Incomplete,
    /// The file is larger than the state limit allows.
    TooLarge {
        /// The file's size in bytes.
        size: u64,
    },
    /// The file is not one snapshot line.
    Malformed(String),
    /// The state's bytes do not match the stored CRC-32C.
    ChecksumMismatch {
        /// The CRC stored in the file.
        stored: u32,
        /// The CRC of the state's bytes as read.
        computed: u32,
    },
    /// The `seq` inside the file differs from the one in its name.
    SeqMismatch {
        /// The sequence number in the file name.
        name: u64,
        /// The sequence number in the file.
        content: u64,
    },
}

impl fmt::Display for SnapshotDamage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotDamage::Unreadable(why) => write!(f, "unreadable: {why}"),
            SnapshotDamage::Incomplete => write!(f, "incomplete (no final newline)"),
            SnapshotDamage::TooLarge { size } => write!(f, "too large ({size} bytes)"),
            SnapshotDamage::Malformed(why) => write!(f, "not a snapshot: {why}"),
            SnapshotDamage::ChecksumMismatch { stored, computed } => write!(
                f,
                "checksum mismatch (stored {stored:08x}, computed {computed:08x})"
            ),
            SnapshotDamage::SeqMismatch { name, content } => {
                write!(f, "file name says seq {name}, content says {content}")
            }
        }
    }
}

/// A snapshot file that restore passed over, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedSnapshot {
    /// The sequence number in its file name.
    pub seq: u64,
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub damage: SnapshotDamage,
}

impl fmt::Display for SkippedSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "snapshot {} ({}): {}",
            self.seq,
            self.path.display(),
            self.damage
        )
    }
}

/// The file name of the snapshot at `seq`: `snapshot-<20 digits>.json`.
///
/// ```
/// assert_eq!(mini_engine::snapshot::snapshot_file_name(42), "snapshot-00000000000000000042.json");
/// ```
pub fn snapshot_file_name(seq: u64) -> String {
    format!("snapshot-{seq:020}.json")
}

/// The sequence number named by a snapshot file name, if it is one.
///
/// ```
/// use mini_engine::snapshot::parse_snapshot_file_name;
/// assert_eq!(parse_snapshot_file_name("snapshot-00000000000000000042.json"), Some(42));
/// assert_eq!(parse_snapshot_file_name(".tmp-snapshot-00000000000000000042.json"), None);
/// ```
pub fn parse_snapshot_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("snapshot-")?.strip_suffix(".json")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The file content (one line with its newline) of a snapshot of `state`
/// (already checked: one JSON value on one line) at `seq`.
///
/// ```
/// let line = mini_engine::snapshot::encode_snapshot(3, "[1]");
/// assert!(line.starts_with(r#"{"mini":"snapshot","version":1,"seq":3,"crc":""#));
/// assert!(line.ends_with("\"state\":[1]}\n"));
/// ```
pub fn encode_snapshot(seq: u64, state: &str) -> String {
    let crc = crc32c::crc32c(state.as_bytes());
    format!(
        "{{\"mini\":\"snapshot\",\"version\":1,\"seq\":{seq},\"crc\":\"{crc:08x}\",\"state\":{state}}}\n"
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Frame<'a> {
    #[serde(borrow)]
    mini: &'a str,
    version: u32,
    seq: u64,
    #[serde(borrow)]
    crc: &'a str,
    #[serde(borrow)]
    state: &'a RawValue,
}

/// Checks the content of a snapshot file; returns its seq and state.
///
/// ```
/// use mini_engine::snapshot::{decode_snapshot, encode_snapshot, SnapshotDamage};
/// let line = encode_snapshot(3, "[1]");
/// assert_eq!(decode_snapshot(line.as_bytes()), Ok((3, "[1]".to_string())));
/// let cut = &line.as_bytes()[..line.len() - 1];
/// assert_eq!(decode_snapshot(cut), Err(SnapshotDamage::Incomplete));
/// ```
pub fn decode_snapshot(bytes: &[u8]) -> Result<(u64, String), SnapshotDamage> {
    let Some(body) = bytes.strip_suffix(b"\n") else {
        return Err(SnapshotDamage::Incomplete);
    };
    if body.contains(&b'\n') {
        return Err(SnapshotDamage::Malformed("more than one line".into()));
    }
    let frame: Frame<'_> =
        serde_json::from_slice(body).map_err(|e| SnapshotDamage::Malformed(e.to_string()))?;
    if frame.mini != "snapshot" {
        return Err(SnapshotDamage::Malformed(format!(
            "\"mini\" is {:?}, not \"snapshot\"",
            frame.mini
        )));
    }
    if frame.version != 1 {
        return Err(SnapshotDamage::Malformed(format!(
            "unsupported version {}",
            frame.version
        )));
    }
    let stored = parse_crc(frame.crc)
        .ok_or_else(|| SnapshotDamage::Malformed(format!("bad crc {:?}", frame.crc)))?;
    let state = frame.state.get();
    let computed = crc32c::crc32c(state.as_bytes());
    if stored != computed {
        return Err(SnapshotDamage::ChecksumMismatch { stored, computed });
    }
    Ok((frame.seq, state.to_owned()))
}
