//! A plugin host that links only mini's storage, with blocking host calls:
//! no async runtime, no tokio, no WASI. It runs a component that exports
//! `run: func(name: string, count: u32) -> result<string, string>` (the
//! guest example `plugin-sync`) over a data directory.
//!
//! ```text
//! mini-sync-embedder COMPONENT.wasm DATA_DIR JOURNAL COUNT
//! ```
//!
//! Prints what `run` returned; exits 0 if it was `ok`, 1 if `err`, 2 on a
//! usage error, 3 if the component could not be run.

use std::process::ExitCode;

use mini_host::{MiniCtx, MiniCtxView, MiniHost, MiniView, ResourceTable};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};

/// The store data of one plugin instance.
struct Plugin {
    mini: MiniCtx,
    table: ResourceTable,
}

impl MiniView for Plugin {
    fn mini(&mut self) -> MiniCtxView<'_> {
        MiniCtxView {
            ctx: &mut self.mini,
            table: &mut self.table,
        }
    }
}

type RunResult = Result<String, String>;

fn run(component: &str, data: &str, journal: &str, count: u32) -> wasmtime::Result<RunResult> {
    let engine = Engine::default();
    let component = Component::from_file(&engine, component)?;
    let mut linker = Linker::<Plugin>::new(&engine);
    mini_host::add_to_linker_sync(&mut linker)?;
    // One registry for every instance of the process.
    let host = MiniHost::new();
    let plugin = Plugin {
        mini: MiniCtx::builder(&host, data, "plugin").build()?,
        table: ResourceTable::new(),
    };
    let mut store = Store::new(&engine, plugin);
    let instance = linker.instantiate(&mut store, &component)?;
    let run = instance.get_typed_func::<(&str, u32), (RunResult,)>(&mut store, "run")?;
    let (result,) = run.call(&mut store, (journal, count))?;
    Ok(result)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [component, data, journal, count] = args.as_slice() else {
        eprintln!("usage: mini-sync-embedder COMPONENT.wasm DATA_DIR JOURNAL COUNT");
        return ExitCode::from(2);
    };
    let Ok(count) = count.parse() else {
        eprintln!("COUNT must be a number, not {count:?}");
        return ExitCode::from(2);
    };
    match run(component, data, journal, count) {
        Ok(Ok(out)) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Ok(Err(err)) => {
            println!("error: {err}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("cannot run {component}: {e:#}");
            ExitCode::from(3)
        }
    }
}
