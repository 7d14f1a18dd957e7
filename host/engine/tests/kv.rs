//! Key-value buckets: the contents are the fold of durable records across
//! reopens and checkpoints (against an in-memory model), a swap fails on a
//! value that changed and changed back, a `set_many` cut at any byte is
//! there whole or not at all, a listing returns every key present for the
//! whole of it exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use mini_engine::kv::{Bucket, BucketOptions, KvError, Observation, Swap};
use mini_engine::state::StateOptions;

fn options(checkpoint_every: u64) -> BucketOptions {
    BucketOptions {
        state: StateOptions {
            preallocate: 0,
            ..StateOptions::default()
        },
        checkpoint_every,
    }
}

fn open(dir: &Path, checkpoint_every: u64) -> Bucket {
    Bucket::open(dir, &options(checkpoint_every)).expect("the bucket opens")
}

fn contents(bucket: &Bucket) -> BTreeMap<String, Vec<u8>> {
    let mut all = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let keys = bucket.list_keys(after.as_deref(), 7);
        let Some(last) = keys.last().cloned() else {
            return all;
        };
        for key in keys {
            let value = bucket.get(&key).expect("a listed key has a value");
            all.insert(key, value);
        }
        after = Some(last);
    }
}

#[test]
fn a_bucket_is_the_fold_of_its_records_across_reopens_and_checkpoints() {
    for seed in 0..4 {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut bucket = open(dir.path(), 25);
        for step in 0..600 {
            let key = format!("k{}", rng.u8(..20));
            match rng.u8(..10) {
                0..=3 => {
                    let value: Vec<u8> = (0..rng.usize(..6)).map(|_| rng.u8(..)).collect();
                    bucket.set(&key, &value).expect("set");
                    model.insert(key.clone(), value);
                }
                4 => {
                    bucket.delete(&key).expect("delete");
                    model.remove(&key);
                }
                5 => {
                    let delta = rng.i64(-5..5);
                    let current = model.get(&key).map_or(Some(0), |v| {
                        std::str::from_utf8(v)
                            .ok()
                            .and_then(|t| t.parse::<i64>().ok())
                    });
                    match (bucket.increment(&key, delta), current) {
                        (Ok(next), Some(current)) => {
                            assert_eq!(next, current + delta);
                            model.insert(key.clone(), next.to_string().into_bytes());
                        }
                        (Err(KvError::NotAnInteger { .. }), None) => {}
                        (other, current) => panic!("increment {other:?} on {current:?}"),
                    }
                }
                6 => {
                    let pairs: Vec<(String, Vec<u8>)> = (0..rng.usize(..4))
                        .map(|i| (format!("k{}", rng.u8(..20)), vec![b'a' + i as u8]))
                        .collect();
                    bucket.set_many(&pairs).expect("set many");
                    model.extend(pairs);
                }
                7 => {
                    let keys: Vec<String> = (0..rng.usize(..4))
                        .map(|_| format!("k{}", rng.u8(..20)))
                        .collect();
                    bucket.delete_many(&keys).expect("delete many");
                    for key in keys {
                        model.remove(&key);
                    }
                }
                8 => {
                    let seen = bucket.observe(&key);
                    assert_eq!(seen.value, model.get(&key).cloned());
                    let value = format!("cas{step}").into_bytes();
                    let swap = bucket.compare_and_swap(&key, seen.version, &value);
                    assert_eq!(swap.expect("cas"), Swap::Swapped);
                    model.insert(key.clone(), value);
                }
                _ => {
                    drop(bucket);
                    bucket = open(dir.path(), 25);
                }
            }
            assert_eq!(
                bucket.get(&key),
                model.get(&key).cloned(),
                "seed {seed} step {step}"
            );
        }
        assert_eq!(contents(&bucket), model, "seed {seed}");
        assert!(bucket.checkpoint_error().is_none());
        assert!(bucket.log().checkpoint_seq() > 0, "checkpoints were made");
        drop(bucket);
        assert_eq!(
            contents(&open(dir.path(), 25)),
            model,
            "seed {seed} after reopen"
        );
    }
}

#[test]
fn a_swap_fails_on_a_value_that_changed_and_changed_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bucket = open(dir.path(), 1000);
    let swapped = |bucket: &Bucket, expected, value: &[u8]| {
        bucket.compare_and_swap("k", expected, value).expect("cas") == Swap::Swapped
    };
    assert!(
        !swapped(&bucket, Observation::Present(1), b"x"),
        "no value yet"
    );
    let absent = bucket.observe("k");
    assert_eq!(absent.value, None);
    assert!(swapped(&bucket, absent.version, b"a"), "absent as expected");
    assert!(!swapped(&bucket, absent.version, b"z"), "set since");
    let seen = bucket.observe("k").version;
    bucket.set("k", b"b").expect("set");
    bucket.set("k", b"a").expect("set");
    let Swap::Changed(now) = bucket.compare_and_swap("k", seen, b"c").expect("cas") else {
        panic!("swapped a value that changed and changed back");
    };
    assert_eq!(
        now.value.as_deref(),
        Some(&b"a"[..]),
        "the key as it is now"
    );
    assert_eq!(bucket.get("k"), Some(b"a".to_vec()));
    // Absent, then set and deleted again: an absence is not the same absence.
    let gone = bucket.observe("gone").version;
    bucket.set("gone", b"1").expect("set");
    bucket.delete("gone").expect("delete");
    assert!(!swapped_key(&bucket, "gone", gone));
    let now = bucket.observe("k").version;
    drop(bucket);
    // Versions survive a reopen: a swap with the version read before works.
    let bucket = open(dir.path(), 1000);
    assert!(swapped(&bucket, now, b"c"));
    bucket.delete("k").expect("delete");
    assert!(!swapped(&bucket, now, b"d"));
    assert!(swapped(&bucket, bucket.observe("k").version, b"d"));
}

fn swapped_key(bucket: &Bucket, key: &str, expected: Observation) -> bool {
    bucket.compare_and_swap(key, expected, b"x").expect("cas") == Swap::Swapped
}

#[test]
fn increments_refuse_what_is_not_an_integer_and_overflow() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bucket = open(dir.path(), 1000);
    assert_eq!(bucket.increment("n", 5).expect("from nothing"), 5);
    assert_eq!(bucket.get("n"), Some(b"5".to_vec()), "stored as text");
    bucket.set("word", b"five").expect("set");
    assert!(matches!(
        bucket.increment("word", 1),
        Err(KvError::NotAnInteger { .. })
    ));
    bucket
        .set("max", i64::MAX.to_string().as_bytes())
        .expect("set");
    assert!(matches!(
        bucket.increment("max", 1),
        Err(KvError::Overflow { .. })
    ));
    assert_eq!(bucket.get("max"), Some(i64::MAX.to_string().into_bytes()));
}

fn segment(dir: &Path) -> PathBuf {
    let journal = dir.join("journal");
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&journal)
        .expect("the journal dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    segments.sort();
    segments.pop().expect("a segment")
}

#[test]
fn a_set_many_cut_at_any_byte_is_there_whole_or_not_at_all() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let bucket = open(dir.path(), 1000);
        bucket.set("before", b"1").expect("set");
    }
    let seg = segment(dir.path());
    let before = std::fs::metadata(&seg).expect("meta").len();
    let pairs: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| (format!("many{i}"), vec![0xff, i]))
        .collect();
    {
        let bucket = open(dir.path(), 1000);
        bucket.set_many(&pairs).expect("set many");
    }
    let after = std::fs::metadata(&seg).expect("meta").len();
    let whole = std::fs::read(&seg).expect("read");
    let text = String::from_utf8_lossy(&whole[before as usize..]).into_owned();
    assert!(
        text.contains("\"base64\""),
        "binary values in base64: {text}"
    );
    for cut in before..after {
        let copy = tempfile::tempdir().expect("temp dir");
        copy_dir(dir.path(), copy.path());
        let seg = segment(copy.path());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&seg)
            .and_then(|f| f.set_len(cut))
            .expect("cut");
        let bucket = open(copy.path(), 1000);
        let there: Vec<bool> = pairs.iter().map(|(k, _)| bucket.exists(k)).collect();
        assert!(
            there.iter().all(|&t| !t),
            "cut at {cut} of {before}..{after}: {there:?}"
        );
        assert_eq!(bucket.get("before"), Some(b"1".to_vec()));
    }
    let bucket = open(dir.path(), 1000);
    for (key, value) in &pairs {
        assert_eq!(bucket.get(key).as_ref(), Some(value));
    }
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn a_listing_returns_every_key_present_throughout_exactly_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bucket = open(dir.path(), 1000);
    let stable: BTreeSet<String> = (0..50).map(|i| format!("s{i:03}")).collect();
    for key in &stable {
        bucket.set(key, b"v").expect("set");
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut round = 0;
    loop {
        let page = bucket.list_keys(after.as_deref(), 4);
        let Some(last) = page.last().cloned() else {
            break;
        };
        seen.extend(page);
        after = Some(last);
        // Between pages other keys come and go, before and after the cursor.
        bucket.set(&format!("a{round}"), b"x").expect("set");
        bucket.set(&format!("z{round}"), b"x").expect("set");
        bucket
            .delete(&format!("z{}", round.max(1) - 1))
            .expect("delete");
        round += 1;
    }
    let stable_seen: Vec<&String> = seen.iter().filter(|k| k.starts_with('s')).collect();
    assert_eq!(
        stable_seen.len(),
        stable.len(),
        "each exactly once: {seen:?}"
    );
    assert!(stable_seen.iter().all(|k| stable.contains(*k)));
    let distinct: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "no key twice");
}

#[test]
fn deleting_keys_that_are_not_there_writes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bucket = open(dir.path(), 1000);
    bucket.set("here", b"1").expect("set");
    let before = bucket.log().last_seq();
    bucket.delete("absent").expect("delete");
    bucket
        .delete_many(&["absent", "also absent"])
        .expect("delete many");
    assert_eq!(
        bucket.log().last_seq(),
        before,
        "no record for nothing to delete"
    );
    bucket
        .delete_many(&["absent", "here", "here"])
        .expect("delete many");
    assert_eq!(
        bucket.log().last_seq(),
        before + 1,
        "one record for the one key there"
    );
    assert!(!bucket.exists("here"));
}

#[test]
fn a_read_of_many_keys_is_bounded_by_bytes_before_anything_is_copied() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bucket = open(dir.path(), 1000);
    bucket.set("big", &[0xff; 1000]).expect("set");
    bucket.set("small", b"1").expect("set");
    let once = bucket
        .get_many_within(&["big", "small", "absent"], 1010)
        .expect("within");
    assert_eq!(
        once,
        vec![Some(vec![0xff; 1000]), Some(b"1".to_vec()), None]
    );
    let repeated = vec!["big"; 100];
    let Err(KvError::ReadTooLarge { bytes, limit }) = bucket.get_many_within(&repeated, 50_000)
    else {
        panic!("a read of 100 times 1000 bytes within 50,000");
    };
    assert!(bytes >= 100_000 && limit == 50_000);
}
