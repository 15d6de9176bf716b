use serde_json::Value;

use crate::{CheckInfo, Ctx, Finding, Severity};
use ktwin_manifest::adapt::{claim_specs, UNSUPPORTED_ACCESS_MODES};

pub const INFO: CheckInfo = CheckInfo {
    id: "storage-class-missing",
    title: "a claim whose storage class the local provider lacks",
    explain: "A PersistentVolumeClaim or volumeClaimTemplate names a storage class (`do-block-storage`, `gp3`, \
`premium-rwo`) that does not exist on the twin. The claim stays Pending forever and its pods with it; \
`kubectl describe` says `storageclass.storage.k8s.io \"gp3\" not found`.\n\nFix: `adapt.storage` maps classes \
the provider lacks to its local-path class (`local-path` on k3d, `standard` on kind); `adapt.storageClasses` \
chooses the mapping explicitly.",
};

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let a = &cx.twin.adapt;
    for d in cx.docs {
        for (ptr, name) in claim_specs(d) {
            let Some(spec) = d.value.pointer(&ptr) else {
                continue;
            };
            let Some(sc) = spec.get("storageClassName").and_then(Value::as_str) else {
                continue;
            };
            if sc.is_empty() || cx.twin.storage_classes.contains(sc) {
                continue;
            }
            let what = if d.is("PersistentVolumeClaim") {
                format!("claim `{name}`")
            } else {
                format!("volumeClaimTemplate `{name}`")
            };
            // Mapping the class to local-path does not save a claim local-path cannot serve.
            let rwx = spec
                .get("accessModes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|m| {
                    m.as_str()
                        .is_some_and(|m| UNSUPPORTED_ACCESS_MODES.contains(&m))
                });
            let explicit = a.storage_classes.contains_key(sc);
            let knob = if explicit {
                "adapt.storageClasses"
            } else {
                "adapt.storage"
            };
            out.push(
                Finding::on(
                    d,
                    INFO.id,
                    Severity::Error,
                    format!(
                        "{what} uses storage class `{sc}`, which a {} twin does not have: it stays Pending{}",
                        cx.twin.provider.as_str(),
                        if rwx { " (and its access mode is one local-path cannot serve: see access-mode-unsupported)" } else { "" }
                    ),
                    format!(
                        "map it with adapt.storageClasses: {{{sc}: {}}} (adapt.storage does this by default)",
                        cx.twin.provider.default_storage_class()
                    ),
                )
                .fixed_by(knob, (explicit || a.storage) && !rwx),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    const PVC: &str = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: c}\nspec: {storageClassName: gp3}\n";

    #[test]
    fn cloud_class_is_reported() {
        let off = twin("environments:\n  local:\n    adapt: {storage: false}\n");
        assert_eq!(run_check(run, PVC, &off)[0].severity, Severity::Error);
        assert_eq!(
            run_check(run, PVC, &twin(""))[0].fixed_by.as_deref(),
            Some("adapt.storage")
        );
    }

    #[test]
    fn a_rwx_claim_is_not_resolved_by_mapping_its_class() {
        let rwx = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: c}\nspec: {storageClassName: efs, accessModes: [ReadWriteMany]}\n";
        let f = run_check(run, rwx, &twin(""));
        assert_eq!(f[0].severity, Severity::Error);
        assert!(f[0].message.contains("access-mode-unsupported"));
    }

    #[test]
    fn local_and_rendered_classes_pass() {
        let y = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: c}\nspec: {storageClassName: local-path}\n---\napiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: gp3}\nprovisioner: x\n---\n".to_string() + PVC.replace("name: c", "name: d").as_str();
        assert!(run_check(run, &y, &twin("")).is_empty());
    }
}
