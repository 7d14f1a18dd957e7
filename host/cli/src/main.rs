//! `mini`: run WebAssembly components with durable storage, and inspect,
//! verify and repair the data they wrote.
//!
//! ```text
//! mini run counter.wasm -- 5          # run a component with its storage
//! mini up deploy/                    # run the modules of Arcella deployment specs
//! mini cat mini-data/counter/journal/counter | jq .data
//! mini state app cart | jq -s          # newest valid snapshot + journal tail
//! mini cat mini-data/app/state/cart --after-snapshot
//! mini cat mini-data/app/state/cart/snapshots
//! mini queue stats app jobs            # ready, leased, delayed, dead, bytes
//! mini queue dead app jobs | jq .payload
//! mini verify mini-data               # journals, states, snapshots: every crc and seq
//! mini repair mini-data/counter/journal/counter --yes
//! mini modules                       # namespaces, their module versions and units
//! mini import-ministore old/app.journal mini-data/app/journal/events
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cat;
mod check;
mod import;
mod instance;
mod layout;
mod modules;
mod queue;
mod run;
mod state;
mod up;

/// Durable storage for WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "mini", version, about, long_about = None)]
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
    Verify(check::VerifyArgs),
    Repair(check::RepairArgs),
    Modules(modules::ModulesArgs),
    ImportMinistore(import::ImportArgs),
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
        Command::Verify(args) => check::verify(args),
        Command::Repair(args) => check::repair(args),
        Command::Modules(args) => modules::modules(args),
        Command::ImportMinistore(args) => import::import(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mini: {e:#}");
            ExitCode::FAILURE
        }
    }
}
