use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use crate::k8s::cname;
use crate::k8s::items;
use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "service-env-collision",
    title: "a Service whose injected env vars shadow an app's own config",
    explain: "For every Service `x` with a cluster IP in a namespace, the kubelet injects `X_SERVICE_HOST`, \
`X_SERVICE_PORT`, `X_PORT=tcp://<ip>:<port>`, `X_PORT_<n>_TCP`… into every pod of that namespace, unless the pod \
sets `enableServiceLinks: false` (headless and ExternalName Services inject nothing). A variable the container \
declares itself wins. So the trap is an app that configures itself from `X_*` variables (a Service named \
`postgres` next to an app that sets `POSTGRES_HOST` and `POSTGRES_PASSWORD` and reads `POSTGRES_PORT` with a \
default): it gets `tcp://10.43.0.12:5432` instead of `5432` and fails at start — often only locally, where \
everything shares one namespace.\n\nFix: set `enableServiceLinks: false` on the pod spec (or set the variable \
explicitly, or rename the Service).\n\nSeverity: a warning when the container's command or args name the variable, \
it is given `X_HOST` (so it reads the port apart), or it sets several variables under the prefix; info when a \
single address-like one (`FRONTEND_ADDR`, `DB_URI`, which carry the port) only hints at it.",
};

/// `X_PORT` → `X_`.
fn pre_of(port: &str) -> &str {
    port.strip_suffix("PORT").unwrap_or(port)
}

/// `my-svc` → `MY_SVC_` (the kubelet's `makeEnvVariableName`: upper case, `-` → `_`).
fn prefix(name: &str) -> String {
    format!("{}_", name.to_ascii_uppercase().replace('-', "_"))
}

/// Does the kubelet inject variables for this Service? Only when it has a cluster IP:
/// k8s.io/kubernetes pkg/kubelet/kubelet_pods.go `getServiceEnvVarMap` skips a Service
/// whose ClusterIP is "None" or empty (`v1helper.IsServiceIPSet`), i.e. headless and
/// ExternalName Services.
fn injects(svc: &Value) -> bool {
    let spec = &svc["spec"];
    if spec["type"] == "ExternalName" {
        return false;
    }
    !matches!(spec["clusterIP"].as_str(), Some("None"))
}

/// The variables a Service injects (envvars.FromServices): `X_SERVICE_HOST`, `X_SERVICE_PORT`,
/// `X_SERVICE_PORT_<NAME>`, and the Docker-link forms `X_PORT`, `X_PORT_<p>_<PROTO>[_PROTO|_PORT|_ADDR]`.
fn injected(svc: &Value, pre: &str) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = [
        format!("{pre}SERVICE_HOST"),
        format!("{pre}SERVICE_PORT"),
        format!("{pre}PORT"),
    ]
    .into();
    for p in svc["spec"]["ports"].as_array().into_iter().flatten() {
        let port = p["port"].as_u64().unwrap_or(0);
        let proto = p["protocol"].as_str().unwrap_or("TCP").to_ascii_uppercase();
        if let Some(n) = p["name"].as_str() {
            out.insert(format!(
                "{pre}SERVICE_PORT_{}",
                n.to_ascii_uppercase().replace('-', "_")
            ));
        }
        let base = format!("{pre}PORT_{port}_{proto}");
        for suffix in ["", "_PROTO", "_PORT", "_ADDR"] {
            out.insert(format!("{base}{suffix}"));
        }
    }
    out
}

/// Services that inject variables, by namespace and then by their prefix (`MY_SVC_`): (name,
/// the variables). Looked up from each variable a container declares (its `_`-ended prefixes),
/// so the cost follows the variables, not services × workloads in a namespace.
type Injecting<'a> = HashMap<&'a str, HashMap<String, Vec<(&'a str, BTreeSet<String>)>>>;

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    let mut by_ns: Injecting<'_> = HashMap::new();
    for s in cx.of_kind("Service").filter(|s| injects(&s.value)) {
        let pre = prefix(s.name());
        let inj = injected(&s.value, &pre);
        by_ns
            .entry(s.namespace().unwrap_or(""))
            .or_default()
            .entry(pre)
            .or_default()
            .push((s.name(), inj));
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
            let mut declared: BTreeSet<String> = items(c, "env")
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
                                declared.insert(format!("{pre}{k}"));
                            }
                        }
                    }
                }
            }
            // The app's own configuration under a Service's prefix (a declared variable that
            // starts with it and is not one the Service injects)...
            let mut own_by: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
            for v in &declared {
                for (i, _) in v.match_indices('_') {
                    let pre = &v[..=i];
                    for (svc, inj) in services.get(pre).into_iter().flatten() {
                        if !inj.contains(v) {
                            own_by.entry((*svc, pre)).or_default().push(v);
                        }
                    }
                }
            }
            let mut hits = Vec::new();
            for ((svc, pre), own) in own_by {
                // ...and the injected port it does not set itself (a declared one wins).
                let port = format!("{pre}PORT");
                if declared.contains(&port) {
                    continue;
                }
                hits.push((svc, own, port));
            }
            hits.sort();
            // Evidence the app reads the port variable: its command or args name it, it is
            // given the host on its own (`REDIS_HOST`: the port is then read apart), or it
            // configures itself with several variables under the prefix. One address-like
            // variable alone (`FRONTEND_ADDR`, `DB_URI`: the port is in it) is a hint only.
            let argv: String = ["command", "args"]
                .iter()
                .flat_map(|k| items(c, k))
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ");
            for (svc, own, port) in hits {
                let bare = format!("${port}");
                let referenced = argv.contains(&format!("$({port})"))
                    || argv.contains(&format!("${{{port}}}"))
                    // `$X_PORT`, not `$X_PORT_5432_TCP`.
                    || argv.match_indices(&bare).any(|(i, _)| {
                        !argv[i + bare.len()..]
                            .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                    });
                let host = own
                    .iter()
                    .any(|v| v.strip_prefix(pre_of(&port)) == Some("HOST"));
                let severity = if referenced || host || own.len() >= 2 {
                    Severity::Warning
                } else {
                    Severity::Info
                };
                out.push(
                    Finding::on(
                        w.doc,
                        INFO.id,
                        severity,
                        format!(
                            "container `{}` sets {} but not {port}: Service `{svc}` injects {port}=tcp://<cluster IP>:<port>, which an app reading its port from {port} takes for its own",
                            cname(c),
                            own.join(", "),
                        ),
                        format!("set `enableServiceLinks: false` on the pod spec, or set {port} explicitly"),
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

    fn y(svc_spec: &str, data: &str, links: &str, env: &str) -> String {
        format!("apiVersion: v1\nkind: Service\nmetadata: {{name: postgres}}\nspec: {{{svc_spec}ports: [{{port: 5432}}]}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg}}\ndata: {{{data}}}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: api}}\nspec:\n  template:\n    spec:\n{links}      containers: [{{name: api, image: x, envFrom: [{{configMapRef: {{name: cfg}}}}]{env}}}]\n")
    }

    #[test]
    fn an_app_configured_under_the_prefix_that_leaves_the_port_to_the_kubelet() {
        let f = run_check(
            run,
            &y("", "POSTGRES_HOST: db, POSTGRES_USER: app", "", ""),
            &twin(""),
        );
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].message
                .contains("POSTGRES_HOST, POSTGRES_USER but not POSTGRES_PORT")
                && f[0].message.contains("Service `postgres`"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn no_finding_when_nothing_is_injected_or_the_app_declares_it() {
        let t = twin("");
        let cfg = "POSTGRES_HOST: db";
        // Service links off.
        assert!(run_check(
            run,
            &y("", cfg, "      enableServiceLinks: false\n", ""),
            &t
        )
        .is_empty());
        // Headless and ExternalName Services inject nothing.
        assert!(run_check(run, &y("clusterIP: None, ", cfg, "", ""), &t).is_empty());
        assert!(run_check(
            run,
            &y(
                "type: ExternalName, externalName: db.example.com, ",
                cfg,
                "",
                ""
            ),
            &t
        )
        .is_empty());
        // One variable under the prefix is a hint: info; the command reading the port: warning.
        let uri = "POSTGRES_URI: 'postgres://db:5432/app'";
        let one = run_check(run, &y("", uri, "", ""), &t);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].severity, Severity::Info);
        let reads = run_check(
            run,
            &y("", uri, "", ", command: [sh, -c, 'psql -p $POSTGRES_PORT']"),
            &t,
        );
        assert_eq!(reads[0].severity, Severity::Warning);
        // The host on its own: the port is read apart.
        assert_eq!(
            run_check(run, &y("", cfg, "", ""), &t)[0].severity,
            Severity::Warning
        );
        // The container declares the colliding name itself: its own value wins.
        assert!(run_check(
            run,
            &y("", &format!("{cfg}, POSTGRES_PORT: '5432'"), "", ""),
            &t
        )
        .is_empty());
        assert!(run_check(
            run,
            &y("", cfg, "", ", env: [{name: POSTGRES_PORT, value: '5432'}]"),
            &t
        )
        .is_empty());
        // No configuration under the prefix at all.
        assert!(run_check(run, &y("", "DB_HOST: db", "", ""), &t).is_empty());
    }
}
