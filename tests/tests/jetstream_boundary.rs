//! The hostile guest (`boundary-probe`) on the JetStream backend: a guest
//! that opens name after name cannot make the servers hold more than its
//! namespace's stream limit, and meets each bound as an error, never a
//! trap; the host neither panics nor hangs.

use mini_host::{MiniCtx, MiniHost};
use mini_jetstream::{JetStream, JetStreamOptions};
use mini_tests::backends::TestBackend;
use mini_tests::{block_on, default_runner, guest_component, run_with};

/// The value of the `key value…` fact line `key` in `out`.
fn fact<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {key} line in\n{out}"))
}

#[test]
fn opening_name_after_name_stops_at_the_stream_limit() -> anyhow::Result<()> {
    const MAX_STREAMS: usize = 12;
    let probe = guest_component("boundary-probe");
    for backend in TestBackend::all()
        .into_iter()
        .filter(TestBackend::is_jetstream)
    {
        let url = backend.flags()[1].clone();
        let host = block_on(MiniHost::jetstream(&url, JetStreamOptions::default()))?;
        // (kind, opens allowed: a state takes two streams)
        for (kind, allowed) in [("journal", 12), ("state", 6), ("snapshots", 12)] {
            let data = tempfile::tempdir()?;
            let ns = format!("hostile-{kind}");
            let mini = MiniCtx::builder(&host, data.path(), &ns)
                .max_streams(MAX_STREAMS)
                .build()?;
            let out = block_on(run_with(
                &default_runner(),
                &probe,
                mini,
                &["open-many", kind, "5000"],
            ));
            assert_eq!(out.exit_code(), 0, "{kind}: {}{}", out.stdout, out.stderr);
            assert_eq!(
                fact(&out.stdout, "opened"),
                allowed.to_string(),
                "{kind}: {}",
                out.stdout
            );
            assert!(
                fact(&out.stdout, "first-error").starts_with("quota "),
                "{kind}: {}",
                out.stdout
            );
            // What is there on the servers: exactly the limit.
            let (streams, _) = block_on(async {
                let js = JetStream::connect(&url, JetStreamOptions::default()).await?;
                js.namespace_streams(&ns).await
            })?;
            assert_eq!(streams, MAX_STREAMS, "{kind}: streams of the namespace");
            assert!(
                std::fs::read_dir(data.path())?.next().is_none(),
                "{kind}: local files"
            );
        }
    }
    Ok(())
}
