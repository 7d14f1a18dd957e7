//! Seals as open and rotation write them (FORMAT.md, "Seals"): sealing a
//! segment, sealing at open the closed segments that have none, and making
//! the last segment the active one again when a rotation stopped after its
//! seal.

use std::io;
use std::path::Path;

use super::files::create_segment;
use super::scan::{SegmentInfo, SegmentState};
use crate::error::JournalError;
use crate::fs::{FileRef, FileSystem};
use crate::segment;
use crate::segment::seal::{Seal, SealBuilder};

/// Seals the closed segments of `segments` (all but the last) that are not
/// sealed yet: written before seals existed, or their sealing cut short by
/// a crash. Each is trimmed to its records and synced, then sealed: a crash
/// in between leaves it unsealed or its seal torn, which the next open reads
/// as what it is and seals again.
pub(super) fn seal_closed_segments(
    fs: &dyn FileSystem,
    segments: &mut [SegmentInfo],
) -> Result<(), JournalError> {
    let mut sealed = 0;
    for i in 1..segments.len() {
        // A closed segment's records end where the next segment starts
        // (the scan checked it).
        let next_first = segments[i].first_seq;
        let segment = &mut segments[i - 1];
        let SegmentState::Unsealed { built, .. } = &segment.state else {
            continue;
        };
        let seal = built.seal(next_first - 1);
        let path = &segment.path;
        let file = fs.open_write(path).map_err(JournalError::io(path))?;
        let len = file.len().map_err(JournalError::io(path))?;
        if len > seal.len {
            file.set_len(seal.len).map_err(JournalError::io(path))?;
            file.sync_data().map_err(JournalError::io(path))?;
        }
        segment.valid_len = write_seal(&file, &seal, false).map_err(JournalError::io(path))?;
        segment.state = SegmentState::sealed(seal);
        sealed += 1;
    }
    if sealed > 0 {
        tracing::info!(
            segments = sealed,
            "journal open: sealed segments that had no seal"
        );
    }
    Ok(())
}

/// Makes the last segment the active one and returns the seal its records
/// call for so far: the seal of a rotation that a crash (or a failed write)
/// stopped before the next segment existed is cut, and the cut synced (it
/// needs no space, unlike creating the next segment). A segment open took
/// from its seal (the one after it was removed as a torn header) is read
/// whole first: once its seal is cut, damage in its last line would look
/// like a torn tail.
pub(super) fn reopen_active(
    fs: &dyn FileSystem,
    active: &mut SegmentInfo,
) -> Result<SealBuilder, JournalError> {
    let (built, cut_at) = match &active.state {
        SegmentState::Sealed(_) => {
            let built = super::scan::check_sealed_segment(fs, &active.path, active.first_seq)?;
            let at = built.len();
            (built, Some(at))
        }
        SegmentState::Unsealed {
            built,
            torn_seal_at,
        } => (built.clone(), *torn_seal_at),
    };
    if let Some(at) = cut_at {
        let path = &active.path;
        let file = fs.open_write(path).map_err(JournalError::io(path))?;
        file.set_len(at).map_err(JournalError::io(path))?;
        file.sync_data().map_err(JournalError::io(path))?;
        tracing::debug!(segment = %path.display(), at, "journal open: cut the seal of a rotation that did not finish");
        active.valid_len = at;
    }
    active.state = SegmentState::Unsealed {
        built: built.clone(),
        torn_seal_at: None,
    };
    Ok(built)
}

/// A new, empty segment starting at `first_seq`, created in `dir`.
pub(super) fn new_segment(
    fs: &dyn FileSystem,
    dir: &Path,
    first_seq: u64,
) -> Result<SegmentInfo, JournalError> {
    let (path, _) = create_segment(fs, dir, first_seq)?;
    let header = segment::header_line(first_seq);
    Ok(SegmentInfo {
        first_seq,
        path,
        valid_len: header.len() as u64,
        state: SegmentState::Unsealed {
            built: SealBuilder::new(first_seq, header.as_bytes()),
            torn_seal_at: None,
        },
    })
}

/// Writes `seal` after the records of the segment `file` (cutting what
/// follows them first if `trim`), and syncs it; returns the sealed length.
/// The trim and the seal go out with one `fdatasync`: a crash that keeps one
/// and not the other leaves zeros after the seal, or a seal missing, and
/// either is read as what it is while the segment is the last.
pub(super) fn write_seal(file: &FileRef, seal: &Seal, trim: bool) -> io::Result<u64> {
    if trim {
        file.set_len(seal.len)?;
    }
    let line = seal.line();
    file.write_all_at(&line, seal.len)?;
    file.sync_data()?;
    Ok(seal.len + line.len() as u64)
}
