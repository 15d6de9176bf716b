//! Run external programs from argv vectors, capturing output. No shell is ever involved, so
//! no argument is ever re-split or expanded.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One command line.
#[derive(Debug, Clone)]
pub struct Cmd {
    pub program: OsString,
    pub args: Vec<OsString>,
    pub cwd: Option<PathBuf>,
    pub env: Vec<(OsString, OsString)>,
    pub stdin: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct RunOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("`{program}` is not installed or not on PATH")]
    NotFound { program: String },
    #[error("cannot run `{argv}`: {source}")]
    Spawn {
        argv: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{argv}` failed ({status})\n{stderr}")]
    Failed {
        argv: String,
        status: String,
        stderr: String,
    },
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Cmd {
        Cmd {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            cwd: None,
            env: Vec::new(),
            stdin: None,
        }
    }
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Cmd {
        self.args.push(a.as_ref().to_owned());
        self
    }
    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }
    pub fn cwd(mut self, dir: impl AsRef<Path>) -> Cmd {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }
    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Cmd {
        self.env
            .push((k.as_ref().to_owned(), v.as_ref().to_owned()));
        self
    }
    pub fn stdin(mut self, data: Vec<u8>) -> Cmd {
        self.stdin = Some(data);
        self
    }

    /// The command line as a user would type it (for messages and `--dry-run`).
    pub fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(self.args.iter())
            .map(|a| shell_quote(&a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The std `Command` this describes (program resolved on PATH), for callers that stream.
    #[allow(clippy::disallowed_methods)] // the runner: every process ktwin starts starts here
    pub fn command(&self) -> Result<Command, RunError> {
        let program = self.program.to_string_lossy().into_owned();
        let resolved = which(&self.program).ok_or(RunError::NotFound { program })?;
        let mut c = Command::new(resolved);
        c.args(&self.args).stdin(Stdio::null());
        if let Some(d) = &self.cwd {
            c.current_dir(d);
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        Ok(c)
    }

    /// Start with stdout piped to the caller and stderr captured; see [`Streaming`].
    pub fn spawn_stdout(&self) -> Result<Streaming, RunError> {
        let mut c = self.command()?;
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().map_err(|source| RunError::Spawn {
            argv: self.display(),
            source,
        })?;
        let stdout = child.stdout.take();
        let mut err_pipe = child.stderr.take();
        let stderr = std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(p) = err_pipe.as_mut() {
                let _ = std::io::Read::read_to_end(p, &mut s);
            }
            s
        });
        Ok(Streaming {
            argv: self.display(),
            child,
            stdout,
            stderr: Some(stderr),
        })
    }

    /// Start in its own process group, output appended to `log`, and do not wait: the process
    /// outlives ktwin (a Ctrl-C in the terminal does not reach it). Returns its PID.
    pub fn spawn_detached(&self, log: &Path) -> Result<u32, RunError> {
        let spawn_err = |source| RunError::Spawn {
            argv: self.display(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(spawn_err)?;
        let mut c = self.command()?;
        c.stdout(file.try_clone().map_err(spawn_err)?).stderr(file);
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            c.process_group(0);
        }
        let child = c.spawn().map_err(spawn_err)?;
        Ok(child.id())
    }

    /// Run to completion; a non-zero exit is an error carrying stderr.
    pub fn run(&self) -> Result<RunOutput, RunError> {
        let mut c = self.command()?;
        c.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let spawn_err = |source| RunError::Spawn {
            argv: self.display(),
            source,
        };
        let mut child = c.spawn().map_err(spawn_err)?;
        let writer = match (child.stdin.take(), self.stdin.clone()) {
            (Some(mut pipe), Some(data)) => Some(std::thread::spawn(move || {
                // A child that exits without reading stdin is reported by its status.
                let _ = pipe.write_all(&data);
            })),
            _ => None,
        };
        let out = child.wait_with_output().map_err(|source| RunError::Spawn {
            argv: self.display(),
            source,
        })?;
        if let Some(w) = writer {
            let _ = w.join();
        }
        if !out.status.success() {
            return Err(RunError::Failed {
                argv: self.display(),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim_end().to_string(),
            });
        }
        Ok(RunOutput {
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}

/// A running command whose stdout the caller reads; [`Streaming::finish`] waits and reports
/// a non-zero exit with its stderr.
pub struct Streaming {
    argv: String,
    child: std::process::Child,
    pub stdout: Option<std::process::ChildStdout>,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl Streaming {
    pub fn finish(mut self) -> Result<(), RunError> {
        drop(self.stdout.take());
        let status = self.child.wait().map_err(|source| RunError::Spawn {
            argv: self.argv.clone(),
            source,
        })?;
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if status.success() {
            Ok(())
        } else {
            Err(RunError::Failed {
                argv: self.argv.clone(),
                status: status.to_string(),
                stderr: String::from_utf8_lossy(&stderr).trim_end().to_string(),
            })
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        // Abandoned early (an upload failed): end the child we started, then reap it.
        if self.stderr.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Quote an argument for display only (commands never run through a shell).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Find a program on PATH (or accept a path as given).
#[allow(clippy::disallowed_methods)] // PATH is the runner's to read: it resolves programs
pub fn which(program: &OsStr) -> Option<PathBuf> {
    let p = Path::new(program);
    if p.components().count() > 1 {
        return p.is_file().then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|c| is_executable(c))
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    p.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_argv_without_a_shell() {
        let out = Cmd::new("echo").arg("a b").arg("$HOME").run().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b $HOME\n");
    }

    #[test]
    fn feeds_stdin_and_reports_failures() {
        let out = Cmd::new("cat").stdin(b"hello".to_vec()).run().unwrap();
        assert_eq!(out.stdout, b"hello");
        let err = Cmd::new("sh")
            .args(["-c", "echo boom >&2; exit 3"])
            .run()
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("boom") && msg.contains("exit status: 3"),
            "{msg}"
        );
        assert!(matches!(
            Cmd::new("no-such-program-ktwin").run(),
            Err(RunError::NotFound { .. })
        ));
    }

    #[test]
    fn display_quotes_for_humans() {
        assert_eq!(Cmd::new("k3d").args(["a b", "x"]).display(), "k3d 'a b' x");
    }
}
