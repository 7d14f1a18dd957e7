//! A durable module registry on the SDK's `StateManager`: installed modules
//! and the deployments that run them, in the style of Arcella's registry.
//!
//! ```text
//! registry [--checkpoint-every N] <command>
//!
//!   install NAME@VERSION [--description TEXT] [--hash HASH]
//!   deploy NAME@VERSION DEPLOYMENT
//!   undeploy DEPLOYMENT
//!   uninstall NAME@VERSION
//!   list
//!   bulk N [--batch B]
//!   checkpoint
//!   stats
//! ```
//!
//! The state (named `registry`) is the installed modules keyed
//! `NAME@VERSION`, each with an optional description and hash, and the
//! deployments (deployment name → `NAME@VERSION`). It changes only through
//! the mutations `InstallModule`, `DeployModule`, `Undeploy` and `Uninstall`,
//! each stored durably before it is applied. Every command checks its
//! request against the current state *before* committing anything, and
//! refuses (exit status 1, a message on stderr, nothing stored) when:
//!
//! - `install`: the module `NAME@VERSION` is already installed;
//! - `deploy`: the module is not installed;
//! - `undeploy`: there is no such deployment;
//! - `uninstall`: the module is not installed, **or a deployment still runs
//!   it** (undeploy it, or deploy another module under that name, first).
//!
//! Every command names a module as Arcella does, `NAME@VERSION`: the name
//! 1 to 128 characters from `A-Z a-z 0-9 _ -`, the version strict
//! `MAJOR.MINOR.PATCH` (no leading zeros, no pre-release or build suffix),
//! checked by `mini_manifest::ModuleId`. Deployment names are 1 to 128
//! characters from `A-Z a-z 0-9 . _ -`.
//!
//! Output (stdout), one line per fact:
//!
//! - `install`: `installed NAME@VERSION seq S`
//! - `deploy`: `deployed DEPLOYMENT NAME@VERSION seq S`
//! - `undeploy`: `undeployed DEPLOYMENT seq S`
//! - `uninstall`: `uninstalled NAME@VERSION seq S`
//! - `list`: `module NAME@VERSION` (then ` hash=HASH` and
//!   ` description="JSON string"` when set) per module, sorted; then
//!   `deployment DEPLOYMENT NAME@VERSION` per deployment, sorted; then
//!   `seq S` (the sequence number of the last mutation).
//! - `bulk N`: N mutations for load and tests. Mutation `i` (1-based) of the
//!   run is `Uninstall` of the module the previous one installed when `i` is
//!   a multiple of 4, else `InstallModule` of `bulk-<B+i>@1.0.0` where `B` is
//!   the sequence number before the run. So a run adds `N - 2*(N/4)`
//!   modules. Committed one by one, or `--batch B` at a time (one atomic
//!   batch each). Prints `bulk N seq S modules M`.
//! - `checkpoint`: `checkpoint seq S kept K1,K2 segments-deleted D`
//! - `stats`: `key value` lines: `seq`, `checkpoint-seq`,
//!   `records-since-checkpoint`, `journal-bytes`, `journal-first-seq` (the
//!   host's counters), `recovered-snapshot` (seq or `none`), `replayed`,
//!   `modules`, `deployments`.
//!
//! Automatic checkpoints: every 500 mutations by default;
//! `--checkpoint-every N` or the environment variable
//! `REGISTRY_CHECKPOINT_EVERY=N` changes it (the flag wins; 0 turns them
//! off). Recovery warnings (damaged snapshots passed over) go to stderr as
//! `registry: warning: …`.
//!
//! Exit status: 0 on success, 1 when a request is refused (stderr:
//! `registry: refused: …`) or storage fails, 2 for a usage error (stderr:
//! the message and the usage text). WASI 0.2's `exit` carries only success
//! or failure, so under `mini run` a usage error exits with 1 too.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use mini_guest::{CheckpointPolicy, Mutator, StateManager};
use mini_manifest::ModuleId;
use serde::{Deserialize, Serialize};

const USAGE: &str = "\
usage: registry [--checkpoint-every N] <command>
  install NAME@VERSION [--description TEXT] [--hash HASH]
  deploy NAME@VERSION DEPLOYMENT
  undeploy DEPLOYMENT
  uninstall NAME@VERSION
  list
  bulk N [--batch B]
  checkpoint
  stats";

/// The state's name.
const STATE: &str = "registry";
/// Mutations between automatic checkpoints, unless overridden.
const DEFAULT_CHECKPOINT_EVERY: u64 = 500;
/// The environment variable that overrides it.
const CHECKPOINT_ENV: &str = "REGISTRY_CHECKPOINT_EVERY";
/// The longest name, version or deployment name.
const MAX_NAME: usize = 128;

// ---------------------------------------------------------------------------
// State and mutations
// ---------------------------------------------------------------------------

/// An installed module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Module {
    name: String,
    version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hash: Option<String>,
}

/// The registry: installed modules by `name@version`, deployments by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Registry {
    modules: BTreeMap<String, Module>,
    /// Deployment name → `name@version`.
    deployments: BTreeMap<String, String>,
}

impl Registry {
    /// The deployments running `module`, sorted.
    fn deployments_of(&self, module: &str) -> Vec<&str> {
        self.deployments
            .iter()
            .filter(|(_, m)| *m == module)
            .map(|(d, _)| d.as_str())
            .collect()
    }
}

/// A change of the registry, stored as one JSON record (serde's externally
/// tagged form, e.g. `{"Uninstall":{"module":"a@1.0"}}`).
///
/// `apply` is total, so a replay never fails; the command line refuses
/// invalid requests before they are committed, and `apply` keeps the state
/// consistent even for a mutation it would have refused: a deployment of a
/// module that is not installed changes nothing, and uninstalling a module
/// also removes the deployments running it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Mutation {
    InstallModule {
        name: String,
        version: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hash: Option<String>,
    },
    DeployModule {
        module: String,
        deployment: String,
    },
    Undeploy {
        deployment: String,
    },
    Uninstall {
        module: String,
    },
}

impl Mutator<Registry> for Mutation {
    fn apply(&self, state: &mut Registry) {
        match self {
            Mutation::InstallModule {
                name,
                version,
                description,
                hash,
            } => {
                state.modules.insert(
                    module_key(name, version),
                    Module {
                        name: name.clone(),
                        version: version.clone(),
                        description: description.clone(),
                        hash: hash.clone(),
                    },
                );
            }
            Mutation::DeployModule { module, deployment } => {
                if state.modules.contains_key(module) {
                    state.deployments.insert(deployment.clone(), module.clone());
                }
            }
            Mutation::Undeploy { deployment } => {
                state.deployments.remove(deployment);
            }
            Mutation::Uninstall { module } => {
                state.modules.remove(module);
                state.deployments.retain(|_, m| m != module);
            }
        }
    }
}

fn module_key(name: &str, version: &str) -> String {
    format!("{name}@{version}")
}

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

#[derive(Debug)]
enum Command {
    Install {
        name: String,
        version: String,
        description: Option<String>,
        hash: Option<String>,
    },
    Deploy {
        module: String,
        deployment: String,
    },
    Undeploy {
        deployment: String,
    },
    Uninstall {
        module: String,
    },
    List,
    Bulk {
        count: u64,
        batch: u64,
    },
    Checkpoint,
    Stats,
}

struct Args {
    checkpoint_every: u64,
    command: Command,
}

/// A request refused before anything was committed.
#[derive(Debug)]
struct Refused(String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused: {}", self.0)
    }
}

impl std::error::Error for Refused {}

fn refuse<T>(message: String) -> Result<T> {
    Err(Refused(message).into())
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1).collect()) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("registry: {e:#}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("registry: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn parse_u64(what: &str, value: &str) -> Result<u64> {
    value
        .parse::<u64>()
        .with_context(|| format!("{what} {value:?} is not a non-negative integer"))
}

fn check_name(what: &str, value: &str, extra: &[char]) -> Result<()> {
    if value.is_empty() || value.len() > MAX_NAME {
        bail!("{what} {value:?} must be 1 to {MAX_NAME} characters");
    }
    if let Some(c) = value.chars().find(|&c| {
        !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') || extra.contains(&c))
    }) {
        bail!(
            "{what} {value:?} contains {c:?} (allowed: A-Z a-z 0-9 . _ -{})",
            extra.iter().map(|c| format!(" {c}")).collect::<String>()
        );
    }
    Ok(())
}

/// Checks `NAME@VERSION` (Arcella's module id) and returns it.
fn check_module(value: &str) -> Result<ModuleId> {
    value
        .parse::<ModuleId>()
        .with_context(|| format!("module {value:?}"))
}

fn parse_args(argv: Vec<String>) -> Result<Args> {
    let mut checkpoint_every = None;
    let mut description = None;
    let mut hash = None;
    let mut batch = None;
    let mut positional = Vec::new();
    let mut it = argv.into_iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| it.next().with_context(|| format!("{flag} needs a value"));
        match arg.as_str() {
            "--checkpoint-every" => {
                checkpoint_every = Some(parse_u64("--checkpoint-every", &value(&arg)?)?)
            }
            "--description" => description = Some(value(&arg)?),
            "--hash" => hash = Some(value(&arg)?),
            "--batch" => {
                let b = parse_u64("--batch", &value(&arg)?)?;
                if b == 0 {
                    bail!("--batch must be at least 1");
                }
                batch = Some(b);
            }
            "-h" | "--help" => bail!("help requested"),
            s if s.starts_with("--") => bail!("unknown flag {s:?}"),
            _ => positional.push(arg),
        }
    }
    let checkpoint_every = match checkpoint_every {
        Some(n) => n,
        None => match std::env::var(CHECKPOINT_ENV) {
            Ok(v) => parse_u64(CHECKPOINT_ENV, &v)?,
            Err(_) => DEFAULT_CHECKPOINT_EVERY,
        },
    };
    let Some((command, rest)) = positional.split_first() else {
        bail!("no command given");
    };
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let install_flags = description.is_some() || hash.is_some();
    if install_flags && command != "install" {
        bail!("--description and --hash go with install only");
    }
    if batch.is_some() && command != "bulk" {
        bail!("--batch goes with bulk only");
    }
    let command = match (command.as_str(), rest.as_slice()) {
        ("install", [module]) => {
            let module = check_module(module)?;
            if let Some(h) = &hash {
                check_name("hash", h, &[])?;
            }
            Command::Install {
                name: module.name().to_owned(),
                version: module.version().to_string(),
                description,
                hash,
            }
        }
        ("deploy", [module, deployment]) => {
            check_name("deployment name", deployment, &[])?;
            Command::Deploy {
                module: check_module(module)?.to_string(),
                deployment: deployment.to_string(),
            }
        }
        ("undeploy", [deployment]) => {
            check_name("deployment name", deployment, &[])?;
            Command::Undeploy {
                deployment: deployment.to_string(),
            }
        }
        ("uninstall", [module]) => Command::Uninstall {
            module: check_module(module)?.to_string(),
        },
        ("list", []) => Command::List,
        ("bulk", [count]) => Command::Bulk {
            count: parse_u64("count", count)?,
            batch: batch.unwrap_or(1),
        },
        ("checkpoint", []) => Command::Checkpoint,
        ("stats", []) => Command::Stats,
        (
            "install" | "deploy" | "undeploy" | "uninstall" | "list" | "bulk" | "checkpoint"
            | "stats",
            _,
        ) => bail!("wrong number of arguments for {command}"),
        _ => bail!("unknown command {command:?}"),
    };
    Ok(Args {
        checkpoint_every,
        command,
    })
}

// ---------------------------------------------------------------------------
// Running a command
// ---------------------------------------------------------------------------

type Manager = StateManager<Registry, Mutation>;

fn run(args: Args) -> Result<()> {
    let policy = CheckpointPolicy::every_records(args.checkpoint_every);
    let mut mgr = Manager::open_with(STATE, policy)
        .with_context(|| format!("cannot open the state {STATE:?}"))?;
    for warning in &mgr.recovery().warnings {
        eprintln!("registry: warning: {warning}");
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match args.command {
        Command::Install {
            name,
            version,
            description,
            hash,
        } => {
            let key = module_key(&name, &version);
            if mgr.state().modules.contains_key(&key) {
                return refuse(format!("module {key} is already installed"));
            }
            let seq = commit(
                &mut mgr,
                Mutation::InstallModule {
                    name,
                    version,
                    description,
                    hash,
                },
            )?;
            writeln!(out, "installed {key} seq {seq}")?;
        }
        Command::Deploy { module, deployment } => {
            if !mgr.state().modules.contains_key(&module) {
                return refuse(format!("module {module} is not installed"));
            }
            let seq = commit(
                &mut mgr,
                Mutation::DeployModule {
                    module: module.clone(),
                    deployment: deployment.clone(),
                },
            )?;
            writeln!(out, "deployed {deployment} {module} seq {seq}")?;
        }
        Command::Undeploy { deployment } => {
            if !mgr.state().deployments.contains_key(&deployment) {
                return refuse(format!("there is no deployment {deployment}"));
            }
            let seq = commit(
                &mut mgr,
                Mutation::Undeploy {
                    deployment: deployment.clone(),
                },
            )?;
            writeln!(out, "undeployed {deployment} seq {seq}")?;
        }
        Command::Uninstall { module } => {
            if !mgr.state().modules.contains_key(&module) {
                return refuse(format!("module {module} is not installed"));
            }
            let deployed = mgr.state().deployments_of(&module);
            if !deployed.is_empty() {
                return refuse(format!(
                    "module {module} is deployed as {}; undeploy it first",
                    deployed.join(", ")
                ));
            }
            let seq = commit(
                &mut mgr,
                Mutation::Uninstall {
                    module: module.clone(),
                },
            )?;
            writeln!(out, "uninstalled {module} seq {seq}")?;
        }
        Command::List => list(&mgr, &mut out)?,
        Command::Bulk { count, batch } => {
            let seq = bulk(&mut mgr, count, batch)?;
            writeln!(
                out,
                "bulk {count} seq {seq} modules {}",
                mgr.state().modules.len()
            )?;
        }
        Command::Checkpoint => {
            let done = mgr.checkpoint().context("the checkpoint failed")?;
            let kept: Vec<String> = done.kept_snapshots.iter().map(u64::to_string).collect();
            writeln!(
                out,
                "checkpoint seq {} kept {} segments-deleted {}",
                done.seq,
                kept.join(","),
                done.segments_deleted
            )?;
        }
        Command::Stats => {
            let stats = mgr.stats().context("cannot read the state's stats")?;
            let recovery = mgr.recovery();
            writeln!(out, "seq {}", stats.seq)?;
            writeln!(out, "checkpoint-seq {}", stats.checkpoint_seq)?;
            writeln!(
                out,
                "records-since-checkpoint {}",
                stats.records_since_checkpoint
            )?;
            writeln!(out, "journal-bytes {}", stats.journal_bytes)?;
            writeln!(out, "journal-first-seq {}", stats.journal_first_seq)?;
            match recovery.snapshot_seq {
                Some(seq) => writeln!(out, "recovered-snapshot {seq}")?,
                None => writeln!(out, "recovered-snapshot none")?,
            }
            writeln!(out, "replayed {}", recovery.replayed)?;
            writeln!(out, "modules {}", mgr.state().modules.len())?;
            writeln!(out, "deployments {}", mgr.state().deployments.len())?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Commits one mutation; an automatic checkpoint failure still names the
/// stored mutation's seq (the SDK's error says so).
fn commit(mgr: &mut Manager, mutation: Mutation) -> Result<u64> {
    mgr.apply(mutation).context("cannot commit the change")
}

fn list(mgr: &Manager, out: &mut impl Write) -> Result<()> {
    let state = mgr.state();
    for (key, module) in &state.modules {
        write!(out, "module {key}")?;
        if let Some(hash) = &module.hash {
            write!(out, " hash={hash}")?;
        }
        if let Some(description) = &module.description {
            write!(out, " description={}", serde_json::to_string(description)?)?;
        }
        writeln!(out)?;
    }
    for (deployment, module) in &state.deployments {
        writeln!(out, "deployment {deployment} {module}")?;
    }
    writeln!(out, "seq {}", mgr.sequence())?;
    Ok(())
}

/// The `bulk` mutations: see the crate docs. Returns the last seq.
fn bulk(mgr: &mut Manager, count: u64, batch: u64) -> Result<u64> {
    let base = mgr.sequence();
    let name = |i: u64| format!("bulk-{}", base + i);
    let mutation = |i: u64| {
        if i.is_multiple_of(4) {
            Mutation::Uninstall {
                module: module_key(&name(i - 1), "1.0.0"),
            }
        } else {
            Mutation::InstallModule {
                name: name(i),
                version: "1.0.0".to_owned(),
                description: None,
                hash: None,
            }
        }
    };
    let mut i = 0;
    let mut seq = base;
    while i < count {
        let n = (count - i).min(batch);
        seq = if n == 1 {
            mgr.apply(mutation(i + 1))
        } else {
            mgr.apply_batch((i + 1..=i + n).map(mutation).collect())
        }
        .with_context(|| format!("bulk mutation {} of {count} failed", i + n))?;
        i += n;
    }
    Ok(seq)
}
