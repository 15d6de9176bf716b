//! ktwin's state files (cluster specs, deploy records, cluster identities): written to a
//! temp file and renamed into place, so a crash or a full disk never leaves a torn file;
//! read back strictly, so a file that is there but unreadable is an error naming it, never
//! mistaken for "absent".

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Where state that outlives one ktwin process lives: `$XDG_STATE_HOME/ktwin`, else
/// `~/.local/state/ktwin`.
pub fn state_dir() -> PathBuf {
    xdg_dir("XDG_STATE_HOME", ".local/state", "ktwin-state")
}

/// ktwin's data dir (`$XDG_DATA_HOME/ktwin`, else `~/.local/share/ktwin`): what outlives a
/// twin, as the volumes of `cluster.persistentVolumes`.
pub fn data_dir() -> PathBuf {
    xdg_dir("XDG_DATA_HOME", ".local/share", "ktwin-data")
}

/// `$<var>/ktwin`, else `~/<home_default>/ktwin`, else `<temp>/<no_home>`.
#[allow(clippy::disallowed_methods)] // the config's own reading of where its files live
fn xdg_dir(var: &str, home_default: &str, no_home: &str) -> PathBuf {
    if let Some(d) = std::env::var_os(var).filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("ktwin");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(home_default).join("ktwin"),
        None => std::env::temp_dir().join(no_home),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read ktwin's state file {path}: {why}")]
    Read { path: PathBuf, why: String },
}

impl StateError {
    pub fn help(&self) -> String {
        match self {
            StateError::Write { .. } => "check the disk has room and the directory is writable (set XDG_STATE_HOME to move it)".into(),
            StateError::Read { path, .. } => format!(
                "the file is damaged; move it away (`mv {0} {0}.bad`) and rerun: ktwin then treats what it recorded as unknown",
                path.display()
            ),
        }
    }
}

/// Write `bytes` to `path` atomically: a sibling temp file, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    use std::io::Write;
    let err = |source| StateError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    let written = f.write_all(bytes).and_then(|_| f.sync_all());
    drop(f);
    if let Err(e) = written.and_then(|_| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(())
}

/// [`write_atomic`] of a value as pretty JSON.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    write_atomic(path, text.as_bytes())
}

/// A JSON state file: `None` only when it does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StateError::Read {
                path: path.to_path_buf(),
                why: e.to_string(),
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StateError::Read {
            path: path.to_path_buf(),
            // serde_json's message names a position, never the content.
            why: format!("not the JSON ktwin wrote ({e})"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_absent_and_torn() {
        let d = std::env::temp_dir().join(format!("ktwin-state-test-{}", std::process::id()));
        let p = d.join("x/spec.json");
        assert!(read_json::<serde_json::Value>(&p).unwrap().is_none());
        write_json(&p, &serde_json::json!({"a": 1})).unwrap();
        assert_eq!(read_json::<serde_json::Value>(&p).unwrap().unwrap()["a"], 1);
        // No temp file is left beside it.
        assert_eq!(std::fs::read_dir(d.join("x")).unwrap().count(), 1);
        std::fs::write(&p, "{\"a\": ").unwrap();
        let e = read_json::<serde_json::Value>(&p).unwrap_err();
        assert!(e.to_string().contains("spec.json"), "{e}");
        assert!(e.help().contains("mv "), "{}", e.help());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
