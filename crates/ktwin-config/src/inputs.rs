//! Reading the project's input files safely. Every manifest, env file and build context a
//! ktwin.yaml names must resolve (after symlinks) inside the project root: the git worktree
//! holding ktwin.yaml, or ktwin.yaml's directory outside git. An untrusted pull request's
//! ktwin.yaml cannot make ktwin read `/proc/self/environ` or `~/.ssh/id_*` and echo it into a
//! CI log. Reads are bounded: only regular files (never a FIFO or a device), at most
//! [`MAX_INPUT_BYTES`] each; directory walks detect symlink loops and are bounded in depth.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The largest single input file read.
pub const MAX_INPUT_BYTES: u64 = 64 * 1024 * 1024;
/// The deepest directory walk.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{} resolves to {}, outside the project root {}", shown.display(), real.display(), root.display())]
    Outside {
        shown: PathBuf,
        real: PathBuf,
        root: PathBuf,
    },
    #[error("{}: {what}, not a regular file; refusing to read it", path.display())]
    NotRegular { path: PathBuf, what: &'static str },
    #[error("{}: {size} bytes, over the {MAX_INPUT_BYTES}-byte limit for one input file", path.display())]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{}: a symlink loop (this directory is already being read through another path)", path.display())]
    Loop { path: PathBuf },
    #[error("{}: nested deeper than {MAX_DEPTH} directories", path.display())]
    TooDeep { path: PathBuf },
    #[error("{}: not UTF-8 text", path.display())]
    NotUtf8 { path: PathBuf },
    #[error("cannot read {}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl InputError {
    pub fn help(&self) -> Option<String> {
        match self {
            InputError::Outside { .. } => Some(
                "manifests, env files and build contexts must live inside the project (the git worktree holding ktwin.yaml); copy or move the file in"
                    .into(),
            ),
            InputError::Loop { .. } => Some("remove the symlink that points back up the tree".into()),
            _ => None,
        }
    }
}

/// Where inputs may come from. `root: None` reads anything (paths the user named on the
/// command line, e.g. `doctor -f`), still bounded.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    root: Option<PathBuf>,
}

/// The project root for a ktwin.yaml in `dir`: its git worktree's top, else `dir` itself.
pub fn project_root(dir: &Path) -> PathBuf {
    let root = crate::git::toplevel(dir).unwrap_or_else(|| dir.to_path_buf());
    std::fs::canonicalize(&root).unwrap_or(root)
}

fn io(path: &Path, error: std::io::Error) -> InputError {
    InputError::Io {
        path: path.to_path_buf(),
        error,
    }
}

impl Inputs {
    /// Inputs confined to `root` (canonicalised).
    pub fn confined(root: &Path) -> Inputs {
        Inputs {
            root: Some(std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf())),
        }
    }

    /// Inputs from anywhere (still bounded).
    pub fn anywhere() -> Inputs {
        Inputs { root: None }
    }

    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// `path` resolved through every symlink, if it exists and lies inside the root.
    pub fn check(&self, path: &Path) -> Result<PathBuf, InputError> {
        let real = std::fs::canonicalize(path).map_err(|e| io(path, e))?;
        if let Some(root) = &self.root {
            if !real.starts_with(root) {
                return Err(InputError::Outside {
                    shown: path.to_path_buf(),
                    real,
                    root: root.clone(),
                });
            }
        }
        Ok(real)
    }

    /// The text of one input file: inside the root, a regular file, within the size limit.
    /// Nothing is read before all three hold.
    pub fn read_text(&self, path: &Path) -> Result<String, InputError> {
        let real = self.check(path)?;
        let meta = std::fs::metadata(&real).map_err(|e| io(path, e))?;
        let ft = meta.file_type();
        if !ft.is_file() {
            use std::os::unix::fs::FileTypeExt;
            let what = if ft.is_dir() {
                "a directory"
            } else if ft.is_fifo() {
                "a FIFO"
            } else if ft.is_char_device() || ft.is_block_device() {
                "a device"
            } else if ft.is_socket() {
                "a socket"
            } else {
                "a special file"
            };
            return Err(InputError::NotRegular {
                path: path.to_path_buf(),
                what,
            });
        }
        if meta.len() > MAX_INPUT_BYTES {
            return Err(InputError::TooLarge {
                path: path.to_path_buf(),
                size: meta.len(),
            });
        }
        let bytes = std::fs::read(&real).map_err(|e| io(path, e))?;
        String::from_utf8(bytes).map_err(|_| InputError::NotUtf8 {
            path: path.to_path_buf(),
        })
    }

    /// Every `*.yaml` / `*.yml` file in `dir` and below, sorted, hidden entries skipped. A
    /// directory reached twice (a symlink loop) is an error, as is an entry resolving outside
    /// the root.
    pub fn yaml_files(&self, dir: &Path) -> Result<Vec<PathBuf>, InputError> {
        let mut out = Vec::new();
        let mut active = HashSet::new();
        self.walk(dir, 0, &mut active, &mut out)?;
        out.sort();
        Ok(out)
    }

    fn walk(
        &self,
        dir: &Path,
        depth: usize,
        active: &mut HashSet<PathBuf>,
        out: &mut Vec<PathBuf>,
    ) -> Result<(), InputError> {
        if depth > MAX_DEPTH {
            return Err(InputError::TooDeep {
                path: dir.to_path_buf(),
            });
        }
        let real = self.check(dir)?;
        // A directory already open above this one: following it again never ends.
        if !active.insert(real.clone()) {
            return Err(InputError::Loop {
                path: dir.to_path_buf(),
            });
        }
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| io(dir, e))?
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let p = e.path();
            let meta = std::fs::metadata(&p).map_err(|err| io(&p, err))?;
            if meta.is_dir() {
                self.walk(&p, depth + 1, active, out)?;
            } else if name.ends_with(".yaml") || name.ends_with(".yml") {
                out.push(p);
            }
        }
        active.remove(&real);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests make FIFOs with mkfifo
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ktwin-inputs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("proj/k8s")).unwrap();
        d
    }

    #[test]
    fn confined_reads_refuse_what_resolves_outside() {
        let d = tmp("outside");
        std::fs::write(d.join("secret"), "TOKEN=1").unwrap();
        std::fs::write(d.join("proj/k8s/a.yaml"), "kind: X").unwrap();
        std::os::unix::fs::symlink(d.join("secret"), d.join("proj/k8s/link.yaml")).unwrap();
        let i = Inputs::confined(&d.join("proj"));
        assert_eq!(i.read_text(&d.join("proj/k8s/a.yaml")).unwrap(), "kind: X");
        for p in [d.join("proj/../secret"), d.join("proj/k8s/link.yaml")] {
            let e = i.read_text(&p).unwrap_err();
            assert!(matches!(e, InputError::Outside { .. }), "{e}");
        }
        assert!(matches!(
            i.yaml_files(&d.join("proj/k8s")).map(|_| ()),
            Ok(())
        ));
        // Anywhere: the same link reads (it is the user's own command line).
        assert_eq!(
            Inputs::anywhere()
                .read_text(&d.join("proj/k8s/link.yaml"))
                .unwrap(),
            "TOKEN=1"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn loops_fifos_devices_and_huge_files_are_refused_before_reading() {
        let d = tmp("bounded");
        let k = d.join("proj/k8s");
        std::fs::write(k.join("a.yaml"), "kind: X").unwrap();
        std::os::unix::fs::symlink(".", k.join("l1")).unwrap();
        std::os::unix::fs::symlink(".", k.join("l2")).unwrap();
        let i = Inputs::confined(&d.join("proj"));
        let e = i.yaml_files(&k).unwrap_err();
        assert!(matches!(e, InputError::Loop { .. }), "{e}");
        std::fs::remove_file(k.join("l1")).unwrap();
        std::fs::remove_file(k.join("l2")).unwrap();
        let fifo = k.join("fifo.yaml");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let e = i.read_text(&fifo).unwrap_err();
        assert!(
            matches!(e, InputError::NotRegular { what: "a FIFO", .. }),
            "{e}"
        );
        let e = Inputs::anywhere()
            .read_text(Path::new("/dev/zero"))
            .unwrap_err();
        assert!(
            matches!(
                e,
                InputError::NotRegular {
                    what: "a device",
                    ..
                }
            ),
            "{e}"
        );
        let big = k.join("big.yaml");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_INPUT_BYTES + 1).unwrap();
        let e = i.read_text(&big).unwrap_err();
        assert!(matches!(e, InputError::TooLarge { .. }), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
