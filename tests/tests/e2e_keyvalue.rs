//! `wasi:keyvalue` through the whole stack: the conformance components of
//! both versions run by `mini run` (each check able to fail: see
//! guest/examples/kv-conformance), a later process seeing their writes, a
//! bucket shared by 8 instances of one host incrementing by CAS loops, and
//! limits a guest cannot pass.

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;

use mini_engine::kv::inspect;
use mini_host::{MiniCtx, MiniCtxBuilder, MiniHost};
use mini_tests::{block_on, cases, default_runner, guest_component, mini, mini_ctx, run_with};

fn mini_run(component: &str, data: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all: Vec<OsString> = vec!["run".into(), guest_component(component).into()];
    all.extend([
        "--data".into(),
        data.into(),
        "--namespace".into(),
        "kv".into(),
        "--".into(),
    ]);
    all.extend(args.iter().map(OsString::from));
    mini(all)
}

fn assert_passed(what: &str, (code, stdout, stderr): &(i32, String, String), last: &str) {
    assert!(
        *code == 0 && stdout.lines().last() == Some(last) && !stdout.contains("FAILED"),
        "{what}: exit {code}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
}

#[test]
fn both_versions_conform_and_a_later_process_sees_their_writes() {
    let data = tempfile::tempdir().expect("temp dir");
    let run = mini_run("kv-conformance", data.path(), &["run"]);
    assert_passed("draft2 run", &run, "run passed");
    // Each check is a line: the run did them all.
    assert!(
        run.1.lines().filter(|l| l.starts_with("ok ")).count() >= 40,
        "{}",
        run.1
    );
    let draft = mini_run("kv-conformance-draft", data.path(), &["run"]);
    assert_passed("draft run", &draft, "run passed");
    assert_passed(
        "draft2 check",
        &mini_run("kv-conformance", data.path(), &["check"]),
        "check passed",
    );
    assert_passed(
        "draft check (sees draft2's writes)",
        &mini_run("kv-conformance-draft", data.path(), &["check"]),
        "check passed",
    );
    // What the guests wrote is where FORMAT.md says, as it says.
    let many = inspect(&data.path().join("kv/bucket/many")).expect("the bucket reads");
    assert_eq!(many.state.entries.len(), 5000);
    let default = inspect(&data.path().join("kv/bucket/default")).expect("the bucket reads");
    let binary = &default.state.entries["binary"].value;
    assert_eq!(binary.bytes(), Some(vec![0xff, 0x00, 0x80, b'\n', 0x01]));
    assert!(matches!(binary, mini_engine::kv::StoredValue::Base64(_)));
    let (code, out, err) = mini([
        "verify".as_ref(),
        "--data".as_ref(),
        data.path().as_os_str(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("buckets checked, 0 damaged"), "{out}");
}

/// Runs `cas-increment` in `instances` instances of one host at once.
fn cas_race(instances: usize, each: u64, ctx: impl Fn() -> MiniCtx) -> Vec<(u64, u64)> {
    let wasm = guest_component("kv-conformance");
    let runner = default_runner();
    // Compiled before the race, so that the instances start together.
    mini_tests::load(&runner, &wasm);
    let each = each.to_string();
    let outputs = block_on(async {
        let tasks: Vec<_> = (0..instances)
            .map(|_| {
                let (runner, wasm, mini, each) =
                    (Arc::clone(&runner), wasm.clone(), ctx(), each.clone());
                tokio::spawn(async move {
                    run_with(&runner, &wasm, mini, &["cas-increment", &each]).await
                })
            })
            .collect();
        let mut outputs = Vec::new();
        for task in tasks {
            outputs.push(task.await.expect("instance"));
        }
        outputs
    });
    outputs
        .iter()
        .map(|out| {
            assert_eq!(out.exit_code(), 0, "{}{}", out.stdout, out.stderr);
            let words: Vec<&str> = out.stdout.split_whitespace().collect();
            match words.as_slice() {
                ["swaps", s, "failures", f] => {
                    (s.parse().expect("swaps"), f.parse().expect("failures"))
                }
                _ => panic!("unexpected output: {}", out.stdout),
            }
        })
        .collect()
}

#[test]
fn eight_instances_incrementing_one_key_by_cas_lose_no_swap() {
    const INSTANCES: usize = 8;
    const EACH: u64 = 25;
    let data = tempfile::tempdir().expect("temp dir");
    let host = MiniHost::new();
    let results = cas_race(INSTANCES, EACH, || mini_ctx(&host, data.path(), "kv"));
    let swaps: u64 = results.iter().map(|(s, _)| s).sum();
    let failures: u64 = results.iter().map(|(_, f)| f).sum();
    assert_eq!(swaps, INSTANCES as u64 * EACH);
    let bucket = inspect(&data.path().join("kv/bucket/shared")).expect("the bucket reads");
    let counter = bucket.state.entries["counter"].value.bytes().expect("text");
    assert_eq!(
        String::from_utf8(counter).expect("utf-8"),
        swaps.to_string(),
        "the counter is the number of successful swaps ({failures} swaps failed and were retried)"
    );
}

#[test]
fn a_hostile_guest_meets_every_limit_as_an_error() {
    let data = tempfile::tempdir().expect("temp dir");
    let host = MiniHost::new();
    let mini = MiniCtx::builder(&host, data.path(), "kv")
        .max_buckets(5)
        .max_open_handles(20)
        .max_state_size(64 * 1024)
        .build()
        .expect("limits in range");
    let wasm = guest_component("kv-conformance");
    let out = block_on(run_with(&default_runner(), &wasm, mini, &["hostile"]));
    assert_eq!(out.exit_code(), 0, "{}{}", out.stdout, out.stderr);
    let cases = cases(&out.stdout);
    let case = |name: &str| {
        cases
            .get(name)
            .unwrap_or_else(|| panic!("no case {name}: {}", out.stdout))
    };
    assert!(
        case("buckets").contains("quota: cannot create the bucket")
            && case("buckets").contains("b-5"),
        "{}",
        case("buckets")
    );
    assert_eq!(case("buckets opened"), "5");
    assert!(
        case("cas handles").contains("quota: too many open handles"),
        "{}",
        case("cas handles")
    );
    assert!(
        case("fill").contains("quota: the bucket is full"),
        "{}",
        case("fill")
    );
    let stored: usize = case("fill stored").parse().expect("a count");
    assert!(
        (40..64).contains(&stored),
        "{stored} values of 1 KiB in 64 KiB"
    );
    assert!(
        case("set-many past the limit").contains("the bucket is full"),
        "{}",
        case("set-many past the limit")
    );
    assert_eq!(case("nothing of it is there"), "ok false");
    assert_eq!(case("delete-many"), "ok deleted");
    assert_eq!(case("room again"), "ok stored");
    assert!(
        case("get-many of one value 100 times").contains("quota: the values asked for take"),
        "{}",
        case("get-many of one value 100 times")
    );
    assert_eq!(case("huge cursor"), "ok 0 keys");
    assert!(
        case("increment binary").contains("invalid-argument"),
        "{}",
        case("increment binary")
    );
    assert!(out.stdout.ends_with("hostile done\n"), "{}", out.stdout);
    // No guest error showed a host path.
    let root = data.path().display().to_string();
    assert!(!out.stdout.contains(&root), "{}", out.stdout);
    // What the guest could store, it stored whole.
    let bucket = inspect(&data.path().join("kv/bucket/b-0")).expect("the bucket reads");
    assert_eq!(bucket.state.entries.len(), 2, "after and nan");
    assert!(bucket.state.snapshot_bound() <= 64 * 1024);
}

#[test]
fn with_a_manifest_buckets_are_a_capability() {
    let data = tempfile::tempdir().expect("temp dir");
    let manifest = mini_manifest::ComponentManifest::from_toml_str(
        "[component]\nname = \"shop\"\nversion = \"1.0.0\"\n\
         [component.capabilities.storage]\nbuckets = [\"default\", \"many\"]\n",
    )
    .expect("manifest");
    let host = MiniHost::new();
    let run = |args: &[&str]| {
        let mini = MiniCtxBuilder::for_module(&host, data.path(), &manifest)
            .build()
            .expect("a valid manifest");
        block_on(run_with(
            &default_runner(),
            &guest_component("kv-conformance"),
            mini,
            args,
        ))
    };
    // `run` opens "other" and checks that it is apart: denied, it fails there.
    let out = run(&["run"]);
    assert_eq!(out.exit_code(), 1, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("FAILED open \"other\": Error::AccessDenied"),
        "{}",
        out.stdout
    );
    // Nothing was created for the refused name.
    assert!(data.path().join("shop/bucket").is_dir());
    assert!(!data.path().join("shop/bucket/other").exists());
    let granted = run(&["cas-increment", "3", "--bucket", "many"]);
    assert_eq!(granted.exit_code(), 0, "{}", granted.stdout);
}

#[test]
fn the_sync_linker_serves_both_versions_too() {
    let data = tempfile::tempdir().expect("temp dir");
    let linker = mini_tests::sync_linker::SyncLinker::new().expect("the sync linker");
    let host = MiniHost::new();
    for (component, args) in [
        ("kv-conformance", "run"),
        ("kv-conformance-draft", "run"),
        ("kv-conformance-draft", "check"),
    ] {
        let run = linker
            .run(&host, data.path(), "kv", component, &[args])
            .expect("runs");
        assert!(
            run.ok && run.stdout.ends_with("passed\n"),
            "{component} {args}: {}",
            run.stdout
        );
    }
}
