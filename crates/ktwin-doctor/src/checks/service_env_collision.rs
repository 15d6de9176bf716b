use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use crate::k8s::cname;
use crate::k8s::items;
use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "service-env-collision",
    title: "a Service whose injected env vars collide with an app's",
    explain: "For every Service `x` in a namespace, the kubelet injects `X_SERVICE_HOST`, `X_SERVICE_PORT`, \
`X_PORT`, `X_PORT_<n>_TCP`… into every pod of that namespace, unless the pod sets `enableServiceLinks: false`. \
An app that reads its own config from `X_*` variables (a Service named `postgres` next to an app reading \
`POSTGRES_PORT`, a Service `redis` and `REDIS_PORT`) gets `tcp://10.43.0.12:5432` instead of `5432` and fails at \
start — often only locally, where everything shares one namespace.\n\nFix: set `enableServiceLinks: false` on \
the pod spec (or rename the Service).",
};

/// `my-svc` → `MY_SVC_`.
fn prefix(name: &str) -> String {
    format!("{}_", name.to_ascii_uppercase().replace('-', "_"))
}

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    let mut by_ns: HashMap<&str, HashMap<String, &str>> = HashMap::new();
    for s in cx.of_kind("Service") {
        by_ns
            .entry(s.namespace().unwrap_or(""))
            .or_default()
            .insert(prefix(s.name()), s.name());
    }
    let mut out = Vec::new();
    for w in &cx.workloads {
        if w.spec.get("enableServiceLinks").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let Some(services) = by_ns.get(w.ns()) else {
            continue;
        };
        for (_, c) in w.containers() {
            let mut vars: BTreeSet<String> = items(c, "env")
                .filter_map(|e| e.get("name").and_then(Value::as_str).map(str::to_string))
                .collect();
            for ef in items(c, "envFrom") {
                let pre = ef.get("prefix").and_then(Value::as_str).unwrap_or("");
                for (kind, key) in [("ConfigMap", "configMapRef"), ("Secret", "secretRef")] {
                    let Some(n) = ef.pointer(&format!("/{key}/name")).and_then(Value::as_str)
                    else {
                        continue;
                    };
                    if let Some(d) = cx.get(kind, w.ns(), n) {
                        for field in ["data", "stringData"] {
                            for k in d
                                .value
                                .get(field)
                                .and_then(Value::as_object)
                                .into_iter()
                                .flatten()
                                .map(|(k, _)| k)
                            {
                                vars.insert(format!("{pre}{k}"));
                            }
                        }
                    }
                }
            }
            let mut hits: Vec<(&str, Vec<&str>)> = Vec::new();
            for (pre, svc) in services {
                let v: Vec<&str> = vars
                    .iter()
                    .filter(|v| v.starts_with(pre.as_str()))
                    .map(String::as_str)
                    .collect();
                if !v.is_empty() {
                    hits.push((svc, v));
                }
            }
            hits.sort();
            for (svc, v) in hits {
                out.push(
                    Finding::on(
                        w.doc,
                        INFO.id,
                        Severity::Warning,
                        format!(
                            "container `{}` uses {} while Service `{svc}` injects {}_SERVICE_HOST, {}_PORT… into the namespace",
                            cname(c),
                            v.join(", "),
                            prefix(svc).trim_end_matches('_'),
                            prefix(svc).trim_end_matches('_')
                        ),
                        "set `enableServiceLinks: false` on the pod spec",
                    )
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

    fn y(links: &str) -> String {
        format!("apiVersion: v1\nkind: Service\nmetadata: {{name: postgres}}\nspec: {{ports: [{{port: 5432}}]}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg}}\ndata: {{POSTGRES_PORT: '5432'}}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: api}}\nspec:\n  template:\n    spec:\n{links}      containers: [{{name: api, image: x, envFrom: [{{configMapRef: {{name: cfg}}}}]}}]\n")
    }

    #[test]
    fn collision_through_envfrom() {
        let f = run_check(run, &y(""), &twin(""));
        assert_eq!(f.len(), 1);
        assert!(
            f[0].message.contains("POSTGRES_PORT") && f[0].message.contains("Service `postgres`")
        );
    }

    #[test]
    fn service_links_off_or_other_names_pass() {
        assert!(run_check(run, &y("      enableServiceLinks: false\n"), &twin("")).is_empty());
        assert!(run_check(run, &y("").replace("POSTGRES_PORT", "DB_PORT"), &twin("")).is_empty());
    }
}
