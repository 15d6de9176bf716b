//! `ktwin up` / `ktwin down` for the cluster, the engine and provider half: create it if
//! absent, compare the spec stored at creation with the desired one (report what needs a
//! recreate and do it only when asked), and wire the registry to the cluster network (and, on
//! kind, the nodes' mirror config). The API half (the KEP-1755 ConfigMap, node labels and
//! taints) is ktwin-kube's, reached through the guarded kubeconfig [`provider_kubeconfig`]
//! returns. Every command goes through [`Exec`], which in dry-run mode prints what it would
//! change and runs only read-only probes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ktwin_config::desired::{Naming, NodeRole, RegistryAddr};
use ktwin_config::event::{Event, Reporter};
use ktwin_config::state::StateError;
use ktwin_config::Project;
use ktwin_engine::engine::Engine;
use ktwin_engine::runner::{Cmd, RunError};
use serde_json::{json, Value};

use crate::guard::{guard, GuardError};
use crate::provider::{provider_for, to_yaml, ClusterProvider, VersionError};
use crate::registry_wiring::hosts_toml;

/// The part of ktwin.yaml a cluster is created from, stored at creation.
pub fn spec_of(p: &Project) -> Value {
    json!({
        "provider": p.cluster.provider.as_str(),
        "name": p.cluster_name(),
        "servers": p.cluster.servers.max(1),
        "agents": p.cluster.agents.iter().map(|a| json!({
            "name": a.name, "count": a.count, "labels": a.labels, "taints": a.taints,
        })).collect::<Vec<_>>(),
        "ports": p.cluster.ports.iter().map(|x| format!("127.0.0.1:{}->{}/{}", x.host_port, x.node_port, match x.protocol { ktwin_config::Protocol::Tcp => "TCP", ktwin_config::Protocol::Udp => "UDP" })).collect::<Vec<_>>(),
        "registry": format!("{}:{}", p.registry.name, p.registry.host_port),
        "sourceMount": p.source_mount().map(|d| d.display().to_string()),
        "kubernetesVersion": p.cluster.kubernetes_version,
        "nodeImage": ktwin_config::kube_version::node_image(p),
        "persistentVolumes": p.volumes_dir().map(|d| d.display().to_string()),
        "k3sArgs": p.cluster.k3s_args,
        "kubeadmConfigPatches": p.cluster.kubeadm_config_patches,
    })
}

/// Differences between the stored and the desired spec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drift {
    /// Only a new cluster can change these; each says why.
    pub recreate: Vec<String>,
    /// Fixed on the running cluster through the API (labels, taints).
    pub in_place: Vec<String>,
    /// Applied live through the provider, each with the argv (without the tool).
    pub live: Vec<(String, Vec<String>)>,
    /// Agents to remove live (k3d): drained through the API first, then deleted with the
    /// argv (without the tool). Each is the node's name (its container's).
    pub remove: Vec<(String, Vec<String>)>,
}

/// `127.0.0.1:8080->30080/TCP` (the stored form) → `127.0.0.1:8080:30080` (k3d's).
fn k3d_port(stored: &str) -> Option<String> {
    let (host, rest) = stored.split_once("->")?;
    let (node, proto) = rest.split_once('/')?;
    Some(match proto {
        "UDP" => format!("{host}:{node}/udp"),
        _ => format!("{host}:{node}"),
    })
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

fn shape(v: &Value) -> Vec<String> {
    v["agents"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| format!("{}×{}", a["name"].as_str().unwrap_or(""), a["count"]))
        .collect()
}

/// Pure: compare what the cluster was created with to what ktwin.yaml asks for now.
pub fn drift(stored: &Value, desired: &Value) -> Drift {
    let mut d = Drift::default();
    let mut recreate = |what: &str, a: String, b: String| {
        if a != b {
            d.recreate.push(format!("{what}: {a} → {b}"));
        }
    };
    recreate(
        "provider",
        stored["provider"].to_string(),
        desired["provider"].to_string(),
    );
    recreate(
        "servers",
        stored["servers"].to_string(),
        desired["servers"].to_string(),
    );
    recreate(
        "registry (mirrors are part of the node config)",
        stored["registry"].to_string(),
        desired["registry"].to_string(),
    );
    // A spec stored before sync existed has no such key: no mount either.
    let mount = |v: &Value| v["sourceMount"].as_str().unwrap_or("none").to_string();
    recreate(
        "project mount for sync (mounts are fixed at node create)",
        mount(stored),
        mount(desired),
    );
    // Ports: k3d's load balancer takes new and removed ports live (`k3d node edit
    // <serverlb> --port-add/--port-delete`); kind maps host ports only when it creates the
    // node containers.
    let (have, want) = (strings(&stored["ports"]), strings(&desired["ports"]));
    if have != want {
        let k3d = desired["provider"] == "k3d" && stored["provider"] == "k3d";
        let added: Vec<String> = want.iter().filter(|x| !have.contains(x)).cloned().collect();
        let removed: Vec<String> = have.iter().filter(|x| !want.contains(x)).cloned().collect();
        let lb = format!("k3d-{}-serverlb", desired["name"].as_str().unwrap_or(""));
        match (
            k3d,
            added
                .iter()
                .chain(&removed)
                .map(|x| k3d_port(x))
                .collect::<Option<Vec<_>>>(),
        ) {
            (true, Some(_)) => {
                let conv = |v: &[String]| v.iter().filter_map(|x| k3d_port(x)).collect::<Vec<_>>();
                // Deletes first: a host port moved to another nodePort must be free before
                // it is bound again (k3d does not check for a collision itself).
                if !removed.is_empty() {
                    d.live.push((
                        format!(
                            "ports removed from the load balancer: {}",
                            removed.join(", ")
                        ),
                        crate::k3d::port_edit_args(&lb, "port-delete", &conv(&removed)),
                    ));
                }
                if !added.is_empty() {
                    d.live.push((
                        format!("ports added on the load balancer: {}", added.join(", ")),
                        crate::k3d::port_edit_args(&lb, "port-add", &conv(&added)),
                    ));
                }
            }
            _ => d.recreate.push(format!(
                "ports: {} → {} (kind maps host ports only when it creates the nodes)",
                stored["ports"], desired["ports"]
            )),
        }
    }
    // A spec stored before these keys existed has none: the provider's defaults.
    let or_none = |v: &Value| {
        if v.is_null() {
            "default".to_string()
        } else {
            v.to_string()
        }
    };
    let mut fixed_at_create = |what: &str, key: &str, why: &str| {
        let empty = |v: &Value| v.is_null() || v.as_array().is_some_and(|a| a.is_empty());
        let (a, b) = (&stored[key], &desired[key]);
        if a != b && !(empty(a) && empty(b)) {
            d.recreate
                .push(format!("{what}: {} → {} ({why})", or_none(a), or_none(b)));
        }
    };
    fixed_at_create(
        "Kubernetes version",
        "nodeImage",
        "a node's image is fixed when it is created",
    );
    fixed_at_create(
        "persistent volumes (the host dir each node mounts)",
        "persistentVolumes",
        "mounts are fixed when the nodes are created",
    );
    fixed_at_create(
        "k3s arguments",
        "k3sArgs",
        "k3s reads them when the servers are created",
    );
    fixed_at_create(
        "kubeadm config patches",
        "kubeadmConfigPatches",
        "kubeadm applies them when kind creates the nodes",
    );
    agents_drift(stored, desired, &mut d);
    {
        let pools = |v: &Value| -> BTreeMap<String, (Value, Value)> {
            v["agents"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| {
                    (
                        a["name"].as_str().unwrap_or("").to_string(),
                        (a["labels"].clone(), a["taints"].clone()),
                    )
                })
                .collect()
        };
        let (s, w) = (pools(stored), pools(desired));
        for (name, (labels, taints)) in &w {
            if let Some((sl, st)) = s.get(name) {
                if sl != labels {
                    d.in_place
                        .push(format!("pool {name} labels: {sl} → {labels}"));
                }
                if st != taints {
                    d.in_place
                        .push(format!("pool {name} taints: {st} → {taints}"));
                }
            }
        }
    }
    d
}

/// Each agent's pool, in index order (what node `agent-<i>` belongs to).
fn agent_pools(v: &Value) -> Vec<&Value> {
    v["agents"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| std::iter::repeat_n(a, a["count"].as_u64().unwrap_or(0) as usize))
        .collect()
}

/// The container name of agent `i` k3d gives a node added with `k3d node create
/// <cluster>-agent-<i>`: it appends the replica index (`k3d-<NAME>-<replica>`, k3d's
/// cmd/node/nodeCreate.go).
pub fn live_agent_name(cluster: &str, i: usize) -> String {
    format!("k3d-{cluster}-agent-{i}-0")
}

/// Agents: on k3d, agents appended at the end of the pool order (more nodes in the last
/// pool, or new pools after the others) are added live with `k3d node create`, carrying
/// their pool's labels and taints; anything else renames nodes (agent `i` is the `i`-th
/// node in pool order) and needs a new cluster, as does every agent change on kind.
fn agents_drift(stored: &Value, desired: &Value, d: &mut Drift) {
    let (have, want) = (agent_pools(stored), agent_pools(desired));
    let name = |a: &&Value| a["name"].clone();
    let same = have.iter().map(name).eq(want.iter().map(name));
    if same {
        return;
    }
    let k3d = desired["provider"] == "k3d" && stored["provider"] == "k3d";
    let appended = want.len() > have.len()
        && have
            .iter()
            .map(name)
            .eq(want[..have.len()].iter().map(name));
    let change = format!(
        "agent pools: {} → {}",
        shape(stored).join(", "),
        shape(desired).join(", ")
    );
    if !k3d {
        d.recreate.push(format!(
            "{change} (kind creates nodes only with the cluster)"
        ));
        return;
    }
    let cluster = desired["name"].as_str().unwrap_or("");
    let removed_at_end = want.len() < have.len()
        && want
            .iter()
            .map(name)
            .eq(have[..want.len()].iter().map(name));
    if removed_at_end {
        // The last agents go, newest first: drained, then deleted (`k3d node delete`).
        let names = recorded_agent_names(stored, cluster);
        for i in (want.len()..have.len()).rev() {
            let node = names[i].clone();
            d.remove
                .push((node.clone(), vec!["node".into(), "delete".into(), node]));
        }
        return;
    }
    if !appended {
        d.recreate.push(format!(
            "{change} (k3d adds or removes nodes live only at the end of the pool order: agent names follow it)"
        ));
        return;
    }
    // k3d starts an added agent with an existing agent's command line, taints included
    // (pkg/client/node.go NodeAddToCluster); a taint of the new pool with the same key and
    // effect as one of those makes two such taints, which the API server refuses ("taints
    // must be unique by key and effect pair"), so the node never registers.
    let key = |t: &Value| {
        ktwin_config::names::parse_taint(t.as_str().unwrap_or(""))
            .ok()
            .map(|x| (x.key, x.effect))
    };
    let existing: Vec<&Value> = have
        .iter()
        .flat_map(|a| a["taints"].as_array().into_iter().flatten())
        .collect();
    for pool in want.iter().skip(have.len()) {
        for t in pool["taints"].as_array().into_iter().flatten() {
            if let Some(other) = existing
                .iter()
                .find(|o| o.as_str() != t.as_str() && key(o) == key(t))
            {
                d.recreate.push(format!(
                    "{change} (a node k3d adds starts with another agent's taints: {other} and {t} share key and effect, which the API server refuses)"
                ));
                return;
            }
        }
    }
    for (i, pool) in want.iter().enumerate().skip(have.len()) {
        let mut argv: Vec<String> = vec![
            "node".into(),
            "create".into(),
            format!("{cluster}-agent-{i}"),
            "--cluster".into(),
            cluster.into(),
            "--role".into(),
            "agent".into(),
            // k3d waits for the node to register; never forever.
            "--timeout=180s".into(),
        ];
        if let Some(l) = pool["labels"].as_object() {
            for (k, v) in l {
                argv.push(format!("--k3s-node-label={k}={}", v.as_str().unwrap_or("")));
            }
        }
        for t in pool["taints"].as_array().into_iter().flatten() {
            argv.push(format!(
                "--k3s-arg=--node-taint={}",
                t.as_str().unwrap_or("")
            ));
        }
        d.live.push((
            format!(
                "agent {} added to pool {}",
                live_agent_name(cluster, i),
                pool["name"].as_str().unwrap_or("")
            ),
            argv,
        ));
    }
}

/// Every agent's container name by index, from a stored spec: the names its record holds,
/// then those the provider gives at create (`k3d-<cluster>-agent-<i>`, `<cluster>-worker…`).
fn recorded_agent_names(spec: &Value, cluster: &str) -> Vec<String> {
    let naming = Naming {
        provider: if spec["provider"] == "kind" {
            ktwin_config::Provider::Kind
        } else {
            ktwin_config::Provider::K3d
        },
        cluster: cluster.to_string(),
    };
    let recorded: Vec<String> = spec["agentNames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    (0..agent_pools(spec).len())
        .map(|i| {
            recorded
                .get(i)
                .cloned()
                .unwrap_or_else(|| naming.agent_container(i as u32))
        })
        .collect()
}

/// The agent index a live `k3d node create <cluster>-agent-<i>` adds.
fn added_agent(argv: &[String]) -> Option<usize> {
    match argv {
        [a, b, n, ..] if a == "node" && b == "create" => n.rsplit_once("-agent-")?.1.parse().ok(),
        _ => None,
    }
}

/// The agents' container names the cluster's record holds, in pool order (empty without a
/// record, or for a cluster whose agents all have the names k3d gives at create).
pub fn agent_names(p: &Project) -> Vec<String> {
    stored_spec(p)
        .ok()
        .flatten()
        .and_then(|s| s["agentNames"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error(transparent)]
    Version(#[from] VersionError),
    #[error(transparent)]
    Guard(#[from] GuardError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("cluster `{name}` differs from ktwin.yaml in ways only a new cluster can change:\n{}", diffs.iter().map(|d| format!("  - {d}")).collect::<Vec<_>>().join("\n"))]
    NeedsRecreate { name: String, diffs: Vec<String> },
    #[error("cluster `{name}` exists but ktwin has no record of creating it")]
    Unmanaged { name: String },
    #[error("refusing to delete cluster `{name}`: ktwin has no record of creating it")]
    NotOurs { name: String, command: String },
    #[error(transparent)]
    State(#[from] StateError),
}

impl UpError {
    pub fn help(&self) -> Option<String> {
        match self {
            UpError::NeedsRecreate { .. } => Some("run `ktwin up --recreate` to delete and recreate the cluster (the registry and its images are kept)".into()),
            UpError::Unmanaged { .. } => Some("delete it yourself, or run `ktwin up --recreate` to replace it".into()),
            UpError::NotOurs { command, .. } => Some(format!("if it is yours to delete, delete it by hand: `{command}`")),
            UpError::Guard(g) => Some(g.help()),
            UpError::State(e) => Some(e.help()),
            _ => None,
        }
    }
    /// Input problems exit 2; the rest 1.
    pub fn is_input(&self) -> bool {
        matches!(self, UpError::Guard(_) | UpError::NotOurs { .. })
    }
}

/// Runs commands, or in dry-run reports those that would change something.
pub struct Exec<'a> {
    pub dry_run: bool,
    pub report: Reporter<'a>,
}

impl Exec<'_> {
    /// A read-only probe: always runs.
    pub fn probe(&self, c: &Cmd) -> Result<String, RunError> {
        c.run()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    }
    /// A change: reported, and run unless dry-run.
    pub fn change(&self, what: &str, c: &Cmd) -> Result<(), RunError> {
        (self.report)(Event::Command {
            what: what.into(),
            command: c.display(),
            stdin: c
                .stdin
                .as_ref()
                .map(|i| String::from_utf8_lossy(i).into_owned()),
            dry_run: self.dry_run,
        });
        if self.dry_run {
            return Ok(());
        }
        c.run().map(|_| ())
    }
    /// A state file written (reported only on a dry run, where it is not written).
    pub fn write(&self, path: &std::path::Path, content: &str) -> Result<(), UpError> {
        if self.dry_run {
            (self.report)(Event::File {
                path: path.to_path_buf(),
                content: content.into(),
                dry_run: true,
            });
            return Ok(());
        }
        Ok(ktwin_config::state::write_atomic(path, content.as_bytes())?)
    }
}

/// Where ktwin keeps what it created a cluster with.
pub fn state_file(p: &Project, what: &str) -> PathBuf {
    ktwin_config::contenttag::state_dir()
        .join("clusters")
        .join(format!(
            "{}-{}.{what}",
            p.cluster.provider.as_str(),
            p.cluster_name()
        ))
}

/// The provider tool as a command, with the engine's environment (Podman: kind's
/// experimental provider; k3d through Podman's DOCKER_HOST).
pub fn tool_cmd(prov: &dyn ClusterProvider, engine: &Engine, args: &[String]) -> Cmd {
    let mut c = engine.environ(Cmd::new(prov.tool()).args(args));
    for (k, v) in prov.engine_env(engine.kind) {
        c = c.env(k, v);
    }
    c
}

/// Check the provider tool is installed and new enough.
pub fn check_tool(prov: &dyn ClusterProvider, engine: &Engine) -> Result<(), UpError> {
    let out = match tool_cmd(prov, engine, &["version".to_string()]).run() {
        Ok(o) => Some(String::from_utf8_lossy(&o.stdout).into_owned()),
        Err(RunError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    prov.check_version(out.as_deref())?;
    Ok(())
}

/// Does the provider list the cluster?
pub fn exists(
    prov: &dyn ClusterProvider,
    engine: &Engine,
    name: &str,
    x: &Exec,
) -> Result<bool, UpError> {
    let out = x.probe(&tool_cmd(prov, engine, &prov.list_args()))?;
    Ok(prov.parse_list(&out).iter().any(|n| n == name))
}

/// What `up` did to the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterAction {
    Created,
    Recreated(Vec<String>),
    UpToDate,
    FixedInPlace(Vec<String>),
}

/// The kubeconfig the provider reports for the twin (`k3d kubeconfig get NAME`, `kind get
/// kubeconfig --name NAME`): the only credentials the local environment is reached with.
pub fn provider_kubeconfig(p: &Project, engine: &Engine) -> Result<String, RunError> {
    let prov = provider_for(p.cluster.provider);
    let out = tool_cmd(
        prov.as_ref(),
        engine,
        &prov.kubeconfig_args(p.cluster_name()),
    )
    .run()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The spec stored when ktwin created the cluster; `None` when there is none (a damaged file
/// is an error, never "none").
pub fn stored_spec(p: &Project) -> Result<Option<Value>, UpError> {
    Ok(ktwin_config::state::read_json(&state_file(p, "spec.json"))?)
}

/// Everything `ktwin up` does to the cluster through the engine and the provider (the
/// registry comes before; the API half, images and the deploy after).
pub fn up_cluster(
    p: &Project,
    engine: &Engine,
    requested_context: Option<&str>,
    recreate: bool,
    x: &Exec,
) -> Result<UpOutcome, UpError> {
    guard(p, ktwin_config::LOCAL_ENV, requested_context)?;
    let prov = provider_for(p.cluster.provider);
    let prov = prov.as_ref();
    check_tool(prov, engine)?;
    let name = p.cluster_name().to_string();
    let desired = spec_of(p);
    let spec_path = state_file(p, "spec.json");
    let config_path = state_file(p, "config.yaml");
    let mut spec_text = serde_json::to_string_pretty(&desired).unwrap_or_default();
    let mut action = ClusterAction::UpToDate;
    let mut removals = Vec::new();
    let mut create = !exists(prov, engine, &name, x)?;
    if !create {
        match stored_spec(p)? {
            None if !recreate => return Err(UpError::Unmanaged { name }),
            None => {
                x.change(
                    "delete the cluster",
                    &tool_cmd(prov, engine, &prov.delete_args(&name)),
                )?;
                action = ClusterAction::Recreated(vec!["not created by ktwin".into()]);
                create = true;
            }
            Some(s) => {
                let d = drift(&s, &desired);
                if !d.recreate.is_empty() {
                    if !recreate {
                        return Err(UpError::NeedsRecreate {
                            name,
                            diffs: d.recreate,
                        });
                    }
                    x.change(
                        "delete the cluster",
                        &tool_cmd(prov, engine, &prov.delete_args(&name)),
                    )?;
                    action = ClusterAction::Recreated(d.recreate);
                    create = true;
                } else {
                    // Agents the record names keep their names; agents added now get the
                    // names k3d gives them.
                    let mut names = recorded_agent_names(&s, &name);
                    for (what, argv) in &d.live {
                        if let Some(i) = added_agent(argv) {
                            let container = live_agent_name(&name, i);
                            // A node an earlier, interrupted `up` already added is kept.
                            let there = x
                                .probe(&engine.cmd([
                                    "container",
                                    "inspect",
                                    "-f",
                                    "{{.Id}}",
                                    container.as_str(),
                                ]))
                                .is_ok();
                            if !there {
                                x.change(what, &tool_cmd(prov, engine, argv))?;
                            }
                            names.push(container);
                            // Recorded node by node: a failure later leaves a record of
                            // what exists.
                            let mut partial = s.clone();
                            partial["agentNames"] = json!(names);
                            x.write(
                                &spec_path,
                                &serde_json::to_string_pretty(&partial).unwrap_or_default(),
                            )?;
                        } else {
                            x.change(what, &tool_cmd(prov, engine, argv))?;
                        }
                    }
                    // Agents to remove are drained through the API first (the caller's
                    // part: `finish_removals`); until then the record keeps them.
                    if d.remove.is_empty() {
                        let mut full = desired.clone();
                        full["agentNames"] = json!(names);
                        spec_text = serde_json::to_string_pretty(&full).unwrap_or_default();
                    } else {
                        spec_text = serde_json::to_string_pretty(&s).unwrap_or_default();
                        removals = d.remove.clone();
                    }
                    let mut done: Vec<String> = d.live.into_iter().map(|(w, _)| w).collect();
                    done.extend(
                        d.remove
                            .iter()
                            .map(|(n, _)| format!("agent {n} to be drained and removed")),
                    );
                    done.extend(d.in_place);
                    if !done.is_empty() {
                        action = ClusterAction::FixedInPlace(done);
                    }
                }
            }
        }
    }
    if create {
        // The volumes dir is made by ktwin, so it is the user's (an engine would make a
        // missing bind-mount source as root).
        if let Some(dir) = p.volumes_dir() {
            if !x.dry_run {
                std::fs::create_dir_all(&dir).map_err(|e| StateError::Write {
                    path: dir.clone(),
                    source: e,
                })?;
            }
        }
        x.write(&config_path, &to_yaml(&prov.render_config(p)))?;
        x.change(
            "create the cluster",
            &tool_cmd(
                prov,
                engine,
                &prov.create_args(p, &config_path.display().to_string()),
            ),
        )?;
        // Recorded as soon as it exists: a later step that fails leaves a cluster ktwin
        // still owns, and the next `up` resumes the wiring.
        x.write(&spec_path, &spec_text)?;
        if action == ClusterAction::UpToDate {
            action = ClusterAction::Created;
        }
    }
    attach_registry(p, engine, x)?;
    write_mirrors(p, prov, engine, x, false)?;
    if !create {
        // Labels and taints changed in place are the spec from now on.
        x.write(&spec_path, &spec_text)?;
    }
    Ok(UpOutcome { action, removals })
}

/// What `up_cluster` did, and the agents the caller removes live: drain each through the
/// API, then [`remove_agent`] it, then [`finish_removals`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpOutcome {
    pub action: ClusterAction,
    /// (node name, `k3d node delete` argv without the tool), newest agent first.
    pub removals: Vec<(String, Vec<String>)>,
}

/// Delete one drained agent's node container through the provider, unless an interrupted
/// `up` already did.
pub fn remove_agent(
    p: &Project,
    engine: &Engine,
    node: &str,
    argv: &[String],
    x: &Exec,
) -> Result<(), UpError> {
    let prov = provider_for(p.cluster.provider);
    let there = x
        .probe(&engine.cmd(["container", "inspect", "-f", "{{.Id}}", node]))
        .is_ok();
    if there {
        x.change(
            &format!("delete the drained agent {node}"),
            &tool_cmd(prov.as_ref(), engine, argv),
        )?;
    }
    Ok(())
}

/// Record that agent `node` is gone (container and Node object): the cluster's record has
/// the agents before it only.
pub fn record_agent_removed(p: &Project, node: &str, x: &Exec) -> Result<(), UpError> {
    let Some(mut stored) = stored_spec(p)? else {
        return Ok(());
    };
    let names = recorded_agent_names(&stored, p.cluster_name());
    let Some(i) = names.iter().position(|n| n == node) else {
        return Ok(());
    };
    set_agent_count(&mut stored, i);
    stored["agentNames"] = json!(names[..i]);
    x.write(
        &state_file(p, "spec.json"),
        &serde_json::to_string_pretty(&stored).unwrap_or_default(),
    )
}

/// Keep the first `n` agents of a spec (in pool order), recounting the pools.
fn set_agent_count(spec: &mut Value, n: usize) {
    let mut left = n as u64;
    if let Some(pools) = spec["agents"].as_array_mut() {
        for pool in pools.iter_mut() {
            let c = pool["count"].as_u64().unwrap_or(0).min(left);
            pool["count"] = json!(c);
            left -= c;
        }
        pools.retain(|p| p["count"].as_u64().unwrap_or(0) > 0);
    }
}

/// Once every removed agent is gone: ktwin.yaml's spec is the cluster's, with the names of
/// the agents that remain.
pub fn finish_removals(p: &Project, x: &Exec) -> Result<(), UpError> {
    let Some(stored) = stored_spec(p)? else {
        return Ok(());
    };
    let mut full = spec_of(p);
    let keep = agent_pools(&full).len();
    let mut names = recorded_agent_names(&stored, p.cluster_name());
    names.truncate(keep);
    full["agentNames"] = json!(names);
    x.write(
        &state_file(p, "spec.json"),
        &serde_json::to_string_pretty(&full).unwrap_or_default(),
    )
}

/// Whether the registry container is attached to the cluster's network (a read-only probe).
pub fn registry_attached(p: &Project, engine: &Engine, x: &Exec) -> bool {
    let networks = x
        .probe(&engine.cmd([
            "inspect",
            "-f",
            "{{json .NetworkSettings.Networks}}",
            p.registry.name.as_str(),
        ]))
        .unwrap_or_default();
    serde_json::from_str::<Value>(networks.trim())
        .ok()
        .is_some_and(|v| v.get(Naming::of(p).network()).is_some())
}

/// Connect the registry container to the cluster network unless it is; true if it was not.
pub fn attach_registry(p: &Project, engine: &Engine, x: &Exec) -> Result<bool, UpError> {
    if registry_attached(p, engine, x) {
        return Ok(false);
    }
    let net = Naming::of(p).network();
    x.change(
        "connect the registry to the cluster network",
        &engine.cmd(["network", "connect", net.as_str(), p.registry.name.as_str()]),
    )?;
    Ok(true)
}

/// kind only: each node's containerd hosts.toml for every mirrored host. With
/// `check_first`, a file already holding the right content is left alone. Returns the
/// files written.
pub fn write_mirrors(
    p: &Project,
    prov: &dyn ClusterProvider,
    engine: &Engine,
    x: &Exec,
    check_first: bool,
) -> Result<Vec<String>, UpError> {
    let mut written = Vec::new();
    if !prov.mirrors_per_node() {
        return Ok(written);
    }
    let registry = RegistryAddr::of(&p.registry);
    for n in Naming::of(p)
        .nodes(p)
        .into_iter()
        .filter(|n| n.role != NodeRole::LoadBalancer)
    {
        for (host, endpoint) in registry.mirrors() {
            let dir = format!("/etc/containerd/certs.d/{host}");
            let file = format!("{dir}/hosts.toml");
            let content = hosts_toml(&host, &endpoint);
            if check_first {
                let have = x
                    .probe(&engine.cmd(["exec", n.container.as_str(), "cat", file.as_str()]))
                    .unwrap_or_default();
                if have == content {
                    continue;
                }
            }
            x.change(
                "create the mirror directory",
                &engine.cmd(["exec", n.container.as_str(), "mkdir", "-p", dir.as_str()]),
            )?;
            x.change(
                "write the mirror config",
                &engine
                    .cmd([
                        "exec",
                        "-i",
                        n.container.as_str(),
                        "cp",
                        "/dev/stdin",
                        file.as_str(),
                    ])
                    .stdin(content.into_bytes()),
            )?;
            written.push(format!("{}:{file}", n.container));
        }
    }
    Ok(written)
}

/// `ktwin down`: delete the cluster (and forget its stored spec).
pub fn down_cluster(p: &Project, engine: &Engine, x: &Exec) -> Result<bool, UpError> {
    let prov = provider_for(p.cluster.provider);
    let prov = prov.as_ref();
    check_tool(prov, engine)?;
    let name = p.cluster_name().to_string();
    if !exists(prov, engine, &name, x)? {
        return Ok(false);
    }
    // The same rule as `up`: a cluster ktwin did not create is not ktwin's to delete.
    if stored_spec(p)?.is_none() {
        let argv = prov.delete_args(&name);
        return Err(UpError::NotOurs {
            name,
            command: format!("{} {}", prov.tool(), argv.join(" ")),
        });
    }
    x.change(
        "delete the cluster",
        &tool_cmd(prov, engine, &prov.delete_args(&name)),
    )?;
    if !x.dry_run {
        let _ = std::fs::remove_file(state_file(p, "spec.json"));
        let _ = std::fs::remove_file(state_file(p, "config.yaml"));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(extra: &str) -> Project {
        let text = format!("apiVersion: ktwin.dev/v1alpha1\nkind: Project\nname: shop\n{extra}");
        ktwin_config::load::parse(std::path::Path::new("/x/ktwin.yaml"), text)
            .unwrap()
            .project
    }

    const POOLS: &str = "cluster:\n  agents:\n    - {name: web, count: 2, labels: {pool: web}, taints: ['dedicated=web:NoSchedule']}\n";

    #[test]
    fn drift_separates_recreate_from_in_place() {
        let a = spec_of(&project(POOLS));
        assert_eq!(drift(&a, &a), Drift::default());
        let more = spec_of(&project(&POOLS.replace("count: 2", "count: 3")));
        let d = drift(&a, &more);
        assert!(
            d.recreate.is_empty(),
            "the last pool grows live on k3d: {d:?}"
        );
        assert_eq!(d.live[0].1[..3], ["node", "create", "shop-agent-2"]);
        // A new pool whose taint shares key and effect with an existing agent's: the node k3d
        // adds would carry both and never register.
        let clash = spec_of(&project(&format!(
            "{POOLS}    - {{name: db, taints: ['dedicated=db:NoSchedule']}}\n"
        )));
        let d = drift(&a, &clash);
        assert!(d.live.is_empty(), "{d:?}");
        assert!(d.recreate[0].contains("share key and effect"), "{d:?}");
        let kind = |s: &str| {
            spec_of(&project(&format!(
                "cluster:\n  provider: kind\n{}",
                &s["cluster:\n".len()..]
            )))
        };
        let d = drift(&kind(POOLS), &kind(&POOLS.replace("count: 2", "count: 3")));
        assert_eq!(
            d.recreate,
            ["agent pools: web×2 → web×3 (kind creates nodes only with the cluster)"]
        );
        let relabel = spec_of(&project(&POOLS.replace("pool: web", "pool: front")));
        let d = drift(&a, &relabel);
        assert!(d.recreate.is_empty(), "{d:?}");
        assert_eq!(d.in_place.len(), 1);
        assert!(d.in_place[0].contains("front"), "{d:?}");
        let ports = spec_of(&project(&format!(
            "{POOLS}  ports: [{{hostPort: 8080, nodePort: 30080}}]\n"
        )));
        let d = drift(&a, &ports);
        assert!(d.recreate.is_empty(), "k3d adds ports live: {d:?}");
        assert_eq!(d.live.len(), 1);
    }

    /// Every change class, on both providers: what happens and why. Printed as the table the
    /// README's "What `up` changes live" section gives.
    #[test]
    #[allow(clippy::print_stderr)]
    fn drift_classes_per_provider() {
        let base = "cluster:\n  provider: PROV\n  agents:\n    - {name: web, labels: {pool: web}}\n  ports: [{hostPort: 8080, nodePort: 30080}]\n";
        let changes: &[(&str, &str, &str)] = &[
            ("port added", "ports: [{hostPort: 8080, nodePort: 30080}]", "ports: [{hostPort: 8080, nodePort: 30080}, {hostPort: 5353, nodePort: 30053, protocol: UDP}]"),
            ("port removed", "  ports: [{hostPort: 8080, nodePort: 30080}]\n", ""),
            ("pool labels", "labels: {pool: web}", "labels: {pool: front}"),
            ("agent added", "{name: web, labels: {pool: web}}", "{name: web, count: 2, labels: {pool: web}}"),
            ("pool added at end", "{name: web, labels: {pool: web}}", "{name: web, labels: {pool: web}}\n    - {name: gpu, labels: {pool: gpu}, taints: ['gpu=true:NoSchedule']}"),
            ("pool inserted first", "    - {name: web", "    - {name: db}\n    - {name: web"),
            ("agent removed", "{name: web, labels: {pool: web}}", "{name: web, count: 0, labels: {pool: web}}"),
            ("Kubernetes version", "  ports:", "  kubernetesVersion: v1.31\n  ports:"),
        ];
        let mut rows = vec![];
        for prov in ["k3d", "kind"] {
            let b = base.replace("PROV", prov);
            let stored = spec_of(&project(&b));
            for (what, from, to) in changes {
                let d = drift(&stored, &spec_of(&project(&b.replace(from, to))));
                let class = if !d.recreate.is_empty() {
                    format!("recreate: {}", d.recreate.join("; "))
                } else if !d.remove.is_empty() {
                    format!(
                        "live: drain, then {}",
                        d.remove
                            .iter()
                            .map(|(_, a)| format!("{prov} {}", a.join(" ")))
                            .collect::<Vec<_>>()
                            .join("; ")
                    )
                } else if !d.live.is_empty() {
                    format!(
                        "live: {}",
                        d.live
                            .iter()
                            .map(|(_, a)| format!("{prov} {}", a.join(" ")))
                            .collect::<Vec<_>>()
                            .join("; ")
                    )
                } else {
                    format!("in place: {}", d.in_place.join("; "))
                };
                rows.push(format!("{prov:5} {what:20} {class}"));
            }
        }
        eprintln!("{}", rows.join("\n"));
        let row = |p: &str, w: &str| {
            rows.iter()
                .find(|r| r.starts_with(&format!("{p:5} {w}")))
                .unwrap()
                .clone()
        };
        assert!(
            row("k3d", "port added").contains(
                "live: k3d node edit k3d-shop-serverlb --port-add 127.0.0.1:5353:30053/udp"
            ),
            "{rows:#?}"
        );
        assert!(
            row("k3d", "port removed").contains(
                "live: k3d node edit k3d-shop-serverlb --port-delete 127.0.0.1:8080:30080"
            ),
            "{rows:#?}"
        );
        assert!(
            row("kind", "port added").contains("recreate: ports:")
                && row("kind", "port added").contains("kind maps host ports only"),
            "{rows:#?}"
        );
        assert!(
            row("k3d", "pool labels").starts_with("k3d   pool labels          in place"),
            "{rows:#?}"
        );
        assert!(row("kind", "pool labels").contains("in place"), "{rows:#?}");
        assert!(row("k3d", "agent added ").contains(
            "live: k3d node create shop-agent-1 --cluster shop --role agent --timeout=180s --k3s-node-label=pool=web"
        ), "{rows:#?}");
        assert!(row("k3d", "pool added at end").contains(
            "live: k3d node create shop-agent-1 --cluster shop --role agent --timeout=180s --k3s-node-label=pool=gpu --k3s-arg=--node-taint=gpu=true:NoSchedule"
        ), "{rows:#?}");
        assert!(
            row("k3d", "pool inserted first").contains("only at the end of the pool order"),
            "{rows:#?}"
        );
        assert!(
            row("kind", "agent added ").contains(
                "recreate: agent pools: web×1 → web×2 (kind creates nodes only with the cluster)"
            ),
            "{rows:#?}"
        );
        assert!(
            row("k3d", "agent removed")
                .contains("live: drain, then k3d node delete k3d-shop-agent-0"),
            "{rows:#?}"
        );
        for p in ["k3d", "kind"] {
            assert!(
                row(p, "Kubernetes version").contains("fixed when it is created"),
                "{rows:#?}"
            );
        }
        assert!(
            row("k3d", "Kubernetes version").contains("rancher/k3s:v1.31.4-k3s1"),
            "{rows:#?}"
        );
        assert!(
            row("kind", "Kubernetes version").contains("kindest/node:v1.31.4"),
            "{rows:#?}"
        );
    }

    #[test]
    fn a_spec_stored_before_the_new_keys_is_no_drift() {
        let p = project(POOLS);
        let mut old = spec_of(&p);
        for k in [
            "kubernetesVersion",
            "nodeImage",
            "k3sArgs",
            "kubeadmConfigPatches",
            "persistentVolumes",
        ] {
            old.as_object_mut().unwrap().remove(k);
        }
        assert_eq!(drift(&old, &spec_of(&p)), Drift::default());
        let pinned = spec_of(&project(&format!("{POOLS}  kubernetesVersion: v1.31\n")));
        assert!(drift(&old, &pinned).recreate[0].starts_with("Kubernetes version: default → "));
    }
}
