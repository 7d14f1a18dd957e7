//! A queue directory whose records are crc-valid by construction (see
//! `mini_fuzz::queue` for the input), so that the input reaches the
//! queue's fold: push, lease, ack, nack, extend, dead, requeue and purge
//! records in any order, against any snapshot. Then the queue is used and
//! reopened; see `mini_fuzz::queue::check_queue`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mini_fuzz::{Scratch, container, queue};

fuzz_target!(|data: &[u8]| {
    let (preamble, parts) = container::split(data);
    let scratch = Scratch::new();
    let dir = scratch.path().join("queue");
    let now = queue::write_queue_dir(&dir, preamble, &parts);
    queue::check_queue(&dir, now);
});
