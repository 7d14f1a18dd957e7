//! The checks of one unit (or one part of a unit) that `mini verify` runs.
//! Each asks the engine ([`verify`](mini_engine::verify::verify),
//! [`StateLog::check`], [`inspect_queue`], [`mini_engine::kv::inspect`])
//! and returns a [`Report`]: the lines a person reads and the same findings
//! as JSON.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use mini_engine::queue::{Clock, SystemClock, inspect_queue};
use mini_engine::snapshot::{SnapshotCheck, check_unlocked, read_file};
use mini_engine::state::{JOURNAL_DIR, SNAPSHOT_DIR, StateCheck, StateError, StateLog};
use mini_engine::verify::VerifyReport;

use super::report::{
    BucketJson, DamageJson, DamagedSnapshot, JournalJson, RecoveryJson, Report, SnapshotsJson,
};

/// Logs smaller than this are verified without a progress bar.
const PROGRESS_MIN_BYTES: u64 = 16 * 1024 * 1024;

/// Runs `work` with a progress bar on a terminal for the long work on `dir`.
pub fn with_progress<T>(dir: &Path, work: impl FnOnce(&mut dyn FnMut(u64, u64)) -> T) -> T {
    let show = std::io::stderr().is_terminal();
    let mut bar: Option<ProgressBar> = None;
    let mut progress = |done: u64, total: u64| {
        if !show || total < PROGRESS_MIN_BYTES {
            return;
        }
        let bar = bar.get_or_insert_with(|| {
            let bar = ProgressBar::new(total).with_message(dir.display().to_string());
            if let Ok(style) =
                ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        bar.set_length(total);
        bar.set_position(done);
    };
    let result = work(&mut progress);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    result
}

/// What a journal holds, for its `ok` line.
pub fn summary(report: &VerifyReport) -> String {
    let mut text = if report.records == 0 {
        format!(
            "0 records, {} segment(s), {} bytes",
            report.segments, report.bytes
        )
    } else {
        format!(
            "{} records (seq {}..={}), {} segment(s), {} bytes",
            report.records, report.first_seq, report.last_seq, report.segments, report.bytes
        )
    };
    if report.torn_tail_bytes > 0 {
        text.push_str(&format!(
            "; a torn tail of {} bytes (an unfinished write) is cut at the next open",
            report.torn_tail_bytes
        ));
    }
    text
}

/// Adds the line of the journal in `dir` that `verified` describes.
fn journal_lines(dir: &Path, verified: &VerifyReport, report: &mut Report) {
    match &verified.damage {
        None => report.ok(dir, summary(verified)),
        Some(damage) => {
            report.damaged(dir, damage.to_string());
            report.note(format!(
                "{damage}\nmini: to cut the journal there (what is cut is kept in a repair-* \
                 directory), run: mini repair {} --yes",
                dir.display()
            ));
        }
    }
    report.journal = Some(JournalJson::of(verified));
}

/// Verifies the journal in `dir`.
pub fn check_journal(dir: &Path) -> Result<Report> {
    let verified = with_progress(dir, |progress| mini_engine::verify::verify(dir, progress))
        .with_context(|| format!("cannot verify {}", dir.display()))?;
    let mut report = Report::new(dir, "journal");
    journal_lines(dir, &verified, &mut report);
    Ok(report)
}

/// "seq 3, 6" or "seq 3..=9 (5 valid)".
fn seq_list(seqs: &[u64]) -> String {
    match seqs {
        [] => String::new(),
        [a, b, ..] if seqs.len() > 4 => format!(
            "seq {a}..={} ({} valid)",
            seqs.last().unwrap_or(b),
            seqs.len()
        ),
        _ => {
            let list: Vec<String> = seqs.iter().map(u64::to_string).collect();
            format!("seq {}", list.join(", "))
        }
    }
}

/// Adds the lines of the snapshots in `dir` that `check` describes: one
/// per damaged file and one for the directory.
fn snapshot_lines(dir: &Path, check: &SnapshotCheck, report: &mut Report) {
    for s in &check.damaged {
        report.damaged(&s.path, s.damage.to_string());
        report.note(format!(
            "damaged snapshot {}: {}",
            s.path.display(),
            s.damage
        ));
    }
    let total = check.valid.len() + check.damaged.len();
    let skipped = check.skipped().len();
    let mut text = if check.damaged.is_empty() {
        match total {
            0 => "no snapshot".to_owned(),
            n => format!("{n} snapshot(s) ({})", seq_list(&check.valid)),
        }
    } else {
        let restore = match check.newest() {
            Some(seq) => format!("restore uses snapshot {seq}"),
            None => "no valid snapshot left: restore fails".to_owned(),
        };
        format!(
            "{} of {total} snapshot(s) damaged; {restore}",
            check.damaged.len()
        )
    };
    if check.temporary > 0 {
        text.push_str(&format!(
            "; {} temporary file(s) (an unfinished snapshot, removed at the next open)",
            check.temporary
        ));
    }
    if check.damaged.is_empty() {
        report.ok(dir, text);
    } else {
        report.damaged(dir, text);
        report.note(match (check.newest(), skipped) {
            (Some(seq), 0) => {
                format!("the newest snapshot ({seq}) is valid: restore is not affected")
            }
            (Some(seq), n) => format!(
                "restore skips the {n} damaged newer snapshot(s) and falls back to snapshot {seq}"
            ),
            (None, _) => format!("no valid snapshot is left in {}", dir.display()),
        });
    }
    report.snapshots = Some(SnapshotsJson {
        valid: check.valid.clone(),
        damaged: check
            .damaged
            .iter()
            .map(|s| DamagedSnapshot {
                seq: s.seq,
                path: s.path.display().to_string(),
                damage: s.damage.to_string(),
            })
            .collect(),
        temporary: check.temporary,
    });
}

/// Checks the snapshots in `dir`.
pub fn check_snapshots(dir: &Path) -> Result<Report> {
    let check = check_unlocked(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let mut report = Report::new(dir, "snapshots");
    snapshot_lines(dir, &check, &mut report);
    Ok(report)
}

/// Checks the snapshots and the journal of the state, queue or bucket in
/// `dir`,
/// and that recovery works; the report and whether it recovers.
fn recovery(dir: &Path, kind: &'static str) -> Result<(Report, bool)> {
    let check: StateCheck = with_progress(dir, |progress| StateLog::check(dir, progress))
        .with_context(|| format!("cannot read {}", dir.display()))?;
    let mut report = Report::new(dir, kind);
    snapshot_lines(&dir.join(SNAPSHOT_DIR), &check.snapshots, &mut report);
    journal_lines(&dir.join(JOURNAL_DIR), &check.journal, &mut report);
    let name = dir.display();
    let plan = match &check.recovery {
        Ok(plan) => *plan,
        Err(StateError::Journal(_)) => {
            report.damaged(dir, "its journal is damaged".to_owned());
            report.recovery = Some(RecoveryJson::failed("its journal is damaged".to_owned()));
            return Ok((report, false));
        }
        Err(problem) => {
            report.damaged(dir, format!("cannot recover: {problem}"));
            report.note(format!("cannot recover the state in {name}: {problem}"));
            report.recovery = Some(RecoveryJson::failed(problem.to_string()));
            return Ok((report, false));
        }
    };
    let seq = plan.snapshot_seq.unwrap_or(0);
    let records = match plan.replayed() {
        0 => "no journal record".to_owned(),
        n => format!(
            "{n} journal record(s) (seq {}..={})",
            seq + 1,
            plan.last_seq
        ),
    };
    let mut text = match plan.snapshot_seq {
        Some(seq) => format!("recovers from snapshot {seq} + {records}"),
        None => format!("recovers from no snapshot + {records}"),
    };
    if plan.skipped > 0 {
        text.push_str(&format!(
            ", falling back past {} damaged newer snapshot(s)",
            plan.skipped
        ));
    }
    report.recovery = Some(RecoveryJson::of(&plan));
    report.summary = text;
    Ok((report, true))
}

/// Checks a state directory: its snapshots, its journal, and that it
/// recovers.
pub fn check_state(dir: &Path) -> Result<Report> {
    let (mut report, recovers) = recovery(dir, "state")?;
    if recovers {
        let text = std::mem::take(&mut report.summary);
        report.ok(dir, text);
    }
    Ok(report)
}

/// Checks a queue directory as a state, and that its records fold into a
/// queue (what opening it does).
pub fn check_queue(dir: &Path) -> Result<Report> {
    let (mut report, recovers) = recovery(dir, "queue")?;
    if !recovers {
        return Ok(report);
    }
    let text = std::mem::take(&mut report.summary);
    match inspect_queue(dir) {
        Ok(found) => {
            let s = found.state.stats(SystemClock.now_ms());
            report.ok(
                dir,
                format!(
                    "{text}; the queue holds {} ready, {} leased, {} delayed, {} dead",
                    s.ready, s.leased, s.delayed, s.dead
                ),
            );
            report.queue = Some(crate::out::QueueCounts::of(&s));
        }
        Err(e) => {
            let e = anyhow::Error::new(e);
            report.damaged(dir, format!("the queue does not recover: {e:#}"));
            report.note(format!(
                "cannot recover the queue in {}: {e:#}",
                dir.display()
            ));
            if let Some(r) = &mut report.recovery {
                r.recovers = false;
                r.error = Some(format!("{e:#}"));
            }
        }
    }
    Ok(report)
}

/// Checks a bucket directory as a state, and that its records fold into
/// a bucket's contents (what opening it does).
pub fn check_bucket(dir: &Path) -> Result<Report> {
    let (mut report, recovers) = recovery(dir, "bucket")?;
    if !recovers {
        return Ok(report);
    }
    let text = std::mem::take(&mut report.summary);
    match mini_engine::kv::inspect(dir) {
        Ok(found) => {
            let keys = found.state.entries.len();
            let holds = if keys == 1 {
                "1 key".to_owned()
            } else {
                format!("{keys} keys")
            };
            report.ok(dir, format!("{text}; the bucket holds {holds}"));
            report.bucket = Some(BucketJson { keys });
        }
        Err(e) => {
            let e = anyhow::Error::new(e);
            report.damaged(dir, format!("the bucket does not recover: {e:#}"));
            report.note(format!(
                "cannot recover the bucket in {}: {e:#}",
                dir.display()
            ));
            if let Some(r) = &mut report.recovery {
                r.recovers = false;
                r.error = Some(format!("{e:#}"));
            }
        }
    }
    Ok(report)
}

/// Checks one snapshot file.
pub fn check_snapshot_file(path: &Path) -> Report {
    let mut report = Report::new(path, "snapshot_file");
    match read_file(path) {
        Ok((seq, state)) => report.ok(
            path,
            format!("snapshot {seq}, state of {} bytes", state.len()),
        ),
        Err(damage) => {
            report.damaged(path, damage.to_string());
            report.note(format!("damaged snapshot {}: {damage}", path.display()));
        }
    }
    report
}

impl DamageJson {
    pub fn of(damage: &mini_engine::Corruption) -> DamageJson {
        DamageJson {
            file: damage.file.display().to_string(),
            offset: damage.offset,
            seq: damage.seq,
            message: damage.to_string(),
        }
    }
}

impl JournalJson {
    /// The JSON of what `verify` found.
    pub fn of(r: &VerifyReport) -> JournalJson {
        JournalJson {
            records: r.records,
            first_seq: r.first_seq,
            last_seq: r.last_seq,
            segments: r.segments,
            bytes: r.bytes,
            torn_tail_bytes: r.torn_tail_bytes,
            damage: r.damage.as_ref().map(DamageJson::of),
        }
    }
}
