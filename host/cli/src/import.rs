//! `mini import-ministore`: copies a journal written by the original
//! `ministore` crate into a mini journal.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use mini_engine::Journal;

/// Import a journal written by the original ministore crate.
///
/// Reads the active file (first line `// MINISTORE JOURNAL v…`) and its
/// rotated segments (`.001`, `.000001`, …) oldest first, and appends every
/// record to the mini journal in JOURNAL_DIR (created if missing), in atomic
/// batches.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The ministore journal's base path (its active file).
    ministore_base_path: PathBuf,
    /// The mini journal directory to append to, e.g.
    /// `mini-data/<namespace>/journal/<name>`.
    journal_dir: PathBuf,
}

/// `mini import-ministore`.
pub fn import(args: ImportArgs) -> Result<ExitCode> {
    let journal = Journal::open(&args.journal_dir)
        .with_context(|| format!("cannot open journal {}", args.journal_dir.display()))?;
    let before = journal.last_seq();
    let imported = mini_engine::import::import_ministore(&args.ministore_base_path, &journal)
        .with_context(|| {
            format!(
                "cannot import {} into {}",
                args.ministore_base_path.display(),
                args.journal_dir.display()
            )
        })?;
    if imported == 0 {
        println!(
            "imported 0 records from {} into {}",
            args.ministore_base_path.display(),
            args.journal_dir.display()
        );
    } else {
        println!(
            "imported {imported} records from {} into {} (seq {}..={})",
            args.ministore_base_path.display(),
            args.journal_dir.display(),
            before + 1,
            journal.last_seq()
        );
    }
    Ok(ExitCode::SUCCESS)
}
