use std::collections::HashSet;

use ktwin_config::Provider;

use ktwin_manifest::doc::BUILT_IN_GROUPS as BUILT_IN;

use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "kind-not-served",
    title: "an object of a kind the twin's cluster does not serve",
    explain: "The manifests hold an object whose API group the twin's cluster does not serve and whose \
CustomResourceDefinition is not in the render: a cloud provider's own kinds (GKE's BackendConfig, \
FrontendConfig and ManagedCertificate, `networking.gke.io`), or an operator's (a ServiceMonitor without the \
prometheus-operator CRDs). The deploy stops at that object with `no matches for kind`; everything after it is \
never applied.\n\nFix: leave the object out of the local environment (an overlay without it), or add its CRD to \
the local manifests.",
};

/// Groups a k3s cluster (k3d) serves out of the box: its Helm controller, its addons and the
/// Traefik it ships (unless disabled).
const K3S: &[&str] = &[
    "helm.cattle.io",
    "k3s.cattle.io",
    "traefik.io",
    "traefik.containo.us",
];

fn group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    // (group, kind) of every CRD in the render.
    let crds: HashSet<(String, String)> = cx
        .of_kind("CustomResourceDefinition")
        .filter_map(|d| {
            let g = d.value.pointer("/spec/group")?.as_str()?;
            let k = d.value.pointer("/spec/names/kind")?.as_str()?;
            Some((g.to_string(), k.to_string()))
        })
        .collect();
    let mut out = Vec::new();
    for d in cx.docs {
        let g = group(d.api_version());
        if BUILT_IN.contains(&g) || (cx.twin.provider == Provider::K3d && K3S.contains(&g)) {
            continue;
        }
        if crds.contains(&(g.to_string(), d.kind().to_string())) {
            continue;
        }
        let whose = if g.ends_with("gke.io")
            || g == "cloud.google.com"
            || g.ends_with(".cnrm.cloud.google.com")
        {
            " (it is GKE's own)"
        } else if g.ends_with("amazonaws.com") || g.ends_with(".aws") {
            " (it is AWS's own)"
        } else if g.ends_with("azure.com") {
            " (it is Azure's own)"
        } else {
            ""
        };
        out.push(Finding::on(
            d,
            INFO.id,
            Severity::Error,
            format!(
                "{} ({}) is not served by a {} twin{whose} and no CustomResourceDefinition for it is rendered: the deploy stops here",
                d.kind(),
                d.api_version(),
                cx.twin.provider.as_str()
            ),
            "leave it out of the local environment, or add its CRD to the local manifests",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn cloud_kinds_and_crs_without_crds() {
        let t = twin("");
        let y = "apiVersion: cloud.google.com/v1\nkind: BackendConfig\nmetadata: {name: b}\n---\napiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: m}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\napiVersion: traefik.io/v1alpha1\nkind: Middleware\nmetadata: {name: mw}\n";
        let f = run_check(run, y, &t);
        let kinds: Vec<&str> = f.iter().map(|x| x.object.kind.as_str()).collect();
        assert_eq!(kinds, ["BackendConfig", "ServiceMonitor"], "{f:?}");
        assert!(f[0].message.contains("GKE's own"));
        // With its CRD rendered, a custom resource is served; on kind, Traefik's are not.
        let crd = "---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: servicemonitors.monitoring.coreos.com}\nspec: {group: monitoring.coreos.com, names: {kind: ServiceMonitor, plural: servicemonitors}}\n";
        let f = run_check(run, &format!("{y}{crd}"), &t);
        assert_eq!(f.len(), 1);
        let kind = twin("cluster: {provider: kind}\n");
        let f = run_check(run, y, &kind);
        assert!(f.iter().any(|x| x.object.kind == "Middleware"));
    }
}
