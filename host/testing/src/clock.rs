//! One clock a test moves: the sandbox's queues (leases, delays, dedup
//! windows) and the component's own WASI wall and monotonic clocks all read
//! it, so `advance` runs time forward for all of them, with no sleep.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mini_engine::queue::Clock;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

/// Where a [`VirtualClock`] starts: 2026-01-01T00:00:00Z, in nanoseconds
/// since the Unix epoch (a fixed time, so that runs are repeatable).
pub const VIRTUAL_EPOCH_NANOS: u64 = 1_767_225_600 * 1_000_000_000;

/// A clock that moves only when the test says so. Clones share the time.
///
/// ```
/// use std::time::Duration;
/// use mini_engine::queue::Clock;
/// use mini_testing::VirtualClock;
///
/// let clock = VirtualClock::new();
/// let before = clock.now_ms();
/// clock.advance(Duration::from_secs(30));
/// assert_eq!(clock.now_ms() - before, 30_000);
/// assert_eq!(clock.elapsed(), Duration::from_secs(30));
/// ```
#[derive(Debug, Clone)]
pub struct VirtualClock {
    nanos: Arc<AtomicU64>,
}

impl Default for VirtualClock {
    fn default() -> Self {
        VirtualClock::new()
    }
}

impl VirtualClock {
    /// A clock at [`VIRTUAL_EPOCH_NANOS`].
    pub fn new() -> VirtualClock {
        VirtualClock::at_nanos(VIRTUAL_EPOCH_NANOS)
    }

    /// A clock at `nanos` since the Unix epoch (at least
    /// [`VIRTUAL_EPOCH_NANOS`]: the monotonic clock counts from there).
    pub fn at_nanos(nanos: u64) -> VirtualClock {
        VirtualClock {
            nanos: Arc::new(AtomicU64::new(nanos.max(VIRTUAL_EPOCH_NANOS))),
        }
    }

    /// Moves the time forward by `by` (saturating far in the future).
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // `fetch_update` cannot fail with a closure that always returns Some.
        let _ = self
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                Some(now.saturating_add(by))
            });
    }

    /// Nanoseconds since the Unix epoch.
    pub fn now_nanos(&self) -> u64 {
        self.nanos.load(Ordering::Acquire)
    }

    /// Sets the time to `nanos` since the Unix epoch (what a restore of
    /// saved data does; tests move time with [`VirtualClock::advance`]).
    pub(crate) fn set_nanos(&self, nanos: u64) {
        self.nanos
            .store(nanos.max(VIRTUAL_EPOCH_NANOS), Ordering::Release);
    }

    /// How far the clock was moved since [`VIRTUAL_EPOCH_NANOS`].
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.now_nanos() - VIRTUAL_EPOCH_NANOS)
    }
}

impl Clock for VirtualClock {
    fn now_ms(&self) -> u64 {
        self.now_nanos() / 1_000_000
    }
}

impl HostWallClock for VirtualClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        Duration::from_nanos(self.now_nanos())
    }
}

impl HostMonotonicClock for VirtualClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        self.now_nanos() - VIRTUAL_EPOCH_NANOS
    }
}
