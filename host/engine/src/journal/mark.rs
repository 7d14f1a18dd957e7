//! The journal's `MARK` file (FORMAT.md, "Marks"): the writer leaves a mark
//! of the active segment every [`JournalOptions::mark_every`] bytes, and
//! open starts its scan of the active segment where the mark says the
//! records are whole, after checking the mark against the file.
//!
//! Why a mark can be trusted as far as a seal is: it is written only after
//! the records it covers were synced, and the bytes of a segment before its
//! last synced record never change (appends go after them; only a torn tail
//! after them is ever cut, and a cut or a repair that would reach into what
//! a mark covers removes the mark first). The mark itself is not synced: a
//! crash may leave an older mark (it covers less, still true), none, or a
//! torn one (its crc fails, and it is passed over).
//!
//! [`JournalOptions::mark_every`]: super::JournalOptions::mark_every

use std::io;
use std::path::Path;

use crate::fs::{FileRef, FileSystem};
use crate::segment;
use crate::segment::mark::{Mark, max_mark_line, parse_mark_line};
use crate::segment::seal::{SealBuilder, read_exact_at};

/// The mark's file in a journal's directory.
pub const MARK_FILE: &str = "MARK";
/// The file a mark is written to before it is renamed over [`MARK_FILE`].
pub const MARK_TEMP: &str = "MARK.tmp";

/// The default for [`JournalOptions::mark_every`](super::JournalOptions::mark_every).
pub const DEFAULT_MARK_EVERY: u64 = 1024 * 1024;

/// Where open may start reading the active segment's records.
#[derive(Debug)]
pub(super) struct Resume {
    /// The seal of the bytes before the start, to go on building.
    pub built: SealBuilder,
    /// The seq of the first record after them.
    pub next_seq: u64,
    /// The records before them.
    pub records: u64,
}

/// Leaves a mark of the active segment `file` in `dir`: `built` is the seal
/// of its bytes so far (whole batches, synced), `last_seq` their last
/// record's. Not synced (see the module's doc). Nothing is written if the
/// mark would be longer than a segment of `segment_size` calls for.
pub(super) fn write_mark(
    fs: &dyn FileSystem,
    dir: &Path,
    file: &FileRef,
    built: &SealBuilder,
    last_seq: u64,
    segment_size: u64,
) -> io::Result<()> {
    let seal = built.seal(last_seq);
    let Some(&(_, from)) = seal.index.last() else {
        return Ok(());
    };
    let mark = Mark {
        tail_crc: crc32c::crc32c(&read_range(file, from, seal.len)?),
        seal,
    };
    let line = mark.line();
    if line.len() as u64 > max_mark_line(segment_size) {
        return Ok(());
    }
    let temp = dir.join(MARK_TEMP);
    remove_if_there(fs, &temp)?;
    let out = fs.create_new(&temp)?;
    out.write_all_at(&line, 0)?;
    drop(out);
    fs.rename(&temp, &dir.join(MARK_FILE))
}

/// The mark in `dir`, if there is one that reads; a mark that does not is
/// passed over (it is a hint).
pub(super) fn read_mark(fs: &dyn FileSystem, dir: &Path) -> Option<Mark> {
    let path = dir.join(MARK_FILE);
    let file = fs.open_read(&path).ok()?;
    let len = file.len().ok()?;
    if len > segment::seal::MAX_SEAL_LINE {
        return None;
    }
    let mut line = vec![0; usize::try_from(len).ok()?];
    read_exact_at(&file, &mut line, 0).ok()?;
    let body = line.strip_suffix(b"\n")?;
    match parse_mark_line(body) {
        Ok(mark) => Some(mark),
        Err(why) => {
            tracing::debug!(mark = %path.display(), %why, "journal open: mark passed over");
            None
        }
    }
}

/// Where to start reading the active segment `first_seq` (its `file` is
/// `file_len` bytes long), if `mark` holds for it: it marks this segment, the
/// segment is as long as it says at least, and the bytes from its last index
/// entry to its end are whole record lines, the last of them its last seq
/// and closing a batch, whose CRC-32C is its `tail_crc`.
pub(super) fn resume_at(
    mark: &Mark,
    first_seq: u64,
    file: &FileRef,
    file_len: u64,
) -> Option<Resume> {
    match check(mark, first_seq, file, file_len) {
        Ok(()) => Some(Resume {
            built: SealBuilder::resume(&mark.seal),
            next_seq: mark.seal.last_seq + 1,
            records: mark.seal.records,
        }),
        Err(why) => {
            tracing::debug!(first_seq, %why, "journal open: mark passed over");
            None
        }
    }
}

fn check(mark: &Mark, first_seq: u64, file: &FileRef, file_len: u64) -> Result<(), String> {
    let seal = &mark.seal;
    if seal.first_seq != first_seq {
        return Err(format!("it marks segment {}", seal.first_seq));
    }
    if seal.len > file_len {
        return Err(format!("it marks {} bytes of {file_len}", seal.len));
    }
    let (mut expected, from) = mark.last_entry().ok_or("it covers no record")?;
    if seal.len - from > segment::seal::MAX_SEAL_LINE {
        return Err("its last index entry is too far from its end".into());
    }
    let tail = read_range(file, from, seal.len).map_err(|e| e.to_string())?;
    if crc32c::crc32c(&tail) != mark.tail_crc {
        return Err("the records it ends with changed".into());
    }
    let mut closes_batch = false;
    for line in tail.split_inclusive(|&b| b == b'\n') {
        let body = line
            .strip_suffix(b"\n")
            .ok_or("it does not end at a line's end")?;
        let record = segment::check_line(body, expected).map_err(|kind| kind.to_string())?;
        closes_batch = !record.more;
        expected += 1;
    }
    if expected != seal.last_seq + 1 || !closes_batch {
        return Err("its last record is not where it says".into());
    }
    Ok(())
}

/// Removes the mark in `dir` (durably) if one is there that may cover
/// bytes at or after `offset` of segment `first_seq`: before a cut there.
pub(super) fn forget_past(
    fs: &dyn FileSystem,
    dir: &Path,
    first_seq: u64,
    offset: u64,
) -> io::Result<()> {
    match read_mark(fs, dir) {
        Some(mark) if mark.seal.first_seq != first_seq || mark.seal.len <= offset => Ok(()),
        // A mark that covers the cut, one that does not read, or none.
        _ => forget(fs, dir),
    }
}

/// Removes the mark in `dir` (durably), if there is one: before a repair
/// cuts the journal.
pub(crate) fn forget(fs: &dyn FileSystem, dir: &Path) -> io::Result<()> {
    if remove_if_there(fs, &dir.join(MARK_FILE))? {
        fs.sync_dir(dir)?;
    }
    Ok(())
}

/// Removes `path`; false if it was not there.
fn remove_if_there(fs: &dyn FileSystem, path: &Path) -> io::Result<bool> {
    match fs.remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The bytes of `file` from `from` to `to`.
fn read_range(file: &FileRef, from: u64, to: u64) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0; usize::try_from(to - from).map_err(io::Error::other)?];
    read_exact_at(file, &mut bytes, from)?;
    Ok(bytes)
}
