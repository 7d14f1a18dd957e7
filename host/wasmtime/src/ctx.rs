//! The per-instance context ([`MiniCtx`]), its builder and the view trait an
//! embedder implements for its store data ([`MiniView`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::component::ResourceTable;

use crate::disk::Usage;
use crate::registry::MiniHost;

/// The default record size limit: 1 MiB.
pub const DEFAULT_MAX_RECORD_SIZE: usize = 1024 * 1024;
/// The default number of handles (journals, cursors, states, snapshot stores)
/// an instance may hold open.
pub const DEFAULT_MAX_OPEN_HANDLES: usize = 64;
/// The default disk quota of a namespace: 1 GiB.
pub const DEFAULT_DISK_QUOTA: u64 = 1024 * 1024 * 1024;
/// The default state size limit (snapshots and checkpoints): 64 MiB.
pub const DEFAULT_MAX_STATE_SIZE: usize = 64 * 1024 * 1024;
/// The default journal segment size: 64 MiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 * 1024 * 1024;

/// The storage limits of one instance.
///
/// Build one with [`Limits::default`] and change fields, or through the
/// setters of [`MiniCtxBuilder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Records (and each record of a batch) larger than this many bytes are
    /// refused with `record-too-large`. Default [`DEFAULT_MAX_RECORD_SIZE`].
    pub max_record_size: usize,
    /// States (snapshots, checkpoints) larger than this many bytes are
    /// refused with `record-too-large`. Default [`DEFAULT_MAX_STATE_SIZE`].
    pub max_state_size: usize,
    /// How many handles (journals, cursors, states, snapshot stores) the
    /// instance may hold at once;
    /// one more is refused with `quota`. Default [`DEFAULT_MAX_OPEN_HANDLES`].
    pub max_open_handles: usize,
    /// Bytes the namespace directory may occupy on disk. Checked before every
    /// append: an append that would go past it is refused with `quota`.
    /// Journals grow their files ahead of their records by up to 1/256 of
    /// it (at most 1 MiB, see
    /// [`JournalOptions::preallocate`](mini_engine::JournalOptions::preallocate));
    /// those bytes count, and an append needs room for them too.
    /// `u64::MAX` turns the check off. Default [`DEFAULT_DISK_QUOTA`].
    pub disk_quota: u64,
    /// Segment size of journals this instance opens first (a journal
    /// already open in the process keeps the options it was opened with; a
    /// state's journal uses at most
    /// [`mini_engine::state::DEFAULT_STATE_SEGMENT_SIZE`], so that compaction
    /// keeps it small). Default [`DEFAULT_SEGMENT_SIZE`].
    pub segment_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record_size: DEFAULT_MAX_RECORD_SIZE,
            max_state_size: DEFAULT_MAX_STATE_SIZE,
            max_open_handles: DEFAULT_MAX_OPEN_HANDLES,
            disk_quota: DEFAULT_DISK_QUOTA,
            segment_size: DEFAULT_SEGMENT_SIZE,
        }
    }
}

/// Why a [`MiniCtxBuilder`] could not build a context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CtxError {
    /// The namespace is not a valid name (it becomes a directory name).
    #[error("invalid namespace {name:?}: {reason}")]
    InvalidNamespace {
        /// The refused namespace.
        name: String,
        /// Why it was refused.
        reason: mini_engine::name::NameError,
    },
    /// A granted queue's name or owning namespace is not a valid name.
    #[error("invalid queue grant {name:?}: {reason}")]
    InvalidGrant {
        /// The refused name.
        name: String,
        /// Why it was refused.
        reason: mini_engine::name::NameError,
    },
    /// A limit is zero.
    #[error("the limit {0} must be greater than zero")]
    ZeroLimit(&'static str),
}

/// The storage context of one component instance: which namespace it sees,
/// its limits, and the shared [`MiniHost`] its journals are opened through.
///
/// A `MiniCtx` lives in the embedder's store data next to a
/// [`ResourceTable`]; [`MiniView::mini`] hands both to the host functions.
/// The instance's journals live in `<data-root>/<namespace>/journal/<name>/`.
#[derive(Debug)]
pub struct MiniCtx {
    pub(crate) host: MiniHost,
    pub(crate) namespace: String,
    pub(crate) namespace_dir: PathBuf,
    pub(crate) data_root: PathBuf,
    /// Queues granted to the instance: queue name → the namespace it lives in.
    pub(crate) queue_grants: BTreeMap<String, String>,
    pub(crate) limits: Limits,
    pub(crate) open_handles: usize,
    pub(crate) usage: Arc<Usage>,
}

impl MiniCtx {
    /// A builder for a context over `data_root` and `namespace`.
    pub fn builder(data_root: impl Into<PathBuf>, namespace: impl Into<String>) -> MiniCtxBuilder {
        MiniCtxBuilder::new(data_root, namespace)
    }

    /// The instance's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The namespace directory, `<data-root>/<namespace>`.
    pub fn namespace_dir(&self) -> &Path {
        &self.namespace_dir
    }

    /// The directory of the journal `name` (the name is not checked here).
    pub fn journal_dir(&self, name: &str) -> PathBuf {
        self.namespace_dir.join("journal").join(name)
    }

    /// The directory of the state `name` (the name is not checked here).
    pub fn state_dir(&self, name: &str) -> PathBuf {
        self.namespace_dir.join("state").join(name)
    }

    /// The directory of the snapshot store `name` (the name is not checked
    /// here).
    pub fn snapshot_dir(&self, name: &str) -> PathBuf {
        self.namespace_dir.join("snapshot").join(name)
    }

    /// The directory of the queue `name` (the name is not checked here):
    /// `<data-root>/<namespace>/queue/<name>/`, or, for a queue granted with
    /// [`MiniCtxBuilder::grant_queue`], the one in the granting namespace.
    pub fn queue_dir(&self, name: &str) -> PathBuf {
        self.queue_namespace_dir(name).join("queue").join(name)
    }

    /// The namespace directory the queue `name` lives in.
    pub(crate) fn queue_namespace_dir(&self, name: &str) -> PathBuf {
        match self.queue_grants.get(name) {
            Some(owner) => self.data_root.join(owner),
            None => self.namespace_dir.clone(),
        }
    }

    /// The instance's limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The registry the instance opens journals through.
    pub fn host(&self) -> &MiniHost {
        &self.host
    }

    /// How many journal and cursor handles the instance holds right now.
    pub fn open_handles(&self) -> usize {
        self.open_handles
    }
}

/// Builds a [`MiniCtx`].
///
/// ```
/// use mini_host::{MiniCtx, MiniHost};
///
/// let host = MiniHost::new();
/// let ctx = MiniCtx::builder("/var/lib/mini", "billing")
///     .host(&host)
///     .max_record_size(64 * 1024)
///     .disk_quota(100 * 1024 * 1024)
///     .build()?;
/// assert_eq!(ctx.namespace(), "billing");
/// assert!(MiniCtx::builder("/var/lib/mini", "../etc").build().is_err());
/// # Ok::<(), mini_host::CtxError>(())
/// ```
#[derive(Debug, Clone)]
pub struct MiniCtxBuilder {
    host: Option<MiniHost>,
    data_root: PathBuf,
    namespace: String,
    limits: Limits,
    queue_grants: BTreeMap<String, String>,
}

impl MiniCtxBuilder {
    /// A builder for a context over `data_root` and `namespace`, with
    /// default [`Limits`] and the process-wide [`MiniHost::global`] registry.
    pub fn new(data_root: impl Into<PathBuf>, namespace: impl Into<String>) -> Self {
        MiniCtxBuilder {
            host: None,
            data_root: data_root.into(),
            namespace: namespace.into(),
            limits: Limits::default(),
            queue_grants: BTreeMap::new(),
        }
    }

    /// Opens journals through `host` instead of [`MiniHost::global`].
    pub fn host(mut self, host: &MiniHost) -> Self {
        self.host = Some(host.clone());
        self
    }

    /// Replaces all limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets [`Limits::max_record_size`].
    pub fn max_record_size(mut self, bytes: usize) -> Self {
        self.limits.max_record_size = bytes;
        self
    }

    /// Sets [`Limits::max_state_size`].
    pub fn max_state_size(mut self, bytes: usize) -> Self {
        self.limits.max_state_size = bytes;
        self
    }

    /// Sets [`Limits::max_open_handles`].
    pub fn max_open_handles(mut self, handles: usize) -> Self {
        self.limits.max_open_handles = handles;
        self
    }

    /// Sets [`Limits::disk_quota`].
    pub fn disk_quota(mut self, bytes: u64) -> Self {
        self.limits.disk_quota = bytes;
        self
    }

    /// Sets [`Limits::segment_size`].
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.limits.segment_size = bytes;
        self
    }

    /// Grants the instance the queue `name` of the namespace `owner`: when
    /// the instance opens the queue `name`, it gets
    /// `<data-root>/<owner>/queue/<name>/`, shared with every instance
    /// granted the same queue (a producer and a worker, say) and with the
    /// owner's own instances. In one process they share one handle; a second
    /// process gets `locked`.
    ///
    /// ```
    /// use mini_host::{MiniCtx, MiniHost};
    /// let host = MiniHost::new();
    /// let producer = MiniCtx::builder("/var/lib/mini", "producer")
    ///     .host(&host)
    ///     .grant_queue("jobs", "broker")
    ///     .build()?;
    /// assert!(producer.queue_dir("jobs").ends_with("broker/queue/jobs"));
    /// assert!(producer.queue_dir("own").ends_with("producer/queue/own"));
    /// # Ok::<(), mini_host::CtxError>(())
    /// ```
    pub fn grant_queue(mut self, name: impl Into<String>, owner: impl Into<String>) -> Self {
        self.queue_grants.insert(name.into(), owner.into());
        self
    }

    /// Checks the namespace and the limits and builds the context. No file
    /// is touched: directories are created when a journal is first opened.
    pub fn build(self) -> Result<MiniCtx, CtxError> {
        mini_engine::name::validate_name(&self.namespace).map_err(|reason| {
            CtxError::InvalidNamespace {
                name: self.namespace.clone(),
                reason,
            }
        })?;
        if self.limits.max_record_size == 0 {
            return Err(CtxError::ZeroLimit("max_record_size"));
        }
        if self.limits.max_state_size == 0 {
            return Err(CtxError::ZeroLimit("max_state_size"));
        }
        if self.limits.segment_size == 0 {
            return Err(CtxError::ZeroLimit("segment_size"));
        }
        for (name, owner) in &self.queue_grants {
            for checked in [name, owner] {
                mini_engine::name::validate_name(checked).map_err(|reason| {
                    CtxError::InvalidGrant {
                        name: checked.clone(),
                        reason,
                    }
                })?;
            }
        }
        let namespace_dir = self.data_root.join(&self.namespace);
        let host = self.host.unwrap_or_else(|| MiniHost::global().clone());
        let usage = host.namespace_usage(&namespace_dir);
        Ok(MiniCtx {
            usage,
            host,
            namespace: self.namespace,
            namespace_dir,
            data_root: self.data_root,
            queue_grants: self.queue_grants,
            limits: self.limits,
            open_handles: 0,
        })
    }
}

/// Gives the host functions access to the [`MiniCtx`] and the
/// [`ResourceTable`] inside an embedder's store data `T`.
///
/// Implement it for the `T` of `Store<T>`, then call
/// [`add_to_linker_async`](crate::add_to_linker_async). The table may be the
/// same one WASI uses.
///
/// ```
/// use mini_host::{MiniCtx, MiniCtxView, MiniView};
/// use wasmtime::component::ResourceTable;
///
/// struct MyState {
///     mini: MiniCtx,
///     table: ResourceTable,
/// }
///
/// impl MiniView for MyState {
///     fn mini(&mut self) -> MiniCtxView<'_> {
///         MiniCtxView { ctx: &mut self.mini, table: &mut self.table }
///     }
/// }
/// ```
pub trait MiniView: Send {
    /// The instance's storage context and resource table.
    fn mini(&mut self) -> MiniCtxView<'_>;
}

/// What [`MiniView::mini`] returns: the host functions of the storage
/// interfaces are implemented on this type.
pub struct MiniCtxView<'a> {
    /// The instance's storage context.
    pub ctx: &'a mut MiniCtx,
    /// The table the instance's journal and cursor handles live in.
    pub table: &'a mut ResourceTable,
}
