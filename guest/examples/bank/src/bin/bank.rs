//! The bank that commits a transfer as one atomic `commit-batch`: a crash at
//! any storage call keeps the total at 200 (the correct one, for crash
//! tests).
//!
//! ```text
//! bank transfer FROM TO AMOUNT | check | balances
//! ```
//!
//! The commands, the state and the output are described in the `bank`
//! library (`src/lib.rs`); `bank-two-commits` is the same bank with the
//! transfer split into two commits.

use std::process::ExitCode;

fn main() -> ExitCode {
    bank::main("bank", bank::Commits::OneBatch)
}
