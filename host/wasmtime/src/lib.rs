//! The wasmtime host of `mini:storage`: durable storage for WebAssembly
//! components.
//!
//! This crate implements the WIT interfaces of the package
//! `mini:storage@0.1.0` (see the `wit/` directory of the repository) on top
//! of the [`mini_engine`] storage engine, for wasmtime's component model with
//! async host functions (an fsync never blocks the async executor). It is
//! built like `wasmtime_wasi::p2`:
//!
//! * a per-instance context, [`MiniCtx`], made by [`MiniCtxBuilder`]: the
//!   instance's namespace directory and its limits (record size, open
//!   handles, disk quota, segment size);
//! * a view trait, [`MiniView`], that the embedder implements for the `T`
//!   of its `Store<T>` to hand out the context and the [`ResourceTable`];
//! * [`add_to_linker_async`], which adds the interfaces to a
//!   [`Linker<T>`](wasmtime::component::Linker);
//! * a process-wide registry of open journals, [`MiniHost`], so instances
//!   that write the same journal share one handle (and its fsyncs).
//!
//! The interfaces, one module each: [`store`] (journals), [`snapshot`]
//! (snapshot stores), [`state`] (states: the guest folds, the host logs
//! mutations and keeps snapshots) and [`queue`] (durable queues, which the
//! embedder can grant to several instances to share).
//!
//! An instance's journals live in `<data-root>/<namespace>/journal/<name>/`,
//! its states in `<data-root>/<namespace>/state/<name>/`, its snapshot
//! stores in `<data-root>/<namespace>/snapshot/<name>/` and its queues in
//! `<data-root>/<namespace>/queue/<name>/`;
//! names are checked, so nothing escapes the namespace. Every failure a
//! guest can cause comes back to it as the WIT `error` variant; the host
//! neither panics nor traps on guest input.
//!
//! # Example: an embedder
//!
//! ```
//! use mini_host::{MiniCtx, MiniCtxView, MiniHost, MiniView};
//! use wasmtime::component::{Linker, ResourceTable};
//! use wasmtime::{Config, Engine, Store};
//! use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
//!
//! struct MyState {
//!     wasi: WasiCtx,
//!     mini: MiniCtx,
//!     table: ResourceTable,
//! }
//!
//! impl WasiView for MyState {
//!     fn ctx(&mut self) -> WasiCtxView<'_> {
//!         WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
//!     }
//! }
//!
//! impl MiniView for MyState {
//!     fn mini(&mut self) -> MiniCtxView<'_> {
//!         MiniCtxView { ctx: &mut self.mini, table: &mut self.table }
//!     }
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let engine = Engine::new(&Config::new())?;
//!     let mut linker = Linker::<MyState>::new(&engine);
//!     wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
//!     mini_host::add_to_linker_async(&mut linker)?;
//!
//!     // One registry per process; one context per instance.
//!     let host = MiniHost::new();
//!     let data = tempfile::tempdir()?;
//!     let state = MyState {
//!         wasi: WasiCtx::builder().inherit_stdio().build(),
//!         mini: MiniCtx::builder(data.path(), "my-plugin")
//!             .host(&host)
//!             .disk_quota(64 * 1024 * 1024)
//!             .build()?,
//!         table: ResourceTable::new(),
//!     };
//!     let store = Store::new(&engine, state);
//!     // ... `linker.instantiate_async(&mut store, &component).await` ...
//!     # drop(store);
//!     Ok(())
//! }
//! ```
//!
//! To simply run a `wasi:cli/command` component with its storage and limits,
//! use [`runner::Runner`] (what the `mini run` command does).
#![warn(missing_docs)]

pub mod access;
pub mod bindings;
pub mod ctx;
mod disk;
mod error;
pub mod limits;
pub mod queue;
pub mod registry;
pub mod runner;
pub mod snapshot;
pub mod state;
mod stop;
pub mod store;
mod view;

use wasmtime::component::{HasData, Linker};

pub use crate::access::Access;
pub use crate::ctx::{CtxError, MiniCtx, MiniCtxBuilder, MiniCtxView, MiniView};
pub use crate::limits::{LimitOutOfRange, Limits};
pub use crate::queue::QueueHandle;
pub use crate::registry::MiniHost;
pub use crate::snapshot::SnapshotsHandle;
pub use crate::state::StateHandle;
pub use crate::stop::StopSignal;
pub use crate::store::{CursorHandle, JournalHandle};
pub use wasmtime::component::ResourceTable;

/// Adds every `mini:storage` interface to `linker`, implemented with the
/// [`MiniCtx`] that [`MiniView::mini`] returns for the store's data.
///
/// The host functions are async: instantiate with
/// `instantiate_async` and call exports with `call_async` (or the async
/// bindings of `wasmtime_wasi::p2::bindings::Command`), inside a tokio
/// runtime. `queue.subscribe` hands out `wasi:io/poll` pollables: guests
/// wait on them through the `wasi:io` that
/// `wasmtime_wasi::p2::add_to_linker_async` adds.
pub fn add_to_linker_async<T: MiniView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    bindings::store::add_to_linker::<T, Mini>(linker, T::mini)?;
    bindings::snapshot::add_to_linker::<T, Mini>(linker, T::mini)?;
    bindings::state::add_to_linker::<T, Mini>(linker, T::mini)?;
    bindings::queue::add_to_linker::<T, Mini>(linker, T::mini)
}

/// The [`HasData`] marker of this crate's host functions: its data is a
/// [`MiniCtxView`]. Use it to call the generated `add_to_linker` functions of
/// [`bindings`] one interface at a time.
pub struct Mini;

impl HasData for Mini {
    type Data<'a> = MiniCtxView<'a>;
}
