use crate::k8s::cname;
use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "probe-missing",
    title: "long-running container without a readiness, liveness or startup probe",
    explain: "A long-running container with no readiness probe receives traffic the moment it starts; with no \
liveness probe it is never restarted when it hangs; with no startup probe a slow start is judged by the liveness \
probe alone. Locally this hides start-up ordering bugs (the gateway answers 502 for the first seconds after every \
rollout) that production's load balancer then exposes. The finding names which probes are missing: a missing \
readiness probe is a warning, a missing liveness or startup probe is info.\n\nFix: add a readinessProbe on the \
port the app serves, a livenessProbe for hang detection, and a startupProbe when it starts slowly.",
};

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for w in cx.workloads.iter().filter(|w| w.long_running()) {
        for (list, c) in w.containers() {
            if list != "containers" {
                continue;
            }
            let missing: Vec<&str> = ["readiness", "liveness", "startup"]
                .into_iter()
                .filter(|p| c.get(format!("{p}Probe")).is_none())
                .collect();
            if missing.is_empty() {
                continue;
            }
            let sev = if missing.contains(&"readiness") {
                Severity::Warning
            } else {
                Severity::Info
            };
            let (msg, fix) = match missing.as_slice() {
                [one] => (
                    format!("container `{}` has no {one} probe", cname(c)),
                    format!("add a {one}Probe"),
                ),
                _ => (
                    format!(
                        "container `{}` has no {} probe",
                        cname(c),
                        join_and(&missing)
                    ),
                    if missing.contains(&"readiness") {
                        "add a readinessProbe (httpGet or tcpSocket on the serving port) and a livenessProbe".into()
                    } else {
                        format!("add the {} probes", join_and(&missing))
                    },
                ),
            };
            out.push(Finding::on(w.doc, INFO.id, sev, msg, fix).container(cname(c)));
        }
    }
    out
}

/// `a`, `a or b`, `a, b or c`.
fn join_and(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [a] => a.to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    fn deploy(probes: &str) -> String {
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: a}}\nspec:\n  template:\n    spec:\n      containers: [{{name: app, image: x{probes}}}]\n")
    }

    #[test]
    fn names_the_missing_probes_and_grades_by_readiness() {
        let t = twin("");
        let f = run_check(run, &deploy(""), &t);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Warning);
        assert_eq!(
            f[0].message,
            "container `app` has no readiness, liveness or startup probe"
        );
        let f = run_check(
            run,
            &deploy(", readinessProbe: {tcpSocket: {port: 80}}"),
            &t,
        );
        assert_eq!(f[0].severity, Severity::Info);
        assert_eq!(
            f[0].message,
            "container `app` has no liveness or startup probe"
        );
        let f = run_check(
            run,
            &deploy(
                ", livenessProbe: {tcpSocket: {port: 80}}, startupProbe: {tcpSocket: {port: 80}}",
            ),
            &t,
        );
        assert_eq!(f[0].severity, Severity::Warning);
        assert_eq!(f[0].message, "container `app` has no readiness probe");
        let all = ", readinessProbe: {tcpSocket: {port: 80}}, livenessProbe: {tcpSocket: {port: 80}}, startupProbe: {tcpSocket: {port: 80}}";
        let job = "---\napiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  template:\n    spec:\n      containers: [{name: once, image: x}]\n";
        assert!(
            run_check(run, &format!("{}{job}", deploy(all)), &t).is_empty(),
            "a fully probed container and a Job pass"
        );
    }
}
