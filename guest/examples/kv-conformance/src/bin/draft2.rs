//! `wasi:keyvalue@0.2.0-draft2`, every function, against the host:
//!
//! ```text
//! kv-conformance run            every check; leaves data for `check`
//! kv-conformance check          a later process sees what `run` wrote
//! kv-conformance cas-increment N [--bucket B]
//!                               N successful CAS increments of "counter";
//!                               prints `swaps N failures F`
//! kv-conformance crash-writer   sets, increments and set-manys forever,
//!                               printing each acknowledged write
//! kv-conformance hostile        what a hostile guest tries: more buckets,
//!                               handles and bytes than its limits allow;
//!                               prints `case NAME: OUTCOME` lines
//! ```
//!
//! Beyond the proposal, `run` checks what mini promises: keys listed in
//! order, each once, over 10,000 keys; a CAS on a value changed and changed
//! back fails (no ABA); errors are the proposal's cases.

use kv_conformance::{ack, args, check, check_eq, fail, many_key, must, usage};

wit_bindgen::generate!({
    path: "../../../wit/deps/keyvalue-0.2.0-draft2",
    world: "imports",
});

use wasi::keyvalue::atomics::{self, Cas, CasError};
use wasi::keyvalue::batch;
use wasi::keyvalue::store::{self, Bucket, Error};

const MANY: usize = 10_000;

fn main() {
    let args = args();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["run"] => run(),
        ["check"] => check_later(),
        ["cas-increment", n, rest @ ..] => {
            let n: u64 = n.parse().unwrap_or_else(|_| usage("cas-increment N"));
            let bucket = match rest {
                [] => "shared",
                ["--bucket", b] => b,
                _ => usage("cas-increment N [--bucket B]"),
            };
            cas_increment(bucket, n);
        }
        ["crash-writer"] => crash_writer(),
        ["hostile"] => hostile(),
        _ => usage(
            "kv-conformance run | check | cas-increment N [--bucket B] | crash-writer | hostile",
        ),
    }
}

fn open(name: &str) -> Bucket {
    must(&format!("open {name:?}"), store::open(name))
}

/// Every key of `bucket`, page by page.
fn all_keys(bucket: &Bucket) -> (Vec<String>, usize) {
    let mut keys = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = must("list-keys", bucket.list_keys(cursor.as_deref()));
        pages += 1;
        keys.extend(page.keys);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return (keys, pages),
        }
    }
}

fn is_other(result: &Error, starts: &str) -> bool {
    matches!(result, Error::Other(text) if text.starts_with(starts))
}

fn run() {
    let default = open("");
    must("set", default.set("hello", b"world"));
    check_eq(
        "get",
        must("get", default.get("hello")),
        Some(b"world".to_vec()),
    );
    check_eq("exists", must("exists", default.exists("hello")), true);
    check_eq("get missing", must("get", default.get("nope")), None);
    check_eq(
        "exists missing",
        must("exists", default.exists("nope")),
        false,
    );
    must("set", default.set("hello", b"again"));
    check_eq(
        "overwrite",
        must("get", default.get("hello")),
        Some(b"again".to_vec()),
    );
    let bytes = vec![0xff, 0x00, 0x80, b'\n', 0x01];
    must("set binary", default.set("binary", &bytes));
    check_eq(
        "binary round trip",
        must("get", default.get("binary")),
        Some(bytes),
    );
    must("set empty", default.set("", b""));
    check_eq(
        "empty key and value",
        must("get", default.get("")),
        Some(Vec::new()),
    );
    must("delete", default.delete("hello"));
    check_eq("deleted", must("get", default.get("hello")), None);
    must("delete missing", default.delete("hello"));
    check(
        "open default by name",
        {
            let named = open("default");
            must("get", named.get("binary")).is_some()
        },
        || "open(\"default\") is not open(\"\")".into(),
    );
    check_eq(
        "buckets are apart",
        must("get", open("other").get("binary")),
        None,
    );

    many_keys();
    increments(&default);
    compare_and_swap(&default);
    errors(&default);

    must("set persist", default.set("persist", b"from run 1"));
    println!("run passed");
}

fn many_keys() {
    let bucket = open("many");
    let pairs: Vec<(String, Vec<u8>)> = (0..MANY)
        .map(|i| (many_key(i), format!("value-{i}").into_bytes()))
        .collect();
    for chunk in pairs.chunks(500) {
        must("set-many", batch::set_many(&bucket, chunk));
    }
    let (keys, pages) = all_keys(&bucket);
    check_eq("list-keys over 10,000 keys", keys.len(), MANY);
    let want: Vec<String> = (0..MANY).map(many_key).collect();
    check("list-keys in order, each once", keys == want, || {
        format!("{} keys, first {:?}", keys.len(), keys.first())
    });
    check("list-keys pages", pages > 1, || format!("{pages} page"));

    let asked: Vec<String> = vec![many_key(7), "absent".into(), many_key(9999)];
    let got = must("get-many", batch::get_many(&bucket, &asked));
    check_eq(
        "get-many",
        got,
        vec![
            Some((many_key(7), b"value-7".to_vec())),
            None,
            Some((many_key(9999), b"value-9999".to_vec())),
        ],
    );
    let even: Vec<String> = (0..MANY).step_by(2).map(many_key).collect();
    must("delete-many", batch::delete_many(&bucket, &even));
    let (keys, _) = all_keys(&bucket);
    check_eq("delete-many removed half", keys.len(), MANY / 2);
    check_eq(
        "an odd key is left",
        must("get", bucket.get(&many_key(1))),
        Some(b"value-1".to_vec()),
    );
    check_eq(
        "an even key is gone",
        must("exists", bucket.exists(&many_key(2))),
        false,
    );
    // A cursor is a position: one past the end lists nothing.
    let page = must("list-keys", bucket.list_keys(Some("zzz")));
    check(
        "list-keys after the end",
        page.keys.is_empty() && page.cursor.is_none(),
        || format!("{page:?}"),
    );
}

fn increments(bucket: &Bucket) {
    check_eq(
        "increment a missing key",
        must("increment", atomics::increment(bucket, "n", 5)),
        5,
    );
    check_eq(
        "increment",
        must("increment", atomics::increment(bucket, "n", 37)),
        42,
    );
    check_eq(
        "increment by a negative",
        must("increment", atomics::increment(bucket, "n", -50)),
        -8,
    );
    check_eq(
        "increments are stored as text",
        must("get", bucket.get("n")),
        Some(b"-8".to_vec()),
    );
    must("set", bucket.set("word", b"five"));
    check(
        "increment a non-integer",
        atomics::increment(bucket, "word", 1).is_err_and(|e| is_other(&e, "invalid-argument")),
        || "no invalid-argument error".into(),
    );
    must("set", bucket.set("big", i64::MAX.to_string().as_bytes()));
    check(
        "increment past i64::MAX",
        atomics::increment(bucket, "big", 1).is_err_and(|e| is_other(&e, "out-of-range")),
        || "no out-of-range error".into(),
    );
    check_eq(
        "a failed increment changes nothing",
        must("get", bucket.get("big")),
        Some(i64::MAX.to_string().into_bytes()),
    );
}

fn compare_and_swap(bucket: &Bucket) {
    let first = must("cas new", Cas::new(bucket, "c"));
    let second = must("cas new", Cas::new(bucket, "c"));
    check_eq(
        "cas current of a missing key",
        must("cas current", first.current()),
        None,
    );
    must(
        "swap",
        atomics::swap(first, b"1").map_err(|e| format!("{e:?}")),
    );
    let retry = match atomics::swap(second, b"2") {
        Err(CasError::CasFailed(retry)) => retry,
        other => fail("a stale swap fails", &format!("{other:?}")),
    };
    println!("ok a stale swap fails");
    check_eq(
        "the retry handle holds the value now",
        must("cas current", retry.current()),
        Some(b"1".to_vec()),
    );
    must(
        "swap the retry",
        atomics::swap(retry, b"2").map_err(|e| format!("{e:?}")),
    );
    check_eq("swapped", must("get", bucket.get("c")), Some(b"2".to_vec()));

    let stale = must("cas new", Cas::new(bucket, "c"));
    must("set", bucket.set("c", b"changed"));
    must("set", bucket.set("c", b"2"));
    check(
        "no ABA: a value changed and changed back fails the swap",
        matches!(atomics::swap(stale, b"3"), Err(CasError::CasFailed(_))),
        || "the swap succeeded".into(),
    );
    let gone = must("cas new", Cas::new(bucket, "d"));
    must("set", bucket.set("d", b"x"));
    must("delete", bucket.delete("d"));
    check(
        "no ABA on absence: a key set and deleted again fails the swap",
        matches!(atomics::swap(gone, b"3"), Err(CasError::CasFailed(_))),
        || "the swap succeeded".into(),
    );
    check_eq(
        "after the failed swaps",
        must("get", bucket.get("c")),
        Some(b"2".to_vec()),
    );
}

fn errors(bucket: &Bucket) {
    for name in ["../escape", "a/b", ".hidden", &"x".repeat(300)] {
        check(
            &format!("open {:.20}… is no-such-store", name),
            matches!(store::open(name), Err(Error::NoSuchStore)),
            || "opened".into(),
        );
    }
    let long_key = "k".repeat(64 * 1024);
    check(
        "a key past the limit",
        bucket
            .set(&long_key, b"v")
            .is_err_and(|e| is_other(&e, "invalid-argument")),
        || "stored".into(),
    );
    check(
        "get with a key past the limit",
        bucket
            .get(&long_key)
            .is_err_and(|e| is_other(&e, "invalid-argument")),
        || "no error".into(),
    );
    let huge = vec![b'v'; 2 * 1024 * 1024];
    check(
        "a value past the limit",
        bucket
            .set("huge", &huge)
            .is_err_and(|e| is_other(&e, "invalid-argument")),
        || "stored".into(),
    );
    let pairs = vec![
        ("fine".to_string(), b"1".to_vec()),
        ("huge".to_string(), huge),
    ];
    check(
        "set-many with one value past the limit",
        batch::set_many(bucket, &pairs).is_err(),
        || "stored".into(),
    );
    check_eq(
        "set-many is all or nothing",
        must("get", bucket.get("fine")),
        None,
    );
}

fn check_later() {
    let default = open("");
    check_eq(
        "persisted",
        must("get", default.get("persist")),
        Some(b"from run 1".to_vec()),
    );
    check_eq(
        "binary persisted",
        must("get", default.get("binary")),
        Some(vec![0xff, 0x00, 0x80, b'\n', 0x01]),
    );
    check_eq(
        "deleted stays deleted",
        must("get", default.get("hello")),
        None,
    );
    check_eq(
        "increment persisted",
        must("get", default.get("n")),
        Some(b"-8".to_vec()),
    );
    check_eq(
        "swap persisted",
        must("get", default.get("c")),
        Some(b"2".to_vec()),
    );
    let (keys, _) = all_keys(&open("many"));
    let want: Vec<String> = (1..MANY).step_by(2).map(many_key).collect();
    check("the many keys persisted", keys == want, || {
        format!("{} keys", keys.len())
    });
    println!("check passed");
}

fn cas_increment(bucket: &str, n: u64) {
    let bucket = open(bucket);
    let (mut swaps, mut failures) = (0u64, 0u64);
    let mut cas = must("cas new", Cas::new(&bucket, "counter"));
    while swaps < n {
        let current = must("cas current", cas.current());
        let value: u64 = match current.as_deref().map(std::str::from_utf8) {
            None => 0,
            Some(Ok(text)) => text.parse().unwrap_or_else(|_| fail("counter", text)),
            Some(Err(_)) => fail("counter", "not text"),
        };
        match atomics::swap(cas, (value + 1).to_string().as_bytes()) {
            Ok(()) => {
                swaps += 1;
                cas = must("cas new", Cas::new(&bucket, "counter"));
            }
            Err(CasError::CasFailed(retry)) => {
                failures += 1;
                cas = retry;
            }
            Err(CasError::StoreError(e)) => fail("swap", &format!("{e:?}")),
        }
    }
    println!("swaps {swaps} failures {failures}");
}

fn crash_writer() {
    let bucket = open("crash");
    for i in 1u64.. {
        let key = format!("k{}", i % 64);
        let value = format!("v{i}");
        must("set", bucket.set(&key, value.as_bytes()));
        ack(format_args!("set {key} {value}"));
        let n = must("increment", atomics::increment(&bucket, "counter", 1));
        ack(format_args!("incr {n}"));
        if i % 8 == 0 {
            let pairs: Vec<(String, Vec<u8>)> = ["a", "b", "c"]
                .iter()
                .map(|s| (format!("many-{s}"), i.to_string().into_bytes()))
                .collect();
            must("set-many", batch::set_many(&bucket, &pairs));
            ack(format_args!("many {i}"));
        }
    }
}

/// Prints `case name: ` and what `result` was: `ok K` or the error.
fn case<T, E: std::fmt::Debug>(name: &str, result: Result<T, E>, ok: impl FnOnce(T) -> String) {
    match result {
        Ok(value) => println!("case {name}: ok {}", ok(value)),
        Err(e) => println!("case {name}: {e:?}"),
    }
}

/// Goes past every limit it can: each case ends in an error, never a trap.
fn hostile() {
    // More buckets than the namespace may hold.
    let mut buckets = Vec::new();
    let opened = (0..10_000).try_for_each(|i| {
        buckets.push(store::open(&format!("b-{i}"))?);
        Ok::<(), Error>(())
    });
    case("buckets", opened, |()| "all".into());
    let count = buckets.len();
    drop(buckets);
    println!("case buckets opened: {count}");
    // More handles than the instance may hold.
    let bucket = open("b-0");
    let mut handles = Vec::new();
    let held = (0..100_000).try_for_each(|_| {
        handles.push(Cas::new(&bucket, "k")?);
        Ok::<(), Error>(())
    });
    case("cas handles", held, |()| "all".into());
    drop(handles);
    // More bytes than a bucket's snapshot may hold, one set at a time and
    // in one set-many.
    let value = vec![b'v'; 1024];
    let mut stored = 0;
    let filled = (0..100_000).try_for_each(|i| {
        bucket.set(&format!("fill-{i}"), &value)?;
        stored += 1;
        Ok::<(), Error>(())
    });
    case("fill", filled, |()| "all".into());
    println!("case fill stored: {stored}");
    let pairs: Vec<(String, Vec<u8>)> = (0..50_000)
        .map(|i| (format!("many-{i}"), value.clone()))
        .collect();
    case(
        "set-many past the limit",
        batch::set_many(&bucket, &pairs),
        |()| "stored".into(),
    );
    case("nothing of it is there", bucket.exists("many-0"), |e| {
        e.to_string()
    });
    // Deletes are always taken, and make room again.
    let keys: Vec<String> = (0..stored).map(|i| format!("fill-{i}")).collect();
    case("delete-many", batch::delete_many(&bucket, &keys), |()| {
        "deleted".into()
    });
    case("room again", bucket.set("after", &value), |()| {
        "stored".into()
    });
    // One value asked for many times: more than the host will hold for
    // one call.
    let repeated: Vec<String> = vec!["after".to_string(); 100];
    case(
        "get-many of one value 100 times",
        batch::get_many(&bucket, &repeated),
        |v| format!("{} values", v.len()),
    );
    // A cursor is any string: one far beyond every key, or huge.
    case(
        "huge cursor",
        bucket.list_keys(Some(&"z".repeat(1 << 20))),
        |page| format!("{} keys", page.keys.len()),
    );
    // An increment of a value that is not a number, of a huge number.
    must("set", bucket.set("nan", &[0xff; 3]));
    case(
        "increment binary",
        atomics::increment(&bucket, "nan", 1),
        |n| n.to_string(),
    );
    println!("hostile done");
}
