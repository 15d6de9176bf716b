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
    #[error("`{argv}` was stopped: its inputs changed while it ran")]
    Cancelled { argv: String },
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
        self.run_inner(None)
    }

    /// As [`Cmd::run`], but `stop` is asked every 20 ms while the command runs; when it says
    /// so, the process is killed and reaped and the result is [`RunError::Cancelled`]. (A
    /// `docker build` client that ends takes its build with it: the engine cancels a build
    /// whose client connection closed.)
    pub fn run_until(&self, stop: &dyn Fn() -> bool) -> Result<RunOutput, RunError> {
        self.run_inner(Some(stop))
    }

    fn run_inner(&self, stop: Option<&dyn Fn() -> bool>) -> Result<RunOutput, RunError> {
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
        let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
            std::thread::spawn(move || {
                let mut b = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut b);
                }
                b
            })
        };
        let stdout = read(child.stdout.take().map(|p| Box::new(p) as _));
        let stderr = read(child.stderr.take().map(|p| Box::new(p) as _));
        // Without `stop`, a plain wait; with it, polls that start at 1 ms (a short command
        // is not slowed) and settle at 20 ms.
        let mut nap = std::time::Duration::from_millis(1);
        let status = loop {
            let Some(stop) = stop else {
                match child.wait() {
                    Ok(st) => break st,
                    Err(source) => {
                        return Err(RunError::Spawn {
                            argv: self.display(),
                            source,
                        })
                    }
                }
            };
            match child.try_wait() {
                Ok(Some(st)) => break st,
                Ok(None) if stop() => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(RunError::Cancelled {
                        argv: self.display(),
                    });
                }
                Ok(None) => {
                    std::thread::sleep(nap);
                    nap = (nap * 2).min(std::time::Duration::from_millis(20));
                }
                Err(source) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(RunError::Spawn {
                        argv: self.display(),
                        source,
                    });
                }
            }
        };
        let out = std::process::Output {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        };
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
    fn a_stopped_command_is_killed_and_reaped() {
        let d = tempfile::tempdir().unwrap();
        let pid_file = d.path().join("pid");
        let script = format!("echo $$ > {}; exec sleep 300", pid_file.display());
        let r = Cmd::new("sh")
            .args(["-c", &script])
            .run_until(&|| std::fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n')));
        assert!(matches!(r, Err(RunError::Cancelled { .. })), "{r:?}");
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        // Killed and reaped: no process (not even a zombie) has that PID any more.
        assert!(!Path::new(&format!("/proc/{}", pid.trim())).exists());
        // A command that ends by itself is not stopped.
        let out = Cmd::new("echo").arg("done").run_until(&|| false).unwrap();
        assert_eq!(out.stdout, b"done\n");
    }

    #[test]
    fn display_quotes_for_humans() {
        assert_eq!(Cmd::new("k3d").args(["a b", "x"]).display(), "k3d 'a b' x");
    }
}
