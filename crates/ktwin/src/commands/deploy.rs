//! `ktwin deploy`: render, guard, server-side apply, prune, rollout wait.

use ktwin_config::LOCAL_ENV;
use ktwin_kube::guard::Intent;

use crate::cli::{Cli, DeployArgs, StatusFormat};
use crate::plan::Plan;
use crate::printer;
use crate::report::Failure;
use crate::steps::{self, Deploy};

pub async fn run(cli: &Cli, a: &DeployArgs) -> Result<u8, Failure> {
    let mut plan = Plan::resolve(cli, &a.env, a.context.as_deref())?;
    // Rendered first: a broken manifest fails before any cluster is contacted.
    let docs = plan.rendered()?;
    let g = plan
        .guard(Intent::Write {
            accept_new_cluster: a.accept_new_cluster,
        })
        .await?
        .clone();
    let prune = if a.prune {
        true
    } else if a.no_prune {
        false
    } else {
        a.env == LOCAL_ENV
    };
    let d = Deploy {
        prune,
        prune_volumes: a.prune_volumes,
        force_conflicts: a.force_conflicts,
        timeout: a.timeout,
    };
    let r = steps::deploy(&plan, &g, &docs, &d).await?;
    match a.output {
        StatusFormat::Json => printer::out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&r).unwrap_or_default()
        )),
        StatusFormat::Text => printer::err(&steps::summary(&r)),
    }
    Ok(0)
}
