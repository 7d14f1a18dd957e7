//! Deployment specs in Arcella's format parse to the expected values; bad
//! ones are refused with a message that names what is wrong.

use std::path::Path;

use mini_manifest::{DeploymentSpec, IsolationMode, ModuleId, ResourceRequirements, StartupConfig};

#[test]
fn deployment_with_string_module_id() {
    let spec = DeploymentSpec::from_toml_str(
        r#"
[deployment]
module_id = "http-logger@0.1.0"
group = "default"
replicas = 3

[deployment.overrides]
isolation = "worker"
trusted = false
async = true

[deployment.overrides.startup]
entrypoint = "init"
shutdown = "stop"
timeout_seconds = 30

[deployment.overrides.resources]
memory_mb = 64
fuel = 1000000
cpu_shares = 256
"#,
    )
    .unwrap();
    assert_eq!(spec.module_id().to_string(), "http-logger@0.1.0");
    assert_eq!(spec.group(), "default");
    assert_eq!(spec.replicas(), 3);
    let o = spec.overrides();
    assert_eq!(o.isolation, Some(IsolationMode::Worker));
    assert_eq!(o.trusted, Some(false));
    assert_eq!(o.is_async, Some(true));
    assert_eq!(
        o.startup,
        Some(StartupConfig {
            entrypoint: Some("init".into()),
            shutdown: Some("stop".into()),
            timeout_seconds: Some(30),
        })
    );
    assert_eq!(
        o.resources,
        Some(ResourceRequirements {
            memory_mb: Some(64),
            fuel: Some(1_000_000),
            cpu_shares: Some(256),
        })
    );
}

#[test]
fn deployment_with_table_module_id() {
    let spec = DeploymentSpec::from_toml_str(
        r#"
[deployment]
group = "core"
replicas = 1
some_future_field = "x"

[deployment.module_id]
name = "auth"
version = "2.10.5"

[deployment.overrides]
isolation = "main"
trusted = true

[deployment.overrides.resources]
memory_mb = 1
"#,
    )
    .unwrap();
    assert_eq!(*spec.module_id(), ModuleId::new("auth", "2.10.5").unwrap());
    assert_eq!(spec.group(), "core");
    assert_eq!(spec.replicas(), 1);
    assert_eq!(spec.overrides().isolation, Some(IsolationMode::Main));
    assert_eq!(spec.overrides().trusted, Some(true));
    assert_eq!(spec.overrides().is_async, None);
    assert_eq!(spec.overrides().startup, None);
    assert_eq!(
        spec.overrides().resources,
        Some(ResourceRequirements {
            memory_mb: Some(1),
            ..Default::default()
        })
    );
}

#[test]
fn deployment_without_overrides() {
    let spec = DeploymentSpec::from_toml_str(
        "[deployment]\nmodule_id = \"a@0.0.1\"\ngroup = \"g\"\nreplicas = 1\n",
    )
    .unwrap();
    assert_eq!(*spec.overrides(), Default::default());
}

fn deployment_err(text: &str) -> String {
    match DeploymentSpec::from_toml_str(text) {
        Ok(spec) => panic!("accepted {spec:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_deployments_are_refused() {
    let base = |rest: &str| format!("[deployment]\n{rest}\n");
    let e = deployment_err(&base(
        "module_id = \"a@1.0.0\"\ngroup = \"g\"\nreplicas = 0",
    ));
    assert!(e.contains("replicas must be at least 1"), "{e}");
    let e = deployment_err(&base("module_id = \"a@1.0.0\"\ngroup = \"\"\nreplicas = 1"));
    assert!(e.contains("group must not be empty"), "{e}");
    let e = deployment_err(&base("module_id = \"a@1.2\"\ngroup = \"g\"\nreplicas = 1"));
    assert!(
        e.contains("must be three numbers") && e.contains("line 2"),
        "{e}"
    );
    let e = deployment_err(&base(
        "module_id = { name = \"a b\", version = \"1.0.0\" }\ngroup = \"g\"\nreplicas = 1",
    ));
    assert!(e.contains("may contain only ASCII"), "{e}");
    let e = deployment_err(&base(
        "module_id = \"a@1.0.0\"\ngroup = \"g\"\nreplicas = 1\n\
         [deployment.overrides.resources]\nmemory_mb = 0",
    ));
    assert!(e.contains("memory_mb must be at least 1"), "{e}");
    let e = deployment_err(&base(
        "module_id = \"a@1.0.0\"\ngroup = \"g\"\nreplicas = 1\n\
         [deployment.overrides.resources]\nfuel = 0",
    ));
    assert!(e.contains("fuel must be at least 1"), "{e}");
    let e = deployment_err(&base(
        "module_id = \"a@1.0.0\"\ngroup = \"g\"\nreplicas = 1\n\
         [deployment.overrides]\nisolation = \"thread\"",
    ));
    assert!(e.contains("thread"), "{e}");
    let e = deployment_err("[component]\nname = \"a\"\nversion = \"1.0.0\"\n");
    assert!(e.contains("no [deployment] table"), "{e}");
    let e = deployment_err(&base("group = \"g\"\nreplicas = 1"));
    assert!(e.contains("module_id"), "{e}");
}

#[test]
fn files_are_read_and_errors_name_them() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mini-manifest-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("api.deployment.toml");
    std::fs::write(
        &good,
        "[deployment]\nmodule_id = \"a@1.0.0\"\ngroup = \"g\"\nreplicas = 2\n",
    )
    .unwrap();
    let spec = DeploymentSpec::from_file(&good).unwrap();
    assert_eq!((spec.module_id().name(), spec.replicas()), ("a", 2));
    assert_eq!(
        DeploymentSpec::deployment_id_of(&good).as_deref(),
        Some("api")
    );

    let spec = dir.join("web.deployment.toml");
    std::fs::write(
        &spec,
        "[deployment]\nmodule_id = \"a@1.0.0\"\ngroup = \"g\"\nreplicas = 0\n",
    )
    .unwrap();
    assert_eq!(
        DeploymentSpec::deployment_id_of(&spec).as_deref(),
        Some("web")
    );
    let msg = DeploymentSpec::from_file(&spec).unwrap_err().to_string();
    assert!(
        msg.contains("replicas") && msg.contains(&*spec.to_string_lossy()),
        "{msg}"
    );
}

#[test]
fn minis_own_table_gives_arguments_and_environment_and_names_a_misspelled_field() {
    let spec = mini_manifest::DeploymentSpec::from_toml_str(
        r#"
        [deployment]
        module_id = "producer@1.0.0"
        group = "default"
        replicas = 1

        [deployment.mini]
        args = ["100", "--fast"]
        env = { LOG = "debug" }
        "#,
    )
    .expect("parses");
    assert_eq!(spec.mini().args, ["100", "--fast"]);
    assert_eq!(
        spec.mini().env.get("LOG").map(String::as_str),
        Some("debug")
    );
    let err = mini_manifest::DeploymentSpec::from_toml_str(
        "[deployment]\nmodule_id = \"p@1.0.0\"\ngroup = \"g\"\nreplicas = 1\n[deployment.mini]\nargz = []\n",
    )
    .expect_err("misspelled");
    assert!(err.to_string().contains("argz"), "{err}");
}
