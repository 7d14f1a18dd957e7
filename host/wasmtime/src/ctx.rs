//! The per-instance context ([`MiniCtx`]), its builder and the view trait an
//! embedder implements for its store data ([`MiniView`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use mini_engine::fs::{FileSystem, StdFs};
use mini_engine::layout::{DataRoot, UnitKind};
use mini_engine::queue::{Clock, SystemClock};
use mini_manifest::{ComponentManifest, ModuleId, StorageCapabilities};
use wasmtime::component::ResourceTable;

use crate::access::Access;
use crate::calls::{CallObserver, Observer};
use crate::disk::Usage;
pub use crate::limits::{
    DEFAULT_DISK_QUOTA, DEFAULT_MAX_OPEN_HANDLES, DEFAULT_MAX_RECORD_SIZE, DEFAULT_MAX_STATE_SIZE,
    DEFAULT_SEGMENT_SIZE, LimitOutOfRange, Limits,
};
use crate::registry::MiniHost;
use crate::stop::StopSignal;

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
    /// A limit is out of its range.
    #[error(transparent)]
    Limit(#[from] LimitOutOfRange),
    /// A limit from a manifest does not fit in bytes.
    #[error("the manifest's {field} = {value} is too large")]
    ManifestLimit {
        /// The field of `[component.capabilities.storage]`.
        field: &'static str,
        /// Its value.
        value: u64,
    },
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
    pub(crate) access: Access,
    pub(crate) limits: Limits,
    /// Handles held, pollables included (a pollable's drop is wasmtime-wasi's,
    /// so the count is shared with it).
    pub(crate) open_handles: Arc<AtomicUsize>,
    pub(crate) usage: Arc<Usage>,
    /// Durable writes the instance made (appends, commits, pushes, …).
    pub(crate) writes: Arc<AtomicU64>,
    /// The data root's marker and the module record are written.
    pub(crate) prepared: bool,
    /// Raised when the instance is to stop: its waits end at once.
    pub(crate) stop: StopSignal,
    /// Sees every storage call (a test harness: see [`crate::calls`]).
    pub(crate) observer: Observer,
    /// The file system the instance's units are opened on.
    pub(crate) fs: Arc<dyn FileSystem>,
    /// The clock of the instance's queues: leases, delays, dedup windows.
    pub(crate) clock: Arc<dyn Clock>,
}

impl MiniCtx {
    /// A builder for a context over `data_root` and `namespace`.
    pub fn builder(
        host: &MiniHost,
        data_root: impl Into<PathBuf>,
        namespace: impl Into<String>,
    ) -> MiniCtxBuilder {
        MiniCtxBuilder::new(host, data_root, namespace)
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
        self.unit_dir(UnitKind::Journal, name)
    }

    /// The directory of the state `name` (the name is not checked here).
    pub fn state_dir(&self, name: &str) -> PathBuf {
        self.unit_dir(UnitKind::State, name)
    }

    /// The directory of the snapshot store `name` (the name is not checked
    /// here).
    pub fn snapshot_dir(&self, name: &str) -> PathBuf {
        self.unit_dir(UnitKind::Snapshots, name)
    }

    /// The directory of the queue `name` (the name is not checked here):
    /// `<data-root>/<namespace>/queue/<name>/`, or, for a queue granted with
    /// [`MiniCtxBuilder::grant_queue`], the one in the granting namespace.
    pub fn queue_dir(&self, name: &str) -> PathBuf {
        self.queue_namespace_dir(name)
            .join(UnitKind::Queue.dir_name())
            .join(name)
    }

    /// The directory of the `wasi:keyvalue` bucket `name` (the name is not
    /// checked here; `open("")` opens
    /// [`DEFAULT_BUCKET`](crate::keyvalue::DEFAULT_BUCKET)).
    pub fn bucket_dir(&self, name: &str) -> PathBuf {
        self.unit_dir(UnitKind::Bucket, name)
    }

    fn unit_dir(&self, kind: UnitKind, name: &str) -> PathBuf {
        self.namespace_dir.join(kind.dir_name()).join(name)
    }

    /// The module the instance runs, if it was built from a manifest.
    pub fn module(&self) -> Option<&ModuleId> {
        match &self.access {
            Access::Granted { module, .. } => Some(module),
            Access::Namespace => None,
        }
    }

    /// What the instance may open.
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// The data root.
    pub fn data_root(&self) -> &Path {
        &self.data_root
    }

    /// How many durable writes (appends, commits, checkpoints, snapshots,
    /// queue changes) the instance has made: 0 means it wrote nothing.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// A counter of the instance's durable writes that outlives the
    /// context (a runner moves the context into the store).
    pub fn writes_counter(&self) -> Arc<AtomicU64> {
        self.writes.clone()
    }

    /// The namespace directory the queue `name` lives in.
    pub(crate) fn queue_namespace_dir(&self, name: &str) -> PathBuf {
        match self.queue_grants.get(name) {
            Some(owner) => self.data_root.join(owner),
            None => self.namespace_dir.clone(),
        }
    }

    /// The namespace the queue `name` lives in: its owner's if granted.
    #[cfg(feature = "jetstream")]
    pub(crate) fn queue_namespace(&self, name: &str) -> &str {
        self.queue_grants
            .get(name)
            .map_or(self.namespace.as_str(), String::as_str)
    }

    /// The instance's limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The registry the instance opens journals through.
    pub fn host(&self) -> &MiniHost {
        &self.host
    }

    /// How many handles (pollables included) the instance holds right now.
    pub fn open_handles(&self) -> usize {
        self.open_handles.load(Ordering::Relaxed)
    }
}

/// Builds a [`MiniCtx`].
///
/// ```
/// use mini_host::{MiniCtx, MiniHost};
///
/// let host = MiniHost::new();
/// let ctx = MiniCtx::builder(&host, "/var/lib/mini", "billing")
///     .max_record_size(64 * 1024)
///     .disk_quota(100 * 1024 * 1024)
///     .build()?;
/// assert_eq!(ctx.namespace(), "billing");
/// assert!(MiniCtx::builder(&host, "/var/lib/mini", "../etc").build().is_err());
/// # Ok::<(), mini_host::CtxError>(())
/// ```
#[derive(Debug, Clone)]
pub struct MiniCtxBuilder {
    host: MiniHost,
    data_root: PathBuf,
    namespace: String,
    limits: Limits,
    queue_grants: BTreeMap<String, String>,
    access: Access,
    /// A limit of the manifest that does not fit (reported by `build`).
    manifest_error: Option<CtxError>,
    stop: StopSignal,
    observer: Observer,
    fs: Arc<dyn FileSystem>,
    clock: Arc<dyn Clock>,
}

impl MiniCtxBuilder {
    /// A builder for a context over `data_root` and `namespace`, with
    /// default [`Limits`], whose journals, states, snapshot stores and
    /// queues are opened through `host` (give every instance of the process
    /// the same one: see [`MiniHost`]).
    pub fn new(
        host: &MiniHost,
        data_root: impl Into<PathBuf>,
        namespace: impl Into<String>,
    ) -> Self {
        MiniCtxBuilder {
            host: host.clone(),
            data_root: data_root.into(),
            namespace: namespace.into(),
            limits: Limits::default(),
            queue_grants: BTreeMap::new(),
            access: Access::Namespace,
            manifest_error: None,
            stop: StopSignal::new(),
            observer: Observer::default(),
            fs: Arc::new(StdFs),
            clock: Arc::new(SystemClock),
        }
    }

    /// A builder for an instance of the module `manifest` describes, over
    /// `data_root`: the namespace is the module's name (so a new version of
    /// the module opens the data an older one wrote), the instance may open
    /// only what the manifest's `[component.capabilities.storage]` grants
    /// (deny by default: without that table, nothing), its shared queues are
    /// granted, and its quota, record size, state size and handle limits
    /// replace the defaults. Setters called afterwards change them again.
    ///
    /// ```
    /// use mini_host::MiniCtxBuilder;
    /// use mini_manifest::ComponentManifest;
    ///
    /// let manifest = ComponentManifest::from_toml_str(r#"
    ///     [component]
    ///     name = "billing"
    ///     version = "1.3.0"
    ///     [component.capabilities.storage]
    ///     journals = ["invoices"]
    ///     shared_queues = [{ name = "jobs", module = "broker" }]
    ///     quota_mb = 16
    /// "#)?;
    /// let host = mini_host::MiniHost::new();
    /// let ctx = MiniCtxBuilder::for_module(&host, "/var/lib/mini", &manifest).build()?;
    /// assert_eq!(ctx.namespace(), "billing");
    /// assert_eq!(ctx.module().map(|m| m.to_string()).as_deref(), Some("billing@1.3.0"));
    /// assert_eq!(ctx.limits().disk_quota, 16 * 1024 * 1024);
    /// assert!(ctx.queue_dir("jobs").ends_with("broker/queue/jobs"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn for_module(
        host: &MiniHost,
        data_root: impl Into<PathBuf>,
        manifest: &ComponentManifest,
    ) -> Self {
        let mut builder = MiniCtxBuilder::new(host, data_root, manifest.id().name());
        builder.access = Access::of_manifest(manifest);
        let Some(storage) = manifest.storage() else {
            return builder;
        };
        for shared in &storage.shared_queues {
            builder = builder.grant_queue(shared.name(), shared.module());
        }
        let limits = manifest_limits(builder.limits.clone(), storage);
        match limits {
            Ok(limits) => builder.limits = limits,
            Err(e) => builder.manifest_error = Some(e),
        }
        builder
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

    /// Sets [`Limits::max_key_size`].
    pub fn max_key_size(mut self, bytes: usize) -> Self {
        self.limits.max_key_size = bytes;
        self
    }

    /// Sets [`Limits::max_buckets`].
    pub fn max_buckets(mut self, buckets: usize) -> Self {
        self.limits.max_buckets = buckets;
        self
    }

    /// Sets [`Limits::max_streams`].
    pub fn max_streams(mut self, streams: usize) -> Self {
        self.limits.max_streams = streams;
        self
    }

    /// Sets [`Limits::segment_size`].
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.limits.segment_size = bytes;
        self
    }

    /// Ends the instance's waits (`pop-wait`) at once when `stop` is
    /// raised; see [`StopSignal`] and
    /// [`Runner::run_until`](crate::runner::Runner::run_until).
    pub fn stop_signal(mut self, stop: &StopSignal) -> Self {
        self.stop = stop.clone();
        self
    }

    /// Shows every storage call of the instance to `observer`, before it has
    /// an effect and once it is durable (see [`crate::calls`]): what a test
    /// harness uses to stop an instance at a chosen call, as a crash would,
    /// or to fail one.
    pub fn call_observer(mut self, observer: Arc<dyn CallObserver>) -> Self {
        self.observer = Observer::new(observer);
        self
    }

    /// Opens the instance's journals, states, snapshot stores and queues on
    /// `fs` instead of the real file system (a test harness's, which fails
    /// a write or an fsync on purpose). A unit already open in the
    /// [`MiniHost`] keeps the file system it was opened on.
    pub fn file_system(mut self, fs: Arc<dyn FileSystem>) -> Self {
        self.fs = fs;
        self
    }

    /// Reads the time of the instance's queues (leases, delays, dedup
    /// windows) from `clock` instead of the system's (a test harness's,
    /// which it moves forward). A queue already open in the [`MiniHost`]
    /// keeps the clock it was opened with.
    pub fn queue_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
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
    /// let producer = MiniCtx::builder(&host, "/var/lib/mini", "producer")
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
    /// is touched: directories (and the data root's marker) are created when
    /// the instance first opens something.
    pub fn build(self) -> Result<MiniCtx, CtxError> {
        if let Some(e) = self.manifest_error {
            return Err(e);
        }
        mini_engine::name::validate_name(&self.namespace).map_err(|reason| {
            CtxError::InvalidNamespace {
                name: self.namespace.clone(),
                reason,
            }
        })?;
        self.limits.check()?;
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
        let namespace_dir = DataRoot::new(&self.data_root)
            .namespace_dir(&self.namespace)
            .map_err(|reason| CtxError::InvalidNamespace {
                name: self.namespace.clone(),
                reason,
            })?;
        let host = self.host;
        let usage = host.namespace_usage(&namespace_dir);
        Ok(MiniCtx {
            usage,
            host,
            namespace: self.namespace,
            namespace_dir,
            data_root: self.data_root,
            queue_grants: self.queue_grants,
            access: self.access,
            limits: self.limits,
            open_handles: Arc::new(AtomicUsize::new(0)),
            writes: Arc::new(AtomicU64::new(0)),
            prepared: false,
            stop: self.stop,
            observer: self.observer,
            fs: self.fs,
            clock: self.clock,
        })
    }
}

/// `limits` with those `storage` sets (MiB and KiB in bytes).
fn manifest_limits(mut limits: Limits, storage: &StorageCapabilities) -> Result<Limits, CtxError> {
    let bytes = |field: &'static str, value: Option<u64>, unit: u64| {
        value
            .map(|v| {
                v.checked_mul(unit)
                    .and_then(|b| usize::try_from(b).ok())
                    .ok_or(CtxError::ManifestLimit { field, value: v })
            })
            .transpose()
    };
    if let Some(quota) = bytes("quota_mb", storage.quota_mb, 1 << 20)? {
        limits.disk_quota = quota as u64;
    }
    if let Some(record) = bytes("max_record_kb", storage.max_record_kb, 1 << 10)? {
        limits.max_record_size = record;
    }
    if let Some(state) = bytes("max_state_mb", storage.max_state_mb, 1 << 20)? {
        limits.max_state_size = state;
    }
    if let Some(handles) = storage.max_handles {
        limits.max_open_handles = handles as usize;
    }
    Ok(limits)
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
