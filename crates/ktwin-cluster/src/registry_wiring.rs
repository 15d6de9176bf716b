//! How nodes reach the one registry: both `localhost:<hostPort>` (the name in rendered image
//! refs, valid on the host) and `<registry-name>:5000` (valid on the cluster network) mirror to
//! `http://<registry-name>:5000`, and the KEP-1755 ConfigMap tells Tilt/Skaffold where it is.

use ktwin_config::desired::RegistryAddr;
use serde_json::{json, Value};

/// containerd `hosts.toml` for one mirrored host (kind nodes, and the tier-2 stand-in node).
pub fn hosts_toml(host: &str, endpoint: &str) -> String {
    format!("server = \"http://{host}\"\n\n[host.\"{endpoint}\"]\n  capabilities = [\"pull\", \"resolve\"]\n")
}

/// k3s `registries.yaml` with both mirrors.
pub fn k3s_registries_yaml(r: &RegistryAddr) -> String {
    let mut s = String::from("mirrors:\n");
    for (host, endpoint) in r.mirrors() {
        s.push_str(&format!(
            "  \"{host}\":\n    endpoint:\n      - \"{endpoint}\"\n"
        ));
    }
    s
}

/// The StorageClass of `cluster.persistentVolumes`: local-path-provisioner's, with a
/// directory per claim named `<namespace>/<claim>/` (its `pathPattern` parameter, v0.0.29 or
/// newer, which requires the path to start so), under the node storage path each node mounts
/// from the host. Binding waits for the first consumer, as the provider's own class does.
pub fn persistent_storage_class() -> Value {
    serde_json::json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": ktwin_config::PERSISTENT_CLASS,
            "labels": {"app.kubernetes.io/managed-by": "ktwin"},
        },
        "provisioner": "rancher.io/local-path",
        "parameters": {"pathPattern": "{{ .PVC.Namespace }}/{{ .PVC.Name }}/"},
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    })
}

/// `kube-public/local-registry-hosting` (KEP-1755) with all four fields.
pub fn kep1755_configmap(r: &RegistryAddr) -> Value {
    let doc = format!(
        "host: \"{}\"\nhostFromContainerRuntime: \"{}\"\nhostFromClusterNetwork: \"{}\"\nhelp: \"https://ktwin.dev/registry\"\n",
        r.host(),
        r.in_network(),
        r.in_network()
    );
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "local-registry-hosting", "namespace": "kube-public"},
        "data": {"localRegistryHosting.v1": doc}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_names_mirror_to_the_network_endpoint() {
        let r = RegistryAddr::of(&ktwin_config::Registry::default());
        assert_eq!(
            r.mirrors(),
            [
                (
                    "localhost:5001".to_string(),
                    "http://ktwin-registry:5000".to_string()
                ),
                (
                    "ktwin-registry:5000".to_string(),
                    "http://ktwin-registry:5000".to_string()
                )
            ]
        );
        let cm = kep1755_configmap(&r);
        let doc = cm["data"]["localRegistryHosting.v1"].as_str().unwrap();
        for f in [
            "host:",
            "hostFromContainerRuntime:",
            "hostFromClusterNetwork:",
            "help:",
        ] {
            assert!(doc.contains(f), "{f}");
        }
        let parsed: Value = serde_saphyr::from_str(doc).unwrap();
        assert_eq!(parsed["host"], "localhost:5001");
        assert!(hosts_toml("localhost:5001", "http://ktwin-registry:5000")
            .contains("[host.\"http://ktwin-registry:5000\"]"));
    }
}
