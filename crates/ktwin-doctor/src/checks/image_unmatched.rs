use std::collections::HashSet;

use ktwin_config::imageref::ImageRef;
use ktwin_manifest::ObjRef;
use serde_json::Value;

use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "image-unmatched",
    title: "an `images:` entry no rendered container runs",
    explain: "ktwin builds an image from `images:` and rewrites the containers that run it to the local \
registry — matched by repository. An entry whose repository no rendered container runs (a typo, `microservices-demo/src` \
for a Dockerfile in a differently named folder, the manifests naming `gcr.io/acme/frontend` while ktwin.yaml says \
`acme/frontend`) is built and pushed for nothing, and the twin silently runs the upstream image instead of your \
code — the worst outcome for a twin.\n\nFix: set `image:` to the repository the manifests run (as \
`ktwin render` shows it), or remove the entry.",
};

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    // `images:` rewrites the local environment only; a remote one runs what it names.
    if cx.twin.env != ktwin_config::LOCAL_ENV {
        return vec![];
    }
    let run_here: HashSet<String> = cx
        .workloads
        .iter()
        .flat_map(|w| w.containers())
        .filter_map(|(_, c)| c.get("image").and_then(Value::as_str))
        .filter_map(|i| ImageRef::parse(i).ok())
        .map(|r| r.repository_key())
        .collect();
    let mut out = Vec::new();
    for (image, line) in &cx.twin.image_entries {
        let Ok(r) = ImageRef::parse(image) else {
            continue;
        };
        if run_here.contains(&r.repository_key()) {
            continue;
        }
        out.push(Finding {
            check: INFO.id,
            severity: Severity::Warning,
            object: ObjRef {
                api_version: ktwin_config::API_VERSION.into(),
                kind: ktwin_config::KIND.into(),
                namespace: None,
                name: cx.twin.project.clone(),
            },
            container: None,
            message: format!(
                "images: `{image}` is built, but no rendered container runs it: the twin runs what the manifests name instead"
            ),
            fix: "set `image:` to the repository the manifests run (`ktwin render` shows them)".into(),
            fixed_by: None,
            file: cx.twin.project_file.clone(),
            line: *line,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn entries_no_container_runs() {
        let t = twin("images:\n  - {image: ghcr.io/acme/app, context: .}\n  - {image: acme/typo, context: .}\n");
        let y = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec: {containers: [{name: a, image: 'ghcr.io/acme/app:1.2'}]}\n";
        let f = run_check(run, y, &t);
        assert_eq!(f.len(), 1);
        assert!(f[0].message.contains("acme/typo"));
        assert_eq!(f[0].line, Some(6));
    }
}
