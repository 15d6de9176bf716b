use std::collections::HashMap;

use base64::Engine;
use ktwin_manifest::Document;
use serde_json::{Map, Value};

use crate::k8s::{cname, label_selector_matches, Workload};
use crate::k8s::{items, items_at};
use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "netpol-blocks-dependency",
    title: "an egress NetworkPolicy that blocks a Service the workload is configured to use",
    explain: "The workload's env — directly, or through a Secret/ConfigMap it loads — names a Service \
(`postgres`, `postgres.data`, `redis.cache.svc.cluster.local:6379`, inside URLs too), but the egress \
NetworkPolicies that select its pods allow no traffic to that Service's pods and port. Without a NetworkPolicy \
controller (many local setups) everything works; with one (k3s ships one, so does prod) connections time out \
and the app reports a database outage.\n\nFix: add an egress rule to the policy with a podSelector (and \
namespaceSelector across namespaces) matching the Service's pods on its port.",
};

/// Hosts a config value names: URL authorities, `host:port`, bare hosts; comma/space separated.
fn hosts(value: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for tok in value.split(|c: char| c.is_whitespace() || c == ',' || c == ';') {
        let authority = match tok.split_once("://") {
            Some((_, rest)) => rest.split(['/', '?', '#']).next().unwrap_or(""),
            None => tok,
        };
        let authority = authority.rsplit('@').next().unwrap_or("");
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty() => {
                (h, Some(p.to_string()))
            }
            _ => (authority, None),
        };
        if !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            out.push((host.to_ascii_lowercase(), port));
        }
    }
    out
}

/// Resolve a host to a Service (namespace, name) as cluster DNS would from `from_ns`.
fn resolve<'a>(
    host: &str,
    from_ns: &str,
    services: &HashMap<(String, String), &'a Document>,
) -> Option<&'a Document> {
    let h = host
        .trim_end_matches('.')
        .trim_end_matches(".cluster.local")
        .trim_end_matches(".svc");
    let parts: Vec<&str> = h.split('.').collect();
    let key = match parts.as_slice() {
        [svc] => (from_ns.to_string(), svc.to_string()),
        [svc, ns] => (ns.to_string(), svc.to_string()),
        _ => return None,
    };
    services.get(&key).copied()
}

/// (where it was found, value) for every env value the container sees. Values are never printed.
fn env_values(cx: &Ctx<'_>, w: &Workload<'_>, c: &Value) -> Vec<(String, String)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let obj_values = |kind: &str, name: &str| -> Vec<(String, String)> {
        let Some(d) = cx.get(kind, w.ns(), name) else {
            return Vec::new();
        };
        let mut v = Vec::new();
        for (k, val) in d
            .value
            .get("data")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let s = val.as_str().unwrap_or("");
            let s = if kind == "Secret" {
                b64.decode(s)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .unwrap_or_default()
            } else {
                s.to_string()
            };
            v.push((format!("{kind} `{name}` key `{k}`"), s));
        }
        for (k, val) in d
            .value
            .get("stringData")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            v.push((
                format!("{kind} `{name}` key `{k}`"),
                val.as_str().unwrap_or("").to_string(),
            ));
        }
        v
    };
    let mut out = Vec::new();
    for e in items(c, "env") {
        let var = e.get("name").and_then(Value::as_str).unwrap_or("?");
        if let Some(v) = e.get("value").and_then(Value::as_str) {
            out.push((format!("env `{var}`"), v.to_string()));
        }
        for (kind, key) in [("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")] {
            if let (Some(n), Some(k)) = (
                e.pointer(&format!("/valueFrom/{key}/name"))
                    .and_then(Value::as_str),
                e.pointer(&format!("/valueFrom/{key}/key"))
                    .and_then(Value::as_str),
            ) {
                out.extend(
                    obj_values(kind, n)
                        .into_iter()
                        .filter(|(w, _)| w.ends_with(&format!("key `{k}`"))),
                );
            }
        }
    }
    for ef in items(c, "envFrom") {
        for (kind, key) in [("Secret", "secretRef"), ("ConfigMap", "configMapRef")] {
            if let Some(n) = ef.pointer(&format!("/{key}/name")).and_then(Value::as_str) {
                out.extend(obj_values(kind, n));
            }
        }
    }
    out
}

fn ns_labels(cx: &Ctx<'_>, ns: &str) -> Map<String, Value> {
    let mut m = cx
        .get("Namespace", "", ns)
        .and_then(|d| {
            d.value
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .cloned()
        })
        .unwrap_or_default();
    m.insert(
        "kubernetes.io/metadata.name".into(),
        Value::String(ns.to_string()),
    );
    m
}

/// Does one egress rule let `from_ns` pods reach the Service's pods on its port?
fn rule_allows(
    cx: &Ctx<'_>,
    rule: &Value,
    policy_ns: &str,
    svc: &Document,
    target_labels: &[&Map<String, Value>],
) -> bool {
    let svc_ns = svc.namespace().unwrap_or("");
    let ports_ok = match rule.get("ports").and_then(Value::as_array) {
        None => true,
        Some(ps) if ps.is_empty() => true,
        Some(ps) => ps.iter().any(|p| {
            let want = p.get("port");
            items_at(&svc.value, "/spec/ports")
                .any(|sp| want.is_none() || want == sp.get("targetPort") || want == sp.get("port"))
        }),
    };
    if !ports_ok {
        return false;
    }
    let Some(peers) = rule.get("to").and_then(Value::as_array) else {
        return true;
    };
    if peers.is_empty() {
        return true;
    }
    peers.iter().any(|peer| {
        if let Some(cidr) = peer.pointer("/ipBlock/cidr").and_then(Value::as_str) {
            return cidr == "0.0.0.0/0";
        }
        let ns_ok = match peer.get("namespaceSelector") {
            Some(sel) => label_selector_matches(sel, Some(&ns_labels(cx, svc_ns))),
            None => svc_ns == policy_ns,
        };
        let pods_ok = match peer.get("podSelector") {
            Some(sel) => target_labels
                .iter()
                .any(|l| label_selector_matches(sel, Some(l))),
            None => true,
        };
        ns_ok && pods_ok
    })
}

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    let policies: Vec<&Document> = cx.of_kind("NetworkPolicy").collect();
    if policies.is_empty() {
        return Vec::new();
    }
    let services: HashMap<(String, String), &Document> = cx
        .of_kind("Service")
        .map(|s| {
            (
                (
                    s.namespace().unwrap_or("").to_string(),
                    s.name().to_string(),
                ),
                s,
            )
        })
        .collect();
    let mut out = Vec::new();
    for w in &cx.workloads {
        let egress: Vec<&Document> = policies
            .iter()
            .copied()
            .filter(|p| p.namespace().unwrap_or("") == w.ns())
            .filter(|p| {
                p.value
                    .pointer("/spec/podSelector")
                    .is_some_and(|s| label_selector_matches(s, w.labels))
            })
            .filter(|p| {
                let types = p
                    .value
                    .pointer("/spec/policyTypes")
                    .and_then(Value::as_array);
                match types {
                    Some(t) => t.iter().any(|x| x.as_str() == Some("Egress")),
                    None => p.value.pointer("/spec/egress").is_some(),
                }
            })
            .collect();
        if egress.is_empty() {
            continue;
        }
        let mut seen = std::collections::HashSet::new();
        for (_, c) in w.containers() {
            for (source, value) in env_values(cx, w, c) {
                for (host, _) in hosts(&value) {
                    let Some(svc) = resolve(&host, w.ns(), &services) else {
                        continue;
                    };
                    let target_labels: Vec<&Map<String, Value>> = match svc
                        .value
                        .pointer("/spec/selector")
                        .and_then(Value::as_object)
                    {
                        Some(sel) => {
                            let l: Vec<_> = cx
                                .selected(svc.namespace().unwrap_or(""), sel)
                                .into_iter()
                                .filter_map(|t| t.labels)
                                .collect();
                            if l.is_empty() {
                                vec![sel]
                            } else {
                                l
                            }
                        }
                        None => Vec::new(),
                    };
                    let allowed = egress.iter().any(|p| {
                        items_at(&p.value, "/spec/egress").any(|r| {
                            rule_allows(cx, r, p.namespace().unwrap_or(""), svc, &target_labels)
                        })
                    });
                    if allowed || !seen.insert((svc.name().to_string(), source.clone())) {
                        continue;
                    }
                    let names = egress
                        .iter()
                        .map(|p| format!("`{}`", p.name()))
                        .collect::<Vec<_>>()
                        .join(", ");
                    out.push(
                        Finding::on(
                            w.doc,
                            INFO.id,
                            Severity::Error,
                            format!(
                                "{source} names Service `{}`{}, but egress NetworkPolicy {names} allows no traffic to it",
                                svc.name(),
                                svc.namespace().map(|n| format!(" in `{n}`")).unwrap_or_default()
                            ),
                            "add an egress rule whose podSelector/namespaceSelector match the Service's pods and port",
                        )
                        .container(cname(c)),
                    );
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    const BASE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: postgres, namespace: data}\nspec: {selector: {app: pg}, ports: [{port: 5432}]}\n---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: pg, namespace: data}\nspec:\n  template:\n    metadata: {labels: {app: pg}}\n    spec: {containers: [{name: pg, image: x}]}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: shop}\ndata: {URL: cG9zdGdyZXM6Ly91OnBAcG9zdGdyZXMuZGF0YS5zdmMuY2x1c3Rlci5sb2NhbDo1NDMyL2Ri}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api, namespace: shop}\nspec:\n  template:\n    metadata: {labels: {app: api}}\n    spec: {containers: [{name: api, image: x, envFrom: [{secretRef: {name: db}}]}]}\n---\n";

    fn policy(egress: &str) -> String {
        format!("{BASE}apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: api-egress, namespace: shop}}\nspec:\n  podSelector: {{matchLabels: {{app: api}}}}\n  policyTypes: [Egress]\n  egress: {egress}\n")
    }

    #[test]
    fn url_in_a_secret_blocked_by_policy() {
        let f = run_check(
            run,
            &policy("[{to: [{podSelector: {matchLabels: {app: redis}}}]}]"),
            &twin(""),
        );
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].message.contains("Secret `db` key `URL`") && f[0].message.contains("postgres")
        );
        assert!(!f[0].message.contains("u:p"), "the value is never printed");
    }

    #[test]
    fn allowing_rule_or_no_policy_passes() {
        let allow = "[{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: data}}, podSelector: {matchLabels: {app: pg}}}], ports: [{port: 5432}]}]";
        assert!(run_check(run, &policy(allow), &twin("")).is_empty());
        assert!(run_check(run, BASE, &twin("")).is_empty());
        let same_ns_only = "[{to: [{podSelector: {matchLabels: {app: pg}}}]}]";
        assert_eq!(
            run_check(run, &policy(same_ns_only), &twin("")).len(),
            1,
            "podSelector alone stays in the policy's namespace"
        );
    }

    #[test]
    fn host_extraction() {
        let h = hosts("postgres://u:p@db.data.svc:5432/x?ssl=1, redis:6379 plain");
        assert_eq!(h[0], ("db.data.svc".into(), Some("5432".into())));
        assert_eq!(h[1], ("redis".into(), Some("6379".into())));
        assert_eq!(h[2].0, "plain");
    }
}
