//! `ktwin up`: the registry, the cluster and its wiring, the images, then the local deploy.

use ktwin_config::LOCAL_ENV;

use crate::cli::{Cli, UpArgs};
use crate::plan::Plan;
use crate::printer;
use crate::report::Failure;
use crate::steps::{self, Deploy};

pub async fn run(cli: &Cli, a: &UpArgs) -> Result<u8, Failure> {
    // The name rule passes before any engine or API server is contacted.
    let mut plan = Plan::resolve(cli, LOCAL_ENV, a.context.as_deref())?;
    let eng = plan.engine()?;
    let twin = steps::UpTwin {
        dry_run: a.dry_run,
        recreate: a.recreate,
        context: a.context.as_deref(),
    };
    let g = steps::up_twin(&mut plan, &eng, &twin).await?;
    let has_local = plan.environment().is_some();
    let Some(g) = g else {
        printer::err(&format!(
            "would check the KEP-1755 ConfigMap and every node's labels and taints through `{} {}`",
            ktwin_cluster::provider_for(plan.naming.provider).tool(),
            ktwin_cluster::provider_for(plan.naming.provider)
                .kubeconfig_args(&plan.naming.cluster)
                .join(" ")
        ));
        for i in &plan.project().images {
            printer::err(&format!(
                "would build and push {} (skipped when the registry has its content tag)",
                i.image
            ));
        }
        if has_local {
            printer::err("would deploy the local environment (as `ktwin deploy`)");
        }
        return Ok(0);
    };
    // Built and deployed from the same plan: the tags deployed are the tags pushed.
    let images = plan.select(&[])?;
    let mut reports = Vec::new();
    if !images.is_empty() {
        // An engine push that would compete with the nodes' pull waits for the rollout.
        let built = steps::build_images(&plan, &eng, &images, cli.verbose, &|| false, true)?;
        if let Some(f) = built.failure {
            steps::start_engine_pushes(&plan, &eng, &built.reports);
            return Err(f);
        }
        reports = built.reports;
    }
    if !has_local {
        steps::start_engine_pushes(&plan, &eng, &reports);
        printer::err("no `local` environment in ktwin.yaml: nothing to deploy");
        return Ok(0);
    }
    let docs = plan.rendered()?;
    let d = Deploy {
        prune: true,
        prune_volumes: false,
        force_conflicts: false,
        timeout: a.timeout,
    };
    let r = steps::deploy(&plan, &g, &docs, &d).await;
    steps::start_engine_pushes(&plan, &eng, &reports);
    printer::err(&steps::summary(&r?));
    Ok(0)
}
