use serde_json::Value;

use crate::k8s::items_at;
use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "storage-class-annotation",
    title: "a claim choosing its class with the old beta annotation",
    explain: "The `volume.beta.kubernetes.io/storage-class` annotation is the pre-1.6 way to choose a storage \
class, deprecated since. It still wins over `spec.storageClassName`, so rewriting the field (as ktwin's storage \
adaptation and most overlays do) changes nothing: a class the twin lacks keeps the claim Pending.\n\nFix: move the \
class to `spec.storageClassName` and drop the annotation.",
};

const ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for d in cx.docs {
        let mut metas: Vec<(String, &Value)> = Vec::new();
        if d.is("PersistentVolumeClaim") {
            if let Some(m) = d.value.get("metadata") {
                metas.push((format!("claim `{}`", d.name()), m));
            }
        }
        if d.is("StatefulSet") {
            for t in items_at(&d.value, "/spec/volumeClaimTemplates") {
                if let Some(m) = t.get("metadata") {
                    let n = m.get("name").and_then(Value::as_str).unwrap_or("?");
                    metas.push((format!("volumeClaimTemplate `{n}`"), m));
                }
            }
        }
        for (what, m) in metas {
            let Some(sc) = m
                .get("annotations")
                .and_then(|a| a.get(ANNOTATION))
                .and_then(Value::as_str)
            else {
                continue;
            };
            let missing = !cx.twin.storage_classes.contains(sc);
            out.push(Finding::on(
                d,
                INFO.id,
                if missing { Severity::Error } else { Severity::Warning },
                format!(
                    "{what} picks class `{sc}` with the deprecated {ANNOTATION} annotation, which overrides storageClassName{}",
                    if missing { " and which the twin lacks: it stays Pending" } else { "" }
                ),
                "set `spec.storageClassName` and drop the annotation",
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn the_beta_annotation() {
        let t = twin("");
        let pvc = |sc: &str| {
            format!("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: data, annotations: {{volume.beta.kubernetes.io/storage-class: {sc}}}}}\nspec: {{storageClassName: local-path}}\n")
        };
        let f = run_check(run, &pvc("gp2"), &t);
        assert_eq!(f[0].severity, Severity::Error);
        assert_eq!(
            run_check(run, &pvc("local-path"), &t)[0].severity,
            Severity::Warning
        );
        let plain = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\nspec: {storageClassName: gp2}\n";
        assert!(run_check(run, plain, &t).is_empty());
    }
}
