use std::collections::HashSet;

use serde_json::Value;

use crate::k8s::label_selector_matches;
use crate::k8s::{items, items_at};
use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "scrape-target-missing",
    title: "a Prometheus scrape target that names no Service",
    explain: "A Prometheus `scrape_configs` static target in a ConfigMap (`lobboss:9090`, \
`api.shop.svc:8080`) or a ServiceMonitor's selector names a Service that does not exist. Prometheus shows the \
target down (or no target at all), dashboards go blank and alerts on `absent()` fire — or worse, never fire. \
Renamed Services and monitoring moved into its own namespace are the usual causes.\n\nFix: point the target at \
an existing Service (`svc.namespace:port` across namespaces), or label the Service so the ServiceMonitor \
selects it.",
};

/// In-cluster Service name and namespace a host refers to, if it looks like one.
fn service_of(host: &str, own_ns: &str, namespaces: &HashSet<String>) -> Option<(String, String)> {
    let host = host
        .trim_end_matches(".cluster.local")
        .trim_end_matches(".svc");
    let parts: Vec<&str> = host.split('.').collect();
    match parts.as_slice() {
        [svc] if !svc.is_empty() && *svc != "localhost" && svc.parse::<u8>().is_err() => {
            Some((svc.to_string(), own_ns.to_string()))
        }
        [svc, ns] if namespaces.contains(*ns) => Some((svc.to_string(), ns.to_string())),
        _ => None,
    }
}

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    let mut namespaces: HashSet<String> = cx
        .docs
        .iter()
        .filter_map(|d| d.namespace().map(str::to_string))
        .collect();
    namespaces.extend(cx.of_kind("Namespace").map(|d| d.name().to_string()));
    let mut out = Vec::new();
    for cm in cx.of_kind("ConfigMap") {
        let own = cm.namespace().unwrap_or("");
        for (key, v) in cm
            .value
            .get("data")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let Some(text) = v.as_str() else { continue };
            if !text.contains("scrape_configs") {
                continue;
            }
            let Ok(cfg) = serde_saphyr::from_str::<Value>(text) else {
                continue;
            };
            for job in items(&cfg, "scrape_configs") {
                let job_name = job.get("job_name").and_then(Value::as_str).unwrap_or("?");
                for sc in items(job, "static_configs") {
                    for t in items(sc, "targets").filter_map(Value::as_str) {
                        let host = t.rsplit_once(':').map_or(t, |(h, _)| h);
                        let Some((svc, ns)) = service_of(host, own, &namespaces) else {
                            continue;
                        };
                        if cx.get("Service", &ns, &svc).is_none() {
                            out.push(Finding::on(
                                cm,
                                INFO.id,
                                Severity::Warning,
                                format!("{key}: job `{job_name}` scrapes `{t}`, but there is no Service `{svc}` in namespace `{ns}`"),
                                "point the target at an existing Service (svc.namespace:port across namespaces)",
                            ));
                        }
                    }
                }
            }
        }
    }
    for sm in cx.docs.iter().filter(|d| d.is("ServiceMonitor")) {
        let own = sm.namespace().unwrap_or("");
        let Some(sel) = sm.value.pointer("/spec/selector") else {
            continue;
        };
        let any = sm
            .value
            .pointer("/spec/namespaceSelector/any")
            .and_then(Value::as_bool)
            == Some(true);
        let names: Vec<&str> = items_at(&sm.value, "/spec/namespaceSelector/matchNames")
            .filter_map(Value::as_str)
            .collect();
        let found = cx.of_kind("Service").any(|s| {
            let ns = s.namespace().unwrap_or("");
            let ns_ok = any
                || if names.is_empty() {
                    ns == own
                } else {
                    names.contains(&ns)
                };
            ns_ok
                && label_selector_matches(
                    sel,
                    s.value
                        .pointer("/metadata/labels")
                        .and_then(Value::as_object),
                )
        });
        if !found {
            out.push(Finding::on(
                sm,
                INFO.id,
                Severity::Warning,
                "the selector matches no Service's labels in the namespaces it watches: nothing is scraped".into(),
                "label the Service to match spec.selector, or fix spec.namespaceSelector",
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: prom, namespace: mon}\ndata:\n  prometheus.yml: |\n    scrape_configs:\n    - job_name: api\n      static_configs:\n      - targets: ['api.shop:8080', 'node-exporter:9100', 'example.com:443', '10.0.0.1:9100']\n---\napiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: shop, labels: {app: api}}\nspec: {ports: [{port: 8080}]}\n";

    #[test]
    fn static_targets() {
        let f = run_check(run, CM, &twin(""));
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].message.contains("node-exporter:9100"));
    }

    #[test]
    fn service_monitor_selector() {
        let sm = |app: &str| {
            format!("{CM}---\napiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {{name: api, namespace: mon}}\nspec:\n  selector: {{matchLabels: {{app: {app}}}}}\n  namespaceSelector: {{matchNames: [shop]}}\n  endpoints: [{{port: http}}]\n")
        };
        let f = run_check(run, &sm("api"), &twin(""));
        assert_eq!(
            f.iter()
                .filter(|x| x.object.kind == "ServiceMonitor")
                .count(),
            0
        );
        let f = run_check(run, &sm("apii"), &twin(""));
        assert_eq!(
            f.iter()
                .filter(|x| x.object.kind == "ServiceMonitor")
                .count(),
            1
        );
    }
}
