use serde_json::Value;

use crate::k8s::items;
use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "secret-volume-missing",
    title: "a Secret or ConfigMap volume whose object is not rendered",
    explain: "A pod mounts a Secret or ConfigMap (a `secret`/`configMap` volume, or one in a `projected` volume) \
that the environment neither renders nor declares under `secrets:`, and the volume is not `optional`. In \
production the object was made out of band (a sealed secret, an operator, `kubectl create secret`); on the twin \
the pod sits in ContainerCreating with `MountVolume.SetUp failed … not found` and no error anywhere \
else.\n\nFix: declare the Secret under the local environment's `secrets:` (from a git-ignored env file), add the \
ConfigMap to the manifests, or mark the volume `optional: true` if the app copes without it.",
};

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for w in &cx.workloads {
        let ns = w.ns();
        let mut wants: Vec<(&str, &str, &str)> = Vec::new(); // (kind, name, volume)
        for v in items(w.spec, "volumes") {
            let vol = v.get("name").and_then(Value::as_str).unwrap_or("?");
            let optional = |src: &Value| src.get("optional").and_then(Value::as_bool) == Some(true);
            if let Some(s) = v.get("secret") {
                if let Some(n) = s.get("secretName").and_then(Value::as_str) {
                    if !optional(s) {
                        wants.push(("Secret", n, vol));
                    }
                }
            }
            if let Some(c) = v.get("configMap") {
                if let Some(n) = c.get("name").and_then(Value::as_str) {
                    if !optional(c) {
                        wants.push(("ConfigMap", n, vol));
                    }
                }
            }
            for src in v
                .pointer("/projected/sources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                for (key, kind) in [("secret", "Secret"), ("configMap", "ConfigMap")] {
                    if let Some(s) = src.get(key) {
                        if let Some(n) = s.get("name").and_then(Value::as_str) {
                            if !optional(s) {
                                wants.push((kind, n, vol));
                            }
                        }
                    }
                }
            }
        }
        for (kind, name, vol) in wants {
            let present = match kind {
                "Secret" => cx.secret_exists(ns, name),
                _ => cx.get(kind, ns, name).is_some(),
            };
            if present {
                continue;
            }
            out.push(Finding::on(
                w.doc,
                INFO.id,
                Severity::Error,
                format!("volume `{vol}` mounts {kind} `{name}`, which is not rendered in namespace `{ns}`: the pod never starts"),
                if kind == "Secret" {
                    "declare it under the local environment's `secrets:` (a git-ignored env file)"
                } else {
                    "add the ConfigMap to the manifests"
                },
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    fn dep(vols: &str) -> String {
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d}}\nspec:\n  template:\n    spec:\n      containers: [{{name: a, image: x}}]\n      volumes: {vols}\n")
    }

    #[test]
    fn missing_mounted_objects() {
        let t = twin("");
        let f = run_check(
            run,
            &dep("[{name: tls, secret: {secretName: tls}}, {name: cfg, configMap: {name: cfg}}, {name: p, projected: {sources: [{secret: {name: p}}]}}]"),
            &t,
        );
        assert_eq!(f.len(), 3, "{f:?}");
        let ok = format!(
            "{}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg}}\n",
            dep("[{name: tls, secret: {secretName: tls, optional: true}}, {name: cfg, configMap: {name: cfg}}]")
        );
        assert!(run_check(run, &ok, &t).is_empty());
        // A Secret declared under `secrets:` counts as present.
        let declared =
            twin("environments:\n  local:\n    secrets: [{name: tls, envFile: tls.env}]\n");
        assert!(run_check(
            run,
            &dep("[{name: tls, secret: {secretName: tls}}]"),
            &declared
        )
        .is_empty());
    }
}
