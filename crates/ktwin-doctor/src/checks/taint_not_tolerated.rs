use crate::k8s::{fmt_taint, node_selected, untolerated};
use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "taint-not-tolerated",
    title: "every node the pod may select has a taint it does not tolerate",
    explain: "The nodes that match the pod's selector all carry a NoSchedule/NoExecute taint the pod does not \
tolerate (a dedicated pool, or kind's control-plane taint once workers exist). The pod stays Pending with \
`had untolerated taint`. Production pools are often tainted by the cloud; the twin carries the same taints \
because ktwin.yaml declares them — so the toleration the manifests forgot shows up here first.\n\nFix: add the \
toleration to the pod spec, or select a pool without the taint.",
};

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for w in &cx.workloads {
        let candidates: Vec<_> = cx
            .twin
            .nodes
            .iter()
            .filter(|n| node_selected(w.spec, n))
            .collect();
        if candidates.is_empty() {
            continue; // node-selector-unsatisfiable reports it
        }
        let blocked: Vec<_> = candidates
            .iter()
            .map(|n| (n, untolerated(w.spec, n)))
            .collect();
        if blocked.iter().all(|(_, t)| !t.is_empty()) {
            let mut taints: Vec<String> = blocked
                .iter()
                .flat_map(|(_, t)| t.iter().map(|x| fmt_taint(x)))
                .collect();
            taints.sort();
            taints.dedup();
            let pools: std::collections::BTreeSet<&str> =
                candidates.iter().map(|n| n.pool.as_str()).collect();
            out.push(Finding::on(
                w.doc,
                INFO.id,
                Severity::Error,
                format!(
                    "every node it may run on (pool {}) has a taint it does not tolerate: {}",
                    pools.into_iter().collect::<Vec<_>>().join(", "),
                    taints.join(", ")
                ),
                "add a matching toleration to the pod spec",
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    const T: &str = "cluster:\n  agents: [{name: boss, labels: {role: boss}, taints: [\"dedicated=boss:NoSchedule\"]}]\n";

    fn dep(spec: &str) -> String {
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: a}}\nspec:\n  template:\n    spec:\n      nodeSelector: {{role: boss}}\n{spec}      containers: [{{name: a, image: x}}]\n")
    }

    #[test]
    fn untolerated_taint() {
        let f = run_check(run, &dep(""), &twin(T));
        assert_eq!(f.len(), 1);
        assert!(f[0].message.contains("dedicated=boss:NoSchedule"));
    }

    #[test]
    fn toleration_or_untainted_node_passes() {
        let tol = "      tolerations: [{key: dedicated, operator: Equal, value: boss, effect: NoSchedule}]\n";
        assert!(run_check(run, &dep(tol), &twin(T)).is_empty());
        let exists = "      tolerations: [{operator: Exists}]\n";
        assert!(run_check(run, &dep(exists), &twin(T)).is_empty());
        let free = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a, image: x}]\n";
        assert!(
            run_check(run, free, &twin(T)).is_empty(),
            "the server node is untainted on k3d"
        );
    }
}
