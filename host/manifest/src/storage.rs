//! mini's own table in a component manifest: `[component.capabilities.storage]`.
//!
//! Deny by default: a module without this table, or with an empty list for a
//! kind, may open nothing of that kind. Unknown fields in this table are an
//! error (a misspelled grant must not silently grant nothing).

use serde::Deserialize;

use crate::error::SharedQueueError;
use crate::module_id::validate_module_name;
use crate::pattern::NamePattern;

/// What a module may open and how much it may use, from
/// `[component.capabilities.storage]`.
///
/// Every name pattern is in the module's own namespace (its name, so a new
/// version of the module opens the data the old one wrote), except
/// [`shared_queues`](Self::shared_queues). Every limit left out means the
/// host's default.
///
/// ```toml
/// [component.capabilities.storage]
/// journals = ["invoices", "audit-*"]
/// states = ["ledger"]
/// queues = ["outbox"]
/// shared_queues = [{ name = "jobs", module = "scheduler" }]
/// quota_mb = 512
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageCapabilities {
    /// Journals (`mini:storage/store`) the module may open in its namespace.
    pub journals: Vec<NamePattern>,
    /// States (`mini:storage/state`: a state manager's journal and
    /// snapshots) the module may open in its namespace.
    pub states: Vec<NamePattern>,
    /// Snapshot stores (`mini:storage/snapshot`) the module may open in its
    /// namespace.
    pub snapshots: Vec<NamePattern>,
    /// Queues (`mini:storage/queue`) the module may open in its namespace.
    pub queues: Vec<NamePattern>,
    /// Key-value buckets (`wasi:keyvalue/store`) the module may open in its
    /// namespace (`open("")` opens the bucket named `default`).
    pub buckets: Vec<NamePattern>,
    /// Queues in other modules' namespaces the module may open, each by its
    /// exact name and its owner's module name.
    pub shared_queues: Vec<SharedQueue>,
    /// Disk quota of the module's namespace, in MiB: everything the module
    /// makes counts against it, opens included.
    pub quota_mb: Option<u64>,
    /// Largest record (journal record, queue message, state mutation) the
    /// module may write, in KiB.
    pub max_record_kb: Option<u64>,
    /// Largest state or snapshot the module may write, in MiB.
    pub max_state_mb: Option<u64>,
    /// Most handles (journals, states, snapshot stores, queues, pollables)
    /// the module may hold open at once.
    pub max_handles: Option<u32>,
    /// Time limit of one call into the module, in milliseconds; it holds
    /// inside host calls that wait.
    pub time_limit_ms: Option<u64>,
    /// CPU limit of one call into the module, in wasmtime fuel units.
    pub fuel: Option<u64>,
}

/// A kind of storage a module opens by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageKind {
    /// A journal: [`StorageCapabilities::journals`].
    Journal,
    /// A state: [`StorageCapabilities::states`].
    State,
    /// A snapshot store: [`StorageCapabilities::snapshots`].
    Snapshot,
    /// A queue of the module's own: [`StorageCapabilities::queues`].
    Queue,
    /// A key-value bucket: [`StorageCapabilities::buckets`].
    Bucket,
}

impl StorageCapabilities {
    /// The patterns granted for `kind` in the module's own namespace.
    pub fn patterns(&self, kind: StorageKind) -> &[NamePattern] {
        match kind {
            StorageKind::Journal => &self.journals,
            StorageKind::State => &self.states,
            StorageKind::Snapshot => &self.snapshots,
            StorageKind::Queue => &self.queues,
            StorageKind::Bucket => &self.buckets,
        }
    }

    /// Whether the module may open `name` of `kind` in its own namespace.
    pub fn allows(&self, kind: StorageKind, name: &str) -> bool {
        self.patterns(kind).iter().any(|p| p.matches(name))
    }

    /// Whether the module may open queue `name` of module `module` (a module
    /// name, not `name@version`) through [`shared_queues`](Self::shared_queues).
    pub fn allows_shared_queue(&self, module: &str, name: &str) -> bool {
        self.shared_queues
            .iter()
            .any(|q| q.module == module && q.name == name)
    }
}

/// A grant of queue [`name`](Self::name) in the namespace of module
/// [`module`](Self::module): `{ name = "jobs", module = "scheduler" }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "RawSharedQueue")]
pub struct SharedQueue {
    name: String,
    module: String,
}

impl SharedQueue {
    /// Validates the grant: `name` is an exact storage name (the
    /// [`NamePattern`] rules, without `*`) and `module` a module name (the
    /// [`ModuleId`](crate::ModuleId) name rule; no version).
    pub fn new(
        name: impl Into<String>,
        module: impl Into<String>,
    ) -> Result<Self, SharedQueueError> {
        let name = name.into();
        let module = module.into();
        let pattern = NamePattern::parse(&name).map_err(SharedQueueError::Name)?;
        if pattern.as_exact().is_none() {
            return Err(SharedQueueError::NotExact(name));
        }
        validate_module_name(&module).map_err(SharedQueueError::Module)?;
        Ok(SharedQueue { name, module })
    }

    /// The queue's name in its owner's namespace.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name of the module whose namespace holds the queue.
    pub fn module(&self) -> &str {
        &self.module
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSharedQueue {
    name: String,
    module: String,
}

impl TryFrom<RawSharedQueue> for SharedQueue {
    type Error = SharedQueueError;

    fn try_from(raw: RawSharedQueue) -> Result<Self, Self::Error> {
        SharedQueue::new(raw.name, raw.module)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ModuleIdError, PatternError};

    #[test]
    fn shared_queue_rules() {
        let q = SharedQueue::new("jobs", "scheduler").unwrap();
        assert_eq!((q.name(), q.module()), ("jobs", "scheduler"));
        assert_eq!(
            SharedQueue::new("jobs*", "scheduler"),
            Err(SharedQueueError::NotExact("jobs*".into()))
        );
        assert_eq!(
            SharedQueue::new("*", "scheduler"),
            Err(SharedQueueError::NotExact("*".into()))
        );
        assert_eq!(
            SharedQueue::new("../jobs", "scheduler"),
            Err(SharedQueueError::Name(PatternError::LeadingDot(
                "../jobs".into()
            )))
        );
        assert_eq!(
            SharedQueue::new("jobs", "scheduler@1.0.0"),
            Err(SharedQueueError::Module(ModuleIdError::InvalidNameChar(
                "scheduler@1.0.0".into()
            )))
        );
    }

    #[test]
    fn allows_checks_the_kind_and_the_owner() {
        let caps = StorageCapabilities {
            journals: vec!["audit-*".parse().unwrap()],
            queues: vec!["outbox".parse().unwrap()],
            shared_queues: vec![SharedQueue::new("jobs", "scheduler").unwrap()],
            ..Default::default()
        };
        assert!(caps.allows(StorageKind::Journal, "audit-1"));
        assert!(!caps.allows(StorageKind::Queue, "audit-1"));
        assert!(caps.allows(StorageKind::Queue, "outbox"));
        assert!(!caps.allows(StorageKind::State, "outbox"));
        assert!(!caps.allows(StorageKind::Bucket, "anything"));
        assert!(caps.allows_shared_queue("scheduler", "jobs"));
        assert!(!caps.allows_shared_queue("other", "jobs"));
        assert!(!caps.allows_shared_queue("scheduler", "outbox"));
        assert!(!StorageCapabilities::default().allows(StorageKind::Journal, "x"));
    }
}
