//! Crash-point exploration of a component written against `wasi:keyvalue`
//! only (the shortener): its calls are storage calls like mini's own, each
//! a crash point at both moments, and since its `set-many` is atomic its
//! consistency check holds at every one. A bucket broken by hand fails the
//! same check, so the exploration could have found a crash point that
//! broke it.

use mini_engine::kv::{Bucket, BucketOptions};
use mini_testing::{Exploration, Sandbox};
use mini_tests::guest_component;

#[test]
fn every_crash_point_of_a_keyvalue_component_is_explored_and_keeps_it_consistent() {
    let sandbox = Sandbox::new(guest_component("shortener")).expect("a sandbox");
    let exploration = Exploration::crashes(
        &["add", "https://a.example", "https://b.example"],
        &["check"],
    )
    .setup(&["add", "https://old.example"])
    .every_point();
    let report = exploration
        .run(&sandbox, &mut |_, _| {})
        .expect("the exploration runs");
    assert!(report.passed(), "{}", report.to_json());
    assert_eq!(report.points.len() as u64, 2 * report.calls);
    assert!(report.points.iter().all(|p| p.reached));
    let calls: Vec<String> = report
        .points
        .iter()
        .filter_map(|p| p.storage_call.as_ref().map(|c| c.to_string()))
        .collect();
    for call in [
        "keyvalue.open",
        "keyvalue.get",
        "keyvalue.increment",
        "keyvalue.set-many",
    ] {
        assert!(
            calls.iter().any(|c| c.starts_with(call)),
            "no {call} in {calls:?}"
        );
    }
    assert!(
        calls
            .iter()
            .all(|c| !c.starts_with("keyvalue.") || c.ends_with("(\"default\")")),
        "each call names its bucket: {calls:?}"
    );

    // The check is able to fail: a URL without its way back.
    let run = sandbox.run(&["check"]).expect("runs");
    assert!(
        run.stdout.starts_with("consistent 1 codes"),
        "{}",
        run.stdout
    );
    let dir = sandbox
        .data_root()
        .join(sandbox.namespace())
        .join("bucket/default");
    let bucket = Bucket::open(&dir, &BucketOptions::default()).expect("the bucket opens");
    bucket.set("url:zz", b"https://lost.example").expect("set");
    drop(bucket);
    assert_eq!(sandbox.bucket("").expect("the bucket reads").len(), 4);
    let broken = sandbox.run(&["check"]).expect("runs");
    assert_ne!(broken.exit_code(), Some(0), "{}", broken.stdout);
    assert!(
        broken.stderr.contains("inconsistent: url:zz"),
        "{}",
        broken.stderr
    );
}
