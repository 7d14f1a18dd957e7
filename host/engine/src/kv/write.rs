//! Writing a bucket: decisions under the lock, records written with it
//! released (so concurrent writers share fsyncs), changes applied once
//! durable, and automatic checkpoints.

use std::collections::HashMap;
use std::sync::MutexGuard;

use super::fold::entry_bound;
use super::{Bucket, Inner, KvError, KvRecord};
use crate::state::{Checkpoint, StateError};

impl Bucket {
    fn wait<'a>(&self, inner: MutexGuard<'a, Inner>) -> MutexGuard<'a, Inner> {
        self.changed.wait(inner).unwrap_or_else(|p| p.into_inner())
    }

    /// The lock, once no checkpoint runs and none of `keys` is being
    /// written: what a write decides under.
    pub(super) fn begin<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k str> + Clone,
    ) -> MutexGuard<'_, Inner> {
        let mut inner = self.lock();
        while inner.checkpointing
            || keys
                .clone()
                .into_iter()
                .any(|key| inner.pending.contains(key))
        {
            inner = self.wait(inner);
        }
        inner
    }

    /// The snapshot bytes `records` add to the bucket (negative: free).
    fn growth(inner: &Inner, records: &[KvRecord]) -> i128 {
        let mut after: HashMap<&str, u64> = HashMap::new();
        for record in records {
            match record {
                KvRecord::Set { key, value } => after.insert(key, entry_bound(key, value)),
                KvRecord::Delete { key } => after.insert(key, 0),
            };
        }
        after
            .into_iter()
            .map(|(key, bytes)| {
                let before = inner
                    .state
                    .entries
                    .get(key)
                    .map_or(0, |e| entry_bound(key, &e.value));
                i128::from(bytes) - i128::from(before)
            })
            .sum()
    }

    /// The most bytes the bucket's snapshot may take.
    pub fn snapshot_limit(&self) -> u64 {
        u64::try_from(self.log.snapshots().options().max_state_size).unwrap_or(u64::MAX)
    }

    /// Writes `records` as one batch, durably, with the lock released, then
    /// applies them; then checkpoints if one is due (a failed checkpoint
    /// does not fail the write, which is durable: it is kept for
    /// [`Bucket::checkpoint_error`]).
    pub(super) fn write(
        &self,
        mut inner: MutexGuard<'_, Inner>,
        records: Vec<KvRecord>,
    ) -> Result<(), KvError> {
        if records.is_empty() {
            return Ok(());
        }
        let growth = Self::growth(&inner, &records);
        let added = u64::try_from(growth.max(0)).unwrap_or(u64::MAX);
        if added > 0 {
            let needed = inner
                .bytes
                .saturating_add(inner.pending_bytes)
                .saturating_add(added);
            let limit = self.snapshot_limit();
            if needed > limit {
                return Err(KvError::Full { needed, limit });
            }
        }
        let lines = records
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<String>, _>>()
            .map_err(StateError::Serialize)?;
        for record in &records {
            inner.pending.insert(record.key().to_owned());
        }
        inner.pending_bytes += added;
        inner.in_flight += 1;
        drop(inner);
        let written = self.log.commit_batch(&lines);
        let mut inner = self.lock();
        inner.in_flight -= 1;
        inner.pending_bytes -= added;
        for record in &records {
            inner.pending.remove(record.key());
        }
        self.changed.notify_all();
        let last = written?;
        let first = last + 1 - records.len() as u64;
        inner.records_since_checkpoint += records.len() as u64;
        for (seq, record) in (first..).zip(records) {
            let key = record.key();
            let before = inner
                .state
                .entries
                .get(key)
                .map_or(0, |e| entry_bound(key, &e.value));
            let after = match &record {
                KvRecord::Set { key, value } => entry_bound(key, value),
                KvRecord::Delete { key } => {
                    inner.deleted.insert(key.clone(), seq);
                    0
                }
            };
            inner.bytes = inner.bytes.saturating_sub(before).saturating_add(after);
            inner.state.apply(seq, record);
        }
        let every = self
            .options
            .checkpoint_every
            .max(inner.state.entries.len() as u64);
        let due = inner.records_since_checkpoint >= every.max(inner.checkpoint_retry_at);
        if due
            && !inner.checkpointing
            && let Err((mut inner, e)) = self.checkpoint_locked(inner)
        {
            // Tried again after as many records again: a checkpoint that
            // keeps failing must not slow down every write.
            inner.checkpoint_retry_at = inner.records_since_checkpoint.saturating_add(every);
            tracing::warn!(bucket = %self.log.dir().display(), error = %e, "automatic checkpoint of a bucket failed; the journal is not compacted until one succeeds");
            inner.checkpoint_error = Some(e.to_string());
        }
        Ok(())
    }

    /// Waits for the writes in flight, then snapshots the contents at the
    /// journal's last seq (every record up to it is applied then) and
    /// compacts. Deletes seen so far are forgotten: a swap expecting an
    /// absence observed before this fails (safely) from now on.
    pub(super) fn checkpoint_locked<'a>(
        &'a self,
        mut inner: MutexGuard<'a, Inner>,
    ) -> Result<Checkpoint, (MutexGuard<'a, Inner>, KvError)> {
        inner.checkpointing = true;
        while inner.in_flight > 0 {
            inner = self.wait(inner);
        }
        let seq = self.log.last_seq();
        let result = serde_json::to_string(&inner.state)
            .map_err(|e| KvError::Storage(StateError::Serialize(e)))
            .and_then(|json| Ok(self.log.checkpoint(seq, &json)?));
        inner.checkpointing = false;
        inner.deleted.clear();
        inner.forgotten_before = seq;
        self.changed.notify_all();
        match result {
            Ok(done) => {
                inner.records_since_checkpoint = 0;
                inner.checkpoint_retry_at = 0;
                inner.checkpoint_error = None;
                Ok(done)
            }
            Err(e) => Err((inner, e)),
        }
    }
}
