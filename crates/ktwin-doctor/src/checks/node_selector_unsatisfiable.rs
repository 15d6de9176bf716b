use serde_json::Value;

use crate::k8s::node_selected;
use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "node-selector-unsatisfiable",
    title: "nodeSelector or required node affinity no local node satisfies",
    explain: "The pod selects nodes by labels (nodeSelector, or required node affinity) that no node of the local \
twin carries, so it stays Pending with `didn't match Pod's node affinity/selector`. In production the label comes \
from the node pool (`cloud.google.com/gke-nodepool`, `doks.digitalocean.com/node-pool`, your own role label); \
locally it only exists if ktwin.yaml declares a pool with it. Well-known labels (`kubernetes.io/os`, \
`kubernetes.io/arch`, `kubernetes.io/hostname`) are taken into account.\n\nFix: add an agent pool with the \
label under `cluster.agents`, or patch the selector for local.",
};

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for w in &cx.workloads {
        let constrained = w
            .spec
            .get("nodeSelector")
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty())
            || w.spec
                .pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution")
                .is_some()
            || w.spec.get("nodeName").is_some();
        if !constrained || cx.twin.nodes.iter().any(|n| node_selected(w.spec, n)) {
            continue;
        }
        let wanted = match w.spec.get("nodeSelector").and_then(Value::as_object) {
            Some(m) if !m.is_empty() => m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(","),
            _ => "its required node affinity".into(),
        };
        let pools: Vec<String> = cx
            .twin
            .nodes
            .iter()
            .map(|n| n.pool.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        out.push(Finding::on(
            w.doc,
            INFO.id,
            Severity::Error,
            format!(
                "no local node matches {wanted} (pools: {}); its pods will stay Pending",
                pools.join(", ")
            ),
            "add a pool with these labels under cluster.agents in ktwin.yaml",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    const POOLS: &str = "cluster:\n  agents: [{name: gpu, labels: {acme.io/pool: gpu}}]\n";

    fn dep(spec: &str) -> String {
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: a}}\nspec:\n  template:\n    spec:\n{spec}      containers: [{{name: a, image: x}}]\n")
    }

    #[test]
    fn selector_without_a_pool() {
        let f = run_check(
            run,
            &dep("      nodeSelector: {acme.io/pool: cpu}\n"),
            &twin(POOLS),
        );
        assert_eq!(f.len(), 1);
        assert!(f[0].message.contains("acme.io/pool=cpu"));
        let aff = "      affinity:\n        nodeAffinity:\n          requiredDuringSchedulingIgnoredDuringExecution:\n            nodeSelectorTerms:\n            - matchExpressions: [{key: acme.io/pool, operator: In, values: [cpu, mem]}]\n";
        assert_eq!(run_check(run, &dep(aff), &twin(POOLS)).len(), 1);
    }

    #[test]
    fn pools_and_well_known_labels_satisfy() {
        assert!(run_check(
            run,
            &dep("      nodeSelector: {acme.io/pool: gpu}\n"),
            &twin(POOLS)
        )
        .is_empty());
        assert!(run_check(
            run,
            &dep("      nodeSelector: {kubernetes.io/os: linux}\n"),
            &twin("")
        )
        .is_empty());
        let aff = "      affinity:\n        nodeAffinity:\n          requiredDuringSchedulingIgnoredDuringExecution:\n            nodeSelectorTerms:\n            - matchExpressions: [{key: acme.io/pool, operator: In, values: [cpu]}]\n            - matchExpressions: [{key: acme.io/pool, operator: Exists}]\n";
        assert!(
            run_check(run, &dep(aff), &twin(POOLS)).is_empty(),
            "terms are ORed"
        );
    }
}
