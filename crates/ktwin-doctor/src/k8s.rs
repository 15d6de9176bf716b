//! Reading pod templates, selectors and node matching out of JSON objects.

use std::collections::BTreeMap;

use ktwin_manifest::doc::{pod_spec_pointer, CONTAINER_LISTS};
use ktwin_manifest::Document;
use serde_json::Value;

use crate::twin::Node;

/// The elements of the array at `key` (none when absent or not an array).
pub fn items<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> + 'a {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// The elements of the array at JSON pointer `ptr`.
pub fn items_at<'a>(v: &'a Value, ptr: &str) -> impl Iterator<Item = &'a Value> + 'a {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// A `{key, operator, values}` requirement against the value its key has (`None`: absent).
/// `unknown` answers an operator this version does not know.
fn requirement_holds(e: &Value, val: Option<&str>, unknown: bool) -> bool {
    let vals: Vec<&str> = items(e, "values").filter_map(Value::as_str).collect();
    let num = |s: &str| s.parse::<i64>().ok();
    let cmp = |f: fn(i64, i64) -> bool| match (val.and_then(num), vals.first().and_then(|s| num(s)))
    {
        (Some(a), Some(b)) => f(a, b),
        _ => false,
    };
    match e.get("operator").and_then(Value::as_str).unwrap_or("") {
        "In" => val.is_some_and(|v| vals.contains(&v)),
        "NotIn" => val.is_none_or(|v| !vals.contains(&v)),
        "Exists" => val.is_some(),
        "DoesNotExist" => val.is_none(),
        "Gt" => cmp(|a, b| a > b),
        "Lt" => cmp(|a, b| a < b),
        _ => unknown,
    }
}

/// A pod template inside a workload.
#[derive(Debug, Clone, Copy)]
pub struct Workload<'a> {
    pub doc: &'a Document,
    pub spec: &'a Value,
    pub labels: Option<&'a serde_json::Map<String, Value>>,
}

impl<'a> Workload<'a> {
    pub fn ns(&self) -> &'a str {
        self.doc.namespace().unwrap_or("")
    }
    /// Containers with the list they are in.
    pub fn containers(&self) -> impl Iterator<Item = (&'static str, &'a Value)> + 'a {
        let spec = self.spec;
        CONTAINER_LISTS.iter().flat_map(move |l| {
            spec.get(*l)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(move |c| (*l, c))
        })
    }
    pub fn long_running(&self) -> bool {
        match self.doc.kind() {
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "ReplicationController" => {
                true
            }
            "Pod" => {
                self.spec
                    .get("restartPolicy")
                    .and_then(Value::as_str)
                    .unwrap_or("Always")
                    == "Always"
            }
            _ => false,
        }
    }
    pub fn replicas(&self) -> u64 {
        match self.doc.kind() {
            "Deployment" | "StatefulSet" | "ReplicaSet" | "ReplicationController" => self
                .doc
                .value
                .pointer("/spec/replicas")
                .and_then(Value::as_u64)
                .unwrap_or(1),
            _ => 1,
        }
    }
    pub fn id(&self) -> String {
        format!("{}/{}", self.doc.kind(), self.doc.name())
    }
}

pub fn workloads(docs: &[Document]) -> Vec<Workload<'_>> {
    docs.iter()
        .filter_map(|d| {
            let ptr = pod_spec_pointer(d.kind())?;
            let spec = d.value.pointer(ptr)?;
            let labels = if d.kind() == "Pod" {
                d.value.pointer("/metadata/labels")
            } else {
                d.value.pointer(&format!(
                    "{}/metadata/labels",
                    ptr.trim_end_matches("/spec")
                ))
            }
            .and_then(Value::as_object);
            Some(Workload {
                doc: d,
                spec,
                labels,
            })
        })
        .collect()
}

pub fn cname(c: &Value) -> &str {
    c.get("name").and_then(Value::as_str).unwrap_or("")
}

/// Does a `{matchLabels, matchExpressions}` label selector select these labels?
pub fn label_selector_matches(
    sel: &Value,
    labels: Option<&serde_json::Map<String, Value>>,
) -> bool {
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            if get(k) != v.as_str() {
                return false;
            }
        }
    }
    items(sel, "matchExpressions").all(|e| {
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        requirement_holds(e, get(key), true)
    })
}

/// Does a Service-style selector (plain map) select these labels?
pub fn map_selector_matches(
    sel: &serde_json::Map<String, Value>,
    labels: Option<&serde_json::Map<String, Value>>,
) -> bool {
    !sel.is_empty()
        && sel
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

fn node_expr_matches(e: &Value, node: &Node, fields: bool) -> bool {
    let key = e.get("key").and_then(Value::as_str).unwrap_or("");
    let val: Option<&str> = if fields {
        (key == "metadata.name").then_some(node.name.as_str())
    } else {
        node.labels.get(key).map(String::as_str)
    };
    requirement_holds(e, val, false)
}

/// nodeSelector and required node affinity (terms are ORed, expressions ANDed).
pub fn node_selected(spec: &Value, node: &Node) -> bool {
    if let Some(ns) = spec.get("nodeSelector").and_then(Value::as_object) {
        for (k, v) in ns {
            if node.labels.get(k).map(String::as_str) != v.as_str() {
                return false;
            }
        }
    }
    if let Some(name) = spec.get("nodeName").and_then(Value::as_str) {
        if name != node.name {
            return false;
        }
    }
    let terms = spec
        .pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array);
    match terms {
        Some(terms) if !terms.is_empty() => terms.iter().any(|t| {
            let exprs = t.get("matchExpressions").and_then(Value::as_array);
            let fields = t.get("matchFields").and_then(Value::as_array);
            exprs
                .into_iter()
                .flatten()
                .all(|e| node_expr_matches(e, node, false))
                && fields
                    .into_iter()
                    .flatten()
                    .all(|e| node_expr_matches(e, node, true))
        }),
        _ => true,
    }
}

/// Taints of the node the pod does not tolerate (NoSchedule / NoExecute only).
pub fn untolerated<'n>(spec: &Value, node: &'n Node) -> Vec<&'n (String, Option<String>, String)> {
    let tols: Vec<&Value> = items(spec, "tolerations").collect();
    node.taints
        .iter()
        .filter(|(_, _, effect)| effect != "PreferNoSchedule")
        .filter(|(k, v, effect)| {
            !tols.iter().any(|t| {
                let tk = t.get("key").and_then(Value::as_str).unwrap_or("");
                let op = t.get("operator").and_then(Value::as_str).unwrap_or("Equal");
                let te = t.get("effect").and_then(Value::as_str).unwrap_or("");
                let key_ok = tk.is_empty() && op == "Exists" || tk == k;
                let val_ok = op == "Exists"
                    || t.get("value").and_then(Value::as_str).unwrap_or("")
                        == v.as_deref().unwrap_or("");
                let eff_ok = te.is_empty() || te == effect;
                key_ok && val_ok && eff_ok
            })
        })
        .collect()
}

pub fn fmt_taint(t: &(String, Option<String>, String)) -> String {
    match &t.1 {
        Some(v) => format!("{}={}:{}", t.0, v, t.2),
        None => format!("{}:{}", t.0, t.2),
    }
}

pub fn fmt_labels(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Nodes a pod may land on: selected and every hard taint tolerated.
pub fn eligible_nodes<'n>(spec: &Value, nodes: &'n [Node]) -> Vec<&'n Node> {
    nodes
        .iter()
        .filter(|n| node_selected(spec, n) && untolerated(spec, n).is_empty())
        .collect()
}

/// Names and numbers of the ports a container declares.
pub fn declared_ports(c: &Value) -> (Vec<String>, Vec<u64>) {
    let mut names = Vec::new();
    let mut nums = Vec::new();
    for p in items(c, "ports") {
        if let Some(n) = p.get("name").and_then(Value::as_str) {
            names.push(n.to_string());
        }
        if let Some(n) = p.get("containerPort").and_then(Value::as_u64) {
            nums.push(n);
        }
    }
    (names, nums)
}

/// The claims a pod mounts: (volume name, claim name).
pub fn claims(spec: &Value) -> Vec<(String, String)> {
    items(spec, "volumes")
        .filter_map(|v| {
            let claim = v.pointer("/persistentVolumeClaim/claimName")?.as_str()?;
            Some((v.get("name")?.as_str()?.to_string(), claim.to_string()))
        })
        .collect()
}

pub use ktwin_manifest::adapt::sets_ownership;
