//! What `mini verify` found, as the lines a person reads and as JSON
//! (`--json`): serde structs, one per finding.

use std::path::Path;

use mini_engine::state::RecoveryPlan;
use serde::Serialize;

use crate::out::QueueCounts;

/// One line of the text output: `ok       PATH: TEXT` or `DAMAGED  PATH: TEXT`.
#[derive(Debug, Serialize)]
pub struct Line {
    /// `ok` or `damaged`.
    pub status: &'static str,
    /// The file or directory the line is about.
    pub path: String,
    /// What was found.
    pub text: String,
}

/// What one check found.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// The unit (or part, or file) checked.
    pub path: String,
    /// What it is: journal, state, snapshots, queue, bucket, snapshot_file.
    pub kind: &'static str,
    /// Whether anything in it is damaged.
    pub damaged: bool,
    /// The lines of the text output, in order.
    pub lines: Vec<Line>,
    /// Its journal, verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal: Option<JournalJson>,
    /// Its snapshots, checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<SnapshotsJson>,
    /// How it recovers (states, queues and buckets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoveryJson>,
    /// What the queue holds (queues that recover).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueCounts>,
    /// What the bucket holds (buckets that recover).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<BucketJson>,
    /// What goes to stderr besides (hints, explanations).
    #[serde(skip)]
    pub notes: Vec<String>,
    /// A line being built (states: the recovery line).
    #[serde(skip)]
    pub summary: String,
}

impl Report {
    /// An empty report of `path`.
    pub fn new(path: &Path, kind: &'static str) -> Report {
        Report {
            path: path.display().to_string(),
            kind,
            ..Report::default()
        }
    }

    /// Adds an `ok` line.
    pub fn ok(&mut self, path: &Path, text: String) {
        self.lines.push(Line {
            status: "ok",
            path: path.display().to_string(),
            text,
        });
    }

    /// Adds a `DAMAGED` line, which makes the report damaged.
    pub fn damaged(&mut self, path: &Path, text: String) {
        self.damaged = true;
        self.lines.push(Line {
            status: "damaged",
            path: path.display().to_string(),
            text,
        });
    }

    /// Adds a note for stderr.
    pub fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    /// Prints the lines to stdout and the notes to stderr.
    pub fn print(&self) {
        for line in &self.lines {
            let status = if line.status == "ok" { "ok" } else { "DAMAGED" };
            println!("{status:<9}{}: {}", line.path, line.text);
        }
        for note in &self.notes {
            eprintln!("mini: {note}");
        }
    }
}

/// A journal as `verify` found it.
#[derive(Debug, Serialize)]
pub struct JournalJson {
    /// Complete records checked.
    pub records: u64,
    /// The first seq stored.
    pub first_seq: u64,
    /// The last complete record's seq (0: none).
    pub last_seq: u64,
    /// Segment files.
    pub segments: usize,
    /// Bytes of valid segments.
    pub bytes: u64,
    /// Bytes of a torn tail the next open cuts (not damage).
    pub torn_tail_bytes: u64,
    /// The first damage, if any.
    pub damage: Option<DamageJson>,
}

/// Where a journal is damaged.
#[derive(Debug, Serialize)]
pub struct DamageJson {
    /// The segment file.
    pub file: String,
    /// The byte offset of the damaged line.
    pub offset: u64,
    /// The seq expected there.
    pub seq: u64,
    /// The whole message.
    pub message: String,
}

/// The snapshots of a directory.
#[derive(Debug, Serialize)]
pub struct SnapshotsJson {
    /// The seqs of the valid ones, ascending.
    pub valid: Vec<u64>,
    /// The damaged ones, ascending.
    pub damaged: Vec<DamagedSnapshot>,
    /// Temporary files (an unfinished snapshot).
    pub temporary: usize,
}

/// A damaged snapshot file.
#[derive(Debug, Serialize)]
pub struct DamagedSnapshot {
    /// The seq in its name.
    pub seq: u64,
    /// The file.
    pub path: String,
    /// What is wrong with it.
    pub damage: String,
}

/// What a bucket holds, as `verify --json` shows it.
#[derive(Debug, Serialize)]
pub struct BucketJson {
    /// How many keys have a value.
    pub keys: usize,
}

/// How a state, queue or bucket recovers.
#[derive(Debug, Default, Serialize)]
pub struct RecoveryJson {
    /// Whether it recovers.
    pub recovers: bool,
    /// The snapshot recovery starts from (null: none).
    pub snapshot_seq: Option<u64>,
    /// Damaged newer snapshots passed over.
    pub skipped_snapshots: usize,
    /// Journal records replayed on top of the snapshot.
    pub replayed: u64,
    /// Why it does not recover.
    pub error: Option<String>,
}

impl RecoveryJson {
    /// A recovery that works as `plan` says.
    pub fn of(plan: &RecoveryPlan) -> RecoveryJson {
        RecoveryJson {
            recovers: true,
            snapshot_seq: plan.snapshot_seq,
            skipped_snapshots: plan.skipped,
            replayed: plan.replayed(),
            error: None,
        }
    }

    /// A recovery that fails for `why`.
    pub fn failed(why: String) -> RecoveryJson {
        RecoveryJson {
            error: Some(why),
            ..RecoveryJson::default()
        }
    }
}
