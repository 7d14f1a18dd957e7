//! The operator's checks: `verify` reads a whole journal and reports the
//! first damage; `repair` cuts the journal there, only when asked, and keeps
//! what it cut in a backup directory beside the segments.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Corruption, CorruptionKind, JournalError};
use crate::fs::{FileSystem, StdFs};
use crate::journal::scan::{self, Depth, Scan};
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
    match scan::scan_dir(&StdFs, dir, Depth::Records, progress) {
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
/// truncated at the damaged line and every later segment is moved out. A bad
/// seal is only cut itself (the records it closed are checked, and open
/// seals the segment again), and the search goes on. What is removed is kept
/// in `<dir>/repair-<unix time>/`, so an operator can still look at it.
/// Takes the journal's lock. Torn tails are cut as on open.
pub fn repair(dir: &Path) -> Result<RepairReport, JournalError> {
    let fs = StdFs;
    let mut report = RepairReport::default();
    {
        let _lock = DirLock::acquire(&fs, dir)?;
        let mut backup = None;
        // Each bad seal cut leaves one fewer: at most one pass per segment.
        for _ in 0..=scan::list_segments(&fs, dir)?.len() {
            let Err(JournalError::Corrupt(damage)) =
                scan::scan_dir(&fs, dir, Depth::Records, &mut |_, _| {})
            else {
                break;
            };
            let backup = match &backup {
                Some(backup) => backup,
                None => {
                    let created = backup_dir(dir);
                    fs.create_dir_all(&created)
                        .map_err(JournalError::io(&created))?;
                    backup.insert(created)
                }
            };
            let seal_only = matches!(damage.kind, CorruptionKind::BadSeal(_));
            report.bytes_removed += cut_at(&fs, dir, backup, &damage, seal_only)?;
            fs.sync_dir(dir).map_err(JournalError::io(dir))?;
            report.saved_to = Some(backup.clone());
            report.cut_at.get_or_insert(damage);
            if !seal_only {
                break;
            }
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

/// What cutting at `damage` takes from one segment file.
struct Cut {
    seq: u64,
    path: PathBuf,
    len: u64,
    /// From this byte on (0: the whole file is moved out).
    from: u64,
}

/// The segments that cutting the journal in `dir` at `damage` touches: the
/// damaged one from the damaged line on, and every later one whole (unless
/// `seal_only`: a bad seal is cut alone).
fn cuts(
    fs: &dyn FileSystem,
    dir: &Path,
    damage: &Corruption,
    seal_only: bool,
) -> Result<Vec<Cut>, JournalError> {
    let damaged_first = damage
        .file
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(segment::parse_segment_file_name)
        .unwrap_or(0);
    let mut out = Vec::new();
    for seq in scan::list_segments(fs, dir)? {
        if seq < damaged_first || (seal_only && seq > damaged_first) {
            continue;
        }
        let path = segment::segment_path(dir, seq);
        let len = fs
            .open_read(&path)
            .and_then(|f| f.len())
            .map_err(JournalError::io(&path))?;
        let from = if seq == damaged_first {
            damage.offset.min(len)
        } else {
            0
        };
        out.push(Cut {
            seq,
            path,
            len,
            from,
        });
    }
    Ok(out)
}

/// What [`repair`] would do, found without changing anything or taking the
/// journal's lock (a dry run).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairPlan {
    /// The first damage, where the journal would be cut (None: nothing to
    /// cut).
    pub damage: Option<Corruption>,
    /// Bytes the cut would remove: the rest of the damaged segment and
    /// every later segment.
    pub bytes_to_remove: u64,
    /// What [`verify`] found.
    pub report: VerifyReport,
}

/// What [`repair`] would cut from the journal in `dir`, without changing it
/// and without taking its lock. `progress` is as for [`verify`].
///
/// ```
/// use mini_engine::{Journal, verify::plan_repair};
/// let dir = tempfile::tempdir()?;
/// Journal::open(dir.path())?.append("1")?;
/// let plan = plan_repair(dir.path(), &mut |_, _| {})?;
/// assert_eq!((plan.damage, plan.bytes_to_remove, plan.report.records), (None, 0, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn plan_repair(
    dir: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RepairPlan, JournalError> {
    let report = verify(dir, progress)?;
    let Some(damage) = report.damage.clone() else {
        return Ok(RepairPlan {
            report,
            ..RepairPlan::default()
        });
    };
    let seal_only = matches!(damage.kind, CorruptionKind::BadSeal(_));
    let bytes_to_remove = cuts(&StdFs, dir, &damage, seal_only)?
        .iter()
        .map(|c| c.len - c.from)
        .sum();
    Ok(RepairPlan {
        damage: Some(damage),
        bytes_to_remove,
        report,
    })
}

/// Moves the damaged part and everything after it into `backup`; returns
/// the bytes removed.
fn cut_at(
    fs: &dyn FileSystem,
    dir: &Path,
    backup: &Path,
    damage: &Corruption,
    seal_only: bool,
) -> Result<u64, JournalError> {
    crate::journal::mark::forget(fs, dir).map_err(JournalError::io(dir))?;
    let mut removed = 0;
    for Cut {
        seq,
        path,
        len,
        from,
    } in cuts(fs, dir, damage, seal_only)?
    {
        if from == 0 {
            let to = backup.join(segment::segment_file_name(seq));
            fs.rename(&path, &to).map_err(JournalError::io(&path))?;
            removed += len;
            continue;
        }
        let file = fs.open_write(&path).map_err(JournalError::io(&path))?;
        let mut cut = vec![0; (len - from) as usize];
        let mut done = 0;
        while done < cut.len() {
            let n = file
                .read_at(&mut cut[done..], from + done as u64)
                .map_err(JournalError::io(&path))?;
            if n == 0 {
                break;
            }
            done += n;
        }
        let saved = backup.join(format!("{}.cut-at-{from}", segment::segment_file_name(seq)));
        let out = fs.create_new(&saved).map_err(JournalError::io(&saved))?;
        out.write_all_at(&cut[..done], 0)
            .map_err(JournalError::io(&saved))?;
        out.sync_data().map_err(JournalError::io(&saved))?;
        fs.sync_dir(backup).map_err(JournalError::io(backup))?;
        file.set_len(from).map_err(JournalError::io(&path))?;
        file.sync_data().map_err(JournalError::io(&path))?;
        removed += len - from;
    }
    Ok(removed)
}
