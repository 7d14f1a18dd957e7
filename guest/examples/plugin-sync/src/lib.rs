//! A plugin component with **no WASI imports at all**: a host that links
//! only mini's interfaces (no `wasmtime-wasi`) can run it.
//!
//! It imports `mini:storage/store@0.2.0` (and the `types` it uses) and
//! exports one function:
//!
//! ```text
//! run: func(name: string, count: u32) -> result<string, string>
//! ```
//!
//! `run` opens the journal `name`, appends `count` records `{"n":i}` (i = 0
//! to count - 1) one `append` each, then one `append-batch` of two records
//! (`{"n":count}`, `{"n":count+1}`), reads the whole journal back with
//! `read(0)` and the cursor's `next`, and returns
//!
//! ```text
//! appended <count + 2> last <seq of the batch's last record> read <records read>
//! ```
//!
//! or, on the first error, `Err("<step>: <variant>: <reason>")` where the
//! step is `open`, `append <i>`, `append-batch`, `read` or `next`, and the
//! variant is the WIT error case in kebab case (`invalid-name`, `quota`, …).
//!
//! No std: `core` and `alloc` only, a `dlmalloc` global allocator over
//! `memory.grow`, the canonical ABI's `cabi_realloc` over it, and a panic
//! handler that traps. (It does not use the SDK,
//! `mini-guest`, which is built on std and so on WASI.)

// `no_std` but for the test harness (`cargo clippy --all-targets` builds
// one), which brings std and so its own panic handler and allocator.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

use alloc::format;
use alloc::string::String;

use mini::storage::store::Journal;
use mini::storage::types::Error;

wit_bindgen::generate!({
    // mini's WIT package (and its deps, unused here): the inline world below
    // takes only `store` from it.
    path: "../../../wit",
    inline: "
        package mini:plugin-sync;

        world plugin {
            import mini:storage/store@0.2.0;

            export run: func(name: string, count: u32) -> result<string, string>;
        }
    ",
    world: "mini:plugin-sync/plugin",
    // `store` and `types` are in another package than the world: generate
    // their bindings here.
    generate_all,
});

#[cfg(not(test))]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// A panic traps the instance: there is nothing to unwind to and no stderr.
#[cfg(not(test))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

/// The canonical ABI's allocator: the host calls it to hand the component
/// strings and lists (an entry's data, an error's reason). std provides it
/// on `wasm32-wasip2` (and wit-bindgen only on wasip1); without std it is
/// ours, over the global allocator.
///
/// # Safety
///
/// Called by the host as the canonical ABI says: `old_ptr` and `old_len`
/// are an earlier allocation of this function with alignment `align` (or
/// `old_len` is 0), `align` is a power of two.
#[cfg(not(test))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cabi_realloc(
    old_ptr: *mut u8,
    old_len: usize,
    align: usize,
    new_len: usize,
) -> *mut u8 {
    use alloc::alloc::{Layout, alloc, realloc};

    let ptr = if old_len == 0 {
        if new_len == 0 {
            // A zero-sized allocation: any aligned, non-null pointer.
            return align as *mut u8;
        }
        // SAFETY: `align` is a power of two (the ABI's contract), `new_len`
        // is not zero.
        unsafe { alloc(Layout::from_size_align_unchecked(new_len, align)) }
    } else {
        // SAFETY: `old_ptr` was allocated here with this layout (the ABI's
        // contract); a reallocation never shrinks to zero.
        unsafe {
            realloc(
                old_ptr,
                Layout::from_size_align_unchecked(old_len, align),
                new_len,
            )
        }
    };
    if ptr.is_null() {
        core::arch::wasm32::unreachable();
    }
    ptr
}

/// Records per call of the cursor's `next`.
const CHUNK: u32 = 256;

struct Plugin;

impl Guest for Plugin {
    fn run(name: String, count: u32) -> Result<String, String> {
        sync(&name, count).map_err(|(step, e)| format!("{step}: {}", describe(&e)))
    }
}

export!(Plugin);

/// A failed step: its name and the host's error.
type Failed = (String, Error);

fn at(step: &str) -> impl FnOnce(Error) -> Failed + '_ {
    move |e| (String::from(step), e)
}

fn sync(name: &str, count: u32) -> Result<String, Failed> {
    let journal = Journal::open(name).map_err(at("open"))?;
    for i in 0..count {
        journal
            .append(&format!("{{\"n\":{i}}}"))
            .map_err(|e| (format!("append {i}"), e))?;
    }
    let next = u64::from(count);
    let batch = [
        format!("{{\"n\":{next}}}"),
        format!("{{\"n\":{}}}", next + 1),
    ];
    let last = journal.append_batch(&batch).map_err(at("append-batch"))?;
    let cursor = journal.read(0).map_err(at("read"))?;
    let mut read = 0usize;
    loop {
        let entries = cursor.next(CHUNK).map_err(at("next"))?;
        if entries.is_empty() {
            break;
        }
        read += entries.len();
    }
    Ok(format!("appended {} last {last} read {read}", next + 2))
}

/// `<variant>: <reason>`, the variant as the WIT spells it.
fn describe(e: &Error) -> String {
    let (variant, reason) = match e {
        Error::InvalidRecord(s) => ("invalid-record", s.clone()),
        Error::RecordTooLarge(limit) => ("record-too-large", format!("the limit is {limit} bytes")),
        Error::InvalidName(s) => ("invalid-name", s.clone()),
        Error::Corrupt(s) => ("corrupt", s.clone()),
        Error::Io(s) => ("io", s.clone()),
        Error::Quota(s) => ("quota", s.clone()),
        Error::AccessDenied(s) => ("access-denied", s.clone()),
        Error::Locked(s) => ("locked", s.clone()),
        Error::OutOfRange(s) => ("out-of-range", s.clone()),
        Error::InvalidArgument(s) => ("invalid-argument", s.clone()),
        Error::NotFound(s) => ("not-found", s.clone()),
        Error::StaleToken(s) => ("stale-token", s.clone()),
        Error::Other(s) => ("other", s.clone()),
    };
    format!("{variant}: {reason}")
}
