//! How group commit scales with the number of concurrent appenders:
//! `cargo run --release -p mini-benches --example scaling`.

use std::time::Instant;

use mini_benches::append_concurrently;
use mini_engine::Journal;

fn main() {
    let root =
        tempfile::tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")).expect("dir");
    for threads in [1u64, 2, 4, 8, 16, 32, 64] {
        let dir = root.path().join(format!("t{threads}"));
        let journal = Journal::open(&dir).expect("open");
        let per_thread = 4000 / threads;
        let start = Instant::now();
        let appends = append_concurrently(&journal, threads, per_thread);
        let rate = appends as f64 / start.elapsed().as_secs_f64();
        println!("{threads:>3} appenders: {rate:>8.0} appends/s");
    }
}
