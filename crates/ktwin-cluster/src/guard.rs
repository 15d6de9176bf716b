//! The context guard: the one function every cluster-writing path calls before a single
//! request is sent. The local environment writes only to the cluster ktwin manages; a remote
//! environment only to the context it names. The current-context is never a fallback.

use ktwin_config::{Project, LOCAL_ENV};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("environment `{env}` is not defined in ktwin.yaml")]
    UnknownEnv { env: String },
    #[error("refusing to write the `{env}` environment to context `{requested}`: it may only use `{allowed}`")]
    WrongContext {
        env: String,
        requested: String,
        allowed: String,
    },
    #[error(
        "environment `{env}` names no kube context; refusing to fall back to the current context"
    )]
    NoContext { env: String },
}

impl GuardError {
    pub fn help(&self) -> String {
        match self {
            GuardError::WrongContext { allowed, .. } => {
                format!("drop --context, or pass --context {allowed}")
            }
            GuardError::NoContext { env } => {
                format!("set environments.{env}.context in ktwin.yaml")
            }
            GuardError::UnknownEnv { .. } => {
                "environments are declared under `environments:` in ktwin.yaml".into()
            }
        }
    }
}

/// The kube context `env` may write to, given an optional `--context`.
pub fn guard(p: &Project, env: &str, requested: Option<&str>) -> Result<String, GuardError> {
    let allowed = if env == LOCAL_ENV {
        ktwin_config::desired::Naming::of(p).context()
    } else {
        let e = p
            .environment(env)
            .ok_or_else(|| GuardError::UnknownEnv { env: env.into() })?;
        e.context
            .clone()
            .ok_or_else(|| GuardError::NoContext { env: env.into() })?
    };
    match requested {
        Some(r) if r != allowed => Err(GuardError::WrongContext {
            env: env.into(),
            requested: r.into(),
            allowed,
        }),
        _ => Ok(allowed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(extra: &str) -> Project {
        let text = format!("apiVersion: ktwin.dev/v1alpha1\nkind: Project\nname: swarm\n{extra}");
        ktwin_config::load::parse(std::path::Path::new("/x/ktwin.yaml"), text)
            .unwrap()
            .project
    }

    #[test]
    fn local_only_writes_to_the_managed_cluster() {
        let p = project("environments:\n  local: {}\n");
        assert_eq!(guard(&p, "local", None).unwrap(), "k3d-swarm");
        assert_eq!(guard(&p, "local", Some("k3d-swarm")).unwrap(), "k3d-swarm");
        let e = guard(&p, "local", Some("do-nyc3-prod")).unwrap_err();
        assert!(matches!(e, GuardError::WrongContext { .. }));
        assert!(e.to_string().contains("may only use `k3d-swarm`"));
        let kind = project("cluster: {provider: kind, name: twin}\n");
        assert_eq!(guard(&kind, "local", None).unwrap(), "kind-twin");
    }

    #[test]
    fn remote_only_writes_to_its_named_context() {
        let p = project("environments:\n  dev: {context: do-dev}\n");
        assert_eq!(guard(&p, "dev", None).unwrap(), "do-dev");
        assert!(guard(&p, "dev", Some("k3d-swarm")).is_err());
        assert!(matches!(
            guard(&p, "prod", None),
            Err(GuardError::UnknownEnv { .. })
        ));
        // A remote env without a context never resolves (validation also rejects the file).
        let mut q = project("environments:\n  dev: {context: do-dev}\n");
        q.environments.get_mut("dev").unwrap().context = None;
        assert!(matches!(
            guard(&q, "dev", None),
            Err(GuardError::NoContext { .. })
        ));
    }
}
