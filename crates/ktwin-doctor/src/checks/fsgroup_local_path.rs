use serde_json::Value;

use crate::k8s::items_at;
use crate::k8s::{claims, sets_ownership};
use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "fsgroup-local-path",
    title: "fsGroup/runAsUser on a claim served by local-path",
    explain: "The pod sets fsGroup or runAsUser and mounts a claim that the twin's local-path provisioner serves. \
local-path creates hostPath volumes by default, and the kubelet does not apply fsGroup ownership to hostPath: \
the data directory stays owned by root, and images that must own it (postgres: `initdb: could not change \
permissions of directory`, minio, rabbitmq, elasticsearch) crash-loop locally while prod's CSI volumes work.\n\n\
Fix: `adapt.volumeOwnership` annotates the claim `volumeType: local`, so local-path creates a `local` PV on which \
the kubelet applies fsGroup — the prod securityContext is kept, not deleted.",
};

fn served_by_local_path(cx: &Ctx<'_>, claim: &Value) -> bool {
    if claim
        .pointer("/metadata/annotations/volumeType")
        .and_then(Value::as_str)
        == Some("local")
    {
        return false;
    }
    let a = &cx.twin.adapt;
    let default = cx.twin.provider.default_storage_class();
    let effective = match claim
        .pointer("/spec/storageClassName")
        .and_then(Value::as_str)
    {
        None => default.to_string(),
        Some("") => return false,
        Some(sc) => match a.storage_classes.get(sc) {
            Some(to) => to.clone(),
            None if !cx.twin.storage_classes.contains(sc) && a.storage => default.to_string(),
            None => sc.to_string(),
        },
    };
    cx.twin.local_path_classes.contains(&effective)
}

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let on = cx.twin.adapt.volume_ownership;
    let fix = "annotate the claim `volumeType: local` (adapt.volumeOwnership does this locally)";
    for w in &cx.workloads {
        let Some(why) = sets_ownership(w.spec) else {
            continue;
        };
        for (_, claim) in claims(w.spec) {
            let Some(pvc) = cx.get("PersistentVolumeClaim", w.ns(), &claim) else {
                continue;
            };
            if served_by_local_path(cx, &pvc.value) {
                out.push(
                    Finding::on(
                        pvc,
                        INFO.id,
                        Severity::Warning,
                        format!("{} sets {why} and mounts this claim; local-path serves it as hostPath, where ownership is not applied", w.id()),
                        fix,
                    )
                    .fixed_by("adapt.volumeOwnership", on),
                );
            }
        }
        if w.doc.is("StatefulSet") {
            for vct in items_at(&w.doc.value, "/spec/volumeClaimTemplates") {
                if served_by_local_path(cx, vct) {
                    let n = vct
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("?");
                    out.push(
                        Finding::on(
                            w.doc,
                            INFO.id,
                            Severity::Warning,
                            format!("sets {why}; volumeClaimTemplate `{n}` is served by local-path as hostPath, where ownership is not applied"),
                            fix,
                        )
                        .fixed_by("adapt.volumeOwnership", on),
                    );
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    const STS: &str = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: pg}\nspec:\n  template:\n    spec:\n      securityContext: {fsGroup: 999}\n      containers: [{name: pg, image: x}]\n  volumeClaimTemplates:\n  - metadata: {name: data}\n    spec: {storageClassName: do-block-storage}\n";

    #[test]
    fn statefulset_and_mounted_claim() {
        let off = twin("environments:\n  local:\n    adapt: {volumeOwnership: false}\n");
        let f = run_check(run, STS, &off);
        assert_eq!((f.len(), f[0].severity), (1, Severity::Warning));
        assert_eq!(
            run_check(run, STS, &twin(""))[0].fixed_by.as_deref(),
            Some("adapt.volumeOwnership")
        );
        let dep = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: c}\nspec: {}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: m}\nspec:\n  template:\n    spec:\n      containers: [{name: m, image: x, securityContext: {runAsUser: 1000}}]\n      volumes: [{name: d, persistentVolumeClaim: {claimName: c}}]\n";
        let f = run_check(run, dep, &off);
        assert_eq!(
            f[0].object.kind, "PersistentVolumeClaim",
            "reported on the claim"
        );
    }

    #[test]
    fn root_pods_annotated_claims_and_other_classes_pass() {
        let t =
            twin("environments:\n  local:\n    adapt: {volumeOwnership: false, storage: false}\n");
        assert!(run_check(
            run,
            &STS.replace("      securityContext: {fsGroup: 999}\n", ""),
            &t
        )
        .is_empty());
        assert!(run_check(
            run,
            &STS.replace(
                "  - metadata: {name: data}",
                "  - metadata: {name: data, annotations: {volumeType: local}}"
            ),
            &t
        )
        .is_empty());
        assert!(
            run_check(run, STS, &t).is_empty(),
            "a class the twin lacks and does not map is not local-path"
        );
    }
}
