use serde_json::Value;

use ktwin_config::Provider;

use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "loadbalancer-pending-kind",
    title: "a LoadBalancer Service on a kind twin, which has no load balancer controller",
    explain: "kind runs no load balancer controller: a `type: LoadBalancer` Service keeps `EXTERNAL-IP \
<pending>` forever, and anything that waits for its address (a test, an Ingress status, an init script) waits \
too. (k3d ships k3s's ServiceLB, which does serve it.)\n\nFix: reach it locally through its nodePort and \
`cluster.ports`, run cloud-provider-kind beside the cluster, or use k3d.",
};

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    if cx.twin.provider != Provider::Kind {
        return vec![];
    }
    cx.of_kind("Service")
        .filter(|s| s.value.pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer"))
        .map(|s| {
            Finding::on(
                s,
                INFO.id,
                Severity::Warning,
                "a LoadBalancer Service on a kind twin never gets an external address".into(),
                "reach it through its nodePort and `cluster.ports`, or run cloud-provider-kind",
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn kind_only() {
        let lb = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {type: LoadBalancer, ports: [{port: 80}]}\n";
        assert_eq!(
            run_check(run, lb, &twin("cluster: {provider: kind}\n")).len(),
            1
        );
        assert!(run_check(run, lb, &twin("")).is_empty());
        let cip = lb.replace("LoadBalancer", "ClusterIP");
        assert!(run_check(run, &cip, &twin("cluster: {provider: kind}\n")).is_empty());
    }
}
