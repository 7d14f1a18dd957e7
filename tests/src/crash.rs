//! What the crash tests share: varied kill moments, and a child process
//! killed with SIGKILL once it has acknowledged enough.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus, Stdio};

/// The crash tests' seeded generator (the engine's tests use the same).
pub use fastrand::Rng;

/// A generator for the crash test `test`, and its seed: from
/// `MINI_TEST_SEED` to replay a failure, else from the clock. Prints
/// `<test> seed <seed>`.
pub fn seeded(test: &str) -> (Rng, u64) {
    let seed = match std::env::var("MINI_TEST_SEED") {
        Ok(s) => s.parse().expect("MINI_TEST_SEED is a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    };
    eprintln!("{test} seed {seed} (set MINI_TEST_SEED to replay)");
    (Rng::with_seed(seed), seed)
}

/// How a child run by [`run_and_kill`] ended.
pub struct Killed {
    /// The rest of every stdout line that started with the prefix, in order
    /// (the lines already in the pipe when the kill came included).
    pub lines: Vec<String>,
    /// Whether the SIGKILL was sent.
    pub kill_sent: bool,
    /// The child's exit status.
    pub status: ExitStatus,
}

impl Killed {
    /// The prefixed lines of a child that must have died of the SIGKILL
    /// (not finished on its own first).
    pub fn expect_killed(self) -> Vec<String> {
        assert!(self.kill_sent, "SIGKILL sent");
        assert!(!self.status.success(), "the child was killed, not finished");
        self.lines
    }
}

/// Spawns `cmd` (stdout piped, stderr discarded), reads its stdout until
/// `kill_after` lines starting with `prefix` came (or it ended), sends it
/// SIGKILL, and reaps it.
pub fn run_and_kill(cmd: &mut Command, prefix: &str, kill_after: usize) -> Killed {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the child starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut found = Vec::new();
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.expect("stdout is text");
        if let Some(rest) = line.strip_prefix(prefix) {
            found.push(rest.to_owned());
            if found.len() >= kill_after {
                break;
            }
        }
    }
    let kill_sent = child.kill().is_ok();
    for line in lines {
        let Ok(line) = line else { break };
        if let Some(rest) = line.strip_prefix(prefix) {
            found.push(rest.to_owned());
        }
    }
    let status = child.wait().expect("child reaped");
    Killed {
        lines: found,
        kill_sent,
        status,
    }
}
