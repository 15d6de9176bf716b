//! The one way a command reaches a cluster: the name rule (before anything is contacted),
//! then the guard by identity (ktwin-kube's `GuardedContext`).
//!
//! - local: the provider's own kubeconfig for the cluster ktwin manages; a same-named
//!   context in the user's kubeconfig that points elsewhere is warned about, never used.
//! - remote: the context ktwin.yaml names, while it still leads to the cluster recorded at
//!   the first deploy (state `identities/<project>-<env>.json`).

use ktwin_config::{Loaded, LOCAL_ENV};
pub use ktwin_kube::guard::Intent;
use ktwin_kube::guard::{self, GuardedContext};

use crate::cli::Cli;
use crate::printer;
use crate::report::{plain, Failure};

pub fn kube_failure(e: ktwin_kube::KubeError) -> Failure {
    let r = plain(e.to_string(), e.help());
    match e {
        ktwin_kube::KubeError::Guard(_) => Failure::Input(vec![r]),
        _ => Failure::Operation(vec![r]),
    }
}

fn guard_failure(e: guard::GuardError) -> Failure {
    kube_failure(ktwin_kube::KubeError::Guard(e))
}

/// The context `env` may use, by name only: refused (exit 2) before any engine, provider or
/// API server is contacted.
pub fn allowed(loaded: &Loaded, env: &str, requested: Option<&str>) -> Result<String, Failure> {
    ktwin_cluster::guard(&loaded.project, env, requested)
        .map_err(|e| Failure::input(e.to_string(), Some(e.help())))
}

/// The guarded context of `env`.
pub fn guarded(
    cli: &Cli,
    loaded: &Loaded,
    env: &str,
    requested: Option<&str>,
    intent: Intent,
) -> Result<GuardedContext, Failure> {
    let context = allowed(loaded, env, requested)?;
    let p = &loaded.project;
    if env == LOCAL_ENV {
        let eng = crate::commands::engine(cli)?;
        let tool = ktwin_cluster::provider_for(p.cluster.provider).tool();
        let text = ktwin_cluster::up::provider_kubeconfig(p, &eng).map_err(|e| {
            Failure::Operation(vec![plain(
                format!(
                    "cannot get the kubeconfig of cluster `{}` from {tool}: {e}",
                    p.cluster_name()
                ),
                Some("is the twin up? `ktwin up` creates it, `ktwin heal` restarts it".into()),
            )])
        })?;
        let g = guard::local(env, &context, &text, tool).map_err(guard_failure)?;
        // Only read, to warn; a user kubeconfig ktwin cannot read changes nothing here.
        if let Ok(user) = guard::user_kubeconfig() {
            if let Some(w) = guard::same_name_elsewhere(&g, &user) {
                printer::err(&w);
            }
        }
        return Ok(g);
    }
    let user = guard::user_kubeconfig().map_err(guard_failure)?;
    let record = ktwin_config::state::state_dir()
        .join("identities")
        .join(format!("{}-{env}.json", p.name));
    let (g, warning) = ktwin_kube::block_on(guard::remote(env, &context, &user, &record, intent))
        .map_err(kube_failure)?;
    if let Some(w) = warning {
        printer::err(&w);
    }
    Ok(g)
}
