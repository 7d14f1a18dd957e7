//! A URL shortener written against the standard `wasi:keyvalue@0.2.0-draft2`
//! interfaces only (`store`, `atomics`, `batch`): no mini SDK, no
//! mini-specific import. It runs unchanged on any host that implements
//! `wasi:keyvalue`; on mini (`mini run`) every write is durable when the
//! call returns and `set-many` / `delete-many` are all or nothing, after a
//! crash too.
//!
//! ```text
//! shortener add URL…     prints CODE per URL (the same CODE for a URL added before)
//! shortener visit CODE   prints the URL and counts a visit
//! shortener stats        one line per code: CODE VISITS URL
//! shortener remove CODE  forgets the code, its URL and its visits
//! shortener check        every code's URL leads back to it and every URL's
//!                        code to it; prints `consistent N codes` (else
//!                        names the first broken pair, exit 1): what a
//!                        crash-point exploration runs after each crash
//! ```
//!
//! Everything is in the bucket `open("")` gives (on mini, `default`):
//!
//! * `next-code`: a counter (`atomics::increment`); a code is its new value
//!   in base62, so two instances adding at once never get the same code.
//! * `url:CODE` → the URL and `by-url:URL` → CODE, written by one
//!   `batch::set-many`. (Two instances adding the *same* new URL at once
//!   may both get a code; both codes work.)
//! * `visits:CODE`: the visit counter (`atomics::increment`).
//!
//! A failure prints a line on stderr (`error: other: quota: …` for an
//! error of the store, in the WIT variant's words) and exits with status 1.

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;

use wasi::keyvalue::store::{self, Bucket};
use wasi::keyvalue::{atomics, batch};

wit_bindgen::generate!({
    path: "../../../wit/deps/keyvalue-0.2.0-draft2",
    world: "imports",
    // Arguments as borrowed `&str` / `&[u8]` slices, not owned `String`s.
    ownership: Borrowing { duplicate_if_necessary: false },
});

/// Why a command failed.
enum Failure {
    /// The store's own error (`wasi:keyvalue/store.error`).
    Store(store::Error),
    /// A bad command line.
    Usage(String),
    /// No URL under this code.
    UnknownCode(String),
    /// A stored value, or the store's answer, is not what this program
    /// expects.
    Unexpected(String),
    /// Stdout is gone (say, a closed pipe).
    Output(io::Error),
}

impl From<store::Error> for Failure {
    fn from(e: store::Error) -> Self {
        Failure::Store(e)
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Output(e)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Store(store::Error::NoSuchStore) => write!(f, "error: no-such-store"),
            Failure::Store(store::Error::AccessDenied) => write!(f, "error: access-denied"),
            Failure::Store(store::Error::Other(text)) => write!(f, "error: other: {text}"),
            Failure::Usage(text) => write!(
                f,
                "error: {text}\nusage: shortener add URL… | visit CODE | stats | remove CODE"
            ),
            Failure::UnknownCode(code) => write!(f, "error: no such code: {code}"),
            Failure::Unexpected(text) => write!(f, "error: unexpected: {text}"),
            Failure::Output(e) => write!(f, "error: cannot write to stdout: {e}"),
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("shortener: {failure}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[&str]) -> Result<(), Failure> {
    let command = match args {
        ["add", urls @ ..] if !urls.is_empty() => Command::Add(urls),
        ["visit", code] => Command::Visit(code),
        ["stats"] => Command::Stats,
        ["remove", code] => Command::Remove(code),
        ["check"] => Command::Check,
        _ => return Err(Failure::Usage(format!("bad arguments {args:?}"))),
    };
    let bucket = store::open("")?;
    let mut out = io::stdout().lock();
    match command {
        Command::Add(urls) => {
            for url in urls {
                writeln!(out, "{}", add(&bucket, url)?)?;
            }
        }
        Command::Visit(code) => writeln!(out, "{}", visit(&bucket, code)?)?,
        Command::Stats => stats(&bucket, &mut out)?,
        Command::Remove(code) => {
            remove(&bucket, code)?;
            writeln!(out, "removed {code}")?;
        }
        Command::Check => writeln!(out, "consistent {} codes", check(&bucket)?)?,
    }
    Ok(())
}

enum Command<'a> {
    Add(&'a [&'a str]),
    Visit(&'a str),
    Stats,
    Remove(&'a str),
    Check,
}

/// The code of `url`: the one it already has, or a new one.
fn add(bucket: &Bucket, url: &str) -> Result<String, Failure> {
    let by_url = format!("by-url:{url}");
    if let Some(code) = bucket.get(&by_url)? {
        return text(&by_url, code);
    }
    let n = atomics::increment(bucket, "next-code", 1)?;
    let n = u64::try_from(n).map_err(|_| Failure::Unexpected(format!("next-code is {n}")))?;
    let code = base62(n);
    let url_key = format!("url:{code}");
    batch::set_many(
        bucket,
        &[(&url_key, url.as_bytes()), (&by_url, code.as_bytes())],
    )?;
    Ok(code)
}

/// The URL of `code`, after counting the visit.
fn visit(bucket: &Bucket, code: &str) -> Result<String, Failure> {
    let url = url_of(bucket, code)?;
    atomics::increment(bucket, &format!("visits:{code}"), 1)?;
    Ok(url)
}

/// Prints `CODE VISITS URL` for every code, a page of keys at a time.
fn stats(bucket: &Bucket, out: &mut impl Write) -> Result<(), Failure> {
    let mut cursor: Option<String> = None;
    loop {
        let page = bucket.list_keys(cursor.as_deref())?;
        let codes: Vec<&str> = page
            .keys
            .iter()
            .filter_map(|key| key.strip_prefix("url:"))
            .collect();
        if !codes.is_empty() {
            // For each code its URL and its visits, in one call.
            let keys: Vec<String> = codes
                .iter()
                .flat_map(|code| [format!("url:{code}"), format!("visits:{code}")])
                .collect();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let values = batch::get_many(bucket, &keys)?;
            if values.len() != keys.len() {
                return Err(Failure::Unexpected(format!(
                    "get-many gave {} values for {} keys",
                    values.len(),
                    keys.len()
                )));
            }
            let mut values = values.into_iter();
            for code in codes {
                let (url, visits) = (values.next().flatten(), values.next().flatten());
                // Removed since the page was listed.
                let Some((key, url)) = url else { continue };
                let url = text(&key, url)?;
                let visits = match visits {
                    Some((key, value)) => {
                        let n = text(&key, value)?;
                        n.parse::<i64>()
                            .map_err(|_| Failure::Unexpected(format!("{key} is {n:?}")))?
                    }
                    None => 0,
                };
                writeln!(out, "{code} {visits} {url}")?;
            }
        }
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

/// Forgets `code`: its URL, the reverse entry and its visits, in one call.
fn remove(bucket: &Bucket, code: &str) -> Result<(), Failure> {
    let url = url_of(bucket, code)?;
    let keys = [
        format!("url:{code}"),
        format!("by-url:{url}"),
        format!("visits:{code}"),
    ];
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    batch::delete_many(bucket, &keys)?;
    Ok(())
}

fn url_of(bucket: &Bucket, code: &str) -> Result<String, Failure> {
    let key = format!("url:{code}");
    match bucket.get(&key)? {
        Some(url) => text(&key, url),
        None => Err(Failure::UnknownCode(code.to_owned())),
    }
}

/// How many codes there are, once every `url:CODE` → URL has its
/// `by-url:URL` → CODE and back.
fn check(bucket: &Bucket) -> Result<usize, Failure> {
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = bucket.list_keys(cursor.as_deref())?;
        keys.extend(page.keys);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut codes = 0;
    for key in &keys {
        let (other, want) = if let Some(code) = key.strip_prefix("url:") {
            codes += 1;
            (format!("by-url:{}", url_of(bucket, code)?), code.to_owned())
        } else if let Some(url) = key.strip_prefix("by-url:") {
            let code = match bucket.get(key)? {
                Some(code) => text(key, code)?,
                None => continue,
            };
            (format!("url:{code}"), url.to_owned())
        } else {
            continue;
        };
        let back = match bucket.get(&other)? {
            Some(value) => text(&other, value)?,
            None => String::new(),
        };
        if back != want {
            return Err(Failure::Unexpected(format!(
                "inconsistent: {key} leads to {other}, which holds {back:?}"
            )));
        }
    }
    Ok(codes)
}

/// The value of `key` as text.
fn text(key: &str, value: Vec<u8>) -> Result<String, Failure> {
    String::from_utf8(value).map_err(|_| Failure::Unexpected(format!("{key} is not UTF-8")))
}

/// `n` in base62 (`0-9a-zA-Z`): 1 is `1`, 62 is `10`.
fn base62(mut n: u64) -> String {
    const DIGITS: &[u8; 62] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut digits = Vec::new();
    loop {
        digits.push(DIGITS[(n % 62) as usize]);
        n /= 62;
        if n == 0 {
            break;
        }
    }
    digits.reverse();
    String::from_utf8(digits).expect("base62 digits are ASCII")
}
