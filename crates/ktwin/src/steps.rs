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

use ktwin_cluster::up::{up_cluster, ClusterAction, Exec};
use ktwin_engine::registry::{plan as registry_plan, Plan as RegistryPlan, Registry, UpAction};
use ktwin_kube::guard::Intent;
use ktwin_kube::KubeError;

use crate::plan::{kube_failure, up_failure, Plan};
use crate::printer;
use crate::report::{plain, Failure};

/// Independent images build in parallel, at most this many at once.
const PARALLEL: usize = 2;

/// What a build of several images gave: the reports of those that built (or were up to
/// date), and the failure of those that did not.
pub struct Built {
    pub reports: Vec<BuildReport>,
    pub failure: Option<Failure>,
    /// Images whose build `stop` ended (stale: their inputs changed while they built).
    pub cancelled: Vec<String>,
}

/// Build and push `images` (at their planned tags), saying each outcome on stderr.
/// With `defer_engine_push` (up, dev), an engine push that would compete with the nodes'
/// pull is left in the reports for [`start_engine_pushes`] after the rollout.
pub fn build_images(
    plan: &Plan,
    eng: &Engine,
    images: &[&ImagePlan],
    verbose: bool,
    stop: &(dyn Fn() -> bool + Sync),
    defer_engine_push: bool,
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
                        let r = build_one(
                            eng,
                            i,
                            registry,
                            siblings,
                            &|phase, n| bar.update(phase, n),
                            stop,
                            defer_engine_push,
                        );
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
                        say_background(image, b);
                    }
                }
                Err(_) => {}
            }
        }
        results.extend(done);
    }
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    let mut cancelled = Vec::new();
    for (image, r) in results {
        match r {
            Ok(rep) => reports.push(rep),
            Err(BuildError::Cancelled { .. }) => cancelled.push(image),
            Err(e) => errors.push(plain(e.to_string(), e.help())),
        }
    }
    Ok(Built {
        reports,
        failure: (!errors.is_empty()).then_some(Failure::Operation(errors)),
        cancelled,
    })
}

fn say_background(image: &str, b: &ktwin_engine::build::Background) {
    printer::err(&format!(
        "{image}: the engine is pushing it once more in the background (pid {}, log {}) so that later changes move only new layers",
        b.pid,
        b.log.display()
    ));
}

/// The engine pushes `build_images` deferred, started now that the nodes have pulled.
pub fn start_engine_pushes(plan: &Plan, eng: &Engine, reports: &[BuildReport]) {
    for r in reports {
        if let Some(p) = &r.pending_engine_push {
            if let Some(b) = ktwin_engine::build::start_pending(eng, &plan.registry, p) {
                say_background(&r.image, &b);
            }
        }
    }
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
        previous: None,
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

/// How `up` (and `dev`, before its first cycle) reconciles the twin.
pub struct UpTwin<'a> {
    pub dry_run: bool,
    pub recreate: bool,
    pub context: Option<&'a str>,
}

/// The registry up, the cluster created or reconciled, and — unless a dry run — the API half
/// wired through the provider's own kubeconfig (KEP-1755 ConfigMap, node labels and taints).
/// Returns the guarded context to write to (`None` on a dry run).
pub async fn up_twin(
    plan: &mut Plan,
    eng: &Engine,
    u: &UpTwin<'_>,
) -> Result<Option<GuardedContext>, Failure> {
    let a = u;
    let x = Exec {
        dry_run: a.dry_run,
        report: &printer::event,
    };
    if a.dry_run {
        printer::err("dry run: read-only probes run; nothing is created, changed or deleted");
    }
    let reg = Registry {
        engine: eng,
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
    let outcome = up_cluster(plan.project(), eng, a.context, a.recreate, &x).map_err(up_failure)?;
    let action = outcome.action.clone();
    let name = plan.naming.cluster.clone();
    printer::err(&match &action {
        ClusterAction::Created => format!("cluster {name}: created"),
        ClusterAction::Recreated(d) => format!("cluster {name}: recreated ({})", d.join("; ")),
        ClusterAction::UpToDate => format!("cluster {name}: up to date"),
        ClusterAction::FixedInPlace(d) => {
            format!("cluster {name}: fixed in place ({})", d.join("; "))
        }
    });
    if a.dry_run {
        for (node, _) in &outcome.removals {
            printer::err(&format!(
                "would drain node {node} (cordon, evict its pods), then delete it"
            ));
        }
        return Ok(None);
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
    let checked = async {
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
        if plan.project().cluster.persistent_volumes {
            let class = ktwin_cluster::registry_wiring::persistent_storage_class();
            ktwin_kube::heal::ensure_storage_class(&client, &class, false, &printer::event).await?;
        }
        // Agents removed live, newest first: each drained first (nothing is deleted if a
        // drain fails), and recorded as gone once deleted, so a later failure resumes.
        for (node, argv) in &outcome.removals {
            ktwin_kube::heal::drain_node(&client, node, DRAIN_TIMEOUT, &printer::event).await?;
            ktwin_cluster::up::remove_agent(plan.project(), eng, node, argv, &x).map_err(|e| {
                KubeError::Api {
                    object: format!("node {node}"),
                    message: e.to_string(),
                }
            })?;
            ktwin_kube::heal::delete_node(&client, node).await?;
            ktwin_cluster::up::record_agent_removed(plan.project(), node, &x).map_err(|e| {
                KubeError::Api {
                    object: "the cluster's record".into(),
                    message: e.to_string(),
                }
            })?;
        }
        if !outcome.removals.is_empty() {
            ktwin_cluster::up::finish_removals(plan.project(), &x).map_err(|e| KubeError::Api {
                object: "the cluster's record".into(),
                message: e.to_string(),
            })?;
        }
        // Agents added or removed live: the names the cluster's record now holds.
        let nodes = plan.naming.nodes_named(
            plan.project(),
            &ktwin_cluster::up::agent_names(plan.project()),
        );
        let n = ktwin_kube::heal::ensure_nodes(
            &client,
            &nodes,
            plan.single_node,
            false,
            &printer::event,
        )
        .await?;
        Ok::<_, KubeError>((n.missing, nodes))
    }
    .await
    .map_err(kube_failure)?;
    let (missing, nodes) = checked;
    plan.nodes = nodes;
    if !missing.is_empty() {
        return Err(Failure::Operation(vec![plain(
            format!(
                "nodes ktwin.yaml declares are not in the cluster: {}",
                missing.join(", ")
            ),
            Some("`ktwin heal` starts stopped node containers; `ktwin up --recreate` rebuilds the cluster".into()),
        )]));
    }
    Ok(Some(g))
}

/// The longest `up` waits for one removed agent's pods to be evicted.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);
