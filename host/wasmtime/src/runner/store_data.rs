//! What a run's store holds and the limits that watch it: the store data
//! (WASI, storage, the memory limiter) and the thread that ticks the epoch
//! for time limits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::{EPOCH_TICK, MAX_TABLE_ELEMENTS, RunError};
use crate::ctx::{MiniCtx, MiniCtxView, MiniView};

/// The memory limit was hit; returned by the limiter so a trap can be told apart.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit} bytes exceeded (asked for {requested} bytes)")]
pub(super) struct MemoryLimitHit {
    pub(super) limit: usize,
    pub(super) requested: usize,
}

/// The time limit was hit; returned by the epoch callback.
#[derive(Debug, thiserror::Error)]
#[error("time limit exceeded")]
pub(super) struct TimeLimitHit;

/// The store data of a run: WASI, storage and the limiter.
pub struct RunState {
    pub(super) wasi: WasiCtx,
    pub(super) mini: MiniCtx,
    pub(super) table: ResourceTable,
    pub(super) limiter: MemoryLimiter,
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl MiniView for RunState {
    fn mini(&mut self) -> MiniCtxView<'_> {
        MiniCtxView {
            ctx: &mut self.mini,
            table: &mut self.table,
        }
    }
}

pub(super) struct MemoryLimiter {
    pub(super) limit: usize,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            return Err(MemoryLimitHit {
                limit: self.limit,
                requested: desired,
            }
            .into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
pub(super) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(super) fn start(engine: &Engine) -> Result<Self, RunError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (engine, flag) = (engine.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("mini-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Acquire) {
                    std::thread::park_timeout(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .map_err(|e| RunError::Engine(format!("cannot start the epoch thread: {e}")))?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}
