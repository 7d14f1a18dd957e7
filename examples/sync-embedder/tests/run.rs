//! The sync embedder runs a real component (the guest `plugin-sync`, no WASI
//! imports) with blocking host calls, and its dependency tree has no tokio.

use std::process::Command;

fn embedder(args: &[&str]) -> (i32, String, String) {
    let program = std::path::Path::new(env!("CARGO_BIN_EXE_mini-sync-embedder"));
    mini_tests::run_program(program, args)
}

#[test]
fn a_sync_embedder_runs_a_component_and_its_records_persist() {
    let component = mini_tests::guest_component("plugin_sync");
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().to_str().expect("a UTF-8 path");
    let wasm = component.to_str().expect("a UTF-8 path");
    let (code, stdout, stderr) = embedder(&[wasm, dir, "events", "3"]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stdout.trim(), "appended 5 last 5 read 5");
    // The second run sees the first one's records: they were durable.
    let (code, stdout, stderr) = embedder(&[wasm, dir, "events", "1"]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stdout.trim(), "appended 3 last 8 read 8");
    let records =
        mini_tests::read_journal(&mini_tests::journal_dir(data.path(), "plugin", "events"));
    mini_tests::assert_contiguous(&records);
    assert_eq!(records.len(), 8);
}

#[test]
fn a_bad_name_comes_back_to_the_guest_as_an_error() {
    let component = mini_tests::guest_component("plugin_sync");
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().to_str().expect("a UTF-8 path");
    let wasm = component.to_str().expect("a UTF-8 path");
    let (code, stdout, stderr) = embedder(&[wasm, dir, "../escape", "1"]);
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains("invalid-name") || stdout.contains("invalid name"),
        "{stdout}"
    );
    assert!(!data.path().join("escape").exists());
}

#[test]
fn the_sync_embedder_builds_without_tokio_or_wasi() {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-p",
            "mini-sync-embedder",
            "-e",
            "normal,build",
        ])
        .args(["--prefix", "none", "--format", "{p}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.lines().any(|l| l.starts_with("mini-host ")), "{tree}");
    assert!(tree.lines().any(|l| l.starts_with("wasmtime ")), "{tree}");
    for absent in ["tokio ", "wasmtime-wasi "] {
        assert!(
            !tree.lines().any(|l| l.starts_with(absent)),
            "{absent}is in the sync embedder's tree:\n{tree}"
        );
    }
}
