//! Where the blocking engine work of a host call runs.
//!
//! Every host function is written once, as an async function; its blocking
//! work (a write and its fsync, a file scan) goes through [`blocking`]. Under
//! `add_to_linker_async` that moves the work off the executor's task (with
//! the `tokio` feature); under `add_to_linker_sync` the bindings drive the
//! same function with [`run_inline`], and the work runs right on the calling
//! thread, as a sync embedder expects: no executor, no tokio.

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use crate::bindings::types::Error;

thread_local! {
    /// Set while [`run_inline`] drives a host call on this thread.
    static INLINE: Cell<bool> = const { Cell::new(false) };
}

/// Whether the host call on this thread runs inline (a sync linker): its
/// blocking work and its waits block this thread.
#[cfg(feature = "tokio")]
pub(crate) fn is_inline() -> bool {
    INLINE.with(Cell::get)
}

/// Drives `call` to its end on this thread: the sync bindings' way into the
/// host functions. Blocking work runs inline; a wait (`pop-wait`) parks the
/// thread until it is woken.
pub(crate) fn run_inline<F: Future>(call: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            INLINE.with(|inline| inline.set(self.0));
        }
    }
    let _reset = Reset(INLINE.with(|inline| inline.replace(true)));
    let mut call = pin!(call);
    // Most calls finish on their first poll: the thread's waker is made
    // only for one that waits (polled again, the call registers it).
    if let Poll::Ready(out) = call.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        return out;
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut context = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = call.as_mut().poll(&mut context) {
            return out;
        }
        thread::park();
    }
}

/// Runs `work` inline, a panic in it an error for this call (as the
/// blocking pool makes it), not a crash of the guest's caller.
fn catching<R>(work: impl FnOnce() -> R) -> Result<R, Error> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
        .map_err(|_| Error::Other("host task failed: it panicked".into()))
}

/// Runs blocking engine work (an fsync, a file scan) without stalling an
/// executor. Inline under a sync linker. Otherwise, on a multi-threaded
/// tokio runtime it runs right here, after telling tokio that this worker
/// blocks (`block_in_place`: the worker's other tasks move to another
/// thread); a round trip through the blocking pool would cost two thread
/// wake-ups per call, a third of a fast disk's fsync. On a current-thread
/// runtime it goes to the blocking pool. Without the `tokio` feature it runs
/// inline.
pub(crate) async fn blocking<R: Send + 'static>(
    work: impl FnOnce() -> R + Send + 'static,
) -> Result<R, Error> {
    #[cfg(feature = "tokio")]
    if !is_inline() {
        use tokio::runtime::{Handle, RuntimeFlavor};
        match Handle::try_current().map(|handle| handle.runtime_flavor()) {
            Ok(RuntimeFlavor::MultiThread) => {
                return tokio::task::block_in_place(|| catching(work));
            }
            Ok(_) => {
                return tokio::task::spawn_blocking(work)
                    .await
                    .map_err(|e| Error::Other(format!("host task failed: {e}")));
            }
            Err(_) => {}
        }
    }
    catching(work)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_inline_runs_blocking_work_on_this_thread() {
        let here = thread::current().id();
        let ran_on = run_inline(blocking(move || thread::current().id())).expect("work");
        assert_eq!(ran_on, here);
        assert!(!INLINE.with(Cell::get), "the flag is reset after the call");
    }

    #[test]
    fn a_panic_in_the_work_is_an_error_of_the_call() {
        let failed = run_inline(blocking(|| panic!("boom")));
        assert!(matches!(failed, Err(Error::Other(m)) if m.contains("panicked")));
    }

    #[test]
    fn run_inline_waits_for_a_wake_from_another_thread() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        // As the contract of `Future` has it, the waker of the latest poll
        // is the one to wake (the first poll's is a no-op one).
        let latest: Arc<Mutex<Option<Waker>>> = Arc::default();
        let woken = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (flag, wakers) = (woken.clone(), latest.clone());
        let waker = thread::spawn(move || {
            rx.recv().expect("polled once");
            flag.store(true, Ordering::Release);
            if let Some(waker) = wakers.lock().expect("lock").take() {
                waker.wake();
            }
        });
        let mut sent = Some(tx);
        let mut polls = 0;
        run_inline(std::future::poll_fn(|cx| {
            polls += 1;
            // Stored before the flag is read: a wake after it finds it.
            *latest.lock().expect("lock") = Some(cx.waker().clone());
            if woken.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            if let Some(tx) = sent.take() {
                tx.send(()).expect("send");
            }
            Poll::Pending
        }));
        waker.join().expect("join");
        assert!(polls >= 2, "polled again after the wake");
    }

    #[test]
    fn a_call_that_does_not_wait_is_polled_once() {
        let mut polls = 0;
        let out = run_inline(std::future::poll_fn(|_| {
            polls += 1;
            Poll::Ready(7)
        }));
        assert_eq!((out, polls), (7, 1));
    }
}
