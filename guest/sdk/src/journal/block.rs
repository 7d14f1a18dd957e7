//! Reading a cursor a block at a time: one string and one list of ends per
//! call to the host (`cursor.next-block`), the records handed out as slices
//! of the string, so a replay copies each record once (into the block) and
//! allocates nothing per record.

use crate::bindings::mini::storage::store as wit;
use crate::bindings::mini::storage::types::EntryBlock;
use crate::{Error, Resource};

/// How many bytes of records a read asks the host for per call.
pub const BLOCK_BYTES: u32 = 1024 * 1024;

/// The records of the last block fetched, and how far they were read.
pub(crate) struct Blocks {
    block: EntryBlock,
    /// The next record's index in the block.
    at: usize,
    done: bool,
}

impl Blocks {
    pub fn new() -> Self {
        Blocks {
            block: EntryBlock {
                first_seq: 0,
                data: String::new(),
                ends: Vec::new(),
            },
            at: 0,
            done: false,
        }
    }

    /// Records fetched and not handed out yet.
    pub fn buffered(&self) -> usize {
        self.block.ends.len() - self.at
    }

    /// The next record, fetching a block of at most `max` records from
    /// `cursor` when the last one is read; `None` at the durable end (and
    /// after an error, which is returned once).
    pub fn next<'a>(
        &'a mut self,
        cursor: &wit::Cursor,
        max: u32,
        resource: Resource,
    ) -> Option<Result<(u64, &'a str), Error>> {
        if self.at >= self.block.ends.len() {
            if self.done {
                return None;
            }
            match cursor.next_block(max, BLOCK_BYTES) {
                Ok(block) if block.ends.is_empty() => {
                    self.done = true;
                    return None;
                }
                Ok(block) => {
                    self.block = block;
                    self.at = 0;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(Error::from_host(resource, e)));
                }
            }
        }
        let i = self.at;
        self.at += 1;
        let start = i.checked_sub(1).map_or(0, |p| self.block.ends[p] as usize);
        let end = self.block.ends[i] as usize;
        let seq = self.block.first_seq + i as u64;
        match self.block.data.get(start..end) {
            Some(data) => Some(Ok((seq, data))),
            None => {
                self.done = true;
                self.at = self.block.ends.len();
                Some(Err(Error::Corrupt {
                    resource,
                    reason: format!("the host returned a block whose record {seq} is not in it"),
                }))
            }
        }
    }
}
