//! The error of host functions ([`HostError`]) and the mapping of engine
//! errors to the WIT `error` variant.
//!
//! Messages that go to the guest name files relative to the namespace
//! directory, so a guest learns nothing about the host's file system layout.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

use mini_engine::kv::KvError;
use mini_engine::queue::QueueError;
use mini_engine::snapshot::SkippedSnapshot;
use mini_engine::{JournalError, SnapshotError, StateError};

use crate::bindings::types::{self, Error};
use crate::ctx::MiniCtxView;

/// What a host function of `mini:storage` fails with: the WIT `error` the
/// guest gets back (from a `?` on a `Result<_, Error>`), or a failure of the
/// host itself, which traps the instance (from a `?` on a
/// `wasmtime::Result`). The bindings' `trappable_error_type`, as
/// wasmtime-wasi's `TrappableError`.
///
/// ```
/// use mini_host::HostError;
/// use mini_host::bindings::types::Error;
///
/// let refused: HostError = Error::Quota("disk quota".into()).into();
/// assert!(matches!(refused.guest_error(), Some(Error::Quota(_))));
/// let trap = HostError::trap(wasmtime::Error::msg("host bug"));
/// assert!(trap.guest_error().is_none());
/// ```
#[derive(Debug)]
pub struct HostError(Repr);

#[derive(Debug)]
enum Repr {
    Guest(Error),
    Trap(wasmtime::Error),
}

impl HostError {
    /// An error that traps the instance instead of reaching the guest.
    pub fn trap(err: impl Into<wasmtime::Error>) -> HostError {
        HostError(Repr::Trap(err.into()))
    }

    /// The WIT error the guest gets, unless this one traps.
    pub fn guest_error(&self) -> Option<&Error> {
        match &self.0 {
            Repr::Guest(e) => Some(e),
            Repr::Trap(_) => None,
        }
    }

    /// The WIT error for the guest, or the trap.
    pub fn into_wit(self) -> wasmtime::Result<Error> {
        match self.0 {
            Repr::Guest(e) => Ok(e),
            Repr::Trap(e) => Err(e),
        }
    }
}

impl From<Error> for HostError {
    fn from(err: Error) -> HostError {
        HostError(Repr::Guest(err))
    }
}

impl From<wasmtime::Error> for HostError {
    fn from(err: wasmtime::Error) -> HostError {
        HostError::trap(err)
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Guest(e) => write!(f, "{e}"),
            Repr::Trap(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for HostError {}

impl types::Host for MiniCtxView<'_> {
    /// Every error a guest gets passes here: logged with the instance it
    /// went to (inside the span of the call when the bindings' tracing is on).
    fn convert_error(&mut self, err: HostError) -> wasmtime::Result<Error> {
        let err = err.into_wit()?;
        log_refusal(self.ctx.namespace(), self.ctx.module(), &err);
        Ok(err)
    }
}

/// Logs a call that failed: at warn what an operator must know (a limit of
/// the instance reached, a capability refused, damage, an I/O error), at
/// debug what is the guest's own business (a bad name or record, a stale
/// token, a lock).
fn log_refusal(namespace: &str, module: Option<&mini_manifest::ModuleId>, err: &Error) {
    let module = module.map(ToString::to_string);
    let module = module.as_deref().unwrap_or("-");
    let (kind, reason) = describe(err);
    match err {
        Error::Quota(_) | Error::RecordTooLarge(_) | Error::AccessDenied(_) => {
            tracing::warn!(namespace, module, kind, reason = %reason, "guest call refused by a limit of the instance");
        }
        Error::Corrupt(_) | Error::Io(_) | Error::Other(_) => {
            tracing::warn!(namespace, module, kind, reason = %reason, "guest call failed");
        }
        _ => {
            tracing::debug!(namespace, module, kind, reason = %reason, "guest call returned an error")
        }
    }
}

/// The WIT case of `err` and what it carries, as text.
fn describe(err: &Error) -> (&'static str, Cow<'_, str>) {
    let (kind, text) = match err {
        Error::RecordTooLarge(limit) => {
            return (
                "record-too-large",
                format!("the limit is {limit} bytes").into(),
            );
        }
        Error::InvalidRecord(s) => ("invalid-record", s),
        Error::InvalidName(s) => ("invalid-name", s),
        Error::Corrupt(s) => ("corrupt", s),
        Error::Io(s) => ("io", s),
        Error::Quota(s) => ("quota", s),
        Error::AccessDenied(s) => ("access-denied", s),
        Error::Locked(s) => ("locked", s),
        Error::OutOfRange(s) => ("out-of-range", s),
        Error::InvalidArgument(s) => ("invalid-argument", s),
        Error::NotFound(s) => ("not-found", s),
        Error::StaleToken(s) => ("stale-token", s),
        Error::Other(s) => ("other", s),
    };
    (kind, Cow::Borrowed(text.as_str()))
}

/// The longest piece of guest input quoted back in an error message.
const MAX_QUOTE: usize = 64;

/// The WIT error for an engine error, with host paths made relative to
/// `namespace_dir`.
pub(crate) fn journal_error(err: JournalError, namespace_dir: &Path) -> Error {
    let hide = |text: String| hide_root(&text, namespace_dir);
    match err {
        JournalError::InvalidRecord(reason) => Error::InvalidRecord(reason),
        JournalError::RecordTooLarge { limit, .. } => {
            Error::RecordTooLarge(u64::try_from(limit).unwrap_or(u64::MAX))
        }
        e @ JournalError::Locked { .. } => Error::Locked(hide(e.to_string())),
        e @ JournalError::Corrupt(_) => Error::Corrupt(hide(e.to_string())),
        // A full disk is a bound like the quota: nothing was written.
        JournalError::Io { ref source, .. } if is_disk_full(source) => {
            Error::Quota(hide(format!("the disk is full: {err}")))
        }
        e @ (JournalError::Poisoned | JournalError::Io { .. }) => Error::Io(hide(e.to_string())),
        e @ JournalError::OutOfRange { .. } => Error::OutOfRange(e.to_string()),
        e @ JournalError::SequenceExhausted { .. } => Error::Quota(e.to_string()),
    }
}

/// True for the error of a write that found the disk full (`ENOSPC`,
/// `EDQUOT`).
fn is_disk_full(source: &std::io::Error) -> bool {
    matches!(
        source.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// The WIT error for a snapshot store's error, with host paths hidden.
pub(crate) fn snapshot_error(err: SnapshotError, namespace_dir: &Path) -> Error {
    let hide = |text: String| hide_root(&text, namespace_dir);
    match err {
        SnapshotError::InvalidState(reason) => Error::InvalidRecord(reason),
        SnapshotError::StateTooLarge { limit, .. } => {
            Error::RecordTooLarge(u64::try_from(limit).unwrap_or(u64::MAX))
        }
        e @ SnapshotError::Locked { .. } => Error::Locked(hide(e.to_string())),
        SnapshotError::Io { ref source, .. } if is_disk_full(source) => {
            Error::Quota(hide(format!("the disk is full: {err}")))
        }
        e @ SnapshotError::AllDamaged { .. } => Error::Corrupt(hide(e.to_string())),
        e @ SnapshotError::Io { .. } => Error::Io(hide(e.to_string())),
    }
}

/// The WIT error for a state's error, with host paths hidden.
pub(crate) fn state_error(err: StateError, namespace_dir: &Path) -> Error {
    let hide = |text: String| hide_root(&text, namespace_dir);
    match err {
        StateError::Journal(e) => journal_error(e, namespace_dir),
        StateError::Snapshot(e) => snapshot_error(e, namespace_dir),
        e @ (StateError::SnapshotBeyondJournal { .. }
        | StateError::JournalCompacted { .. }
        | StateError::BadMutation { .. }
        | StateError::BadSnapshotState { .. }) => Error::Corrupt(hide(e.to_string())),
        e @ StateError::CheckpointOutOfRange { .. } => Error::OutOfRange(e.to_string()),
        e @ (StateError::Serialize(_) | StateError::AutoCheckpoint { .. }) => {
            Error::Other(hide(e.to_string()))
        }
    }
}

/// The WIT error for a queue's error, with host paths hidden.
pub(crate) fn queue_error(err: QueueError, namespace_dir: &Path) -> Error {
    match err {
        QueueError::InvalidPayload(reason) => Error::InvalidRecord(reason),
        QueueError::PayloadTooLarge { limit, .. } => {
            Error::RecordTooLarge(u64::try_from(limit).unwrap_or(u64::MAX))
        }
        e @ (QueueError::UnknownMessage { .. } | QueueError::NotDead { .. }) => {
            Error::NotFound(e.to_string())
        }
        e @ (QueueError::StaleToken { .. } | QueueError::NotLeased { .. }) => {
            Error::StaleToken(e.to_string())
        }
        e @ QueueError::InvalidArgument(_) => Error::InvalidArgument(e.to_string()),
        e @ (QueueError::Full { .. } | QueueError::IdsExhausted { .. }) => {
            Error::Quota(e.to_string())
        }
        QueueError::Storage(e) => state_error(e, namespace_dir),
        e @ QueueError::BadRecord { .. } => {
            Error::Corrupt(hide_root(&e.to_string(), namespace_dir))
        }
    }
}

/// The WIT error for a bucket's error, with host paths hidden.
pub(crate) fn kv_error(err: KvError, namespace_dir: &Path) -> Error {
    match err {
        KvError::Storage(e) => state_error(e, namespace_dir),
        e @ KvError::BadRecord { .. } => Error::Corrupt(hide_root(&e.to_string(), namespace_dir)),
        e @ KvError::NotAnInteger { .. } => Error::InvalidArgument(e.to_string()),
        e @ KvError::Overflow { .. } => Error::OutOfRange(e.to_string()),
        e @ (KvError::Full { .. } | KvError::ReadTooLarge { .. }) => Error::Quota(e.to_string()),
    }
}

/// The text of `err` as one line: its WIT case, then what it carries
/// (`quota: the disk is full`), for interfaces whose errors have no case
/// of their own for it (`wasi:keyvalue`'s `other`).
pub(crate) fn error_text(err: &Error) -> String {
    let (kind, text) = describe(err);
    format!("{kind}: {text}")
}

/// One warning line for a damaged snapshot that recovery passed over.
pub(crate) fn skipped_warning(skipped: &SkippedSnapshot, namespace_dir: &Path) -> String {
    hide_root(&format!("damaged, skipped: {skipped}"), namespace_dir)
}

/// `text` with every occurrence of the namespace directory's path replaced
/// by `<namespace>`, and then of the data root's (the directory holding the
/// namespaces: an error about the root's own marker, or about a queue
/// another namespace granted) by `<data-root>`.
fn hide_root(text: &str, namespace_dir: &Path) -> String {
    let mut text = text.to_owned();
    let namespace_dirs = [
        std::path::absolute(namespace_dir).ok(),
        Some(namespace_dir.to_path_buf()),
    ];
    let data_roots: Vec<_> = namespace_dirs
        .iter()
        .flatten()
        .filter_map(|dir| dir.parent())
        // A data root of `/` or `` would replace every slash.
        .filter(|root| root.components().count() > 1)
        .map(Path::to_path_buf)
        .collect();
    let replacements = namespace_dirs
        .into_iter()
        .flatten()
        .map(|dir| (dir, "<namespace>"))
        .chain(data_roots.into_iter().map(|root| (root, "<data-root>")));
    for (path, placeholder) in replacements {
        let path = path.to_string_lossy();
        if !path.is_empty() {
            text = text.replace(path.as_ref(), placeholder);
        }
    }
    text
}

/// `input` for an error message: debug-quoted and cut to a readable length.
pub(crate) fn quote(input: &str) -> String {
    match input.char_indices().nth(MAX_QUOTE) {
        Some((cut, _)) => format!("{:?}… ({} bytes)", &input[..cut], input.len()),
        None => format!("{input:?}"),
    }
}

/// The error for a handle that is not (or no longer) in the table.
pub(crate) fn bad_handle(kind: &str, err: wasmtime::component::ResourceTableError) -> Error {
    Error::Other(format!("invalid {kind} handle: {err}"))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use mini_engine::{Corruption, CorruptionKind};

    use super::*;

    #[test]
    fn corrupt_names_file_offset_and_seq_without_host_root() {
        let ns = PathBuf::from("/srv/data/billing");
        let err = JournalError::Corrupt(Corruption {
            file: ns.join("journal/j/00000000000000000001.jsonl"),
            offset: 120,
            seq: 7,
            kind: CorruptionKind::Garbage("x".into()),
        });
        let Error::Corrupt(msg) = journal_error(err, &ns) else {
            panic!("not corrupt")
        };
        assert!(
            msg.contains("<namespace>/journal/j/00000000000000000001.jsonl"),
            "{msg}"
        );
        assert!(msg.contains("byte 120") && msg.contains("seq 7"), "{msg}");
        assert!(!msg.contains("/srv/data"), "{msg}");
    }

    #[test]
    fn an_error_about_the_data_root_hides_it_too() {
        let ns = PathBuf::from("/srv/data/billing");
        let err = JournalError::Io {
            path: PathBuf::from("/srv/data/.mini"),
            source: std::io::Error::other("injected"),
        };
        let Error::Io(msg) = journal_error(err, &ns) else {
            panic!("not io")
        };
        assert!(msg.contains("<data-root>/.mini"), "{msg}");
        assert!(!msg.contains("/srv"), "{msg}");
        // A data root of `/` is left alone (hiding it would hide every slash).
        let at_top = Path::new("/billing");
        let text = hide_root("/billing/journal/j and /etc/x", at_top);
        assert_eq!(text, "<namespace>/journal/j and /etc/x");
    }

    #[test]
    fn a_full_disk_is_quota_and_other_io_errors_are_io() {
        let ns = Path::new("/d/ns");
        let io = |kind| JournalError::Io {
            path: ns.join("journal/j/00000000000000000001.jsonl"),
            source: std::io::Error::new(kind, "no space left on device"),
        };
        let full = journal_error(io(std::io::ErrorKind::StorageFull), ns);
        assert!(
            matches!(&full, Error::Quota(m) if m.contains("disk is full") && !m.contains("/d/ns")),
            "{full:?}"
        );
        assert!(matches!(
            journal_error(io(std::io::ErrorKind::Other), ns),
            Error::Io(_)
        ));
        let snapshot = SnapshotError::Io {
            path: ns.join("snapshot/s/x"),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        };
        assert!(matches!(snapshot_error(snapshot, ns), Error::Quota(_)));
    }

    #[test]
    fn every_variant_maps() {
        let ns = Path::new("/d/ns");
        let io = || std::io::Error::other("disk on fire");
        assert!(matches!(
            journal_error(JournalError::InvalidRecord("x".into()), ns),
            Error::InvalidRecord(_)
        ));
        assert!(matches!(
            journal_error(JournalError::RecordTooLarge { size: 9, limit: 8 }, ns),
            Error::RecordTooLarge(8)
        ));
        assert!(matches!(
            journal_error(JournalError::Locked { path: ns.join("journal/j/LOCK") }, ns),
            Error::Locked(m) if !m.contains("/d/ns")
        ));
        assert!(matches!(
            journal_error(JournalError::Poisoned, ns),
            Error::Io(_)
        ));
        assert!(matches!(
            journal_error(JournalError::Io { path: ns.into(), source: io() }, ns),
            Error::Io(m) if m.contains("disk on fire")
        ));
        assert!(matches!(
            journal_error(
                JournalError::OutOfRange {
                    requested: 1,
                    first: 5,
                    next: 9
                },
                ns
            ),
            Error::OutOfRange(_)
        ));
    }

    #[test]
    fn quote_cuts_long_input() {
        assert_eq!(quote("ab"), "\"ab\"");
        let q = quote(&"é".repeat(300));
        assert!(q.ends_with("(600 bytes)") && q.chars().count() < 100, "{q}");
    }
}
