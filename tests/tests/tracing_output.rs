//! What an operator sees on stderr (the CLI's tracing, default level warn):
//! a guest call refused by a limit names the limit and the instance; a torn
//! tail cut at open names the file and the bytes.

use mini_tests::{guest_component, journal_dir, mini, os_args, read_journal};

/// `mini run` of the appender component over `data` with `flags`, then
/// `--` and `args`; returns (exit code, stdout, stderr).
fn run_appender(data: &std::path::Path, flags: &[&str], args: &[&str]) -> (i32, String, String) {
    let mut all = os_args!["run", guest_component("appender"), "--data", data];
    all.extend(flags.iter().map(Into::into));
    all.push("--".into());
    all.extend(args.iter().map(Into::into));
    mini(all)
}

/// The lines of `stderr` at level `level`.
fn lines_at<'s>(stderr: &'s str, level: &str) -> Vec<&'s str> {
    stderr.lines().filter(|l| l.contains(level)).collect()
}

#[test]
fn a_call_refused_by_the_disk_quota_is_logged_with_its_limit_and_instance() {
    let data = tempfile::tempdir().expect("tempdir");
    let (code, out, err) = run_appender(data.path(), &["--quota-mb", "1"], &["log", "100000"]);
    assert_eq!(
        code, 1,
        "the append past the quota fails\nstdout: {out}\nstderr: {err}"
    );
    let warnings = lines_at(&err, "WARN");
    let refused: Vec<_> = warnings
        .iter()
        .filter(|l| l.contains("guest call refused by a limit of the instance"))
        .collect();
    assert_eq!(refused.len(), 1, "one refusal logged:\n{err}");
    let line = refused[0];
    assert!(
        line.contains("namespace=\"appender\"") || line.contains("namespace=appender"),
        "{line}"
    );
    assert!(line.contains("disk quota"), "the limit is named: {line}");
}

#[test]
fn a_successful_run_logs_nothing_at_the_default_level() {
    let data = tempfile::tempdir().expect("tempdir");
    let (code, out, err) = run_appender(data.path(), &[], &["log", "3"]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(lines_at(&err, "WARN").is_empty(), "{err}");
}

#[test]
fn a_torn_tail_cut_at_open_is_logged_with_its_file_and_bytes() {
    let data = tempfile::tempdir().expect("tempdir");
    let (code, out, err) = run_appender(data.path(), &[], &["log", "3"]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let dir = journal_dir(data.path(), "appender", "log");
    let segment = dir.join("00000000000000000001.jsonl");
    let text = mini_tests::segment_text(&segment);
    // Cut the last record in the middle: a torn tail of its first 10 bytes.
    let last_line = text
        .trim_end_matches('\n')
        .rfind('\n')
        .expect("several lines")
        + 1;
    let torn_at = last_line + 10;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .and_then(|f| f.set_len(torn_at as u64))
        .expect("truncate");
    let (code, out, err) = run_appender(data.path(), &[], &["log", "1"]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let torn: Vec<_> = lines_at(&err, "WARN")
        .into_iter()
        .filter(|l| l.contains("torn tail"))
        .collect();
    assert_eq!(torn.len(), 1, "one torn tail logged:\n{err}");
    assert!(
        torn[0].contains("00000000000000000001.jsonl"),
        "the file is named: {}",
        torn[0]
    );
    assert!(
        torn[0].contains("bytes=10"),
        "the bytes cut are named: {}",
        torn[0]
    );
    assert_eq!(
        read_journal(&dir).len(),
        3,
        "two old records and the new one"
    );
}
