//! What the crash tests share: varied kill moments, and a child process
//! killed with SIGKILL once it has acknowledged enough.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus, Stdio};

/// A small xorshift generator: the crash tests need varied kill moments, not
/// cryptographic randomness.
pub struct Rng {
    state: u64,
    /// The seed, printed by [`Rng::from_clock`] so a failure can be replayed.
    pub seed: u64,
}

impl Rng {
    /// A generator seeded from the clock; prints `<test> seed <seed>`.
    pub fn from_clock(test: &str) -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
            | 1;
        eprintln!("{test} seed {seed}");
        Rng { state: seed, seed }
    }

    /// A number below `bound`.
    pub fn next(&mut self, bound: u64) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state % bound
    }
}

/// How a child run by [`run_and_kill`] ended.
pub struct Killed {
    /// The rest of every stdout line that started with the prefix, in order
    /// (the lines already in the pipe when the kill came included).
    pub lines: Vec<String>,
    /// Whether kill(2) succeeded.
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
    let pid = i32::try_from(child.id()).expect("a pid");
    // SAFETY: kill(2) on our own child's pid has no memory effects.
    let kill_sent = unsafe { libc::kill(pid, libc::SIGKILL) } == 0;
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
