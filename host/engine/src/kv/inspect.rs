//! Reading a bucket's contents without its lock, for operators (`mini kv`,
//! `mini verify`) while a process holds the bucket.

use std::path::Path;

use super::KvError;
use super::fold::{BucketState, KvRecord};
use crate::snapshot::SkippedSnapshot;
use crate::state::{JOURNAL_DIR, RecoveryPoint, StateError, StateLog, recovery_point_unlocked};
use crate::{Entry, JournalError};

/// How often the read starts again when a checkpoint of the running
/// bucket compacted the journal while it was read.
const ATTEMPTS: usize = 3;

/// What [`inspect`] read.
#[derive(Debug)]
pub struct BucketInspection {
    /// The bucket's contents.
    pub state: BucketState,
    /// The damaged snapshots passed over.
    pub skipped: Vec<SkippedSnapshot>,
    /// Records after the newest valid snapshot: what a reopen replays.
    pub records_since_checkpoint: u64,
}

/// The contents of the bucket in `dir` (newest valid snapshot plus the
/// records after it), read without taking its lock. A write in flight at
/// the moment is not included.
///
/// ```
/// use mini_engine::kv::{inspect, Bucket, BucketOptions};
/// let dir = tempfile::tempdir()?;
/// let bucket = Bucket::open(dir.path(), &BucketOptions::default())?;
/// bucket.set("greeting", b"hello")?;
/// let found = inspect(dir.path())?; // while `bucket` holds the lock
/// assert_eq!(found.state.entries["greeting"].value.bytes(), Some(b"hello".to_vec()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn inspect(dir: &Path) -> Result<BucketInspection, KvError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match read(dir) {
            Err(KvError::Storage(
                StateError::Journal(JournalError::OutOfRange { .. })
                | StateError::JournalCompacted { .. },
            )) if attempt < ATTEMPTS => {}
            other => return other,
        }
    }
}

fn read(dir: &Path) -> Result<BucketInspection, KvError> {
    if !dir.join(JOURNAL_DIR).is_dir() {
        let point = recovery_point_unlocked(dir).map_err(StateError::from)?;
        let (state, records) = recover(dir, &point, std::iter::empty())?;
        return Ok(BucketInspection {
            state,
            skipped: point.skipped,
            records_since_checkpoint: records,
        });
    }
    let (point, mut tail) = StateLog::read_unlocked(dir)?;
    let (state, records) = recover(
        dir,
        &point,
        std::iter::from_fn(|| tail.next_entry().transpose()),
    )?;
    Ok(BucketInspection {
        state,
        skipped: point.skipped,
        records_since_checkpoint: records,
    })
}

/// The contents `point`'s snapshot and the records after it fold into,
/// and how many records that was. Damage a crc did not catch (a record or
/// snapshot that is not a bucket's, base64 that does not decode) is
/// [`KvError::BadRecord`].
pub(super) fn recover(
    dir: &Path,
    point: &RecoveryPoint,
    records: impl Iterator<Item = Result<Entry, StateError>>,
) -> Result<(BucketState, u64), KvError> {
    let bad = |seq: u64, reason: String| KvError::BadRecord {
        dir: dir.to_path_buf(),
        seq,
        reason,
    };
    let mut state = match &point.snapshot {
        Some(snapshot) => serde_json::from_str::<BucketState>(&snapshot.state)
            .map_err(|e| bad(0, e.to_string()))?,
        None => BucketState::default(),
    };
    let mut replayed = 0;
    for entry in records {
        let entry = entry?;
        let record: KvRecord =
            serde_json::from_str(&entry.data).map_err(|e| bad(entry.seq, e.to_string()))?;
        state.apply(entry.seq, record);
        replayed += 1;
    }
    if let Some((key, _)) = state
        .entries
        .iter()
        .find(|(_, e)| e.value.bytes().is_none())
    {
        return Err(bad(0, format!("the value of {key:?} is not valid base64")));
    }
    Ok((state, replayed))
}
