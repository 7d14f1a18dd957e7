//! Engine bugs these targets found that are reported but not fixed yet:
//! they are in the unlocked reader (`host/engine/src/journal/reader.rs`),
//! which is being rewritten. A check that meets one lets it pass, so that
//! CI stays green until the rewrite lands; `MINI_FUZZ_STRICT=1` makes the
//! checks fail on them too (to see them, or to check the rewrite). Remove
//! an entry once its bug is fixed.
//!
//! 1. **The unlocked reader is not loud about damage.** `read_unlocked`
//!    (`mini cat`, the unlocked inspections) ends without an error where
//!    open and `verify` report damage: at a line cut short in a segment
//!    that is not the last, at a gap between segments (a missing segment),
//!    at a segment header cut short before other segments, at a header
//!    whose `first_seq` is 0. At a batch left open at the end of a segment
//!    that is not the last, it drops the batch and goes on in the next
//!    segment: records are skipped silently. Repros (a journal of records
//!    `1`, a batch `2,3`, `4`, written with `segment_size: 1`, so segments
//!    1, 2 and 4): cut the last 3 bytes of segment 2, or delete it:
//!    `read_unlocked(dir, 0)` gives seq 1 and ends, no error; add
//!    `"more":true,` before `"data"` in seq 3's line (outside the crc): it
//!    gives seqs 1 and 4. Open and `verify` report the damage each time.
//!    (The locked reader shares the code: it meets such damage only if a
//!    segment is changed under an open journal.)
//! 2. **An empty journal directory fails an unlocked read.**
//!    `read_unlocked` on a journal directory without a segment file (a
//!    state or queue whose process died between creating `journal/` and
//!    its first segment) returns `OutOfRange { requested: 1, first: 1,
//!    next: 1 }` at the first `next()` instead of no records, so
//!    `inspect_queue` (`mini queue stats`) and `StateLog::read_unlocked`
//!    fail on a queue or state that opens fine.
//! 3. **The unlocked reader fails at a torn tail.** A last line that is
//!    complete but whose crc fails (or that is no record line) is a torn
//!    tail to open and `verify`, which cut it and report it as such; the
//!    unlocked reader returns `Corrupt` there, so `inspect_queue` fails on
//!    a queue that opens fine (the journal checks allow it: the records
//!    before it are read).

use std::path::Path;
use std::sync::OnceLock;

use mini_engine::JournalError;

/// Whether known bugs fail the checks (`MINI_FUZZ_STRICT` set, not `0`).
pub fn strict() -> bool {
    static STRICT: OnceLock<bool> = OnceLock::new();
    *STRICT.get_or_init(|| std::env::var_os("MINI_FUZZ_STRICT").is_some_and(|v| v != "0"))
}

/// Known bug 1: the unlocked read of a damaged journal is not checked.
pub fn unlocked_read_of_damage_is_unchecked() -> bool {
    !strict()
}

/// Known bug 2: `error` is the one an unlocked read gives of a journal
/// directory that had no segment file when it was read.
pub fn empty_journal_dir_fails_unlocked_read(had_segments: bool, error: &JournalError) -> bool {
    !strict() && !had_segments && matches!(error, JournalError::OutOfRange { .. })
}

/// Whether the journal in `dir` has a segment file now (to tell, before an
/// open creates one, whether known bug 2 applies).
pub fn has_segments(dir: &Path) -> bool {
    mini_engine::journal::list_segments(dir).is_ok_and(|s| !s.is_empty())
}

/// Known bug 3: `error` is the one an unlocked read gives at the torn tail
/// of a journal whose `verify` found one (`torn_tail_bytes`) and no damage.
pub fn torn_tail_fails_unlocked_read(torn_tail_bytes: u64, error: &JournalError) -> bool {
    !strict() && torn_tail_bytes > 0 && matches!(error, JournalError::Corrupt(_))
}

/// `verify`'s torn tail of the journal in `dir` (0 if there is none, or
/// damage, or no journal).
pub fn torn_tail_bytes(dir: &Path) -> u64 {
    mini_engine::verify::verify(dir, &mut |_, _| {})
        .ok()
        .filter(|r| r.damage.is_none())
        .map_or(0, |r| r.torn_tail_bytes)
}
