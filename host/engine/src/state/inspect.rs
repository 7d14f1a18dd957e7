//! Reading a state (or a queue: a state of queue records) without its
//! lock, for operators' tools (`mini state`, `mini cat --after-snapshot`,
//! `mini verify`) while a process may be writing it. The rule of recovery
//! is [`reachable`](super::reachable), the same one an open applies.

use std::path::{Path, PathBuf};

use crate::journal::{Entry, Reader, list_segments};
use crate::snapshot::{SnapshotCheck, check_unlocked};
use crate::verify::{VerifyReport, verify};
use crate::{JournalError, read_unlocked};

use super::log::recovery_point_unlocked;
use super::{JOURNAL_DIR, RecoveryPoint, SNAPSHOT_DIR, StateError, StateLog, reachable};

/// What [`StateLog::check`] found.
#[derive(Debug)]
pub struct StateCheck {
    /// Every snapshot file, checked.
    pub snapshots: SnapshotCheck,
    /// The whole journal, checked.
    pub journal: VerifyReport,
    /// How the state recovers, or why it does not (a damaged journal
    /// included, as [`StateError::Journal`]).
    pub recovery: Result<RecoveryPlan, StateError>,
}

/// How a state recovers: from which snapshot, replaying which records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryPlan {
    /// The snapshot recovery starts from (None: the initial state).
    pub snapshot_seq: Option<u64>,
    /// Damaged snapshots newer than it, passed over.
    pub skipped: usize,
    /// The journal's last seq: the records after the snapshot up to it are
    /// replayed.
    pub last_seq: u64,
}

impl RecoveryPlan {
    /// How many journal records recovery replays.
    pub fn replayed(&self) -> u64 {
        self.last_seq - self.snapshot_seq.unwrap_or(0)
    }
}

impl StateLog {
    /// Checks the state in `dir` without taking its lock and without
    /// changing anything: every snapshot file, every journal record (crc and
    /// seq; `progress` gets bytes checked and the total), and whether
    /// recovery (the newest valid snapshot plus the journal after it) works.
    ///
    /// ```
    /// use mini_engine::state::{StateLog, StateOptions};
    /// let dir = tempfile::tempdir()?;
    /// let (log, _) = StateLog::open_with(dir.path(), &StateOptions::default())?;
    /// log.commit_batch(&["1", "2", "3"])?;
    /// log.checkpoint(2, "3")?;
    /// let check = StateLog::check(dir.path(), &mut |_, _| {})?; // while `log` holds the lock
    /// let plan = check.recovery?;
    /// assert_eq!((plan.snapshot_seq, plan.replayed()), (Some(2), 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check(dir: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<StateCheck, StateError> {
        // Snapshots before the journal: a checkpoint made meanwhile only
        // makes the journal read later longer at its end.
        let snapshots = check_unlocked(&dir.join(SNAPSHOT_DIR))?;
        let journal = verify(&dir.join(JOURNAL_DIR), progress)?;
        let recovery = match &journal.damage {
            Some(damage) => Err(StateError::Journal(JournalError::Corrupt(damage.clone()))),
            None => {
                let seq = snapshots.newest();
                let skipped = snapshots.skipped();
                reachable(
                    seq.unwrap_or(0),
                    &skipped,
                    journal.first_seq,
                    journal.last_seq,
                )
                .map(|()| RecoveryPlan {
                    snapshot_seq: seq,
                    skipped: skipped.len(),
                    last_seq: journal.last_seq,
                })
            }
        };
        Ok(StateCheck {
            snapshots,
            journal,
            recovery,
        })
    }

    /// Reads the state in `dir` as recovery would, without taking its lock:
    /// its recovery point (the newest valid snapshot, the damaged ones
    /// passed over) and the journal records after it, streamed. Fails with
    /// [`StateError::JournalCompacted`] if the journal no longer reaches
    /// back to the snapshot; the tail fails with
    /// [`StateError::SnapshotBeyondJournal`] at the journal's end if the
    /// snapshot lies beyond it.
    ///
    /// ```
    /// use mini_engine::state::{StateLog, StateOptions};
    /// let dir = tempfile::tempdir()?;
    /// let (log, _) = StateLog::open_with(dir.path(), &StateOptions::default())?;
    /// log.commit_batch(&["1", "2", "3"])?;
    /// log.checkpoint(2, "3")?;
    /// let (point, mut tail) = StateLog::read_unlocked(dir.path())?;
    /// assert_eq!(point.seq(), 2);
    /// assert_eq!(tail.next_entry()?.map(|e| e.seq), Some(3));
    /// assert!(tail.next_entry()?.is_none()); // for now
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_unlocked(dir: &Path) -> Result<(RecoveryPoint, StateTail), StateError> {
        let point = recovery_point_unlocked(dir)?;
        let journal = dir.join(JOURNAL_DIR);
        let firsts = list_segments(&journal)?;
        let first = firsts.first().copied().unwrap_or(1);
        let after = point.seq();
        // Only the start is known before reading; the end is checked when
        // the tail reaches it.
        reachable(after, &point.skipped, first, u64::MAX)?;
        // From the start of the segment holding `after + 1`, so that the
        // records up to `after` are seen too: they tell where the journal
        // ends.
        let from = firsts
            .iter()
            .copied()
            .take_while(|&f| f <= after.saturating_add(1))
            .last()
            .unwrap_or(first);
        let reader = read_unlocked(&journal, from)?;
        let tail = StateTail {
            reader,
            journal,
            after,
            // A segment starting at N means the journal reached N - 1 (a
            // segment named 0 is damage, and means nothing reached).
            known_last: firsts.last().map_or(0, |n| n.saturating_sub(1)),
            reached: false,
            skipped: point.skipped.clone(),
        };
        Ok((point, tail))
    }
}

/// The journal records after a state's recovery point, read without the
/// lock (see [`StateLog::read_unlocked`]).
#[derive(Debug)]
pub struct StateTail {
    reader: Reader,
    journal: PathBuf,
    after: u64,
    /// The highest seq the journal is known to have reached.
    known_last: u64,
    /// True once the journal is known to reach the snapshot's seq.
    reached: bool,
    skipped: Vec<crate::snapshot::SkippedSnapshot>,
}

impl StateTail {
    /// The next record after the snapshot; `None` at the journal's end for
    /// now (records appended later come on later calls). Reaching the end
    /// the first time checks that the snapshot is not beyond it. A
    /// [`JournalError::OutOfRange`] means a running writer compacted the
    /// journal while it was read: read again.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, StateError> {
        loop {
            match self.reader.next() {
                Some(Ok(entry)) => {
                    self.known_last = self.known_last.max(entry.seq);
                    if entry.seq <= self.after {
                        continue;
                    }
                    self.reached = true;
                    return Ok(Some(entry));
                }
                Some(Err(e)) => return Err(e.into()),
                None => {
                    if !self.reached {
                        reachable(self.after, &self.skipped, 0, self.known_last)?;
                        self.reached = true;
                    }
                    return Ok(None);
                }
            }
        }
    }

    /// The journal directory read.
    pub fn journal(&self) -> &Path {
        &self.journal
    }
}
