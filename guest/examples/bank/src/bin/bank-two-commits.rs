//! The buggy bank: commits a transfer as two separate commits, the debit and
//! then the credit, so a crash after the debit is durable and before the
//! credit is loses the money (`check` then says `invariant broken: total is
//! 190, expected 200` after a transfer of 10). For crash tests: the harness
//! must find that crash point.
//!
//! ```text
//! bank-two-commits transfer FROM TO AMOUNT | check | balances
//! ```
//!
//! The commands, the state and the output are described in the `bank`
//! library (`src/lib.rs`); `bank` is the same bank with the transfer
//! committed as one atomic batch.

use std::process::ExitCode;

fn main() -> ExitCode {
    bank::main("bank-two-commits", bank::Commits::TwoCommits)
}
