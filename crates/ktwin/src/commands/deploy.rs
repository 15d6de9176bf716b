//! `ktwin deploy`, `status`, `heal`, `logs`, `restart`: the twin through the Kubernetes API.

use std::time::Duration;

use ktwin_config::{Loaded, LOCAL_ENV};
use ktwin_kube::deploy::{deploy, Options, Report};
use ktwin_kube::status::{CheckResult, NodeStatus, NodeWant, WorkloadStatus};
use ktwin_kube::{block_on, connect, Discovery, GuardedContext, KubeError};
use ktwin_manifest::render_env;
use serde::Serialize;
use serde_json::Value;

use crate::cli::{Cli, DeployArgs, HealArgs, LogsArgs, RestartArgs, StatusArgs, StatusFormat};
use crate::guarded::{guarded, kube_failure, Intent};
use crate::kustomize::ExternalKustomize;
use crate::printer;
use crate::report::{plain, render_failure, Failure};

pub struct Deploy {
    pub env: String,
    pub context: GuardedContext,
    pub prune: bool,
    pub prune_volumes: bool,
    pub force_conflicts: bool,
    pub timeout: Duration,
}

/// Deploy one environment's rendered and adapted documents; prints progress on stderr.
pub fn deploy_docs(loaded: &Loaded, d: &Deploy, docs: Vec<Value>) -> Result<Report, Failure> {
    let p = &loaded.project;
    let say = |s: &str| printer::err(s);
    let state = deploy_record(&p.name, &d.env);
    let o = Options {
        project: &p.name,
        env: &d.env,
        prune: d.prune,
        prune_volumes: d.prune_volumes,
        announce_prune: d.env != LOCAL_ENV,
        force_conflicts: d.force_conflicts,
        timeout: d.timeout,
        registry_prefix: Some(registry_prefix(p)),
        state_file: Some(state),
        say: &say,
    };
    printer::err(&format!(
        "deploying {} object(s) of {} to {}",
        docs.len(),
        d.env,
        d.context.describe()
    ));
    block_on(async {
        let client = connect(&d.context).await?;
        let mut disc = Discovery::new(client);
        deploy(&mut disc, &docs, &o).await
    })
    .map_err(kube_failure)
}

/// Where a deploy of `project`'s `env` records what it applied (kinds, images).
pub fn deploy_record(project: &str, env: &str) -> std::path::PathBuf {
    deploy_records_dir().join(format!("{project}-{env}.deploy.json"))
}

pub fn deploy_records_dir() -> std::path::PathBuf {
    ktwin_config::state::state_dir().join("deploys")
}

pub fn summary(r: &Report) -> String {
    let count = |a: &str| r.applied.iter().filter(|x| x.action == a).count();
    format!(
        "deployed: {} created, {} configured, {} unchanged, {} pruned; {} rolled out",
        count("created"),
        count("configured"),
        count("unchanged"),
        r.pruned.len(),
        r.rolled_out.len()
    )
}

pub fn run(cli: &Cli, a: &DeployArgs) -> Result<u8, Failure> {
    let loaded = super::load_project(cli)?;
    // Rendered first: a broken manifest fails before any cluster is contacted.
    let docs = rendered(&loaded, &a.env)?;
    let context = guarded(
        cli,
        &loaded,
        &a.env,
        a.context.as_deref(),
        Intent::Write {
            accept_new_cluster: a.accept_new_cluster,
        },
    )?;
    let prune = if a.prune {
        true
    } else if a.no_prune {
        false
    } else {
        a.env == LOCAL_ENV
    };
    let r = deploy_docs(
        &loaded,
        &Deploy {
            env: a.env.clone(),
            context,
            prune,
            prune_volumes: a.prune_volumes,
            force_conflicts: a.force_conflicts,
            timeout: a.timeout,
        },
        docs,
    )?;
    match a.output {
        StatusFormat::Json => printer::out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&r).unwrap_or_default()
        )),
        StatusFormat::Text => printer::err(&summary(&r)),
    }
    Ok(0)
}

/// What every node of the twin must carry, from ktwin.yaml's pools.
pub fn node_wants(p: &ktwin_config::Project) -> Vec<NodeWant> {
    let prov = ktwin_cluster::provider_for(p.cluster.provider);
    ktwin_cluster::up::expected_nodes(p, prov.as_ref())
}

/// How images from ktwin's registry are named on the host and in the nodes.
fn registry_prefix(p: &ktwin_config::Project) -> String {
    format!("localhost:{}/", p.registry.host_port)
}

pub fn single_node(p: &ktwin_config::Project) -> bool {
    p.cluster.servers <= 1 && p.cluster.agents.iter().map(|a| a.count).sum::<u32>() == 0
}

pub fn rendered(loaded: &Loaded, env: &str) -> Result<Vec<Value>, Failure> {
    let r = render_env(loaded, env, &ExternalKustomize).map_err(render_failure)?;
    Ok(r.docs.into_iter().map(|d| d.value).collect())
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RegistryStatus {
    name: String,
    running: bool,
    reachable: bool,
    on_cluster_network: bool,
    /// No pod is failing to pull one of its images.
    pulls: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusReport {
    env: String,
    context: String,
    healthy: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_error: Option<String>,
    nodes: Vec<NodeStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    registry: Option<RegistryStatus>,
    workloads: Vec<WorkloadStatus>,
    health: Vec<CheckResult>,
}

fn registry_status(cli: &Cli, p: &ktwin_config::Project, pull_failing: bool) -> RegistryStatus {
    use ktwin_engine::registry::{Observed, Registry, RegistrySpec};
    let name = p.registry.name.clone();
    let Ok(eng) = super::registry::engine(cli) else {
        return RegistryStatus {
            name,
            running: false,
            reachable: false,
            on_cluster_network: false,
            pulls: !pull_failing,
        };
    };
    let reg = Registry {
        engine: &eng,
        spec: RegistrySpec::from_config(&p.registry),
    };
    let running = matches!(reg.observe(), Ok(Observed::Present { running: true, .. }));
    let prov = ktwin_cluster::provider_for(p.cluster.provider);
    let say = |_: &str| {};
    let probe = ktwin_cluster::up::Exec {
        dry_run: true,
        say: &say,
    };
    let on_net = ktwin_cluster::up::registry_attached(p, prov.as_ref(), &eng, &probe);
    RegistryStatus {
        running,
        reachable: running && reg.api().healthy(),
        on_cluster_network: on_net,
        pulls: !pull_failing,
        name,
    }
}

pub fn status(cli: &Cli, a: &StatusArgs) -> Result<u8, Failure> {
    let loaded = super::load_project(cli)?;
    let p = &loaded.project;
    let docs = rendered(&loaded, &a.env)?;
    let local = a.env == LOCAL_ENV;
    let wants = if local { node_wants(p) } else { vec![] };
    let prefix = registry_prefix(p);
    // A twin that is down is a status, not an error: its report says why.
    let (context, observed) =
        match guarded(cli, &loaded, &a.env, a.context.as_deref(), Intent::Read) {
            Ok(g) => {
                let observed = block_on(async {
                    let client = connect(&g).await?;
                    let mut disc = Discovery::new(client);
                    let nodes = ktwin_kube::status::nodes(&mut disc, &wants).await?;
                    let workloads =
                        ktwin_kube::status::workloads(&mut disc, &docs, Some(&prefix)).await?;
                    Ok::<_, KubeError>((nodes, workloads))
                })
                .map_err(|e| e.to_string());
                (Some(g), observed)
            }
            Err(f @ Failure::Input(_)) => return Err(f),
            Err(f) => (None, Err(f.message())),
        };
    let (nodes, workloads, api_error) = match observed {
        Ok((n, w)) => (n, w, None),
        Err(e) => (vec![], vec![], Some(e)),
    };
    let context_name = match &context {
        Some(g) => g.describe(),
        None => crate::guarded::allowed(&loaded, &a.env, a.context.as_deref())?,
    };
    let env = ktwin_manifest::pipeline::environment(&loaded, &a.env).map_err(render_failure)?;
    let health: Vec<CheckResult> = env
        .health
        .iter()
        .map(|c| ktwin_kube::status::run_check(c, context.as_ref(), env.namespace.as_deref()))
        .collect();
    let pull_failing = workloads
        .iter()
        .flat_map(|w| &w.problems)
        .any(|l| l.contains("cannot pull") && l.contains(&prefix));
    let registry = local.then(|| registry_status(cli, p, pull_failing));
    let healthy = api_error.is_none()
        && nodes
            .iter()
            .all(|n| n.ready && !n.cordoned && n.drift.is_empty())
        && registry
            .as_ref()
            .is_none_or(|r| r.running && r.reachable && r.on_cluster_network && r.pulls)
        && workloads
            .iter()
            .all(|w| w.rolled_out && w.ready >= w.desired)
        && health.iter().all(|h| h.ok);
    let report = StatusReport {
        env: a.env.clone(),
        context: context_name,
        healthy,
        api_error,
        nodes,
        registry,
        workloads,
        health,
    };
    match a.output {
        StatusFormat::Json => printer::out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        )),
        StatusFormat::Text => printer::out(&status_text(&report)),
    }
    Ok(u8::from(!healthy))
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "FAIL"
    }
}

fn status_text(r: &StatusReport) -> String {
    let mut out = format!("environment {} · context {}\n", r.env, r.context);
    if let Some(e) = &r.api_error {
        out.push_str(&format!(
            "\nAPI server: FAIL {e}\n  help: `ktwin heal` restarts a stopped twin\n"
        ));
    }
    if !r.nodes.is_empty() {
        let mut t = printer::table(&["node", "pool", "ready", "state"]);
        for n in &r.nodes {
            let mut state = n.drift.join("; ");
            if n.cordoned {
                state = format!("cordoned {state}");
            }
            t.add_row(vec![
                n.name.clone(),
                n.pool.clone().unwrap_or_else(|| "-".into()),
                mark(n.ready).into(),
                if state.trim().is_empty() {
                    "ok".into()
                } else {
                    state.trim().to_string()
                },
            ]);
        }
        out.push_str(&format!("\nnodes\n{t}\n"));
    }
    if let Some(g) = &r.registry {
        out.push_str(&format!(
            "\nregistry {}: running {} · reachable {} · on cluster network {} · pulls {}\n",
            g.name,
            mark(g.running),
            mark(g.reachable),
            mark(g.on_cluster_network),
            mark(g.pulls)
        ));
    }
    if !r.workloads.is_empty() {
        let mut t = printer::table(&["workload", "ready", "restarts", "age", "rollout"]);
        for w in &r.workloads {
            t.add_row(vec![
                w.object.clone(),
                format!("{}/{}", w.ready, w.desired),
                w.restarts.to_string(),
                w.age.clone(),
                if w.rolled_out {
                    "done".into()
                } else {
                    "in progress".into()
                },
            ]);
        }
        out.push_str(&format!("\nworkloads\n{t}\n"));
        for w in r.workloads.iter().filter(|w| !w.problems.is_empty()) {
            out.push_str(&format!("{}:\n", w.object));
            for l in &w.problems {
                out.push_str(&format!("{l}\n"));
            }
        }
    }
    if !r.health.is_empty() {
        out.push_str("\nhealth checks\n");
        for h in &r.health {
            out.push_str(&format!(
                "  {} {:<16} {:>7.1} ms  {}\n",
                mark(h.ok),
                h.name,
                h.latency_ms,
                h.detail
            ));
        }
    }
    out.push_str(&format!(
        "\n{}\n",
        if r.healthy { "healthy" } else { "UNHEALTHY" }
    ));
    out
}

pub fn heal(cli: &Cli, a: &HealArgs) -> Result<u8, Failure> {
    let loaded = super::load_project(cli)?;
    let p = &loaded.project;
    crate::guarded::allowed(&loaded, LOCAL_ENV, None)?;
    let eng = super::registry::engine(cli)?;
    let say = |s: &str| printer::err(s);
    let x = ktwin_cluster::up::Exec {
        dry_run: a.dry_run,
        say: &say,
    };
    let engine_half = ktwin_cluster::heal::heal_engine(p, &eng, &x)
        .map_err(|e| Failure::Operation(vec![plain(e.to_string(), e.help())]))?;
    let mut fixed = engine_half.fixed.clone();
    if !engine_half.unfixable.is_empty() {
        for u in &engine_half.unfixable {
            printer::err(&format!("cannot heal: {u}"));
        }
        return Ok(1);
    }
    let wants = node_wants(p);
    let configmap = ktwin_cluster::registry_wiring::kep1755_configmap(&p.registry);
    let docs = match p.environment(LOCAL_ENV) {
        Some(_) => rendered(&loaded, LOCAL_ENV)?,
        None => vec![],
    };
    let prefix = registry_prefix(p);
    let engine_changed = !engine_half.fixed.is_empty() && !a.dry_run;
    // After the engine half: the provider reports the kubeconfig of a running cluster.
    let context = guarded(
        cli,
        &loaded,
        LOCAL_ENV,
        None,
        Intent::Write {
            accept_new_cluster: false,
        },
    )?;
    printer::err(&format!("healing the twin at {}", context.describe()));
    let still = block_on(async {
        let client = connect(&context).await?;
        if engine_changed {
            ktwin_kube::wait_for_api(&client, context.context(), Duration::from_secs(180), &say)
                .await?;
        }
        let o = ktwin_kube::heal::Options {
            dry_run: a.dry_run,
            nodes: &wants,
            single_node: single_node(p),
            configmap,
            say: &say,
        };
        fixed.extend(ktwin_kube::heal::heal_api(&client, &o).await?);
        let mut disc = Discovery::new(client);
        let w = ktwin_kube::status::workloads(&mut disc, &docs, Some(&prefix)).await?;
        Ok::<_, KubeError>(w)
    })
    .map_err(kube_failure)?;
    if fixed.is_empty() {
        printer::err("nothing to heal");
    } else {
        printer::err(&format!(
            "{} {} fix(es)",
            if a.dry_run { "would make" } else { "made" },
            fixed.len()
        ));
    }
    let unhealthy: Vec<&WorkloadStatus> = still
        .iter()
        .filter(|w| !w.rolled_out || w.ready < w.desired)
        .collect();
    if unhealthy.is_empty() {
        return Ok(0);
    }
    printer::err("still unhealthy:");
    for w in unhealthy {
        printer::err(&format!("{}: {}/{} ready", w.object, w.ready, w.desired));
        for l in &w.problems {
            printer::err(l);
        }
    }
    Ok(1)
}

pub fn logs(cli: &Cli, a: &LogsArgs) -> Result<u8, Failure> {
    let loaded = super::load_project(cli)?;
    crate::guarded::allowed(&loaded, &a.env, a.context.as_deref())?;
    let docs = rendered(&loaded, &a.env)?;
    let picked = ktwin_kube::logs::pick(&docs, a.workload.as_deref())
        .map_err(|e| Failure::input(e.to_string(), e.help()))?;
    let context = guarded(cli, &loaded, &a.env, a.context.as_deref(), Intent::Read)?;
    let colour = printer::stdout_is_tty();
    let line = |s: &ktwin_kube::logs::Source, l: &str| {
        let prefix = format!("{}/{}", s.pod, s.container);
        let text = if colour {
            format!("\x1b[{}m{prefix}\x1b[0m | {l}\n", 31 + (s.pod_index % 6))
        } else {
            format!("{prefix} | {l}\n")
        };
        printer::out(&text);
    };
    block_on(async {
        let client = connect(&context).await?;
        let srcs = ktwin_kube::logs::sources(&client, &picked).await?;
        if srcs.is_empty() {
            printer::err("no pods yet");
        }
        let since = a.since.map(|d| d.as_secs() as i64);
        ktwin_kube::logs::stream(&client, &srcs, a.follow, since, &line).await
    })
    .map_err(kube_failure)?;
    Ok(0)
}

pub fn restart(cli: &Cli, a: &RestartArgs) -> Result<u8, Failure> {
    let loaded = super::load_project(cli)?;
    let p = &loaded.project;
    crate::guarded::allowed(&loaded, &a.env, a.context.as_deref())?;
    let docs = rendered(&loaded, &a.env)?;
    let picked = ktwin_kube::logs::pick(&docs, Some(&a.workload))
        .map_err(|e| Failure::input(e.to_string(), e.help()))?;
    if picked.len() > 1 {
        return Err(Failure::input(
            format!("`{}` names {} workloads", a.workload, picked.len()),
            Some(format!(
                "say which: {}",
                picked
                    .iter()
                    .map(|w| format!(
                        "{}/{}",
                        w["kind"].as_str().unwrap_or("").to_lowercase(),
                        w["metadata"]["name"].as_str().unwrap_or("")
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        ));
    }
    let w = picked[0];
    let say = |s: &str| printer::err(s);
    let o = Options {
        project: &p.name,
        env: &a.env,
        prune: false,
        prune_volumes: false,
        announce_prune: false,
        force_conflicts: false,
        timeout: a.timeout,
        registry_prefix: Some(registry_prefix(p)),
        state_file: None,
        say: &say,
    };
    let context = guarded(
        cli,
        &loaded,
        &a.env,
        a.context.as_deref(),
        Intent::Write {
            accept_new_cluster: false,
        },
    )?;
    printer::err(&format!(
        "restarting {} in {} at {}",
        ktwin_kube::describe(w),
        a.env,
        context.describe()
    ));
    let at = ktwin_kube::now_rfc3339();
    block_on(async {
        let client = connect(&context).await?;
        let mut disc = Discovery::new(client);
        ktwin_kube::logs::restart(&mut disc, w, &at).await?;
        say(&format!("{}: restart requested", ktwin_kube::describe(w)));
        ktwin_kube::deploy::wait_rollouts(&mut disc, &[w], &o).await
    })
    .map_err(kube_failure)?;
    Ok(0)
}
