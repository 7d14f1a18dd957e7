//! What every interface's host functions share: running blocking engine
//! work off the executor, the handle limit, record sizes and the disk quota.

use wasmtime::component::Resource;

use crate::bindings::store::Error;
use crate::ctx::MiniCtxView;
use crate::error::quote;

/// Bytes a stored line adds to a record (seq, crc, framing), for the quota.
pub(crate) const LINE_OVERHEAD: u64 = 96;

/// Runs blocking engine work (an fsync, a file scan) without stalling the
/// executor. On a multi-threaded tokio runtime it runs right here, after
/// telling tokio that this worker blocks (`block_in_place`: the worker's
/// other tasks move to another thread); a round trip through the blocking
/// pool would cost two thread wake-ups per call, a third of a fast disk's
/// fsync. Elsewhere (a current-thread runtime) it goes to the blocking pool.
pub(crate) async fn blocking<R: Send + 'static>(
    work: impl FnOnce() -> R + Send + 'static,
) -> Result<R, Error> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let multi_thread = Handle::try_current()
        .is_ok_and(|handle| handle.runtime_flavor() == RuntimeFlavor::MultiThread);
    if multi_thread {
        // As with the blocking pool, a panic in the work is an error for
        // this call, not a crash of the guest's caller.
        let run = std::panic::AssertUnwindSafe(work);
        return tokio::task::block_in_place(|| std::panic::catch_unwind(run))
            .map_err(|_| Error::Other("host task failed: it panicked".into()));
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Other(format!("host task failed: {e}")))
}

/// `Ok(name)` if `name` may name a journal, state or snapshot store.
pub(crate) fn check_name(name: &str) -> Result<(), Error> {
    mini_engine::name::validate_name(name)
        .map_err(|reason| Error::InvalidName(format!("{}: {reason}", quote(name))))
}

impl MiniCtxView<'_> {
    /// Refuses a new handle once the instance holds its limit.
    pub(crate) fn check_handle_limit(&self) -> Result<(), Error> {
        let limit = self.ctx.limits.max_open_handles;
        if self.ctx.open_handles >= limit {
            return Err(Error::Quota(format!(
                "too many open handles: the limit of this instance is {limit} handles"
            )));
        }
        Ok(())
    }

    /// Puts a new handle in the table, counted against the handle limit.
    pub(crate) fn push_handle<T: Send + 'static>(
        &mut self,
        value: T,
    ) -> Result<Resource<T>, Error> {
        self.check_handle_limit()?;
        let handle = self
            .table
            .push(value)
            .map_err(|e| Error::Quota(format!("cannot hold another handle: {e}")))?;
        self.ctx.open_handles += 1;
        Ok(handle)
    }

    /// Removes a handle the guest dropped.
    pub(crate) fn drop_handle<T: 'static>(&mut self, handle: Resource<T>) {
        if self.table.delete(handle).is_ok() {
            self.ctx.open_handles = self.ctx.open_handles.saturating_sub(1);
        }
    }

    /// The bytes `records` will take on disk, or `record-too-large` if one of
    /// them is above the record size limit.
    pub(crate) fn check_record_sizes<'r>(
        &self,
        records: impl IntoIterator<Item = &'r String>,
    ) -> Result<u64, Error> {
        let limit = self.ctx.limits.max_record_size;
        let mut total = 0u64;
        for record in records {
            if record.len() > limit {
                return Err(Error::RecordTooLarge(
                    u64::try_from(limit).unwrap_or(u64::MAX),
                ));
            }
            total = total.saturating_add(record.len() as u64 + LINE_OVERHEAD);
        }
        Ok(total)
    }

    /// The bytes a state (a snapshot, a checkpoint) will take on disk, or
    /// `record-too-large` if it is above the state size limit.
    pub(crate) fn check_state_size(&self, state: &str) -> Result<u64, Error> {
        let limit = self.ctx.limits.max_state_size;
        if state.len() > limit {
            return Err(Error::RecordTooLarge(
                u64::try_from(limit).unwrap_or(u64::MAX),
            ));
        }
        Ok(state.len() as u64 + LINE_OVERHEAD)
    }

    /// Runs `write` (see [`blocking`]) after reserving `bytes` of the
    /// namespace's disk quota.
    pub(crate) async fn write_within_quota<R: Send + 'static>(
        &mut self,
        bytes: u64,
        write: impl FnOnce() -> Result<R, Error> + Send + 'static,
    ) -> Result<R, Error> {
        let quota = self.ctx.limits.disk_quota;
        let ns_dir = self.ctx.namespace_dir.clone();
        let usage = self.ctx.usage.clone();
        blocking(move || {
            usage.reserve(&ns_dir, quota, bytes)?;
            write()
        })
        .await?
    }
}
