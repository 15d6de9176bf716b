//! `ktwin status`: nodes, the registry, workloads and health checks at a glance.

use ktwin_config::HealthExec;
use ktwin_engine::registry::{Observed, Registry};
use ktwin_engine::{Cmd, RunError};
use ktwin_kube::guard::Intent;
use ktwin_kube::status::{CheckResult, NodeStatus, WorkloadStatus};
use ktwin_kube::{connect, Discovery, GuardedContext, KubeError};
use serde::Serialize;

use crate::cli::{Cli, StatusArgs, StatusFormat};
use crate::plan::Plan;
use crate::printer;
use crate::report::Failure;

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
    /// The server the guarded context leads to (absent when the twin could not be reached).
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<String>,
    healthy: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_error: Option<String>,
    nodes: Vec<NodeStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    registry: Option<RegistryStatus>,
    workloads: Vec<WorkloadStatus>,
    health: Vec<CheckResult>,
}

fn registry_status(plan: &Plan, pull_failing: bool) -> RegistryStatus {
    let name = plan.registry.name.clone();
    let Ok(eng) = plan.engine() else {
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
        spec: plan.registry_spec.clone(),
    };
    let running = matches!(reg.observe(), Ok(Observed::Present { running: true, .. }));
    let probe = ktwin_cluster::up::Exec {
        dry_run: true,
        report: &ktwin_config::event::quiet,
    };
    let on_net = ktwin_cluster::up::registry_attached(plan.project(), &eng, &probe);
    RegistryStatus {
        running,
        reachable: running && reg.api().healthy(),
        on_cluster_network: on_net,
        pulls: !pull_failing,
        name,
    }
}

/// An `exec` health check: `kubectl exec` through the runner, pointed at exactly the guarded
/// context (a private kubeconfig file holding only it), never at the user's kubeconfig.
fn exec_check(
    g: Option<&GuardedContext>,
    e: &HealthExec,
    namespace: Option<&str>,
) -> Result<String, String> {
    let g = g.ok_or_else(|| "the twin's API server is not reachable".to_string())?;
    let kc = g
        .kubeconfig_file()
        .map_err(|x| format!("cannot write a private kubeconfig: {x}"))?;
    let target = if e.workload.contains('/') {
        e.workload.clone()
    } else {
        format!("deploy/{}", e.workload)
    };
    let mut cmd = Cmd::new("kubectl").arg("--kubeconfig").arg(&kc.path).args([
        "--context",
        g.context(),
        "exec",
    ]);
    if let Some(ns) = namespace {
        cmd = cmd.args(["-n", ns]);
    }
    cmd = cmd.arg(&target);
    if let Some(c) = &e.container {
        cmd = cmd.args(["-c", c]);
    }
    cmd = cmd.arg("--").args(&e.command);
    match cmd.run() {
        Ok(_) => Ok(format!("`{}` exited 0", e.command.join(" "))),
        Err(RunError::Failed { status, stderr, .. }) => Err(format!(
            "`{}` in {target}: {status} {}",
            e.command.join(" "),
            stderr.lines().last().unwrap_or("")
        )),
        Err(x) => Err(x.to_string()),
    }
}

pub async fn run(cli: &Cli, a: &StatusArgs) -> Result<u8, Failure> {
    let mut plan = Plan::resolve(cli, &a.env, a.context.as_deref())?;
    let docs = plan.rendered()?;
    let wants = if plan.local() {
        plan.nodes.clone()
    } else {
        vec![]
    };
    let prefix = plan.registry.prefix();
    // A twin that is down is a status, not an error: its report says why.
    let (context, observed) = match plan.guard(Intent::Read).await {
        Ok(g) => {
            let g = g.clone();
            let observed = async {
                let client = connect(&g).await?;
                let mut disc = Discovery::new(client);
                let nodes = ktwin_kube::status::nodes(&mut disc, &wants).await?;
                let workloads =
                    ktwin_kube::status::workloads(&mut disc, &docs, Some(&prefix)).await?;
                Ok::<_, KubeError>((nodes, workloads))
            }
            .await
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
    let env = plan.environment().cloned().unwrap_or_default();
    let exec = |e: &HealthExec, ns: Option<&str>| exec_check(context.as_ref(), e, ns);
    let health: Vec<CheckResult> = env
        .health
        .iter()
        .map(|c| ktwin_kube::status::run_check(c, &exec, env.namespace.as_deref()))
        .collect();
    let pull_failing = workloads
        .iter()
        .flat_map(|w| &w.problems)
        .any(|l| l.contains("cannot pull") && l.contains(&prefix));
    let registry = plan.local().then(|| registry_status(&plan, pull_failing));
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
        context: plan.context.clone(),
        server: context.as_ref().map(|g| g.server().to_string()),
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
    let mut out = format!("environment {} · context {}", r.env, r.context);
    if let Some(s) = &r.server {
        out.push_str(&format!(" at {s}"));
    }
    out.push('\n');
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
