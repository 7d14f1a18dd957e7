//! A sync embedder (`add_to_linker_sync`, no executor on the calling
//! thread) runs components on the JetStream backend: the backend's calls
//! run on the runtime the host was connected on, and the host functions
//! wait for them inline.

use mini_host::MiniHost;
use mini_jetstream::JetStreamOptions;
use mini_tests::block_on;
use mini_tests::nats::NatsServer;
use mini_tests::sync_linker::SyncLinker;

#[test]
fn the_sync_linker_runs_journals_and_states_on_jetstream() -> anyhow::Result<()> {
    let Some(server) = NatsServer::start_single()? else {
        return Ok(());
    };
    // Connected on the tests' runtime, which outlives the host; the calls
    // below come from this thread, outside any runtime.
    let host = block_on(MiniHost::jetstream(
        &server.url(),
        JetStreamOptions::default(),
    ))?;
    assert_eq!(host.backend().name(), "JetStream");
    let data = tempfile::tempdir()?;
    let linker = SyncLinker::new()?;
    let run = |component: &str, args: &[&str]| -> anyhow::Result<String> {
        let run = linker.run(&host, data.path(), "sync", component, args)?;
        anyhow::ensure!(run.ok, "{component} {args:?} failed: {}", run.stdout);
        Ok(run.stdout)
    };
    assert_eq!(
        run("counter", &["1"])?.trim(),
        "total = 1 (records: 1, last seq: 1)"
    );
    assert_eq!(
        run("counter", &["2"])?.trim(),
        "total = 3 (records: 2, last seq: 2)"
    );
    run("registry", &["bulk", "12", "--batch", "5"])?;
    run("registry", &["checkpoint"])?;
    let stats = run("registry", &["stats"])?;
    for line in [
        "seq 12",
        "checkpoint-seq 12",
        "recovered-snapshot 12",
        "replayed 0",
    ] {
        assert!(stats.lines().any(|l| l == line), "no {line:?} in\n{stats}");
    }
    // Nothing of it went to the local data directory.
    assert!(
        std::fs::read_dir(data.path())?.next().is_none(),
        "local files were written"
    );
    Ok(())
}
