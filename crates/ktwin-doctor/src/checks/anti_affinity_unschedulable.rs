use std::collections::BTreeSet;

use serde_json::Value;

use crate::k8s::items;
use crate::k8s::{eligible_nodes, label_selector_matches};
use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "anti-affinity-unschedulable",
    title: "required anti-affinity or topology spread the twin's nodes cannot satisfy",
    explain: "Required pod anti-affinity against the workload's own pods allows one replica per topology domain \
(per node for `kubernetes.io/hostname`, per zone for `topology.kubernetes.io/zone`). With more replicas than the \
twin has eligible domains, the extra replicas stay Pending — prod has 12 nodes in 3 zones, the laptop has 3 \
nodes in none. The same holds for a `DoNotSchedule` topology spread whose topologyKey no eligible node carries, \
or whose `minDomains` exceeds the domains there are.\n\nFix: lower the replicas locally (a patch), relax to \
`preferred…` anti-affinity, or add nodes/labels to the pools in ktwin.yaml.",
};

fn domains(nodes: &[&crate::twin::Node], key: &str) -> BTreeSet<String> {
    nodes
        .iter()
        .filter_map(|n| n.labels.get(key).cloned())
        .collect()
}

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for w in &cx.workloads {
        if w.doc.is("DaemonSet") {
            continue;
        }
        let replicas = w.replicas();
        let eligible = eligible_nodes(w.spec, &cx.twin.nodes);
        if eligible.is_empty() {
            continue; // reported by the selector/taint checks
        }
        let terms = w
            .spec
            .pointer("/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution")
            .and_then(Value::as_array);
        for t in terms.into_iter().flatten() {
            let Some(sel) = t.get("labelSelector") else {
                continue;
            };
            if !label_selector_matches(sel, w.labels) {
                continue;
            }
            let key = t.get("topologyKey").and_then(Value::as_str).unwrap_or("");
            let d = domains(&eligible, key).len() as u64;
            if replicas > d {
                out.push(Finding::on(
                    w.doc,
                    INFO.id,
                    Severity::Error,
                    format!(
                        "{replicas} replicas with required anti-affinity on `{key}` need {replicas} domains; the twin's eligible nodes offer {d}: {} stay Pending",
                        replicas - d
                    ),
                    "patch replicas down for local, use preferred anti-affinity, or add nodes to the pool",
                ));
            }
        }
        for c in items(w.spec, "topologySpreadConstraints") {
            if c.get("whenUnsatisfiable").and_then(Value::as_str) != Some("DoNotSchedule") {
                continue;
            }
            let key = c.get("topologyKey").and_then(Value::as_str).unwrap_or("");
            let d = domains(&eligible, key).len() as u64;
            let min = c.get("minDomains").and_then(Value::as_u64);
            let msg = if d == 0 {
                Some(format!("topology spread on `{key}` (DoNotSchedule), but no eligible node carries that label: every pod stays Pending"))
            } else {
                min.filter(|m| *m > d && replicas >= *m).map(|m| {
                    format!("topology spread on `{key}` wants minDomains {m}; the twin's eligible nodes offer {d}")
                })
            };
            if let Some(msg) = msg {
                out.push(Finding::on(
                    w.doc,
                    INFO.id,
                    Severity::Error,
                    msg,
                    "give the pool nodes that label, or use ScheduleAnyway locally",
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    fn dep(replicas: u32, extra: &str) -> String {
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: a}}\nspec:\n  replicas: {replicas}\n  template:\n    metadata: {{labels: {{app: a}}}}\n    spec:\n{extra}      containers: [{{name: a, image: x}}]\n")
    }
    const AA: &str = "      affinity:\n        podAntiAffinity:\n          requiredDuringSchedulingIgnoredDuringExecution:\n          - {labelSelector: {matchLabels: {app: a}}, topologyKey: kubernetes.io/hostname}\n";
    const SPREAD: &str = "      topologySpreadConstraints:\n      - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: a}}}\n";

    #[test]
    fn more_replicas_than_nodes() {
        let t = twin("cluster:\n  agents: [{name: w, count: 2}]\n");
        assert_eq!(
            run_check(run, &dep(4, AA), &t).len(),
            1,
            "3 nodes, 4 replicas"
        );
        assert!(run_check(run, &dep(3, AA), &t).is_empty());
    }

    #[test]
    fn spread_on_a_label_no_node_has() {
        assert_eq!(run_check(run, &dep(2, SPREAD), &twin("")).len(), 1);
        let zoned =
            twin("cluster:\n  agents: [{name: w, labels: {topology.kubernetes.io/zone: a}}]\n");
        assert!(run_check(run, &dep(2, SPREAD), &zoned).is_empty());
    }
}
