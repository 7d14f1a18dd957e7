//! The registry of what the instances of a process hold open ([`MiniHost`]).
//!
//! A journal directory is locked by the [`Journal`] that opened it, so two
//! instances of one process that open the same journal must share one
//! handle: they then also share fsyncs (group commit) instead of the second
//! one failing on the lock.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use std::sync::Weak;

use mini_engine::kv::{Bucket, BucketOptions, KvError};
use mini_engine::queue::{Queue, QueueError, QueueOptions};
use mini_engine::{Journal, JournalError, JournalOptions, StateError, WeakJournal};

use crate::backend::Backend;
use crate::disk::Usage;

/// How often an open that finds the lock taken is retried: the last handle
/// of the journal may be being dropped by another thread right now.
const LOCK_RETRIES: u32 = 5;
/// The pause between those retries.
const LOCK_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// What the instances of a process hold open: journals, queues and
/// key-value buckets (shared:
/// instances that open the same one get one handle, and share its fsyncs),
/// the owners of states and snapshot stores (one handle each), and each
/// namespace's disk usage (one quota, however many instances).
///
/// **An embedder makes one and gives it to every context**
/// ([`MiniCtx::builder`](crate::MiniCtx::builder)): instances given
/// different registries do not know of each other, so the second to open a
/// journal or queue the first holds gets `locked` (the lock is the file's,
/// per process), and their disk usage is counted apart. There is no hidden
/// default: what instances share is explicit.
///
/// Cloning is cheap (an `Arc` inside) and shares the registry. It keeps
/// only weak references: a journal is closed, and its lock released, when
/// the last instance holding it drops its handle.
///
/// ```
/// use mini_engine::JournalOptions;
/// use mini_host::MiniHost;
///
/// let dir = tempfile::tempdir()?;
/// let host = MiniHost::new();
/// let a = host.open_journal(&dir.path().join("j"), JournalOptions::default())?;
/// let b = host.open_journal(&dir.path().join("j"), JournalOptions::default())?;
/// a.append("1")?;
/// assert_eq!(b.last_seq(), 1); // one handle, shared
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct MiniHost {
    journals: Arc<Mutex<HashMap<PathBuf, WeakJournal>>>,
    usage: Arc<Mutex<HashMap<PathBuf, Arc<Usage>>>>,
    queues: Arc<Mutex<HashMap<PathBuf, Weak<Queue>>>>,
    buckets: Arc<Mutex<HashMap<PathBuf, Weak<Bucket>>>>,
    /// Directories of states and snapshot stores held by a handle in this
    /// process (they have one owner each).
    claims: Arc<Mutex<HashSet<PathBuf>>>,
    /// Where the instances' storage is.
    backend: Backend,
    /// Journals open on JetStream, by (namespace, name): one writer per
    /// journal per host, so the instances of a host share it (and its round
    /// trips) instead of fencing each other off.
    #[cfg(feature = "jetstream")]
    streams: Arc<Mutex<HashMap<(String, String), mini_jetstream::JsJournal>>>,
}

/// A state or snapshot store held by one handle of this process; released
/// when dropped.
#[derive(Debug)]
pub(crate) struct Claim {
    claims: Arc<Mutex<HashSet<PathBuf>>>,
    key: PathBuf,
}

/// Locks a map of the registry; every update is one insert or removal, so
/// the map stays consistent across a panic.
#[cfg(feature = "jetstream")]
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut claims = self.claims.lock().unwrap_or_else(|p| p.into_inner());
        claims.remove(&self.key);
    }
}

impl MiniHost {
    /// An empty registry. Instances share journals only when they use the
    /// same registry: make one per process.
    pub fn new() -> Self {
        MiniHost::default()
    }

    /// An empty registry whose instances' storage is served by `backend`
    /// ([`Backend::Local`] is what [`MiniHost::new`] makes).
    pub fn with_backend(backend: Backend) -> Self {
        MiniHost {
            backend,
            ..MiniHost::default()
        }
    }

    /// A registry on NATS JetStream at `urls` (`nats://host:port`, several
    /// separated by commas), connected on the current tokio runtime, which
    /// must outlive the host.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), mini_jetstream::JsError> {
    /// use mini_jetstream::JetStreamOptions;
    /// let options = JetStreamOptions { replicas: 3, ..JetStreamOptions::default() };
    /// let host = mini_host::MiniHost::jetstream("nats://127.0.0.1:4222,nats://127.0.0.1:4223", options).await?;
    /// assert_eq!(host.backend().name(), "JetStream");
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "jetstream")]
    pub async fn jetstream(
        urls: &str,
        options: mini_jetstream::JetStreamOptions,
    ) -> Result<Self, mini_jetstream::JsError> {
        let js = mini_jetstream::JetStream::connect(urls, options).await?;
        Ok(MiniHost::with_backend(Backend::jetstream(
            js,
            tokio::runtime::Handle::current(),
        )))
    }

    /// The backend the instances' storage is served by.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The journal `name` of `namespace` on JetStream: the writer this host
    /// holds already, unless it failed, else a new one (refused with
    /// `quota` if the journal does not exist and the namespace holds
    /// `max_streams` journals).
    #[cfg(feature = "jetstream")]
    pub(crate) async fn open_stream_journal(
        &self,
        namespace: &str,
        name: &str,
        max_streams: usize,
    ) -> Result<mini_jetstream::JsJournal, crate::bindings::types::Error> {
        use crate::bindings::types::Error;
        let Backend::JetStream(backend) = &self.backend else {
            return Err(Error::Other("this host has no JetStream backend".into()));
        };
        let key = (namespace.to_owned(), name.to_owned());
        let held = |streams: &HashMap<_, mini_jetstream::JsJournal>| {
            streams.get(&key).filter(|j| !j.is_failed()).cloned()
        };
        if let Some(journal) = held(&lock(&self.streams)) {
            return Ok(journal);
        }
        let opened = crate::backend::jetstream::open_unit(
            backend,
            namespace,
            ("journal", 1),
            name,
            max_streams,
            |js, ns, n| async move { js.open_journal(&ns, &n).await },
        )
        .await?;
        let mut streams = lock(&self.streams);
        // Another instance may have opened it meanwhile: one writer wins.
        if let Some(journal) = held(&streams) {
            return Ok(journal);
        }
        streams.insert(key, opened.clone());
        Ok(opened)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<PathBuf, WeakJournal>> {
        // The map stays consistent across a panic: every update is one insert.
        self.journals.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The journal in `dir`: the handle already open in this process if
    /// there is one, else the journal opened (or created) with `options`.
    ///
    /// Blocking (opening runs recovery and fsyncs): call it from a blocking
    /// thread in async code. A journal already open keeps the options it
    /// was opened with.
    pub fn open_journal(
        &self,
        dir: &Path,
        options: JournalOptions,
    ) -> Result<Journal, JournalError> {
        let key = std::path::absolute(dir).map_err(|source| JournalError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut journals = self.lock();
        if let Some(journal) = journals.get(&key).and_then(WeakJournal::upgrade) {
            return Ok(journal);
        }
        journals.retain(|_, weak| weak.upgrade().is_some());
        let journal = retry_locked(
            || Journal::open_with(&key, options.clone()),
            |e| matches!(e, JournalError::Locked { .. }),
        )?;
        journals.insert(key, journal.downgrade());
        Ok(journal)
    }

    /// The queue in `dir`: the one already open in this process if there is
    /// one (so instances that share a queue share its handle, its lock and
    /// its fsyncs), else the queue opened (or created) with `options`.
    ///
    /// Blocking (opening recovers the queue): call it from a blocking thread
    /// in async code.
    ///
    /// ```
    /// use mini_engine::queue::{PushOptions, QueueOptions};
    /// use mini_host::MiniHost;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let host = MiniHost::new();
    /// let producer = host.open_queue(&dir.path().join("jobs"), QueueOptions::default())?;
    /// let worker = host.open_queue(&dir.path().join("jobs"), QueueOptions::default())?;
    /// producer.push("1", &PushOptions::default())?;
    /// assert!(worker.pop(1000)?.is_some()); // one queue, shared
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_queue(&self, dir: &Path, options: QueueOptions) -> Result<Arc<Queue>, QueueError> {
        open_shared(
            &self.queues,
            dir,
            |key| Queue::open_with(key, options.clone()),
            |e| {
                matches!(
                    e,
                    QueueError::Storage(StateError::Journal(JournalError::Locked { .. }))
                )
            },
        )
    }

    /// The key-value bucket in `dir`: the one already open in this process
    /// if there is one (so instances that share a bucket share its handle,
    /// its lock and its fsyncs), else the bucket opened (or created) with
    /// `options`.
    ///
    /// Blocking (opening recovers the bucket): call it from a blocking
    /// thread in async code.
    ///
    /// ```
    /// use mini_engine::kv::BucketOptions;
    /// use mini_host::MiniHost;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let host = MiniHost::new();
    /// let a = host.open_bucket(&dir.path().join("b"), BucketOptions::default())?;
    /// let b = host.open_bucket(&dir.path().join("b"), BucketOptions::default())?;
    /// a.set("k", b"v")?;
    /// assert_eq!(b.get("k"), Some(b"v".to_vec())); // one bucket, shared
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_bucket(&self, dir: &Path, options: BucketOptions) -> Result<Arc<Bucket>, KvError> {
        open_shared(
            &self.buckets,
            dir,
            |key| Bucket::open(key, &options),
            |e| {
                matches!(
                    e,
                    KvError::Storage(StateError::Journal(JournalError::Locked { .. }))
                )
            },
        )
    }

    /// Claims the unit in `dir` for one handle of this process; `Err` if
    /// another handle holds it (an open would then fail on the unit's lock,
    /// which cannot tell this process from another).
    pub(crate) fn claim(&self, dir: &Path) -> Result<Claim, ()> {
        let key = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let mut claims = self.claims.lock().unwrap_or_else(|p| p.into_inner());
        if !claims.insert(key.clone()) {
            return Err(());
        }
        Ok(Claim {
            claims: self.claims.clone(),
            key,
        })
    }

    /// The disk usage counter of the namespace in `ns_dir`, shared by every
    /// instance of that namespace in this registry.
    pub(crate) fn namespace_usage(&self, ns_dir: &Path) -> Arc<Usage> {
        let key = std::path::absolute(ns_dir).unwrap_or_else(|_| ns_dir.to_path_buf());
        let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        usage.entry(key).or_default().clone()
    }

    /// How many journals are open in this registry right now.
    pub fn open_journals(&self) -> usize {
        self.lock()
            .values()
            .filter(|weak| weak.upgrade().is_some())
            .count()
    }
}

/// The unit in `dir` from `units`, if one is open in this process, else
/// `open(dir)` (tried again while [`retry_locked`] says), remembered.
fn open_shared<T, E: From<StateError>>(
    units: &Mutex<HashMap<PathBuf, Weak<T>>>,
    dir: &Path,
    open: impl Fn(&Path) -> Result<T, E>,
    is_locked: impl Fn(&E) -> bool,
) -> Result<Arc<T>, E> {
    let key = std::path::absolute(dir).map_err(|source| {
        E::from(StateError::Journal(JournalError::Io {
            path: dir.to_path_buf(),
            source,
        }))
    })?;
    let mut units = units.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(unit) = units.get(&key).and_then(Weak::upgrade) {
        return Ok(unit);
    }
    units.retain(|_, weak| weak.strong_count() > 0);
    let unit = Arc::new(retry_locked(|| open(&key), is_locked)?);
    units.insert(key, Arc::downgrade(&unit));
    Ok(unit)
}

/// `open()`, tried again a few times while it fails with an error that
/// `is_locked`: the last handle may be being dropped by another thread.
fn retry_locked<T, E>(
    mut open: impl FnMut() -> Result<T, E>,
    is_locked: impl Fn(&E) -> bool,
) -> Result<T, E> {
    let mut attempt = 0;
    loop {
        match open() {
            Err(e) if is_locked(&e) && attempt < LOCK_RETRIES => {
                attempt += 1;
                std::thread::sleep(LOCK_RETRY_PAUSE);
            }
            other => return other,
        }
    }
}
