//! The check of a journal read back against every append its writers
//! made (tests/tests/jetstream_failover.rs): contiguous seqs, every
//! acknowledged append whole at its seqs, nothing torn, duplicated,
//! foreign or interleaved after a fenced writer.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use mini_jetstream::JsError;

/// One append a writer made, and its outcome.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The journal handle that made it (writer letter and generation).
    pub handle: String,
    /// The writer's number for it, unique across its handles.
    pub w: u64,
    /// The records, in order (one for `append`).
    pub records: Vec<String>,
    /// When the append was called.
    pub started: Instant,
    /// When it returned.
    pub finished: Instant,
    /// The last seq, as acknowledged, or the error.
    pub result: Result<u64, JsError>,
}

/// The data of record `i` of the `n` of append `w` of `handle`.
pub fn record_data(handle: &str, w: u64, i: usize, n: usize) -> String {
    serde_json::json!({ "h": handle, "w": w, "i": i, "n": n }).to_string()
}

/// What [`check_journal`] found.
#[derive(Debug, Default)]
pub struct Summary {
    /// Acknowledged appends.
    pub acked: usize,
    /// The records of those.
    pub acked_records: usize,
    /// Appends that returned an error and are in the journal (whole, once).
    pub failed_present: usize,
    /// Appends that returned an error and are not.
    pub failed_absent: usize,
    /// The errors seen, by kind.
    pub errors: BTreeMap<String, usize>,
}

/// An error's kind (its variant's name), for a summary.
pub fn error_kind(e: &JsError) -> &'static str {
    match e {
        JsError::Connect(_) => "Connect",
        JsError::Locked(_) => "Locked",
        JsError::Unknown { .. } => "Unknown",
        JsError::Full { .. } => "Full",
        JsError::TooLarge(_) => "TooLarge",
        JsError::BatchTooLong { .. } => "BatchTooLong",
        JsError::OutOfRange { .. } => "OutOfRange",
        JsError::Corrupt { .. } => "Corrupt",
        JsError::Server(_) => "Server",
        JsError::StaleToken(_) => "StaleToken",
        JsError::NotFound(_) => "NotFound",
        JsError::InvalidArgument(_) => "InvalidArgument",
    }
}

/// `Ok` if the seqs of `records` (a journal read back) are 1, 2, 3, ….
pub fn contiguous_from_one(records: &[(u64, String)]) -> Result<(), String> {
    for (position, (seq, _)) in records.iter().enumerate() {
        if *seq != position as u64 + 1 {
            return Err(format!(
                "record {position} read back has seq {seq}: the seqs are not contiguous from 1"
            ));
        }
    }
    Ok(())
}

/// Checks a journal's whole contents (`records`, as read back) against
/// every append made to it:
///
/// - its seqs are contiguous from 1;
/// - every record is one that an append wrote, with exactly that data;
/// - every append in it is there whole, once, its records in order at
///   consecutive seqs (a batch is never torn, nothing is duplicated);
/// - every acknowledged append is there at exactly the seqs it was
///   acknowledged at;
/// - an append that returned an error is there (whole, once) or not; not
///   at all if `failed_absent`;
/// - each handle's records are one run: once another handle has appended
///   after it, a (stale, fenced) handle never appends again.
pub fn check_journal(
    records: &[(u64, String)],
    attempts: &[Attempt],
    failed_absent: bool,
) -> Result<Summary, String> {
    contiguous_from_one(records)?;
    let mut by_id: HashMap<(String, u64), usize> = HashMap::new();
    for (index, attempt) in attempts.iter().enumerate() {
        if by_id
            .insert((attempt.handle.clone(), attempt.w), index)
            .is_some()
        {
            return Err(format!(
                "the test made two appends {}/{}",
                attempt.handle, attempt.w
            ));
        }
    }
    // Where each append's records are: (seq, index in the append).
    let mut found: HashMap<usize, Vec<(u64, usize)>> = HashMap::new();
    // The runs of one handle's records: (handle, first seq).
    let mut runs: Vec<(&str, u64)> = Vec::new();
    for (seq, data) in records {
        let value: serde_json::Value = serde_json::from_str(data)
            .map_err(|e| format!("seq {seq} holds {data:?}, not a record of the test: {e}"))?;
        let (Some(h), Some(w), Some(i)) = (
            value["h"].as_str(),
            value["w"].as_u64(),
            value["i"].as_u64(),
        ) else {
            return Err(format!(
                "seq {seq} holds {data:?}, not a record of the test"
            ));
        };
        let Some(&index) = by_id.get(&(h.to_owned(), w)) else {
            return Err(format!("seq {seq} holds {data:?}, which no append wrote"));
        };
        let attempt = &attempts[index];
        let i = i as usize;
        if attempt.records.get(i) != Some(data) {
            return Err(format!(
                "seq {seq} holds {data:?}, which append {h}/{w} did not write as its record {i}"
            ));
        }
        found.entry(index).or_default().push((*seq, i));
        match runs.last() {
            Some((last, _)) if *last == attempt.handle => {}
            _ => runs.push((&attempt.handle, *seq)),
        }
    }
    for (&index, places) in &found {
        let attempt = &attempts[index];
        let n = attempt.records.len();
        let indexes: Vec<usize> = places.iter().map(|&(_, i)| i).collect();
        let consecutive = places.windows(2).all(|p| p[1].0 == p[0].0 + 1);
        if indexes != (0..n).collect::<Vec<_>>() || !consecutive {
            return Err(format!(
                "append {}/{} of {n} records is in the journal as (seq, index) {places:?}: \
                 not whole, once, in order",
                attempt.handle, attempt.w
            ));
        }
    }
    let mut summary = Summary::default();
    for (index, attempt) in attempts.iter().enumerate() {
        let id = (attempt.handle.as_str(), attempt.w);
        let n = attempt.records.len() as u64;
        let present = found.get(&index);
        match &attempt.result {
            Ok(last) => {
                let expected: Vec<u64> = (last.saturating_sub(n) + 1..=*last).collect();
                let at: Option<Vec<u64>> = present.map(|p| p.iter().map(|&(seq, _)| seq).collect());
                if *last < n || at.as_ref() != Some(&expected) {
                    return Err(format!(
                        "append {}/{} of {n} records was acknowledged at seq {last} \
                         (seqs {expected:?}) but the journal holds it at {at:?} \
                         (the journal's last seq is {})",
                        id.0,
                        id.1,
                        records.len()
                    ));
                }
                summary.acked += 1;
                summary.acked_records += n as usize;
            }
            Err(e) => {
                *summary.errors.entry(error_kind(e).to_owned()).or_default() += 1;
                match present {
                    Some(places) if failed_absent => {
                        return Err(format!(
                            "append {}/{} failed ({e}) but the journal holds it at {places:?}",
                            id.0, id.1
                        ));
                    }
                    Some(_) => summary.failed_present += 1,
                    None => summary.failed_absent += 1,
                }
            }
        }
    }
    let mut seen_handles = HashMap::new();
    for &(handle, seq) in &runs {
        if let Some(earlier) = seen_handles.insert(handle, seq) {
            return Err(format!(
                "the handle {handle} wrote from seq {earlier}, then another handle, then {handle} \
                 again from seq {seq}: a stale writer's records after another's"
            ));
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_check_catches_lost_duplicated_torn_foreign_and_interleaved_records() {
        let now = Instant::now();
        let attempt = |handle: &str, w: u64, n: usize, result: Result<u64, JsError>| Attempt {
            handle: handle.to_owned(),
            w,
            records: (0..n).map(|i| record_data(handle, w, i, n)).collect(),
            started: now,
            finished: now,
            result,
        };
        let unknown = || JsError::Unknown {
            stream: "s".into(),
            waited_ms: 1,
            reason: "test".into(),
        };
        let stored = |attempts: &[&Attempt]| -> Vec<(u64, String)> {
            attempts
                .iter()
                .flat_map(|a| a.records.iter().cloned())
                .enumerate()
                .map(|(i, data)| (i as u64 + 1, data))
                .collect()
        };
        let one = attempt("a0", 1, 1, Ok(1));
        let batch = attempt("a0", 2, 3, Ok(4));
        let failed = attempt("a0", 3, 2, Err(unknown()));
        let attempts = vec![one.clone(), batch.clone(), failed.clone()];
        let good = stored(&[&one, &batch]);
        let summary = check_journal(&good, &attempts, false).expect("the journal as written");
        assert_eq!((summary.acked, summary.failed_absent), (2, 1));
        let with_failed = stored(&[&one, &batch, &failed]);
        let summary =
            check_journal(&with_failed, &attempts, false).expect("a failed append stored");
        assert_eq!(summary.failed_present, 1);

        let fails =
            |records: &[(u64, String)], attempts: &[Attempt], failed_absent: bool, what: &str| {
                let found = check_journal(records, attempts, failed_absent);
                assert!(found.is_err(), "the check misses {what}: {found:?}");
                eprintln!("{what}: {}", found.unwrap_err());
            };
        // An acknowledged append lost (the batch, or its last record).
        fails(&good[..1], &attempts, false, "a lost batch");
        fails(&good[..3], &attempts, false, "a torn acknowledged batch");
        // A failed batch stored in part.
        fails(&with_failed[..5], &attempts, false, "a torn failed batch");
        // A failed append stored where it must not be.
        fails(&with_failed, &attempts, true, "a fenced append stored");
        // An append stored twice.
        let twice = stored(&[&one, &batch, &failed, &failed]);
        fails(&twice, &attempts, false, "a duplicate");
        let twice = stored(&[&one, &one, &batch]);
        fails(
            &twice,
            &attempts,
            false,
            "an acknowledged append duplicated",
        );
        // Acknowledged at other seqs than it is stored at.
        let moved = vec![attempt("a0", 1, 1, Ok(2)), batch.clone()];
        fails(&good, &moved, false, "an ack at the wrong seq");
        // A gap, a seq not from 1, changed data, a record nobody wrote.
        let mut gap = good.clone();
        gap[2].0 = 9;
        fails(&gap, &attempts, false, "a gap");
        let shifted: Vec<(u64, String)> = good.iter().map(|(s, d)| (s + 1, d.clone())).collect();
        fails(&shifted, &attempts, false, "seqs not from 1");
        let mut changed = good.clone();
        changed[1].1 = changed[1].1.replace("\"i\":0", "\"i\":0,\"x\":1");
        fails(&changed, &attempts, false, "changed data");
        let mut foreign = good.clone();
        foreign.push((5, record_data("z9", 1, 0, 1)));
        fails(&foreign, &attempts, false, "a record no append wrote");
        // Records of a batch out of order.
        let mut swapped = good.clone();
        let (x, y) = (swapped[1].1.clone(), swapped[2].1.clone());
        swapped[1].1 = y;
        swapped[2].1 = x;
        fails(&swapped, &attempts, false, "a batch out of order");
        // A stale handle's record after another handle's.
        let b = attempt("b0", 1, 1, Ok(5));
        let stale = attempt("a0", 4, 1, Ok(6));
        let all = vec![one.clone(), batch.clone(), b.clone(), stale.clone()];
        fails(
            &stored(&[&one, &batch, &b, &stale]),
            &all,
            false,
            "a stale writer interleaved",
        );
        check_journal(&stored(&[&one, &batch, &b]), &all[..3], false).expect("one run per handle");
    }
}
