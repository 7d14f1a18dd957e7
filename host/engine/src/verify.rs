//! The operator's checks: `verify` reads a whole journal and reports the
//! first damage; `repair` cuts the journal there, only when asked, and keeps
//! what it cut in a backup directory beside the segments.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Corruption, JournalError};
use crate::fs::{FileSystem, StdFs};
use crate::journal::scan::{self, Scan};
use crate::lock::DirLock;
use crate::segment;
use crate::{Journal, JournalOptions};

/// What `verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Segment files checked.
    pub segments: usize,
    /// Complete records, every crc and sequence number checked.
    pub records: u64,
    /// The first sequence number stored.
    pub first_seq: u64,
    /// The last complete record's sequence number (0 if none).
    pub last_seq: u64,
    /// Bytes of valid segments.
    pub bytes: u64,
    /// Bytes of a torn tail that the next open will cut (not damage).
    pub torn_tail_bytes: u64,
    /// The first damage before the tail, if any.
    pub damage: Option<Corruption>,
}

/// Checks every line of the journal in `dir` without changing anything and
/// without taking its lock. `progress` gets (bytes checked, total bytes).
///
/// ```
/// use mini_engine::{Journal, verify::verify};
/// let dir = tempfile::tempdir()?;
/// Journal::open(dir.path())?.append("{\"a\":1}")?;
/// let report = verify(dir.path(), &mut |_, _| {})?;
/// assert_eq!((report.records, report.damage), (1, None));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn verify(
    dir: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<VerifyReport, JournalError> {
    match scan::scan_dir(&StdFs, dir, progress) {
        Ok(scan) => Ok(report_of(&scan)),
        Err(JournalError::Corrupt(damage)) => Ok(VerifyReport {
            damage: Some(damage),
            ..VerifyReport::default()
        }),
        Err(e) => Err(e),
    }
}

fn report_of(scan: &Scan) -> VerifyReport {
    VerifyReport {
        segments: scan.segments.len(),
        records: scan.records,
        first_seq: scan.segments.first().map_or(scan.next_seq, |s| s.first_seq),
        last_seq: scan.next_seq.saturating_sub(1),
        bytes: scan.bytes,
        torn_tail_bytes: scan.tail.as_ref().map_or(0, |t| t.dropped_bytes()),
        damage: None,
    }
}

/// What `repair` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// The damage the journal was cut at (None: nothing to repair).
    pub cut_at: Option<Corruption>,
    /// Bytes removed from the journal (damaged line onwards, later segments).
    pub bytes_removed: u64,
    /// The directory holding what was removed.
    pub saved_to: Option<PathBuf>,
    /// Records left in the journal.
    pub records_left: u64,
}

/// Cuts the journal in `dir` at its first damage: the damaged segment is
/// truncated at the damaged line and every later segment is moved out. What
/// is removed is kept in `<dir>/repair-<unix time>/`, so an operator can
/// still look at it. Takes the journal's lock. Torn tails are cut as on open.
pub fn repair(dir: &Path) -> Result<RepairReport, JournalError> {
    let fs = StdFs;
    let mut report = RepairReport::default();
    {
        let _lock = DirLock::acquire(&fs, dir)?;
        if let Err(JournalError::Corrupt(damage)) = scan::scan_dir(&fs, dir, &mut |_, _| {}) {
            let backup = backup_dir(dir);
            fs.create_dir_all(&backup)
                .map_err(JournalError::io(&backup))?;
            report.bytes_removed = cut_at(&fs, dir, &backup, &damage)?;
            fs.sync_dir(dir).map_err(JournalError::io(dir))?;
            report.saved_to = Some(backup);
            report.cut_at = Some(damage);
        }
    }
    // Opening runs recovery: it cuts a batch left open by the cut and syncs.
    let journal = Journal::open_with(dir, JournalOptions::default())?;
    report.bytes_removed += journal.recovery().dropped_bytes;
    report.records_left = journal.recovery().records;
    Ok(report)
}

fn backup_dir(dir: &Path) -> PathBuf {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut n = 0;
    loop {
        let candidate = dir.join(format!("repair-{secs}-{n}"));
        if !candidate.exists() {
            return candidate;
        }
        n += 1;
    }
}

/// Moves the damaged part and everything after it into `backup`; returns
/// the bytes removed.
fn cut_at(
    fs: &dyn FileSystem,
    dir: &Path,
    backup: &Path,
    damage: &Corruption,
) -> Result<u64, JournalError> {
    let damaged_first = damage
        .file
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(segment::parse_segment_file_name)
        .unwrap_or(0);
    let mut removed = 0;
    for seq in scan::list_segments(fs, dir)? {
        let path = segment::segment_path(dir, seq);
        let len = fs
            .open_read(&path)
            .and_then(|f| f.len())
            .map_err(JournalError::io(&path))?;
        let whole = seq > damaged_first || (seq == damaged_first && damage.offset == 0);
        if whole {
            let to = backup.join(segment::segment_file_name(seq));
            fs.rename(&path, &to).map_err(JournalError::io(&path))?;
            removed += len;
        } else if seq == damaged_first {
            let file = fs.open_write(&path).map_err(JournalError::io(&path))?;
            let mut cut = vec![0; (len - damage.offset) as usize];
            let mut done = 0;
            while done < cut.len() {
                let n = file
                    .read_at(&mut cut[done..], damage.offset + done as u64)
                    .map_err(JournalError::io(&path))?;
                if n == 0 {
                    break;
                }
                done += n;
            }
            let saved = backup.join(format!(
                "{}.cut-at-{}",
                segment::segment_file_name(seq),
                damage.offset
            ));
            let out = fs.create_new(&saved).map_err(JournalError::io(&saved))?;
            out.write_all_at(&cut[..done], 0)
                .map_err(JournalError::io(&saved))?;
            out.sync_data().map_err(JournalError::io(&saved))?;
            fs.sync_dir(backup).map_err(JournalError::io(backup))?;
            file.set_len(damage.offset)
                .map_err(JournalError::io(&path))?;
            file.sync_data().map_err(JournalError::io(&path))?;
            removed += len - damage.offset;
        }
    }
    Ok(removed)
}
