//! Steps more than one command takes (`up` builds and deploys like `build` and `deploy`):
//! each takes its facts from the [`Plan`], calls the libraries and reports through the printer.
//! A command file uses these, never another command.

use std::path::PathBuf;
use std::time::Duration;

use ktwin_config::desired::ImagePlan;
use ktwin_config::event::Action;
use ktwin_engine::build::{build_one, BuildError, BuildReport, Outcome, Via};
use ktwin_engine::Engine;
use ktwin_kube::deploy::{deploy as kube_deploy, Options, Report};
use ktwin_kube::{connect, Discovery, GuardedContext};
use serde_json::Value;

use crate::plan::{kube_failure, Plan};
use crate::printer;
use crate::report::{plain, Failure};

/// Independent images build in parallel, at most this many at once.
const PARALLEL: usize = 2;

/// What a build of several images gave: the reports of those that built (or were up to
/// date), and the failure of those that did not.
pub struct Built {
    pub reports: Vec<BuildReport>,
    pub failure: Option<Failure>,
}

/// Build and push `images` (at their planned tags), saying each outcome on stderr.
pub fn build_images(
    plan: &Plan,
    eng: &Engine,
    images: &[&ImagePlan],
    verbose: bool,
) -> Result<Built, Failure> {
    let siblings: Vec<String> = plan.images()?.iter().map(|i| i.repo.path.clone()).collect();
    let bars = printer::Bars::new(verbose);
    let mut results: Vec<(String, Result<BuildReport, BuildError>)> = Vec::new();
    for chunk in images.chunks(PARALLEL) {
        let done: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|i| {
                    let siblings = &siblings;
                    let registry = &plan.registry;
                    let bar = bars.bar(&i.image);
                    s.spawn(move || {
                        let r =
                            build_one(eng, i, registry, siblings, &|phase, n| bar.update(phase, n));
                        bar.finish();
                        (i.image.clone(), r)
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        for (image, r) in &done {
            match r {
                Ok(rep) if rep.outcome == Outcome::Skipped => printer::err(&format!(
                    "{image}: up to date ({}), nothing built or pushed",
                    rep.tag
                )),
                Ok(rep) => {
                    printer::err(&format!(
                        "{image}: {} {} of {} layers ({:.1} MB) as {} — build {:.1} s, push {:.1} s",
                        match rep.via {
                            Via::EnginePush => "engine pushed; stored",
                            _ => "uploaded",
                        },
                        rep.layers_pushed,
                        rep.layers,
                        rep.bytes_pushed as f64 / 1e6,
                        rep.reference,
                        rep.build_seconds,
                        rep.push_seconds
                    ));
                    if let Some(b) = &rep.background {
                        printer::err(&format!(
                            "{image}: the engine is pushing it once more in the background (pid {}, log {}) so that later changes move only new layers",
                            b.pid,
                            b.log.display()
                        ));
                    }
                }
                Err(_) => {}
            }
        }
        results.extend(done);
    }
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    for (_, r) in results {
        match r {
            Ok(rep) => reports.push(rep),
            Err(e) => errors.push(plain(e.to_string(), e.help())),
        }
    }
    Ok(Built {
        reports,
        failure: (!errors.is_empty()).then_some(Failure::Operation(errors)),
    })
}

/// Where a deploy of `project`'s `env` records what it applied (kinds, images).
pub fn deploy_record(project: &str, env: &str) -> PathBuf {
    deploy_records_dir().join(format!("{project}-{env}.deploy.json"))
}

pub fn deploy_records_dir() -> PathBuf {
    ktwin_config::state::state_dir().join("deploys")
}

pub struct Deploy {
    pub prune: bool,
    pub prune_volumes: bool,
    pub force_conflicts: bool,
    pub timeout: Duration,
}

/// Deploy rendered documents to the guarded context; progress on stderr.
pub async fn deploy(
    plan: &Plan,
    g: &GuardedContext,
    docs: &[Value],
    d: &Deploy,
) -> Result<Report, Failure> {
    let p = plan.project();
    let prefix = plan.registry.prefix();
    let o = Options {
        project: &p.name,
        env: &plan.env,
        prune: d.prune,
        prune_volumes: d.prune_volumes,
        announce_prune: !plan.local(),
        force_conflicts: d.force_conflicts,
        timeout: d.timeout,
        registry_prefix: Some(prefix),
        state_file: Some(deploy_record(&p.name, &plan.env)),
        report: &printer::event,
    };
    printer::err(&format!(
        "deploying {} object(s) of {} to {}",
        docs.len(),
        plan.env,
        g.describe()
    ));
    let client = connect(g).await.map_err(kube_failure)?;
    let mut disc = Discovery::new(client);
    kube_deploy(&mut disc, docs, &o).await.map_err(kube_failure)
}

pub fn summary(r: &Report) -> String {
    let count = |a: Action| r.applied.iter().filter(|x| x.action == a).count();
    format!(
        "deployed: {} created, {} configured, {} unchanged, {} pruned; {} rolled out",
        count(Action::Created),
        count(Action::Configured),
        count(Action::Unchanged),
        r.pruned.len(),
        r.rolled_out.len()
    )
}
