//! k3d: `k3d.io/v1alpha5` Simple config. Pool labels and taints go to k3s on the agents of
//! each pool (`agent:<index>` in pool order); ports go through the load balancer; the
//! registry is wired as k3s mirrors.

use ktwin_config::{Project, Protocol};
use serde_json::{json, Value};

use ktwin_config::desired::RegistryAddr;
use ktwin_engine::EngineKind;

use crate::provider::{ClusterProvider, Version};
use crate::registry_wiring::k3s_registries_yaml;

#[derive(Debug, Clone, Copy)]
pub struct K3d;

/// `agent:<i>` filters of each pool, in pool order.
pub fn pool_filters(p: &Project) -> Vec<(String, Vec<String>)> {
    let mut idx = 0;
    p.cluster
        .agents
        .iter()
        .map(|a| {
            let f = (0..a.count)
                .map(|_| {
                    let s = format!("agent:{idx}");
                    idx += 1;
                    s
                })
                .collect();
            (a.name.clone(), f)
        })
        .collect()
}

/// `k3d node edit <serverlb> --port-add …` / `--port-delete …` for ports added to or removed
/// from `cluster.ports` (https://k3d.io/stable/usage/commands/k3d_node_edit; k3d refuses both
/// in one command, so each is its own). The format is the create config's.
pub fn port_edit_args(lb: &str, flag: &str, ports: &[String]) -> Vec<String> {
    let mut a = vec!["node".to_string(), "edit".to_string(), lb.to_string()];
    for p in ports {
        a.push(format!("--{flag}"));
        a.push(p.clone());
    }
    a
}

/// A port of `cluster.ports` as k3d writes it.
pub fn port_spec(m: &ktwin_config::model::Port) -> String {
    let proto = if m.protocol == Protocol::Udp {
        "/udp"
    } else {
        ""
    };
    format!("127.0.0.1:{}:{}{proto}", m.host_port, m.node_port)
}

impl ClusterProvider for K3d {
    fn tool(&self) -> &'static str {
        "k3d"
    }
    fn min_version(&self) -> (Version, &'static str) {
        (Version(5, 5, 0), "the k3d.io/v1alpha5 config format")
    }
    fn install_help(&self) -> &'static str {
        "Install k3d: https://k3d.io/#installation (e.g. `curl -s https://raw.githubusercontent.com/k3d-io/k3d/main/install.sh | bash`)."
    }
    fn parse_version(&self, output: &str) -> Option<Version> {
        Version::find(output, "k3d version")
    }

    fn render_config(&self, p: &Project) -> Value {
        let agents: u32 = p.cluster.agents.iter().map(|a| a.count).sum();
        let mut labels = Vec::new();
        let mut args = Vec::new();
        for (pool, filters) in p.cluster.agents.iter().zip(pool_filters(p)) {
            for (k, v) in &pool.labels {
                labels.push(json!({"label": format!("{k}={v}"), "nodeFilters": filters.1}));
            }
            for t in &pool.taints {
                args.push(json!({"arg": format!("--node-taint={t}"), "nodeFilters": filters.1}));
            }
        }
        let ports: Vec<Value> = p
            .cluster
            .ports
            .iter()
            .map(|m| json!({"port": port_spec(m), "nodeFilters": ["loadbalancer"]}))
            .collect();
        // cluster.k3sArgs: the servers' k3s (where --disable=traefik and the like act).
        for a in &p.cluster.k3s_args {
            args.push(json!({"arg": a, "nodeFilters": ["server:*"]}));
        }
        let mut k3s = serde_json::Map::new();
        if !args.is_empty() {
            k3s.insert("extraArgs".into(), Value::Array(args));
        }
        if !labels.is_empty() {
            k3s.insert("nodeLabels".into(), Value::Array(labels));
        }
        let mut cfg = json!({
            "apiVersion": "k3d.io/v1alpha5",
            "kind": "Simple",
            "metadata": {"name": p.cluster_name()},
            "servers": p.cluster.servers,
            "agents": agents,
        });
        if let Some(image) = ktwin_config::kube_version::node_image(p) {
            cfg["image"] = json!(image);
        }
        if !ports.is_empty() {
            cfg["ports"] = Value::Array(ports);
        }
        // Sync (mount mode): the project directory on every server and agent (never the
        // load balancer) at the same path, so a pod's hostPath under it works on any node.
        let mut filters = vec!["server:*"];
        if agents > 0 {
            filters.push("agent:*");
        }
        let mut volumes = Vec::new();
        if let Some(dir) = p.source_mount() {
            volumes.push(json!({
                "volume": format!("{}:{}", dir.display(), ktwin_config::SOURCE_MOUNT),
                "nodeFilters": filters,
            }));
        }
        // cluster.persistentVolumes: k3s's local-path storage on every node is the host's
        // volumes dir, so volume data outlives the node containers.
        if let Some(dir) = p.volumes_dir() {
            volumes.push(json!({
                "volume": format!(
                    "{}:{}",
                    dir.display(),
                    ktwin_config::provisioner_storage_path(ktwin_config::Provider::K3d)
                ),
                "nodeFilters": filters,
            }));
        }
        if !volumes.is_empty() {
            cfg["volumes"] = Value::Array(volumes);
        }
        cfg["options"] = json!({
            "k3s": k3s,
            "kubeconfig": {"updateDefaultKubeconfig": true, "switchCurrentContext": false}
        });
        cfg["registries"] = json!({"config": k3s_registries_yaml(&RegistryAddr::of(&p.registry))});
        cfg
    }

    fn create_args(&self, _p: &Project, config_path: &str) -> Vec<String> {
        vec![
            "cluster".into(),
            "create".into(),
            "--config".into(),
            config_path.into(),
        ]
    }
    fn delete_args(&self, cluster: &str) -> Vec<String> {
        vec!["cluster".into(), "delete".into(), cluster.into()]
    }
    fn kubeconfig_args(&self, cluster: &str) -> Vec<String> {
        vec!["kubeconfig".into(), "get".into(), cluster.into()]
    }
    fn list_args(&self) -> Vec<String> {
        vec!["cluster".into(), "list".into(), "-o".into(), "json".into()]
    }
    fn parse_list(&self, output: &str) -> Vec<String> {
        serde_json::from_str::<Value>(output)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect()
    }
    fn mirrors_per_node(&self) -> bool {
        false
    }
    fn engine_env(&self, _kind: EngineKind) -> Vec<(&'static str, &'static str)> {
        // k3d reaches Podman through the DOCKER_HOST the engine sets.
        vec![]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_order_gives_agent_indices() {
        let text = "apiVersion: ktwin.dev/v1alpha1\nkind: Project\nname: s\ncluster:\n  agents:\n    - {name: a}\n    - {name: b}\n    - {name: c}\n    - {name: lobsters, count: 2}\n";
        let l =
            ktwin_config::load::parse(std::path::Path::new("/x/ktwin.yaml"), text.into()).unwrap();
        let f = pool_filters(&l.project);
        assert_eq!(
            f[3],
            (
                "lobsters".to_string(),
                vec!["agent:3".to_string(), "agent:4".to_string()]
            )
        );
    }
}
