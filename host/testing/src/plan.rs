//! What happens to a run's storage calls: a [`Plan`] names a crash point
//! and faults by call number; the [`CallLog`] (the run's
//! [`CallObserver`]) counts the calls, records them and carries the plan
//! out.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use mini_host::calls::{CallMoment, CallObserver, CallVerdict, CrashPoint, StorageCall};
use serde::{Deserialize, Serialize};

use crate::faults::{Fault, SandboxFs};

/// Storage calls a run records one by one; past it they are only counted
/// (a guest can make any number of calls).
pub const MAX_RECORDED_CALLS: usize = 1 << 20;

/// What to do to a run's storage calls, by their number (the first storage
/// call of the run is 1).
///
/// ```
/// use mini_host::calls::CallMoment;
/// use mini_testing::{Fault, Plan};
///
/// let plan = Plan::new()
///     .fault_at(2, Fault::FsyncFails)
///     .crash_at(5, CallMoment::AfterDurable);
/// assert_eq!(plan.crash(), Some((5, CallMoment::AfterDurable)));
/// assert_eq!(plan.faults().get(&2), Some(&Fault::FsyncFails));
///
/// // The same seed picks the same faults.
/// assert_eq!(Plan::seeded_faults(7, 100, 3), Plan::seeded_faults(7, 100, 3));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    crash: Option<(u64, CallMoment)>,
    faults: BTreeMap<u64, Fault>,
}

impl Plan {
    /// A plan that lets every call go.
    pub fn new() -> Plan {
        Plan::default()
    }

    /// Stops the instance at call `call`, at `moment`, as a process crash
    /// would stop it there.
    pub fn crash_at(mut self, call: u64, moment: CallMoment) -> Plan {
        self.crash = Some((call, moment));
        self
    }

    /// Injects `fault` into call `call` (one fault per call: a later one
    /// for the same call replaces it).
    pub fn fault_at(mut self, call: u64, fault: Fault) -> Plan {
        self.faults.insert(call, fault);
        self
    }

    /// `count` faults, each of a kind and at a call in `1..=calls` picked
    /// by a generator seeded with `seed`: the same arguments give the same
    /// plan.
    pub fn seeded_faults(seed: u64, calls: u64, count: usize) -> Plan {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut plan = Plan::new();
        if calls == 0 {
            return plan;
        }
        for _ in 0..count {
            let call = rng.u64(1..=calls);
            let fault = Fault::ALL[rng.usize(..Fault::ALL.len())];
            plan = plan.fault_at(call, fault);
        }
        plan
    }

    /// The crash point, if any.
    pub fn crash(&self) -> Option<(u64, CallMoment)> {
        self.crash
    }

    /// The faults, by call.
    pub fn faults(&self) -> &BTreeMap<u64, Fault> {
        &self.faults
    }
}

/// A fault of the plan that the run came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InjectedFault {
    /// The call's number.
    pub call: u64,
    /// The call.
    pub storage_call: CallRecord,
    /// The fault.
    pub fault: Fault,
    /// Whether the call did a file operation the fault hits (a call that
    /// only reads, say, is not hit by [`Fault::FsyncFails`]).
    pub fired: bool,
}

/// A storage call as a report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The WIT interface: `store`, `snapshot`, `state`, `queue`.
    pub interface: String,
    /// The WIT function (`append-batch`).
    pub function: String,
    /// The name of the unit the call is about, if it has one.
    pub unit: Option<String>,
}

impl From<&StorageCall> for CallRecord {
    fn from(call: &StorageCall) -> Self {
        CallRecord {
            interface: call.interface.to_owned(),
            function: call.function.to_owned(),
            unit: call.unit.clone(),
        }
    }
}

impl std::fmt::Display for CallRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.interface, self.function)?;
        if let Some(unit) = &self.unit {
            write!(f, "({unit:?})")?;
        }
        Ok(())
    }
}

/// What a [`CallLog`] saw of a run.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub(crate) count: u64,
    pub(crate) calls: Vec<CallRecord>,
    pub(crate) faults: Vec<InjectedFault>,
    pub(crate) crashed: Option<CrashPoint>,
    /// The fault armed for the call in progress, and its number and call.
    armed: Option<(Fault, u64, CallRecord)>,
}

/// The observer of one run: counts and records its storage calls, and
/// carries out its plan.
#[derive(Debug)]
pub(crate) struct CallLog {
    plan: Plan,
    fs: SandboxFs,
    seen: Mutex<Seen>,
}

impl CallLog {
    pub(crate) fn new(plan: Plan, fs: SandboxFs) -> Arc<CallLog> {
        Arc::new(CallLog {
            plan,
            fs,
            seen: Mutex::new(Seen::default()),
        })
    }

    /// What the run did. A fault still armed (the run ended inside the
    /// call: a crash point before its effect, a trap, a limit) is disarmed
    /// here, so that it never reaches the next run.
    pub(crate) fn take(&self) -> Seen {
        let mut seen = self.lock();
        self.end_fault(&mut seen);
        std::mem::take(&mut *seen)
    }

    /// Disarms the fault of the call in progress, if any, and records it.
    fn end_fault(&self, seen: &mut Seen) {
        if let Some((fault, call, storage_call)) = seen.armed.take() {
            let fired = self.fs.disarm();
            seen.faults.push(InjectedFault {
                call,
                storage_call,
                fault,
                fired,
            });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl CallObserver for CallLog {
    fn observe(&self, call: &StorageCall, moment: CallMoment) -> CallVerdict {
        let mut seen = self.lock();
        if seen.crashed.is_some() {
            // Nothing runs after a crash point (another thread's call
            // included: a crash stops the whole process).
            return CallVerdict::Stop;
        }
        if moment == CallMoment::BeforeEffect {
            seen.count += 1;
            if seen.calls.len() < MAX_RECORDED_CALLS {
                seen.calls.push(CallRecord::from(call));
            }
        }
        let number = seen.count;
        match moment {
            CallMoment::BeforeEffect => {
                if let Some(&fault) = self.plan.faults.get(&number) {
                    self.fs.arm(fault);
                    seen.armed = Some((fault, number, CallRecord::from(call)));
                }
            }
            CallMoment::AfterDurable => self.end_fault(&mut seen),
        }
        if self.plan.crash == Some((number, moment)) {
            seen.crashed = Some(CrashPoint {
                call: call.clone(),
                moment,
            });
            return CallVerdict::Stop;
        }
        CallVerdict::Go
    }
}
