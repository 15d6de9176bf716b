use serde_json::Value;

use ktwin_manifest::adapt::{claim_class, claim_specs, UNSUPPORTED_ACCESS_MODES};

use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "access-mode-unsupported",
    title: "a ReadWriteMany or ReadOnlyMany claim that local-path will serve",
    explain: "local-path-provisioner (the storage of k3d and kind) provisions only ReadWriteOnce volumes: a claim \
asking for ReadWriteMany or ReadOnlyMany stays Pending with `Only support ReadWriteOnce access mode`, and so do \
its pods. Mapping the production class to local-path does not fix that.\n\nFix: on a single-node twin, \
`adapt.rwxToRwo: true` rewrites such claims to ReadWriteOnce (one node: every pod mounts it anyway); on a \
multi-node twin, install an RWX-capable provisioner (an NFS one) and map the class to it.",
};

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    let a = &cx.twin.adapt;
    let default = cx.twin.provider.default_storage_class();
    let single = cx.twin.nodes.len() <= 1;
    let mut out = Vec::new();
    for d in cx.docs {
        for (ptr, name) in claim_specs(d) {
            let Some(spec) = d.value.pointer(&ptr) else {
                continue;
            };
            let modes: Vec<&str> = spec
                .get("accessModes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter(|m| UNSUPPORTED_ACCESS_MODES.contains(m))
                .collect();
            if modes.is_empty() {
                continue;
            }
            // The class it ends up with: its own if the twin has it, else (adapt.storage)
            // the local-path class.
            let class = claim_class(spec, default);
            let mapped = a.storage_classes.get(class).map(String::as_str);
            let served_by_local_path = match mapped {
                Some(to) => cx.twin.local_path_classes.contains(to),
                None if cx.twin.storage_classes.contains(class) => {
                    cx.twin.local_path_classes.contains(class)
                }
                None => a.storage,
            };
            if !served_by_local_path {
                continue;
            }
            out.push(
                Finding::on(
                    d,
                    INFO.id,
                    Severity::Error,
                    format!(
                        "claim `{name}` asks for {}, which local-path cannot provision: it stays Pending{}",
                        modes.join(" and "),
                        if single { "" } else { " (adapt.rwxToRwo helps only a single-node twin)" }
                    ),
                    if single {
                        "set `adapt.rwxToRwo: true` (one node: ReadWriteOnce serves every pod)"
                    } else {
                        "install an RWX-capable provisioner and map the class to it"
                    },
                )
                .fixed_by("adapt.rwxToRwo", a.rwx_to_rwo && single),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    const PVC: &str = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: shared}\nspec: {accessModes: [ReadWriteMany], storageClassName: nfs-client}\n";

    #[test]
    fn rwx_on_local_path_and_the_knob() {
        let f = run_check(run, PVC, &twin(""));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Error);
        assert!(f[0].message.contains("ReadWriteMany"));
        let on = twin("environments:\n  local:\n    adapt: {rwxToRwo: true}\n");
        assert_eq!(run_check(run, PVC, &on)[0].severity, Severity::Info);
        // Multi-node: the knob does not apply.
        let multi = twin("cluster: {agents: [{name: a}]}\nenvironments:\n  local:\n    adapt: {rwxToRwo: true}\n");
        assert_eq!(run_check(run, PVC, &multi)[0].severity, Severity::Error);
        // A class the twin has from a real RWX provisioner is not local-path's problem.
        let nfs = format!("{PVC}---\napiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {{name: nfs-client}}\nprovisioner: nfs.csi.k8s.io\n");
        assert!(run_check(run, &nfs, &twin("")).is_empty());
        let rwo = PVC.replace("ReadWriteMany", "ReadWriteOnce");
        assert!(run_check(run, &rwo, &twin("")).is_empty());
    }
}
