//! Helm charts as a manifest source: the user's own `helm template` renders the chart (Helm 3
//! and 4 alike), and this module turns its output into documents attributed to the chart's
//! templates, drops test hooks, and orders the other hooks as a Helm install would run them.
//! The chart's images are then rewritten by the same adaptation as every other object, so no
//! values plumbing or post-renderer is needed.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::doc::{is_cluster_scoped, Document};
use crate::error::RenderError;
use crate::parse::parse_stream;

/// What `helm template` is asked to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelmCall {
    pub release: String,
    /// The chart directory or archive (absolute).
    pub chart: PathBuf,
    pub namespace: Option<String>,
    /// Values files, in order (absolute).
    pub values: Vec<PathBuf>,
    /// `--set key=value`, in order.
    pub set: Vec<(String, String)>,
    pub include_crds: bool,
}

impl HelmCall {
    /// The argv after `helm`.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            "template".to_string(),
            self.release.clone(),
            self.chart.display().to_string(),
        ];
        if let Some(ns) = &self.namespace {
            a.push("--namespace".into());
            a.push(ns.clone());
        }
        for v in &self.values {
            a.push("--values".into());
            a.push(v.display().to_string());
        }
        for (k, v) in &self.set {
            // `--set` splits at commas; helm's documented escape keeps a value whole.
            a.push("--set".into());
            a.push(format!("{k}={}", v.replace(',', "\\,")));
        }
        if self.include_crds {
            a.push("--include-crds".into());
        }
        a
    }
}

/// What was dropped from a chart's output, and why (for `render --explain` and init).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub object: String,
    pub why: String,
}

/// The hook phases of one document (`helm.sh/hook`), empty for a normal manifest.
fn hooks(v: &Value) -> Vec<String> {
    v.pointer("/metadata/annotations/helm.sh~1hook")
        .and_then(Value::as_str)
        .map(|h| h.split(',').map(|s| s.trim().to_string()).collect())
        .unwrap_or_default()
}

fn hook_weight(v: &Value) -> i64 {
    v.pointer("/metadata/annotations/helm.sh~1hook-weight")
        .and_then(Value::as_str)
        .and_then(|w| w.trim().parse().ok())
        .unwrap_or(0)
}

/// Turn `helm template` output into documents: each attributed to the template file its
/// `# Source: <chart>/templates/…` comment names (under `chart_dir`), namespaced objects without
/// a namespace given the release's, pre-install hooks first and post-install hooks last (each
/// by weight, as Helm runs them), and hooks an install never runs (test, delete, rollback,
/// upgrade-only) left out with the reason.
pub fn documents(
    output: &str,
    chart_dir: &Path,
    namespace: Option<&str>,
) -> Result<(Vec<Document>, Vec<Dropped>), RenderError> {
    let mut pre = Vec::new();
    let mut main = Vec::new();
    let mut post = Vec::new();
    let mut dropped = Vec::new();
    for chunk in split_documents(output) {
        let source = chunk
            .lines()
            .find_map(|l| l.trim().strip_prefix("# Source: "))
            .map(|s| {
                // `<chart name>/templates/x.yaml` (or `<chart>/charts/<sub>/templates/…`).
                let rel = s.split_once('/').map_or(s, |(_, r)| r);
                chart_dir.join(rel)
            })
            .unwrap_or_else(|| chart_dir.join("Chart.yaml"));
        for mut d in parse_stream(&source, &chunk)? {
            if let Some(ns) = namespace {
                if d.namespace().is_none() && !is_cluster_scoped(d.kind()) {
                    d.value["metadata"]["namespace"] = json!(ns);
                }
            }
            let h = hooks(&d.value);
            let weight = hook_weight(&d.value);
            if h.is_empty() {
                main.push(d);
            } else if h.iter().any(|x| x == "pre-install") {
                pre.push((weight, d));
            } else if h.iter().any(|x| x == "post-install") {
                post.push((weight, d));
            } else {
                // Test, delete, rollback and upgrade-only hooks: an install never runs them
                // (a pre-delete cleanup Job applied to the twin would do its damage at once).
                let why = if h.iter().any(|x| x.starts_with("test")) {
                    format!(
                        "a Helm test hook ({}): `helm test` runs it, not an install",
                        h.join(",")
                    )
                } else {
                    format!(
                        "a Helm hook for {} only: an install does not run it",
                        h.join(", ")
                    )
                };
                dropped.push(Dropped {
                    object: format!("{}/{}", d.kind(), d.name()),
                    why,
                });
            }
        }
    }
    pre.sort_by_key(|(w, _)| *w);
    post.sort_by_key(|(w, _)| *w);
    let mut out: Vec<Document> = pre.into_iter().map(|(_, d)| d).collect();
    out.extend(main);
    out.extend(post.into_iter().map(|(_, d)| d));
    Ok((out, dropped))
}

/// Split a YAML stream at `---` lines, keeping each document's leading comments with it.
fn split_documents(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in s.lines() {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            if !cur.trim().is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            cur.clear();
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "---
# Source: shop/templates/serviceaccount.yaml
apiVersion: v1
kind: ServiceAccount
metadata:
  name: shop
---
# Source: shop/templates/tests/test-connection.yaml
apiVersion: v1
kind: Pod
metadata:
  name: shop-test
  annotations:
    helm.sh/hook: test
spec:
  containers: [{name: wget, image: busybox}]
---
# Source: shop/templates/hooks/post.yaml
apiVersion: batch/v1
kind: Job
metadata:
  name: notify
  annotations:
    helm.sh/hook: post-install,post-upgrade
---
# Source: shop/templates/hooks/migrate.yaml
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: \"5\"
---
# Source: shop/templates/hooks/schema.yaml
apiVersion: batch/v1
kind: Job
metadata:
  name: schema
  annotations:
    helm.sh/hook: pre-install
    helm.sh/hook-weight: \"-1\"
---
# Source: shop/templates/hooks/cleanup.yaml
apiVersion: batch/v1
kind: Job
metadata:
  name: drop-db
  annotations:
    helm.sh/hook: pre-delete
---
# Source: shop/templates/hooks/rollback.yaml
apiVersion: batch/v1
kind: Job
metadata:
  name: on-rollback
  annotations:
    helm.sh/hook: post-rollback,post-upgrade
---
# Source: shop/templates/clusterrole.yaml
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: shop
";

    #[test]
    fn attributes_drops_tests_and_orders_hooks() {
        let (docs, dropped) = documents(OUT, Path::new("/p/charts/shop"), Some("shop")).unwrap();
        let names: Vec<&str> = docs.iter().map(|d| d.name()).collect();
        assert_eq!(names, ["schema", "migrate", "shop", "shop", "notify"]);
        assert_eq!(dropped.len(), 3, "{dropped:?}");
        assert!(dropped[0].object == "Pod/shop-test" && dropped[0].why.contains("test"));
        // Delete and rollback/upgrade-only hooks never run at install.
        assert!(dropped[1].object == "Job/drop-db" && dropped[1].why.contains("pre-delete only"));
        assert_eq!(dropped[2].object, "Job/on-rollback");
        assert_eq!(
            docs[2].source.file,
            Path::new("/p/charts/shop/templates/serviceaccount.yaml")
        );
        assert_eq!(docs[2].namespace(), Some("shop"));
        assert_eq!(docs[3].namespace(), None, "cluster-scoped");
    }

    #[test]
    fn argv() {
        let c = HelmCall {
            release: "shop".into(),
            chart: "/p/charts/shop".into(),
            namespace: Some("shop".into()),
            values: vec!["/p/values.dev.yaml".into()],
            set: vec![
                ("image.pullPolicy".into(), "IfNotPresent".into()),
                ("hosts".into(), "a,b".into()),
            ],
            include_crds: true,
        };
        assert_eq!(
            c.args().join(" "),
            "template shop /p/charts/shop --namespace shop --values /p/values.dev.yaml --set image.pullPolicy=IfNotPresent --set hosts=a\\,b --include-crds"
        );
    }
}
