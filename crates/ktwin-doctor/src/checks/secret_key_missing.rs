use serde_json::Value;

use crate::k8s::cname;
use crate::k8s::items;
use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "secret-key-missing",
    title: "a secretKeyRef/configMapKeyRef to a missing object or key",
    explain: "A container reads an env var from a Secret or ConfigMap key (or loads a whole one with envFrom) that \
does not exist in the environment, and the reference is not `optional: true`. The pod never starts: \
`CreateContainerConfigError: couldn't find key DATABASE_URL in Secret swarm/app-secrets`. Locally the Secret is \
usually built from an env file that lacks a key prod has.\n\nFix: add the key to the env file or manifest, or \
mark the reference optional.",
};

fn keys(d: &ktwin_manifest::Document) -> Vec<&str> {
    ["data", "stringData", "binaryData"]
        .iter()
        .flat_map(|f| {
            d.value
                .get(*f)
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(k, _)| k.as_str())
        })
        .collect()
}

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for w in &cx.workloads {
        for (_, c) in w.containers() {
            let mut refs: Vec<(&str, &str, Option<&str>, String)> = Vec::new();
            for e in items(c, "env") {
                let var = e.get("name").and_then(Value::as_str).unwrap_or("?");
                for (kind, key) in [("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")] {
                    let Some(r) = e.pointer(&format!("/valueFrom/{key}")) else {
                        continue;
                    };
                    if r.get("optional").and_then(Value::as_bool) == Some(true) {
                        continue;
                    }
                    let (Some(n), Some(k)) = (
                        r.get("name").and_then(Value::as_str),
                        r.get("key").and_then(Value::as_str),
                    ) else {
                        continue;
                    };
                    refs.push((kind, n, Some(k), format!("env `{var}`")));
                }
            }
            for ef in items(c, "envFrom") {
                for (kind, key) in [("Secret", "secretRef"), ("ConfigMap", "configMapRef")] {
                    let Some(r) = ef.get(key) else { continue };
                    if r.get("optional").and_then(Value::as_bool) == Some(true) {
                        continue;
                    }
                    if let Some(n) = r.get("name").and_then(Value::as_str) {
                        refs.push((kind, n, None, "envFrom".into()));
                    }
                }
            }
            for (kind, name, key, via) in refs {
                let msg = match (cx.get(kind, w.ns(), name), key) {
                    (None, _) if kind == "Secret" && cx.secret_exists(w.ns(), name) => continue,
                    (None, _) => format!(
                        "{via} of `{}` reads {kind} `{name}`, which this environment does not have",
                        cname(c)
                    ),
                    (Some(d), Some(k)) if !keys(d).contains(&k) => {
                        format!("{via} of `{}` reads key `{k}` of {kind} `{name}`, which has no such key", cname(c))
                    }
                    _ => continue,
                };
                out.push(
                    Finding::on(w.doc, INFO.id, Severity::Error, msg, format!("add it to the {kind} (for a declared secret, to its env file), or mark the reference `optional: true`"))
                        .container(cname(c)),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: app\n    image: x\n    env:\n    - {name: DB, valueFrom: {secretKeyRef: {name: s, key: DATABASE_URL}}}\n    - {name: O, valueFrom: {configMapKeyRef: {name: c, key: nope, optional: true}}}\n---\n";

    #[test]
    fn missing_key_and_missing_object() {
        let f = run_check(
            run,
            &format!(
                "{POD}apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\ndata: {{OTHER: eA==}}\n"
            ),
            &twin(""),
        );
        assert_eq!(f.len(), 1);
        assert!(f[0].message.contains("key `DATABASE_URL`") && !f[0].message.contains("eA=="));
        assert!(run_check(run, POD, &twin(""))[0]
            .message
            .contains("does not have"));
    }

    #[test]
    fn present_key_passes() {
        let ok = format!("{POD}apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\nstringData: {{DATABASE_URL: x}}\n");
        assert!(run_check(run, &ok, &twin("")).is_empty());
    }
}
