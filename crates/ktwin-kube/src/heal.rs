//! `ktwin heal`, the API half: the KEP-1755 ConfigMap, cordoned nodes, a control-plane
//! NoSchedule taint on a single-node twin, node labels/taints, pods stuck Unknown or
//! Terminating. Each fix is detected first, so a second run finds nothing to do.

use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use ktwin_config::desired::{node_patch, NodeSpec};
use ktwin_config::event::{Event, Reporter};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::Value;

use crate::{KubeError, FIELD_MANAGER};

/// A pod counts as stuck once it has been terminating this long past its grace period.
pub const STUCK_AFTER_SECS: i64 = 60;

pub struct Options<'a> {
    pub dry_run: bool,
    pub nodes: &'a [NodeSpec],
    /// One node only (no agents, one server): the control-plane taint would block everything.
    pub single_node: bool,
    /// The KEP-1755 ConfigMap the cluster must carry.
    pub configmap: Value,
    pub report: Reporter<'a>,
}

fn op(e: kube::Error, what: &str) -> KubeError {
    crate::api_err(what, &e)
}

/// Pure: is this pod stuck on a node that went away and came back?
pub fn stuck_pod(pod: &Value, now_secs: i64) -> Option<String> {
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    if let Some(ts) = pod["metadata"]["deletionTimestamp"].as_str() {
        let t = ts.parse::<jiff::Timestamp>().ok()?.as_second();
        let grace = pod["metadata"]["deletionGracePeriodSeconds"]
            .as_i64()
            .unwrap_or(0);
        if now_secs - t > grace + STUCK_AFTER_SECS {
            return Some(format!("pod {name} ({ns}): stuck Terminating since {ts}"));
        }
        return None;
    }
    if pod["status"]["phase"] == "Unknown" || pod["status"]["reason"] == "NodeLost" {
        return Some(format!("pod {name} ({ns}): status Unknown"));
    }
    None
}

/// Reports each fix as it is made (or, on a dry run, would be) and keeps the list.
struct Fixes<'a> {
    dry_run: bool,
    report: Reporter<'a>,
    done: Vec<String>,
}

impl Fixes<'_> {
    fn act(&mut self, subject: String, fix: String) {
        self.done.push(format!("{subject}: {fix}"));
        (self.report)(Event::Fixed {
            subject,
            fix,
            dry_run: self.dry_run,
        });
    }
}

/// The KEP-1755 ConfigMap, written when missing or different. `up` and `heal` both call it.
pub async fn ensure_registry_hosting(
    client: &kube::Client,
    configmap: &Value,
    dry_run: bool,
    report: Reporter<'_>,
) -> Result<Vec<String>, KubeError> {
    let mut f = Fixes {
        dry_run,
        report,
        done: vec![],
    };
    let ns = configmap["metadata"]["namespace"]
        .as_str()
        .unwrap_or("kube-public");
    let name = configmap["metadata"]["name"]
        .as_str()
        .unwrap_or("local-registry-hosting");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let current = cms.get_opt(name).await.map_err(|e| op(e, "configmap"))?;
    let want_data = &configmap["data"];
    let have = current.map(|c| serde_json::to_value(c.data).unwrap_or_default());
    if have.as_ref() != Some(want_data) {
        if !dry_run {
            cms.patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(configmap),
            )
            .await
            .map_err(|e| op(e, "configmap"))?;
        }
        f.act(
            format!("configmap {ns}/{name}"),
            format!(
                "{} (KEP-1755 registry hosting)",
                if have.is_none() {
                    "written"
                } else {
                    "rewritten"
                }
            ),
        );
    }
    Ok(f.done)
}

/// What [`ensure_nodes`] did, and the nodes it expected and did not find.
#[derive(Debug, Default)]
pub struct NodesFixed {
    pub fixed: Vec<String>,
    pub missing: Vec<String>,
}

/// Every node uncordoned, carrying its pool's labels and taints (and, on a single-node
/// twin, without the control-plane NoSchedule taint). `up` and `heal` both call it.
pub async fn ensure_nodes(
    client: &kube::Client,
    wants: &[NodeSpec],
    single_node: bool,
    dry_run: bool,
    report: Reporter<'_>,
) -> Result<NodesFixed, KubeError> {
    let mut f = Fixes {
        dry_run,
        report,
        done: vec![],
    };
    let nodes: Api<Node> = Api::all(client.clone());
    let list = nodes
        .list(&ListParams::default())
        .await
        .map_err(|e| op(e, "nodes"))?;
    let mut seen = Vec::new();
    for n in &list.items {
        let v = serde_json::to_value(n).unwrap_or_default();
        let name = v["metadata"]["name"].as_str().unwrap_or("").to_string();
        let fixes = wants
            .iter()
            .find(|w| w.node.as_deref() == Some(name.as_str()))
            .map(|w| w.diff(&v, single_node))
            .unwrap_or_default();
        if let Some(patch) = node_patch(&v, &fixes) {
            if !dry_run {
                nodes
                    .patch(
                        &name,
                        &PatchParams::apply(FIELD_MANAGER),
                        &Patch::Merge(&patch),
                    )
                    .await
                    .map_err(|e| op(e, &format!("node {name}")))?;
            }
            for x in &fixes {
                f.act(format!("node {name}"), x.done());
            }
        }
        seen.push(name);
    }
    let missing = wants
        .iter()
        .filter_map(|w| w.node.clone())
        .filter(|n| !seen.contains(n))
        .collect();
    Ok(NodesFixed {
        fixed: f.done,
        missing,
    })
}

/// Detect and fix; returns what was (or, on a dry run, would be) done.
pub async fn heal_api(client: &kube::Client, o: &Options<'_>) -> Result<Vec<String>, KubeError> {
    let mut done = ensure_registry_hosting(client, &o.configmap, o.dry_run, o.report).await?;
    done.extend(
        ensure_nodes(client, o.nodes, o.single_node, o.dry_run, o.report)
            .await?
            .fixed,
    );
    let mut f = Fixes {
        dry_run: o.dry_run,
        report: o.report,
        done,
    };

    // Pods left behind by a restarted node.
    let pods: Api<Pod> = Api::all(client.clone());
    let list = pods
        .list(&ListParams::default())
        .await
        .map_err(|e| op(e, "pods"))?;
    let now = jiff::Timestamp::now().as_second();
    for p in &list.items {
        let v = serde_json::to_value(p).unwrap_or_default();
        if let Some(why) = stuck_pod(&v, now) {
            if !o.dry_run {
                let ns = v["metadata"]["namespace"].as_str().unwrap_or("default");
                let name = v["metadata"]["name"].as_str().unwrap_or("");
                let api: Api<Pod> = Api::namespaced(client.clone(), ns);
                let dp = DeleteParams {
                    grace_period_seconds: Some(0),
                    ..Default::default()
                };
                match api.delete(name, &dp).await {
                    Ok(_) => {}
                    Err(e) if crate::is_not_found(&e) => {}
                    Err(e) => return Err(op(e, &format!("pod {name}"))),
                }
            }
            let (subject, state) = why.split_once(": ").unwrap_or((why.as_str(), ""));
            f.act(
                subject.to_string(),
                format!("{state}: deleted (its controller recreates it)"),
            );
        }
    }
    Ok(f.done)
}

/// The StorageClass of `cluster.persistentVolumes`, created when absent. A class of that
/// name with other parameters is an error (StorageClass parameters are immutable).
pub async fn ensure_storage_class(
    client: &kube::Client,
    class: &Value,
    dry_run: bool,
    report: Reporter<'_>,
) -> Result<Vec<String>, KubeError> {
    use k8s_openapi::api::storage::v1::StorageClass;
    let mut f = Fixes {
        dry_run,
        report,
        done: vec![],
    };
    let name = class["metadata"]["name"].as_str().unwrap_or_default();
    let api: Api<StorageClass> = Api::all(client.clone());
    let have = api
        .get_opt(name)
        .await
        .map_err(|e| op(e, &format!("storageclass {name}")))?;
    match have.map(|c| serde_json::to_value(c).unwrap_or_default()) {
        Some(c) if c["provisioner"] == class["provisioner"] && c["parameters"] == class["parameters"] => {}
        Some(c) => {
            return Err(KubeError::Api {
                object: format!("storageclass {name}"),
                message: format!(
                    "exists with provisioner {} and parameters {}, not ktwin's ({} {}); StorageClass parameters cannot change: delete it, then run `ktwin up` again",
                    c["provisioner"], c["parameters"], class["provisioner"], class["parameters"]
                ),
            })
        }
        None => {
            if let Some(too_old) = provisioner_without_path_pattern(client).await? {
                return Err(KubeError::Api {
                    object: format!("storageclass {name}"),
                    message: format!(
                        "the twin's local-path-provisioner is {too_old}, which ignores `pathPattern` (v0.0.29 added it): volumes would get new directories on every twin and their data would not be found again"
                    ),
                });
            }
            if !dry_run {
                api.patch(
                    name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(class),
                )
                .await
                .map_err(|e| op(e, &format!("storageclass {name}")))?;
            }
            f.act(
                format!("storageclass {name}"),
                "created (volumes kept across down/up)".into(),
            );
        }
    }
    Ok(f.done)
}

/// Pure: is a `local-path-provisioner` image tag older than v0.0.29, the first release
/// with `pathPattern` (its git tags)? Tags that are not `vX.Y.Z` (kind publishes its own
/// builds under dated tags) cannot be told, and count as new enough.
pub fn too_old_for_path_pattern(image: &str) -> bool {
    let tag = image.rsplit_once(':').map_or("", |(_, t)| t);
    let v: Vec<u64> = tag
        .trim_start_matches('v')
        .split('.')
        .map_while(|x| x.parse().ok())
        .collect();
    matches!(v.as_slice(), [a, b, c] if (*a, *b, *c) < (0, 0, 29))
}

/// The provisioner's image when it is too old for `pathPattern` (k3s runs it in
/// kube-system, kind in local-path-storage).
async fn provisioner_without_path_pattern(
    client: &kube::Client,
) -> Result<Option<String>, KubeError> {
    use k8s_openapi::api::apps::v1::Deployment;
    for ns in ["kube-system", "local-path-storage"] {
        let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
        let Some(d) = api
            .get_opt("local-path-provisioner")
            .await
            .map_err(|e| op(e, "deployment local-path-provisioner"))?
        else {
            continue;
        };
        let v = serde_json::to_value(d).unwrap_or_default();
        for c in v["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let image = c["image"].as_str().unwrap_or("");
            if image.contains("local-path-provisioner") && too_old_for_path_pattern(image) {
                return Ok(Some(image.to_string()));
            }
        }
    }
    Ok(None)
}

/// Pure: may a drain evict this pod? Not a DaemonSet's (its controller would put it back),
/// not a mirror pod (the kubelet owns it), not one that already finished — the pods
/// `kubectl drain --ignore-daemonsets` leaves too.
pub fn evictable(pod: &Value) -> bool {
    let daemon = pod["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|o| o["kind"] == "DaemonSet");
    let mirror = pod["metadata"]["annotations"]
        .get("kubernetes.io/config.mirror")
        .is_some();
    let done = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    !(daemon || mirror || done)
}

/// Pure: the PersistentVolumes (name, `namespace/claim`) pinned to `node` by their node
/// affinity (`kubernetes.io/hostname`), as local-path-provisioner pins every volume it makes.
pub fn local_volumes_on(pvs: &[Value], node: &str) -> Vec<(String, String)> {
    pvs.iter()
        .filter(|pv| {
            pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|t| t["matchExpressions"].as_array().into_iter().flatten())
                .any(|e| {
                    e["key"] == "kubernetes.io/hostname"
                        && e["values"]
                            .as_array()
                            .is_some_and(|v| v.iter().any(|x| x == node))
                })
        })
        .map(|pv| {
            let c = &pv["spec"]["claimRef"];
            (
                pv["metadata"]["name"].as_str().unwrap_or("").to_string(),
                format!(
                    "{}/{}",
                    c["namespace"].as_str().unwrap_or(""),
                    c["name"].as_str().unwrap_or("")
                ),
            )
        })
        .collect()
}

/// Before an agent is deleted: refuse when volumes are pinned to it (deleting the node
/// deletes a local volume's data with its container, k3d's `node delete` removes the
/// container's volumes, and a pod of such a claim could never start elsewhere); else cordon
/// it, evict its pods through the Eviction API (so PodDisruptionBudgets are honoured: a
/// refused eviction is retried until `timeout`), and wait until they are gone. A drain that
/// does not finish uncordons the node again. Returns the pods evicted (`namespace/name`);
/// a node already gone (an interrupted removal) has nothing to drain.
pub async fn drain_node(
    client: &kube::Client,
    node: &str,
    timeout: std::time::Duration,
    report: Reporter<'_>,
) -> Result<Vec<String>, KubeError> {
    let nodes: Api<Node> = Api::all(client.clone());
    if nodes
        .get_opt(node)
        .await
        .map_err(|e| op(e, &format!("node {node}")))?
        .is_none()
    {
        return Ok(vec![]);
    }
    let pvs: Api<k8s_openapi::api::core::v1::PersistentVolume> = Api::all(client.clone());
    let pvs: Vec<Value> = pvs
        .list(&ListParams::default())
        .await
        .map_err(|e| op(e, "persistentvolumes"))?
        .items
        .iter()
        .map(|p| serde_json::to_value(p).unwrap_or_default())
        .collect();
    let pinned = local_volumes_on(&pvs, node);
    if !pinned.is_empty() {
        return Err(KubeError::Api {
            object: format!("node {node}"),
            message: format!(
                "not removed: volumes live on it ({}); deleting the node deletes them and their pods could never start elsewhere. Delete those claims first (their data goes), or keep the node",
                pinned
                    .iter()
                    .map(|(pv, claim)| format!("{pv} for {claim}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    let drained = drain_cordoned(client, node, timeout, report).await;
    if drained.is_err() {
        // Not removed after all: schedulable again.
        let _ = nodes
            .patch(
                node,
                &PatchParams::default(),
                &Patch::Merge(&serde_json::json!({"spec": {"unschedulable": null}})),
            )
            .await;
    }
    drained
}

async fn drain_cordoned(
    client: &kube::Client,
    node: &str,
    timeout: std::time::Duration,
    report: Reporter<'_>,
) -> Result<Vec<String>, KubeError> {
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch(
            node,
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"spec": {"unschedulable": true}})),
        )
        .await
        .map_err(|e| op(e, &format!("node {node}")))?;
    report(Event::Fixed {
        subject: format!("node {node}"),
        fix: "cordoned, to be drained and removed".into(),
        dry_run: false,
    });
    let deadline = std::time::Instant::now() + timeout;
    let on_node = || async {
        let pods: Api<Pod> = Api::all(client.clone());
        let list = pods
            .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
            .await
            .map_err(|e| op(e, &format!("pods on node {node}")))?;
        Ok::<Vec<Value>, KubeError>(
            list.items
                .iter()
                .map(|p| serde_json::to_value(p).unwrap_or_default())
                .filter(evictable)
                .collect(),
        )
    };
    let mut evicted = Vec::new();
    loop {
        let left = on_node().await?;
        if left.is_empty() {
            return Ok(evicted);
        }
        for p in &left {
            let ns = p["metadata"]["namespace"].as_str().unwrap_or("default");
            let name = p["metadata"]["name"].as_str().unwrap_or("");
            let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
            match pods.evict(name, &Default::default()).await {
                Ok(_) => {
                    let id = format!("{ns}/{name}");
                    if !evicted.contains(&id) {
                        report(Event::Fixed {
                            subject: format!("pod {id}"),
                            fix: format!("evicted from node {node}"),
                            dry_run: false,
                        });
                        evicted.push(id);
                    }
                }
                // Gone already, or refused for now by a disruption budget: asked again.
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 429 => {}
                Err(e) => return Err(op(e, &format!("pod {ns}/{name}"))),
            }
        }
        if std::time::Instant::now() >= deadline {
            return Err(KubeError::Api {
                object: format!("node {node}"),
                message: format!(
                    "{} pod(s) still on it after {}s of draining (a PodDisruptionBudget may forbid evicting them): {}",
                    left.len(),
                    timeout.as_secs(),
                    left.iter()
                        .map(|p| format!("{}/{}", p["metadata"]["namespace"].as_str().unwrap_or(""), p["metadata"]["name"].as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// After its container is gone: the Node object of a deleted agent (k3d removes only the
/// container, and the node would stay NotReady).
pub async fn delete_node(client: &kube::Client, node: &str) -> Result<(), KubeError> {
    let nodes: Api<Node> = Api::all(client.clone());
    match nodes.delete(node, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(op(e, &format!("node {node}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn path_pattern_needs_provisioner_v0_0_29() {
        assert!(too_old_for_path_pattern(
            "rancher/local-path-provisioner:v0.0.28"
        ));
        assert!(!too_old_for_path_pattern(
            "rancher/local-path-provisioner:v0.0.29"
        ));
        assert!(!too_old_for_path_pattern(
            "rancher/local-path-provisioner:v0.0.30"
        ));
        assert!(!too_old_for_path_pattern(
            "docker.io/kindest/local-path-provisioner:v20241212-8ac705d0"
        ));
    }

    #[test]
    fn volumes_pinned_to_a_node_are_found_by_hostname_affinity() {
        let pv = |name: &str, node: &str| {
            json!({"metadata": {"name": name},
            "spec": {"claimRef": {"namespace": "shop", "name": "data"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}}})
        };
        let pvs = [
            pv("pvc-1", "k3d-shop-agent-3-0"),
            pv("pvc-2", "k3d-shop-agent-0"),
            json!({"metadata": {"name": "nfs"}, "spec": {}}),
        ];
        assert_eq!(
            local_volumes_on(&pvs, "k3d-shop-agent-3-0"),
            [("pvc-1".to_string(), "shop/data".to_string())]
        );
        assert!(local_volumes_on(&pvs, "k3d-shop-agent-9").is_empty());
    }

    #[test]
    fn a_drain_leaves_daemonset_mirror_and_finished_pods() {
        let owned = |kind: &str| json!({"metadata": {"ownerReferences": [{"kind": kind}]}, "status": {"phase": "Running"}});
        assert!(evictable(&owned("ReplicaSet")));
        assert!(evictable(
            &json!({"metadata": {}, "status": {"phase": "Pending"}})
        ));
        assert!(!evictable(&owned("DaemonSet")));
        assert!(!evictable(
            &json!({"metadata": {"annotations": {"kubernetes.io/config.mirror": "x"}}})
        ));
        assert!(!evictable(
            &json!({"metadata": {}, "status": {"phase": "Succeeded"}})
        ));
    }

    #[test]
    fn stuck_pods_are_old_terminating_or_unknown() {
        let now = "2026-01-01T00:10:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_second();
        let term = |ts: &str| {
            json!({"metadata": {"name": "p", "namespace": "shop",
            "deletionTimestamp": ts, "deletionGracePeriodSeconds": 30}, "status": {"phase": "Running"}})
        };
        assert!(stuck_pod(&term("2026-01-01T00:00:00Z"), now)
            .unwrap()
            .contains("stuck Terminating"));
        assert_eq!(stuck_pod(&term("2026-01-01T00:09:30Z"), now), None);
        let unknown =
            json!({"metadata": {"name": "q", "namespace": "shop"}, "status": {"phase": "Unknown"}});
        assert_eq!(
            stuck_pod(&unknown, now).unwrap(),
            "pod q (shop): status Unknown"
        );
        let fine = json!({"metadata": {"name": "r"}, "status": {"phase": "Running"}});
        assert_eq!(stuck_pod(&fine, now), None);
    }
}
