//! A state directory (a container of `journal/…` and `snapshots/…` files,
//! see `mini_fuzz::container`): the unlocked check and the open must agree
//! on whether and from where it recovers, and one that opens checkpoints
//! and reopens to the same state; see `mini_fuzz::state::check_state`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mini_engine::state::{JOURNAL_DIR, SNAPSHOT_DIR};
use mini_fuzz::{Scratch, container, state::check_state, write_file};

fuzz_target!(|data: &[u8]| {
    let (_, parts) = container::split(data);
    let scratch = Scratch::new();
    let dir = scratch.path().join("state");
    for sub in [JOURNAL_DIR, SNAPSHOT_DIR] {
        std::fs::create_dir_all(dir.join(sub)).expect("creating the state's directories");
    }
    for part in &parts {
        if let Some((sub, name)) = container::file_in(part.name, &[JOURNAL_DIR, SNAPSHOT_DIR])
            && name != "LOCK"
        {
            write_file(&dir.join(sub).join(name), part.bytes);
        }
    }
    check_state(&dir);
});
