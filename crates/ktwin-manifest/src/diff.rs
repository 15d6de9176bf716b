//! What one environment changes relative to another, object by object, grouped by concern.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

use crate::doc::{Document, ObjRef};
use crate::output::REDACTED;

/// Concerns in the order reports list them.
pub const CONCERNS: &[&str] = &[
    "images",
    "pull policy",
    "pull secrets",
    "storage",
    "resources",
    "env/config values",
    "secrets",
    "security context",
    "probes",
    "placement",
    "replicas",
    "service type and ports",
    "metadata",
    "other",
];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffEntry {
    pub object: ObjRef,
    pub concern: &'static str,
    pub path: String,
    pub from: Option<Value>,
    pub to: Option<Value>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvDiff {
    pub changes: Vec<DiffEntry>,
    pub only_in: BTreeMap<String, Vec<ObjRef>>,
}

fn key(d: &Document) -> (String, String) {
    (d.kind().to_string(), d.name().to_string())
}

/// Compare `from` (e.g. dev) with `to` (e.g. local). Objects match by kind and name; namespaces
/// are normalised away. Secret values are never shown, only that they differ.
pub fn diff(from_name: &str, from: &[Document], to_name: &str, to: &[Document]) -> EnvDiff {
    let mut out = EnvDiff::default();
    let to_by_key: HashMap<(String, String), &Document> = to.iter().map(|d| (key(d), d)).collect();
    let from_keys: std::collections::HashSet<(String, String)> = from.iter().map(key).collect();
    for f in from {
        let Some(t) = to_by_key.get(&key(f)) else {
            out.only_in
                .entry(from_name.to_string())
                .or_default()
                .push(f.obj_ref());
            continue;
        };
        let mut entries = Vec::new();
        walk(&f.value, &t.value, &mut Vec::new(), &mut entries);
        let obj = t.obj_ref();
        for (segs, a, b) in entries {
            let path = render_path(&segs);
            if path == "metadata.namespace" {
                continue;
            }
            let concern = concern(f.kind(), &segs);
            let secret = crate::output::is_secret_field(f.kind(), segs.iter().map(String::as_str));
            let hide = |v: Option<Value>| {
                if secret {
                    v.map(|_| Value::String(REDACTED.into()))
                } else {
                    v
                }
            };
            out.changes.push(DiffEntry {
                object: obj.clone(),
                concern,
                path,
                from: hide(a),
                to: hide(b),
            });
        }
    }
    for t in to {
        if !from_keys.contains(&key(t)) {
            out.only_in
                .entry(to_name.to_string())
                .or_default()
                .push(t.obj_ref());
        }
    }
    out.changes.sort_by_key(|e| {
        CONCERNS
            .iter()
            .position(|c| *c == e.concern)
            .unwrap_or(usize::MAX)
    });
    out
}

type Leaf = (Vec<String>, Option<Value>, Option<Value>);

fn named(arr: &[Value]) -> Option<Vec<&str>> {
    let names: Option<Vec<&str>> = arr
        .iter()
        .map(|v| v.get("name").and_then(Value::as_str))
        .collect();
    let names = names?;
    let mut uniq = names.clone();
    uniq.sort_unstable();
    uniq.dedup();
    (uniq.len() == names.len()).then_some(names)
}

fn walk(a: &Value, b: &Value, path: &mut Vec<String>, out: &mut Vec<Leaf>) {
    if a == b {
        return;
    }
    match (a, b) {
        (Value::Object(ma), Value::Object(mb)) => {
            for (k, va) in ma {
                path.push(k.clone());
                match mb.get(k) {
                    Some(vb) => walk(va, vb, path, out),
                    None => out.push((path.clone(), Some(va.clone()), None)),
                }
                path.pop();
            }
            for (k, vb) in mb {
                if !ma.contains_key(k) {
                    path.push(k.clone());
                    out.push((path.clone(), None, Some(vb.clone())));
                    path.pop();
                }
            }
        }
        (Value::Array(xa), Value::Array(xb)) => {
            if let (Some(na), Some(nb)) = (named(xa), named(xb)) {
                for (i, n) in na.iter().enumerate() {
                    path.push(format!("[{n}]"));
                    match nb.iter().position(|m| m == n) {
                        Some(j) => walk(&xa[i], &xb[j], path, out),
                        None => out.push((path.clone(), Some(xa[i].clone()), None)),
                    }
                    path.pop();
                }
                for (j, n) in nb.iter().enumerate() {
                    if !na.contains(n) {
                        path.push(format!("[{n}]"));
                        out.push((path.clone(), None, Some(xb[j].clone())));
                        path.pop();
                    }
                }
            } else if xa.len() == xb.len() {
                for (i, (va, vb)) in xa.iter().zip(xb).enumerate() {
                    path.push(format!("[{i}]"));
                    walk(va, vb, path, out);
                    path.pop();
                }
            } else {
                out.push((path.clone(), Some(a.clone()), Some(b.clone())));
            }
        }
        _ => out.push((path.clone(), Some(a.clone()), Some(b.clone()))),
    }
}

fn render_path(segs: &[String]) -> String {
    let mut s = String::new();
    for seg in segs {
        if seg.starts_with('[') {
            s.push_str(seg);
        } else {
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(seg);
        }
    }
    s
}

fn concern(kind: &str, segs: &[String]) -> &'static str {
    let has = |k: &str| segs.iter().any(|s| s == k);
    let last = segs.last().map(String::as_str).unwrap_or("");
    let first = segs.first().map(String::as_str).unwrap_or("");
    if last == "image" {
        "images"
    } else if last == "imagePullPolicy" {
        "pull policy"
    } else if has("imagePullSecrets") {
        "pull secrets"
    } else if kind == "Secret" && matches!(first, "data" | "stringData") {
        "secrets"
    } else if has("storageClassName")
        || has("volumeClaimTemplates")
        || has("volumes")
        || has("volumeMounts")
        || kind == "PersistentVolumeClaim"
        || last == "volumeType"
    {
        "storage"
    } else if has("resources") {
        "resources"
    } else if has("env")
        || has("envFrom")
        || (kind == "ConfigMap" && matches!(first, "data" | "binaryData"))
    {
        "env/config values"
    } else if has("securityContext") {
        "security context"
    } else if has("livenessProbe") || has("readinessProbe") || has("startupProbe") {
        "probes"
    } else if has("nodeSelector")
        || has("affinity")
        || has("tolerations")
        || has("topologySpreadConstraints")
        || has("nodeName")
        || has("priorityClassName")
    {
        "placement"
    } else if last == "replicas" {
        "replicas"
    } else if kind == "Service" && first == "spec" {
        "service type and ports"
    } else if first == "metadata" {
        "metadata"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::Source;
    use serde_json::json;

    fn doc(v: Value) -> Document {
        Document {
            value: v,
            source: Source {
                file: "x".into(),
                line: 1,
            },
        }
    }

    #[test]
    fn containers_match_by_name_and_namespaces_are_normalised() {
        let dev = doc(
            json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a","namespace":"prod"},
            "spec":{"replicas":3,"template":{"spec":{"containers":[{"name":"s","image":"x:1"},{"name":"app","image":"a:1","imagePullPolicy":"Always"}]}}}}),
        );
        let local = doc(
            json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a"},
            "spec":{"replicas":1,"template":{"spec":{"containers":[{"name":"app","image":"localhost:5001/a:t","imagePullPolicy":"IfNotPresent"},{"name":"s","image":"x:1"}]}}}}),
        );
        let d = diff("dev", &[dev], "local", &[local]);
        let got: Vec<(&str, &str)> = d
            .changes
            .iter()
            .map(|c| (c.concern, c.path.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("images", "spec.template.spec.containers[app].image"),
                (
                    "pull policy",
                    "spec.template.spec.containers[app].imagePullPolicy"
                ),
                ("replicas", "spec.replicas"),
            ]
        );
        assert!(d.only_in.is_empty());
    }

    #[test]
    fn only_in_and_secret_redaction() {
        let s1 = doc(
            json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"data":{"K":"YQ=="}}),
        );
        let s2 = doc(
            json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"data":{"K":"Yg=="}}),
        );
        let extra = doc(json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"only"}}));
        let d = diff("dev", &[s1], "local", &[s2, extra]);
        assert_eq!(d.changes[0].concern, "secrets");
        assert_eq!(d.changes[0].from, Some(json!(REDACTED)));
        assert_eq!(d.only_in["local"][0].name, "only");
        let j = serde_json::to_string(&d).unwrap();
        assert!(!j.contains("YQ==") && !j.contains("Yg=="));
    }
}
