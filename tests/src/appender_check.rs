//! The check of a journal read back against what one run of the
//! `appender` guest printed (tests/tests/jetstream_failover.rs): every
//! acknowledged call whole at its seqs, each record once, in order, and
//! nothing torn, duplicated or foreign.

use std::collections::HashMap;

use crate::journal_check::contiguous_from_one;

/// The appender's padding (guest/examples/appender/src/main.rs).
const APPENDER_PAD: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyzAB";

/// The appender's record `i`, exactly as it appends it.
pub fn appender_record(i: u64) -> String {
    format!(r#"{{"i":{i},"pad":"{APPENDER_PAD}"}}"#)
}

/// The calls an appender run of `count` records in batches of `batch`
/// makes (the last batch may be shorter).
pub fn call_count(count: u64, batch: u64) -> usize {
    count.div_ceil(batch) as usize
}

/// The records (their `i`) of call `call` (from 0) of that run.
pub fn call_records(call: usize, count: u64, batch: u64) -> std::ops::RangeInclusive<u64> {
    let first = call as u64 * batch + 1;
    first..=(first + batch - 1).min(count)
}

/// One call of the appender, as its stdout reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `ack <seq>`: stored, its last record at `seq`.
    Acked(u64),
    /// `error <kind>: <message>`.
    Failed(String),
}

/// What [`check_appender_journal`] found.
#[derive(Debug, Default)]
pub struct RunSummary {
    /// Acknowledged calls.
    pub acked: usize,
    /// The records of those.
    pub acked_records: usize,
    /// Failed calls whose records are in the journal (whole, once).
    pub failed_present: usize,
    /// Failed calls whose records are not.
    pub failed_absent: usize,
}

/// Checks a journal's whole contents (`records`, as read back) against
/// what one appender run of `count` records in batches of `batch` printed,
/// `calls` in order:
///
/// - the run made as many calls as it should;
/// - its seqs are contiguous from 1;
/// - every record is one the appender wrote (record `i` of the run, with
///   exactly its data), each `i` once, in the order they were appended;
/// - every call is there whole or not at all (a batch is never torn);
/// - every acknowledged call is there, its last record at the seq it was
///   acknowledged at and the others just before.
pub fn check_appender_journal(
    records: &[(u64, String)],
    count: u64,
    batch: u64,
    calls: &[Call],
) -> Result<RunSummary, String> {
    let expected = call_count(count, batch);
    if calls.len() != expected {
        return Err(format!(
            "the appender reported {} calls for {count} records in batches of {batch}, not {expected}",
            calls.len()
        ));
    }
    contiguous_from_one(records)?;
    // Where each record is: i -> seq.
    let mut seq_of: HashMap<u64, u64> = HashMap::new();
    let mut last_i = 0;
    for (seq, data) in records {
        let i = serde_json::from_str::<serde_json::Value>(data)
            .ok()
            .and_then(|value| value["i"].as_u64())
            .filter(|i| (1..=count).contains(i))
            .ok_or_else(|| format!("seq {seq} holds {data:?}, not a record of the run"))?;
        if *data != appender_record(i) {
            return Err(format!(
                "seq {seq} holds {data:?}, not the appender's record {i}"
            ));
        }
        if let Some(earlier) = seq_of.insert(i, *seq) {
            return Err(format!(
                "record i={i} is in the journal twice: at seq {earlier} and at seq {seq}"
            ));
        }
        if i < last_i {
            return Err(format!(
                "seq {seq} holds record i={i} after record i={last_i}: out of order"
            ));
        }
        last_i = i;
    }
    let mut summary = RunSummary::default();
    for (call, outcome) in calls.iter().enumerate() {
        let wrote = call_records(call, count, batch);
        let n = wrote.clone().count();
        let at: Vec<Option<u64>> = wrote.clone().map(|i| seq_of.get(&i).copied()).collect();
        let present = at.iter().flatten().count();
        let consecutive = at.windows(2).all(|w| match (w[0], w[1]) {
            (Some(a), Some(b)) => b == a + 1,
            _ => true,
        });
        if (present != 0 && present != n) || !consecutive {
            return Err(format!(
                "call {call} (records {wrote:?}, {outcome:?}) is in the journal at seqs {at:?}: \
                 not whole"
            ));
        }
        match outcome {
            Call::Acked(seq) => {
                let expected: Vec<Option<u64>> = (seq.saturating_sub(n as u64) + 1..=*seq)
                    .map(Some)
                    .collect();
                if *seq < n as u64 || at != expected {
                    return Err(format!(
                        "call {call} (records {wrote:?}) was acknowledged at seq {seq} \
                         but the journal holds its records at {at:?} (the journal's last seq \
                         is {})",
                        records.len()
                    ));
                }
                summary.acked += 1;
                summary.acked_records += n;
            }
            Call::Failed(_) if present == n => summary.failed_present += 1,
            Call::Failed(_) => summary.failed_absent += 1,
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_appender_check_catches_lost_duplicated_torn_foreign_and_reordered_records() {
        // 10 records in batches of 4: calls of records 1..=4, 5..=8, 9..=10.
        let (count, batch) = (10, 4);
        let stored = |is: &[u64]| -> Vec<(u64, String)> {
            is.iter()
                .enumerate()
                .map(|(position, &i)| (position as u64 + 1, appender_record(i)))
                .collect()
        };
        let all: Vec<u64> = (1..=10).collect();
        let acked = [Call::Acked(4), Call::Acked(8), Call::Acked(10)];
        let summary = check_appender_journal(&stored(&all), count, batch, &acked)
            .expect("the journal as written");
        assert_eq!((summary.acked, summary.acked_records), (3, 10));
        // A failed call stored (its outcome was unknown) or not, whole.
        let failed = [
            Call::Acked(4),
            Call::Failed("io: unknown".into()),
            Call::Acked(6),
        ];
        let without: Vec<u64> = [1, 2, 3, 4, 9, 10].into();
        let summary = check_appender_journal(&stored(&without), count, batch, &failed)
            .expect("a failed batch not stored");
        assert_eq!((summary.acked, summary.failed_absent), (2, 1));
        let with = [
            Call::Acked(4),
            Call::Failed("io: unknown".into()),
            Call::Acked(10),
        ];
        let summary = check_appender_journal(&stored(&all), count, batch, &with)
            .expect("a failed batch stored");
        assert_eq!(summary.failed_present, 1);
        let singles: Vec<Call> = (1..=10).map(Call::Acked).collect();
        check_appender_journal(&stored(&all), count, 1, &singles).expect("single appends");

        let fails = |records: &[(u64, String)], batch: u64, calls: &[Call], what: &str| {
            let found = check_appender_journal(records, count, batch, calls);
            assert!(found.is_err(), "the check misses {what}: {found:?}");
            eprintln!("{what}: {}", found.unwrap_err());
        };
        // An acknowledged call lost: the last batch, a batch's last record, a single.
        fails(&stored(&all[..8]), batch, &acked, "a lost batch");
        fails(
            &stored(&all[..9]),
            batch,
            &acked,
            "a torn acknowledged batch",
        );
        let mut lost = all.clone();
        lost.remove(4);
        fails(&stored(&lost), 1, &singles, "a lost single append");
        // A failed batch stored in part.
        fails(
            &stored(&[1, 2, 3, 4, 5, 6, 9, 10]),
            batch,
            &failed,
            "a torn failed batch",
        );
        // Duplicates: a single twice, a batch twice.
        let mut twice = all.clone();
        twice.insert(3, 3);
        fails(&stored(&twice), 1, &singles, "a duplicated single append");
        let twice: Vec<u64> = [1, 2, 3, 4, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10].into();
        fails(&stored(&twice), batch, &acked, "a duplicated batch");
        // Acknowledged at another seq than it is stored at.
        let moved = [Call::Acked(4), Call::Acked(9), Call::Acked(10)];
        fails(&stored(&all), batch, &moved, "an ack at the wrong seq");
        // Out of order, a gap, seqs not from 1, changed data, a foreign record.
        let mut swapped = all.clone();
        swapped.swap(5, 6);
        fails(&stored(&swapped), batch, &acked, "records out of order");
        let mut gap = stored(&all);
        gap[6].0 = 99;
        fails(&gap, batch, &acked, "a gap");
        let shifted: Vec<(u64, String)> = stored(&all)
            .into_iter()
            .map(|(seq, data)| (seq + 1, data))
            .collect();
        fails(&shifted, batch, &acked, "seqs not from 1");
        let mut changed = stored(&all);
        changed[2].1 = changed[2].1.replace("0123", "0124");
        fails(&changed, batch, &acked, "changed data");
        let mut foreign = stored(&all);
        foreign.push((11, appender_record(11)));
        fails(&foreign, batch, &acked, "a record the run did not write");
        let mut foreign = stored(&all);
        foreign.push((11, r#"{"x":1}"#.to_owned()));
        fails(&foreign, batch, &acked, "a record of another writer");
        // Fewer calls reported than the run makes.
        fails(&stored(&all), batch, &acked[..2], "a call not reported");
    }
}
