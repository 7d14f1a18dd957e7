//! Component manifests in Arcella's format parse to the expected values; bad
//! ones are refused with a message that names what is wrong.

use std::path::{Path, PathBuf};

use mini_manifest::{
    ComponentManifest, ManifestError, ModuleId, NamePattern, SharedQueue, StorageCapabilities,
    StorageKind,
};

fn manifest(text: &str) -> ComponentManifest {
    ComponentManifest::from_toml_str(text).unwrap_or_else(|e| panic!("{e}\n---\n{text}"))
}

fn manifest_err(text: &str) -> ManifestError {
    match ComponentManifest::from_toml_str(text) {
        Ok(m) => panic!("accepted {m:?}"),
        Err(e) => e,
    }
}

fn patterns(list: &[&str]) -> Vec<NamePattern> {
    list.iter().map(|p| p.parse().unwrap()).collect()
}

/// Written for Arcella, with none of mini's fields.
const ARCELLA_ONLY: &str = r#"
[component]
name = "http-logger"
version = "0.1.0"
description = "Logs HTTP requests"
exports = ["logger:log@1.0"]
imports = ["wasi:cli/stdio@0.2", "wasi:http@0.2.0"]

[component.capabilities]
wasi = ["wasi:cli/stdio", "wasi:random"]
filesystem = ["/logs"]
network = ["tcp:localhost:8080"]
environment = ["DEBUG"]

[component.capabilities.resources]
memory_max = 67108864
cpu_shares = 512
"#;

#[test]
fn arcella_only_manifest() {
    let m = manifest(ARCELLA_ONLY);
    assert_eq!(*m.id(), ModuleId::new("http-logger", "0.1.0").unwrap());
    assert_eq!(m.description(), Some("Logs HTTP requests"));
    assert_eq!(m.exports(), ["logger:log@1.0"]);
    assert_eq!(m.imports(), ["wasi:cli/stdio@0.2", "wasi:http@0.2.0"]);
    let caps = m.capabilities();
    assert_eq!(caps.wasi, ["wasi:cli/stdio", "wasi:random"]);
    assert_eq!(caps.filesystem, ["/logs"]);
    assert_eq!(caps.network, ["tcp:localhost:8080"]);
    assert_eq!(caps.environment, ["DEBUG"]);
    assert_eq!(m.memory_max(), Some(67_108_864));
    assert_eq!(m.cpu_shares(), Some(512));
    assert!(m.storage().is_none(), "no storage table: no storage");
}

/// Interfaces as tables keyed by name, the way Arcella stores them, and
/// fields mini does not know outside its own table.
const INTERFACE_TABLES: &str = r#"
[component]
name = "auth"
version = "2.10.5"
future_arcella_field = { anything = true }

[component.exports."auth:validator@1.0"]
instance = { exports = { check = { func = { params = [["token", "string"]], results = ["bool"] } } } }

[component.imports."wasi:cli/stdio@0.2"]
unknown = {}

[component.imports."wasi:clocks/wall-clock@0.2.0"]
unknown = { debug = "from registry" }

[component.capabilities]
something_new = 3
"#;

#[test]
fn interface_tables_instead_of_arrays() {
    let m = manifest(INTERFACE_TABLES);
    assert_eq!(m.id().to_string(), "auth@2.10.5");
    assert_eq!(m.exports(), ["auth:validator@1.0"]);
    let mut imports = m.imports().to_vec();
    imports.sort();
    assert_eq!(
        imports,
        ["wasi:cli/stdio@0.2", "wasi:clocks/wall-clock@0.2.0"]
    );
    assert!(m.storage().is_none());
    assert_eq!(m.memory_max(), None);
}

/// mini's full storage table.
const FULL_STORAGE: &str = r#"
[component]
name = "billing"
version = "1.2.0"
imports = ["mini:storage/store@0.2.0", "mini:storage/queue@0.2.0"]

[component.capabilities.resources]
memory_max = 134217728

[component.capabilities.storage]
journals = ["invoices", "audit-*"]
states = ["ledger"]
snapshots = ["exports-*"]
queues = ["outbox", "retry-*"]
buckets = ["*"]
shared_queues = [
    { name = "jobs", module = "scheduler" },
    { name = "mail", module = "mailer_2" },
]
quota_mb = 512
max_record_kb = 64
max_state_mb = 16
max_handles = 32
time_limit_ms = 5000
fuel = 1000000000
"#;

#[test]
fn full_storage_table() {
    let m = manifest(FULL_STORAGE);
    assert_eq!(m.id().to_string(), "billing@1.2.0");
    assert_eq!(m.memory_max(), Some(134_217_728));
    let expected = StorageCapabilities {
        journals: patterns(&["invoices", "audit-*"]),
        states: patterns(&["ledger"]),
        snapshots: patterns(&["exports-*"]),
        queues: patterns(&["outbox", "retry-*"]),
        buckets: patterns(&["*"]),
        shared_queues: vec![
            SharedQueue::new("jobs", "scheduler").unwrap(),
            SharedQueue::new("mail", "mailer_2").unwrap(),
        ],
        quota_mb: Some(512),
        max_record_kb: Some(64),
        max_state_mb: Some(16),
        max_handles: Some(32),
        time_limit_ms: Some(5000),
        fuel: Some(1_000_000_000),
    };
    let storage = m.storage().unwrap();
    assert_eq!(*storage, expected);

    assert!(storage.allows(StorageKind::Journal, "invoices"));
    assert!(storage.allows(StorageKind::Journal, "audit-2025-06"));
    assert!(!storage.allows(StorageKind::Journal, "ledger"));
    assert!(storage.allows(StorageKind::State, "ledger"));
    assert!(storage.allows(StorageKind::Snapshot, "exports-q1"));
    assert!(storage.allows(StorageKind::Queue, "retry-1"));
    assert!(!storage.allows(StorageKind::Queue, "jobs"));
    assert!(storage.allows(StorageKind::Bucket, "anything"));
    assert!(storage.allows_shared_queue("scheduler", "jobs"));
    assert!(storage.allows_shared_queue("mailer_2", "mail"));
    assert!(!storage.allows_shared_queue("scheduler", "mail"));
}

/// Arcella's `security` table is accepted and ignored; an empty storage
/// table grants nothing.
const WITH_SECURITY: &str = r#"
[component]
name = "enclave_mod"
version = "0.0.1"

[component.capabilities.security]
requires_tee = true
allowed_syscalls = ["read", "write"]

[component.capabilities.storage]
"#;

#[test]
fn security_is_accepted() {
    let m = manifest(WITH_SECURITY);
    assert_eq!(m.id().to_string(), "enclave_mod@0.0.1");
    let storage = m.storage().unwrap();
    assert_eq!(*storage, StorageCapabilities::default());
    assert!(!storage.allows(StorageKind::Journal, "anything"));
}

#[test]
fn bad_module_ids_in_a_manifest_are_refused() {
    let with = |name: &str, version: &str| {
        format!("[component]\nname = \"{name}\"\nversion = \"{version}\"\n")
    };
    let long = "n".repeat(129);
    for (name, version, rule) in [
        (
            "a",
            "1.2",
            "version \"1.2\" must be three numbers major.minor.patch",
        ),
        ("a", "01.2.3", "leading zero"),
        (
            "a b",
            "1.0.0",
            "name \"a b\" may contain only ASCII letters, digits, '-' and '_'",
        ),
        (long.as_str(), "1.0.0", "at most 128 characters"),
        ("", "1.0.0", "must not be empty"),
        ("a", "1.0.0+build", "must be three numbers"),
    ] {
        let e = manifest_err(&with(name, version));
        assert!(matches!(e, ManifestError::InvalidId { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains(rule), "{name}@{version}: {msg}");
    }
}

#[test]
fn misspelled_storage_field_is_named() {
    let e = manifest_err(
        "[component]\nname = \"a\"\nversion = \"1.0.0\"\n\n\
         [component.capabilities.storage]\njornals = [\"x\"]\n",
    );
    let msg = e.to_string();
    assert!(msg.contains("jornals"), "{msg}");
    assert!(msg.contains("line 6"), "{msg}");

    let e = manifest_err(
        "[component]\nname = \"a\"\nversion = \"1.0.0\"\n\n\
         [component.capabilities.storage]\n\
         shared_queues = [{ name = \"jobs\", module = \"s\", mode = \"rw\" }]\n",
    );
    assert!(e.to_string().contains("mode"), "{e}");
}

#[test]
fn bad_patterns_are_refused() {
    for (pattern, rule) in [
        ("a*b", "'*' only as its last character"),
        ("../x", "must not start with '.'"),
        ("", "name pattern is empty"),
        (".hidden", "must not start with '.'"),
        ("a/b", "forbidden character '/'"),
    ] {
        let text = format!(
            "[component]\nname = \"a\"\nversion = \"1.0.0\"\n\
             [component.capabilities.storage]\nqueues = [\"ok\", \"{pattern}\"]\n"
        );
        let e = manifest_err(&text);
        assert!(matches!(e, ManifestError::Parse { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains(rule) && msg.contains("line 5"),
            "{pattern:?}: {msg}"
        );
    }
    for (entry, rule) in [
        (
            r#"{ name = "jobs*", module = "s" }"#,
            "must be an exact name",
        ),
        (r#"{ name = "a/b", module = "s" }"#, "forbidden character"),
        (
            r#"{ name = "jobs", module = "s@1.0.0" }"#,
            "may contain only ASCII",
        ),
        (r#"{ name = "jobs" }"#, "module"),
    ] {
        let text = format!(
            "[component]\nname = \"a\"\nversion = \"1.0.0\"\n\
             [component.capabilities.storage]\nshared_queues = [{entry}]\n"
        );
        let msg = manifest_err(&text).to_string();
        assert!(msg.contains(rule), "{entry}: {msg}");
    }
}

#[test]
fn manifest_without_component_table_is_refused() {
    let e = manifest_err("[deployment]\nmodule_id = \"a@1.0.0\"\n");
    assert!(e.to_string().contains("no [component] table"), "{e}");
    let e = manifest_err("");
    assert!(e.to_string().contains("no [component] table"), "{e}");
    let e = manifest_err("[component]\nname = \"a\"\n");
    assert!(e.to_string().contains("version"), "{e}");
    let e = manifest_err("[component\n");
    assert!(matches!(e, ManifestError::Parse { .. }), "{e:?}");
    let e = manifest_err("[component]\nname = \"a\"\nversion = \"1.0.0\"\nimports = 3\n");
    assert!(e.to_string().contains("interface"), "{e}");
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mini-manifest-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn files_are_read_and_errors_name_them() {
    let good = scratch("billing.component.toml");
    std::fs::write(&good, FULL_STORAGE).unwrap();
    let wasm = good.with_file_name("billing.wasm");
    assert_eq!(ComponentManifest::path_next_to(&wasm), good);
    assert_eq!(
        ComponentManifest::from_file(&good).unwrap(),
        manifest(FULL_STORAGE)
    );

    let bad = scratch("typo.component.toml");
    std::fs::write(
        &bad,
        "[component]\nname = \"a\"\nversion = \"1.0.0\"\n\
         [component.capabilities.storage]\njornals = []\n",
    )
    .unwrap();
    let e = ComponentManifest::from_file(&bad).unwrap_err();
    assert_eq!(e.path(), Some(bad.as_path()));
    let msg = e.to_string();
    assert!(
        msg.contains("jornals") && msg.contains(&*bad.to_string_lossy()),
        "{msg}"
    );

    let bad_id = scratch("badid.component.toml");
    std::fs::write(&bad_id, "[component]\nname = \"a\"\nversion = \"1.2\"\n").unwrap();
    let msg = ComponentManifest::from_file(&bad_id)
        .unwrap_err()
        .to_string();
    assert!(msg.contains(&*bad_id.to_string_lossy()), "{msg}");

    let missing = scratch("missing.component.toml");
    let e = ComponentManifest::from_file(&missing).unwrap_err();
    assert!(matches!(e, ManifestError::Io { .. }), "{e:?}");
    assert!(e.to_string().contains(&*missing.to_string_lossy()), "{e}");
}
