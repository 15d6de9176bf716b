//! `ktwin up` and `ktwin down`: the registry, the cluster, its wiring, then images.

use std::time::Duration;

use ktwin_cluster::up::{down_cluster, up_cluster, ClusterAction, Exec, UpError};
use ktwin_config::LOCAL_ENV;
use ktwin_engine::registry::{plan, Plan, Registry, RegistrySpec, UpAction};
use ktwin_kube::KubeError;

use crate::cli::{BuildArgs, Cli, DownArgs, StatusFormat, UpArgs};
use crate::guarded::{allowed, guarded, kube_failure, Intent};
use crate::printer;
use crate::report::{plain, Failure};

fn failure(e: UpError) -> Failure {
    let r = plain(e.to_string(), e.help());
    if e.is_input() {
        Failure::Input(vec![r])
    } else {
        Failure::Operation(vec![r])
    }
}

pub fn up(cli: &Cli, a: &UpArgs) -> Result<u8, Failure> {
    let loaded = super::load_project(cli)?;
    let p = &loaded.project;
    // Before any engine or API server is contacted.
    allowed(&loaded, LOCAL_ENV, a.context.as_deref())?;
    let eng = super::registry::engine(cli)?;
    let say = |s: &str| printer::err(s);
    let x = Exec {
        dry_run: a.dry_run,
        say: &say,
    };
    if a.dry_run {
        printer::err("dry run: read-only probes run; nothing is created, changed or deleted");
    }
    let reg = Registry {
        engine: &eng,
        spec: RegistrySpec::from_config(&p.registry),
    };
    if a.dry_run {
        let observed = reg
            .observe()
            .map_err(|e| Failure::Operation(vec![plain(e.to_string(), e.help())]))?;
        let what = match plan(&reg.spec, &observed, a.recreate) {
            Plan::Nothing => "registry: up to date".to_string(),
            Plan::Create => format!("would create the registry {}", reg.spec.name),
            Plan::Start => format!("would start the registry {}", reg.spec.name),
            Plan::Drift(d) => format!("registry differs (needs --recreate): {}", d.join("; ")),
            Plan::Recreate(d) => format!("would recreate the registry: {}", d.join("; ")),
            Plan::Foreign => format!(
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
    let action = up_cluster(p, &eng, a.context.as_deref(), a.recreate, &x).map_err(failure)?;
    let name = p.cluster_name();
    printer::err(&match &action {
        ClusterAction::Created => format!("cluster {name}: created"),
        ClusterAction::Recreated(d) => format!("cluster {name}: recreated ({})", d.join("; ")),
        ClusterAction::UpToDate => format!("cluster {name}: up to date"),
        ClusterAction::FixedInPlace(d) => {
            format!("cluster {name}: fixed in place ({})", d.join("; "))
        }
    });
    let has_local = p.environment(LOCAL_ENV).is_some();
    if a.dry_run {
        printer::err(&format!(
            "would check the KEP-1755 ConfigMap and every node's labels and taints through `{}`",
            ktwin_cluster::provider_for(p.cluster.provider)
                .kubeconfig_args(p.cluster_name())
                .join(" ")
        ));
        for i in &p.images {
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
    let g = guarded(
        cli,
        &loaded,
        LOCAL_ENV,
        a.context.as_deref(),
        Intent::Write {
            accept_new_cluster: false,
        },
    )?;
    printer::err(&format!("wiring the twin at {}", g.describe()));
    let wants = super::deploy::node_wants(p);
    let configmap = ktwin_cluster::registry_wiring::kep1755_configmap(&p.registry);
    let say = |s: &str| printer::err(s);
    let created = matches!(action, ClusterAction::Created | ClusterAction::Recreated(_));
    let missing = ktwin_kube::block_on(async {
        let client = ktwin_kube::connect(&g).await?;
        if created {
            ktwin_kube::wait_for_api(&client, g.context(), Duration::from_secs(120), &say).await?;
        }
        ktwin_kube::heal::ensure_registry_hosting(&client, &configmap, false, &say).await?;
        let single = super::deploy::single_node(p);
        let n = ktwin_kube::heal::ensure_nodes(&client, &wants, single, false, &say).await?;
        Ok::<_, KubeError>(n.missing)
    })
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
    if !p.images.is_empty() {
        let code = super::build::run(
            cli,
            &BuildArgs {
                images: vec![],
                output: StatusFormat::Text,
            },
        )?;
        if code != 0 {
            return Ok(code);
        }
    }
    if !has_local {
        printer::err("no `local` environment in ktwin.yaml: nothing to deploy");
        return Ok(0);
    }
    let docs = super::deploy::rendered(&loaded, LOCAL_ENV)?;
    let r = super::deploy::deploy_docs(
        &loaded,
        &super::deploy::Deploy {
            env: LOCAL_ENV.into(),
            context: g,
            prune: true,
            prune_volumes: false,
            force_conflicts: false,
            timeout: a.timeout,
        },
        docs,
    )?;
    printer::err(&super::deploy::summary(&r));
    Ok(0)
}

pub fn down(cli: &Cli, a: &DownArgs) -> Result<u8, Failure> {
    let loaded = super::load_project(cli)?;
    let p = &loaded.project;
    let eng = super::registry::engine(cli)?;
    let say = |s: &str| printer::err(s);
    let x = Exec {
        dry_run: a.dry_run,
        say: &say,
    };
    let existed = down_cluster(p, &eng, &x).map_err(failure)?;
    let name = p.cluster_name();
    if !existed {
        printer::err(&format!("cluster {name}: not present, nothing to do"));
    }
    let reg = Registry {
        engine: &eng,
        spec: RegistrySpec::from_config(&p.registry),
    };
    if a.purge_registry {
        if a.dry_run {
            printer::err(&format!(
                "would remove the registry {} and its data volume",
                reg.spec.name
            ));
        } else {
            reg.down(true)
                .map_err(|e| Failure::Operation(vec![plain(e.to_string(), e.help())]))?;
            printer::err(&format!(
                "registry {}: removed with its images",
                reg.spec.name
            ));
        }
    } else {
        printer::err(&format!(
            "registry {}: kept with its images (--purge-registry removes it)",
            reg.spec.name
        ));
    }
    Ok(0)
}
