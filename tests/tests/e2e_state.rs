//! The state manager end to end: the `registry` component (guest SDK
//! `StateManager` over the host's `mini:storage/state`) keeps installed
//! modules and deployments across runs, through `mini run` and in this
//! process; checkpoints compact its journal to the tail and keep at most two
//! snapshots; a damaged newest snapshot falls back to the one before it with
//! a warning and the right state; a refused request changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use mini_host::{MiniCtx, MiniHost};
use mini_tests::{
    block_on, default_runner, guest_component, mini, os_args, run_with, segment_text,
};

/// The namespace every test runs the registry in.
const NS: &str = "reg";

fn registry() -> PathBuf {
    guest_component("registry")
}

/// `<data>/<ns>/state/registry`.
fn state_dir(data: &Path) -> PathBuf {
    data.join(NS).join("state").join("registry")
}

fn journal_dir(data: &Path) -> PathBuf {
    state_dir(data).join("journal")
}

fn snapshots_dir(data: &Path) -> PathBuf {
    state_dir(data).join("snapshots")
}

/// Runs the registry through the `mini` binary with `extra` run options
/// (before `--`) and `args` for the component.
fn mini_run(data: &Path, extra: &[&str], args: &[&str]) -> (i32, String, String) {
    let mut argv = os_args!["run", registry(), "--data", data, "--namespace", NS];
    argv.extend(extra.iter().map(Into::into));
    argv.push("--".into());
    argv.extend(args.iter().map(Into::into));
    mini(argv)
}

/// Runs the registry in this process on the real host, with journal
/// segments of `segment_size` bytes (`mini run` has no option for it), on a
/// host registry of the test's own.
struct InProcess {
    host: MiniHost,
    data: PathBuf,
    segment_size: u64,
}

impl InProcess {
    fn new(data: &Path, segment_size: u64) -> Self {
        InProcess {
            host: MiniHost::new(),
            data: data.to_path_buf(),
            segment_size,
        }
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let ctx = MiniCtx::builder(&self.host, &self.data, NS)
            .segment_size(self.segment_size)
            .build()
            .expect("a storage context");
        let out = block_on(run_with(&default_runner(), &registry(), ctx, args));
        (out.exit_code(), out.stdout, out.stderr)
    }

    /// Runs `args`, asserting success and no stderr output; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "registry {args:?}: exit {code}\n{out}\n{err}");
        assert_eq!(err, "", "registry {args:?} wrote to stderr");
        out
    }
}

/// What the registry should hold, computed independently of it.
#[derive(Debug, Default)]
struct Model {
    modules: BTreeSet<String>,
    deployments: BTreeMap<String, String>,
    seq: u64,
}

impl Model {
    fn install(&mut self, module: &str) {
        self.modules.insert(module.to_owned());
        self.seq += 1;
    }

    /// The mutations of `registry bulk n` (see the component's docs).
    fn bulk(&mut self, n: u64) {
        let base = self.seq;
        for i in 1..=n {
            if i % 4 == 0 {
                assert!(self.modules.remove(&format!("bulk-{}@1.0.0", base + i - 1)));
            } else {
                assert!(self.modules.insert(format!("bulk-{}@1.0.0", base + i)));
            }
        }
        self.seq += n;
    }

    /// The exact `registry list` output for modules without hash or
    /// description.
    fn listing(&self) -> String {
        let mut out = String::new();
        for module in &self.modules {
            out += &format!("module {module}\n");
        }
        for (deployment, module) in &self.deployments {
            out += &format!("deployment {deployment} {module}\n");
        }
        out + &format!("seq {}\n", self.seq)
    }
}

/// `key value` lines of `registry stats` as a map.
fn parse_stats(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .map(|line| {
            let (k, v) = line.split_once(' ').expect("`key value` lines");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn stat(stats: &BTreeMap<String, String>, key: &str) -> u64 {
    stats
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in {stats:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number in {stats:?}"))
}

/// The segment files of the journal: (first seq from the file name, size).
fn segments(data: &Path) -> Vec<(u64, u64)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(journal_dir(data)).expect("the journal directory") {
        let entry = entry.expect("a directory entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".jsonl") {
            assert_eq!(stem.len(), 20, "segment name {name}");
            let first = stem.parse().expect("a segment name is a seq");
            found.push((first, segment_text(&entry.path()).len() as u64));
        }
    }
    found.sort_unstable();
    found
}

/// The snapshot files: their seqs from the names, ascending (any other file
/// in the directory but a lock file, e.g. a leftover temporary file, fails
/// the test).
fn snapshot_seqs(data: &Path) -> Vec<u64> {
    let mut seqs = Vec::new();
    let Ok(dir) = std::fs::read_dir(snapshots_dir(data)) else {
        return seqs; // not created before the first checkpoint
    };
    for entry in dir {
        let name = entry
            .expect("a directory entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.to_lowercase().contains("lock") {
            continue;
        }
        let seq = name
            .strip_prefix("snapshot-")
            .and_then(|s| s.strip_suffix(".json"))
            .filter(|s| s.len() == 20)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("unexpected file {name} among the snapshots"));
        seqs.push(seq);
    }
    seqs.sort_unstable();
    seqs
}

/// Every file under `dir` with its contents, lock files left out.
fn files_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if !path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().to_lowercase().contains("lock"))
            {
                let bytes = std::fs::read(&path).expect("read");
                files.insert(path, bytes);
            }
        }
    }
    files
}

#[test]
fn install_deploy_list_survive_mini_runs() {
    let data = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| mini_run(data.path(), &[], args);
    let ok = |args: &[&str]| {
        let (code, out, err) = run(args);
        assert_eq!(code, 0, "registry {args:?}: exit {code}\n{out}\n{err}");
        assert_eq!(err, "", "registry {args:?} wrote to stderr");
        out
    };

    assert_eq!(ok(&["list"]), "seq 0\n");
    assert_eq!(
        ok(&[
            "install",
            "auth@1.0.0",
            "--description",
            "login \"and\" tokens",
            "--hash",
            "ab12cd"
        ]),
        "installed auth@1.0.0 seq 1\n"
    );
    assert_eq!(
        ok(&["install", "auth@1.1.0"]),
        "installed auth@1.1.0 seq 2\n"
    );
    assert_eq!(
        ok(&["install", "mailer@0.3.0"]),
        "installed mailer@0.3.0 seq 3\n"
    );
    assert_eq!(
        ok(&["deploy", "auth@1.0.0", "web"]),
        "deployed web auth@1.0.0 seq 4\n"
    );
    assert_eq!(
        ok(&["deploy", "mailer@0.3.0", "jobs"]),
        "deployed jobs mailer@0.3.0 seq 5\n"
    );

    let expected = "\
module auth@1.0.0 hash=ab12cd description=\"login \\\"and\\\" tokens\"
module auth@1.1.0
module mailer@0.3.0
deployment jobs mailer@0.3.0
deployment web auth@1.0.0
seq 5
";
    // Each `mini run` is a new process: the state came back from disk.
    assert_eq!(ok(&["list"]), expected);
    assert_eq!(ok(&["list"]), expected);

    // Requests the registry refuses: nothing is stored, the exit status is 1.
    for (args, needle) in [
        (&["install", "auth@1.1.0"][..], "already installed"),
        (&["deploy", "auth@9.9.9", "web"][..], "not installed"),
        (&["uninstall", "nope@1.0.0"][..], "not installed"),
        (&["undeploy", "nowhere"][..], "no deployment"),
    ] {
        let (code, out, err) = run(args);
        assert_eq!(code, 1, "registry {args:?}: {out}\n{err}");
        assert!(
            err.contains("refused: ") && err.contains(needle) && !err.contains("usage:"),
            "registry {args:?}: {err}"
        );
        assert_eq!(out, "", "registry {args:?}");
    }
    // Usage errors: a failure with the usage text, nothing stored. (The
    // component exits with 2, but WASI 0.2's `exit` carries only success or
    // failure: the host reports 1.)
    for args in [
        &["frobnicate"][..],
        &[][..],
        &["install", "auth"][..],
        &["install", "auth", "1.1.0"][..],
        &["install", "a b@1.0.0"][..],
        &["install", "auth@1.0"][..],
        &["install", "auth@01.2.3"][..],
        &["install", "auth@1.2.3+build.7"][..],
        &["deploy", "auth-1.0.0", "web"][..],
        &["bulk", "many"][..],
    ] {
        let (code, out, err) = run(args);
        assert_ne!(code, 0, "registry {args:?}: {out}\n{err}");
        assert!(err.contains("usage:"), "registry {args:?}: {err}");
        assert_eq!(out, "", "registry {args:?}");
    }
    assert_eq!(
        ok(&["list"]),
        expected,
        "refused requests changed the state"
    );

    // Move `web` to the new version; then the old one can go.
    assert_eq!(
        ok(&["deploy", "auth@1.1.0", "web"]),
        "deployed web auth@1.1.0 seq 6\n"
    );
    assert_eq!(
        ok(&["uninstall", "auth@1.0.0"]),
        "uninstalled auth@1.0.0 seq 7\n"
    );
    assert_eq!(ok(&["undeploy", "jobs"]), "undeployed jobs seq 8\n");
    assert_eq!(
        ok(&["list"]),
        "\
module auth@1.1.0
module mailer@0.3.0
deployment web auth@1.1.0
seq 8
"
    );

    // The mutations are in the state's journal on disk, one JSON record each.
    let (code, out, err) = mini(os_args!["cat", journal_dir(data.path())]);
    assert_eq!(code, 0, "{err}");
    let records: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(records.len(), 8, "{out}");
    assert_eq!(
        records[3],
        serde_json::json!({"seq": 4, "data": {"DeployModule": {"module": "auth@1.0.0", "deployment": "web"}}})
    );
    assert_eq!(
        records[6]["data"],
        serde_json::json!({"Uninstall": {"module": "auth@1.0.0"}})
    );

    // The checkpoint interval from the environment: every 2 mutations.
    let env = ["--env", "REGISTRY_CHECKPOINT_EVERY=2"];
    assert!(snapshot_seqs(data.path()).is_empty(), "no checkpoint yet");
    let (code, _, err) = mini_run(data.path(), &env, &["install", "x@1.0.0"]);
    assert_eq!(code, 0, "{err}");
    // Recovery replayed 8 mutations, 9 ≥ 2: a checkpoint at 9.
    assert_eq!(snapshot_seqs(data.path()), vec![9]);
    let (code, _, err) = mini_run(data.path(), &env, &["install", "y@1.0.0"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = mini_run(data.path(), &env, &["install", "z@1.0.0"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(snapshot_seqs(data.path()), vec![9, 11]);
    let stats = parse_stats(&ok(&["stats"]));
    assert_eq!(stat(&stats, "seq"), 11, "{stats:?}");
    assert_eq!(stat(&stats, "checkpoint-seq"), 11, "{stats:?}");
    assert_eq!(stat(&stats, "records-since-checkpoint"), 0, "{stats:?}");
    assert_eq!(stat(&stats, "recovered-snapshot"), 11, "{stats:?}");
    assert_eq!(stat(&stats, "replayed"), 0, "{stats:?}");
    assert_eq!(stat(&stats, "modules"), 5, "{stats:?}");
    assert_eq!(stat(&stats, "deployments"), 1, "{stats:?}");
}

#[test]
fn uninstall_of_a_deployed_module_is_refused_and_changes_nothing() {
    let data = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| mini_run(data.path(), &[], args);
    for args in [
        &["install", "api@2.0.0"][..],
        &["install", "api@2.1.0"][..],
        &["deploy", "api@2.0.0", "edge"][..],
        &["deploy", "api@2.0.0", "canary"][..],
        &["checkpoint"][..],
        &["install", "cron@1.0.0"][..],
    ] {
        let (code, out, err) = run(args);
        assert_eq!(code, 0, "registry {args:?}: {out}\n{err}");
    }
    let (code, before, err) = run(&["list"]);
    assert_eq!(code, 0, "{err}");
    assert!(before.ends_with("seq 5\n"), "{before}");
    let files_before = files_under(&state_dir(data.path()));
    assert!(
        files_before
            .keys()
            .any(|p| p.starts_with(journal_dir(data.path()))),
        "the journal has files: {:?}",
        files_before.keys()
    );

    let (code, out, err) = run(&["uninstall", "api@2.0.0"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert_eq!(out, "");
    assert!(
        err.contains("api@2.0.0") && err.contains("deployed as canary, edge"),
        "the message names the module and its deployments: {err}"
    );

    // Nothing changed: not the listing, not a byte of the journal or the
    // snapshots.
    let (code, after, err) = run(&["list"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(after, before);
    assert_eq!(
        files_under(&state_dir(data.path())),
        files_before,
        "a refused uninstall changed the state's files"
    );

    // The undeployed version goes without complaint.
    let (code, out, err) = run(&["uninstall", "api@2.1.0"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "uninstalled api@2.1.0 seq 6\n"),
        "{err}"
    );
}

/// Checks that the journal (segments of `segment` bytes, last seq `last`)
/// holds only the tail after the oldest kept snapshot `oldest_kept`: the
/// segment holding `oldest_kept + 1` and the later ones. Returns the first
/// seq still stored.
fn check_tail(data: &Path, segment: u64, oldest_kept: u64, last: u64) -> u64 {
    let segs = segments(data);
    let (first, _) = segs[0];
    assert!(
        first > 1,
        "compaction deleted the oldest segments: {segs:?}"
    );
    assert!(
        first <= oldest_kept + 1,
        "the journal still reaches back to the oldest kept snapshot {oldest_kept}: {segs:?}"
    );
    if let Some(&(second, _)) = segs.get(1) {
        assert!(
            second > oldest_kept + 1,
            "a segment wholly below the snapshot {oldest_kept} was kept: {segs:?}"
        );
    }
    let bytes: u64 = segs.iter().map(|(_, size)| size).sum();
    let records = last - first + 1;
    // Every record line is over 60 bytes, so a segment holds fewer than
    // segment / 60: the tail is at most one segment more than it must hold.
    let needed = last - oldest_kept;
    assert!(
        records <= needed + segment / 60,
        "{records} records kept for {needed} needed: {segs:?}"
    );
    assert!(
        bytes <= (needed + 1) * 200 + 2 * segment,
        "{bytes} bytes of journal for {needed} records: {segs:?}"
    );
    first
}

#[test]
fn bulk_mutations_with_checkpoints_keep_only_the_journal_tail() {
    const SEGMENT: u64 = 8 * 1024;
    let data = tempfile::tempdir().expect("tempdir");
    let reg = InProcess::new(data.path(), SEGMENT);
    let mut model = Model::default();

    // 3000 mutations in batches of 10; a checkpoint every 500 (the default).
    assert_eq!(
        reg.ok(&["bulk", "3000", "--batch", "10"]),
        "bulk 3000 seq 3000 modules 1500\n"
    );
    model.bulk(3000);
    assert_eq!(snapshot_seqs(data.path()), vec![2500, 3000]);

    let first = check_tail(data.path(), SEGMENT, 2500, model.seq);

    let stats = parse_stats(&reg.ok(&["stats"]));
    assert_eq!(stat(&stats, "seq"), 3000, "{stats:?}");
    assert_eq!(stat(&stats, "checkpoint-seq"), 3000, "{stats:?}");
    assert_eq!(stat(&stats, "records-since-checkpoint"), 0, "{stats:?}");
    assert_eq!(stat(&stats, "journal-first-seq"), first, "{stats:?}");
    let seg_bytes: u64 = segments(data.path()).iter().map(|(_, s)| s).sum();
    assert_eq!(stat(&stats, "journal-bytes"), seg_bytes, "{stats:?}");
    // Recovery started from the newest snapshot and replayed nothing.
    assert_eq!(stat(&stats, "recovered-snapshot"), 3000, "{stats:?}");
    assert_eq!(stat(&stats, "replayed"), 0, "{stats:?}");

    assert_eq!(reg.ok(&["list"]), model.listing());

    // 1000 more in batches of 7: one checkpoint at the first batch end past
    // 500 since the last one (3504), none at 4000 (496 since).
    assert_eq!(
        reg.ok(&["bulk", "1000", "--batch", "7"]),
        "bulk 1000 seq 4000 modules 2000\n"
    );
    model.bulk(1000);
    assert_eq!(snapshot_seqs(data.path()), vec![3000, 3504]);
    check_tail(data.path(), SEGMENT, 3000, model.seq);

    // A few single commits on top, then a fresh start replays only the tail.
    reg.ok(&["install", "solo@1.0.0"]);
    model.install("solo@1.0.0");
    reg.ok(&["deploy", "solo@1.0.0", "main"]);
    model.seq += 1;
    model.deployments.insert("main".into(), "solo@1.0.0".into());
    let stats = parse_stats(&reg.ok(&["stats"]));
    assert_eq!(stat(&stats, "recovered-snapshot"), 3504, "{stats:?}");
    assert_eq!(stat(&stats, "replayed"), 498, "{stats:?}");
    assert_eq!(stat(&stats, "records-since-checkpoint"), 498, "{stats:?}");
    assert_eq!(reg.ok(&["list"]), model.listing());

    // The same state through `mini run`, which goes on with 8 KiB segments:
    // 498 replayed + 20 = 518 ≥ 500 checkpoints at 4022, then 500 more at
    // 4522; 80 since then at the end (4602).
    let (code, out, err) = mini_run(data.path(), &[], &["list"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, model.listing());
    let (code, out, err) = mini_run(
        data.path(),
        &["--segment-kb", "8"],
        &["bulk", "600", "--batch", "20"],
    );
    assert_eq!(code, 0, "{err}");
    model.bulk(600);
    assert_eq!(
        out,
        format!("bulk 600 seq 4602 modules {}\n", model.modules.len())
    );
    assert_eq!(snapshot_seqs(data.path()), vec![4022, 4522]);
    check_tail(data.path(), SEGMENT, 4022, model.seq);
    let (code, out, err) = mini_run(data.path(), &[], &["list"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, model.listing());
}

#[test]
fn damaged_newest_snapshot_falls_back_with_a_warning() {
    const SEGMENT: u64 = 8 * 1024;
    let data = tempfile::tempdir().expect("tempdir");
    let reg = InProcess::new(data.path(), SEGMENT);
    let mut model = Model::default();

    reg.ok(&["bulk", "1200", "--batch", "10"]);
    model.bulk(1200);
    reg.ok(&["install", "keep@1.0.0"]);
    model.install("keep@1.0.0");
    reg.ok(&["deploy", "keep@1.0.0", "prod"]);
    model.seq += 1;
    model.deployments.insert("prod".into(), "keep@1.0.0".into());
    assert_eq!(snapshot_seqs(data.path()), vec![500, 1000]);
    assert!(
        segments(data.path())[0].0 > 1,
        "the journal was compacted: {:?}",
        segments(data.path())
    );
    assert_eq!(reg.ok(&["list"]), model.listing());

    // Flip one bit in the middle of the newest snapshot (inside its state).
    let newest = snapshots_dir(data.path()).join(format!("snapshot-{:020}.json", 1000));
    let mut bytes = std::fs::read(&newest).expect("the newest snapshot");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&newest, &bytes).expect("write the damaged snapshot");

    // The next run warns about it on stderr and still lists the right state,
    // from the snapshot at 500 plus the journal after it.
    let (code, out, err) = reg.run(&["list"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(out, model.listing());
    assert!(
        err.contains("registry: warning:") && err.contains("1000"),
        "a warning naming the damaged snapshot: {err:?}"
    );
    let (code, out, err) = reg.run(&["stats"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("warning"), "{err}");
    let stats = parse_stats(&out);
    assert_eq!(stat(&stats, "recovered-snapshot"), 500, "{stats:?}");
    assert_eq!(stat(&stats, "replayed"), model.seq - 500, "{stats:?}");

    // Through `mini run` too: the warning goes to the process's stderr.
    let (code, out, err) = mini_run(data.path(), &[], &["list"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, model.listing());
    assert!(err.contains("warning") && err.contains("1000"), "{err:?}");

    // The next mutation checkpoints (702 replayed ≥ 500): the newest snapshot
    // is valid again, the warning is gone, the state is still right.
    // That run still recovers from the snapshot at 500, so it warns once more.
    let (code, out, err) = reg.run(&["install", "after@2.0.0"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!("installed after@2.0.0 seq {}\n", model.seq + 1)
    );
    assert!(err.contains("warning") && err.contains("1000"), "{err:?}");
    model.install("after@2.0.0");
    let (code, out, err) = reg.run(&["list"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err, "", "no warning once a valid snapshot is the newest");
    assert_eq!(out, model.listing());
    assert_eq!(snapshot_seqs(data.path()).last(), Some(&model.seq));
}
