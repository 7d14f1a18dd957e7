//! The snapshot store: file format, write protocol and fsync order, keeping
//! the newest K, falling back past damaged snapshots, refusing bad states.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use mini_engine::fs::faulty::{FaultyFs, FsEvent};
use mini_engine::snapshot::{
    SnapshotDamage, SnapshotError, SnapshotOptions, SnapshotStore, snapshot_file_name,
};

fn store_with(dir: &Path, keep: usize) -> SnapshotStore {
    SnapshotStore::open_with(
        dir,
        SnapshotOptions {
            keep,
            ..Default::default()
        },
    )
    .unwrap()
}

fn seqs(store: &SnapshotStore) -> Vec<u64> {
    store.list().unwrap().iter().map(|s| s.seq).collect()
}

#[test]
fn round_trip_and_exact_file_content() {
    let dir = tmp();
    let store = SnapshotStore::open(dir.path()).unwrap();
    let state = "{\n  \"value\": 10,\n  \"name\": \"a b\"\n}";
    let created = store.create(42, state).unwrap();
    let stored = r#"{"value":10,"name":"a b"}"#;
    let path = dir.path().join("snapshot-00000000000000000042.json");
    assert_eq!(created.info.path, path);
    let expected = format!(
        "{{\"mini\":\"snapshot\",\"version\":1,\"seq\":42,\"crc\":\"{:08x}\",\"state\":{stored}}}\n",
        crc32c(stored.as_bytes())
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
    assert_eq!(created.info.size, expected.len() as u64);
    assert_eq!(created.kept, [42]);
    // Only the snapshot (and the lock file) are in the directory.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["LOCK", "snapshot-00000000000000000042.json"]);

    let restored = store.restore().unwrap().unwrap();
    assert_eq!(restored.seq, 42);
    assert_eq!(restored.state, stored);
    assert_eq!(restored.path, path);
    assert!(restored.skipped.is_empty());
    let list = store.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].seq, list[0].size), (42, expected.len() as u64));

    // Another process's view, and a reopened store, agree.
    drop(store);
    let store = SnapshotStore::open(dir.path()).unwrap();
    assert_eq!(store.restore().unwrap().unwrap().state, stored);
    assert_eq!(
        snapshot_file_name(u64::MAX),
        "snapshot-18446744073709551615.json"
    );
}

#[test]
fn empty_store_restores_nothing_and_second_opener_is_refused() {
    let dir = tmp();
    let store = SnapshotStore::open(dir.path().join("new/snaps")).unwrap();
    assert!(store.restore().unwrap().is_none());
    assert!(store.list().unwrap().is_empty());
    assert!(matches!(
        SnapshotStore::open(dir.path().join("new/snaps")),
        Err(SnapshotError::Locked { .. })
    ));
}

#[test]
fn write_protocol_is_temp_sync_rename_dirsync() {
    let dir = tmp();
    let fs = FaultyFs::new();
    let options = SnapshotOptions {
        fs: Arc::new(fs.clone()),
        ..Default::default()
    };
    let store = SnapshotStore::open_with(dir.path(), options).unwrap();
    fs.clear_events();
    store.create(7, "[1,2,3]").unwrap();
    let events = fs.events();
    let final_path = dir.path().join(snapshot_file_name(7));
    let create = events
        .iter()
        .position(|e| matches!(e, FsEvent::Create(_)))
        .expect("a temp file is created");
    let FsEvent::Create(temp) = &events[create] else {
        unreachable!()
    };
    assert_ne!(*temp, final_path);
    let temp_name = temp.file_name().unwrap().to_str().unwrap();
    assert!(temp_name.starts_with('.'), "{temp_name}");
    let expected = [
        FsEvent::Create(temp.clone()),
        FsEvent::Write {
            path: temp.clone(),
            offset: 0,
            len: std::fs::metadata(&final_path).unwrap().len() as usize,
        },
        FsEvent::SyncData(temp.clone()),
        FsEvent::Rename(temp.clone(), final_path.clone()),
        FsEvent::SyncDir(dir.path().to_path_buf()),
    ];
    assert_eq!(events[create..create + 5], expected[..], "{events:#?}");
    // Nothing else writes or renames.
    assert!(
        !events[create + 5..]
            .iter()
            .any(|e| matches!(e, FsEvent::Write { .. } | FsEvent::Rename(..))),
        "{events:#?}"
    );

    // Pruning: removals followed by a directory fsync.
    store.create(8, "1").unwrap();
    fs.clear_events();
    store.create(9, "2").unwrap();
    let events = fs.events();
    let removed = events
        .iter()
        .position(|e| *e == FsEvent::Remove(dir.path().join(snapshot_file_name(7))))
        .expect("the oldest is removed");
    assert!(
        events[removed..].contains(&FsEvent::SyncDir(dir.path().to_path_buf())),
        "{events:#?}"
    );
}

#[test]
fn failed_sync_leaves_no_snapshot_and_the_old_one_stands() {
    let dir = tmp();
    let fs = FaultyFs::new();
    let options = SnapshotOptions {
        fs: Arc::new(fs.clone()),
        ..Default::default()
    };
    let store = SnapshotStore::open_with(dir.path(), options).unwrap();
    store.create(1, "\"old\"").unwrap();
    fs.fail_sync_data_after(0);
    assert!(matches!(
        store.create(2, "\"new\""),
        Err(SnapshotError::Io { .. })
    ));
    assert_eq!(seqs(&store), [1]);
    assert_eq!(store.restore().unwrap().unwrap().state, "\"old\"");
    fs.fail_write_after(0);
    assert!(store.create(2, "\"new\"").is_err());
    assert_eq!(seqs(&store), [1]);
    // No temp file is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 2, "{names:?}");
    store.create(2, "\"new\"").unwrap();
    assert_eq!(store.restore().unwrap().unwrap().state, "\"new\"");
}

#[test]
fn keeps_the_newest_k() {
    let dir = tmp();
    let store = SnapshotStore::open(dir.path()).unwrap();
    for seq in 1..=5 {
        let created = store.create(seq * 10, &seq.to_string()).unwrap();
        let expect_kept: Vec<u64> = (1..=seq).rev().take(2).map(|s| s * 10).collect();
        assert_eq!(created.kept, expect_kept);
    }
    assert_eq!(seqs(&store), [40, 50]);
    drop(store);

    let store = store_with(dir.path(), 3);
    store.create(60, "6").unwrap();
    store.create(70, "7").unwrap();
    assert_eq!(seqs(&store), [50, 60, 70]);
    drop(store);
    let store = store_with(dir.path(), 1);
    let created = store.create(80, "8").unwrap();
    assert_eq!(created.deleted, [70, 60, 50]);
    assert_eq!(seqs(&store), [80]);

    // A damaged snapshot does not count as one of the K.
    drop(store);
    let store = store_with(dir.path(), 2);
    store.create(90, "9").unwrap();
    set_len(&store.path_of(90), 10);
    store.create(100, "10").unwrap();
    assert_eq!(seqs(&store), [80, 90, 100]);
    store.create(110, "11").unwrap();
    assert_eq!(seqs(&store), [100, 110]);

    assert_eq!(store.delete_older_than(110).unwrap(), 1);
    assert_eq!(seqs(&store), [110]);
    assert_eq!(store.delete_older_than(0).unwrap(), 0);
}

#[test]
fn a_snapshot_at_the_same_seq_replaces_the_old_one() {
    let dir = tmp();
    let store = SnapshotStore::open(dir.path()).unwrap();
    store.create(3, "\"a\"").unwrap();
    store.create(3, "\"b\"").unwrap();
    assert_eq!(seqs(&store), [3]);
    assert_eq!(store.restore().unwrap().unwrap().state, "\"b\"");
}

/// Damages the newest of two snapshots with `damage` and checks that restore
/// falls back to the older one, reporting the damage.
fn falls_back(damage: impl Fn(&Path, u64), check: impl Fn(&SnapshotDamage) -> bool) {
    let dir = tmp();
    let store = SnapshotStore::open(dir.path()).unwrap();
    let old_state = r#"{"v":"old","n":[1,2,3]}"#;
    let new_state = r#"{"v":"new","n":[1,2,3,4]}"#;
    store.create(5, old_state).unwrap();
    store.create(9, new_state).unwrap();
    let newest = store.path_of(9);
    damage(&newest, file_len(&newest));
    let restored = store.restore().unwrap().unwrap();
    assert_eq!((restored.seq, restored.state.as_str()), (5, old_state));
    assert_eq!(restored.skipped.len(), 1);
    assert_eq!(restored.skipped[0].seq, 9);
    assert_eq!(restored.skipped[0].path, newest);
    assert!(
        check(&restored.skipped[0].damage),
        "{:?}",
        restored.skipped[0].damage
    );
    // The message names the file.
    assert!(
        restored.skipped[0]
            .to_string()
            .contains(&newest.display().to_string())
    );
}

#[test]
fn truncated_newest_falls_back_at_every_cut() {
    let dir = tmp();
    let store = SnapshotStore::open(dir.path()).unwrap();
    store.create(9, r#"{"v":"new","n":[1,2,3,4]}"#).unwrap();
    let len = file_len(&store.path_of(9));
    drop(store);
    for cut in [0, 1, 10, 30, 50, len / 2, len - 2, len - 1] {
        falls_back(
            |path, _| set_len(path, cut),
            |d| matches!(d, SnapshotDamage::Incomplete | SnapshotDamage::Malformed(_)),
        );
    }
}

#[test]
fn byte_flipped_newest_falls_back() {
    // A flip inside the state is a crc mismatch.
    falls_back(
        |path, len| {
            let bytes = std::fs::read(path).unwrap();
            let at = bytes.windows(5).position(|w| w == b"\"new\"").unwrap() + 1;
            patch(path, at as u64, b"m");
            assert_eq!(file_len(path), len);
        },
        |d| matches!(d, SnapshotDamage::ChecksumMismatch { .. }),
    );
    // Flips anywhere: each is detected (as something).
    let dir = tmp();
    let store = SnapshotStore::open(dir.path()).unwrap();
    store.create(9, r#"{"v":"new"}"#).unwrap();
    let len = file_len(&store.path_of(9));
    drop(store);
    for at in (0..len).step_by(3) {
        falls_back(
            |path, _| {
                let bytes = std::fs::read(path).unwrap();
                patch(path, at, &[bytes[at as usize] ^ 0x01]);
            },
            |_| true,
        );
    }
    // The seq inside differs from the name.
    falls_back(
        |path, _| {
            let text = std::fs::read_to_string(path).unwrap();
            std::fs::write(path, text.replace("\"seq\":9", "\"seq\":8")).unwrap();
        },
        |d| {
            *d == SnapshotDamage::SeqMismatch {
                name: 9,
                content: 8,
            }
        },
    );
    // An extra field.
    falls_back(
        |path, _| {
            let text = std::fs::read_to_string(path).unwrap();
            std::fs::write(path, text.replace("\"version\":1", "\"version\":1,\"x\":0")).unwrap();
        },
        |d| matches!(d, SnapshotDamage::Malformed(_)),
    );
}

#[test]
fn all_damaged_is_an_error_listing_each() {
    let dir = tmp();
    let store = SnapshotStore::open(dir.path()).unwrap();
    store.create(1, "1").unwrap();
    store.create(2, "2").unwrap();
    set_len(&store.path_of(2), 5);
    patch(&store.path_of(1), file_len(&store.path_of(1)) - 3, b"7");
    match store.restore() {
        Err(SnapshotError::AllDamaged { skipped }) => {
            let got: Vec<u64> = skipped.iter().map(|s| s.seq).collect();
            assert_eq!(got, [2, 1]);
            assert_eq!(skipped[0].damage, SnapshotDamage::Incomplete);
            assert!(matches!(
                skipped[1].damage,
                SnapshotDamage::ChecksumMismatch { .. }
            ));
        }
        other => panic!("expected AllDamaged, got {other:?}"),
    }
}

#[test]
fn leftover_temp_file_is_ignored_and_cleaned() {
    let dir = tmp();
    let store = SnapshotStore::open(dir.path()).unwrap();
    store.create(1, "\"one\"").unwrap();
    drop(store);
    // A crash before the rename: the temp file holds a complete newer snapshot.
    let temp = dir.path().join(format!(".tmp-{}", snapshot_file_name(2)));
    std::fs::write(&temp, mini_engine::snapshot::encode_snapshot(2, "\"two\"")).unwrap();
    // A reader that does not take the lock ignores it.
    let seen =
        mini_engine::snapshot::restore_unlocked(dir.path(), &SnapshotOptions::default()).unwrap();
    assert_eq!(seen.unwrap().seq, 1);
    let store = SnapshotStore::open(dir.path()).unwrap();
    assert!(!temp.exists(), "the temp file is cleaned on open");
    assert_eq!(seqs(&store), [1]);
    assert_eq!(store.restore().unwrap().unwrap().state, "\"one\"");
}

#[test]
fn invalid_or_oversize_state_is_refused_and_nothing_changes() {
    let dir = tmp();
    let options = SnapshotOptions {
        max_state_size: 100,
        ..Default::default()
    };
    let store = SnapshotStore::open_with(dir.path(), options).unwrap();
    store.create(1, "{\"ok\":true}").unwrap();
    let before = std::fs::read(store.path_of(1)).unwrap();
    for bad in ["", "nope", "{\"a\":", "1 2", "{} {}"] {
        assert!(
            matches!(store.create(2, bad), Err(SnapshotError::InvalidState(_))),
            "{bad:?} accepted"
        );
    }
    let big = format!("\"{}\"", "x".repeat(200));
    assert!(matches!(
        store.create(2, &big),
        Err(SnapshotError::StateTooLarge {
            size: 202,
            limit: 100
        })
    ));
    assert_eq!(seqs(&store), [1]);
    assert_eq!(std::fs::read(store.path_of(1)).unwrap(), before);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn files_that_are_not_snapshots_are_ignored() {
    let dir = tmp();
    let store = SnapshotStore::open(dir.path()).unwrap();
    store.create(3, "3").unwrap();
    for name in [
        "snapshot-3.json",
        "snapshot-00000000000000000009.json.bak",
        "notes.txt",
    ] {
        std::fs::write(dir.path().join(name), "x").unwrap();
    }
    assert_eq!(seqs(&store), [3]);
    assert_eq!(store.restore().unwrap().unwrap().seq, 3);
}

/// A size limit at the top of `usize` (a caller's "no limit") is taken as
/// it is: reading a snapshot adds its framing to the limit without
/// overflowing. Found by reading the code the fuzz targets exercise.
#[test]
fn a_size_limit_at_the_top_of_usize_does_not_overflow() {
    let dir = tmp();
    let store = SnapshotStore::open_with(
        dir.path(),
        SnapshotOptions {
            max_state_size: usize::MAX,
            ..Default::default()
        },
    )
    .unwrap();
    store.create(7, r#"{"n":1}"#).unwrap();
    let restored = store.restore().unwrap().expect("a snapshot");
    assert_eq!((restored.seq, restored.state.as_str()), (7, r#"{"n":1}"#));
}
