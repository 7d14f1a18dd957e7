//! Storage calls as a test harness sees them: every call a guest makes to
//! a `mini:storage` function passes a [`CallObserver`] (if the context has
//! one) twice, before it has any effect and after its effect is durable,
//! before the guest sees the result. The observer may stop the instance at
//! either moment, as a process crash would stop it there, or prepare a
//! fault for the call (through the engine's file system).
//!
//! Without an observer a call pays one branch.

use std::fmt;
use std::sync::Arc;

use crate::HostError;

/// One storage call: its interface, function and the unit it is about
/// (the name the guest opened, where the call has one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageCall {
    /// The WIT interface: `store`, `snapshot`, `state`, `queue`.
    pub interface: &'static str,
    /// The WIT function, as the WIT names it (`append-batch`).
    pub function: &'static str,
    /// The unit's name (a journal's, a state's, …), if the call has one.
    pub unit: Option<String>,
}

impl fmt::Display for StorageCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.interface, self.function)?;
        if let Some(unit) = &self.unit {
            write!(f, "({unit:?})")?;
        }
        Ok(())
    }
}

/// When an observer sees a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CallMoment {
    /// The call has had no effect yet.
    BeforeEffect,
    /// The call's effect is durable (if it had one), and the guest has not
    /// seen its result.
    AfterDurable,
}

impl fmt::Display for CallMoment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CallMoment::BeforeEffect => "before its effect",
            CallMoment::AfterDurable => "after it was durable",
        })
    }
}

/// What an observer wants done with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallVerdict {
    /// Go on.
    Go,
    /// Stop the instance here: the call traps with [`CrashPoint`], and the
    /// instance runs no further (what the call did so far stays on disk).
    Stop,
}

/// Sees every storage call of the instances of a context (see
/// [`MiniCtxBuilder::call_observer`](crate::MiniCtxBuilder::call_observer)).
pub trait CallObserver: Send + Sync + 'static {
    /// Called at both moments of every storage call, in order.
    fn observe(&self, call: &StorageCall, moment: CallMoment) -> CallVerdict;
}

/// The trap of an instance stopped by a [`CallObserver`]: the call and the
/// moment it stopped at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stopped at {call}, {moment}")]
pub struct CrashPoint {
    /// The call.
    pub call: StorageCall,
    /// The moment.
    pub moment: CallMoment,
}

/// A context's observer, and the checks host functions make with it.
#[derive(Clone, Default)]
pub(crate) struct Observer(Option<Arc<dyn CallObserver>>);

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Observer(Some)"
        } else {
            "Observer(None)"
        })
    }
}

impl Observer {
    pub fn new(observer: Arc<dyn CallObserver>) -> Self {
        Observer(Some(observer))
    }

    /// The call `interface.function` about the unit `unit()` names, if an
    /// observer is there to see it (else nothing is computed).
    pub fn call(
        &self,
        interface: &'static str,
        function: &'static str,
        unit: impl FnOnce() -> Option<String>,
    ) -> Option<StorageCall> {
        self.0.as_ref().map(|_| StorageCall {
            interface,
            function,
            unit: unit(),
        })
    }

    /// Shows `call` to the observer at `moment`; a trap if it stops there.
    pub fn at(&self, call: &Option<StorageCall>, moment: CallMoment) -> Result<(), HostError> {
        let (Some(observer), Some(call)) = (&self.0, call) else {
            return Ok(());
        };
        match observer.observe(call, moment) {
            CallVerdict::Go => Ok(()),
            CallVerdict::Stop => Err(HostError::trap(CrashPoint {
                call: call.clone(),
                moment,
            })),
        }
    }
}

/// `body`'s result, typed so that `?` works inside the async block that
/// `observed!` runs.
pub(crate) async fn run<T>(
    body: impl std::future::Future<Output = Result<T, HostError>>,
) -> Result<T, HostError> {
    body.await
}

/// The guest's name of the unit a handle is for.
pub(crate) trait UnitName {
    fn unit_name(&self) -> Option<&str>;
}

/// Runs `$body` (the host function's work, as the body of an `async move`
/// block: it may take `self`) as the storage call `$interface.$function`
/// about the unit `$unit` names (evaluated only if an observer looks),
/// shown to the context's observer before and after.
macro_rules! observed {
    ($view:ident, $interface:literal, $function:literal, $unit:expr, $body:block) => {{
        let observer = $view.ctx.observer.clone();
        let call = observer.call($interface, $function, || $unit);
        observer.at(&call, $crate::calls::CallMoment::BeforeEffect)?;
        let result = $crate::calls::run(async move $body).await;
        observer.at(&call, $crate::calls::CallMoment::AfterDurable)?;
        result
    }};
}
pub(crate) use observed;

/// [`observed!`] for a call that never waits (a read of memory): `$body`
/// runs as a closure, with no future to make and poll.
macro_rules! observed_now {
    ($view:ident, $interface:literal, $function:literal, $unit:expr, $body:block) => {{
        let observer = $view.ctx.observer.clone();
        let call = observer.call($interface, $function, || $unit);
        observer.at(&call, $crate::calls::CallMoment::BeforeEffect)?;
        let result = (|| -> Result<_, $crate::HostError> { $body })();
        observer.at(&call, $crate::calls::CallMoment::AfterDurable)?;
        result
    }};
}
pub(crate) use observed_now;
