use serde_json::Value;

use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "priority-class-missing",
    title: "a pod template naming a PriorityClass the twin does not have",
    explain: "A pod template sets `priorityClassName` to a class that is neither rendered nor built in \
(`system-cluster-critical`, `system-node-critical`). The Priority admission plugin rejects its pods \
(`no PriorityClass with name high was found`), so nothing of that workload runs.\n\nFix: add the PriorityClass \
to the manifests, or remove `priorityClassName` for the local environment with a patch.",
};

const BUILT_IN: &[&str] = &["system-cluster-critical", "system-node-critical"];

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for w in &cx.workloads {
        let Some(pc) = w.spec.get("priorityClassName").and_then(Value::as_str) else {
            continue;
        };
        if pc.is_empty() || BUILT_IN.contains(&pc) || cx.get("PriorityClass", "", pc).is_some() {
            continue;
        }
        out.push(Finding::on(
            w.doc,
            INFO.id,
            Severity::Error,
            format!("PriorityClass `{pc}` does not exist on the twin: its pods are rejected"),
            "add the PriorityClass to the manifests, or drop `priorityClassName` locally with a patch",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn unknown_classes_only() {
        let dep = |pc: &str| {
            format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d}}\nspec:\n  template:\n    spec: {{priorityClassName: {pc}, containers: [{{name: a, image: x}}]}}\n")
        };
        let t = twin("");
        assert_eq!(run_check(run, &dep("high"), &t).len(), 1);
        assert!(run_check(run, &dep("system-node-critical"), &t).is_empty());
        let with = format!("{}---\napiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {{name: high}}\nvalue: 1000\n", dep("high"));
        assert!(run_check(run, &with, &t).is_empty());
    }
}
