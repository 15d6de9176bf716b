use ktwin_config::imageref::ImageRef;
use serde_json::Value;

use crate::k8s::cname;
use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "pull-policy-always-local",
    title: "a locally built image pulled with Always",
    explain: "An image ktwin builds is pulled with `imagePullPolicy: Always`, or names `:latest` or no tag, which \
makes the kubelet default to Always. Locally that means every pod start goes back to the registry, a stale \
`latest` in a node's cache is used when the registry is down, and images loaded with `kind load` are ignored \
and pulled from the internet instead (ErrImagePull on a plane).\n\nFix: ktwin's adaptation (`adapt.pullPolicy`, \
`adapt.images`) sets IfNotPresent and an immutable content tag locally; in the manifests, prefer explicit \
versioned tags.",
};

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    let a = &cx.twin.adapt;
    let mut out = Vec::new();
    for w in &cx.workloads {
        for (_, c) in w.containers() {
            let Some(image) = c.get("image").and_then(Value::as_str) else {
                continue;
            };
            if !cx.twin.builds(image) {
                continue;
            }
            let policy = c.get("imagePullPolicy").and_then(Value::as_str);
            let latest = ImageRef::parse(image).is_ok_and(|r| r.is_latest());
            let why = match policy {
                Some("Always") => "imagePullPolicy: Always".to_string(),
                None if latest => "a `latest`/untagged image (implicit Always)".to_string(),
                _ => continue,
            };
            let on = a.pull_policy && a.images;
            out.push(
                Finding::on(
                    w.doc,
                    INFO.id,
                    Severity::Warning,
                    format!(
                        "container `{}` pulls ktwin-built image {image} with {why}",
                        cname(c)
                    ),
                    "locally: IfNotPresent and the content tag (adapt.pullPolicy, adapt.images)",
                )
                .container(cname(c))
                .fixed_by("adapt.pullPolicy", on),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    const T: &str = "images: [{image: ghcr.io/a/app, context: .}]\n";

    fn dep(c: &str) -> String {
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: a}}\nspec:\n  template:\n    spec:\n      containers: [{c}]\n")
    }

    #[test]
    fn fixed_by_adaptation_unless_turned_off() {
        let y = dep("{name: a, image: 'ghcr.io/a/app:1', imagePullPolicy: Always}");
        let f = run_check(run, &y, &twin(T));
        assert_eq!(
            (f[0].severity, f[0].fixed_by.as_deref()),
            (Severity::Info, Some("adapt.pullPolicy"))
        );
        let off = twin(&format!(
            "{T}environments:\n  local:\n    adapt: {{pullPolicy: false}}\n"
        ));
        let f = run_check(run, &y, &off);
        assert_eq!(
            (f[0].severity, f[0].fixed_by.as_deref()),
            (Severity::Warning, None)
        );
        assert_eq!(
            run_check(run, &dep("{name: a, image: 'ghcr.io/a/app'}"), &off).len(),
            1,
            "implicit Always"
        );
    }

    #[test]
    fn other_images_and_pinned_tags_pass() {
        let t = twin(T);
        assert!(run_check(
            run,
            &dep("{name: a, image: 'postgres:latest', imagePullPolicy: Always}"),
            &t
        )
        .is_empty());
        assert!(run_check(run, &dep("{name: a, image: 'ghcr.io/a/app:1.2'}"), &t).is_empty());
    }
}
