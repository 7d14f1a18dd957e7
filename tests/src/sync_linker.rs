//! A sync embedder: its store data and component runs through
//! `add_to_linker_sync`, from a thread outside any executor.

use std::path::Path;

use mini_host::{MiniCtx, MiniHost};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::bindings::sync::Command;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use crate::{guest_component, mini_ctx};

/// The store data of a sync embedder: WASI, mini, one resource table.
pub struct SyncHost {
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

/// An engine and a linker with WASI and mini added by their
/// `add_to_linker_sync`.
pub struct SyncLinker {
    engine: Engine,
    linker: Linker<SyncHost>,
}

/// What a component run through the sync linker did.
#[derive(Debug)]
pub struct SyncRun {
    /// Whether `run` returned `ok`.
    pub ok: bool,
    /// What it printed.
    pub stdout: String,
}

impl SyncLinker {
    /// A default engine and the sync linker over it.
    pub fn new() -> anyhow::Result<SyncLinker> {
        let engine = Engine::default();
        let mut linker = Linker::<SyncHost>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        mini_host::add_to_linker_sync(&mut linker).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok(SyncLinker { engine, linker })
    }

    /// Runs the guest component `component` with `args` (after its name)
    /// on `host`, its storage in `data_dir`/`namespace`, on this thread.
    pub fn run(
        &self,
        host: &MiniHost,
        data_dir: &Path,
        namespace: &str,
        component: &str,
        args: &[&str],
    ) -> anyhow::Result<SyncRun> {
        let wasm = Component::from_file(&self.engine, guest_component(component))
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let stdout = MemoryOutputPipe::new(1 << 20);
        let mut argv = vec![component];
        argv.extend_from_slice(args);
        let state = SyncHost {
            wasi: wasmtime_wasi::WasiCtx::builder()
                .stdout(stdout.clone())
                .args(&argv)
                .build(),
            mini: mini_ctx(host, data_dir, namespace),
            table: mini_host::ResourceTable::new(),
        };
        let mut store = Store::new(&self.engine, state);
        let command = Command::instantiate(&mut store, &wasm, &self.linker)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let result = command
            .wasi_cli_run()
            .call_run(&mut store)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok(SyncRun {
            ok: result.is_ok(),
            stdout: String::from_utf8_lossy(&stdout.contents()).into_owned(),
        })
    }
}
