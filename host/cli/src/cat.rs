//! `mini cat`: prints a journal's records as JSON lines.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

/// How often `--follow` looks for new records.
const FOLLOW_PAUSE: Duration = Duration::from_millis(200);

/// Print a journal's records, one JSON line each: `{"seq":N,"data":<record>}`.
///
/// Streams (never holds the log in memory) and takes no lock, so it works
/// while a component writes the journal; it stops at the last complete
/// record or batch. Pipe it to `jq`, e.g. `mini cat DIR | jq .data`.
#[derive(Debug, Args)]
pub struct CatArgs {
    /// The journal directory (or use --namespace and --journal).
    #[arg(conflicts_with = "journal")]
    dir: Option<PathBuf>,
    /// The data directory (with --namespace and --journal).
    #[arg(long, default_value_os_t = crate::default_data_dir())]
    data: PathBuf,
    /// The namespace (with --journal).
    #[arg(long, requires = "journal")]
    namespace: Option<String>,
    /// The journal's name (with --namespace).
    #[arg(long, requires = "namespace")]
    journal: Option<String>,
    /// The first sequence number to print (0: the first stored).
    #[arg(long, default_value_t = 0, value_name = "SEQ")]
    from: u64,
    /// Keep printing records as they are appended (until interrupted).
    #[arg(long, short)]
    follow: bool,
}

fn journal_dir(args: &CatArgs) -> Result<PathBuf> {
    match (&args.dir, &args.namespace, &args.journal) {
        (Some(dir), _, _) => Ok(dir.clone()),
        (None, Some(ns), Some(journal)) => {
            for name in [ns, journal] {
                mini_engine::name::validate_name(name)
                    .with_context(|| format!("invalid name {name:?}"))?;
            }
            Ok(args.data.join(ns).join("journal").join(journal))
        }
        _ => bail!("give a journal directory, or --namespace and --journal"),
    }
}

/// `mini cat`.
pub fn cat(args: CatArgs) -> Result<ExitCode> {
    let dir = journal_dir(&args)?;
    if !dir.is_dir() {
        bail!("{} is not a journal directory", dir.display());
    }
    let mut reader = mini_engine::read_unlocked(&dir, args.from)
        .with_context(|| format!("cannot read {}", dir.display()))?;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    loop {
        // One record at a time: the records before a damaged line are
        // printed before the error.
        match reader.next() {
            Some(Ok(entry)) => {
                // `data` is one JSON value without a raw newline: it goes in as is.
                let line = writeln!(out, "{{\"seq\":{},\"data\":{}}}", entry.seq, entry.data);
                if let Err(e) = line {
                    return closed_or(e);
                }
            }
            Some(Err(e)) => {
                // What was read before the damage still goes out.
                let _ = out.flush();
                return Err(e).with_context(|| format!("cannot read {}", dir.display()));
            }
            None => {
                if let Err(e) = out.flush() {
                    return closed_or(e);
                }
                if !args.follow {
                    return Ok(ExitCode::SUCCESS);
                }
                std::thread::sleep(FOLLOW_PAUSE);
            }
        }
    }
}

/// A reader that went away (`mini cat | head`) is a normal end.
fn closed_or(e: io::Error) -> Result<ExitCode> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(e).context("cannot write to stdout")
    }
}
