//! The sandbox's virtual clock: leases run out, messages come back with
//! their attempt counts, dead-letter after their last attempt, and delays
//! pass, all by `advance`, with no real waiting (the leases are 30 s and the
//! delay an hour; the test takes what its runs take).

use std::time::{Duration, Instant};

use mini_testing::{Sandbox, VIRTUAL_EPOCH_NANOS};
use mini_tests::guest_component;

fn jobs() -> Sandbox {
    Sandbox::new(guest_component("jobs")).expect("a sandbox")
}

fn say(sandbox: &Sandbox, args: &[&str]) -> String {
    let run = sandbox.run(args).expect("it runs");
    assert!(run.succeeded(), "{args:?}: {run:?}");
    run.stdout.trim().to_owned()
}

#[test]
fn an_unacked_message_comes_back_with_its_attempts_and_dead_letters_after_five() {
    let started = Instant::now();
    let sandbox = jobs();
    say(&sandbox, &["enqueue", "1"]);
    assert_eq!(say(&sandbox, &["hold"]), "got job=1 attempt=1");
    // Leased: nothing is ready until the lease runs out.
    assert_eq!(say(&sandbox, &["hold"]), "nothing ready");
    sandbox.advance(Duration::from_secs(29));
    assert_eq!(say(&sandbox, &["hold"]), "nothing ready");
    assert_eq!(sandbox.queue("jobs").expect("inspect").leased().len(), 1);
    for attempt in 2..=5 {
        sandbox.advance(Duration::from_secs(2));
        assert_eq!(
            say(&sandbox, &["hold"]),
            format!("got job=1 attempt={attempt}")
        );
        sandbox.advance(Duration::from_secs(28));
    }
    let view = sandbox.queue("jobs").expect("inspect");
    assert_eq!(view.leased()[0].attempts, 5);
    // The fifth lease runs out: the message is a dead letter, not redelivered.
    sandbox.advance(Duration::from_secs(2));
    assert_eq!(say(&sandbox, &["hold"]), "nothing ready");
    assert_eq!(say(&sandbox, &["dead"]), "dead 1\ndead job=1 attempts=5");
    let view = sandbox.queue("jobs").expect("inspect");
    assert_eq!((view.dead().len(), view.stats.dead), (1, 1));
    assert_eq!(
        sandbox.clock().elapsed(),
        Duration::from_secs(29 + 4 * 30 + 2)
    );
    // 151 s of leases went by; the runs took what they took, far less.
    assert!(started.elapsed() < sandbox.clock().elapsed());
}

#[test]
fn a_delay_passes_on_the_virtual_clock_and_the_guest_reads_the_same_time() {
    let sandbox = jobs();
    let now_ms = |s: &Sandbox| -> u64 { say(s, &["now"]).parse().expect("ms since the epoch") };
    assert_eq!(now_ms(&sandbox), VIRTUAL_EPOCH_NANOS / 1_000_000);
    say(&sandbox, &["enqueue", "2", "--delay-ms", "3600000"]);
    let view = sandbox.queue("jobs").expect("inspect");
    assert_eq!((view.delayed().len(), view.ready().len()), (2, 0));
    assert_eq!(say(&sandbox, &["hold"]), "nothing ready");
    sandbox.advance(Duration::from_secs(3599));
    assert_eq!(say(&sandbox, &["hold"]), "nothing ready");
    sandbox.advance(Duration::from_secs(1));
    assert_eq!(
        now_ms(&sandbox),
        VIRTUAL_EPOCH_NANOS / 1_000_000 + 3_600_000
    );
    assert_eq!(say(&sandbox, &["hold"]), "got job=1 attempt=1");
    let view = sandbox.queue("jobs").expect("inspect");
    assert_eq!((view.ready().len(), view.leased().len()), (1, 1));
}
