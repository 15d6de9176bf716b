//! `ktwin heal`, the API half: the KEP-1755 ConfigMap, cordoned nodes, a control-plane
//! NoSchedule taint on a single-node twin, node labels/taints, pods stuck Unknown or
//! Terminating. Each fix is detected first, so a second run finds nothing to do.

use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{json, Value};

use crate::status::{has_taint, NodeWant};
use crate::{KubeError, FIELD_MANAGER};

pub const CONTROL_PLANE_TAINTS: &[&str] = &[
    "node-role.kubernetes.io/control-plane",
    "node-role.kubernetes.io/master",
];

/// A pod counts as stuck once it has been terminating this long past its grace period.
pub const STUCK_AFTER_SECS: i64 = 60;

pub struct Options<'a> {
    pub dry_run: bool,
    pub nodes: &'a [NodeWant],
    /// One node only (no agents, one server): the control-plane taint would block everything.
    pub single_node: bool,
    /// The KEP-1755 ConfigMap the cluster must carry.
    pub configmap: Value,
    pub say: &'a dyn Fn(&str),
}

fn op(e: kube::Error, what: &str) -> KubeError {
    crate::api_err(what, &e)
}

/// Pure: the merge patch that makes `node` what `want` says (None when nothing to do),
/// and what it fixes.
pub fn node_patch(
    want: Option<&NodeWant>,
    node: &Value,
    single_node: bool,
) -> Option<(Value, Vec<String>)> {
    let name = node["metadata"]["name"].as_str().unwrap_or("");
    let mut patch = json!({});
    let mut said = Vec::new();
    if node["spec"]["unschedulable"] == true {
        patch["spec"]["unschedulable"] = Value::Null;
        said.push(format!("node {name}: uncordoned"));
    }
    let taints: Vec<Value> = node["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut new_taints = taints.clone();
    if single_node {
        new_taints.retain(|t| {
            let cp = CONTROL_PLANE_TAINTS.contains(&t["key"].as_str().unwrap_or(""))
                && t["effect"] == "NoSchedule";
            if cp {
                said.push(format!(
                    "node {name}: removed the {} NoSchedule taint (single-node twin)",
                    t["key"].as_str().unwrap_or("")
                ));
            }
            !cp
        });
    }
    if let Some(w) = want {
        for (k, v) in &w.labels {
            if node["metadata"]["labels"][k].as_str() != Some(v.as_str()) {
                patch["metadata"]["labels"][k] = json!(v);
                said.push(format!("node {name}: label {k}={v}"));
            }
        }
        for t in &w.taints {
            if !has_taint(node, t) {
                if let Ok(p) = ktwin_config::names::parse_taint(t) {
                    new_taints.retain(|x| {
                        !(x["key"] == p.key.as_str() && x["effect"] == p.effect.as_str())
                    });
                    let mut tv = json!({"key": p.key, "effect": p.effect});
                    if let Some(v) = p.value {
                        tv["value"] = json!(v);
                    }
                    new_taints.push(tv);
                    said.push(format!("node {name}: taint {t}"));
                }
            }
        }
    }
    if new_taints != taints {
        patch["spec"]["taints"] = json!(new_taints);
    }
    (!said.is_empty()).then_some((patch, said))
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

/// Says each fix as it is made (or, on a dry run, would be) and keeps the list.
struct Fixes<'a> {
    dry_run: bool,
    say: &'a dyn Fn(&str),
    done: Vec<String>,
}

impl Fixes<'_> {
    fn act(&mut self, s: String) {
        (self.say)(&if self.dry_run {
            format!("would fix: {s}")
        } else {
            s.clone()
        });
        self.done.push(s);
    }
}

/// The KEP-1755 ConfigMap, written when missing or different. `up` and `heal` both call it.
pub async fn ensure_registry_hosting(
    client: &kube::Client,
    configmap: &Value,
    dry_run: bool,
    say: &dyn Fn(&str),
) -> Result<Vec<String>, KubeError> {
    let mut f = Fixes {
        dry_run,
        say,
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
        f.act(format!(
            "configmap {ns}/{name}: {} (KEP-1755 registry hosting)",
            if have.is_none() {
                "written"
            } else {
                "rewritten"
            }
        ));
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
    wants: &[NodeWant],
    single_node: bool,
    dry_run: bool,
    say: &dyn Fn(&str),
) -> Result<NodesFixed, KubeError> {
    let mut f = Fixes {
        dry_run,
        say,
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
        let want = wants.iter().find(|w| w.name == name);
        if let Some((patch, said)) = node_patch(want, &v, single_node) {
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
            for s in said {
                f.act(s);
            }
        }
        seen.push(name);
    }
    let missing = wants
        .iter()
        .filter(|w| !seen.contains(&w.name))
        .map(|w| w.name.clone())
        .collect();
    Ok(NodesFixed {
        fixed: f.done,
        missing,
    })
}

/// Detect and fix; returns what was (or, on a dry run, would be) done.
pub async fn heal_api(client: &kube::Client, o: &Options<'_>) -> Result<Vec<String>, KubeError> {
    let mut done = ensure_registry_hosting(client, &o.configmap, o.dry_run, o.say).await?;
    done.extend(
        ensure_nodes(client, o.nodes, o.single_node, o.dry_run, o.say)
            .await?
            .fixed,
    );
    let mut f = Fixes {
        dry_run: o.dry_run,
        say: o.say,
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
            f.act(format!("{why}: deleted (its controller recreates it)"));
        }
    }
    Ok(f.done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_patch_uncordons_untaints_and_relabels() {
        let want = NodeWant {
            name: "n".into(),
            labels: [("pool".to_string(), "web".to_string())].into(),
            taints: vec!["dedicated=web:NoSchedule".into()],
            ..Default::default()
        };
        let node = json!({"metadata": {"name": "n", "labels": {"pool": "db"}},
            "spec": {"unschedulable": true, "taints": [
                {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}});
        let (patch, said) = node_patch(Some(&want), &node, true).unwrap();
        assert_eq!(
            patch,
            json!({"spec": {"unschedulable": null,
                "taints": [{"key": "dedicated", "effect": "NoSchedule", "value": "web"}]},
                "metadata": {"labels": {"pool": "web"}}})
        );
        assert_eq!(said.len(), 4, "{said:?}");
        // Multi-node: the control-plane taint is how it should be.
        let fine = json!({"metadata": {"name": "n", "labels": {"pool": "web"}},
            "spec": {"taints": [{"key": "dedicated", "value": "web", "effect": "NoSchedule"},
                {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}});
        assert_eq!(node_patch(Some(&want), &fine, false), None);
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
