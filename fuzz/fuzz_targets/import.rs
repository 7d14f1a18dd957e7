//! An upstream ministore journal (a container of files, see
//! `mini_fuzz::container`: `journal.jsonl` and rotated `journal.jsonl.001`,
//! `.000001`, …) imported into a fresh journal. Either every record comes
//! over, in order (the same records a simple reading of the files finds),
//! or nothing does.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mini_engine::import::{import_ministore, ministore_files};
use mini_engine::record::check_record;
use mini_engine::{Journal, JournalOptions};
use mini_fuzz::journal::read_all;
use mini_fuzz::{Scratch, container, write_file};

/// Small, so that the fuzzer reaches the size limit and the line cap.
const MAX_RECORD: usize = 2048;

fn options() -> JournalOptions {
    JournalOptions {
        max_record_size: MAX_RECORD,
        segment_size: 4096,
        preallocate: 4096,
        ..JournalOptions::default()
    }
}

/// The longest line the importer reads (a longer one fails the import,
/// whatever it holds): the record limit twice, and 1 KiB.
const LINE_CAP: usize = 2 * MAX_RECORD + 1024;

/// What an import of `base` must append, by a reading of the files much
/// simpler than the importer's: `None` if some line must fail it.
fn expected_records(base: &Path) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for path in ministore_files(base).ok()? {
        let bytes = std::fs::read(&path).ok()?;
        let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
        if bytes.ends_with(b"\n") {
            lines.pop();
        }
        if lines.iter().any(|l| l.len() > LINE_CAP) {
            return None;
        }
        let (header, records) = lines.split_first()?;
        if !std::str::from_utf8(header)
            .ok()?
            .starts_with("// MINISTORE JOURNAL v")
        {
            return None;
        }
        for line in records {
            let record = std::str::from_utf8(line).ok()?.trim();
            if record.is_empty() {
                continue;
            }
            out.push(check_record(record, MAX_RECORD).ok()?.into_owned());
        }
    }
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let (_, parts) = container::split(data);
    let scratch = Scratch::new();
    let upstream = scratch.path().join("upstream");
    std::fs::create_dir_all(&upstream).expect("creating the upstream directory");
    for part in &parts {
        if let Some(name) = container::file_name(part.name) {
            write_file(&upstream.join(name), part.bytes);
        }
    }
    let base = upstream.join("journal.jsonl");
    let expected = expected_records(&base);
    let into = scratch.path().join("imported");
    let journal = Journal::open_with(&into, options()).expect("opening a fresh journal");
    let imported = import_ministore(&base, &journal);
    let reader = journal.read_from(0).expect("reading the imported journal");
    let (entries, error) = read_all(reader);
    assert!(error.is_none(), "reading the imported journal: {error:?}");
    let records: Vec<String> = entries.into_iter().map(|e| e.data).collect();
    match imported {
        Ok(n) => {
            assert_eq!(
                n,
                records.len() as u64,
                "records imported vs in the journal"
            );
            assert_eq!(
                Some(&records),
                expected.as_ref(),
                "the import appended other records than the files hold"
            );
        }
        Err(e) => {
            assert!(
                records.is_empty(),
                "a failed import ({e}) appended {} records",
                records.len()
            );
            assert!(
                expected.is_none() || ministore_files(&base).is_err(),
                "the import failed ({e}) on files whose every line is a record"
            );
        }
    }
    drop(journal);
    let reopened = Journal::open_with(&into, options()).expect("reopening the imported journal");
    assert_eq!(
        reopened.recovery().records,
        records.len() as u64,
        "records after a reopen"
    );
});
