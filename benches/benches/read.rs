//! Issue 11: open, sequential read, read from the middle and batches, mini
//! side by side with its peers (SQLite, redb, fjall, okaywal) and with the
//! raw limits of the same files and disk, in one run (see BENCHMARKS.md):
//!
//! ```text
//! cargo bench -p mini-benches --bench read
//! MINI_BENCH_BIG=1 cargo bench -p mini-benches --bench read
//! ```
//!
//! Every section runs its cases in rounds (one of each, in turn, after one
//! warm-up round that also warms the page cache) and reports the median of
//! each case and the median of the per-round ratios.
//!
//! * `MINI_BENCH_DIR`: the disk (default `target/bench-data`).
//! * `MINI_BENCH_RECORDS`: records of the data sets (default 1,000,000).
//! * `MINI_BENCH_BIG=1`: also opens data sets of 10x the records (10M by
//!   default: about 8 GB for the four stores; check `df -h` first).
//! * `MINI_BENCH_ROUNDS`: rounds of the open, read and batch sections (7).
//! * `MINI_BENCH_TRIES`: rounds of the read from the middle (31).
//! * `MINI_BENCH_BATCHES`: batches of 64 records per case and round (500).
//!
//! The data sets are deleted when the run ends.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mini_benches::{bench_root, fresh, median, raw_line, raw_write_loop};
use mini_engine::{Journal, read_unlocked};
use redb::{ReadableDatabase, ReadableTableMetadata};
use serde::Deserialize;
use serde_json::value::RawValue;

const REDB_TABLE: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("t");
const FJALL_KEYSPACE: &str = "t";
/// Records per `append_batch` (and per chunk of the peers' loads) when the
/// data sets are built.
const BUILD_BATCH: u64 = 10_000;
/// Records per peer transaction when the data sets are built.
const BUILD_TRANSACTION: u64 = 1_000_000;
/// Records per batch in the batch section.
const BATCH: u64 = 64;
/// Records per `next_batch` call.
const NEXT_BATCH: usize = 1024;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// Record `n` (its seq in the journal, its key in the peers): about 150
/// bytes of JSON, `{"n":N,"pad":"…"}`, the pad pseudo-random letters and
/// digits so that a compressing peer gets no free ride.
fn record(n: u64) -> String {
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut pad = String::with_capacity(128);
    for _ in 0..128 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pad.push(ALPHABET[(x % 36) as usize] as char);
    }
    format!("{{\"n\":{n},\"pad\":\"{pad}\"}}")
}

/// Records 1..=`records` in chunks of [`BUILD_BATCH`]: (first seq, records).
fn chunks(records: u64) -> impl Iterator<Item = (u64, Vec<String>)> {
    (0..records.div_ceil(BUILD_BATCH)).map(move |c| {
        let first = c * BUILD_BATCH + 1;
        let last = (first + BUILD_BATCH - 1).min(records);
        (first, (first..=last).map(record).collect())
    })
}

// ---------------------------------------------------------------------------
// Data sets

struct DataSet {
    records: u64,
    /// Bytes of all records' data (every reader must hand all of them over).
    data_bytes: u64,
    mini: PathBuf,
    sqlite: PathBuf,
    redb: PathBuf,
    fjall: PathBuf,
    _dir: tempfile::TempDir,
}

fn build(root: &Path, records: u64) -> DataSet {
    let dir = fresh(root, &format!("read-{records}-"));
    let set = DataSet {
        records,
        data_bytes: (1..=records).map(|n| record(n).len() as u64).sum(),
        mini: dir.path().join("mini"),
        sqlite: dir.path().join("sqlite.db"),
        redb: dir.path().join("redb.redb"),
        fjall: dir.path().join("fjall"),
        _dir: dir,
    };
    let step = |name: &str, f: &dyn Fn()| {
        let start = Instant::now();
        f();
        eprintln!(
            "  built {name:<7} {records} records in {:>6.1} s",
            start.elapsed().as_secs_f64()
        );
    };
    step("mini", &|| build_mini(&set.mini, records));
    step("SQLite", &|| build_sqlite(&set.sqlite, records));
    step("redb", &|| build_redb(&set.redb, records));
    step("fjall", &|| build_fjall(&set.fjall, records));
    eprintln!(
        "  on disk: mini {} in {} segments, SQLite {}, redb {}, fjall {}",
        mib(disk_bytes(&set.mini)),
        segment_files(&set.mini).len(),
        mib(disk_bytes(&set.sqlite)),
        mib(disk_bytes(&set.redb)),
        mib(disk_bytes(&set.fjall)),
    );
    set
}

/// Through the public API, the fastest way: `append_batch` of 10,000.
fn build_mini(path: &Path, records: u64) {
    let journal = Journal::open(path).expect("open");
    for (_, chunk) in chunks(records) {
        journal.append_batch(&chunk).expect("append_batch");
    }
    assert_eq!(journal.last_seq(), records);
}

/// WAL mode, `synchronous=FULL` (as in the queue benchmark), transactions
/// of a million rows.
fn build_sqlite(path: &Path, records: u64) {
    let db = rusqlite::Connection::open(path).expect("open");
    db.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE t (id INTEGER PRIMARY KEY, data TEXT NOT NULL);",
    )
    .expect("schema");
    let mut tx = db.unchecked_transaction().expect("begin");
    for (first, chunk) in chunks(records) {
        {
            let mut insert = tx
                .prepare_cached("INSERT INTO t (id, data) VALUES (?1, ?2)")
                .expect("prepare");
            for (i, data) in chunk.iter().enumerate() {
                let id = i64::try_from(first + i as u64).expect("id");
                insert.execute(rusqlite::params![id, data]).expect("insert");
            }
        }
        let last = first + chunk.len() as u64 - 1;
        if last.is_multiple_of(BUILD_TRANSACTION) || last == records {
            tx.commit().expect("commit");
            tx = db.unchecked_transaction().expect("begin");
        }
    }
    drop(tx);
}

fn build_redb(path: &Path, records: u64) {
    let db = redb::Database::create(path).expect("create");
    let mut chunks = chunks(records).peekable();
    while chunks.peek().is_some() {
        let tx = db.begin_write().expect("begin");
        {
            let mut table = tx.open_table(REDB_TABLE).expect("table");
            for (first, chunk) in chunks.by_ref() {
                for (i, data) in chunk.iter().enumerate() {
                    table
                        .insert(first + i as u64, data.as_bytes())
                        .expect("insert");
                }
                if (first + chunk.len() as u64 - 1).is_multiple_of(BUILD_TRANSACTION) {
                    break;
                }
            }
        }
        tx.commit().expect("commit");
    }
}

/// fjall's bulk load (sorted keys straight into tables), keys big-endian.
fn build_fjall(path: &Path, records: u64) {
    let db = fjall::Database::builder(path).open().expect("open");
    let keyspace = db
        .keyspace(FJALL_KEYSPACE, fjall::KeyspaceCreateOptions::default)
        .expect("keyspace");
    let mut ingestion = keyspace.start_ingestion().expect("ingestion");
    for (first, chunk) in chunks(records) {
        for (i, data) in chunk.iter().enumerate() {
            let key = (first + i as u64).to_be_bytes();
            ingestion.write(&key[..], data.as_bytes()).expect("ingest");
        }
    }
    ingestion.finish().expect("finish");
    // Let background work settle so it does not run during the timings.
    while db.active_compactions() > 0 || db.outstanding_flushes() > 0 {
        std::thread::sleep(Duration::from_millis(10));
    }
    db.persist(fjall::PersistMode::SyncAll).expect("persist");
}

fn disk_bytes(path: &Path) -> u64 {
    if path.is_file() {
        return path.metadata().map_or(0, |m| m.len());
    }
    std::fs::read_dir(path).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| disk_bytes(&e.path()))
            .sum()
    })
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The journal's segment files in sequence order (names sort like numbers).
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
}

// ---------------------------------------------------------------------------
// Rounds

struct Case<'a> {
    name: String,
    run: Box<dyn FnMut() -> Duration + 'a>,
}

fn case<'a>(name: impl Into<String>, run: impl FnMut() -> Duration + 'a) -> Case<'a> {
    Case {
        name: name.into(),
        run: Box::new(run),
    }
}

/// Seconds of every case in every round.
struct Timings {
    names: Vec<String>,
    secs: Vec<Vec<f64>>,
}

/// One warm-up round, then `rounds` rounds of every case in turn.
fn run_rounds(title: &str, mut cases: Vec<Case<'_>>, rounds: usize) -> Timings {
    eprintln!(
        "{title}: {} cases, 1 warm-up round + {rounds} rounds",
        cases.len()
    );
    for case in &mut cases {
        (case.run)();
    }
    let mut secs = vec![Vec::with_capacity(rounds); cases.len()];
    for _ in 0..rounds {
        for (i, case) in cases.iter_mut().enumerate() {
            secs[i].push((case.run)().as_secs_f64());
        }
    }
    let timings = Timings {
        names: cases.into_iter().map(|c| c.name).collect(),
        secs,
    };
    for (name, secs) in timings.names.iter().zip(&timings.secs) {
        eprintln!("  {name:<62} median {}", time(median(secs.clone())));
    }
    timings
}

impl Timings {
    fn index(&self, name: &str) -> usize {
        self.names
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("no case {name}"))
    }

    fn median(&self, name: &str) -> f64 {
        median(self.secs[self.index(name)].clone())
    }

    /// Median over rounds of `a`'s time / `b`'s time (for cases doing the
    /// same work, also `b`'s rate / `a`'s rate).
    fn time_ratio(&self, a: &str, b: &str) -> f64 {
        let (a, b) = (&self.secs[self.index(a)], &self.secs[self.index(b)]);
        median(a.iter().zip(b).map(|(a, b)| a / b).collect())
    }

    /// The case of `names` with the lowest median time.
    fn fastest<'n>(&self, names: &[&'n str]) -> &'n str {
        names
            .iter()
            .copied()
            .min_by(|a, b| self.median(a).total_cmp(&self.median(b)))
            .expect("cases")
    }
}

fn time(secs: f64) -> String {
    if secs < 1e-3 {
        format!("{:.0} µs", secs * 1e6)
    } else if secs < 1.0 {
        format!("{:.1} ms", secs * 1e3)
    } else {
        format!("{secs:.2} s")
    }
}

fn rate(per_sec: f64) -> String {
    if per_sec >= 1e6 {
        format!("{:.2} M/s", per_sec / 1e6)
    } else {
        format!("{per_sec:.0}/s")
    }
}

#[derive(Clone, Copy)]
enum Goal {
    None,
    AtMost(f64),
    AtLeast(f64),
    /// The case's own median time, in seconds.
    TimeAtMost(f64),
}

struct Row {
    label: &'static str,
    case: String,
    value: String,
    reference: String,
    reference_value: String,
    ratio: f64,
    goal: String,
}

/// A row comparing times (open, read from the middle): ratio = case time /
/// reference time, lower is better.
fn time_row(t: &Timings, label: &'static str, a: &str, b: &str, goal: Goal) -> Row {
    let ratio = t.time_ratio(a, b);
    Row {
        label,
        case: a.into(),
        value: time(t.median(a)),
        reference: b.into(),
        reference_value: time(t.median(b)),
        ratio,
        goal: goal_text(goal, ratio, t.median(a)),
    }
}

/// A row comparing rates of `ops` operations per case: ratio = case rate /
/// reference rate, higher is better.
fn rate_row(t: &Timings, ops: u64, label: &'static str, a: &str, b: &str, goal: Goal) -> Row {
    let ratio = t.time_ratio(b, a);
    Row {
        label,
        case: a.into(),
        value: rate(ops as f64 / t.median(a)),
        reference: b.into(),
        reference_value: rate(ops as f64 / t.median(b)),
        ratio,
        goal: goal_text(goal, ratio, t.median(a)),
    }
}

fn goal_text(goal: Goal, ratio: f64, secs: f64) -> String {
    let mark = |ok: bool| if ok { "✓" } else { "✗" };
    match goal {
        Goal::None => String::new(),
        Goal::AtMost(g) => format!("≤ {g} {}", mark(ratio <= g)),
        Goal::AtLeast(g) => format!("≥ {g} {}", mark(ratio >= g)),
        Goal::TimeAtMost(g) => format!("≤ {} {}", time(g), mark(secs <= g)),
    }
}

fn print_table(title: &str, value: &str, ratio: &str, rows: &[Row]) {
    println!();
    println!("{title}");
    println!();
    println!("| | case | {value} | reference | {value} | {ratio} | goal |");
    println!("|---|---|---:|---|---:|---:|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | **{:.2}** | {} |",
            r.label, r.case, r.value, r.reference, r.reference_value, r.ratio, r.goal
        );
    }
}

fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

// ---------------------------------------------------------------------------
// Open: the open and a count, the handle dropped untimed.

fn open_mini(set: &DataSet) -> Duration {
    let start = Instant::now();
    let journal = Journal::open(&set.mini).expect("open");
    assert_eq!(journal.last_seq(), set.records);
    let elapsed = start.elapsed();
    drop(journal);
    elapsed
}

fn open_sqlite(set: &DataSet) -> Duration {
    let start = Instant::now();
    let db = rusqlite::Connection::open(&set.sqlite).expect("open");
    let count: i64 = db
        .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
        .expect("count");
    let elapsed = start.elapsed();
    assert_eq!(count as u64, set.records);
    drop(db);
    elapsed
}

fn open_redb(set: &DataSet) -> Duration {
    let start = Instant::now();
    let db = redb::Database::open(&set.redb).expect("open");
    let len = {
        let tx = db.begin_read().expect("begin");
        tx.open_table(REDB_TABLE)
            .expect("table")
            .len()
            .expect("len")
    };
    let elapsed = start.elapsed();
    assert_eq!(len, set.records);
    drop(db);
    elapsed
}

fn open_fjall(set: &DataSet) -> Duration {
    let start = Instant::now();
    let db = fjall::Database::builder(&set.fjall).open().expect("open");
    let keyspace = db
        .keyspace(FJALL_KEYSPACE, fjall::KeyspaceCreateOptions::default)
        .expect("keyspace");
    let len = keyspace.approximate_len();
    let elapsed = start.elapsed();
    assert_eq!(len as u64, set.records);
    drop(keyspace);
    drop(db);
    elapsed
}

// ---------------------------------------------------------------------------
// Sequential read: every case hands over every record's data; each returns
// (records, bytes of data) and is checked against the data set.

fn read_mini_iter(journal: &Journal) -> (u64, u64) {
    let (mut n, mut bytes) = (0, 0);
    for entry in journal.read_from(0).expect("read_from") {
        let entry = entry.expect("entry");
        n += 1;
        bytes += entry.data.len() as u64;
    }
    (n, bytes)
}

fn read_mini_batches(journal: &Journal) -> (u64, u64) {
    let (mut n, mut bytes) = (0, 0);
    let mut reader = journal.read_from(0).expect("read_from");
    loop {
        let batch = reader.next_batch(NEXT_BATCH).expect("next_batch");
        if batch.is_empty() {
            break;
        }
        n += batch.len() as u64;
        bytes += batch.iter().map(|e| e.data.len() as u64).sum::<u64>();
    }
    (n, bytes)
}

/// Records handed out where they lie in the reader's buffer (what redb's
/// and SQLite's iterations do too: borrowed bytes, no `String` each).
fn read_mini_borrowed(journal: &Journal) -> (u64, u64) {
    let (mut n, mut bytes) = (0, 0);
    let mut reader = journal.read_from(0).expect("read_from");
    let mut count = |_seq: u64, data: &str| {
        n += 1;
        bytes += data.len() as u64;
    };
    while reader
        .next_records(NEXT_BATCH, usize::MAX, &mut count)
        .expect("next_records")
        > 0
    {}
    (n, bytes)
}

fn read_mini_unlocked(dir: &Path) -> (u64, u64) {
    let (mut n, mut bytes) = (0, 0);
    for entry in read_unlocked(dir, 0).expect("read_unlocked") {
        let entry = entry.expect("entry");
        n += 1;
        bytes += entry.data.len() as u64;
    }
    (n, bytes)
}

#[derive(Clone, Copy, PartialEq)]
enum Raw {
    /// Split into lines, nothing else.
    Split,
    /// Split, and parse each record line with serde_json (data borrowed as
    /// a `RawValue`), sequence checked.
    Parse,
    /// Split, parse, and check each record's CRC-32C: what a simple reader
    /// over the same files does.
    Check,
    /// All of that, and each record's data copied into a `String` of its
    /// own, as mini's `Entry` hands it over.
    Owned,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<'a> {
    seq: u64,
    crc: &'a str,
    #[serde(default)]
    #[allow(dead_code)]
    more: bool,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// A simple reader of mini's segment files: `BufReader`, one line at a
/// time, the header skipped, preallocated zeros ending a file.
fn read_raw(dir: &Path, mode: Raw) -> (u64, u64) {
    let (mut n, mut bytes) = (0, 0);
    let mut line = Vec::with_capacity(512);
    for path in segment_files(dir) {
        let mut reader = BufReader::with_capacity(64 * 1024, File::open(&path).expect("open"));
        let mut header = true;
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line).expect("read") == 0 || line[0] == 0 {
                break;
            }
            // The header, and the seal that ends a closed segment.
            if std::mem::take(&mut header) || line.starts_with(b"{\"seal\":") {
                continue;
            }
            match mode {
                Raw::Split => {
                    n += 1;
                    bytes += line.len() as u64;
                }
                Raw::Parse | Raw::Check | Raw::Owned => {
                    let rec: Line<'_> = serde_json::from_slice(&line).expect("record line");
                    n += 1;
                    assert_eq!(rec.seq, n, "seq");
                    let data = rec.data.get().as_bytes();
                    if mode != Raw::Parse {
                        let crc = u32::from_str_radix(rec.crc, 16).expect("crc");
                        assert_eq!(crc32c::crc32c(data), crc, "crc of seq {n}");
                    }
                    if mode == Raw::Owned {
                        let owned = std::hint::black_box(rec.data.get().to_owned());
                        bytes += owned.len() as u64;
                    } else {
                        bytes += data.len() as u64;
                    }
                }
            }
        }
    }
    (n, bytes)
}

/// The I/O limit: every byte of the files read, nothing looked at.
fn read_bare(dir: &Path, buf: &mut [u8]) -> (u64, u64) {
    let mut bytes = 0;
    for path in segment_files(dir) {
        let mut file = File::open(&path).expect("open");
        loop {
            let got = file.read(buf).expect("read");
            if got == 0 {
                break;
            }
            bytes += got as u64;
        }
    }
    (0, bytes)
}

fn read_sqlite(db: &rusqlite::Connection) -> (u64, u64) {
    let (mut n, mut bytes) = (0, 0);
    let mut select = db
        .prepare_cached("SELECT id, data FROM t ORDER BY id")
        .expect("prepare");
    let mut rows = select.query([]).expect("query");
    while let Some(row) = rows.next().expect("row") {
        let id: i64 = row.get(0).expect("id");
        let data = row.get_ref(1).expect("data").as_str().expect("text");
        n += 1;
        debug_assert_eq!(id as u64, n);
        bytes += data.len() as u64;
    }
    (n, bytes)
}

fn read_redb(db: &redb::Database) -> (u64, u64) {
    let (mut n, mut bytes) = (0, 0);
    let tx = db.begin_read().expect("begin");
    let table = tx.open_table(REDB_TABLE).expect("table");
    for item in table.range(0u64..).expect("range") {
        let (key, value) = item.expect("item");
        n += 1;
        debug_assert_eq!(key.value(), n);
        bytes += value.value().len() as u64;
    }
    (n, bytes)
}

fn read_fjall(keyspace: &fjall::Keyspace) -> (u64, u64) {
    let (mut n, mut bytes) = (0u64, 0);
    for guard in keyspace.iter() {
        let (key, value) = guard.into_inner().expect("item");
        n += 1;
        debug_assert_eq!(&key[..], &n.to_be_bytes()[..]);
        bytes += value.len() as u64;
    }
    (n, bytes)
}

/// Times `read` and checks it handed over all records (`check_count`) and
/// `bytes` bytes.
fn check_read(
    set: &DataSet,
    bytes: u64,
    check_count: bool,
    mut read: impl FnMut() -> (u64, u64),
) -> impl FnMut() -> Duration {
    let records = set.records;
    move || {
        let mut got = (0, 0);
        let elapsed = timed(|| got = read());
        if check_count {
            assert_eq!(got.0, records, "records read");
        }
        assert_eq!(got.1, bytes, "bytes read");
        elapsed
    }
}

// ---------------------------------------------------------------------------
// Batches: each round a fresh directory (untimed), then `batches` durable
// batches of 64 records.

fn batch_records(batches: u64) -> Vec<Vec<String>> {
    (0..batches)
        .map(|b| (0..BATCH).map(|i| record(b * BATCH + i + 1)).collect())
        .collect()
}

fn batches_mini(root: &Path, batches: &[Vec<String>]) -> Duration {
    let dir = fresh(root, "batch-mini");
    let journal = Journal::open(dir.path()).expect("open");
    timed(|| {
        for records in batches {
            journal.append_batch(records).expect("append_batch");
        }
    })
}

/// One `pwrite` of the batch's 64 lines (the bytes mini writes) and one
/// `fdatasync`, over zeros written and synced beforehand.
fn batches_raw(root: &Path, writes: &[Vec<u8>]) -> Duration {
    raw_write_loop(root, writes, true)
}

fn batches_okaywal(root: &Path, batches: &[Vec<String>]) -> Duration {
    let dir = fresh(root, "batch-okaywal");
    let wal = okaywal::WriteAheadLog::recover(dir.path(), okaywal::LogVoid).expect("recover");
    let elapsed = timed(|| {
        for records in batches {
            let mut entry = wal.begin_entry().expect("begin_entry");
            for record in records {
                entry.write_chunk(record.as_bytes()).expect("write_chunk");
            }
            entry.commit().expect("commit");
        }
    });
    wal.shutdown().expect("shutdown");
    elapsed
}

// ---------------------------------------------------------------------------

fn main() {
    let root = bench_root();
    let records = env_u64("MINI_BENCH_RECORDS", 1_000_000);
    let big = std::env::var("MINI_BENCH_BIG").is_ok_and(|v| v == "1");
    let rounds = env_u64("MINI_BENCH_ROUNDS", 7) as usize;
    let tries = env_u64("MINI_BENCH_TRIES", 31) as usize;
    let batches = env_u64("MINI_BENCH_BATCHES", 500);
    eprintln!(
        "benchmark data in {}, {records} records{}, {rounds} rounds",
        root.display(),
        if big {
            format!(" and {}", records * 10)
        } else {
            String::new()
        }
    );

    let set = build(&root, records);
    let big_set = big.then(|| build(&root, records * 10));
    let n = format_count(records);

    // --- Open -------------------------------------------------------------
    let m_open = format!("mini `Journal::open`, {n}");
    let s_open = format!("SQLite open + `count(*)`, {n}");
    let r_open = format!("redb open + table len, {n}");
    let f_open = format!("fjall open + `approximate_len`, {n}");
    let m_scan = format!("mini `read_unlocked(0)` to the end, {n}");
    let raw_scan = format!("raw reader (parse + CRC-32C), {n}");
    let m_empty = "mini `Journal::open`, empty journal".to_string();
    let empty = fresh(&root, "empty");
    drop(Journal::open(empty.path()).expect("create"));
    let data_bytes = set.data_bytes;
    let mut cases = vec![
        case(&m_open, || open_mini(&set)),
        case(&s_open, || open_sqlite(&set)),
        case(&r_open, || open_redb(&set)),
        case(&f_open, || open_fjall(&set)),
        case(
            &m_scan,
            check_read(&set, data_bytes, true, || read_mini_unlocked(&set.mini)),
        ),
        case(
            &raw_scan,
            check_read(&set, data_bytes, true, || read_raw(&set.mini, Raw::Check)),
        ),
        case(&m_empty, || {
            timed(|| drop(Journal::open(empty.path()).expect("open")))
        }),
    ];
    let big_names = big_set.as_ref().map(|big| {
        let nn = format_count(big.records);
        let names = [
            format!("mini `Journal::open`, {nn}"),
            format!("SQLite open + `count(*)`, {nn}"),
            format!("redb open + table len, {nn}"),
            format!("fjall open + `approximate_len`, {nn}"),
        ];
        cases.push(case(names[0].clone(), || open_mini(big)));
        cases.push(case(names[1].clone(), || open_sqlite(big)));
        cases.push(case(names[2].clone(), || open_redb(big)));
        cases.push(case(names[3].clone(), || open_fjall(big)));
        names
    });
    let open = run_rounds("open", cases, rounds);
    let mut open_rows = vec![
        time_row(&open, "(o)", &m_open, &r_open, Goal::AtMost(2.0)),
        time_row(&open, "(o')", &m_open, &s_open, Goal::None),
        time_row(&open, "(o'')", &m_open, &f_open, Goal::None),
    ];
    if let Some(names) = &big_names {
        open_rows.push(time_row(
            &open,
            "(o10)",
            &names[0],
            &m_open,
            Goal::AtMost(2.0),
        ));
        open_rows.push(time_row(
            &open,
            "(o10')",
            &names[0],
            &names[2],
            Goal::AtMost(2.0),
        ));
        open_rows.push(time_row(&open, "", &names[0], &names[1], Goal::None));
        open_rows.push(time_row(&open, "", &names[1], &s_open, Goal::None));
        open_rows.push(time_row(&open, "", &names[2], &r_open, Goal::None));
        open_rows.push(time_row(&open, "", &names[3], &f_open, Goal::None));
    }
    open_rows.push(time_row(&open, "", &m_open, &m_scan, Goal::None));
    open_rows.push(time_row(&open, "", &m_open, &raw_scan, Goal::None));
    open_rows.push(time_row(&open, "", &m_empty, &m_open, Goal::None));
    drop(big_set);

    // --- Sequential read ----------------------------------------------------
    let journal = Journal::open(&set.mini).expect("open");
    let sqlite = rusqlite::Connection::open(&set.sqlite).expect("open");
    let redb_db = redb::Database::open(&set.redb).expect("open");
    let fjall_db = fjall::Database::builder(&set.fjall).open().expect("open");
    let fjall_ks = fjall_db
        .keyspace(FJALL_KEYSPACE, fjall::KeyspaceCreateOptions::default)
        .expect("keyspace");
    let file_bytes: u64 = segment_files(&set.mini).iter().map(|p| disk_bytes(p)).sum();
    let lines_bytes = {
        let (_, bytes) = read_raw(&set.mini, Raw::Split);
        bytes
    };
    let m_iter = "mini `read_from(0)`, iterated".to_string();
    let m_batch = format!("mini `Reader::next_batch({NEXT_BATCH})`");
    let m_borrowed = format!("mini `Reader::next_records({NEXT_BATCH})`, borrowed");
    let raw_check = "raw reader: lines + serde_json `RawValue` + CRC-32C".to_string();
    let raw_owned = "raw reader + CRC-32C + a `String` per record".to_string();
    let raw_parse = "raw reader: lines + serde_json, no CRC".to_string();
    let raw_split = "raw reader: line split only".to_string();
    let bare = "bare read of the segment files' bytes".to_string();
    let s_read = "SQLite `SELECT id, data FROM t ORDER BY id`".to_string();
    let r_read = "redb range iteration".to_string();
    let f_read = "fjall iteration".to_string();
    let mut buf = vec![0; 1024 * 1024];
    let read = run_rounds(
        "sequential read",
        vec![
            case(
                &m_iter,
                check_read(&set, data_bytes, true, || read_mini_iter(&journal)),
            ),
            case(
                &m_batch,
                check_read(&set, data_bytes, true, || read_mini_batches(&journal)),
            ),
            case(
                &m_borrowed,
                check_read(&set, data_bytes, true, || read_mini_borrowed(&journal)),
            ),
            case(
                &raw_check,
                check_read(&set, data_bytes, true, || read_raw(&set.mini, Raw::Check)),
            ),
            case(
                &raw_owned,
                check_read(&set, data_bytes, true, || read_raw(&set.mini, Raw::Owned)),
            ),
            case(
                &raw_parse,
                check_read(&set, data_bytes, true, || read_raw(&set.mini, Raw::Parse)),
            ),
            case(
                &raw_split,
                check_read(&set, lines_bytes, true, || read_raw(&set.mini, Raw::Split)),
            ),
            case(
                &bare,
                check_read(&set, file_bytes, false, || read_bare(&set.mini, &mut buf)),
            ),
            case(
                &s_read,
                check_read(&set, data_bytes, true, || read_sqlite(&sqlite)),
            ),
            case(
                &r_read,
                check_read(&set, data_bytes, true, || read_redb(&redb_db)),
            ),
            case(
                &f_read,
                check_read(&set, data_bytes, true, || read_fjall(&fjall_ks)),
            ),
        ],
        rounds,
    );
    let fastest = read.fastest(&[&s_read, &r_read, &f_read]);
    let mut read_rows = vec![
        rate_row(&read, records, "(r)", &m_iter, fastest, Goal::AtLeast(1.0)),
        rate_row(
            &read,
            records,
            "(r')",
            &m_batch,
            fastest,
            Goal::AtLeast(1.0),
        ),
        rate_row(
            &read,
            records,
            "(r'')",
            &m_borrowed,
            fastest,
            Goal::AtLeast(1.0),
        ),
    ];
    for peer in [&s_read, &r_read, &f_read] {
        if peer.as_str() != fastest {
            read_rows.push(rate_row(&read, records, "", &m_iter, peer, Goal::None));
        }
    }
    read_rows.extend([
        rate_row(&read, records, "", &m_iter, &raw_check, Goal::None),
        rate_row(&read, records, "", &m_iter, &raw_owned, Goal::None),
        rate_row(&read, records, "", &raw_owned, &raw_check, Goal::None),
        rate_row(&read, records, "", &raw_check, &raw_parse, Goal::None),
        rate_row(&read, records, "", &raw_parse, &raw_split, Goal::None),
        rate_row(&read, records, "", &raw_split, &bare, Goal::None),
        rate_row(&read, records, "", &m_iter, &bare, Goal::None),
    ]);

    // --- Read from the middle ---------------------------------------------
    let mid = records * 9 / 10;
    let m_mid = format!("mini `read_from({mid})`, first record");
    let s_mid = format!("SQLite `WHERE id >= {mid} ORDER BY id LIMIT 1`");
    let r_mid = format!("redb `range({mid}..)`, first");
    let f_mid = format!("fjall `range({mid}..)`, first");
    let middle = run_rounds(
        "read from the middle",
        vec![
            case(&m_mid, || {
                timed(|| {
                    let first = journal.read_from(mid).expect("read_from").next();
                    assert_eq!(first.expect("a record").expect("entry").seq, mid);
                })
            }),
            case(&s_mid, || {
                timed(|| {
                    let id: i64 = sqlite
                        .prepare_cached("SELECT id, data FROM t WHERE id >= ?1 ORDER BY id LIMIT 1")
                        .expect("prepare")
                        .query_row([mid as i64], |row| {
                            let _ = row.get_ref(1)?.as_str()?;
                            row.get(0)
                        })
                        .expect("row");
                    assert_eq!(id as u64, mid);
                })
            }),
            case(&r_mid, || {
                timed(|| {
                    let tx = redb_db.begin_read().expect("begin");
                    let table = tx.open_table(REDB_TABLE).expect("table");
                    let mut range = table.range(mid..).expect("range");
                    let (key, value) = range.next().expect("a record").expect("item");
                    assert_eq!(key.value(), mid);
                    assert!(!value.value().is_empty());
                })
            }),
            case(&f_mid, || {
                timed(|| {
                    let guard = fjall_ks
                        .range(mid.to_be_bytes()..)
                        .next()
                        .expect("a record");
                    let (key, value) = guard.into_inner().expect("item");
                    assert_eq!(&key[..], &mid.to_be_bytes()[..]);
                    assert!(!value.is_empty());
                })
            }),
        ],
        tries,
    );
    let fastest_mid = middle.fastest(&[&s_mid, &r_mid, &f_mid]);
    let mut middle_rows = vec![time_row(
        &middle,
        "(s)",
        &m_mid,
        fastest_mid,
        Goal::TimeAtMost(1e-3),
    )];
    for peer in [&s_mid, &r_mid, &f_mid] {
        if peer.as_str() != fastest_mid {
            middle_rows.push(time_row(&middle, "", &m_mid, peer, Goal::None));
        }
    }
    drop((journal, sqlite, redb_db, fjall_ks, fjall_db));
    drop(set);

    // --- Batches ----------------------------------------------------------
    let all = batch_records(batches);
    let writes: Vec<Vec<u8>> = all
        .iter()
        .enumerate()
        .map(|(b, records)| {
            let first = b as u64 * BATCH + 1;
            records
                .iter()
                .enumerate()
                .flat_map(|(i, r)| {
                    raw_line(first + i as u64, r, i + 1 < records.len()).into_bytes()
                })
                .collect()
        })
        .collect();
    let m_b = format!("mini `append_batch` of {BATCH} (records/s)");
    let raw_b = format!("one `pwrite` of {BATCH} lines + `fdatasync`, over synced zeros");
    let ok_b = format!("okaywal entry of {BATCH} chunks + commit");
    let batch = run_rounds(
        "batches",
        vec![
            case(&raw_b, || batches_raw(&root, &writes)),
            case(&m_b, || batches_mini(&root, &all)),
            case(&ok_b, || batches_okaywal(&root, &all)),
        ],
        rounds,
    );
    let ops = batches * BATCH;
    let batch_rows = vec![
        rate_row(&batch, ops, "(t)", &m_b, &raw_b, Goal::AtLeast(0.9)),
        rate_row(&batch, ops, "(t')", &m_b, &ok_b, Goal::AtLeast(1.0)),
        rate_row(&batch, ops, "", &ok_b, &raw_b, Goal::None),
    ];

    print_table(
        "Open (time of open + count; ratio of times, lower is better)",
        "time",
        "time ratio",
        &open_rows,
    );
    print_table(
        &format!("Sequential read of {n} records, page cache warm (records/s)"),
        "rate",
        "ratio",
        &read_rows,
    );
    print_table(
        &format!("Read from the middle: time to the first record ({tries} tries)"),
        "time",
        "time ratio",
        &middle_rows,
    );
    print_table(
        &format!("Durable batches of {BATCH} records ({batches} batches per round)"),
        "rate",
        "ratio",
        &batch_rows,
    );
}

fn format_count(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}
