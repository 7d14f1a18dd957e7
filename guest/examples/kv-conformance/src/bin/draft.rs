//! `wasi:keyvalue@0.2.0-draft` (what wasmtime-wasi-keyvalue and wasmCloud
//! components import: a `u64` cursor, an unsigned `increment`, no CAS),
//! every function, against the host:
//!
//! ```text
//! kv-conformance-draft run      every check; leaves data for `check`
//! kv-conformance-draft check    a later process sees what `run` wrote, and
//!                               what `kv-conformance run` (draft2) wrote
//! kv-conformance-draft bench-set N [BYTES]
//!                               N sets of distinct keys (values of BYTES,
//!                               default 100) in the bucket "" (the one
//!                               every host opens); prints `set N ns T`
//! kv-conformance-draft bench-get N
//!                               sets 100 keys, then N gets; `get N ns T`
//! ```
//!
//! The bench commands time themselves (the guest's monotonic clock), so
//! the instantiation is not counted; they run unchanged on any host of
//! this version (wasmtime-wasi-keyvalue's in-memory one included).

use kv_conformance::{args, check, check_eq, many_key, must, usage};

wit_bindgen::generate!({
    path: "../../../wit/deps/keyvalue-0.2.0-draft",
    world: "imports",
});

use wasi::keyvalue::atomics;
use wasi::keyvalue::batch;
use wasi::keyvalue::store::{self, Bucket, Error};

const MANY: usize = 10_000;

fn main() {
    let args = args();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["run"] => run(),
        ["check"] => check_later(),
        ["bench-set", n, rest @ ..] => {
            let bytes = rest.first().map_or(Some(100), |b| b.parse().ok());
            match (n.parse(), bytes) {
                (Ok(n), Some(bytes)) => bench_set(n, bytes),
                _ => usage("bench-set N [BYTES]"),
            }
        }
        ["bench-get", n] => bench_get(n.parse().unwrap_or_else(|_| usage("bench-get N"))),
        _ => usage("kv-conformance-draft run | check | bench-set N [BYTES] | bench-get N"),
    }
}

fn open(name: &str) -> Bucket {
    must(&format!("open {name:?}"), store::open(name))
}

/// Every key of `bucket`, page by page, with the `u64` cursor.
fn all_keys(bucket: &Bucket) -> (Vec<String>, usize) {
    let mut keys = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = must("list-keys", bucket.list_keys(cursor));
        pages += 1;
        keys.extend(page.keys);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return (keys, pages),
        }
    }
}

fn run() {
    let bucket = open("draft");
    must("set", bucket.set("hello", b"world"));
    check_eq(
        "get",
        must("get", bucket.get("hello")),
        Some(b"world".to_vec()),
    );
    check_eq("exists", must("exists", bucket.exists("hello")), true);
    must("delete", bucket.delete("hello"));
    check_eq("deleted", must("exists", bucket.exists("hello")), false);

    let pairs: Vec<(String, Vec<u8>)> = (0..MANY)
        .map(|i| (many_key(i), format!("value-{i}").into_bytes()))
        .collect();
    for chunk in pairs.chunks(1000) {
        must("set-many", batch::set_many(&bucket, chunk));
    }
    let (keys, pages) = all_keys(&bucket);
    let want: Vec<String> = (0..MANY).map(many_key).collect();
    check(
        "u64 cursors list 10,000 keys in order, each once",
        keys == want,
        || format!("{} keys in {pages} pages", keys.len()),
    );
    check("list-keys pages", pages > 1, || format!("{pages} page"));
    check(
        "a made-up cursor is an error, not a restart",
        bucket
            .list_keys(Some(987_654_321))
            .is_err_and(|e| matches!(e, Error::Other(_))),
        || "accepted".into(),
    );

    let asked = vec![many_key(3), "absent".to_string()];
    check_eq(
        "get-many",
        must("get-many", batch::get_many(&bucket, &asked)),
        vec![Some((many_key(3), b"value-3".to_vec())), None],
    );
    let first_half: Vec<String> = (0..MANY / 2).map(many_key).collect();
    must("delete-many", batch::delete_many(&bucket, &first_half));
    check_eq("delete-many", all_keys(&bucket).0.len(), MANY / 2);

    check_eq(
        "increment a missing key",
        must("increment", atomics::increment(&bucket, "n", 5)),
        5,
    );
    check_eq(
        "increment",
        must("increment", atomics::increment(&bucket, "n", 10)),
        15,
    );
    check(
        "an increment past i64::MAX",
        atomics::increment(&bucket, "n", u64::MAX)
            .is_err_and(|e| matches!(e, Error::Other(ref t) if t.starts_with("out-of-range"))),
        || "accepted".into(),
    );
    check(
        "open ../x is no-such-store",
        matches!(store::open("../x"), Err(Error::NoSuchStore)),
        || "opened".into(),
    );
    println!("run passed");
}

fn check_later() {
    let bucket = open("draft");
    check_eq(
        "increment persisted",
        must("get", bucket.get("n")),
        Some(b"15".to_vec()),
    );
    let (mut keys, _) = all_keys(&bucket);
    keys.retain(|k| k.starts_with("key-"));
    let want: Vec<String> = (MANY / 2..MANY).map(many_key).collect();
    check("the many keys persisted", keys == want, || {
        format!("{} keys", keys.len())
    });
    // The same bucket through the other version (`kv-conformance run`
    // wrote it): one store, two versions of the interface.
    let default = open("");
    check_eq(
        "draft2's writes, read through draft",
        must("get", default.get("persist")),
        Some(b"from run 1".to_vec()),
    );
    println!("check passed");
}

fn bench_set(n: u64, bytes: usize) {
    let bucket = open("");
    let value = vec![b'v'; bytes];
    let start = std::time::Instant::now();
    for i in 0..n {
        must("set", bucket.set(&format!("key-{i}"), &value));
    }
    println!("set {n} ns {}", start.elapsed().as_nanos());
}

fn bench_get(n: u64) {
    let bucket = open("");
    let pairs: Vec<(String, Vec<u8>)> = (0..100)
        .map(|i| (format!("key-{i}"), vec![b'v'; 100]))
        .collect();
    must("set-many", batch::set_many(&bucket, &pairs));
    let start = std::time::Instant::now();
    let mut found = 0u64;
    for i in 0..n {
        found += u64::from(must("get", bucket.get(&pairs[(i % 100) as usize].0)).is_some());
    }
    let elapsed = start.elapsed().as_nanos();
    check_eq("every get found its key", found, n);
    println!("get {n} ns {elapsed}");
}
