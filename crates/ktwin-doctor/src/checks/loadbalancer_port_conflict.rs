use serde_json::Value;

use ktwin_config::Provider;

use crate::k8s::items_at;
use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "loadbalancer-port-conflict",
    title: "a LoadBalancer Service on a port k3s's Traefik already takes",
    explain: "k3d clusters run k3s with its bundled Traefik ingress, exposed by k3s's service load balancer \
(servicelb/klipper) on ports 80 and 443 of every node. Another LoadBalancer Service on 80 or 443 can never get \
those host ports: its EXTERNAL-IP stays `<pending>` and its svclb pods stay Pending, while in the cloud it got \
its own load balancer.\n\nFix: use an Ingress through Traefik, another port, or disable Traefik with \
`cluster.k3sArgs: [--disable=traefik]` (k3s reads it when the servers are created: `ktwin up --recreate`).",
};

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    // `--disable=traefik` (or a list, `--disable=traefik,servicelb`): each k3sArgs entry is
    // one argument, so only the `=` form reaches k3s.
    let traefik_off = cx.twin.k3s_args.iter().any(|a| {
        a.strip_prefix("--disable=")
            .is_some_and(|v| v.split(',').any(|x| x == "traefik"))
    });
    if cx.twin.provider != Provider::K3d || traefik_off {
        return Vec::new();
    }
    let mut out = Vec::new();
    for s in cx.of_kind("Service") {
        if s.value.pointer("/spec/type").and_then(Value::as_str) != Some("LoadBalancer") {
            continue;
        }
        for p in items_at(&s.value, "/spec/ports") {
            let port = p.get("port").and_then(Value::as_u64).unwrap_or(0);
            if port == 80 || port == 443 {
                out.push(Finding::on(
                    s,
                    INFO.id,
                    Severity::Warning,
                    format!("LoadBalancer port {port} is held by k3s's Traefik on every node: the external IP stays <pending>"),
                    "route through an Ingress, pick another port, or add `k3sArgs: [--disable=traefik]` under cluster (then `ktwin up --recreate`)",
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    fn lb(port: u16) -> String {
        format!("apiVersion: v1\nkind: Service\nmetadata: {{name: s}}\nspec: {{type: LoadBalancer, ports: [{{port: {port}}}]}}\n")
    }

    #[test]
    fn port_80_on_k3d_only() {
        assert_eq!(run_check(run, &lb(80), &twin("")).len(), 1);
        assert!(run_check(run, &lb(8080), &twin("")).is_empty());
        assert!(run_check(run, &lb(443), &twin("cluster: {provider: kind}\n")).is_empty());
        assert!(run_check(
            run,
            &lb(80),
            &twin("cluster: {k3sArgs: [--disable=traefik]}\n")
        )
        .is_empty());
        assert!(
            run_check(
                run,
                &lb(80),
                &twin("cluster: {k3sArgs: [--disable=servicelb]}\n")
            )
            .len()
                == 1
        );
    }
}
