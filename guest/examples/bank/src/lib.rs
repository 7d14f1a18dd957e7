//! A bank with two accounts on the guest `StateManager`, for crash tests:
//! the code of the `bank` and `bank-two-commits` components, which differ
//! only in how a transfer is committed ([`Commits`]).
//!
//! ```text
//! bank transfer FROM TO AMOUNT | check | balances
//! bank-two-commits transfer FROM TO AMOUNT | check | balances
//! ```
//!
//! The accounts are the state `accounts`: `alice` and `bob` hold 100 each
//! before anything is committed (the state's initial value), and the state
//! is the fold of the mutations `{"debit":{"account":"alice","amount":10}}`
//! and `{"credit":{"account":"bob","amount":10}}`. No checkpoints are made.
//!
//! - `transfer FROM TO AMOUNT` recovers the state; if `FROM` or `TO` is not
//!   an account it says so on stderr and exits with status 2, if `FROM`
//!   holds less than `AMOUNT` (a positive integer) it prints `insufficient
//!   funds` and exits with status 1 (nothing is committed either way).
//!   Otherwise it commits the debit of `FROM` and the credit of `TO` —
//!   `bank`: as one atomic `commit-batch`; `bank-two-commits`: as two
//!   `commit` calls, debit first (a crash between them loses the money) —
//!   and prints `transferred AMOUNT from FROM to TO`.
//! - `check` recovers the state and prints the balances
//!   (`{"alice":N,"bob":M}`), then the invariant: `ok: total is 200` (exit
//!   status 0) when the balances add up to 200 and none is negative;
//!   otherwise `invariant broken: total is N, expected 200` and/or
//!   `invariant broken: ACCOUNT is N, below 0` (exit status 1).
//! - `balances` recovers the state and prints `{"alice":N,"bob":M}`.
//!
//! Storage errors are printed on stderr (`bank: …`) with exit status 1;
//! usage errors exit with status 2 (under `mini run`, WASI 0.2 reports every
//! failure as exit status 1).

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use mini_guest::{Mutator, StateManager};
use serde::{Deserialize, Serialize};

/// The name of the state holding the accounts.
pub const STATE: &str = "accounts";

/// What every balance adds up to.
pub const TOTAL: i128 = 200;

/// How a transfer is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commits {
    /// The debit and the credit in one atomic `commit-batch` (`bank`).
    OneBatch,
    /// The debit, then the credit, as two `commit` calls
    /// (`bank-two-commits`: a crash between them loses the money).
    TwoCommits,
}

/// The state: each account's balance, by name (serialized as
/// `{"alice":N,"bob":M}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Accounts(pub BTreeMap<String, i64>);

impl Default for Accounts {
    /// The state before anything is committed: `alice` and `bob`, 100 each.
    fn default() -> Self {
        Accounts(BTreeMap::from([
            ("alice".to_owned(), 100),
            ("bob".to_owned(), 100),
        ]))
    }
}

/// A mutation of [`Accounts`]: `{"debit":{"account":"alice","amount":10}}`
/// or `{"credit":{"account":"bob","amount":10}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mutation {
    /// Takes `amount` from `account`.
    Debit {
        /// The account.
        account: String,
        /// How much.
        amount: u64,
    },
    /// Adds `amount` to `account`.
    Credit {
        /// The account.
        account: String,
        /// How much.
        amount: u64,
    },
}

impl Mutator<Accounts> for Mutation {
    fn apply(&self, state: &mut Accounts) {
        // `transfer` only commits mutations of existing accounts; an unknown
        // one (stored by some other program) starts at 0.
        match self {
            Mutation::Debit { account, amount } => {
                let balance = state.0.entry(account.clone()).or_insert(0);
                *balance = balance.saturating_sub_unsigned(*amount);
            }
            Mutation::Credit { account, amount } => {
                let balance = state.0.entry(account.clone()).or_insert(0);
                *balance = balance.saturating_add_unsigned(*amount);
            }
        }
    }
}

/// A command line.
enum Command {
    Transfer {
        from: String,
        to: String,
        amount: u64,
    },
    Check,
    Balances,
}

/// The end of a run that is not a storage error.
enum Outcome {
    /// Exit status 0.
    Ok,
    /// Exit status 1: insufficient funds, or the invariant is broken (the
    /// reason is on stdout).
    Failed,
    /// Exit status 2: an account that does not exist (the message is on
    /// stderr).
    NoAccount,
}

fn usage(program: &str) -> String {
    format!("usage: {program} transfer FROM TO AMOUNT | check | balances")
}

fn parse_args(argv: &[String]) -> Result<Command> {
    match argv {
        [cmd, from, to, amount] if cmd == "transfer" => {
            let amount = amount
                .parse::<u64>()
                .ok()
                .filter(|&a| a >= 1)
                .with_context(|| format!("AMOUNT {amount:?} is not a positive integer"))?;
            Ok(Command::Transfer {
                from: from.clone(),
                to: to.clone(),
                amount,
            })
        }
        [cmd] if cmd == "check" => Ok(Command::Check),
        [cmd] if cmd == "balances" => Ok(Command::Balances),
        [] => bail!("missing command"),
        [cmd, ..] if matches!(cmd.as_str(), "transfer" | "check" | "balances") => {
            bail!("wrong number of arguments for {cmd:?}")
        }
        [cmd, ..] => bail!("unknown command {cmd:?}"),
    }
}

/// Runs the bank (`program` names it in messages) with the command line of
/// the process, committing transfers as `commits` says; returns the exit
/// status.
pub fn main(program: &str, commits: Commits) -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let command = match parse_args(&argv) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("{program}: {e:#}\n{}", usage(program));
            return ExitCode::from(2);
        }
    };
    match run(program, &command, commits) {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::FAILURE,
        Ok(Outcome::NoAccount) => ExitCode::from(2),
        Err(e) => {
            eprintln!("{program}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Opens (and so recovers) the state, printing recovery warnings on stderr.
fn open(program: &str) -> Result<StateManager<Accounts, Mutation>> {
    let bank = StateManager::<Accounts, Mutation>::open(STATE)
        .with_context(|| format!("cannot open the state {STATE:?}"))?;
    for warning in &bank.recovery().warnings {
        eprintln!("{program}: warning: {warning}");
    }
    Ok(bank)
}

fn run(program: &str, command: &Command, commits: Commits) -> Result<Outcome> {
    let mut bank = open(program)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let outcome = match command {
        Command::Transfer { from, to, amount } => {
            for account in [from, to] {
                if !bank.state().0.contains_key(account) {
                    eprintln!("{program}: no account {account:?}");
                    return Ok(Outcome::NoAccount);
                }
            }
            let balance = bank.state().0[from];
            if i128::from(balance) < i128::from(*amount) {
                writeln!(out, "insufficient funds")?;
                out.flush()?;
                return Ok(Outcome::Failed);
            }
            let debit = Mutation::Debit {
                account: from.clone(),
                amount: *amount,
            };
            let credit = Mutation::Credit {
                account: to.clone(),
                amount: *amount,
            };
            match commits {
                Commits::OneBatch => {
                    bank.apply_batch(vec![debit, credit])
                        .context("commit of the transfer failed")?;
                }
                Commits::TwoCommits => {
                    bank.apply(debit)
                        .with_context(|| format!("commit of the debit of {from:?} failed"))?;
                    bank.apply(credit)
                        .with_context(|| format!("commit of the credit of {to:?} failed"))?;
                }
            }
            writeln!(out, "transferred {amount} from {from} to {to}")?;
            Outcome::Ok
        }
        Command::Check => {
            let accounts = &bank.state().0;
            writeln!(out, "{}", serde_json::to_string(bank.state())?)?;
            let total: i128 = accounts.values().map(|&b| i128::from(b)).sum();
            let mut holds = true;
            if total != TOTAL {
                writeln!(out, "invariant broken: total is {total}, expected {TOTAL}")?;
                holds = false;
            }
            for (account, &balance) in accounts {
                if balance < 0 {
                    writeln!(out, "invariant broken: {account} is {balance}, below 0")?;
                    holds = false;
                }
            }
            if holds {
                writeln!(out, "ok: total is {total}")?;
                Outcome::Ok
            } else {
                Outcome::Failed
            }
        }
        Command::Balances => {
            writeln!(out, "{}", serde_json::to_string(bank.state())?)?;
            Outcome::Ok
        }
    };
    out.flush()?;
    Ok(outcome)
}
