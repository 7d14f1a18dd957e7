//! Modules with manifests through `mini run`: storage by capability (deny by
//! default, nothing created for a refused open), the namespace is the
//! module's name (an upgrade keeps the data), and the host records which
//! module versions opened a namespace.

use std::path::{Path, PathBuf};

use mini_tests::{cases, guest_component, mini, os_args};

/// Copies `component` into `dir` as `<stem>.wasm` with the manifest
/// `<stem>.component.toml` next to it; returns the copy.
fn module(dir: &Path, stem: &str, component: &Path, manifest: &str) -> PathBuf {
    let wasm = dir.join(format!("{stem}.wasm"));
    std::fs::copy(component, &wasm).expect("copy the component");
    std::fs::write(dir.join(format!("{stem}.component.toml")), manifest).expect("manifest");
    wasm
}

const APP: &str = r#"
[component]
name = "app"
version = "2.1.0"
description = "opens what it was granted, and tries what it was not"
imports = ["mini:storage/store@0.2.0", "mini:storage/queue@0.2.0"]

[component.capabilities]
wasi = ["wasi:cli/stdout"]

[component.capabilities.resources]
memory_max = 134217728

[component.capabilities.storage]
journals = ["events", "audit-*"]
shared_queues = [{ name = "jobs", module = "broker" }]
quota_mb = 8
"#;

#[test]
fn a_module_opens_only_what_its_manifest_grants_and_nothing_is_created_for_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("tempdir");
    // Found next to the component, as Arcella does.
    let app = module(dir.path(), "app", &guest_component("boundary-probe"), APP);
    let (code, out, err) = mini(os_args![
        "run",
        app,
        "--data",
        data.path(),
        "--",
        "access",
        "journal:events",
        "journal:audit-2026",
        "queue:jobs",
        "journal:other",
        "state:events",
        "snapshots:events",
        "queue:own",
        "queue:../broker/queue/jobs"
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let found = cases(&out);
    for granted in ["journal:events", "journal:audit-2026", "queue:jobs"] {
        assert_eq!(found[granted], "ok opened", "{out}");
    }
    for refused in [
        "journal:other",
        "state:events",
        "snapshots:events",
        "queue:own",
    ] {
        let outcome = &found[refused];
        assert!(
            outcome.starts_with("err access-denied"),
            "{refused}: {outcome}"
        );
        assert!(outcome.contains("app@2.1.0"), "{refused}: {outcome}");
    }
    assert!(
        found["queue:../broker/queue/jobs"].starts_with("err invalid-name"),
        "{out}"
    );
    // The namespace is the module's name; the shared queue lives in the
    // owner's namespace.
    let ns = data.path().join("app");
    assert!(ns.join("journal/events").is_dir());
    assert!(ns.join("journal/audit-2026").is_dir());
    assert!(data.path().join("broker/queue/jobs").is_dir());
    assert!(!ns.join("journal/other").exists());
    for kind in ["state", "snapshot", "queue"] {
        assert!(
            !ns.join(kind).exists(),
            "{kind}/ was created for a refused open"
        );
    }

    // --no-manifest: the component's whole namespace, named after its file.
    let (code, out, err) = mini(os_args![
        "run",
        app,
        "--no-manifest",
        "--data",
        data.path(),
        "--",
        "access",
        "journal:other"
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(cases(&out)["journal:other"], "ok opened");
}

#[test]
fn a_manifest_without_a_storage_table_grants_nothing_and_a_misspelled_grant_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("tempdir");
    let bare = module(
        dir.path(),
        "bare",
        &guest_component("boundary-probe"),
        "[component]\nname = \"bare\"\nversion = \"1.0.0\"\n",
    );
    let (code, out, err) = mini(os_args![
        "run",
        bare,
        "--data",
        data.path(),
        "--",
        "access",
        "journal:x",
        "queue:y"
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let found = cases(&out);
    assert!(found["journal:x"].starts_with("err access-denied"), "{out}");
    assert!(found["queue:y"].starts_with("err access-denied"), "{out}");
    assert!(!data.path().join("bare").exists(), "nothing is created");

    let typo = dir.path().join("typo.component.toml");
    std::fs::write(
        &typo,
        "[component]\nname = \"typo\"\nversion = \"1.0.0\"\n[component.capabilities.storage]\njornals = [\"x\"]\n",
    )
    .expect("manifest");
    let (code, _, err) = mini(os_args![
        "run",
        bare,
        "--manifest",
        typo,
        "--data",
        data.path(),
        "--",
        "access",
        "journal:x"
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("jornals") && err.contains("typo.component.toml"),
        "{err}"
    );
}

#[test]
fn a_new_version_of_a_module_opens_the_data_the_old_one_wrote() {
    let data = tempfile::tempdir().expect("tempdir");
    let registry = guest_component("registry");
    let manifest = |version: &str| {
        format!(
            "[component]\nname = \"registry\"\nversion = \"{version}\"\n\
             [component.capabilities.storage]\nstates = [\"registry\"]\n"
        )
    };
    let v1 = tempfile::tempdir().expect("tempdir");
    let v1 = module(v1.path(), "registry", &registry, &manifest("1.0.0"));
    let v2 = tempfile::tempdir().expect("tempdir");
    let v2 = module(v2.path(), "registry", &registry, &manifest("1.1.0"));
    let run = |wasm: &Path, args: &[&str]| {
        let mut all = os_args!["run", wasm, "--data", data.path(), "--"];
        all.extend(args.iter().map(std::ffi::OsString::from));
        mini(all)
    };
    let (code, out, err) = run(&v1, &["install", "billing@1.2.0"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&v2, &["list"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("module billing@1.2.0"),
        "the upgrade lost the state:\n{out}"
    );

    let (code, out, err) = mini(os_args!["modules", "--data", data.path()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("registry@1.0.0") && out.contains("registry@1.1.0"),
        "{out}"
    );
    let (code, out, err) = mini(os_args!["modules", "--data", data.path(), "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let listed: serde_json::Value = serde_json::from_str(out.lines().next().expect("a line"))
        .expect("one JSON object per namespace");
    let text = listed.to_string();
    assert!(
        text.contains("registry@1.0.0") && text.contains("registry@1.1.0"),
        "{text}"
    );
}
