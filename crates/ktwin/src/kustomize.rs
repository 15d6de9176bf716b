//! Build kustomizations with the user's own kustomize, else `kubectl kustomize`.

use std::path::Path;

use ktwin_engine::{which, Cmd, RunError};
use ktwin_manifest::{Kustomizer, RenderError};

#[derive(Debug, Default)]
pub struct ExternalKustomize;

impl Kustomizer for ExternalKustomize {
    fn build(&self, dir: &Path) -> Result<String, RenderError> {
        let cmd = if which("kustomize".as_ref()).is_some() {
            Cmd::new("kustomize").arg("build").arg(dir)
        } else if which("kubectl".as_ref()).is_some() {
            Cmd::new("kubectl").arg("kustomize").arg(dir)
        } else {
            return Err(RenderError::NoKustomize {
                dir: dir.to_path_buf(),
            });
        };
        match cmd.run() {
            Ok(out) => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
            Err(RunError::Failed { stderr, .. }) => Err(RenderError::Kustomize {
                dir: dir.to_path_buf(),
                message: stderr,
            }),
            Err(e) => Err(RenderError::Kustomize {
                dir: dir.to_path_buf(),
                message: e.to_string(),
            }),
        }
    }
}
