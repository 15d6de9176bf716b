use serde_json::Value;

use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "service-selects-nothing",
    title: "a Service whose selector matches no pod template",
    explain: "The Service's selector matches the labels of no pod template in its namespace, so it has no \
endpoints: clients get `connection refused` or hang, and nothing in `kubectl get` looks wrong. It usually comes \
from a relabel in one overlay, or a typo in `app:`.\n\nFix: make the selector equal to the pod template's \
labels (or remove the selector for a Service with manually managed endpoints).",
};

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in cx.of_kind("Service") {
        if s.value.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName") {
            continue;
        }
        let Some(sel) = s.value.pointer("/spec/selector").and_then(Value::as_object) else {
            continue;
        };
        if sel.is_empty() {
            continue;
        }
        let ns = s.namespace().unwrap_or("");
        if !cx.selected(ns, sel).is_empty() {
            continue;
        }
        let want = sel
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(",");
        out.push(Finding::on(
            s,
            INFO.id,
            Severity::Error,
            format!("selector {want} matches no pod template in namespace `{}`: the Service has no endpoints", if ns.is_empty() { "default" } else { ns }),
            "make the selector equal to the workload's pod template labels",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    const DEP: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec:\n  template:\n    metadata: {labels: {app: web, tier: fe}}\n    spec:\n      containers: [{name: a, image: x}]\n---\n";

    #[test]
    fn selector_must_match_a_template() {
        let bad = format!("{DEP}apiVersion: v1\nkind: Service\nmetadata: {{name: s}}\nspec: {{selector: {{app: wbe}}}}\n");
        assert_eq!(run_check(run, &bad, &twin("")).len(), 1);
        let ok = format!("{DEP}apiVersion: v1\nkind: Service\nmetadata: {{name: s}}\nspec: {{selector: {{app: web}}}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: ext}}\nspec: {{ports: [{{port: 80}}]}}\n");
        assert!(run_check(run, &ok, &twin("")).is_empty());
        let other_ns = format!("{DEP}apiVersion: v1\nkind: Service\nmetadata: {{name: s, namespace: x}}\nspec: {{selector: {{app: web}}}}\n");
        assert_eq!(
            run_check(run, &other_ns, &twin("")).len(),
            1,
            "selectors do not cross namespaces"
        );
    }
}
