//! How a namespace's unit is named on JetStream.
//!
//! A guest's names may hold characters a stream name or a subject cannot
//! (`.`, `*`, `>`, spaces, any Unicode) and be up to 255 bytes, and a
//! namespace joined to a name must never be mistaken for another pair. So
//! a stream's name is a readable prefix (the pair with every other
//! character made `_`, cut short) followed by a hash of the exact pair, and
//! its subject is the hash alone. The exact pair is also kept in the
//! stream's metadata, where an open checks it: a stream that holds another
//! pair (a hash collision, a stream made by hand) is refused, never shared.

use sha2::{Digest, Sha256};

/// The metadata key holding the unit's kind.
pub(crate) const META_KIND: &str = "mini.kind";
/// The metadata key holding the unit's namespace.
pub(crate) const META_NAMESPACE: &str = "mini.namespace";
/// The metadata key holding the unit's name.
pub(crate) const META_NAME: &str = "mini.name";

/// The longest readable part of a stream name.
const READABLE_LEN: usize = 48;

/// Where a unit lives on JetStream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamName {
    /// The stream's name.
    pub stream: String,
    /// The one subject the stream holds.
    pub subject: String,
}

/// The stream of the unit `name` of `kind` (`"journal"`) in `namespace`,
/// under `prefix` (`"mini"`: streams `mini-journal-…`, subjects
/// `mini.journal.<hash>`).
///
/// ```
/// let a = mini_jetstream::stream_name("mini", "journal", "shop", "orders.eu");
/// assert!(a.stream.starts_with("mini-journal-shop_orders_eu-"));
/// assert!(a.subject.starts_with("mini.journal."));
/// // A namespace and name never make another pair's stream.
/// let b = mini_jetstream::stream_name("mini", "journal", "shop_orders", "eu");
/// assert_ne!(a.stream, b.stream);
/// ```
pub fn stream_name(prefix: &str, kind: &str, namespace: &str, name: &str) -> StreamName {
    let mut hasher = Sha256::new();
    for part in [prefix, kind, namespace, name] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let hash: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    let readable: String = format!("{namespace}_{name}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(READABLE_LEN)
        .collect();
    StreamName {
        stream: format!("{prefix}-{kind}-{readable}-{hash}"),
        subject: format!("{prefix}.{kind}.{hash}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_and_bounded_whatever_the_guest_chose() {
        let long = "é.*> x".repeat(60);
        let n = stream_name("mini", "journal", &long, &long);
        assert!(n.stream.len() <= 4 + 1 + 7 + 1 + READABLE_LEN * 2 + 1 + 24);
        assert!(
            n.stream
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        );
        assert!(
            n.subject
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.')
        );
    }

    #[test]
    fn every_part_counts() {
        let base = stream_name("mini", "journal", "a", "b");
        assert_ne!(base, stream_name("mini", "journal", "a", "c"));
        assert_ne!(base, stream_name("mini", "journal", "c", "b"));
        assert_ne!(base, stream_name("mini", "state", "a", "b"));
        assert_ne!(base, stream_name("other", "journal", "a", "b"));
        assert_ne!(
            stream_name("mini", "journal", "ab", "c"),
            stream_name("mini", "journal", "a", "bc")
        );
    }
}
