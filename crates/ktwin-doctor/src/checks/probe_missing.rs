use crate::k8s::cname;
use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "probe-missing",
    title: "long-running container without probes",
    explain: "A long-running container with no readiness, liveness or startup probe receives traffic the moment \
it starts and is never restarted when it hangs. Locally this hides start-up ordering bugs (the gateway answers \
502 for the first seconds after every rollout) that production's load balancer then exposes. A container with a \
liveness or startup probe but no readiness probe is reported as info.\n\nFix: add a readinessProbe (and a \
livenessProbe for hang detection) on the port the app serves.",
};

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for w in cx.workloads.iter().filter(|w| w.long_running()) {
        for (list, c) in w.containers() {
            if list != "containers" {
                continue;
            }
            let has = |p: &str| c.get(p).is_some();
            let (r, l, s) = (
                has("readinessProbe"),
                has("livenessProbe"),
                has("startupProbe"),
            );
            if r {
                continue;
            }
            let (sev, msg) = if !l && !s {
                (
                    Severity::Warning,
                    format!(
                        "container `{}` has no readiness, liveness or startup probe",
                        cname(c)
                    ),
                )
            } else {
                (
                    Severity::Info,
                    format!(
                        "container `{}` has no readinessProbe: it gets traffic before it is ready",
                        cname(c)
                    ),
                )
            };
            out.push(
                Finding::on(
                    w.doc,
                    INFO.id,
                    sev,
                    msg,
                    "add a readinessProbe (httpGet or tcpSocket on the serving port)",
                )
                .container(cname(c)),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn flags_containers_without_probes_only() {
        let t = twin("");
        let bad = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec:\n  template:\n    spec:\n      containers: [{name: app, image: x}]\n";
        let f = run_check(run, bad, &t);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(f[0]
            .message
            .contains("no readiness, liveness or startup probe"));
        let ok = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec:\n  template:\n    spec:\n      containers: [{name: app, image: x, readinessProbe: {tcpSocket: {port: 80}}}]\n---\napiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  template:\n    spec:\n      containers: [{name: once, image: x}]\n";
        assert!(
            run_check(run, ok, &t).is_empty(),
            "probed container and Job pass"
        );
    }
}
