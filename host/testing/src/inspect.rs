//! What a component stored, read through the engine (never by parsing
//! files): a journal's records, a state's recovery point, a queue's
//! messages by where they are. Each read takes no lock and changes nothing.

use mini_engine::queue::{Message, MessageState, QueueStats, inspect_queue};
use mini_engine::state::StateLog;
use mini_engine::{Entry, read_unlocked};

use crate::SandboxError;

/// Records read per step of a journal's read.
const READ_BATCH: usize = 1024;

/// Every record of the journal in `dir`, in seq order (none if it was
/// never created).
pub(crate) fn journal_records(dir: &std::path::Path) -> Result<Vec<Entry>, SandboxError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut reader = read_unlocked(dir, 0)?;
    let mut records = Vec::new();
    loop {
        let batch = reader.next_batch(READ_BATCH)?;
        if batch.is_empty() {
            return Ok(records);
        }
        records.extend(batch);
    }
}

/// A state as recovery would find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateView {
    /// The newest valid snapshot: the seq it covers and the state (JSON
    /// text); `None` if no checkpoint was made.
    pub snapshot: Option<(u64, String)>,
    /// The mutations after the snapshot, in seq order: what recovery
    /// replays.
    pub mutations: Vec<Entry>,
    /// Damaged snapshots passed over (their descriptions).
    pub skipped: Vec<String>,
}

impl StateView {
    /// The seq of the last durable mutation (0: none).
    pub fn last_seq(&self) -> u64 {
        self.mutations
            .last()
            .map(|e| e.seq)
            .or(self.snapshot.as_ref().map(|(seq, _)| *seq))
            .unwrap_or(0)
    }
}

/// The state in `dir` (an empty view if it was never created).
pub(crate) fn state_view(dir: &std::path::Path) -> Result<StateView, SandboxError> {
    if !dir.is_dir() {
        return Ok(StateView {
            snapshot: None,
            mutations: Vec::new(),
            skipped: Vec::new(),
        });
    }
    let (point, mut tail) = StateLog::read_unlocked(dir)?;
    let mut mutations = Vec::new();
    while let Some(entry) = tail.next_entry()? {
        mutations.push(entry);
    }
    Ok(StateView {
        snapshot: point.snapshot.map(|s| (s.seq, s.state)),
        mutations,
        skipped: point.skipped.iter().map(|s| s.to_string()).collect(),
    })
}

/// A queue's messages at the sandbox's time.
#[derive(Debug, Clone)]
pub struct QueueView {
    /// How many messages are where (the journal's size is not counted: 0).
    pub stats: QueueStats,
    /// Every live message (ready, delayed, leased, dead), by id.
    pub messages: Vec<Message>,
    /// The time the view was taken at (ms since the Unix epoch, the
    /// sandbox's clock).
    pub now_ms: u64,
}

impl QueueView {
    /// The messages in `state` at the view's time, by id.
    pub fn in_state(&self, state: MessageState) -> Vec<&Message> {
        self.messages
            .iter()
            .filter(|m| m.place.state_at(self.now_ms) == state)
            .collect()
    }

    /// Deliverable now (leases that ran out included).
    pub fn ready(&self) -> Vec<&Message> {
        self.in_state(MessageState::Ready)
    }

    /// Leased, the lease running.
    pub fn leased(&self) -> Vec<&Message> {
        self.in_state(MessageState::Leased)
    }

    /// Delayed: pushed or nacked with a delay that has not passed.
    pub fn delayed(&self) -> Vec<&Message> {
        self.in_state(MessageState::Delayed)
    }

    /// Dead letters.
    pub fn dead(&self) -> Vec<&Message> {
        self.in_state(MessageState::Dead)
    }
}

/// The queue in `dir` at `now_ms` (an empty view if it was never created).
pub(crate) fn queue_view(dir: &std::path::Path, now_ms: u64) -> Result<QueueView, SandboxError> {
    if !dir.is_dir() {
        return Ok(QueueView {
            stats: QueueStats::default(),
            messages: Vec::new(),
            now_ms,
        });
    }
    let found = inspect_queue(dir)?;
    Ok(QueueView {
        stats: found.state.stats(now_ms),
        messages: found.state.messages().cloned().collect(),
        now_ms,
    })
}
