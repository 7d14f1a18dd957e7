//! Writes the fuzz targets' seed corpora, `<out>/<target>/seed-*`, from
//! files the engine itself writes: journals with single records and
//! batches, several segments, preallocated zeros, torn tails, compaction;
//! snapshots; states with checkpoints; queues after every kind of call; and
//! a ministore upstream journal (the engine only reads that format, so the
//! seeds write it as upstream does).
//!
//! `fuzz/run` runs this before the targets; by hand:
//! `cargo run --bin seeds -- fuzz/corpus` (from the `fuzz` directory:
//! `cargo run --bin seeds -- corpus`).

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;

// The fuzz build instruments this binary too; libFuzzer's runtime (linked
// through libfuzzer-sys) defines the coverage hooks it calls. Its `main` is
// not used: this crate has its own.
use libfuzzer_sys as _;
use mini_engine::journal::MARK_FILE;
use mini_engine::queue::{ManualClock, PushOptions, Queue, QueueOptions};
use mini_engine::segment::{MAX_SEQ, encode_line, header_line, segment_file_name};
use mini_engine::snapshot::SnapshotStore;
use mini_engine::state::{CheckpointPolicy, StateManager, StateOptions};
use mini_engine::{Journal, JournalOptions};
use mini_fuzz::state::{Counter, Op};
use mini_fuzz::{Scratch, container, queue};

type Result<T = ()> = std::result::Result<T, Box<dyn Error>>;

/// Records of many shapes: what the readers must hand back byte for byte.
const RECORDS: &[&str] = &[
    r#"{"Inc":{"by":5}}"#,
    r#"{"Set":{"value":10}}"#,
    r#"[1,2.5,-3e7,true,false,null]"#,
    r#""a string with \"quotes\", \\ and \u00e9 and é""#,
    r#"{"seq":1,"crc":"00000000","more":true,"data":{}}"#,
    "0",
    r#"{"nested":{"deep":[[[{}]]]},"empty":""}"#,
];

struct Seeds {
    out: PathBuf,
    written: usize,
}

impl Seeds {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) -> Result {
        check_names(target, bytes).map_err(|e| format!("seed {target}/{name}: {e}"))?;
        let dir = self.out.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("seed-{name}")), bytes)?;
        self.written += 1;
        Ok(())
    }
}

/// Every file of a container seed has a name its target takes (a name the
/// target drops would make the seed test less than it seems to).
fn check_names(target: &str, bytes: &[u8]) -> Result {
    let (_, parts) = container::split(bytes);
    for part in parts {
        let taken = match target {
            "journal_segments" | "import" => container::file_name(part.name).is_some(),
            "state_recovery" | "queue_fold" => {
                container::file_in(part.name, &["journal", "snapshots"]).is_some()
            }
            _ => true,
        };
        if !taken {
            return Err(format!(
                "the name {:?} is dropped",
                String::from_utf8_lossy(part.name)
            )
            .into());
        }
    }
    Ok(())
}

fn main() -> Result {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("corpus"));
    let mut seeds = Seeds { out, written: 0 };
    journals(&mut seeds)?;
    snapshots(&mut seeds)?;
    states(&mut seeds)?;
    queues(&mut seeds)?;
    ministore(&mut seeds)?;
    println!("{} seeds written to {}", seeds.written, seeds.out.display());
    Ok(())
}

/// Marks every 64 bytes: most journals end with a mark of their active
/// segment.
fn journal_options(segment_size: u64, preallocate: u64) -> JournalOptions {
    JournalOptions {
        segment_size,
        preallocate,
        mark_every: 64,
        ..JournalOptions::default()
    }
}

/// The segment files of the journal in `dir`, by name, with their bytes.
fn segment_files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    Ok(journal_files(dir)?
        .into_iter()
        .filter(|(name, _)| name.ends_with(".jsonl"))
        .collect())
}

/// The segment files and the mark of the journal in `dir`.
fn journal_files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| "a non-UTF-8 name")?;
        if entry.file_type()?.is_file() && (name.ends_with(".jsonl") || name == MARK_FILE) {
            files.push((name, std::fs::read(entry.path())?));
        }
    }
    files.sort();
    Ok(files)
}

/// Seeds of `segment_scan` (each segment of the journal) and of
/// `journal_segments` (the whole journal).
fn put_journal(seeds: &mut Seeds, name: &str, dir: &Path) -> Result {
    for (i, (_, bytes)) in segment_files(dir)?.iter().enumerate() {
        seeds.put("segment_scan", &format!("{name}-{i}"), bytes)?;
    }
    let files = journal_files(dir)?;
    seeds.put("journal_segments", name, &container::join(b"", &files))
}

fn journals(seeds: &mut Seeds) -> Result {
    // Empty; one record; records and batches with preallocated zeros; the
    // same without preallocation.
    for (name, preallocate, records) in [
        ("empty", 4096, 0),
        ("one", 4096, 1),
        ("mixed", 4096, RECORDS.len()),
        ("mixed-no-prealloc", 0, RECORDS.len()),
    ] {
        let scratch = Scratch::new();
        let journal = Journal::open_with(scratch.path(), journal_options(1 << 20, preallocate))?;
        for (i, record) in RECORDS.iter().take(records).enumerate() {
            if i % 3 == 2 {
                journal.append_batch(&[*record, r#"{"batch":"end"}"#])?;
            } else {
                journal.append(record)?;
            }
        }
        drop(journal);
        put_journal(seeds, name, scratch.path())?;
    }

    // Several segments: a segment per record, then segments of a few
    // records with batches, one bigger than a segment.
    for (name, segment_size) in [("rotated-1", 1), ("rotated-200", 200)] {
        let scratch = Scratch::new();
        let journal = Journal::open_with(scratch.path(), journal_options(segment_size, 4096))?;
        for record in RECORDS {
            journal.append(record)?;
        }
        journal.append_batch(RECORDS)?;
        journal.append("1")?;
        drop(journal);
        put_journal(seeds, name, scratch.path())?;
    }

    // Compacted: the first segment starts past seq 1.
    let scratch = Scratch::new();
    let journal = Journal::open_with(scratch.path(), journal_options(64, 4096))?;
    for record in RECORDS {
        journal.append(record)?;
    }
    journal.truncate_before(5)?;
    drop(journal);
    put_journal(seeds, "compacted", scratch.path())?;

    // Torn tails: a last line cut short, a last batch without its closing
    // line (the engine's own segment, cut as a crash cuts it).
    let scratch = Scratch::new();
    let journal = Journal::open_with(scratch.path(), journal_options(1 << 20, 0))?;
    journal.append(RECORDS[0])?;
    journal.append_batch(&RECORDS[1..4])?;
    drop(journal);
    let (_, bytes) = segment_files(scratch.path())?
        .pop()
        .ok_or("no segment written")?;
    seeds.put("segment_scan", "torn-line", &bytes[..bytes.len() - 7])?;
    let last_line = bytes[..bytes.len() - 1]
        .iter()
        .rposition(|&b| b == b'\n')
        .ok_or("no last line")?;
    seeds.put("segment_scan", "torn-batch", &bytes[..last_line + 1])?;

    // At the edge of the seqs: a segment starting at MAX_SEQ - 1.
    let mut edge = header_line(MAX_SEQ - 1).into_bytes();
    encode_line(&mut edge, MAX_SEQ - 1, "1", false);
    seeds.put("segment_scan", "max-seq", &edge)?;
    let files = vec![(segment_file_name(MAX_SEQ - 1), edge)];
    seeds.put("journal_segments", "max-seq", &container::join(b"", &files))
}

fn snapshots(seeds: &mut Seeds) -> Result {
    let states = [
        "{}",
        r#"{"value":10}"#,
        "[1,2,3]",
        r#""a \"string\" \u00e9""#,
        "null",
        "1.5e10",
        r#"{"next_id":3,"messages":[],"dedup":{}}"#,
    ];
    for (i, (seq, state)) in [0, 1, 42, 1 << 63, u64::MAX]
        .into_iter()
        .cycle()
        .zip(states)
        .enumerate()
    {
        let scratch = Scratch::new();
        let store = SnapshotStore::open(scratch.path())?;
        let created = store.create(seq, state)?;
        seeds.put(
            "snapshot_file",
            &i.to_string(),
            &std::fs::read(created.info.path)?,
        )?;
    }
    Ok(())
}

/// A state directory as a `state_recovery` input.
fn state_input(dir: &Path) -> Result<Vec<u8>> {
    let mut files = Vec::new();
    for sub in ["journal", "snapshots"] {
        let mut names: Vec<_> = std::fs::read_dir(dir.join(sub))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n != "LOCK")
            .collect();
        names.sort();
        for name in names {
            let bytes = std::fs::read(dir.join(sub).join(&name))?;
            files.push((format!("{sub}/{name}"), bytes));
        }
    }
    Ok(container::join(b"", &files))
}

fn states(seeds: &mut Seeds) -> Result {
    let options = |every_records| StateOptions {
        segment_size: 256,
        preallocate: 4096,
        checkpoint: CheckpointPolicy {
            every_records,
            every_bytes: None,
        },
        ..StateOptions::default()
    };
    for (name, every) in [("plain", None), ("auto-checkpoints", Some(3))] {
        let scratch = Scratch::new();
        let mgr: StateManager<Counter, Op> =
            StateManager::open_with(scratch.path(), options(every))?;
        for by in 1..=7 {
            mgr.apply(Op::Inc { by })?;
        }
        mgr.apply_batch(vec![Op::Set { value: 3 }, Op::Inc { by: -1 }])?;
        drop(mgr);
        seeds.put("state_recovery", name, &state_input(scratch.path())?)?;
    }

    // Two checkpoints kept, the journal compacted, a tail after them; then
    // the same with the newest snapshot cut short (recovery falls back).
    let scratch = Scratch::new();
    let mgr: StateManager<Counter, Op> = StateManager::open_with(scratch.path(), options(None))?;
    for round in 0..3 {
        for by in 0..4 {
            mgr.apply(Op::Inc { by: by + round })?;
        }
        mgr.checkpoint()?;
    }
    mgr.apply(Op::Set { value: -5 })?;
    let newest = mgr.stats().checkpoint_seq;
    drop(mgr);
    seeds.put(
        "state_recovery",
        "checkpoints",
        &state_input(scratch.path())?,
    )?;
    let snapshot = scratch
        .path()
        .join("snapshots")
        .join(mini_engine::snapshot::snapshot_file_name(newest));
    let bytes = std::fs::read(&snapshot)?;
    std::fs::write(&snapshot, &bytes[..bytes.len() / 2])?;
    seeds.put(
        "state_recovery",
        "damaged-newest",
        &state_input(scratch.path())?,
    )
}

fn queues(seeds: &mut Seeds) -> Result {
    let open = |dir: &Path, clock: &Arc<ManualClock>, max_deliveries| {
        Queue::open_with(
            dir,
            QueueOptions {
                max_deliveries,
                checkpoint_every: 1000,
                clock: clock.clone(),
                ..queue::options(clock.clone())
            },
        )
    };
    let now = queue::DEFAULT_NOW;
    let put = |seeds: &mut Seeds, name: &str, dir: &Path| {
        seeds.put("queue_fold", name, &queue::queue_dir_to_input(dir, now))
    };

    // Pushes (a delay, dedup keys, a batch), leases, ack, nack, extend.
    let scratch = Scratch::new();
    let clock = Arc::new(ManualClock::new(now));
    let q = open(scratch.path(), &clock, 5)?;
    q.push(r#"{"job":1}"#, &PushOptions::default())?;
    q.push(
        r#"{"job":2}"#,
        &PushOptions {
            delay_ms: 500,
            dedup: Some("order-2".into()),
        },
    )?;
    q.push_batch(&[
        ("3", PushOptions::default()),
        (
            r#""four""#,
            PushOptions {
                delay_ms: 0,
                dedup: Some("k\"4".into()),
            },
        ),
    ])?;
    let first = q.pop(30_000)?.ok_or("nothing to pop")?;
    q.ack(first.id, &first.token)?;
    let batch = q.pop_batch(2, 30_000)?;
    if let [a, b, ..] = &batch[..] {
        q.nack(a.id, &a.token, 1_000)?;
        q.extend(b.id, &b.token, 60_000)?;
    }
    drop(q);
    put(seeds, "calls", scratch.path())?;

    // Dead letters (one delivery allowed), requeued and purged, leases run
    // out, then a checkpoint: a snapshot with every kind of place.
    let scratch = Scratch::new();
    let clock = Arc::new(ManualClock::new(now));
    let q = open(scratch.path(), &clock, 1)?;
    for n in 0..6 {
        q.push(&n.to_string(), &PushOptions::default())?;
    }
    q.pop_batch(4, 100)?;
    clock.advance(200);
    q.pop_batch(6, 100_000)?; // the expired ones go to the dead letters
    q.requeue(Some(&[1]))?;
    q.purge(Some(&[2]))?;
    q.checkpoint()?;
    q.push(r#"{"after":"checkpoint"}"#, &PushOptions::default())?;
    let d = q.pop(5_000)?.ok_or("nothing to pop after the checkpoint")?;
    q.ack(d.id, &d.token)?;
    drop(q);
    put(seeds, "dead-letters-checkpoint", scratch.path())?;

    // Automatic checkpoints: many records, the journal compacted.
    let scratch = Scratch::new();
    let clock = Arc::new(ManualClock::new(now));
    let q = Queue::open_with(scratch.path(), queue::options(clock.clone()))?;
    for n in 0..12 {
        q.push(
            &format!(r#"{{"n":{n}}}"#),
            &PushOptions {
                delay_ms: 0,
                dedup: (n % 3 == 0).then(|| format!("d{n}")),
            },
        )?;
        if let Some(d) = q.pop(1_000)? {
            if n % 2 == 0 {
                q.ack(d.id, &d.token)?;
            } else {
                q.nack(d.id, &d.token, 0)?;
            }
        }
        clock.advance(10);
    }
    drop(q);
    put(seeds, "auto-checkpoints", scratch.path())
}

fn ministore(seeds: &mut Seeds) -> Result {
    let header = "// MINISTORE JOURNAL v0.1.4\n";
    let body = |records: &[&str]| {
        let mut text = header.to_owned();
        for r in records {
            text.push_str(r);
            text.push('\n');
        }
        text.into_bytes()
    };
    let single = vec![("journal.jsonl".to_owned(), body(&RECORDS[..3]))];
    seeds.put("import", "active-only", &container::join(b"", &single))?;
    let rotated = vec![
        ("journal.jsonl.001".to_owned(), body(&RECORDS[..2])),
        (
            "journal.jsonl.002".to_owned(),
            body(&["  {\"a\": 1}  ", "", "2"]),
        ),
        ("journal.jsonl".to_owned(), body(&RECORDS[2..])),
    ];
    seeds.put("import", "rotated-old", &container::join(b"", &rotated))?;
    let newer = vec![
        ("journal.jsonl.000001".to_owned(), body(&["[1]", "[2]"])),
        ("journal.jsonl.000002".to_owned(), body(&[r#"{"x":"y"}"#])),
        // An active file a crash left empty between the rename and the new
        // header: upstream skips it.
        ("journal.jsonl".to_owned(), Vec::new()),
    ];
    seeds.put("import", "rotated-new", &container::join(b"", &newer))
}
