//! `ktwin up`: the registry, the cluster and its wiring, the images, then the local deploy.

use std::time::Duration;

use ktwin_cluster::up::{up_cluster, ClusterAction, Exec};
use ktwin_config::LOCAL_ENV;
use ktwin_engine::registry::{plan as registry_plan, Plan as RegistryPlan, Registry, UpAction};
use ktwin_kube::guard::Intent;
use ktwin_kube::KubeError;

use crate::cli::{Cli, UpArgs};
use crate::plan::{kube_failure, up_failure, Plan};
use crate::printer;
use crate::report::{plain, Failure};
use crate::steps::{self, Deploy};

pub async fn run(cli: &Cli, a: &UpArgs) -> Result<u8, Failure> {
    // The name rule passes before any engine or API server is contacted.
    let mut plan = Plan::resolve(cli, LOCAL_ENV, a.context.as_deref())?;
    let eng = plan.engine()?;
    let x = Exec {
        dry_run: a.dry_run,
        report: &printer::event,
    };
    if a.dry_run {
        printer::err("dry run: read-only probes run; nothing is created, changed or deleted");
    }
    let reg = Registry {
        engine: &eng,
        spec: plan.registry_spec.clone(),
    };
    if a.dry_run {
        let observed = reg
            .observe()
            .map_err(|e| Failure::Operation(vec![plain(e.to_string(), e.help())]))?;
        let what = match registry_plan(&reg.spec, &observed, a.recreate) {
            RegistryPlan::Nothing => "registry: up to date".to_string(),
            RegistryPlan::Create => format!("would create the registry {}", reg.spec.name),
            RegistryPlan::Start => format!("would start the registry {}", reg.spec.name),
            RegistryPlan::Drift(d) => {
                format!("registry differs (needs --recreate): {}", d.join("; "))
            }
            RegistryPlan::Recreate(d) => format!("would recreate the registry: {}", d.join("; ")),
            RegistryPlan::Foreign => format!(
                "a container named {} exists that ktwin did not create",
                reg.spec.name
            ),
        };
        printer::err(&what);
    } else {
        let action = reg
            .up(a.recreate)
            .map_err(|e| Failure::Operation(vec![plain(e.to_string(), e.help())]))?;
        printer::err(&match action {
            UpAction::UpToDate => format!("registry {}: up to date", reg.spec.name),
            UpAction::Created => format!("registry {}: created", reg.spec.name),
            UpAction::Started => format!("registry {}: started", reg.spec.name),
            UpAction::Recreated(d) => {
                format!("registry {}: recreated ({})", reg.spec.name, d.join("; "))
            }
        });
    }
    let action = up_cluster(plan.project(), &eng, a.context.as_deref(), a.recreate, &x)
        .map_err(up_failure)?;
    let name = plan.naming.cluster.clone();
    printer::err(&match &action {
        ClusterAction::Created => format!("cluster {name}: created"),
        ClusterAction::Recreated(d) => format!("cluster {name}: recreated ({})", d.join("; ")),
        ClusterAction::UpToDate => format!("cluster {name}: up to date"),
        ClusterAction::FixedInPlace(d) => {
            format!("cluster {name}: fixed in place ({})", d.join("; "))
        }
    });
    let has_local = plan.environment().is_some();
    if a.dry_run {
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
    }
    // The API half, through the provider's kubeconfig for this cluster and nothing else.
    let g = plan
        .guard(Intent::Write {
            accept_new_cluster: false,
        })
        .await?
        .clone();
    printer::err(&format!("wiring the twin at {}", g.describe()));
    let configmap = ktwin_cluster::registry_wiring::kep1755_configmap(&plan.registry);
    let created = matches!(action, ClusterAction::Created | ClusterAction::Recreated(_));
    let missing = async {
        let client = ktwin_kube::connect(&g).await?;
        if created {
            ktwin_kube::wait_for_api(
                &client,
                g.context(),
                Duration::from_secs(120),
                &printer::event,
            )
            .await?;
        }
        ktwin_kube::heal::ensure_registry_hosting(&client, &configmap, false, &printer::event)
            .await?;
        let n = ktwin_kube::heal::ensure_nodes(
            &client,
            &plan.nodes,
            plan.single_node,
            false,
            &printer::event,
        )
        .await?;
        Ok::<_, KubeError>(n.missing)
    }
    .await
    .map_err(kube_failure)?;
    if !missing.is_empty() {
        return Err(Failure::Operation(vec![plain(
            format!(
                "nodes ktwin.yaml declares are not in the cluster: {}",
                missing.join(", ")
            ),
            Some("`ktwin heal` starts stopped node containers; `ktwin up --recreate` rebuilds the cluster".into()),
        )]));
    }
    // Built and deployed from the same plan: the tags deployed are the tags pushed.
    let images = plan.select(&[])?;
    if !images.is_empty() {
        if let Some(f) = steps::build_images(&plan, &eng, &images, cli.verbose)?.failure {
            return Err(f);
        }
    }
    if !has_local {
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
    let r = steps::deploy(&plan, &g, &docs, &d).await?;
    printer::err(&steps::summary(&r));
    Ok(0)
}
