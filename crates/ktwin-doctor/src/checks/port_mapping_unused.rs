use serde_json::Value;

use ktwin_manifest::ObjRef;

use crate::k8s::items_at;
use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "port-mapping-unused",
    title: "a cluster.ports mapping no Service uses",
    explain: "A `cluster.ports` entry maps a host port to a nodePort that no Service exposes. The host port is \
taken for nothing, and usually the Service's nodePort changed (or was never fixed) so `curl localhost:8080` \
gets `connection reset` while everything looks deployed.\n\nFix: set the Service's `nodePort` to the mapped \
one, or change/remove the mapping (a port change needs `ktwin up --recreate`).",
};

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    let used: Vec<u64> = cx
        .of_kind("Service")
        .flat_map(|s| items_at(&s.value, "/spec/ports"))
        .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
        .collect();
    let mut out = Vec::new();
    for (i, m) in cx.twin.ports.iter().enumerate() {
        if used.contains(&u64::from(m.node_port)) {
            continue;
        }
        out.push(Finding {
            check: INFO.id,
            severity: Severity::Warning,
            object: ObjRef {
                api_version: ktwin_config::API_VERSION.into(),
                kind: ktwin_config::KIND.into(),
                namespace: None,
                name: cx.twin.project.clone(),
            },
            container: None,
            message: format!(
                "cluster.ports maps host port {} to nodePort {}, which no Service uses",
                m.host_port, m.node_port
            ),
            fix: "point a Service's nodePort at it, or remove the mapping".into(),
            fixed_by: None,
            file: cx.twin.project_file.clone(),
            line: cx.twin.port_lines.get(i).copied().flatten(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn unused_mapping_points_at_ktwin_yaml() {
        let t = twin("cluster:\n  ports:\n    - {hostPort: 8080, nodePort: 30080}\n    - {hostPort: 8443, nodePort: 30443}\n");
        let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  type: NodePort\n  ports: [{port: 80, nodePort: 30080}]\n";
        let f = run_check(run, svc, &t);
        assert_eq!(f.len(), 1);
        assert!(f[0].message.contains("30443"));
        assert_eq!(f[0].line, Some(7));
        assert_eq!(f[0].object.kind, "Project");
    }
}
