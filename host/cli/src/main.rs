//! `mini`: run WebAssembly components with durable storage, and inspect,
//! verify and repair the data they wrote.
//!
//! ```text
//! mini run counter.wasm -- 5          # run a component with its storage
//! mini up deploy/                    # run the modules of Arcella deployment specs
//! mini cat counter counter | jq .data  # NAMESPACE NAME in ./mini-data (--data DIR)
//! mini cat mini-data/counter/journal/counter   # or a path
//! mini state app cart | jq -s          # newest valid snapshot + journal tail
//! mini cat app cart --kind state --after-snapshot
//! mini cat mini-data/app/state/cart/snapshots
//! mini queue stats app jobs            # ready, leased, delayed, dead, bytes
//! mini queue dead app jobs | jq .payload
//! mini kv get app prefs theme          # {"key":"theme","text":"dark","version":7}
//! mini kv dump app prefs | jq -r .key  # every entry of a key-value bucket
//! mini verify                         # all of ./mini-data: every crc and seq
//! mini verify --json | jq .damaged
//! mini repair counter counter --yes
//! mini modules                       # namespaces, their module versions and units
//! mini import-ministore old/app.journal mini-data/app/journal/events
//! mini test crash bank.wasm --check check -- transfer alice bob 10
//! mini completions bash > ~/.local/share/bash-completion/completions/mini
//! ```
//!
//! Exit codes (see [`exit`]): 0 ok, 1 damage found or a check failed, 2 a
//! usage error, 3 could not run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod address;
mod backend;
mod cat;
mod check;
mod copy;
mod exit;
mod import;
mod instance;
mod kv;
mod layout;
mod modules;
mod out;
mod queue;
mod run;
mod state;
mod test;
mod time;
mod up;

/// Durable storage for WebAssembly components.
///
/// Exit codes: 0 ok (a dry run included), 1 damage found or a check
/// failed, 2 a usage error, 3 could not run (an I/O error, a lock, a
/// missing path).
#[derive(Debug, Parser)]
#[command(name = "mini", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Run(run::RunArgs),
    Up(up::UpArgs),
    Cat(cat::CatArgs),
    State(state::StateArgs),
    Queue(queue::QueueArgs),
    Kv(kv::KvArgs),
    Verify(check::VerifyArgs),
    Repair(check::RepairArgs),
    Modules(modules::ModulesArgs),
    ImportMinistore(import::ImportArgs),
    Copy(copy::CopyArgs),
    Test(test::TestArgs),
    Completions(CompletionsArgs),
}

/// Print a completion script for SHELL to stdout, e.g.
/// `mini completions bash > ~/.local/share/bash-completion/completions/mini`.
#[derive(Debug, clap::Args)]
struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// `mini completions`.
fn completions(args: &CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "mini", &mut out);
    let text = String::from_utf8(out)?;
    out::print_lines(text.lines().map(|l| Ok(l.to_owned())))
}

/// Where journals live when no directory is given: `./mini-data`.
pub(crate) fn default_data_dir() -> PathBuf {
    PathBuf::from("mini-data")
}

/// Logs what an operator must know (a torn tail cut, a damaged snapshot
/// passed over, a failed automatic checkpoint, a guest call refused by a
/// limit) to stderr: warnings unless `RUST_LOG` says otherwise. The
/// inspecting commands report what they find in their own words, so there
/// the engine's own warnings are left out by default. Colours only on a
/// terminal.
fn init_logging(command: &Command) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let default = match command {
        Command::Run(_) | Command::Up(_) => "warn",
        // The faults `mini test` injects would each be a warning.
        Command::Test(_) => "error",
        _ => "warn,mini_engine=error",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.command);
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Up(args) => up::up(args),
        Command::Cat(args) => cat::cat(args),
        Command::State(args) => state::state(args),
        Command::Queue(args) => queue::queue(args),
        Command::Kv(args) => kv::kv(args),
        Command::Verify(args) => check::verify(args),
        Command::Repair(args) => check::repair(args),
        Command::Modules(args) => modules::modules(args),
        Command::ImportMinistore(args) => import::import(args),
        Command::Copy(args) => copy::copy(args),
        Command::Test(args) => test::test(args),
        Command::Completions(args) => completions(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mini: {e:#}");
            ExitCode::from(exit::code_of(&e))
        }
    }
}
