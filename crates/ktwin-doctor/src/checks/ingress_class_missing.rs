use serde_json::Value;

use ktwin_config::Provider;

use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "ingress-class-missing",
    title: "an Ingress whose class has no controller on the twin",
    explain: "An Ingress is served only by the controller of its class (`spec.ingressClassName`, or the old \
`kubernetes.io/ingress.class` annotation). Production's class (`gce`, `alb`, `nginx`) has no controller on the \
twin: k3d runs Traefik (class `traefik`, the default), kind runs none. The Ingress is accepted and never gets an \
address; requests through it go nowhere.\n\nFix: locally, patch the class to one the twin runs (`traefik` on \
k3d) or install that controller; or reach the Service through a NodePort and `cluster.ports`.",
};

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    // Classes the twin serves: its own controller's, and IngressClasses the render brings
    // (their controller comes with them).
    let mut served: Vec<String> = cx
        .of_kind("IngressClass")
        .map(|d| d.name().to_string())
        .collect();
    if cx.twin.provider == Provider::K3d {
        served.push("traefik".into());
    }
    let mut out = Vec::new();
    for d in cx.of_kind("Ingress") {
        let class = d
            .value
            .pointer("/spec/ingressClassName")
            .and_then(Value::as_str)
            .or_else(|| {
                d.value
                    .pointer("/metadata/annotations/kubernetes.io~1ingress.class")
                    .and_then(Value::as_str)
            });
        let msg = match class {
            Some(c) if !served.iter().any(|s| s == c) => format!(
                "ingress class `{c}` has no controller on a {} twin{}: the Ingress never gets an address",
                cx.twin.provider.as_str(),
                if cx.twin.provider == Provider::K3d { " (it runs `traefik`)" } else { "" }
            ),
            None if served.is_empty() => format!(
                "no ingress class, and a {} twin runs no ingress controller: the Ingress never gets an address",
                cx.twin.provider.as_str()
            ),
            _ => continue,
        };
        out.push(Finding::on(
            d,
            INFO.id,
            Severity::Warning,
            msg,
            "locally, use a class the twin runs (`traefik` on k3d) with a patch, or a NodePort and `cluster.ports`",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    fn ing(class: &str) -> String {
        format!("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: web{class}}}\nspec: {{rules: []}}\n")
    }

    #[test]
    fn classes_without_a_controller() {
        let k3d = twin("");
        let gce = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web, annotations: {kubernetes.io/ingress.class: gce}}\nspec: {rules: []}\n";
        assert_eq!(run_check(run, gce, &k3d).len(), 1);
        let traefik = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web}\nspec: {ingressClassName: traefik}\n";
        assert!(run_check(run, traefik, &k3d).is_empty());
        assert!(
            run_check(run, &ing(""), &k3d).is_empty(),
            "k3d's traefik is the default class"
        );
        let kind = twin("cluster: {provider: kind}\n");
        assert_eq!(run_check(run, &ing(""), &kind).len(), 1);
        let with_class = format!("{traefik}---\napiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {{name: traefik}}\nspec: {{controller: traefik.io/ingress-controller}}\n");
        assert!(run_check(run, &with_class, &kind).is_empty());
    }
}
