use serde_json::Value;

use crate::k8s::{cname, items};
use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "host-network-or-port",
    title: "hostNetwork or a hostPort, which on the twin is the node container, not the laptop",
    explain: "A pod uses `hostNetwork: true` or a container `hostPort`. On a k3d or kind twin the \"host\" is the \
node's container, not your machine: `localhost:<port>` on the laptop reaches nothing, and two pods wanting the \
same hostPort on one node cannot both schedule.\n\nFix: expose it with a NodePort Service and a `cluster.ports` \
entry, or `ktwin` port-forwards.",
};

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for w in &cx.workloads {
        if w.spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
            out.push(Finding::on(
                w.doc,
                INFO.id,
                Severity::Warning,
                "uses hostNetwork: its ports open on the twin's node container, not on this machine".into(),
                "expose it with a NodePort Service and a `cluster.ports` entry",
            ));
        }
        for (_, c) in w.containers() {
            for p in items(c, "ports") {
                if let Some(hp) = p.get("hostPort").and_then(Value::as_u64) {
                    out.push(
                        Finding::on(
                            w.doc,
                            INFO.id,
                            Severity::Warning,
                            format!("container `{}` binds hostPort {hp}: on the twin that is the node container's port, unreachable at localhost:{hp}", cname(c)),
                            "expose it with a NodePort Service and a `cluster.ports` entry",
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

    #[test]
    fn host_network_and_host_ports() {
        let t = twin("");
        let y = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n      hostNetwork: true\n      containers: [{name: a, image: x, ports: [{containerPort: 80, hostPort: 8080}]}]\n";
        assert_eq!(run_check(run, y, &t).len(), 2);
        let ok = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n      containers: [{name: a, image: x, ports: [{containerPort: 80}]}]\n";
        assert!(run_check(run, ok, &t).is_empty());
    }
}
