//! `ktwin up` and `ktwin down`: the registry, the cluster, its wiring, then images.

use ktwin_cluster::guard;
use ktwin_cluster::up::{down_cluster, up_cluster, ClusterAction, Exec, UpError};
use ktwin_config::LOCAL_ENV;
use ktwin_engine::registry::{plan, Plan, Registry, RegistrySpec, UpAction};

use crate::cli::{BuildArgs, Cli, DownArgs, StatusFormat, UpArgs};
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
    guard(p, LOCAL_ENV, a.context.as_deref())
        .map_err(|e| Failure::input(e.to_string(), Some(e.help())))?;
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
    let context = guard(p, LOCAL_ENV, a.context.as_deref())
        .map_err(|e| Failure::input(e.to_string(), Some(e.help())))?;
    let r = super::deploy::deploy_env(
        &loaded,
        &super::deploy::Deploy {
            env: LOCAL_ENV.into(),
            context,
            prune: true,
            prune_volumes: false,
            force_conflicts: false,
            timeout: a.timeout,
        },
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
