//! [`Journal<T>`] and [`RawJournal`]: durable, append-only journals of JSON
//! records, over the WIT resource `mini:storage/store.journal`.

mod block;
mod raw;
mod typed;

pub use block::BLOCK_BYTES;
pub(crate) use block::Blocks;

pub use raw::{RawJournal, RawRecords};
pub use typed::{Journal, Records};

/// How many records a read fetches from the host per call (at most
/// [`BLOCK_BYTES`] of them), unless changed with [`Records::chunk_size`] /
/// [`RawRecords::chunk_size`].
pub const DEFAULT_CHUNK: u32 = 4096;
