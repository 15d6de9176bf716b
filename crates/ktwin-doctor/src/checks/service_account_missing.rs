use serde_json::Value;

use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "service-account-missing",
    title: "a pod template naming a ServiceAccount the environment does not have",
    explain: "A pod template sets `serviceAccountName` to an account that is not rendered in its namespace. \
In production it was created by hand, by Terraform or by Workload Identity setup; on the twin the controller's \
pods are rejected (`error looking up service account shop/api: serviceaccount \"api\" not found`) and the \
rollout never starts.\n\nFix: add the ServiceAccount to the manifests (an empty one is enough locally).",
};

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for w in &cx.workloads {
        let Some(sa) = w
            .spec
            .get("serviceAccountName")
            .or_else(|| w.spec.get("serviceAccount"))
            .and_then(Value::as_str)
        else {
            continue;
        };
        if sa.is_empty() || sa == "default" || cx.get("ServiceAccount", w.ns(), sa).is_some() {
            continue;
        }
        out.push(Finding::on(
            w.doc,
            INFO.id,
            Severity::Error,
            format!("ServiceAccount `{sa}` is not rendered in namespace `{}`: its pods are rejected", w.ns()),
            format!("add `apiVersion: v1, kind: ServiceAccount, metadata: {{name: {sa}}}` to the manifests"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn missing_accounts_only() {
        let dep = |sa: &str| {
            format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d}}\nspec:\n  template:\n    spec: {{serviceAccountName: {sa}, containers: [{{name: a, image: x}}]}}\n")
        };
        let t = twin("");
        assert_eq!(run_check(run, &dep("api"), &t).len(), 1);
        assert!(run_check(run, &dep("default"), &t).is_empty());
        let with = format!(
            "{}---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: api}}\n",
            dep("api")
        );
        assert!(run_check(run, &with, &t).is_empty());
    }
}
