//! One snapshot file, as the bytes of the input, named for the `seq` it
//! holds (or 1). `decode_snapshot`, `read_file`, the unlocked check and
//! restore, and a store's restore must agree on whether it is valid and
//! what it holds; a new snapshot after it is what a restore then finds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mini_engine::snapshot::{
    SnapshotError, SnapshotOptions, SnapshotStore, check_unlocked, decode_snapshot,
    encode_snapshot, read_file, restore_unlocked, snapshot_file_name,
};
use mini_fuzz::{Scratch, write_file};

/// The seq the file claims, read leniently (it may be damaged elsewhere).
fn claimed_seq(data: &[u8]) -> u64 {
    let line = data.split(|&b| b == b'\n').next().unwrap_or_default();
    serde_json::from_slice::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v.get("seq")?.as_u64())
        .unwrap_or(1)
}

fuzz_target!(|data: &[u8]| {
    let seq = claimed_seq(data);
    let scratch = Scratch::new();
    let dir = scratch.path().join("snapshots");
    let path = dir.join(snapshot_file_name(seq));
    write_file(&path, data);

    let decoded = decode_snapshot(data);
    if let Ok((content_seq, state)) = &decoded {
        // What decodes, encodes back to something that decodes the same.
        let again = encode_snapshot(*content_seq, state);
        assert_eq!(
            decode_snapshot(again.as_bytes()).as_ref(),
            Ok(&(*content_seq, state.clone())),
            "a decoded snapshot does not round-trip"
        );
    }
    let valid = match &decoded {
        Ok((content_seq, state)) if *content_seq == seq => Some(state.clone()),
        _ => None,
    };
    let read = read_file(&path);
    assert_eq!(
        read.as_ref().ok().map(|(_, s)| s.clone()),
        valid,
        "read_file vs decode_snapshot: {read:?}"
    );
    let check = check_unlocked(&dir).unwrap_or_else(|e| panic!("check_unlocked: {e}"));
    assert_eq!(
        check.valid.is_empty(),
        valid.is_none(),
        "check_unlocked: {check:?}"
    );
    let unlocked = restore_unlocked(&dir, &SnapshotOptions::default());

    let store = SnapshotStore::open_with(&dir, SnapshotOptions::default())
        .unwrap_or_else(|e| panic!("opening the store: {e}"));
    let restored = store.restore();
    match (&restored, &valid) {
        (Ok(Some(r)), Some(state)) => {
            assert_eq!(
                (r.seq, &r.state),
                (seq, state),
                "restore found another snapshot"
            );
            assert!(
                r.skipped.is_empty(),
                "a valid only snapshot, yet some skipped"
            );
        }
        (Err(SnapshotError::AllDamaged { skipped }), None) => {
            assert_eq!(skipped.len(), 1, "one damaged file, skipped: {skipped:?}");
        }
        other => panic!("restore vs decode: {other:?}"),
    }
    assert_eq!(
        unlocked
            .as_ref()
            .ok()
            .map(|r| r.as_ref().map(|r| (r.seq, r.state.clone()))),
        restored
            .as_ref()
            .ok()
            .map(|r| r.as_ref().map(|r| (r.seq, r.state.clone()))),
        "restore_unlocked vs restore"
    );

    // A new snapshot after it (or over it, at the last seq) is what a
    // restore finds next, and the store keeps at most two.
    let next = seq.saturating_add(1);
    store
        .create(next, r#"{"fuzz":true}"#)
        .unwrap_or_else(|e| panic!("create after a fuzzed snapshot: {e}"));
    let newest = store
        .restore()
        .unwrap_or_else(|e| panic!("restore after create: {e}"))
        .unwrap_or_else(|| panic!("no snapshot after create"));
    assert_eq!(
        (newest.seq, newest.state.as_str()),
        (next, r#"{"fuzz":true}"#)
    );
    let listed = store.list().unwrap_or_else(|e| panic!("list: {e}"));
    assert!(
        listed.len() <= 2,
        "more than two snapshots kept: {listed:?}"
    );
});
