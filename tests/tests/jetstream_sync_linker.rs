//! A sync embedder (`add_to_linker_sync`, no executor on the calling
//! thread) runs components on the JetStream backend: the backend's calls
//! run on the runtime the host was connected on, and the host functions
//! wait for them inline.

use mini_host::{MiniCtx, MiniHost};
use mini_jetstream::JetStreamOptions;
use mini_tests::nats::NatsServer;
use mini_tests::{block_on, guest_component, mini_ctx};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::bindings::sync::Command;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

struct SyncHost {
    wasi: wasmtime_wasi::WasiCtx,
    mini: MiniCtx,
    table: mini_host::ResourceTable,
}

impl wasmtime_wasi::WasiView for SyncHost {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl mini_host::MiniView for SyncHost {
    fn mini(&mut self) -> mini_host::MiniCtxView<'_> {
        mini_host::MiniCtxView {
            ctx: &mut self.mini,
            table: &mut self.table,
        }
    }
}

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
    let engine = Engine::default();
    let mut linker = Linker::<SyncHost>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("wasi");
    mini_host::add_to_linker_sync(&mut linker).expect("mini");
    let run = |component: &str, args: &[&str]| -> anyhow::Result<String> {
        let wasm = Component::from_file(&engine, guest_component(component))
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let stdout = MemoryOutputPipe::new(1 << 20);
        let mut argv = vec![component];
        argv.extend_from_slice(args);
        let state = SyncHost {
            wasi: wasmtime_wasi::WasiCtx::builder()
                .stdout(stdout.clone())
                .args(&argv)
                .build(),
            mini: mini_ctx(&host, data.path(), "sync"),
            table: mini_host::ResourceTable::new(),
        };
        let mut store = Store::new(&engine, state);
        let command = Command::instantiate(&mut store, &wasm, &linker)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let result = command
            .wasi_cli_run()
            .call_run(&mut store)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let out = String::from_utf8_lossy(&stdout.contents()).into_owned();
        anyhow::ensure!(result.is_ok(), "{component} {args:?} failed: {out}");
        Ok(out)
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
