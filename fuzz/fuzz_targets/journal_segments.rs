//! A journal directory of several files (a container, see
//! `mini_fuzz::container`): segments named for their first seq, and
//! anything else. Missing and extra segments, headers that disagree with
//! names, batches across segment ends: see
//! `mini_fuzz::journal::check_journal` for what must hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mini_fuzz::{Scratch, container, journal::check_journal, write_file};

fuzz_target!(|data: &[u8]| {
    let (_, parts) = container::split(data);
    let scratch = Scratch::new();
    let dir = scratch.path().join("journal");
    std::fs::create_dir_all(&dir).expect("creating the journal directory");
    for part in &parts {
        // The lock file is the engine's: a file of the input may not take
        // its name.
        if let Some(name) = container::file_name(part.name)
            && name != "LOCK"
        {
            write_file(&dir.join(name), part.bytes);
        }
    }
    check_journal(&dir);
});
