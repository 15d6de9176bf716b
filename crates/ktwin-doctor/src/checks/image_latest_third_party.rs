use ktwin_config::imageref::ImageRef;
use serde_json::Value;

use crate::k8s::cname;
use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "image-latest-third-party",
    title: "a `:latest` or untagged image ktwin does not build",
    explain: "A container runs an image ktwin does not build with `:latest` or no tag. The twin pulls whatever \
`latest` is the day it first pulls it and keeps that copy; production pulled another day. The two drift apart \
silently, which is what a twin exists to prevent.\n\nFix: pin the tag (or a digest) that production runs.",
};

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for w in &cx.workloads {
        for (_, c) in w.containers() {
            let Some(image) = c.get("image").and_then(Value::as_str) else {
                continue;
            };
            if cx.twin.builds(image) || !ImageRef::parse(image).is_ok_and(|r| r.is_latest()) {
                continue;
            }
            out.push(
                Finding::on(
                    w.doc,
                    INFO.id,
                    Severity::Warning,
                    format!("container `{}` runs {image} at `latest`: the twin and production drift apart", cname(c)),
                    "pin the tag or digest production runs",
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
    fn latest_third_party_only() {
        let dep = |i: &str| {
            format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d}}\nspec:\n  template:\n    spec: {{containers: [{{name: a, image: '{i}'}}]}}\n")
        };
        let built = twin("images: [{image: ghcr.io/acme/app, context: .}]\n");
        assert_eq!(run_check(run, &dep("redis"), &built).len(), 1);
        assert_eq!(run_check(run, &dep("busybox:latest"), &built).len(), 1);
        assert!(run_check(run, &dep("redis:7.2"), &built).is_empty());
        assert!(
            run_check(run, &dep("ghcr.io/acme/app"), &built).is_empty(),
            "ktwin builds it"
        );
    }
}
