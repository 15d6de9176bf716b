use serde_json::Value;

use crate::k8s::items_at;
use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "nodeport-unmapped",
    title: "a NodePort Service the host cannot reach",
    explain: "A NodePort Service is reachable from the laptop only through a host port that k3d/kind map to that \
exact nodePort when the cluster is created. A Service without a fixed `nodePort` gets a random one (so no mapping \
can exist), and one whose nodePort has no `cluster.ports` entry is unreachable from the host — the classic mistake \
is mapping the host port to the Service's `port` or `targetPort` instead of its nodePort.\n\nFix: fix the nodePort \
in the Service and add `{hostPort: H, nodePort: N}` under `cluster.ports`. On k3d, `ktwin up` adds it to the \
running twin (on its load balancer); kind maps host ports only when it creates the nodes, so there it takes \
`ktwin up --recreate`.",
};

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in cx.of_kind("Service") {
        if s.value.pointer("/spec/type").and_then(Value::as_str) != Some("NodePort") {
            continue;
        }
        for p in items_at(&s.value, "/spec/ports") {
            let port = p.get("port").and_then(Value::as_u64).unwrap_or(0);
            let (msg, fix) = match p.get("nodePort").and_then(Value::as_u64) {
                None => (
                    format!("port {port} has no fixed nodePort: Kubernetes picks one at random, so no host port can map to it"),
                    "set `nodePort` (30000–32767) and map it under cluster.ports".to_string(),
                ),
                Some(np) if !cx.twin.ports.iter().any(|m| u64::from(m.node_port) == np) => (
                    format!("nodePort {np} has no cluster.ports mapping: it is unreachable from the host"),
                    match cx.twin.provider {
                        ktwin_config::Provider::K3d => format!("add `{{hostPort: {np}, nodePort: {np}}}` under cluster.ports; `ktwin up` adds it to the running twin"),
                        ktwin_config::Provider::Kind => format!("add `{{hostPort: {np}, nodePort: {np}}}` under cluster.ports, then `ktwin up --recreate`: kind maps host ports only when it creates the nodes"),
                    },
                ),
                Some(_) => continue,
            };
            out.push(Finding::on(s, INFO.id, Severity::Warning, msg, fix));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    fn svc(ports: &str) -> String {
        format!("apiVersion: v1\nkind: Service\nmetadata: {{name: s}}\nspec:\n  type: NodePort\n  selector: {{a: b}}\n  ports: [{ports}]\n")
    }

    #[test]
    fn random_and_unmapped_nodeports() {
        let t = twin("cluster:\n  ports: [{hostPort: 8080, nodePort: 30080}]\n");
        assert_eq!(run_check(run, &svc("{port: 80}"), &t).len(), 1);
        assert!(run_check(run, &svc("{port: 80, nodePort: 30081}"), &t)[0]
            .message
            .contains("30081"));
        assert!(run_check(run, &svc("{port: 80, nodePort: 30080}"), &t).is_empty());
        // The fix says how the mapping reaches the twin on each provider.
        let k3d = &run_check(run, &svc("{port: 80, nodePort: 30081}"), &t)[0];
        assert!(
            k3d.fix.contains("adds it to the running twin"),
            "{}",
            k3d.fix
        );
        let kind =
            twin("cluster:\n  provider: kind\n  ports: [{hostPort: 8080, nodePort: 30080}]\n");
        let f = &run_check(run, &svc("{port: 80, nodePort: 30081}"), &kind)[0];
        assert!(
            f.fix.contains("--recreate") && f.fix.contains("kind maps host ports only"),
            "{}",
            f.fix
        );
        let cluster_ip =
            "apiVersion: v1\nkind: Service\nmetadata: {name: c}\nspec: {ports: [{port: 80}]}\n";
        assert!(run_check(run, cluster_ip, &t).is_empty());
    }
}
