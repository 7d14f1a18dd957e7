//! A real `nats-server` for the tests: one node ([`NatsServer`]) or a
//! cluster ([`NatsCluster`]), started on loopback ports the harness picks,
//! each node with JetStream on, its store in a temporary directory the
//! harness owns, and `sync_interval: always` (an acknowledged publish is
//! fsync'd on the node that acknowledges it).
//!
//! The binary is found by [`find_server_binary`]: `MINI_NATS_SERVER`, else
//! `nats-server` on `PATH`, else `target/nats/bin/nats-server`, where
//! `scripts/install-nats-server` (and so CI) installs the pinned version.
//! Without one, the start functions return `Ok(None)` after a loud
//! `SKIPPED` line on stderr, or panic when `CI` is set: in CI these tests
//! must run.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use mini_tests::nats::NatsServer;
//! let Some(mut server) = NatsServer::start_single()? else {
//!     return Ok(()); // skipped, loudly
//! };
//! let url = server.url(); // nats://127.0.0.1:PORT
//! server.kill9();
//! server.restart()?; // same store, same ports
//! # let _ = url;
//! # Ok(())
//! # }
//! ```
//!
//! Everything listens on 127.0.0.1 only; nothing else is configured (no
//! gateways, leaf nodes, websocket or MQTT).

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};

/// The environment variable naming the `nats-server` binary to use.
pub const SERVER_ENV: &str = "MINI_NATS_SERVER";

/// The oldest server version the harness accepts (atomic batch publish and
/// `sync_interval: always` need 2.12).
pub const MIN_VERSION: (u32, u32) = (2, 12);

/// The cluster name of every [`NatsCluster`].
pub const CLUSTER_NAME: &str = "mini-test";

/// How long a node may take to become ready (a bound against a hang, not
/// a timing requirement).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Where `scripts/install-nats-server` puts the binary, under the
/// repository root.
const INSTALLED: &str = "target/nats/bin/nats-server";

/// The `nats-server` binary: `MINI_NATS_SERVER` if set (panics if it is
/// not a file: a wrong setting is an error, not a reason to skip), else
/// `nats-server` on `PATH`, else the one `scripts/install-nats-server`
/// installs in `target/nats/bin`. `None` if there is none.
pub fn find_server_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(SERVER_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{SERVER_ENV}={} is not a file",
            path.display()
        );
        return Some(path);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nats-server"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| Some(crate::repo_root().join(INSTALLED)).filter(|p| p.is_file()))
}

/// Whether this is a CI run: `CI` set to anything but empty, `0` or
/// `false`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

/// The binary, or `None` after printing a loud `SKIPPED: nats-server not
/// found; set MINI_NATS_SERVER …` to stderr (straight to the stream, so
/// `cargo test` shows it even for a passing test). When [`in_ci`], panics
/// with that message instead.
pub fn server_binary_or_skip() -> Option<PathBuf> {
    if let Some(bin) = find_server_binary() {
        return Some(bin);
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("a nats-server test")
        .to_owned();
    let message = format!(
        "nats-server not found; set {SERVER_ENV} to its path or put it on PATH \
         (`{SERVER_ENV}=$(scripts/install-nats-server)` installs the version CI uses) \
         [{test}]"
    );
    if in_ci() {
        panic!("{message}: CI is set, so this test fails instead of skipping");
    }
    let banner = "!".repeat(72);
    // Not eprintln!: the test harness captures that for passing tests.
    let _ = writeln!(
        std::io::stderr().lock(),
        "{banner}\nSKIPPED: {message}\n{banner}"
    );
    None
}

/// A free TCP port on 127.0.0.1, outside the kernel's ephemeral range
/// (32768 and up by default, where outgoing connections take theirs), so
/// nothing else takes it between this check and the server's bind; never
/// the same port twice in one test process.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    for _ in 0..1000 {
        let port = fastrand::u16(20_000..32_000);
        if given.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 in 20000..32000");
}

/// An HTTP GET of `path` from the monitoring port: (status, body).
fn http_get(port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| anyhow!("not an HTTP response: {head:?}"))?;
    Ok((status, body.to_owned()))
}

/// A string as a quoted string of the server's configuration format (which
/// reads JSON strings).
fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// The last `n` lines of the file at `path` (a server's log).
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One server process and everything needed to start it again.
#[derive(Debug)]
struct Node {
    binary: PathBuf,
    name: String,
    client_port: u16,
    http_port: u16,
    dir: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Node {
    /// A node named `name` with its files in `dir` (created): its
    /// configuration (`routes` the cluster's, if any) is written now.
    fn new(
        binary: &Path,
        name: &str,
        dir: PathBuf,
        client_port: u16,
        http_port: u16,
        cluster: Option<(u16, &[u16])>,
    ) -> anyhow::Result<Node> {
        std::fs::create_dir_all(&dir)?;
        let node = Node {
            binary: binary.to_owned(),
            name: name.to_owned(),
            client_port,
            http_port,
            dir,
            child: None,
            starts: 0,
        };
        std::fs::write(node.config_path(), node.config_text(cluster))?;
        Ok(node)
    }

    fn config_text(&self, cluster: Option<(u16, &[u16])>) -> String {
        let store = self.store_dir();
        let mut text = format!(
            "# Written by tests/src/nats.rs for one test server; loopback only.\n\
             server_name: {name}\n\
             listen: \"127.0.0.1:{client}\"\n\
             http: \"127.0.0.1:{http}\"\n\
             jetstream {{\n  \
               store_dir: {store}\n  \
               # fsync every write before it is acknowledged (default: every 2 min)\n  \
               sync_interval: always\n\
             }}\n",
            name = quoted(&self.name),
            client = self.client_port,
            http = self.http_port,
            store = quoted(&store.to_string_lossy()),
        );
        if let Some((port, routes)) = cluster {
            let routes: Vec<String> = routes
                .iter()
                .map(|p| quoted(&format!("nats-route://127.0.0.1:{p}")))
                .collect();
            text.push_str(&format!(
                "cluster {{\n  \
                   name: {cluster}\n  \
                   listen: \"127.0.0.1:{port}\"\n  \
                   routes: [{routes}]\n\
                 }}\n",
                cluster = quoted(CLUSTER_NAME),
                routes = routes.join(", "),
            ));
        }
        text
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("server.conf")
    }

    fn store_dir(&self) -> PathBuf {
        self.dir.join("store")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.client_port)
    }

    /// Starts the process (its output appended to its log); does not wait.
    fn spawn(&mut self) -> anyhow::Result<()> {
        assert!(self.child.is_none(), "{} is already running", self.name);
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        writeln!(log, "--- harness: start {} of {}", self.starts, self.name)?;
        let err = log.try_clone()?;
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot run {}", self.binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL, then reap. No-op if not running.
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// An error if the process has exited, with its log's tail.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        let Some(child) = self.child.as_mut() else {
            bail!("{} is not running", self.name);
        };
        if let Some(status) = child.try_wait()? {
            self.child = None;
            bail!(
                "nats-server {} exited ({status}); its log ends:\n{}",
                self.name,
                tail(&self.log_path(), 30)
            );
        }
        Ok(())
    }

    /// Polls until `/healthz` answers 200 (JetStream up and, on a cluster,
    /// in contact with the meta leader and its streams current) and, if
    /// `meta_leader`, `/jsz` names a meta leader.
    fn wait_ready(&mut self, meta_leader: bool) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.check_alive()?;
            let last = match self.ready(meta_leader) {
                Ok(()) => return Ok(()),
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() > deadline {
                bail!(
                    "nats-server {} not ready after {READY_TIMEOUT:?}: {last}; its log ends:\n{}",
                    self.name,
                    tail(&self.log_path(), 30)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn ready(&self, meta_leader: bool) -> anyhow::Result<()> {
        let (status, body) = http_get(self.http_port, "/healthz")?;
        if status != 200 {
            bail!("/healthz: {status} {}", body.trim());
        }
        if meta_leader && self.meta_leader()?.is_none() {
            bail!("/jsz: no meta leader");
        }
        Ok(())
    }

    fn monitor_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let (status, body) = http_get(self.http_port, path)?;
        if status != 200 {
            bail!("{path}: {status} {}", body.trim());
        }
        serde_json::from_str(&body).with_context(|| format!("{path}: not JSON"))
    }

    fn meta_leader(&self) -> anyhow::Result<Option<String>> {
        let jsz = self.monitor_json("/jsz")?;
        Ok(jsz["meta_cluster"]["leader"]
            .as_str()
            .filter(|l| !l.is_empty())
            .map(str::to_owned))
    }

    /// Checks what `/varz` reports against what the harness configured: a
    /// version of at least [`MIN_VERSION`], JetStream's store where the
    /// harness put it, and a sync on every write.
    fn check_varz(&self) -> anyhow::Result<()> {
        let varz = self.monitor_json("/varz")?;
        let version = varz["version"].as_str().unwrap_or_default();
        let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        if found < MIN_VERSION {
            bail!(
                "{} is nats-server {version:?}; the tests need {}.{} or later",
                self.binary.display(),
                MIN_VERSION.0,
                MIN_VERSION.1
            );
        }
        let config = &varz["jetstream"]["config"];
        if config["sync_always"] != serde_json::Value::Bool(true) {
            bail!(
                "nats-server {} does not sync every write: {config}",
                self.name
            );
        }
        let store = config["store_dir"].as_str().unwrap_or_default();
        if !Path::new(store).starts_with(self.store_dir()) {
            bail!("nats-server {} stores in {store:?}", self.name);
        }
        Ok(())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One `nats-server` with JetStream, on loopback ports of its own, its
/// store in a temporary directory removed on drop. Dropping it SIGKILLs
/// the process.
#[derive(Debug)]
pub struct NatsServer {
    node: Node,
    // Declared after `node`: the process dies before its files go.
    dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a single node and waits until it is ready; `Ok(None)` if
    /// there is no binary outside CI (see [`server_binary_or_skip`]).
    pub fn start_single() -> anyhow::Result<Option<NatsServer>> {
        let Some(binary) = server_binary_or_skip() else {
            return Ok(None);
        };
        Self::start_with(&binary).map(Some)
    }

    /// Starts a single node of the binary `binary` and waits until it is
    /// ready: `/healthz` answers 200 and `/varz` shows JetStream storing in
    /// this server's directory with `sync_always` on.
    pub fn start_with(binary: &Path) -> anyhow::Result<NatsServer> {
        let dir = tempfile::Builder::new().prefix("mini-nats-").tempdir()?;
        let node = Node::new(
            binary,
            "n0",
            dir.path().join("n0"),
            free_port(),
            free_port(),
            None,
        )?;
        let mut server = NatsServer { node, dir };
        server.node.spawn()?;
        server.node.wait_ready(false)?;
        server.node.check_varz()?;
        Ok(server)
    }

    /// The client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.node.url()
    }

    /// The monitoring port (HTTP on 127.0.0.1: `/healthz`, `/varz`,
    /// `/jsz`).
    pub fn monitor_port(&self) -> u16 {
        self.node.http_port
    }

    /// The server's configuration file (written by the harness).
    pub fn config_path(&self) -> PathBuf {
        self.node.config_path()
    }

    /// JetStream's store directory (kept across [`restart`](Self::restart)).
    pub fn store_dir(&self) -> PathBuf {
        self.node.store_dir()
    }

    /// The server's log, across its restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.node.log_path()).unwrap_or_default()
    }

    /// The temporary directory holding the configuration, log and store.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A monitoring endpoint's JSON (`"/varz"`, `"/jsz?streams=true"`, …).
    pub fn monitor(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        self.node.monitor_json(path)
    }

    /// Whether the process is running (it has not been killed or exited).
    pub fn is_running(&mut self) -> bool {
        self.node.check_alive().is_ok()
    }

    /// Kills the process with SIGKILL (no shutdown, no flush) and reaps it.
    pub fn kill9(&mut self) {
        self.node.kill9();
    }

    /// Starts the server again on the same ports and store (SIGKILLing it
    /// first if it is running) and waits until it is ready, its streams
    /// recovered.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.node.kill9();
        self.node.spawn()?;
        self.node.wait_ready(false)?;
        self.node.check_varz()
    }
}

/// A cluster of `nats-server` nodes with JetStream, routed to each other on
/// 127.0.0.1 (cluster [`CLUSTER_NAME`]), each with its own ports and store
/// directory, all under one temporary directory removed on drop. Node `i`
/// is named `n{i}`, the name streams' cluster info reports as a leader.
/// Dropping it SIGKILLs every node.
#[derive(Debug)]
pub struct NatsCluster {
    nodes: Vec<Node>,
    // Declared after `nodes`: the processes die before their files go.
    dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts `size` nodes and waits until each is ready and knows the
    /// meta leader; `Ok(None)` if there is no binary outside CI (see
    /// [`server_binary_or_skip`]).
    pub fn start(size: usize) -> anyhow::Result<Option<NatsCluster>> {
        let Some(binary) = server_binary_or_skip() else {
            return Ok(None);
        };
        Self::start_with(&binary, size).map(Some)
    }

    /// Starts `size` nodes of the binary `binary`, each routed to all the
    /// others, and waits until each is ready (`/healthz` 200, `/varz` as
    /// configured) and names a meta leader in `/jsz`.
    pub fn start_with(binary: &Path, size: usize) -> anyhow::Result<NatsCluster> {
        assert!(size > 0, "a cluster has nodes");
        let dir = tempfile::Builder::new()
            .prefix("mini-nats-cluster-")
            .tempdir()?;
        let route_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let mut nodes = Vec::with_capacity(size);
        for (i, &port) in route_ports.iter().enumerate() {
            let others: Vec<u16> = route_ports.iter().copied().filter(|&p| p != port).collect();
            let name = format!("n{i}");
            nodes.push(Node::new(
                binary,
                &name,
                dir.path().join(&name),
                free_port(),
                free_port(),
                Some((port, &others)),
            )?);
        }
        let mut cluster = NatsCluster { nodes, dir };
        cluster.spawn_all_and_wait()?;
        Ok(cluster)
    }

    /// Spawns every node, then waits until each is ready and names a meta
    /// leader: none can be ready before a quorum of them runs.
    fn spawn_all_and_wait(&mut self) -> anyhow::Result<()> {
        for node in &mut self.nodes {
            node.spawn()?;
        }
        for node in &mut self.nodes {
            node.wait_ready(true)?;
            node.check_varz()?;
        }
        Ok(())
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no nodes (never: [`start`](Self::start)
    /// asks for at least one).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every node's client URL, in node order.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// Node `i`'s client URL.
    pub fn url(&self, i: usize) -> String {
        self.nodes[i].url()
    }

    /// Node `i`'s server name (`n{i}`).
    pub fn name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    /// The index of the node with server name `name` (as a stream's or the
    /// meta group's leader is reported).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Node `i`'s monitoring port.
    pub fn monitor_port(&self, i: usize) -> u16 {
        self.nodes[i].http_port
    }

    /// A monitoring endpoint's JSON from node `i`.
    pub fn monitor(&self, i: usize, path: &str) -> anyhow::Result<serde_json::Value> {
        self.nodes[i].monitor_json(path)
    }

    /// Node `i`'s configuration file.
    pub fn config_path(&self, i: usize) -> PathBuf {
        self.nodes[i].config_path()
    }

    /// Node `i`'s JetStream store directory.
    pub fn store_dir(&self, i: usize) -> PathBuf {
        self.nodes[i].store_dir()
    }

    /// Node `i`'s log, across its restarts.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.nodes[i].log_path()).unwrap_or_default()
    }

    /// The temporary directory holding every node's files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether node `i` is running.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.nodes[i].check_alive().is_ok()
    }

    /// Kills node `i` with SIGKILL and reaps it.
    pub fn kill9(&mut self, i: usize) {
        self.nodes[i].kill9();
    }

    /// Starts node `i` again on the same ports and store (SIGKILLing it
    /// first if it is running) and waits until it is ready: back in the
    /// cluster, knowing the meta leader, its streams current.
    ///
    /// It is ready only once it and the running nodes make a quorum: with
    /// too few others running (a whole cluster killed), it fails after
    /// [`READY_TIMEOUT`]. Bring such a cluster back with
    /// [`restart_all`](Self::restart_all).
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[i];
        node.kill9();
        node.spawn()?;
        node.wait_ready(true)?;
        node.check_varz()
    }

    /// Starts every node again on its ports and store (SIGKILLing first any
    /// that is still running): spawns all of them, and only then waits
    /// until each is ready as [`restart`](Self::restart) does (back in the
    /// cluster, knowing the meta leader, its streams current), each wait
    /// bounded by [`READY_TIMEOUT`].
    ///
    /// This is how a cluster whose nodes are all down comes back: a node
    /// alone has no quorum, so no meta leader and no `/healthz` 200, and
    /// `restart(i)` one node at a time would wait in vain for the first.
    ///
    /// ```no_run
    /// # fn main() -> anyhow::Result<()> {
    /// use mini_tests::nats::NatsCluster;
    /// let Some(mut cluster) = NatsCluster::start(3)? else {
    ///     return Ok(()); // skipped, loudly
    /// };
    /// for i in 0..cluster.len() {
    ///     cluster.kill9(i);
    /// }
    /// cluster.restart_all()?; // same stores, same ports, a meta leader again
    /// # Ok(())
    /// # }
    /// ```
    pub fn restart_all(&mut self) -> anyhow::Result<()> {
        for node in &mut self.nodes {
            node.kill9();
        }
        self.spawn_all_and_wait()
    }

    /// The meta leader's server name as the running nodes see it, once
    /// they agree on one; waits up to [`READY_TIMEOUT`].
    pub fn wait_meta_leader(&mut self) -> anyhow::Result<String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let mut seen = HashSet::new();
            for node in &mut self.nodes {
                if node.check_alive().is_ok() {
                    seen.insert(node.meta_leader().ok().flatten());
                }
            }
            if seen.len() == 1
                && let Some(Some(leader)) = seen.into_iter().next()
            {
                return Ok(leader);
            }
            if Instant::now() > deadline {
                bail!("the running nodes agree on no meta leader after {READY_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
