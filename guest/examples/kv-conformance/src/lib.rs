//! What the two conformance binaries share: how a check reports, and the
//! command line.
//!
//! Each check prints `ok NAME`; the first that fails prints
//! `FAILED NAME: DETAIL` and ends the run with exit code 1.

use std::fmt::Debug;
use std::io::Write;

/// Prints `ok name`, or `FAILED name: detail` and exits 1.
pub fn check(name: &str, ok: bool, detail: impl FnOnce() -> String) {
    if ok {
        println!("ok {name}");
    } else {
        fail(name, &detail());
    }
}

/// [`check`] that `got == want`.
pub fn check_eq<T: PartialEq + Debug>(name: &str, got: T, want: T) {
    let ok = got == want;
    check(name, ok, || format!("got {got:?}, want {want:?}"));
}

/// Prints `FAILED name: detail` and exits 1.
pub fn fail(name: &str, detail: &str) -> ! {
    println!("FAILED {name}: {detail}");
    let _ = std::io::stdout().flush();
    std::process::exit(1);
}

/// The value of `Ok`, or a failed check named `name`.
pub fn must<T, E: Debug>(name: &str, result: Result<T, E>) -> T {
    match result {
        Ok(value) => value,
        Err(e) => fail(name, &format!("{e:?}")),
    }
}

/// Prints one line and flushes it: what a crash test reads as acknowledged.
pub fn ack(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    // A closed stdout (the test stopped reading) ends the writer.
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

/// The `key-NNNNN` of the many-keys checks.
pub fn many_key(i: usize) -> String {
    format!("key-{i:05}")
}

/// The command line's words after the program name.
pub fn args() -> Vec<String> {
    std::env::args().skip(1).collect()
}

/// The usage line, on stderr, and exit 2.
pub fn usage(text: &str) -> ! {
    eprintln!("usage: {text}");
    std::process::exit(2);
}
