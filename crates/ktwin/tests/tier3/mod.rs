//! Shared by the tier-3 tests: run a tool in a directory, and insist that it succeeded.
#![allow(dead_code)]

use std::process::{Command, Output};

pub fn run(cmd: &str, args: &[&str], dir: &std::path::Path) -> Output {
    Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

/// stdout and stderr, as one text.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The command succeeded: its stdout (a failure panics with both streams).
pub fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", text(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The command succeeded: stdout and stderr (where ktwin says what it did).
pub fn ok_all(o: &Output) -> String {
    ok(o);
    text(o)
}
