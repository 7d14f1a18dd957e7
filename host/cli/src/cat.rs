//! `mini cat`: prints a journal's records, or snapshots, as JSON lines.

use std::ffi::OsString;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{ArgGroup, Args};
use mini_engine::Entry;
use mini_engine::layout::UnitKind;
use mini_engine::snapshot::{list_unlocked, read_file};
use mini_engine::state::JOURNAL_DIR;

use crate::address::{self, Address, Kind};
use crate::exit::{damage, usage};
use crate::layout::{self, Target};
use crate::out::{self, RecordLine, SnapshotLine, closed_or};
use crate::state::Tail;

/// How often `--follow` looks for new records.
const FOLLOW_PAUSE: Duration = Duration::from_millis(200);

/// Print a journal's records, one JSON line each: `{"seq":N,"data":<record>}`.
///
/// What to print is PATH, or NAMESPACE NAME in the data directory --data DIR
/// (with --kind when the namespace has units of several kinds so named).
/// PATH is a journal directory, a state, queue or bucket directory (its
/// journal is printed; with --after-snapshot only the records after its
/// newest valid snapshot), a snapshot directory or a snapshot file (each
/// valid snapshot is printed as `{"seq":N,"state":<state>}`, ascending; a
/// damaged one is an error that names the file, after the others are
/// printed). What PATH is comes from where it lies under its data root
/// (`.mini`), not from names.
///
/// Streams (never holds the log in memory) and takes no lock, so it works
/// while a component writes the journal; it stops at the last complete
/// record or batch. Pipe it to `jq`, e.g. `mini cat DIR | jq .data`. Exits
/// with 1 on damage, 2 on a wrong argument, 3 when it cannot read.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").args(["journal", "state", "snapshot"])))]
pub struct CatArgs {
    /// PATH (a journal, state, queue, bucket or snapshot directory, or a
    /// snapshot file), or NAMESPACE NAME (with --data).
    #[arg(value_name = "PATH | NAMESPACE NAME", conflicts_with_all = ["namespace", "which"])]
    target: Vec<OsString>,
    /// The data directory (with NAMESPACE NAME).
    #[arg(long, default_value_os_t = crate::default_data_dir())]
    data: PathBuf,
    /// With NAMESPACE NAME: the kind of unit NAME is (needed only when the
    /// namespace has units of several kinds so named).
    #[arg(long, value_enum)]
    kind: Option<Kind>,
    /// The old spelling of NAMESPACE (with --journal, --state or --snapshot).
    #[arg(long, requires = "which", hide = true)]
    namespace: Option<String>,
    /// The old spelling of NAME with --kind journal.
    #[arg(long, requires = "namespace", hide = true)]
    journal: Option<String>,
    /// The old spelling of NAME with --kind state.
    #[arg(long, requires = "namespace", hide = true)]
    state: Option<String>,
    /// The old spelling of NAME with --kind snapshot.
    #[arg(long, requires = "namespace", hide = true)]
    snapshot: Option<String>,
    /// The first sequence number to print (0: the first stored).
    #[arg(long, default_value_t = 0, value_name = "SEQ")]
    from: u64,
    /// For a state: print only the records after its newest valid snapshot
    /// (what recovery replays; damaged snapshots are skipped with a warning).
    #[arg(long, conflicts_with = "from")]
    after_snapshot: bool,
    /// Keep printing records as they are appended (until interrupted).
    #[arg(long, short)]
    follow: bool,
}

/// What `mini cat` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Print {
    /// A journal's records.
    Journal,
    /// A state's (or queue's, or bucket's) journal, or its records after
    /// its snapshot.
    State,
    /// The snapshots of a directory.
    Snapshots,
    /// One snapshot file.
    SnapshotFile,
}

/// The path to print.
fn target(args: &CatArgs) -> Result<PathBuf> {
    if let Some(ns) = &args.namespace {
        let (kind, name) = match (&args.journal, &args.state, &args.snapshot) {
            (Some(name), _, _) => (UnitKind::Journal, name),
            (_, Some(name), _) => (UnitKind::State, name),
            (_, _, Some(name)) => (UnitKind::Snapshots, name),
            _ => usage!("give --journal, --state or --snapshot with --namespace"),
        };
        return address::named_unit(&args.data, ns, Some(kind), name);
    }
    match address::resolve(&args.target, &args.data, args.kind.map(UnitKind::from))? {
        Address::Path(path) | Address::Named(path) => Ok(path),
        Address::Data(_) => usage!("give NAMESPACE NAME (with --data DIR), or PATH"),
    }
}

/// What the path `path` is, asked of the layout.
fn what_to_print(path: &Path) -> Result<Print> {
    let not_one = "is not a journal directory (nor a state, queue, bucket or snapshot directory, \
                   nor a snapshot file)";
    Ok(match layout::resolve(path).target {
        Target::Unit(UnitKind::Journal) | Target::UnitJournal => Print::Journal,
        Target::Unit(UnitKind::State | UnitKind::Queue | UnitKind::Bucket) => Print::State,
        Target::Unit(UnitKind::Snapshots) | Target::UnitSnapshots => Print::Snapshots,
        Target::SnapshotFile => Print::SnapshotFile,
        Target::SegmentFile => usage!(
            "{} is a journal segment: give its directory (the journal)",
            path.display()
        ),
        Target::Units(..) => usage!(
            "{} {not_one}: it holds them (see `mini verify` or `mini modules`)",
            path.display()
        ),
        Target::Foreign(why) => usage!("{} {not_one}: {why}", path.display()),
        Target::Missing => bail!("{} {not_one}: it does not exist", path.display()),
        Target::NoRoot => usage!(
            "{} {not_one}: {}",
            path.display(),
            layout::no_root_reason(path)
        ),
    })
}

/// `mini cat`.
pub fn cat(args: CatArgs) -> Result<ExitCode> {
    let path = target(&args)?;
    let print = what_to_print(&path)?;
    if args.after_snapshot && print != Print::State {
        usage!(
            "--after-snapshot needs a state directory (journal/ and snapshots/); {} is not one",
            path.display()
        );
    }
    match print {
        Print::Journal => cat_journal(&path, args.from, args.follow),
        Print::State => {
            crate::state::check_state_dir(&path)?;
            if args.after_snapshot {
                cat_after_snapshot(&path, args.follow)
            } else {
                cat_journal(&path.join(JOURNAL_DIR), args.from, args.follow)
            }
        }
        Print::Snapshots | Print::SnapshotFile => {
            if args.follow || args.from != 0 {
                usage!(
                    "--follow and --from are for journals; {} holds snapshots",
                    path.display()
                );
            }
            if print == Print::Snapshots {
                cat_snapshot_dir(&path)
            } else {
                cat_snapshot_file(&path)
            }
        }
    }
}

/// Prints the journal in `dir` from `from` (0: the first stored record).
fn cat_journal(dir: &Path, from: u64, follow: bool) -> Result<ExitCode> {
    let mut reader = mini_engine::read_unlocked(dir, from)
        .with_context(|| format!("cannot read {}", dir.display()))?;
    print_records(follow, || {
        reader
            .next()
            .transpose()
            .with_context(|| format!("cannot read {}", dir.display()))
    })
}

/// Prints the journal records of the state in `dir` after its newest valid
/// snapshot.
fn cat_after_snapshot(dir: &Path, follow: bool) -> Result<ExitCode> {
    let (point, mut tail) = Tail::open(dir)?;
    for warning in point.warnings() {
        eprintln!("mini: warning: {warning}");
    }
    print_records(follow, || tail.next_entry())
}

/// Prints records from `next` until its end (or, with `follow`, forever).
/// One record at a time: the records before a damaged line are printed
/// before the error.
fn print_records(
    follow: bool,
    mut next: impl FnMut() -> Result<Option<Entry>>,
) -> Result<ExitCode> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    loop {
        let entry = match next() {
            Ok(Some(entry)) => entry,
            Err(e) => {
                // What was read before the damage still goes out.
                let _ = out.flush();
                return Err(e);
            }
            Ok(None) => {
                if let Err(e) = out.flush() {
                    return closed_or(e);
                }
                if !follow {
                    return Ok(ExitCode::SUCCESS);
                }
                std::thread::sleep(FOLLOW_PAUSE);
                continue;
            }
        };
        let line = out::line(&RecordLine {
            seq: entry.seq,
            data: out::raw(&entry.data)?,
        })?;
        if let Err(e) = writeln!(out, "{line}") {
            return closed_or(e);
        }
    }
}

fn snapshot_line(seq: u64, state: &str) -> Result<String> {
    out::line(&SnapshotLine {
        seq,
        state: out::raw(state)?,
    })
}

/// Prints every valid snapshot in `dir`, ascending; damaged ones are
/// reported on stderr and make it fail at the end.
fn cat_snapshot_dir(dir: &Path) -> Result<ExitCode> {
    let listing = list_unlocked(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut damaged = 0;
    for (_, path) in listing.files {
        match read_file(&path) {
            Ok((seq, state)) => {
                if let Err(e) = writeln!(out, "{}", snapshot_line(seq, &state)?) {
                    return closed_or(e);
                }
            }
            Err(damage) => {
                damaged += 1;
                let _ = out.flush();
                eprintln!("mini: damaged snapshot {}: {damage}", path.display());
            }
        }
    }
    if let Err(e) = out.flush() {
        return closed_or(e);
    }
    if damaged > 0 {
        return Err(damage(format!(
            "{damaged} damaged snapshot(s) in {}",
            dir.display()
        )));
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the snapshot in the file `path`, or fails naming its damage.
fn cat_snapshot_file(path: &Path) -> Result<ExitCode> {
    let (seq, state) = read_file(path)
        .map_err(|why| damage(format!("damaged snapshot {}: {why}", path.display())))?;
    out::print_lines([snapshot_line(seq, &state)])
}
