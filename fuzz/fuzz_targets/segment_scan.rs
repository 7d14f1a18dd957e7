//! One segment file, as the bytes of the input: the scanner (open's
//! recovery, `verify`, `plan_repair`, `repair`), the locked reader and the
//! unlocked one (`read_unlocked`) must agree on it; see
//! `mini_fuzz::journal::check_journal`.
//!
//! The file is named for the `first_seq` its header gives (or 1), so that
//! most inputs get past the name check and into the records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mini_engine::segment::{parse_header, segment_file_name};
use mini_fuzz::{Scratch, journal::check_journal, write_file};

fuzz_target!(|data: &[u8]| {
    let header = data.split(|&b| b == b'\n').next().unwrap_or_default();
    let first_seq = parse_header(header).unwrap_or(1);
    let scratch = Scratch::new();
    let dir = scratch.path().join("journal");
    write_file(&dir.join(segment_file_name(first_seq)), data);
    check_journal(&dir);
});
