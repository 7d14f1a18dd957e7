//! Helpers shared by the engine's integration tests. Each test binary uses a
//! different subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command};
use std::sync::Arc;

pub mod lossy;
pub mod sync_hook;

#[allow(unused_imports)] // each test binary uses a different subset
pub use sync_hook::{SyncHookFs, no_sync_fs};

use mini_engine::fs::FileSystem;
use mini_engine::{Entry, Journal, JournalOptions};

/// A fresh temporary directory.
pub fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// Options with a small segment size on the real file system.
pub fn small(segment_size: u64) -> JournalOptions {
    JournalOptions {
        segment_size,
        ..JournalOptions::default()
    }
}

/// Options with a given segment size on `fs`.
pub fn with_fs(segment_size: u64, fs: Arc<dyn FileSystem>) -> JournalOptions {
    JournalOptions {
        segment_size,
        fs,
        ..JournalOptions::default()
    }
}

/// Every record from the first stored one, panicking on any error.
pub fn read_all(journal: &Journal) -> Vec<Entry> {
    journal
        .read_from(0)
        .expect("read_from(0)")
        .collect::<Result<Vec<_>, _>>()
        .expect("reading the journal")
}

/// Records from `from` on.
pub fn read_from(journal: &Journal, from: u64) -> Vec<Entry> {
    journal
        .read_from(from)
        .expect("read_from")
        .collect::<Result<Vec<_>, _>>()
        .expect("reading the journal")
}

/// A deterministic record for sequence-ish number `i`, of varying length.
pub fn rec(i: u64) -> String {
    let pad = "x".repeat((i % 37) as usize);
    format!(r#"{{"i":{i},"pad":"{pad}"}}"#)
}

/// `(first_seq, path)` of every segment file in `dir`, ascending. Checks that
/// segment file names are 20 digits plus `.jsonl`.
pub fn segments(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let Some(digits) = name.strip_suffix(".jsonl") else {
            continue;
        };
        assert_eq!(digits.len(), 20, "segment name {name} is not 20 digits");
        assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{name}");
        out.push((digits.parse().unwrap(), entry.path()));
    }
    out.sort();
    out
}

/// The last segment file of `dir`.
pub fn last_segment(dir: &Path) -> PathBuf {
    segments(dir).pop().expect("no segment").1
}

/// Every regular file of `dir` (not recursive) by name, except the lock file.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if entry.file_type().unwrap().is_file() && name != "LOCK" {
            out.insert(name, std::fs::read(entry.path()).unwrap());
        }
    }
    out
}

/// Copies the segment files of `from` into the new directory `to`.
pub fn copy_journal(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for (name, bytes) in snapshot(from) {
        std::fs::write(to.join(name), bytes).unwrap();
    }
}

/// CRC-32C (Castagnoli), written out here so the tests do not depend on the
/// engine's choice of implementation.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The header line (with newline) the format prescribes.
pub fn header(first_seq: u64) -> String {
    format!("{{\"mini\":\"journal\",\"version\":1,\"first_seq\":{first_seq}}}\n")
}

/// The bytes of one appended unit as the format prescribes: one line per
/// record, `"more":true` on all but the last.
pub fn encode_unit(first_seq: u64, records: &[&str]) -> String {
    let mut out = String::new();
    for (i, data) in records.iter().enumerate() {
        let more = if i + 1 < records.len() {
            ",\"more\":true"
        } else {
            ""
        };
        out.push_str(&format!(
            "{{\"seq\":{},\"crc\":\"{:08x}\"{more},\"data\":{data}}}\n",
            first_seq + i as u64,
            crc32c(data.as_bytes())
        ));
    }
    out
}

/// One line of a segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Offset of its first byte.
    pub offset: u64,
    /// Offset just past its newline.
    pub end: u64,
    /// The line without its newline.
    pub text: String,
}

/// The complete lines of a file (header included).
pub fn lines(path: &Path) -> Vec<Line> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            out.push(Line {
                offset: start as u64,
                end: i as u64 + 1,
                text: String::from_utf8(bytes[start..i].to_vec()).unwrap(),
            });
            start = i + 1;
        }
    }
    out
}

/// True for a segment's seal line.
pub fn is_seal(line: &Line) -> bool {
    line.text.starts_with("{\"seal\":")
}

/// The complete lines of a segment file but its seal (header included).
pub fn record_lines(path: &Path) -> Vec<Line> {
    lines(path).into_iter().filter(|l| !is_seal(l)).collect()
}

/// The `seq` of a record line.
pub fn seq_of(line: &Line) -> u64 {
    let v: serde_json::Value = serde_json::from_str(&line.text).unwrap();
    v["seq"].as_u64().expect("a record line")
}

/// The record line of `seq` in the journal in `dir`: (segment path, line).
pub fn find_line(dir: &Path, seq: u64) -> (PathBuf, Line) {
    for (_, path) in segments(dir) {
        for line in record_lines(&path).into_iter().skip(1) {
            if seq_of(&line) == seq {
                return (path, line);
            }
        }
    }
    panic!("seq {seq} not found");
}

/// Overwrites `bytes` at `offset` of `path`.
pub fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, offset).unwrap();
}

/// Truncates `path` to `len` bytes.
pub fn set_len(path: &Path, len: u64) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.set_len(len).unwrap();
}

/// Writes `bytes` where a writer's next line would go: after the last
/// line, over preallocated zeros if the segment has them.
pub fn append_bytes(path: &Path, bytes: &[u8]) {
    patch(path, records_end(path), bytes);
}

/// Where the bytes written to a segment end: its length less the
/// preallocated zeros at its end.
pub fn records_end(path: &Path) -> u64 {
    contents(path).len() as u64
}

/// A segment's bytes without the preallocated zeros at its end.
pub fn contents(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    bytes.truncate(end);
    bytes
}

/// The size of a file.
pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// A command that re-runs this test binary as a child process executing only
/// the test `name` (which may be `#[ignore]`d), with `env` set.
pub fn child_test(name: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args([
        name,
        "--exact",
        "--nocapture",
        "--include-ignored",
        "--test-threads=1",
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Kills `child` with SIGKILL and checks that the signal is what ended it.
pub fn kill(child: &mut Child) {
    child.kill().expect("kill failed");
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the child ended on its own: {status:?}"
    );
}

/// The next message of the child marked `marker` (the test harness may print
/// its own text before it on the same line), from the marker on; None at the
/// end of the child's output.
pub fn next_line(out: &mut BufReader<ChildStdout>, marker: &str) -> Option<String> {
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            return None;
        }
        if let Some(at) = line.find(marker) {
            return Some(line[at..].trim_end().to_string());
        }
    }
}

/// Ends a failed child and panics with `what` and the child's stderr.
pub fn child_failed(mut child: Child, what: &str) -> ! {
    let _ = child.kill();
    let _ = child.wait();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    panic!("{what}; child stderr:\n{err}");
}

/// The tests' seeded generator: a failure is replayed from the seed it
/// printed (`MINI_TEST_SEED`).
pub use fastrand::Rng;

/// A seed from the environment variable `MINI_TEST_SEED`, else from the clock.
pub fn seed_from_env() -> u64 {
    if let Ok(s) = std::env::var("MINI_TEST_SEED") {
        return s.parse().expect("MINI_TEST_SEED is a number");
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

/// `(path, size)` of every regular file under `dir`, recursively, sorted.
pub fn files_under(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                todo.push(entry.path());
            } else if kind.is_file() {
                out.push((entry.path(), entry.metadata().unwrap().len()));
            }
        }
    }
    out.sort();
    out
}

/// The total size of the regular files under `dir`, recursively.
pub fn bytes_under(dir: &Path) -> u64 {
    files_under(dir).iter().map(|(_, n)| n).sum()
}
