use serde_json::Value;

use crate::k8s::items;
use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "pull-secret-missing",
    title: "imagePullSecrets naming a Secret the environment lacks",
    explain: "The pod names an image pull secret (e.g. `ghcr-pull`) that the environment neither renders nor \
declares. In production a controller or a sealed secret creates it; locally nothing does, and every pod of the \
workload waits in ImagePullBackOff for private images, with only an event to say why.\n\nFix: locally, \
`adapt.pullSecrets` drops pull secrets the twin does not have (its registry needs none); otherwise declare it \
under `secrets:` or render it.",
};

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for w in &cx.workloads {
        for s in items(w.spec, "imagePullSecrets") {
            let Some(name) = s.get("name").and_then(Value::as_str) else {
                continue;
            };
            if cx.secret_exists(w.ns(), name) {
                continue;
            }
            out.push(
                Finding::on(
                    w.doc,
                    INFO.id,
                    Severity::Error,
                    format!("imagePullSecrets names Secret `{name}`, which this environment does not have"),
                    "declare it under `secrets:`, render it, or let adapt.pullSecrets drop it locally",
                )
                .fixed_by("adapt.pullSecrets", cx.twin.adapt.pull_secrets),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    const D: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec:\n  template:\n    spec:\n      imagePullSecrets: [{name: ghcr}]\n      containers: [{name: a, image: x}]\n";

    #[test]
    fn missing_secret_is_reported() {
        let f = run_check(
            run,
            D,
            &twin("environments:\n  local:\n    adapt: {pullSecrets: false}\n"),
        );
        assert_eq!(f[0].severity, Severity::Error);
        assert_eq!(
            run_check(run, D, &twin(""))[0].fixed_by.as_deref(),
            Some("adapt.pullSecrets")
        );
    }

    #[test]
    fn rendered_secret_satisfies_it() {
        let y = format!("{D}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: ghcr}}\n");
        assert!(run_check(run, &y, &twin("")).is_empty());
    }
}
