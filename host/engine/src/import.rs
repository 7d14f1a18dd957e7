//! Importing journals written by the original `ministore` crate.
//!
//! Upstream layout: an active file (for example `journal.jsonl`) whose first
//! line is `// MINISTORE JOURNAL v<version>`, followed by one JSON record per
//! line; rotated segments beside it named `<file>.<number>` (`.001` in early
//! versions, `.000001` later), oldest first by number, all older than the
//! active file.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::{Journal, JournalError};

const MINISTORE_MAGIC_PREFIX: &str = "// MINISTORE JOURNAL v";

/// Records appended per atomic batch during an import.
const IMPORT_BATCH: usize = 1024;

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Reading an upstream file failed.
    #[error("i/o error on {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// No upstream journal file was found at the path.
    #[error("no ministore journal at {}", .0.display())]
    NotFound(PathBuf),
    /// A file does not start with the ministore header.
    #[error("{} is not a ministore journal (no `{MINISTORE_MAGIC_PREFIX}…` header)", .0.display())]
    NotMinistore(PathBuf),
    /// A line is not one JSON value.
    #[error("{}:{line}: {reason}", path.display())]
    InvalidLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Why it was refused.
        reason: String,
    },
    /// Appending to the target journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// The files of an upstream journal whose active file is `base`, oldest first.
pub fn ministore_files(base: &Path) -> Result<Vec<PathBuf>, ImportError> {
    let dir = match base.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let stem = base
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| ImportError::NotFound(base.to_path_buf()))?;
    let entries = std::fs::read_dir(&dir).map_err(|source| ImportError::Io {
        path: dir.clone(),
        source,
    })?;
    let mut rotated: Vec<(u64, PathBuf)> = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(number) = name
            .strip_prefix(stem)
            .and_then(|rest| rest.strip_prefix('.'))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse().ok())
        else {
            continue;
        };
        rotated.push((number, entry.path()));
    }
    rotated.sort();
    let mut files: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    let active = std::fs::metadata(base).ok().filter(|m| m.is_file());
    // Upstream rotates by renaming the active file, then creating a new one:
    // an empty active file (a crash in between) holds no records, and
    // upstream's replay skips it too.
    if active.as_ref().is_some_and(|m| m.len() > 0) {
        files.push(base.to_path_buf());
    }
    if files.is_empty() && active.is_none() {
        return Err(ImportError::NotFound(base.to_path_buf()));
    }
    Ok(files)
}

/// Appends every record of the upstream journal `base` (rotated segments
/// first, then the active file) to `into`, in order, in atomic batches.
/// Returns the number of records imported.
///
/// ```
/// use mini_engine::{Journal, import::import_ministore};
/// let dir = tempfile::tempdir()?;
/// let base = dir.path().join("journal.jsonl");
/// std::fs::write(dir.path().join("journal.jsonl.001"), "// MINISTORE JOURNAL v0.1.4\n{\"Set\":{\"value\":1}}\n")?;
/// std::fs::write(&base, "// MINISTORE JOURNAL v0.1.4\n{\"Inc\":{\"by\":2}}\n")?;
/// let journal = Journal::open(dir.path().join("imported"))?;
/// assert_eq!(import_ministore(&base, &journal)?, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn import_ministore(base: &Path, into: &Journal) -> Result<u64, ImportError> {
    let files = ministore_files(base)?;
    let limit = into.options().max_record_size;
    // Check every file before writing anything (each record as the journal
    // will check it, size included), so a bad file imports nothing.
    for path in &files {
        for_each_record(path, limit, &mut |_| Ok(()))?;
    }
    let mut imported = 0;
    let mut batch: Vec<String> = Vec::with_capacity(IMPORT_BATCH);
    for path in &files {
        for_each_record(path, limit, &mut |record| {
            batch.push(record.to_owned());
            if batch.len() == IMPORT_BATCH {
                into.append_batch(&batch)?;
                imported += batch.len() as u64;
                batch.clear();
            }
            Ok(())
        })?;
    }
    if !batch.is_empty() {
        into.append_batch(&batch)?;
        imported += batch.len() as u64;
    }
    Ok(imported)
}

/// The longest upstream line read, for a record limit of `limit` bytes: the
/// record plus as much whitespace around it again. A longer line is refused
/// after reading at most this much (an upstream file is untrusted input: one
/// line of 512 MiB must not take 512 MiB).
fn line_cap(limit: usize) -> usize {
    limit.saturating_mul(2).saturating_add(1024)
}

/// Reads the next line (without its newline) into `buf`, at most `cap`
/// bytes of it: `Ok(false)` at the end of the input, `Err(None)` if the line
/// is longer than `cap`.
fn read_capped_line(
    reader: &mut impl BufRead,
    cap: usize,
    buf: &mut Vec<u8>,
) -> Result<bool, Option<std::io::Error>> {
    use std::io::Read;
    buf.clear();
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    let read = reader
        .by_ref()
        .take(limit)
        .read_until(b'\n', buf)
        .map_err(Some)?;
    if read == 0 {
        return Ok(false);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    } else if buf.len() > cap {
        return Err(None);
    }
    Ok(true)
}

fn for_each_record(
    path: &Path,
    limit: usize,
    each: &mut dyn FnMut(&str) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let file = std::fs::File::open(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    records_of(BufReader::new(file), path, limit, each)
}

/// Every record of the upstream file `path`, read from `reader`.
fn records_of(
    mut reader: impl BufRead,
    path: &Path,
    limit: usize,
    each: &mut dyn FnMut(&str) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let invalid = |line: usize, reason: String| ImportError::InvalidLine {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut buf = Vec::new();
    let mut number = 0;
    loop {
        let more = read_capped_line(&mut reader, line_cap(limit), &mut buf);
        number += 1;
        match more {
            Ok(true) => {}
            Ok(false) if number == 1 => return Err(ImportError::NotMinistore(path.to_path_buf())),
            Ok(false) => return Ok(()),
            Err(Some(source)) => {
                return Err(ImportError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
            Err(None) if number == 1 => return Err(ImportError::NotMinistore(path.to_path_buf())),
            Err(None) => {
                let reason = format!(
                    "the line is longer than {} bytes, past the record size limit of {limit} bytes",
                    line_cap(limit)
                );
                return Err(invalid(number, reason));
            }
        }
        let Ok(line) = std::str::from_utf8(&buf) else {
            return Err(invalid(number, "the line is not UTF-8".into()));
        };
        if number == 1 {
            if !line.starts_with(MINISTORE_MAGIC_PREFIX) {
                return Err(ImportError::NotMinistore(path.to_path_buf()));
            }
            continue;
        }
        let record = line.trim();
        if record.is_empty() {
            continue;
        }
        if let Err(e) = crate::record::check_record(record, limit) {
            return Err(invalid(number, e.to_string()));
        }
        each(record)?;
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufReader, Read};

    use super::*;

    /// A very long upstream line with no newline (`len` bytes), counting
    /// what the import reads of it.
    struct LongLine {
        len: usize,
        read: usize,
    }

    impl Read for LongLine {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = out.len().min(self.len - self.read);
            out[..n].fill(b'a');
            self.read += n;
            Ok(n)
        }
    }

    #[test]
    fn a_very_long_line_is_refused_after_reading_a_bounded_prefix() {
        let limit = 1024 * 1024;
        let mut source =
            std::io::Cursor::new(b"// MINISTORE JOURNAL v0.1.4\n".to_vec()).chain(LongLine {
                len: 64 * limit,
                read: 0,
            });
        let failed = records_of(
            BufReader::new(&mut source),
            Path::new("journal.jsonl"),
            limit,
            &mut |_| Ok(()),
        );
        assert!(
            matches!(&failed, Err(ImportError::InvalidLine { line: 2, reason, .. }) if reason.contains("longer than")),
            "{failed:?}"
        );
        let (_, endless) = source.into_inner();
        assert!(
            endless.read <= line_cap(limit) + 64 * 1024,
            "read {} bytes",
            endless.read
        );
    }

    #[test]
    fn records_and_line_numbers_are_as_before() {
        let text = "// MINISTORE JOURNAL v0.1.4\n{\"a\":1}\n\n  {\"b\":2}  \nnot json\n";
        let mut seen = Vec::new();
        let failed = records_of(text.as_bytes(), Path::new("j"), 1024, &mut |r| {
            seen.push(r.to_owned());
            Ok(())
        });
        assert_eq!(seen, [r#"{"a":1}"#, r#"{"b":2}"#]);
        assert!(
            matches!(failed, Err(ImportError::InvalidLine { line: 5, .. })),
            "{failed:?}"
        );
    }
}
