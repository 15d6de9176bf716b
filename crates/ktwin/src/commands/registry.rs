use std::collections::BTreeSet;

use ktwin_config::imageref::ImageRef;
use ktwin_config::LOCAL_ENV;
use ktwin_engine::gc::GcOptions;
use ktwin_engine::registry::{
    plan as registry_plan, Observed, Plan as RegistryPlan, Registry, RegistryError, UpAction,
};
use serde_json::json;

use crate::cli::{Cli, RegistryCommand, StatusFormat};
use crate::plan::Plan;
use crate::printer;
use crate::report::{plain, Failure};
use crate::steps;

fn failure(e: RegistryError) -> Failure {
    Failure::Operation(vec![plain(e.to_string(), e.help())])
}

pub fn run(cli: &Cli, c: &RegistryCommand) -> Result<u8, Failure> {
    let plan = Plan::resolve(cli, LOCAL_ENV, None)?;
    let eng = plan.engine()?;
    let reg = Registry {
        engine: &eng,
        spec: plan.registry_spec.clone(),
    };
    let name = reg.spec.name.clone();
    let port = reg.spec.host_port;
    match c {
        RegistryCommand::Up { recreate } => {
            printer::err(&format!(
                "registry {name}: reconciling (engine: {}, found by {})",
                eng.kind.cli(),
                eng.reason
            ));
            let msg = match reg.up(*recreate).map_err(failure)? {
                UpAction::UpToDate => format!("registry {name}: up to date on 127.0.0.1:{port}"),
                UpAction::Created => format!(
                    "registry {name}: created on 127.0.0.1:{port} (data in volume {})",
                    reg.spec.volume()
                ),
                UpAction::Started => format!("registry {name}: started (it was stopped)"),
                UpAction::Recreated(d) => {
                    format!("registry {name}: recreated ({}); images kept", d.join("; "))
                }
            };
            printer::out(&format!("{msg}\n"));
            Ok(0)
        }
        RegistryCommand::Down { purge } => {
            let existed = reg.down(*purge).map_err(failure)?;
            let what = match (existed, purge) {
                (true, true) => format!("registry {name}: removed with its data volume"),
                (true, false) => format!(
                    "registry {name}: removed; images kept in volume {} (--purge deletes them)",
                    reg.spec.volume()
                ),
                (false, true) => format!("registry {name}: not running; data volume removed"),
                (false, false) => format!("registry {name}: not present, nothing to do"),
            };
            printer::out(&format!("{what}\n"));
            Ok(0)
        }
        RegistryCommand::Status { output } => {
            let observed = reg.observe().map_err(failure)?;
            let healthy = reg.api().healthy();
            let (exists, running, image) = match &observed {
                Observed::Absent => (false, false, None),
                Observed::Present { running, image, .. } => (true, *running, Some(image.clone())),
            };
            let drift = match registry_plan(&reg.spec, &observed, false) {
                RegistryPlan::Drift(d) => d,
                RegistryPlan::Foreign => vec!["not created by ktwin".into()],
                _ => vec![],
            };
            let ok = exists && running && healthy && drift.is_empty();
            match output {
                StatusFormat::Json => printer::out(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&json!({
                        "name": name, "hostPort": port, "exists": exists, "running": running,
                        "image": image, "healthy": healthy, "drift": drift, "volume": reg.spec.volume(),
                    }))
                    .unwrap_or_default()
                )),
                StatusFormat::Text => {
                    let state = if !exists { "absent" } else if !running { "stopped" } else if !healthy { "running, not answering /v2/" } else { "running, healthy" };
                    let mut s = format!("registry {name} on 127.0.0.1:{port}: {state}\n");
                    for d in &drift {
                        s.push_str(&format!("  drift: {d}\n"));
                    }
                    printer::out(&s);
                }
            }
            Ok(u8::from(!ok))
        }
        RegistryCommand::Gc {
            keep,
            all_projects,
            dry_run,
            output,
        } => {
            if !reg.api().healthy() {
                return Err(Failure::Operation(vec![plain(
                    format!("registry {name} does not answer on 127.0.0.1:{port}"),
                    Some("start it with `ktwin registry up`".into()),
                )]));
            }
            let o = GcOptions {
                keep: usize::from(*keep),
                dry_run: *dry_run,
                repositories: (!*all_projects).then(|| project_repositories(&plan)),
                protected: protected_tags(&plan)?,
            };
            let r = ktwin_engine::gc::collect(&eng, &reg.spec, &o)
                .map_err(|e| Failure::Operation(vec![plain(e.to_string(), None)]))?;
            match output {
                StatusFormat::Json => printer::out(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&r).unwrap_or_default()
                )),
                StatusFormat::Text => {
                    let mut s = String::new();
                    let verb = if *dry_run { "would delete" } else { "deleted" };
                    for (repo, tags) in &r.deleted {
                        for t in tags {
                            s.push_str(&format!("{verb} {repo}:{t}\n"));
                        }
                    }
                    s.push_str(&format!(
                        "registry {name}: {} content tags kept, {} deleted, {} blobs reclaimed\n",
                        r.kept,
                        r.deleted.values().map(Vec::len).sum::<usize>(),
                        r.blobs_reclaimed
                    ));
                    printer::out(&s);
                }
            }
            Ok(0)
        }
    }
}

/// The registry repositories this project's images are pushed to.
fn project_repositories(plan: &Plan) -> BTreeSet<String> {
    plan.project()
        .images
        .iter()
        .filter_map(|i| ImageRef::parse(&i.image).ok())
        .map(|r| r.path)
        .collect()
}

/// Tags gc must keep: every image of ktwin's registry a recorded deploy (of any project)
/// runs, and the tags the current sources of this project build to (the plan's). A deploy
/// record that cannot be read stops gc: it cannot know what is running.
fn protected_tags(plan: &Plan) -> Result<BTreeSet<(String, String)>, Failure> {
    let mut out = BTreeSet::new();
    let dir = steps::deploy_records_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e.flatten().map(|e| e.path()).collect::<Vec<_>>(),
        Err(_) => vec![],
    };
    for path in entries
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".deploy.json"))
    {
        let rec: Option<ktwin_kube::deploy::DeployRecord> = ktwin_config::state::read_json(path)
            .map_err(|e| Failure::Operation(vec![plain(e.to_string(), Some(e.help()))]))?;
        for image in rec.map(|r| r.images).unwrap_or_default() {
            let Ok(i) = ImageRef::parse(&image) else {
                continue;
            };
            if let (Some(host), Some(tag)) = (&i.host, &i.tag) {
                if plan.registry.is_ours(host) {
                    out.insert((i.path.clone(), tag.clone()));
                }
            }
        }
    }
    for i in plan.images()? {
        out.insert((i.repo.path.clone(), i.tag.to_string()));
    }
    Ok(out)
}
