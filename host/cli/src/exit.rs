//! How `mini` exits, so that a script can tell what happened:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | ok (a dry run included: it says what it would do) |
//! | 1 | damage found, or a check failed (`verify`, a damaged record or snapshot met, an id that is no dead letter, a key not in a bucket) |
//! | 2 | a usage error: the command line is wrong (clap's own errors exit 2 too) |
//! | 3 | could not run: an I/O error, a lock held by another process, a missing path |
//!
//! An error says its code by what it is: the engine's error types are
//! classified here, once; the CLI's own refusals are a [`Refusal`] with
//! their code. Anything else could not run.

use std::fmt;

use mini_engine::kv::KvError;
use mini_engine::name::NameError;
use mini_engine::queue::QueueError;
use mini_engine::{JournalError, SnapshotError, StateError};

/// Exit code: damage found, or a check failed.
pub const DAMAGE: u8 = 1;
/// Exit code: the command line is wrong.
pub const USAGE: u8 = 2;
/// Exit code: could not run (I/O, a lock, nothing there).
pub const COULD_NOT_RUN: u8 = 3;

/// A refusal of the CLI's own that says its exit code: [`USAGE`] (the
/// command line asks for something that cannot be) or [`DAMAGE`] (what was
/// read is damaged).
#[derive(Debug)]
pub struct Refusal {
    /// The exit code.
    pub code: u8,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refusal {}

/// A usage error (exit 2) saying `message`.
pub fn usage_error(message: String) -> anyhow::Error {
    anyhow::Error::new(Refusal {
        code: USAGE,
        message,
    })
}

/// Damage (exit 1) that `message` describes.
pub fn damage(message: String) -> anyhow::Error {
    anyhow::Error::new(Refusal {
        code: DAMAGE,
        message,
    })
}

/// A check that failed (exit 1): what was asked for is not there, though
/// where it was looked for is (a key not in a bucket).
pub fn not_found(message: String) -> anyhow::Error {
    anyhow::Error::new(Refusal {
        code: DAMAGE,
        message,
    })
}

/// Returns early with a usage error (exit 2).
macro_rules! usage {
    ($($arg:tt)*) => {
        return Err($crate::exit::usage_error(format!($($arg)*)))
    };
}
pub(crate) use usage;

/// The exit code of an error: the first cause in its chain that says one.
pub fn code_of(error: &anyhow::Error) -> u8 {
    error
        .chain()
        .find_map(|cause| {
            if let Some(refusal) = cause.downcast_ref::<Refusal>() {
                Some(refusal.code)
            } else if cause.is::<NameError>() {
                Some(USAGE)
            } else if let Some(e) = cause.downcast_ref::<JournalError>() {
                Some(journal(e))
            } else if let Some(e) = cause.downcast_ref::<SnapshotError>() {
                Some(snapshot(e))
            } else if let Some(e) = cause.downcast_ref::<StateError>() {
                Some(state(e))
            } else if let Some(e) = cause.downcast_ref::<QueueError>() {
                Some(queue(e))
            } else {
                cause.downcast_ref::<KvError>().map(kv)
            }
        })
        .unwrap_or(COULD_NOT_RUN)
}

fn journal(e: &JournalError) -> u8 {
    match e {
        JournalError::Corrupt(_) => DAMAGE,
        _ => COULD_NOT_RUN,
    }
}

fn snapshot(e: &SnapshotError) -> u8 {
    match e {
        SnapshotError::AllDamaged { .. } => DAMAGE,
        _ => COULD_NOT_RUN,
    }
}

// The engine's wrappers are `#[error(transparent)]`: their `source` skips
// the error inside, so it is looked at here.
fn state(e: &StateError) -> u8 {
    match e {
        StateError::Journal(e) => journal(e),
        StateError::Snapshot(e) => snapshot(e),
        StateError::BadMutation { .. }
        | StateError::BadSnapshotState { .. }
        | StateError::SnapshotBeyondJournal { .. }
        | StateError::JournalCompacted { .. } => DAMAGE,
        StateError::AutoCheckpoint { source, .. } => state(source),
        _ => COULD_NOT_RUN,
    }
}

fn queue(e: &QueueError) -> u8 {
    match e {
        QueueError::Storage(e) => state(e),
        QueueError::BadRecord { .. }
        | QueueError::NotDead { .. }
        | QueueError::UnknownMessage { .. } => DAMAGE,
        QueueError::InvalidArgument(_) => USAGE,
        _ => COULD_NOT_RUN,
    }
}

fn kv(e: &KvError) -> u8 {
    match e {
        KvError::Storage(e) => state(e),
        KvError::BadRecord { .. } => DAMAGE,
        _ => COULD_NOT_RUN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn causes_say_the_code() {
        let usage: anyhow::Result<()> = (|| usage!("give a path"))();
        let usage = usage.expect_err("usage");
        assert_eq!(code_of(&usage), USAGE);
        assert_eq!(code_of(&usage.context("more")), USAGE);
        let locked = anyhow::Error::new(StateError::Journal(JournalError::Locked {
            path: "LOCK".into(),
        }));
        assert_eq!(code_of(&locked.context("cannot open")), COULD_NOT_RUN);
        let compacted: anyhow::Result<()> = Err(StateError::JournalCompacted {
            snapshot_seq: 0,
            journal_first_seq: 3,
            skipped: Vec::new(),
        })
        .context("cannot recover");
        assert_eq!(code_of(&compacted.expect_err("compacted")), DAMAGE);
        assert_eq!(code_of(&anyhow::anyhow!("plain")), COULD_NOT_RUN);
        let not_dead = anyhow::Error::new(QueueError::NotDead { id: 4 });
        assert_eq!(code_of(&not_dead), DAMAGE);
        let bad = anyhow::Error::new(KvError::BadRecord {
            dir: "b".into(),
            seq: 1,
            reason: "not a set".into(),
        });
        assert_eq!(code_of(&bad.context("cannot read the bucket")), DAMAGE);
        let corrupt = anyhow::Error::new(KvError::Storage(StateError::JournalCompacted {
            snapshot_seq: 0,
            journal_first_seq: 3,
            skipped: Vec::new(),
        }));
        assert_eq!(code_of(&corrupt), DAMAGE);
        assert_eq!(code_of(&not_found("no key".into())), DAMAGE);
    }
}
