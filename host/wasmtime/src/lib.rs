//! The wasmtime host of `mini:storage`: durable storage for WebAssembly
//! components.
//!
//! This crate implements the WIT interfaces of the package
//! `mini:storage@0.2.0` (see the `wit/` directory of the repository) on top
//! of the [`mini_engine`] storage engine, for wasmtime's component model.
//! It is built like `wasmtime_wasi::p2`:
//!
//! * a per-instance context, [`MiniCtx`], made by [`MiniCtxBuilder`]: the
//!   instance's namespace directory and its limits (record size, open
//!   handles, disk quota, segment size);
//! * a view trait, [`MiniView`], that the embedder implements for the `T`
//!   of its `Store<T>` to hand out the context and the [`ResourceTable`];
//! * [`add_to_linker_async`] and [`add_to_linker_sync`], which add the
//!   interfaces to a [`Linker<T>`](wasmtime::component::Linker): async host
//!   functions that keep fsyncs off the executor, or blocking ones for an
//!   embedder with no async runtime;
//! * the registry of what a process holds open, [`MiniHost`]: the embedder
//!   makes one and gives it to every context, so instances that write the
//!   same journal share one handle (and its fsyncs).
//!
//! The interfaces, one module each: [`store`] (journals), [`snapshot`]
//! (snapshot stores), [`state`] (states: the guest folds, the host logs
//! mutations and keeps snapshots), [`queue`] (durable queues, which the
//! embedder can grant to several instances to share) and, with the `wasi`
//! feature, `queue-poll` (`wasi:io` pollables for queues). Beside them,
//! [`keyvalue`] serves the standard `wasi:keyvalue` interfaces (versions
//! `0.2.0-draft2` and `0.2.0-draft`) on the same engine, durably, so
//! components written for other hosts run unchanged.
//!
//! An instance's journals live in `<data-root>/<namespace>/journal/<name>/`,
//! its states in `<data-root>/<namespace>/state/<name>/`, its snapshot
//! stores in `<data-root>/<namespace>/snapshot/<name>/` and its queues in
//! `<data-root>/<namespace>/queue/<name>/`;
//! names are checked, so nothing escapes the namespace. Every failure a
//! guest can cause comes back to it as the WIT `error` variant; the host
//! neither panics nor traps on guest input.
//!
//! # Cargo features
//!
//! * `tokio` (default): async host calls run their blocking work through
//!   tokio (`block_in_place` on a multi-threaded runtime, the blocking pool
//!   on a current-thread one), and `pop-wait` waits without a thread.
//! * `wasi` (default): `mini:storage/queue-poll`, whose pollables are
//!   wasmtime-wasi's.
//! * `runner`: [`runner`], which compiles and runs `wasi:cli/command`
//!   components (it turns on wasmtime's compiler and cache).
//! * `jetstream`: [`Backend::JetStream`], journals on NATS JetStream
//!   streams (mini-jetstream, async-nats): [`MiniHost::jetstream`].
//!
//! Without default features the crate needs of wasmtime only `runtime`,
//! `component-model`, `async` and `std`: an embedder that ships precompiled
//! components drops the compiler, and a sync embedder has no tokio.
//!
//! # Example: an async embedder
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
//!     let mut config = Config::new();
//!     config.async_support(true);
//!     let engine = Engine::new(&config)?;
//!     let mut linker = Linker::<MyState>::new(&engine);
//!     wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
//!     mini_host::add_to_linker_async(&mut linker)?;
//!
//!     // One registry per process; one context per instance.
//!     let host = MiniHost::new();
//!     let data = tempfile::tempdir()?;
//!     let state = MyState {
//!         wasi: WasiCtx::builder().inherit_stdio().build(),
//!         mini: MiniCtx::builder(&host, data.path(), "my-plugin")
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
//! use `runner::Runner` (feature `runner`; what the `mini run` command does).
#![warn(missing_docs)]

pub mod access;
pub mod backend;
pub mod bindings;
pub mod calls;
pub mod ctx;
mod disk;
mod error;
pub mod keyvalue;
pub mod limits;
mod offload;
pub mod queue;
pub mod registry;
#[cfg(feature = "runner")]
pub mod runner;
pub mod snapshot;
pub mod state;
mod stop;
pub mod store;
mod sync;
mod view;

use wasmtime::component::{HasData, Linker};

pub use crate::access::Access;
pub use crate::backend::Backend;
#[cfg(feature = "jetstream")]
pub use crate::backend::JetStreamBackend;
pub use crate::ctx::{CtxError, MiniCtx, MiniCtxBuilder, MiniCtxView, MiniView};
pub use crate::error::HostError;
pub use crate::limits::{LimitOutOfRange, Limits};
pub use crate::queue::QueueHandle;
pub use crate::registry::MiniHost;
pub use crate::snapshot::SnapshotsHandle;
pub use crate::state::StateHandle;
pub use crate::stop::StopSignal;
pub use crate::store::{CursorHandle, JournalHandle};
pub use wasmtime::component::ResourceTable;

/// Adds every `mini:storage` interface and both versions of
/// `wasi:keyvalue` ([`keyvalue`]) to `linker` with async host functions, implemented with the [`MiniCtx`] that [`MiniView::mini`]
/// returns for the store's data.
///
/// Use it with an async [`Config`](wasmtime::Config) (`async_support`):
/// instantiate with `instantiate_async`, call exports with `call_async`.
/// With the `tokio` feature (default) a call's blocking work (a write and
/// its fsync) stays off the executor inside a tokio runtime. With the `wasi`
/// feature it adds `queue-poll` too, whose pollables guests wait on through
/// the `wasi:io` that `wasmtime_wasi::p2::add_to_linker_async` adds.
///
/// ```
/// use mini_host::{MiniCtx, MiniCtxView, MiniHost, MiniView, ResourceTable};
/// use wasmtime::component::Linker;
/// use wasmtime::{Config, Engine};
///
/// struct Plugin {
///     mini: MiniCtx,
///     table: ResourceTable,
/// }
/// impl MiniView for Plugin {
///     fn mini(&mut self) -> MiniCtxView<'_> {
///         MiniCtxView { ctx: &mut self.mini, table: &mut self.table }
///     }
/// }
///
/// let mut config = Config::new();
/// config.async_support(true);
/// let engine = Engine::new(&config)?;
/// let mut linker = Linker::<Plugin>::new(&engine);
/// mini_host::add_to_linker_async(&mut linker)?;
/// # let _ = MiniHost::new();
/// # Ok::<(), wasmtime::Error>(())
/// ```
pub fn add_to_linker_async<T: MiniView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    bindings::store::add_to_linker::<T, Mini>(linker, T::mini)?;
    bindings::snapshot::add_to_linker::<T, Mini>(linker, T::mini)?;
    bindings::state::add_to_linker::<T, Mini>(linker, T::mini)?;
    bindings::queue::add_to_linker::<T, Mini>(linker, T::mini)?;
    keyvalue::add_to_linker_async(linker)?;
    add_queue_poll(linker)
}

/// Adds every `mini:storage` interface and both versions of
/// `wasi:keyvalue` ([`keyvalue`]) to `linker` with blocking host functions: each call does its work (a write and its fsync) on the thread
/// that calls into the guest, and `pop-wait` blocks that thread. For a
/// wasmtime embedder without an async runtime: with default features off,
/// nothing of tokio is built.
///
/// ```
/// use mini_host::{MiniCtx, MiniCtxView, MiniHost, MiniView, ResourceTable};
/// use wasmtime::component::Linker;
/// use wasmtime::{Engine, Store};
///
/// struct Plugin {
///     mini: MiniCtx,
///     table: ResourceTable,
/// }
/// impl MiniView for Plugin {
///     fn mini(&mut self) -> MiniCtxView<'_> {
///         MiniCtxView { ctx: &mut self.mini, table: &mut self.table }
///     }
/// }
///
/// let engine = Engine::default();
/// let mut linker = Linker::<Plugin>::new(&engine);
/// mini_host::add_to_linker_sync(&mut linker)?;
///
/// let host = MiniHost::new();
/// let data = tempfile::tempdir()?;
/// let plugin = Plugin {
///     mini: MiniCtx::builder(&host, data.path(), "plugin").build()?,
///     table: ResourceTable::new(),
/// };
/// let store = Store::new(&engine, plugin);
/// // ... `linker.instantiate(&mut store, &component)?` ...
/// # drop(store);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn add_to_linker_sync<T: MiniView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    bindings::sync::store::add_to_linker::<T, Mini>(linker, T::mini)?;
    bindings::sync::snapshot::add_to_linker::<T, Mini>(linker, T::mini)?;
    bindings::sync::state::add_to_linker::<T, Mini>(linker, T::mini)?;
    bindings::sync::queue::add_to_linker::<T, Mini>(linker, T::mini)?;
    keyvalue::add_to_linker_sync(linker)?;
    add_queue_poll(linker)
}

#[cfg(feature = "wasi")]
fn add_queue_poll<T: MiniView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    bindings::queue_poll::add_to_linker::<T, Mini>(linker, T::mini)
}

#[cfg(not(feature = "wasi"))]
fn add_queue_poll<T: MiniView + 'static>(_: &mut Linker<T>) -> wasmtime::Result<()> {
    Ok(())
}

/// The [`HasData`] marker of this crate's host functions: its data is a
/// [`MiniCtxView`]. Use it to call the generated `add_to_linker` functions of
/// [`bindings`] one interface at a time.
pub struct Mini;

impl HasData for Mini {
    type Data<'a> = MiniCtxView<'a>;
}
