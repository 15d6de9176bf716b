//! kind: `kind.x-k8s.io/v1alpha4`. One worker per pool member with the pool's labels; taints
//! through kubeadm JoinConfiguration patches (kind has no taints field); port mappings on the
//! first control-plane node; containerd reads per-host mirror config from certs.d.

use ktwin_config::names::parse_taint;
use ktwin_config::{Project, Protocol};
use serde_json::{json, Value};

use ktwin_engine::EngineKind;

use crate::provider::{ClusterProvider, Version};

#[derive(Debug, Clone, Copy)]
pub struct Kind;

pub const CONTAINERD_PATCH: &str = "[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n";

fn taint_patch(taints: &[String]) -> String {
    let mut s = String::from("kind: JoinConfiguration\nnodeRegistration:\n  taints:\n");
    for t in taints.iter().filter_map(|t| parse_taint(t).ok()) {
        s.push_str(&format!("  - key: \"{}\"\n", t.key));
        if let Some(v) = &t.value {
            s.push_str(&format!("    value: \"{v}\"\n"));
        }
        s.push_str(&format!("    effect: \"{}\"\n", t.effect));
    }
    s
}

impl ClusterProvider for Kind {
    fn tool(&self) -> &'static str {
        "kind"
    }
    fn min_version(&self) -> (Version, &'static str) {
        (
            Version(0, 20, 0),
            "node images whose containerd reads registry mirrors from /etc/containerd/certs.d",
        )
    }
    fn install_help(&self) -> &'static str {
        "Install kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation (e.g. `go install sigs.k8s.io/kind@latest`)."
    }
    fn parse_version(&self, output: &str) -> Option<Version> {
        Version::find(output, "kind")
    }

    fn render_config(&self, p: &Project) -> Value {
        let mut nodes = Vec::new();
        for i in 0..p.cluster.servers.max(1) {
            let mut n = json!({"role": "control-plane"});
            if i == 0 && !p.cluster.ports.is_empty() {
                n["extraPortMappings"] = Value::Array(
                    p.cluster
                        .ports
                        .iter()
                        .map(|m| {
                            json!({
                                "containerPort": m.node_port,
                                "hostPort": m.host_port,
                                "listenAddress": "127.0.0.1",
                                "protocol": if m.protocol == Protocol::Udp { "UDP" } else { "TCP" },
                            })
                        })
                        .collect(),
                );
            }
            nodes.push(n);
        }
        for a in &p.cluster.agents {
            for _ in 0..a.count {
                let mut n = json!({"role": "worker"});
                if !a.labels.is_empty() {
                    n["labels"] = json!(a.labels);
                }
                if !a.taints.is_empty() {
                    n["kubeadmConfigPatches"] = json!([taint_patch(&a.taints)]);
                }
                nodes.push(n);
            }
        }
        // cluster.kubernetesVersion: every node runs the same node image.
        if let Some(image) = ktwin_config::kube_version::node_image(p) {
            for n in nodes.iter_mut() {
                n["image"] = json!(image);
            }
        }
        // Sync (mount mode): the project directory on every node at the same path.
        let mut mounts = Vec::new();
        if let Some(dir) = p.source_mount() {
            mounts.push(json!({
                "hostPath": dir.display().to_string(),
                "containerPath": ktwin_config::SOURCE_MOUNT,
            }));
        }
        // cluster.persistentVolumes: kind's local-path storage on every node is the host's
        // volumes dir.
        if let Some(dir) = p.volumes_dir() {
            mounts.push(json!({
                "hostPath": dir.display().to_string(),
                "containerPath": ktwin_config::provisioner_storage_path(ktwin_config::Provider::Kind),
            }));
        }
        if !mounts.is_empty() {
            for n in &mut nodes {
                n["extraMounts"] = Value::Array(mounts.clone());
            }
        }
        let mut cfg = json!({
            "kind": "Cluster",
            "apiVersion": "kind.x-k8s.io/v1alpha4",
            "name": p.cluster_name(),
            "containerdConfigPatches": [CONTAINERD_PATCH],
            "nodes": nodes,
        });
        // cluster.kubeadmConfigPatches: cluster-wide, as kind applies them to every node.
        if !p.cluster.kubeadm_config_patches.is_empty() {
            cfg["kubeadmConfigPatches"] = json!(p.cluster.kubeadm_config_patches);
        }
        cfg
    }

    fn create_args(&self, p: &Project, config_path: &str) -> Vec<String> {
        vec![
            "create".into(),
            "cluster".into(),
            "--name".into(),
            p.cluster_name().into(),
            "--config".into(),
            config_path.into(),
        ]
    }
    fn delete_args(&self, cluster: &str) -> Vec<String> {
        vec![
            "delete".into(),
            "cluster".into(),
            "--name".into(),
            cluster.into(),
        ]
    }
    fn kubeconfig_args(&self, cluster: &str) -> Vec<String> {
        vec![
            "get".into(),
            "kubeconfig".into(),
            "--name".into(),
            cluster.into(),
        ]
    }
    fn list_args(&self) -> Vec<String> {
        vec!["get".into(), "clusters".into()]
    }
    fn parse_list(&self, output: &str) -> Vec<String> {
        // `kind get clusters` prints one name per line, or "No kind clusters found." on stderr.
        output
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.contains(' '))
            .map(str::to_string)
            .collect()
    }
    fn mirrors_per_node(&self) -> bool {
        true
    }
    fn engine_env(&self, kind: EngineKind) -> Vec<(&'static str, &'static str)> {
        match kind {
            // https://kind.sigs.k8s.io/docs/user/rootless/ : kind picks Podman when asked.
            EngineKind::Podman => vec![("KIND_EXPERIMENTAL_PROVIDER", "podman")],
            EngineKind::Docker => vec![],
        }
    }
}
