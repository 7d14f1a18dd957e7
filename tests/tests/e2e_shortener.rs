//! The `shortener` example end to end: a component written against the
//! standard `wasi:keyvalue@0.2.0-draft2` interfaces only (no mini SDK), run
//! by the real `mini run` binary, each run a new process over the same data
//! directory. What it stored is where FORMAT.md says (the bucket `default`,
//! a state directory under `<data>/<namespace>/bucket/`), `set-many` and
//! `delete-many` are one batch each in its journal, and `mini verify`
//! checks it.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use mini_tests::{guest_component, mini, os_args, segment_text};
use serde_json::Value;

const NS: &str = "links";

/// A data directory and the shortener component, run with `mini run`.
struct Shortener {
    data: tempfile::TempDir,
    wasm: PathBuf,
}

impl Shortener {
    fn new() -> Self {
        Shortener {
            data: tempfile::tempdir().expect("tempdir"),
            wasm: guest_component("shortener"),
        }
    }

    fn data(&self) -> &Path {
        self.data.path()
    }

    /// `mini run shortener.wasm --data DIR --namespace links FLAGS… -- ARGS…`.
    fn run_with(&self, flags: &[&str], args: &[&str]) -> (i32, String, String) {
        let mut all = os_args!["run", self.wasm, "--data", self.data(), "--namespace", NS];
        all.extend(flags.iter().map(OsString::from));
        all.push("--".into());
        all.extend(args.iter().map(OsString::from));
        mini(all)
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.run_with(&[], args)
    }

    /// Runs `args`, which must succeed; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(
            code, 0,
            "shortener {args:?} failed:\nstdout: {out}\nstderr: {err}"
        );
        out
    }

    /// Runs `args`, which must fail with exit status 1 (not a trap, 134),
    /// an empty stdout and `expected` on stderr; returns stderr.
    fn fails(&self, flags: &[&str], args: &[&str], expected: &str) -> String {
        let (code, out, err) = self.run_with(flags, args);
        assert_eq!(code, 1, "shortener {args:?}: stdout: {out}\nstderr: {err}");
        assert_eq!(
            out, "",
            "shortener {args:?} printed something: stderr: {err}"
        );
        assert!(
            err.contains(expected),
            "shortener {args:?}: no {expected:?} in: {err}"
        );
        assert!(
            !err.contains("panicked"),
            "shortener {args:?} panicked: {err}"
        );
        err
    }

    /// `stats` in a new process: code → (visits, URL). Each code once.
    fn stats(&self) -> BTreeMap<String, (u64, String)> {
        let out = self.ok(&["stats"]);
        let mut stats = BTreeMap::new();
        for line in out.lines() {
            let mut parts = line.splitn(3, ' ');
            let (Some(code), Some(visits), Some(url)) = (parts.next(), parts.next(), parts.next())
            else {
                panic!("a stats line is not `CODE VISITS URL`: {line:?}");
            };
            let visits = visits
                .parse()
                .unwrap_or_else(|_| panic!("visits in {line:?}"));
            let before = stats.insert(code.to_owned(), (visits, url.to_owned()));
            assert!(before.is_none(), "code {code} listed twice:\n{out}");
        }
        stats
    }

    /// `<data>/links/bucket/default/`: where FORMAT.md puts the bucket
    /// `open("")` opens.
    fn bucket_dir(&self) -> PathBuf {
        self.data().join(NS).join("bucket").join("default")
    }

    /// The bucket journal's record lines (`{"seq", "crc", "more"?, "data"}`).
    fn journal_lines(&self) -> Vec<Value> {
        let segment = self
            .bucket_dir()
            .join("journal")
            .join("00000000000000000001.jsonl");
        segment_text(&segment)
            .lines()
            .skip(1) // the header
            .map(|l| serde_json::from_str(l).expect("every line is JSON"))
            .collect()
    }

    /// `mini verify --data DIR --json`: (exit code, report).
    fn verify(&self) -> (i32, Value) {
        let (code, out, err) = mini(os_args!["verify", "--data", self.data(), "--json"]);
        let report = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("verify --json printed no JSON ({e}): {out}\n{err}"));
        (code, report)
    }
}

/// The expected stats: code → (visits, URL).
fn stats_of(entries: &[(&str, u64, &str)]) -> BTreeMap<String, (u64, String)> {
    entries
        .iter()
        .map(|&(code, visits, url)| (code.to_owned(), (visits, url.to_owned())))
        .collect()
}

/// `n` in base62, digits `0-9a-zA-Z`: what the shortener's codes are.
fn base62(mut n: u64) -> String {
    let digit = |d: u64| match d {
        0..=9 => (b'0' + d as u8) as char,
        10..=35 => (b'a' + (d - 10) as u8) as char,
        _ => (b'A' + (d - 36) as u8) as char,
    };
    let mut out = Vec::new();
    loop {
        out.push(digit(n % 62));
        n /= 62;
        if n == 0 {
            break;
        }
    }
    out.iter().rev().collect()
}

/// The keys of the `set` or `delete` records in `lines`, and whether each
/// continues a batch (`"more": true`).
fn records(lines: &[Value]) -> Vec<(String, String, bool)> {
    lines
        .iter()
        .map(|line| {
            let (op, body) = line["data"]
                .as_object()
                .and_then(|o| o.iter().next())
                .expect("a record is {\"set\"|\"delete\": …}");
            let key = body["key"].as_str().expect("a record has a key").to_owned();
            (op.clone(), key, line["more"] == true)
        })
        .collect()
}

#[test]
fn base62_oracle() {
    // The test's own base62, against values worked out by hand.
    assert_eq!(base62(1), "1");
    assert_eq!(base62(10), "a");
    assert_eq!(base62(36), "A");
    assert_eq!(base62(61), "Z");
    assert_eq!(base62(62), "10");
    assert_eq!(base62(600), "9G"); // 9 * 62 + 42
}

#[test]
fn add_visit_stats_remove_across_processes() {
    let s = Shortener::new();
    let a = "https://example.com/a";
    let b = "https://example.org/b?q=1&r=two words";

    assert_eq!(s.ok(&["add", a]), "1\n");
    assert_eq!(s.ok(&["add", b]), "2\n");
    // The same URL again, in a new process: the same code, no new one.
    assert_eq!(s.ok(&["add", a]), "1\n");

    for _ in 0..3 {
        assert_eq!(s.ok(&["visit", "1"]), format!("{a}\n"));
    }
    assert_eq!(s.ok(&["visit", "2"]), format!("{b}\n"));
    s.fails(&[], &["visit", "3"], "shortener: error: no such code: 3");
    s.fails(&[], &["visit"], "usage: shortener");

    assert_eq!(s.stats(), stats_of(&[("1", 3, a), ("2", 1, b)]));

    assert_eq!(s.ok(&["remove", "2"]), "removed 2\n");
    s.fails(&[], &["visit", "2"], "no such code: 2");
    s.fails(&[], &["remove", "2"], "no such code: 2");
    assert_eq!(s.stats(), stats_of(&[("1", 3, a)]));
    // Its `by-url:` entry went too: added again, the URL gets a new code
    // (codes are never reused: the counter only grows).
    assert_eq!(s.ok(&["add", b]), "3\n");
    assert_eq!(s.stats(), stats_of(&[("1", 3, a), ("3", 0, b)]));

    // On disk: only the bucket `default`, a state directory.
    let names = |dir: &Path| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| {
                e.expect("a directory entry")
                    .file_name()
                    .into_string()
                    .unwrap()
            })
            .collect()
    };
    assert_eq!(names(&s.data().join(NS)), BTreeSet::from(["bucket".into()]));
    assert_eq!(
        names(&s.data().join(NS).join("bucket")),
        BTreeSet::from(["default".into()])
    );
    assert!(s.bucket_dir().join("journal").is_dir());
    assert!(s.bucket_dir().join("snapshots").is_dir());

    // Each `set-many` is one batch: `url:` then `by-url:` (the order given),
    // the first continued by the second; the `delete-many` of `remove` too.
    let records = records(&s.journal_lines());
    let set = |key: &str, more| ("set".to_owned(), key.to_owned(), more);
    let delete = |key: &str, more| ("delete".to_owned(), key.to_owned(), more);
    let pos = |record: &(String, String, bool)| {
        records
            .iter()
            .position(|r| r == record)
            .unwrap_or_else(|| panic!("no record {record:?} in {records:#?}"))
    };
    let first = pos(&set("url:1", true));
    assert_eq!(records[first + 1], set(&format!("by-url:{a}"), false));
    let removed = pos(&delete("url:2", true));
    assert_eq!(
        records[removed + 1..removed + 3],
        [
            delete(&format!("by-url:{b}"), true),
            delete("visits:2", false)
        ]
    );
    // Adding `a` again wrote nothing: no second `url:1`, and three codes
    // drawn in all (1, 2, 3).
    assert_eq!(
        records.iter().filter(|r| r.1 == "url:1").count(),
        1,
        "{records:#?}"
    );
    let draws = records.iter().filter(|r| r.1 == "next-code").count();
    assert_eq!(draws, 3, "{records:#?}");

    // `mini verify` checks the bucket and finds it sound.
    let (code, report) = s.verify();
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["checked"]["bucket"], 1, "{report:#}");
    let unit = &report["units"][0];
    assert_eq!(unit["kind"], "bucket", "{report:#}");
    assert!(
        unit["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("links/bucket/default")),
        "{report:#}"
    );
    // next-code, url:1, by-url:a, visits:1, url:3, by-url:b.
    assert_eq!(unit["bucket"]["keys"], 6, "{report:#}");
}

#[test]
fn stats_pages_through_more_keys_than_one_listing_holds() {
    let s = Shortener::new();
    // 600 URLs: 1201 keys (url:, by-url: and next-code), more than one
    // `list-keys` page, so `stats` must follow the cursor.
    let count = 600u64;
    assert!(2 * count as usize + 1 > mini_host::keyvalue::LIST_PAGE);
    let urls: Vec<String> = (1..=count)
        .map(|i| format!("https://example.com/p/{i}"))
        .collect();
    let mut args = vec!["add"];
    args.extend(urls.iter().map(String::as_str));
    let expected: String = (1..=count).map(|i| format!("{}\n", base62(i))).collect();
    assert_eq!(s.ok(&args), expected);

    assert_eq!(s.ok(&["visit", "10"]), format!("{}\n", urls[61]));
    assert_eq!(s.ok(&["visit", "9G"]), format!("{}\n", urls[599]));

    let stats = s.stats();
    assert_eq!(stats.len(), count as usize);
    for (i, url) in (1..=count).zip(&urls) {
        let visits = u64::from(i == 62 || i == 600);
        assert_eq!(
            stats.get(&base62(i)),
            Some(&(visits, url.clone())),
            "code of {url}"
        );
    }
    let (code, report) = s.verify();
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        report["units"][0]["bucket"]["keys"],
        2 * count + 3,
        "{report:#}"
    );
}

#[test]
fn instances_running_at_once_never_share_a_code() {
    let s = Shortener::new();
    // Three instances in one `mini run` (the main one and two `--with`),
    // all in the namespace `shortener`, adding 50 URLs each at the same time.
    let urls = |tag: &str| -> Vec<String> {
        (1..=50)
            .map(|i| format!("https://{tag}.example/{i}"))
            .collect()
    };
    let (a, b, c) = (urls("a"), urls("b"), urls("c"));
    let with = |urls: &[String]| format!("{} add {}", s.wasm.display(), urls.join(" "));
    let mut args = os_args![
        "run",
        "--data",
        s.data(),
        "--with",
        with(&b),
        "--with",
        with(&c)
    ];
    args.extend(os_args![s.wasm, "--", "add"]);
    args.extend(a.iter().map(OsString::from));
    let (code, out, err) = mini(args);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");

    // 150 codes, all different, and no gap: each increment counted once.
    let codes: BTreeSet<&str> = out.lines().collect();
    assert_eq!(out.lines().count(), 150, "{out}");
    let expected: BTreeSet<String> = (1..=150).map(base62).collect();
    assert_eq!(
        codes,
        expected.iter().map(String::as_str).collect(),
        "{out}"
    );

    // Every URL has one of them, in a new process.
    let (code, out, err) = mini(os_args![
        "run",
        s.wasm,
        "--data",
        s.data(),
        "--namespace",
        "shortener",
        "--",
        "stats"
    ]);
    assert_eq!(code, 0, "stderr: {err}");
    let listed: BTreeMap<&str, &str> = out
        .lines()
        .map(|l| {
            let mut parts = l.splitn(3, ' ');
            let code = parts.next().unwrap();
            assert_eq!(parts.next(), Some("0"), "{l}");
            (parts.next().expect("a URL"), code)
        })
        .collect();
    let all: BTreeSet<&str> = a.iter().chain(&b).chain(&c).map(String::as_str).collect();
    assert_eq!(listed.keys().copied().collect::<BTreeSet<_>>(), all);
    assert_eq!(listed.values().copied().collect::<BTreeSet<_>>(), codes);
}

#[test]
fn store_errors_are_printed_and_exit_1() {
    let s = Shortener::new();
    let a = "https://example.com/a";
    assert_eq!(s.ok(&["add", a]), "1\n");

    // A key too long (`by-url:` + 5000 bytes; keys are at most 4096).
    let long = format!("https://example.com/{}", "x".repeat(5000));
    s.fails(
        &[],
        &["add", &long],
        "shortener: error: other: invalid-argument: ",
    );

    // A full disk quota: fill the namespace with another component's
    // journal (batches of 100 records, then single ones, until refused).
    let appender = guest_component("appender");
    for batch in ["100", "1"] {
        let (code, out, err) = mini(os_args![
            "run",
            appender,
            "--data",
            s.data(),
            "--namespace",
            NS,
            "--quota-mb",
            "1",
            "--",
            "filler",
            "100000",
            batch
        ]);
        assert_eq!(code, 1, "the appender was not stopped: {out}\n{err}");
        assert!(err.contains("quota exceeded"), "{err}");
    }
    let quota = ["--quota-mb", "1"];
    let b = "https://example.com/b";
    s.fails(&quota, &["add", b], "shortener: error: other: quota: ");
    // A visit that cannot be counted prints no URL.
    s.fails(&quota, &["visit", "1"], "shortener: error: other: quota: ");
    s.fails(&quota, &["remove", "1"], "shortener: error: other: quota: ");
    // Reads still work, and nothing of the refused calls is there.
    let (code, out, err) = s.run_with(&quota, &["stats"]);
    assert_eq!(
        (code, out.as_str()),
        (0, format!("1 0 {a}\n").as_str()),
        "{err}"
    );

    // With room again (the default quota): the refused add took no code.
    assert_eq!(s.ok(&["add", b]), "2\n");
    assert_eq!(s.ok(&["visit", "1"]), format!("{a}\n"));
    assert_eq!(s.stats(), stats_of(&[("1", 1, a), ("2", 0, b)]));
    let (code, report) = s.verify();
    assert_eq!(code, 0, "{report:#}");
}

#[test]
fn a_damaged_bucket_fails_verify_and_the_component_reports_it() {
    let s = Shortener::new();
    assert_eq!(
        s.ok(&["add", "https://example.com/a", "https://example.com/b"]),
        "1\n2\n"
    );
    let (code, report) = s.verify();
    assert_eq!(code, 0, "{report:#}");

    // Change one byte of a record's value: its crc no longer matches.
    let segment = s
        .bucket_dir()
        .join("journal")
        .join("00000000000000000001.jsonl");
    let bytes = std::fs::read(&segment).expect("the segment");
    let at = bytes
        .windows(b"example.com/a".len())
        .position(|w| w == b"example.com/a")
        .expect("the URL is in the journal as text");
    let mut damaged = bytes.clone();
    damaged[at + b"example.com/".len()] = b'X';
    std::fs::write(&segment, damaged).expect("write the segment");

    let (code, report) = s.verify();
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["ok"], false, "{report:#}");
    assert_eq!(report["damaged"], 1, "{report:#}");
    assert_eq!(report["units"][0]["kind"], "bucket", "{report:#}");

    // The component gets the store's error, prints it, exits 1.
    s.fails(&[], &["stats"], "shortener: error: other: corrupt: ");
    s.fails(&[], &["visit", "2"], "shortener: error: other: corrupt: ");
}
