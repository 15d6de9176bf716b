use std::path::PathBuf;

use ktwin_config::SourceDiag;

use crate::doc::{ObjRef, Source};

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Invalid YAML, with the position the parser reported.
    #[error("{0}")]
    Yaml(SourceDiag),
    #[error("{at}: {why}")]
    NotAnObject { at: Source, why: String },
    #[error("{obj} is defined twice: {first} and {second}")]
    Duplicate {
        obj: Box<ObjRef>,
        first: Source,
        second: Source,
    },
    #[error(transparent)]
    Input(#[from] ktwin_config::inputs::InputError),
    #[error("kustomize build of {dir} failed: {message}")]
    Kustomize { dir: PathBuf, message: String },
    #[error("neither `kustomize` nor `kubectl` is installed, and {dir} is a kustomization")]
    NoKustomize { dir: PathBuf },
    #[error("`helm` is not installed, and {} is a Helm chart source", chart.display())]
    NoHelm { chart: PathBuf },
    #[error("helm template of {} failed: {message}", chart.display())]
    Helm { chart: PathBuf, message: String },
    #[error("environment `{env}` is not defined in ktwin.yaml (defined: {defined})")]
    UnknownEnv { env: String, defined: String },
    #[error("{what} matches no rendered object ({target})")]
    Unmatched { what: String, target: String },
    #[error("{what} on {obj} failed: {message}")]
    PatchFailed {
        what: String,
        obj: Box<ObjRef>,
        message: String,
    },
    #[error("{}:{line}:{col}: {message}", file.display())]
    EnvFile {
        file: PathBuf,
        line: usize,
        col: usize,
        message: String,
    },
}

impl RenderError {
    /// What to do about it, where ktwin knows.
    pub fn help(&self) -> Option<String> {
        match self {
            RenderError::NoKustomize { .. } => Some(
                "install kubectl (Debian: `apt-get install kubernetes-client`, or see https://kubernetes.io/docs/tasks/tools/) \
                 or kustomize (https://kubectl.docs.kubernetes.io/installation/kustomize/)"
                    .into(),
            ),
            RenderError::Duplicate { .. } => {
                Some("remove one of them, or give them different names or namespaces".into())
            }
            RenderError::Unmatched { .. } => Some(
                "check `kind`, `name` and `namespace` of the target against `ktwin render` output".into(),
            ),
            RenderError::NotAnObject { .. } => {
                Some("every document needs `apiVersion`, `kind` and `metadata.name`".into())
            }
            RenderError::NoHelm { .. } => Some(
                "install Helm 3 or 4 (https://helm.sh/docs/intro/install/; e.g. `curl -fsSL https://raw.githubusercontent.com/helm/helm/main/scripts/get-helm-3 | bash`)".into(),
            ),
            RenderError::Yaml(d) => d.help.clone(),
            RenderError::Input(e) => e.help(),
            _ => None,
        }
    }
}
