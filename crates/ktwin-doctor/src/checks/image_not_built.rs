use std::collections::BTreeSet;

use ktwin_config::imageref::ImageRef;
use serde_json::Value;

use crate::k8s::cname;
use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "image-not-built",
    title: "a first-party image ktwin does not build",
    explain: "A container runs an image from the same registry and organisation as the images ktwin builds \
(`gcr.io/acme/cart` next to a built `gcr.io/acme/frontend`), but no `images:` entry builds it. The twin then \
runs the published image — whatever production last pushed — instead of the code in this repository, and a \
change to that service is silently not in the twin.\n\nFix: add an `images:` entry with its build context (or, \
if it really is built elsewhere, pin the tag production runs).",
};

/// `host/org` of a repository (`gcr.io/acme` of `gcr.io/acme/frontend`).
fn org(r: &ImageRef) -> Option<String> {
    let key = r.repository_key();
    let (head, _) = key.rsplit_once('/')?;
    Some(head.to_string())
}

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    // `images:` rewrites the local environment only; a remote one runs what it names.
    if cx.twin.env != ktwin_config::LOCAL_ENV {
        return vec![];
    }
    let built_orgs: BTreeSet<String> = cx
        .twin
        .image_entries
        .iter()
        .filter_map(|(i, _)| ImageRef::parse(i).ok())
        .filter_map(|r| org(&r))
        // Docker Hub's official images share one "organisation"; it says nothing.
        .filter(|o| o != "docker.io/library")
        .collect();
    if built_orgs.is_empty() {
        return vec![];
    }
    let mut out = Vec::new();
    for w in &cx.workloads {
        for (_, c) in w.containers() {
            let Some(image) = c.get("image").and_then(Value::as_str) else {
                continue;
            };
            let Ok(r) = ImageRef::parse(image) else {
                continue;
            };
            if cx.twin.builds(image) || !org(&r).is_some_and(|o| built_orgs.contains(&o)) {
                continue;
            }
            out.push(
                Finding::on(
                    w.doc,
                    INFO.id,
                    Severity::Warning,
                    format!(
                        "container `{}` runs {image}, from the same registry and organisation as the images ktwin builds, but ktwin does not build it: the twin runs the published image, not this repository's code",
                        cname(c)
                    ),
                    "add an `images:` entry with its build context",
                )
                .container(cname(c)),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn same_org_images_not_built() {
        let t = twin("images:\n  - {image: gcr.io/acme/frontend, context: .}\n");
        let dep = |i: &str| {
            format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d}}\nspec:\n  template:\n    spec: {{containers: [{{name: a, image: '{i}'}}]}}\n")
        };
        assert_eq!(run_check(run, &dep("gcr.io/acme/cart:v1"), &t).len(), 1);
        assert!(run_check(run, &dep("gcr.io/acme/frontend:v1"), &t).is_empty());
        assert!(run_check(run, &dep("redis:7"), &t).is_empty());
        assert!(run_check(run, &dep("gcr.io/other/cart:v1"), &t).is_empty());
        // Official Docker Hub images do not make an organisation.
        let hub = twin("images:\n  - {image: nginx, context: .}\n");
        assert!(run_check(run, &dep("redis:7"), &hub).is_empty());
    }
}
