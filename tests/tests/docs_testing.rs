//! The README's and guest/README.md's "Testing your component" examples
//! are the doctest of `mini-testing` (so the example the docs show compiles).

use mini_tests::repo_root;

/// The first ```rust block after the heading `## Testing your component`.
fn example_in(markdown: &str) -> String {
    let section = markdown
        .split("## Testing your component")
        .nth(1)
        .expect("a section \"Testing your component\"");
    let block = section
        .split("```rust")
        .nth(1)
        .expect("a rust block in the section");
    let body = block.split_once('\n').map_or("", |(_, rest)| rest);
    body.split("```").next().unwrap_or_default().to_owned()
}

/// The `no_run` doctest at the top of the crate docs of mini-testing.
fn crate_doctest() -> String {
    let lib = std::fs::read_to_string(repo_root().join("host/testing/src/lib.rs")).expect("lib.rs");
    let mut lines = lib.lines().skip_while(|l| *l != "//! ```no_run").skip(1);
    let mut body = String::new();
    for line in lines.by_ref() {
        if line == "//! ```" {
            return body;
        }
        body.push_str(
            line.strip_prefix("//! ")
                .unwrap_or(line.trim_start_matches("//!")),
        );
        body.push('\n');
    }
    panic!("the doctest block is not closed");
}

#[test]
fn the_testing_examples_of_both_readmes_are_the_crate_doctest() {
    let doctest = crate_doctest();
    assert!(doctest.contains("Exploration::crashes"), "{doctest}");
    for readme in ["README.md", "guest/README.md"] {
        let text = std::fs::read_to_string(repo_root().join(readme)).expect("the README");
        assert_eq!(
            example_in(&text),
            doctest,
            "{readme}'s example differs from the doctest"
        );
    }
}
