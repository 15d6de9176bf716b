//! Asking git about the project: its worktree root, and whether a file is tracked or
//! ignored. The one place this crate runs a process (the runner lives in ktwin-engine, above
//! this crate).

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Output, Stdio};

/// `git -C dir ARGS…`, stdin closed, stderr dropped; `None` when git cannot run.
#[allow(clippy::disallowed_methods)] // see the module doc
pub fn git(dir: &Path, args: &[&OsStr]) -> Option<Output> {
    std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
}

/// The top of the git worktree holding `dir`, if it is in one.
pub fn toplevel(dir: &Path) -> Option<std::path::PathBuf> {
    git(dir, &["rev-parse".as_ref(), "--show-toplevel".as_ref()])
        .filter(|o| o.status.success())
        .map(|o| std::path::PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
}
