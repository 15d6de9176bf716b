use serde_json::Value;

use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "runtime-class-missing",
    title: "a pod template naming a RuntimeClass the twin does not have",
    explain: "A pod template sets `runtimeClassName` (`gvisor`, `kata`, `nvidia`) that is not rendered. A k3d or \
kind twin has no such class, so the RuntimeClass admission rejects the pods (`RuntimeClass \"gvisor\" not \
found`); even with the object, the node lacks the sandbox runtime it names.\n\nFix: drop `runtimeClassName` for \
the local environment with a patch (the twin runs the default runc).",
};

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for w in &cx.workloads {
        let Some(rc) = w.spec.get("runtimeClassName").and_then(Value::as_str) else {
            continue;
        };
        if rc.is_empty() || cx.get("RuntimeClass", "", rc).is_some() {
            continue;
        }
        out.push(Finding::on(
            w.doc,
            INFO.id,
            Severity::Error,
            format!("RuntimeClass `{rc}` does not exist on the twin: its pods are rejected"),
            "drop `runtimeClassName` for the local environment with a patch",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn unknown_runtime_classes_only() {
        let dep = |rc: &str| {
            format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d}}\nspec:\n  template:\n    spec: {{runtimeClassName: {rc}, containers: [{{name: a, image: x}}]}}\n")
        };
        let t = twin("");
        assert_eq!(run_check(run, &dep("gvisor"), &t).len(), 1);
        let with = format!("{}---\napiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {{name: gvisor}}\nhandler: runsc\n", dep("gvisor"));
        assert!(run_check(run, &with, &t).is_empty());
        let none = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec: {containers: [{name: a, image: x}]}\n";
        assert!(run_check(run, none, &t).is_empty());
    }
}
