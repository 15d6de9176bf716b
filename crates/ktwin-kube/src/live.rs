//! `ktwin doctor --live`: checks against the running twin.

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ListParams};
use serde_json::Value;

use ktwin_config::desired::{NodeFix, NodeSpec};

use crate::{describe, KubeError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Level {
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFinding {
    pub check: &'static str,
    pub level: Level,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub message: String,
    pub fix: String,
}

/// What the checks read from the cluster.
#[derive(Debug, Default)]
pub struct Observed {
    pub nodes: Vec<Value>,
    pub storage_classes: Vec<Value>,
    pub pods: Vec<Value>,
    pub events: Vec<Value>,
}

fn find(
    check: &'static str,
    level: Level,
    obj: &Value,
    kind: &str,
    message: String,
    fix: &str,
) -> LiveFinding {
    LiveFinding {
        check,
        level,
        kind: kind.into(),
        namespace: obj["metadata"]["namespace"].as_str().map(str::to_string),
        name: obj["metadata"]["name"].as_str().unwrap_or("").into(),
        message,
        fix: fix.into(),
    }
}

/// Storage classes the rendered objects ask for (PVCs and volumeClaimTemplates).
fn wanted_classes(rendered: &[Value]) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    for d in rendered {
        let mut claims: Vec<&Value> = Vec::new();
        if d["kind"] == "PersistentVolumeClaim" {
            claims.push(d);
        }
        claims.extend(
            d["spec"]["volumeClaimTemplates"]
                .as_array()
                .into_iter()
                .flatten(),
        );
        for c in claims {
            if let Some(sc) = c["spec"]["storageClassName"].as_str() {
                if !sc.is_empty() {
                    out.push((sc.to_string(), d));
                }
            }
        }
    }
    out
}

/// Pure: every live finding.
pub fn findings(
    o: &Observed,
    wants: &[NodeSpec],
    single_node: bool,
    rendered: &[Value],
    registry_hosts: &[String],
) -> Vec<LiveFinding> {
    let mut out = Vec::new();
    for n in &o.nodes {
        let name = n["metadata"]["name"].as_str().unwrap_or("");
        let want = wants.iter().find(|w| w.node.as_deref() == Some(name));
        let fixes = match want {
            Some(w) => w.diff(n, single_node),
            // A node ktwin.yaml does not declare still must not block a single-node twin.
            None => NodeSpec::named(name).diff(n, single_node),
        };
        for f in &fixes {
            if let NodeFix::DropControlPlaneTaint { key } = f {
                out.push(find(
                    "live-control-plane-taint",
                    Level::Error,
                    n,
                    "Node",
                    format!("the only node carries {key}:NoSchedule; no workload without a toleration will schedule"),
                    "`ktwin heal` removes it",
                ));
            }
        }
        let d: Vec<String> = fixes
            .iter()
            .filter(|f| f.is_pool_drift())
            .map(NodeFix::drift)
            .collect();
        if want.is_some() && !d.is_empty() {
            out.push(find(
                "live-node-drift",
                Level::Warning,
                n,
                "Node",
                format!("differs from ktwin.yaml: {}", d.join("; ")),
                "`ktwin heal` (or `ktwin up`) sets the pool's labels and taints",
            ));
        }
    }
    for w in wants {
        let Some(node) = &w.node else { continue };
        if !o
            .nodes
            .iter()
            .any(|n| n["metadata"]["name"] == node.as_str())
        {
            out.push(LiveFinding {
                check: "live-node-drift",
                level: Level::Error,
                kind: "Node".into(),
                namespace: None,
                name: node.clone(),
                message: "declared in ktwin.yaml but not in the cluster".into(),
                fix: "`ktwin heal` starts stopped node containers; `ktwin up --recreate` rebuilds the cluster".into(),
            });
        }
    }
    let present: Vec<&str> = o
        .storage_classes
        .iter()
        .filter_map(|s| s["metadata"]["name"].as_str())
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for (sc, d) in wanted_classes(rendered) {
        if !present.contains(&sc.as_str()) && seen.insert((sc.clone(), describe(d))) {
            out.push(find(
                "live-storage-class",
                Level::Error,
                d,
                d["kind"].as_str().unwrap_or(""),
                format!(
                    "asks for storage class `{sc}`, which the twin does not have (it has: {})",
                    if present.is_empty() {
                        "none".to_string()
                    } else {
                        present.join(", ")
                    }
                ),
                "map it with adapt.storageClasses in ktwin.yaml, or install the class",
            ));
        }
    }
    for p in &o.pods {
        for cs in p["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let reason = cs["state"]["waiting"]["reason"].as_str().unwrap_or("");
            let image = cs["image"].as_str().unwrap_or("");
            let ours = registry_hosts
                .iter()
                .any(|h| image.starts_with(&format!("{h}/")));
            if ours && matches!(reason, "ErrImagePull" | "ImagePullBackOff") {
                out.push(find(
                    "live-registry-pull",
                    Level::Error,
                    p,
                    "Pod",
                    format!("{reason}: the node cannot pull {image} from ktwin's registry"),
                    "`ktwin images verify` shows which node fails; `ktwin heal` rewires the registry; `ktwin build` pushes missing tags",
                ));
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for e in &o.events {
        let msg = e["message"].as_str().unwrap_or("");
        if e["reason"] == "Unhealthy"
            && msg.contains("Readiness probe failed")
            && (msg.contains("statuscode: 401") || msg.contains("statuscode: 403"))
        {
            let inv = &e["involvedObject"];
            let key = (inv["namespace"].to_string(), inv["name"].to_string());
            if !seen.insert(key) {
                continue;
            }
            out.push(LiveFinding {
                check: "live-probe-auth",
                level: Level::Error,
                kind: "Pod".into(),
                namespace: inv["namespace"].as_str().map(str::to_string),
                name: inv["name"].as_str().unwrap_or("").into(),
                message: format!("{msg}: the readiness probe path is behind authentication, so the pod never becomes ready"),
                fix: "probe an unauthenticated health endpoint (or a tcpSocket)".into(),
            });
        }
    }
    out
}

/// Read what the checks need.
pub async fn observe(client: &kube::Client) -> Result<Observed, KubeError> {
    let lp = ListParams::default();
    let err = |e: kube::Error| crate::api_err("cluster state", &e);
    Ok(Observed {
        nodes: crate::to_values(
            &Api::<Node>::all(client.clone())
                .list(&lp)
                .await
                .map_err(err)?
                .items,
        ),
        storage_classes: crate::to_values(
            &Api::<StorageClass>::all(client.clone())
                .list(&lp)
                .await
                .map_err(err)?
                .items,
        ),
        pods: crate::to_values(
            &Api::<Pod>::all(client.clone())
                .list(&lp)
                .await
                .map_err(err)?
                .items,
        ),
        events: crate::to_values(
            &Api::<Event>::all(client.clone())
                .list(&lp)
                .await
                .map_err(err)?
                .items,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_live_check_fires_on_its_case_only() {
        let o = Observed {
            nodes: vec![json!({"metadata": {"name": "s0", "labels": {}},
                "spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}})],
            storage_classes: vec![json!({"metadata": {"name": "local-path"}})],
            pods: vec![
                json!({"metadata": {"name": "web-1", "namespace": "shop"}, "status": {"containerStatuses": [
                    {"image": "localhost:5001/web:abc", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}}),
                json!({"metadata": {"name": "x-1", "namespace": "shop"}, "status": {"containerStatuses": [
                    {"image": "docker.io/x:1", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}}),
            ],
            events: vec![
                json!({"reason": "Unhealthy", "message": "Readiness probe failed: HTTP probe failed with statuscode: 401",
                    "involvedObject": {"kind": "Pod", "name": "api-1", "namespace": "shop"}}),
                json!({"reason": "Unhealthy", "message": "Readiness probe failed: HTTP probe failed with statuscode: 401",
                    "involvedObject": {"kind": "Pod", "name": "api-1", "namespace": "shop"}}),
                json!({"reason": "Unhealthy", "message": "Readiness probe failed: HTTP probe failed with statuscode: 500",
                    "involvedObject": {"kind": "Pod", "name": "api-2", "namespace": "shop"}}),
            ],
        };
        let wants = vec![
            NodeSpec {
                labels: [("pool".to_string(), "main".to_string())].into(),
                ..NodeSpec::named("s0")
            },
            NodeSpec::named("a0"),
        ];
        let rendered = vec![
            json!({"kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "shop"},
                "spec": {"storageClassName": "do-block-storage"}}),
            json!({"kind": "StatefulSet", "metadata": {"name": "db", "namespace": "shop"},
                "spec": {"volumeClaimTemplates": [{"spec": {"storageClassName": "local-path"}}]}}),
        ];
        let f = findings(&o, &wants, true, &rendered, &["localhost:5001".to_string()]);
        let got: Vec<(&str, &str)> = f.iter().map(|x| (x.check, x.name.as_str())).collect();
        assert_eq!(
            got,
            [
                ("live-control-plane-taint", "s0"),
                ("live-node-drift", "s0"),
                ("live-node-drift", "a0"),
                ("live-storage-class", "data"),
                ("live-registry-pull", "web-1"),
                ("live-probe-auth", "api-1"),
            ]
        );
        assert!(f[3].message.contains("`do-block-storage`") && f[3].message.contains("local-path"));
        // Multi-node twin: the control-plane taint is expected.
        let f = findings(&o, &[], false, &[], &[]);
        assert!(f.iter().all(|x| x.check != "live-control-plane-taint"));
    }
}
