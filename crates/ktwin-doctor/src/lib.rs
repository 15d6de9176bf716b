//! `ktwin doctor`: reads the manifests the way the local twin will run them and names every
//! local-vs-prod difference that will bite, before anything is applied. Checks are pure
//! functions over rendered documents and the twin model; one file per check in `checks/`.

pub mod checks;
pub mod k8s;
pub mod output;
pub mod twin;

use std::collections::HashMap;
use std::path::PathBuf;

use ktwin_config::DoctorIgnore;
use ktwin_manifest::{Document, ObjRef};
use serde::Serialize;

pub use twin::Twin;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One problem on one object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub check: &'static str,
    pub severity: Severity,
    pub object: ObjRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    pub message: String,
    pub fix: String,
    /// The adaptation knob that already resolves this on the local twin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

impl Finding {
    pub fn on(
        doc: &Document,
        check: &'static str,
        severity: Severity,
        message: String,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            check,
            severity,
            object: doc.obj_ref(),
            container: None,
            message,
            fix: fix.into(),
            fixed_by: None,
            file: Some(doc.source.file.clone()),
            line: Some(doc.source.line),
        }
    }
    pub fn container(mut self, name: &str) -> Finding {
        self.container = Some(name.to_string());
        self
    }
    /// When `knob_on`, ktwin's adaptation resolves this locally: downgrade to info and say so.
    pub fn fixed_by(mut self, knob: &str, knob_on: bool) -> Finding {
        if knob_on {
            self.severity = Severity::Info;
            self.fixed_by = Some(knob.to_string());
        }
        self
    }
}

/// What `--list-checks` and `--explain` print, and SARIF's rule metadata.
#[derive(Debug, Clone, Copy)]
pub struct CheckInfo {
    pub id: &'static str,
    pub title: &'static str,
    /// Why it matters, the incident it prevents, and the fix.
    pub explain: &'static str,
}

/// Everything a check reads.
pub struct Ctx<'a> {
    pub docs: &'a [Document],
    pub twin: &'a Twin,
    pub workloads: Vec<k8s::Workload<'a>>,
    /// (namespace, label key, label value) → the workloads whose pod template carries it:
    /// a selector looks up its rarest pair instead of scanning every workload of the
    /// namespace, so selector matching stays linear in the objects.
    workloads_by_label: HashMap<(&'a str, &'a str, &'a str), Vec<usize>>,
    by_kind_name: HashMap<(&'a str, &'a str, &'a str), &'a Document>,
}

impl<'a> Ctx<'a> {
    pub fn new(docs: &'a [Document], twin: &'a Twin) -> Ctx<'a> {
        let by_kind_name = docs
            .iter()
            .map(|d| ((d.kind(), d.namespace().unwrap_or(""), d.name()), d))
            .collect();
        let workloads = k8s::workloads(docs);
        let mut workloads_by_label: HashMap<(&str, &str, &str), Vec<usize>> = HashMap::new();
        for (i, w) in workloads.iter().enumerate() {
            for (k, v) in w.labels.into_iter().flatten() {
                if let Some(v) = v.as_str() {
                    workloads_by_label
                        .entry((w.ns(), k.as_str(), v))
                        .or_default()
                        .push(i);
                }
            }
        }
        Ctx {
            docs,
            twin,
            workloads,
            workloads_by_label,
            by_kind_name,
        }
    }
    /// Workloads in `ns` whose pod template labels a Service-style selector selects.
    pub fn selected(
        &self,
        ns: &str,
        sel: &serde_json::Map<String, serde_json::Value>,
    ) -> Vec<&k8s::Workload<'a>> {
        // The candidates carrying the selector's rarest label pair; an empty selector
        // selects nothing (as for a Service).
        let rarest = sel
            .iter()
            .map(|(k, v)| {
                v.as_str()
                    .and_then(|v| self.workloads_by_label.get(&(ns, k.as_str(), v)))
                    .map_or(&[][..], Vec::as_slice)
            })
            .min_by_key(|c| c.len())
            .unwrap_or(&[]);
        rarest
            .iter()
            .map(|i| &self.workloads[*i])
            .filter(|w| k8s::map_selector_matches(sel, w.labels))
            .collect()
    }
    pub fn get(&self, kind: &str, ns: &str, name: &str) -> Option<&'a Document> {
        self.by_kind_name.get(&(kind, ns, name)).copied()
    }
    pub fn of_kind(&self, kind: &'a str) -> impl Iterator<Item = &'a Document> + 'a {
        self.docs.iter().filter(move |d| d.is(kind))
    }
    pub fn secret_exists(&self, ns: &str, name: &str) -> bool {
        self.get("Secret", ns, name).is_some()
            || self
                .twin
                .declared_secrets
                .contains(&(ns.to_string(), name.to_string()))
    }
}

pub type CheckFn = fn(&Ctx<'_>) -> Vec<Finding>;

/// The catalogue, in the order `--list-checks` prints it.
pub fn catalogue() -> Vec<(CheckInfo, CheckFn)> {
    checks::ALL.to_vec()
}

pub fn info(id: &str) -> Option<CheckInfo> {
    checks::ALL
        .iter()
        .find(|(i, _)| i.id == id)
        .map(|(i, _)| *i)
}

pub const IGNORE_ANNOTATION: &str = "ktwin.dev/ignore";

/// (kind, namespace, name) → the checks its `ktwin.dev/ignore` annotation silences.
fn annotation_index(docs: &[Document]) -> HashMap<(&str, Option<&str>, &str), Vec<&str>> {
    docs.iter()
        .filter_map(|d| {
            let v = d
                .value
                .pointer("/metadata/annotations")?
                .get(IGNORE_ANNOTATION)?
                .as_str()?;
            Some((
                (d.kind(), d.namespace(), d.name()),
                v.split(',').map(str::trim).collect(),
            ))
        })
        .collect()
}

fn config_ignores(f: &Finding, ignore: &[DoctorIgnore]) -> bool {
    ignore.iter().any(|i| {
        i.check == f.check
            && i.kind.as_deref().is_none_or(|k| k == f.object.kind)
            && i.name.as_deref().is_none_or(|n| n == f.object.name)
    })
}

/// Run only the named checks, silenced as `run` silences them: `render` uses the image checks
/// as warnings.
pub fn run_only(
    ids: &[&str],
    docs: &[Document],
    twin: &Twin,
    ignore: &[DoctorIgnore],
) -> Vec<Finding> {
    let cx = Ctx::new(docs, twin);
    let silenced = annotation_index(docs);
    checks::ALL
        .iter()
        .filter(|(i, _)| ids.contains(&i.id))
        .flat_map(|(_, f)| f(&cx))
        .filter(|f| !annotated(&silenced, f) && !config_ignores(f, ignore))
        .collect()
}

fn annotated(silenced: &HashMap<(&str, Option<&str>, &str), Vec<&str>>, f: &Finding) -> bool {
    silenced
        .get(&(
            f.object.kind.as_str(),
            f.object.namespace.as_deref(),
            f.object.name.as_str(),
        ))
        .is_some_and(|ids| ids.contains(&f.check))
}

/// Run every check; drop what annotations or `doctor.ignore` silence; sort by file and line.
pub fn run(docs: &[Document], twin: &Twin, ignore: &[DoctorIgnore]) -> Vec<Finding> {
    run_timed(docs, twin, ignore).0
}

/// [`run`], and how long each check took (for `-v`), slowest first.
pub fn run_timed(
    docs: &[Document],
    twin: &Twin,
    ignore: &[DoctorIgnore],
) -> (Vec<Finding>, Vec<(&'static str, std::time::Duration)>) {
    let started = std::time::Instant::now();
    let cx = Ctx::new(docs, twin);
    let mut times = vec![("(index)", started.elapsed())];
    let silenced = annotation_index(docs);
    let mut out: Vec<Finding> = Vec::new();
    for (info, f) in checks::ALL {
        let t = std::time::Instant::now();
        out.extend(
            f(&cx)
                .into_iter()
                .filter(|f| !annotated(&silenced, f) && !config_ignores(f, ignore)),
        );
        times.push((info.id, t.elapsed()));
    }
    times.sort_by_key(|t| std::cmp::Reverse(t.1));
    out.sort_by(|a, b| {
        (&a.file, a.line, a.check, &a.container, &a.message).cmp(&(
            &b.file,
            b.line,
            b.check,
            &b.container,
            &b.message,
        ))
    });
    (out, times)
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub error: usize,
    pub warning: usize,
    pub info: usize,
}

pub fn summary(findings: &[Finding]) -> Summary {
    let mut s = Summary::default();
    for f in findings {
        match f.severity {
            Severity::Error => s.error += 1,
            Severity::Warning => s.warning += 1,
            Severity::Info => s.info += 1,
        }
    }
    s
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use std::path::Path;

    /// Parse inline YAML into documents.
    pub fn docs(yaml: &str) -> Vec<Document> {
        ktwin_manifest::parse::parse_stream(Path::new("t.yaml"), yaml).expect("fixture parses")
    }

    /// A twin from an inline ktwin.yaml body (name and apiVersion supplied).
    pub fn twin(body: &str) -> Twin {
        let text = format!("apiVersion: ktwin.dev/v1alpha1\nkind: Project\nname: t\n{body}");
        let l = ktwin_config::load::parse(Path::new("/t/ktwin.yaml"), text).expect("twin parses");
        Twin::from_project(&l.project, "local", Some(l.path.clone()), Some(&l.pos))
    }

    /// Findings of one check.
    pub fn run_check(f: CheckFn, yaml: &str, twin: &Twin) -> Vec<Finding> {
        let d = docs(yaml);
        let mut t = twin.clone();
        t.add_rendered(&d);
        let cx = Ctx::new(&d, &t);
        f(&cx)
    }
}
