//! What the twin should be, derived from ktwin.yaml and nothing else: pure values every crate
//! takes its facts from, so that no two places format the same name.
//!
//! - [`RegistryAddr`]: the registry as the host, the nodes and the API see it, and the one
//!   place an image reference into it is made.
//! - [`ContentTag`]: `ktwin-<16 hex>`, the tag a build's inputs hash to.
//! - [`Naming`]: what a provider calls the cluster's context, network, node containers and
//!   nodes.
//! - [`NodeSpec`]: one node container and what its Kubernetes node must carry, with one
//!   [`NodeSpec::diff`] against an observed node that status shows as drift, up and heal apply
//!   as a patch, and doctor --live reports.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

pub use crate::contenttag::ContentTag;
use crate::imageref::ImageRef;
use crate::model::{Project, Provider, Registry};
use crate::names::{parse_taint, Taint};

/// The one registry, as each side reaches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryAddr {
    /// Container name (and host name on the cluster network).
    pub name: String,
    /// Published on 127.0.0.1 at this port.
    pub host_port: u16,
}

/// The port the registry listens on inside its container.
pub const REGISTRY_CONTAINER_PORT: u16 = 5000;

impl RegistryAddr {
    pub fn of(r: &Registry) -> RegistryAddr {
        RegistryAddr {
            name: r.name.clone(),
            host_port: r.host_port,
        }
    }
    /// `localhost:<port>`: the name in rendered image refs, valid on the host and (through
    /// the mirror config) in every node.
    pub fn host(&self) -> String {
        format!("localhost:{}", self.host_port)
    }
    /// `<name>:5000`: the registry on the cluster network.
    pub fn in_network(&self) -> String {
        format!("{}:{REGISTRY_CONTAINER_PORT}", self.name)
    }
    /// The HTTP API base as the host reaches it.
    pub fn api_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.host_port)
    }
    /// The reference ktwin pushes and the nodes pull: `localhost:<port>/<path>:<tag>`.
    pub fn image_ref(&self, repo: &ImageRef, tag: &ContentTag) -> String {
        self.reference(&repo.path, tag.as_str())
    }
    /// `localhost:<port>/<path>:<tag>` for any tag (ktwin's engine tag included).
    pub fn reference(&self, path: &str, tag: &str) -> String {
        format!("{}/{path}:{tag}", self.host())
    }
    /// `localhost:<port>/`: every image from this registry starts with it.
    pub fn prefix(&self) -> String {
        format!("{}/", self.host())
    }
    /// The host names nodes resolve, each with the endpoint it mirrors to.
    pub fn mirrors(&self) -> Vec<(String, String)> {
        let endpoint = format!("http://{}", self.in_network());
        vec![
            (self.host(), endpoint.clone()),
            (self.in_network(), endpoint),
        ]
    }
    /// Is `host` (as written in an image reference) this registry?
    pub fn is_ours(&self, host: &str) -> bool {
        host == self.host() || host == self.in_network()
    }
}

/// What a node container is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum NodeRole {
    /// k3d's serverlb, kind's external load balancer: a container, not a Kubernetes node.
    LoadBalancer,
    Server,
    Agent,
}

/// One node container of the twin and what its Kubernetes node must carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSpec {
    pub container: String,
    /// The Kubernetes node name (`None` for a load balancer).
    pub node: Option<String>,
    pub role: NodeRole,
    /// The ktwin.yaml pool an agent belongs to.
    pub pool: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// `key[=value]:Effect`, as written in ktwin.yaml.
    pub taints: Vec<String>,
    /// Taints other pools declare and this one does not: a node of this pool must not carry
    /// them (a node k3d adds live starts with the command line of another agent, taints
    /// included).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub foreign_taints: Vec<String>,
    /// Labels (`key`, `value`) other pools declare on keys this pool does not set.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub foreign_labels: Vec<(String, String)>,
}

/// The control-plane taints a single-node twin must not keep.
pub const CONTROL_PLANE_TAINTS: &[&str] = &[
    "node-role.kubernetes.io/control-plane",
    "node-role.kubernetes.io/master",
];

/// One way an observed node differs from its [`NodeSpec`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "fix")]
pub enum NodeFix {
    /// The node is cordoned.
    Uncordon,
    /// A pool label is missing (`was: None`) or has another value.
    Label {
        key: String,
        value: String,
        was: Option<String>,
    },
    /// A pool taint is missing.
    Taint { spec: String },
    /// A control-plane NoSchedule taint on a single-node twin (nothing else can run).
    DropControlPlaneTaint { key: String },
    /// Another pool's taint on this pool's node.
    DropForeignTaint { spec: String },
    /// Another pool's label on this pool's node.
    DropForeignLabel { key: String, value: String },
}

impl NodeFix {
    /// As `status` shows the difference.
    pub fn drift(&self) -> String {
        match self {
            NodeFix::Uncordon => "cordoned".into(),
            NodeFix::Label {
                key,
                value,
                was: Some(x),
            } => format!("label {key}={x}, want {key}={value}"),
            NodeFix::Label { key, value, .. } => format!("label {key}={value} missing"),
            NodeFix::Taint { spec } => format!("taint {spec} missing"),
            NodeFix::DropControlPlaneTaint { key } => {
                format!("{key} NoSchedule taint on a single-node twin")
            }
            NodeFix::DropForeignTaint { spec } => format!("taint {spec} of another pool"),
            NodeFix::DropForeignLabel { key, value } => {
                format!("label {key}={value} of another pool")
            }
        }
    }
    /// As `up` and `heal` say the fix.
    pub fn done(&self) -> String {
        match self {
            NodeFix::Uncordon => "uncordoned".into(),
            NodeFix::Label { key, value, .. } => format!("label {key}={value}"),
            NodeFix::Taint { spec } => format!("taint {spec}"),
            NodeFix::DropControlPlaneTaint { key } => {
                format!("removed the {key} NoSchedule taint (single-node twin)")
            }
            NodeFix::DropForeignTaint { spec } => {
                format!("removed taint {spec} (another pool's)")
            }
            NodeFix::DropForeignLabel { key, value } => {
                format!("removed label {key}={value} (another pool's)")
            }
        }
    }
    /// A difference in what the pool declares (labels, taints), as opposed to node state.
    pub fn is_pool_drift(&self) -> bool {
        matches!(
            self,
            NodeFix::Label { .. }
                | NodeFix::Taint { .. }
                | NodeFix::DropForeignTaint { .. }
                | NodeFix::DropForeignLabel { .. }
        )
    }
}

fn has_taint(node: &Value, t: &Taint) -> bool {
    node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|x| {
            x["key"] == t.key.as_str()
                && x["effect"] == t.effect.as_str()
                && x["value"].as_str().unwrap_or("") == t.value.as_deref().unwrap_or("")
        })
}

impl NodeSpec {
    /// A node container of that name with nothing declared (an agent of no pool); a base
    /// for `NodeSpec { labels, ..NodeSpec::named(n) }`.
    pub fn named(name: &str) -> NodeSpec {
        NodeSpec {
            container: name.into(),
            node: Some(name.into()),
            role: NodeRole::Agent,
            pool: None,
            labels: BTreeMap::new(),
            taints: vec![],
            foreign_taints: vec![],
            foreign_labels: vec![],
        }
    }

    /// Pure: how `node` (as the API shows it) differs from this spec.
    pub fn diff(&self, node: &Value, single_node: bool) -> Vec<NodeFix> {
        let mut out = Vec::new();
        if node["spec"]["unschedulable"] == true {
            out.push(NodeFix::Uncordon);
        }
        if single_node {
            for t in node["spec"]["taints"].as_array().into_iter().flatten() {
                let key = t["key"].as_str().unwrap_or("");
                if CONTROL_PLANE_TAINTS.contains(&key) && t["effect"] == "NoSchedule" {
                    out.push(NodeFix::DropControlPlaneTaint { key: key.into() });
                }
            }
        }
        for (k, v) in &self.labels {
            let have = node["metadata"]["labels"][k].as_str();
            if have != Some(v.as_str()) {
                out.push(NodeFix::Label {
                    key: k.clone(),
                    value: v.clone(),
                    was: have.map(str::to_string),
                });
            }
        }
        for t in &self.taints {
            if let Ok(p) = parse_taint(t) {
                if !has_taint(node, &p) {
                    out.push(NodeFix::Taint { spec: t.clone() });
                }
            }
        }
        for t in &self.foreign_taints {
            if let Ok(p) = parse_taint(t) {
                if has_taint(node, &p) {
                    out.push(NodeFix::DropForeignTaint { spec: t.clone() });
                }
            }
        }
        for (k, v) in &self.foreign_labels {
            if node["metadata"]["labels"][k].as_str() == Some(v.as_str()) {
                out.push(NodeFix::DropForeignLabel {
                    key: k.clone(),
                    value: v.clone(),
                });
            }
        }
        out
    }
}

/// Pure: the JSON merge patch that applies `fixes` to `node` (`None` when there are none).
pub fn node_patch(node: &Value, fixes: &[NodeFix]) -> Option<Value> {
    if fixes.is_empty() {
        return None;
    }
    let mut patch = json!({});
    let taints: Vec<Value> = node["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut new_taints = taints.clone();
    for f in fixes {
        match f {
            NodeFix::Uncordon => patch["spec"]["unschedulable"] = Value::Null,
            NodeFix::Label { key, value, .. } => patch["metadata"]["labels"][key] = json!(value),
            NodeFix::DropControlPlaneTaint { key } => {
                new_taints.retain(|t| !(t["key"] == key.as_str() && t["effect"] == "NoSchedule"))
            }
            NodeFix::DropForeignTaint { spec } => {
                if let Ok(p) = parse_taint(spec) {
                    new_taints.retain(|x| {
                        !(x["key"] == p.key.as_str() && x["effect"] == p.effect.as_str())
                    });
                }
            }
            NodeFix::DropForeignLabel { key, .. } => {
                patch["metadata"]["labels"][key] = Value::Null;
            }
            NodeFix::Taint { spec } => {
                if let Ok(p) = parse_taint(spec) {
                    new_taints.retain(|x| {
                        !(x["key"] == p.key.as_str() && x["effect"] == p.effect.as_str())
                    });
                    let mut tv = json!({"key": p.key, "effect": p.effect});
                    if let Some(v) = p.value {
                        tv["value"] = json!(v);
                    }
                    new_taints.push(tv);
                }
            }
        }
    }
    if new_taints != taints {
        patch["spec"]["taints"] = json!(new_taints);
    }
    Some(patch)
}

/// What a provider names the cluster's parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Naming {
    pub provider: Provider,
    pub cluster: String,
}

impl Naming {
    pub fn of(p: &Project) -> Naming {
        Naming {
            provider: p.cluster.provider,
            cluster: p.cluster_name().to_string(),
        }
    }
    /// The kube context the provider writes (`k3d-<name>`, `kind-<name>`).
    pub fn context(&self) -> String {
        match self.provider {
            Provider::K3d => format!("k3d-{}", self.cluster),
            Provider::Kind => format!("kind-{}", self.cluster),
        }
    }
    /// The engine network the nodes share; the registry is connected to it.
    pub fn network(&self) -> String {
        match self.provider {
            Provider::K3d => format!("k3d-{}", self.cluster),
            Provider::Kind => "kind".into(),
        }
    }
    /// The engine label every node container of the cluster carries.
    pub fn container_label(&self) -> String {
        match self.provider {
            Provider::K3d => format!("k3d.cluster={}", self.cluster),
            Provider::Kind => format!("io.x-k8s.kind.cluster={}", self.cluster),
        }
    }
    fn load_balancer(&self, servers: u32) -> Option<String> {
        let c = &self.cluster;
        match self.provider {
            Provider::K3d => Some(format!("k3d-{c}-serverlb")),
            Provider::Kind => (servers > 1).then(|| format!("{c}-external-load-balancer")),
        }
    }
    fn server(&self, i: u32) -> String {
        let c = &self.cluster;
        match (self.provider, i) {
            (Provider::K3d, _) => format!("k3d-{c}-server-{i}"),
            // kind names the first node of a role `<cluster>-<role>`, then `<role>2`, …
            (Provider::Kind, 0) => format!("{c}-control-plane"),
            (Provider::Kind, _) => format!("{c}-control-plane{}", i + 1),
        }
    }
    /// The container (and node) the provider names agent `i` at cluster create.
    pub fn agent_container(&self, i: u32) -> String {
        self.agent(i)
    }
    fn agent(&self, i: u32) -> String {
        let c = &self.cluster;
        match (self.provider, i) {
            (Provider::K3d, _) => format!("k3d-{c}-agent-{i}"),
            (Provider::Kind, 0) => format!("{c}-worker"),
            (Provider::Kind, _) => format!("{c}-worker{}", i + 1),
        }
    }

    /// Every node container, in the order they must start after a reboot: the load
    /// balancer, the servers, then one agent per pool member in pool order, each with what
    /// its node must carry.
    pub fn nodes(&self, p: &Project) -> Vec<NodeSpec> {
        self.nodes_named(p, &[])
    }

    /// As [`Naming::nodes`], with the agents' container names where the cluster's record has
    /// them (`agent_names[i]` for agent `i` in pool order): an agent k3d added to a running
    /// cluster is named `k3d-<NAME>-0`, not as the agents created with the cluster.
    pub fn nodes_named(&self, p: &Project, agent_names: &[String]) -> Vec<NodeSpec> {
        let servers = p.cluster.servers.max(1);
        let mut v: Vec<NodeSpec> = self
            .load_balancer(servers)
            .into_iter()
            .map(|container| NodeSpec {
                container,
                node: None,
                role: NodeRole::LoadBalancer,
                pool: None,
                labels: BTreeMap::new(),
                taints: vec![],
                foreign_taints: vec![],
                foreign_labels: vec![],
            })
            .collect();
        for i in 0..servers {
            let n = self.server(i);
            v.push(NodeSpec {
                container: n.clone(),
                node: Some(n),
                role: NodeRole::Server,
                pool: None,
                labels: BTreeMap::new(),
                taints: vec![],
                foreign_taints: vec![],
                foreign_labels: vec![],
            });
        }
        let mut i = 0;
        for a in &p.cluster.agents {
            let others = p.cluster.agents.iter().filter(|o| o.name != a.name);
            let foreign_taints: Vec<String> = others
                .clone()
                .flat_map(|o| o.taints.iter())
                .filter(|t| {
                    let key = |s: &str| parse_taint(s).ok().map(|x| (x.key, x.effect));
                    !a.taints.iter().any(|m| key(m) == key(t))
                })
                .cloned()
                .collect();
            let foreign_labels: Vec<(String, String)> = others
                .flat_map(|o| o.labels.iter())
                .filter(|(k, _)| !a.labels.contains_key(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for _ in 0..a.count {
                let n = agent_names
                    .get(i as usize)
                    .cloned()
                    .unwrap_or_else(|| self.agent(i));
                i += 1;
                v.push(NodeSpec {
                    container: n.clone(),
                    node: Some(n),
                    role: NodeRole::Agent,
                    pool: Some(a.name.clone()),
                    labels: a.labels.clone().into_iter().collect(),
                    taints: a.taints.clone(),
                    foreign_taints: foreign_taints.clone(),
                    foreign_labels: foreign_labels.clone(),
                });
            }
        }
        v
    }
}

/// One image ktwin builds, resolved once: where its inputs are and the tag they hash to.
/// Building and rendering both take the tag from here, so what is deployed is what was pushed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImagePlan {
    /// As written in ktwin.yaml (the repository the manifests use).
    pub image: String,
    #[serde(skip)]
    pub spec: crate::model::Image,
    #[serde(skip)]
    pub repo: ImageRef,
    pub context: std::path::PathBuf,
    pub dockerfile: std::path::PathBuf,
    pub tag: ContentTag,
    /// `localhost:<port>/<path>:<tag>`.
    pub reference: String,
}

/// Why an image cannot be planned.
#[derive(Debug, thiserror::Error)]
#[error("image {image}: {message}")]
pub struct ImagePlanError {
    pub image: String,
    pub message: String,
}

impl ImagePlan {
    /// Hash one image's build inputs (the slow part: the whole build context is read, or its
    /// cached per-file hashes checked).
    pub fn resolve(
        project_dir: &std::path::Path,
        img: &crate::model::Image,
        registry: &RegistryAddr,
    ) -> Result<ImagePlan, ImagePlanError> {
        let err = |message: String| ImagePlanError {
            image: img.image.clone(),
            message,
        };
        let repo = ImageRef::parse(&img.image).map_err(err)?;
        let inputs = crate::contenttag::BuildInputs::new(project_dir, img);
        let tag = crate::contenttag::content_tag(&inputs).map_err(|e| err(e.to_string()))?;
        Ok(ImagePlan {
            image: img.image.clone(),
            spec: img.clone(),
            reference: registry.image_ref(&repo, &tag),
            repo,
            context: inputs.context,
            dockerfile: inputs.dockerfile,
            tag,
        })
    }
}

/// Every image of the project, planned (hashed once each).
pub fn plan_images(loaded: &crate::Loaded) -> Result<Vec<ImagePlan>, ImagePlanError> {
    let registry = RegistryAddr::of(&loaded.project.registry);
    loaded
        .project
        .images
        .iter()
        .map(|i| ImagePlan::resolve(&loaded.dir, i, &registry))
        .collect()
}

/// One node (no agents, one server): the control-plane taint would block every pod.
pub fn single_node(p: &Project) -> bool {
    p.cluster.servers <= 1 && p.cluster.agents.iter().all(|a| a.count == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(extra: &str) -> Project {
        let text = format!("apiVersion: ktwin.dev/v1alpha1\nkind: Project\nname: shop\n{extra}");
        crate::load::parse(std::path::Path::new("/x/ktwin.yaml"), text)
            .unwrap()
            .project
    }

    #[test]
    fn the_registry_is_named_in_one_place() {
        let r = RegistryAddr::of(&Registry::default());
        assert_eq!(r.host(), "localhost:5001");
        assert_eq!(r.in_network(), "ktwin-registry:5000");
        assert_eq!(r.api_base(), "http://127.0.0.1:5001");
        let repo = ImageRef::parse("ghcr.io/acme/web:1.2").unwrap();
        let tag = ContentTag::from_hash("0123456789abcdef0123");
        assert_eq!(tag.as_str(), "ktwin-0123456789abcdef");
        assert_eq!(
            r.image_ref(&repo, &tag),
            "localhost:5001/acme/web:ktwin-0123456789abcdef"
        );
        assert_eq!(
            r.mirrors(),
            [
                ("localhost:5001".into(), "http://ktwin-registry:5000".into()),
                (
                    "ktwin-registry:5000".into(),
                    "http://ktwin-registry:5000".into()
                )
            ]
        );
        assert!(r.is_ours("ktwin-registry:5000") && !r.is_ours("ghcr.io"));
        assert!(ContentTag::is("ktwin-0123456789abcdef"));
        assert!(!ContentTag::is("ktwin-engine") && !ContentTag::is("ktwin-0123"));
    }

    #[test]
    fn provider_names() {
        let p = project("cluster:\n  agents: [{name: web, count: 2, labels: {pool: web}}]\n");
        let k = Naming::of(&p);
        assert_eq!(k.context(), "k3d-shop");
        assert_eq!(k.network(), "k3d-shop");
        let names: Vec<String> = k.nodes(&p).into_iter().map(|n| n.container).collect();
        assert_eq!(
            names,
            [
                "k3d-shop-serverlb",
                "k3d-shop-server-0",
                "k3d-shop-agent-0",
                "k3d-shop-agent-1"
            ]
        );
        let p = project(
            "cluster:\n  provider: kind\n  servers: 2\n  agents: [{name: web, count: 2}]\n",
        );
        let k = Naming::of(&p);
        assert_eq!(
            (k.context(), k.network()),
            ("kind-shop".into(), "kind".into())
        );
        let names: Vec<String> = k.nodes(&p).into_iter().map(|n| n.container).collect();
        assert_eq!(
            names,
            [
                "shop-external-load-balancer",
                "shop-control-plane",
                "shop-control-plane2",
                "shop-worker",
                "shop-worker2"
            ]
        );
    }

    #[test]
    fn one_diff_gives_drift_fixes_and_the_patch() {
        let p = project("cluster:\n  agents: [{name: web, labels: {pool: web}, taints: ['dedicated=web:NoSchedule']}]\n");
        let spec = Naming::of(&p).nodes(&p).pop().unwrap();
        let node = json!({"metadata": {"name": "k3d-shop-agent-0", "labels": {"pool": "db"}},
            "spec": {"unschedulable": true, "taints": [
                {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}});
        let fixes = spec.diff(&node, true);
        let drift: Vec<String> = fixes.iter().map(NodeFix::drift).collect();
        assert_eq!(
            drift,
            [
                "cordoned",
                "node-role.kubernetes.io/control-plane NoSchedule taint on a single-node twin",
                "label pool=db, want pool=web",
                "taint dedicated=web:NoSchedule missing"
            ]
        );
        assert_eq!(
            node_patch(&node, &fixes).unwrap(),
            json!({"spec": {"unschedulable": null,
                "taints": [{"key": "dedicated", "effect": "NoSchedule", "value": "web"}]},
                "metadata": {"labels": {"pool": "web"}}})
        );
        // Multi-node: the control-plane taint is how it should be; a fixed node has no diff.
        let fine = json!({"metadata": {"labels": {"pool": "web"}},
            "spec": {"taints": [{"key": "dedicated", "value": "web", "effect": "NoSchedule"},
                {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}});
        assert!(spec.diff(&fine, false).is_empty());
        assert_eq!(node_patch(&fine, &[]), None);
    }

    #[test]
    fn another_pools_taints_and_labels_are_dropped_and_system_ones_kept() {
        let p = project("cluster:\n  agents:\n    - {name: web, labels: {pool: web, tier: front}, taints: ['dedicated=web:NoSchedule']}\n    - {name: db, labels: {pool: db}}\n");
        let db = Naming::of(&p).nodes(&p).pop().unwrap();
        assert_eq!(db.pool.as_deref(), Some("db"));
        // A db node started with the web agent's command line (k3d's live add).
        let node = json!({"metadata": {"labels": {"pool": "db", "tier": "front", "kubernetes.io/os": "linux"}},
            "spec": {"taints": [{"key": "dedicated", "value": "web", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]}});
        let fixes = db.diff(&node, false);
        let done: Vec<String> = fixes.iter().map(NodeFix::done).collect();
        assert_eq!(
            done,
            [
                "removed taint dedicated=web:NoSchedule (another pool's)",
                "removed label tier=front (another pool's)"
            ]
        );
        assert_eq!(
            node_patch(&node, &fixes).unwrap(),
            json!({"spec": {"taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]},
                "metadata": {"labels": {"tier": null}}})
        );
        // `pool` is a key db sets itself: never "another pool's"; a web node keeps its own.
        let web = Naming::of(&p).nodes(&p)[2].clone();
        assert_eq!(web.pool.as_deref(), Some("web"));
        assert!(web.foreign_labels.is_empty() && web.foreign_taints.is_empty());
    }
}
