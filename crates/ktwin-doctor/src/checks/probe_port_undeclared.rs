use serde_json::Value;

use crate::k8s::{cname, declared_ports};
use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "probe-port-undeclared",
    title: "probe on a port the container does not declare",
    explain: "An httpGet, tcpSocket or grpc probe names a port the container does not declare. A port *name* \
that is not declared cannot be resolved: the probe fails forever and the pod never becomes Ready (or is killed \
in a loop). An undeclared *number* works (declaring ports is optional, so a container that declares none is \
fine), but next to other declared ports it usually means the probe was copied from another service and checks \
the wrong port.\n\nFix: declare the port under `ports:` with that name, or point the probe at a declared \
port.",
};

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for w in &cx.workloads {
        for (_, c) in w.containers() {
            let (names, nums) = declared_ports(c);
            for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
                for handler in ["httpGet", "tcpSocket", "grpc"] {
                    let Some(port) = c
                        .get(probe)
                        .and_then(|p| p.get(handler))
                        .and_then(|h| h.get("port"))
                    else {
                        continue;
                    };
                    let f = match port {
                        Value::String(n) if n.parse::<u64>().is_err() && !names.contains(n) => Some((
                            Severity::Error,
                            format!("{probe} of `{}` uses port name `{n}`, which the container does not declare: the probe can never pass", cname(c)),
                        )),
                        // Declaring ports is optional: a number is only suspicious next to
                        // declared ports it is not among.
                        Value::Number(n)
                            if !nums.is_empty() && n.as_u64().is_some_and(|n| !nums.contains(&n)) =>
                        {
                            Some((
                            Severity::Warning,
                            format!("{probe} of `{}` checks port {n}, which the container does not declare", cname(c)),
                            ))
                        }
                        _ => None,
                    };
                    if let Some((sev, msg)) = f {
                        out.push(
                            Finding::on(
                                w.doc,
                                INFO.id,
                                sev,
                                msg,
                                "declare the port in `ports:` or probe a declared port",
                            )
                            .container(cname(c)),
                        );
                    }
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

    fn dep(c: &str) -> String {
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: a}}\nspec:\n  template:\n    spec:\n      containers: [{c}]\n")
    }

    #[test]
    fn names_and_numbers() {
        let t = twin("");
        let f = run_check(run, &dep("{name: a, image: x, ports: [{name: http, containerPort: 8080}], readinessProbe: {httpGet: {port: web}}, livenessProbe: {tcpSocket: {port: 9000}}}"), &t);
        assert_eq!(
            f.iter().map(|x| x.severity).collect::<Vec<_>>(),
            [Severity::Error, Severity::Warning]
        );
        let ok = run_check(run, &dep("{name: a, image: x, ports: [{name: http, containerPort: 8080}], readinessProbe: {httpGet: {port: http}}, livenessProbe: {tcpSocket: {port: 8080}}}"), &t);
        assert!(ok.is_empty());
        // No ports declared at all: a numeric probe is fine, a named one still cannot resolve.
        let none = run_check(run, &dep("{name: a, image: x, readinessProbe: {httpGet: {port: 8080}}, livenessProbe: {httpGet: {port: http}}}"), &t);
        assert_eq!(
            none.iter().map(|x| x.severity).collect::<Vec<_>>(),
            [Severity::Error]
        );
    }
}
