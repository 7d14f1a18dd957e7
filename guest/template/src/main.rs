//! A minimal mini component: `my-component NOTE` keeps NOTE in the durable
//! journal `notes` and prints every note kept so far.
//!
//! Build it with `cargo build --release` (the target, wasm32-wasip2, is set
//! in `.cargo/config.toml`) and run it with
//! `mini run target/wasm32-wasip2/release/my-component.wasm -- hello`.

use mini_guest::{Error, Journal};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Note {
    text: String,
}

fn main() -> Result<(), Error> {
    let notes = Journal::<Note>::open("notes")?; // created on first use
    if let Some(text) = std::env::args().nth(1) {
        let seq = notes.append(&Note { text })?; // durable when it returns
        println!("kept as note {seq}");
    }
    for note in notes.replay()? {
        let (seq, note) = note?;
        println!("{seq}: {}", note.text);
    }
    Ok(())
}
