use serde_json::Value;

use crate::k8s::items_at;
use crate::{CheckInfo, Ctx, Finding, Severity};

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
        let mut claims: Vec<(String, &str)> = Vec::new();
        if d.is("PersistentVolumeClaim") {
            if let Some(sc) = d
                .value
                .pointer("/spec/storageClassName")
                .and_then(Value::as_str)
            {
                claims.push((format!("claim `{}`", d.name()), sc));
            }
        }
        if d.is("StatefulSet") {
            for v in items_at(&d.value, "/spec/volumeClaimTemplates") {
                if let Some(sc) = v.pointer("/spec/storageClassName").and_then(Value::as_str) {
                    let n = v
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("?");
                    claims.push((format!("volumeClaimTemplate `{n}`"), sc));
                }
            }
        }
        for (what, sc) in claims {
            if sc.is_empty() || cx.twin.storage_classes.contains(sc) {
                continue;
            }
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
                        "{what} uses storage class `{sc}`, which a {} twin does not have: it stays Pending",
                        cx.twin.provider.as_str()
                    ),
                    format!(
                        "map it with adapt.storageClasses: {{{sc}: {}}} (adapt.storage does this by default)",
                        cx.twin.provider.default_storage_class()
                    ),
                )
                .fixed_by(knob, explicit || a.storage),
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
    fn local_and_rendered_classes_pass() {
        let y = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: c}\nspec: {storageClassName: local-path}\n---\napiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: gp3}\nprovisioner: x\n---\n".to_string() + PVC.replace("name: c", "name: d").as_str();
        assert!(run_check(run, &y, &twin("")).is_empty());
    }
}
