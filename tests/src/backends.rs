//! The backends a conformance test runs against, from one source: each
//! test takes every [`TestBackend`] and runs the same components through
//! `mini run`, with the backend's flags.
//!
//! The JetStream backend is a real single-node nats-server started for the
//! test (see [`crate::nats`]); without the binary outside CI it is left out
//! with a loud `SKIPPED` line, in CI its absence fails the test.

use std::ffi::OsString;
use std::path::Path;

use crate::nats::NatsServer;

/// What every probe that hands the host records (`bad-input`, and the
/// `state-probe` and `queue-probe` of e2e_bad_input.rs) prints for its six
/// bad ones, whatever the backend and whatever the journal held before.
pub const BAD_RECORD_REFUSALS: &[(&str, &str)] = &[
    ("invalid-json", "err invalid-record"),
    ("two-values", "err invalid-record"),
    ("empty", "err invalid-record"),
    ("too-large", "err record-too-large"),
    ("batch-with-bad", "err invalid-record"),
    ("empty-batch", "err invalid-record"),
];

/// What the `queue-probe` prints for its pushes on a new queue (local ids).
pub const QUEUE_PROBE_PUSHES: &[(&str, &str)] = &[
    ("open", "ok 0"),
    ("push-1", "ok 1"),
    ("push-2", "ok 2"),
    ("push-dedup", "ok 3"),
    ("push-dedup-again", "ok 3"),
];

/// What the `queue-probe` prints after its bad payloads, on the local
/// engine (JetStream's differences: conformance_queue.rs).
pub const QUEUE_PROBE_REST: &[(&str, &str)] = &[
    ("pop-zero-lease", "err invalid-argument"),
    ("pop", "ok 1"),
    ("ack-unknown", "err not-found"),
    ("ack-bad-token", "err stale-token"),
    ("nack-bad-token", "err stale-token"),
    ("extend-bad-token", "err stale-token"),
    ("extend-zero-lease", "err invalid-argument"),
    ("ack-not-leased", "err stale-token"),
    ("ack", "ok 1"),
    ("requeue-not-dead", "err not-found"),
    ("purge-unknown", "err not-found"),
    ("name-empty", "err invalid-name"),
    ("name-dotdot", "err invalid-name"),
    ("name-slash", "err invalid-name"),
    // The pollable of `subscribe`, on the queue `watch`.
    ("subscribe-empty", "ok not-ready"),
    ("push-delayed", "ok 1"),
    ("subscribe-delayed", "ok not-ready"),
    ("push-soon", "ok 2"),
    ("block-until-delay", "ok ready"),
    ("pop-after-block", "ok 2"),
    ("subscribe-leased", "ok not-ready"),
    ("push-now", "ok 3"),
    ("subscribe-after-push", "ok ready"),
];

/// What the `bad-input` probe prints for its bad journal names.
pub const BAD_NAME_REFUSALS: &[(&str, &str)] = &[
    ("name-empty", "err invalid-name"),
    ("name-dotdot", "err invalid-name"),
    ("name-slash", "err invalid-name"),
    ("name-backslash", "err invalid-name"),
    ("name-long", "err invalid-name"),
    ("name-nul", "err invalid-name"),
    ("name-dot", "err invalid-name"),
    ("name-control", "err invalid-name"),
];

/// Checks that a probe printed exactly the cases of `expected` (lists of
/// `(case, outcome)`, from `case <name>: <outcome>` lines), no others.
pub fn assert_cases(what: &str, out: &str, err: &str, expected: &[&[(&str, &str)]]) {
    let got = crate::cases(out);
    let expected: Vec<&(&str, &str)> = expected.iter().flat_map(|cases| cases.iter()).collect();
    for (case, outcome) in &expected {
        assert_eq!(
            got.get(*case).map(String::as_str),
            Some(*outcome),
            "{what}: case {case}; stdout:\n{out}\nstderr:\n{err}"
        );
    }
    assert_eq!(
        got.len(),
        expected.len(),
        "{what}: unexpected cases:\n{out}"
    );
}

/// Checks that `out` holds exactly the `bad-input` probe's cases: the
/// refusals and `accepted` (the cases whose outcome carries a seq).
pub fn assert_bad_input_cases(what: &str, out: &str, err: &str, accepted: &[(&str, &str)]) {
    assert_cases(
        what,
        out,
        err,
        &[accepted, BAD_RECORD_REFUSALS, BAD_NAME_REFUSALS],
    );
}

/// A probe's `out` without what depends on how a backend stores things
/// (file sizes, where whole-segment compaction could cut): what every
/// backend must print alike.
pub fn comparable(out: &str) -> String {
    out.lines()
        .filter(|l| !l.starts_with("journal-bytes ") && !l.starts_with("journal-first-seq "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// A backend under test, alive while this value is.
pub enum TestBackend {
    /// Files under the run's data directory.
    Local,
    /// NATS JetStream on a server of the test's own.
    JetStream(NatsServer),
}

impl TestBackend {
    /// The local engine and, if a nats-server is at hand, JetStream.
    pub fn all() -> Vec<TestBackend> {
        let mut all = vec![TestBackend::Local];
        match NatsServer::start_single() {
            Ok(Some(server)) => all.push(TestBackend::JetStream(server)),
            Ok(None) => {}
            Err(e) => panic!("cannot start nats-server: {e:#}"),
        }
        all
    }

    /// The backend's name in assertion messages.
    pub fn name(&self) -> &'static str {
        match self {
            TestBackend::Local => "local",
            TestBackend::JetStream(_) => "JetStream",
        }
    }

    /// Whether this is the JetStream backend.
    pub fn is_jetstream(&self) -> bool {
        matches!(self, TestBackend::JetStream(_))
    }

    /// The `mini run` flags that choose this backend.
    pub fn flags(&self) -> Vec<String> {
        match self {
            TestBackend::Local => vec!["--backend".into(), "local".into()],
            TestBackend::JetStream(server) => vec!["--backend".into(), server.url()],
        }
    }

    /// `mini run --data DATA --namespace NS <flags> EXTRA… COMPONENT -- ARGS…`;
    /// returns (exit code, stdout, stderr).
    pub fn run(
        &self,
        data: &Path,
        namespace: &str,
        component: &Path,
        extra: &[&str],
        args: &[&str],
    ) -> (i32, String, String) {
        let mut argv: Vec<OsString> = vec![
            "run".into(),
            "--data".into(),
            data.into(),
            "--namespace".into(),
            namespace.into(),
        ];
        argv.extend(self.flags().into_iter().map(OsString::from));
        argv.extend(extra.iter().map(OsString::from));
        argv.push(component.into());
        argv.push("--".into());
        argv.extend(args.iter().map(OsString::from));
        crate::mini(argv)
    }
}
