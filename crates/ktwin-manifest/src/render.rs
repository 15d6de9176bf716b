//! Manifest sources → documents: kustomize roots (built by the user's kustomize), plain
//! directories (every *.yaml/*.yml, sorted by path) and files (multi-document streams).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ktwin_config::inputs::Inputs;

use crate::doc::{Document, Source};
use crate::error::RenderError;
use crate::parse::parse_stream;

/// The user's own tools that render sources: kustomize (`kustomize build` or `kubectl
/// kustomize`, with the flags ktwin.yaml gives) and Helm (`helm template`). The binary runs
/// them; tests may substitute their own.
pub trait Kustomizer {
    fn build(&self, dir: &Path, flags: &[String]) -> Result<String, RenderError>;
    /// `helm template`'s output for `call`.
    fn helm_template(&self, call: &crate::helm::HelmCall) -> Result<String, RenderError> {
        Err(RenderError::NoHelm {
            chart: call.chart.clone(),
        })
    }
}

/// The kustomization fields newer than some kustomize still in use, with the release that
/// added each (kustomize's release notes); Debian's kubectl 1.20 embeds v2.0.3.
pub const KUSTOMIZE_FIELD_SINCE: &[(&str, &str)] = &[
    ("transformers", "v2.1.0"),
    ("generators", "v2.1.0"),
    ("patches", "v3.1.0"),
    ("components", "v3.7.0"),
    ("replacements", "v4.1.0"),
    ("labels", "v4.1.0"),
    ("helmCharts", "v4.1.0"),
    ("sortOptions", "v5.0.0"),
];

pub const KUSTOMIZATION_FILES: &[&str] =
    &["kustomization.yaml", "kustomization.yml", "Kustomization"];

pub fn kustomization_file(dir: &Path) -> Option<PathBuf> {
    KUSTOMIZATION_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
}

/// Every document of one source. Files are read through `inputs` (confined to the project,
/// regular files only, bounded in size; directory walks stop at symlink loops).
pub fn load_source(
    path: &Path,
    kustomizer: &dyn Kustomizer,
    flags: &[String],
    inputs: &Inputs,
) -> Result<Vec<Document>, RenderError> {
    inputs.check(path)?;
    if path.is_dir() {
        if let Some(kfile) = kustomization_file(path) {
            let out = kustomizer.build(path, flags)?;
            let mut docs = parse_stream(&kfile, &out)?;
            attribute_kustomize_origins(path, &mut docs, inputs);
            return Ok(docs);
        }
        let mut docs = Vec::new();
        for f in inputs.yaml_files(path)? {
            docs.extend(parse_stream(&f, &inputs.read_text(&f)?)?);
        }
        return Ok(docs);
    }
    parse_stream(path, &inputs.read_text(path)?)
}

/// kustomize's error text with every quoted part (`'…'`, `"…"`, `` `…` ``) hidden unless it is
/// a path that exists (as written, or under `dir`) or the field of a `json: unknown field "X"`:
/// kustomize quotes env-file lines and YAML scalars it fails on, which may be secret values.
/// Whether anything was hidden is returned too, so the caller can say how to see it all.
pub fn redact_quoted(msg: &str, dir: &Path) -> (String, bool) {
    let mut out = String::with_capacity(msg.len());
    let mut hidden = false;
    let mut rest = msg;
    while let Some(i) = rest.find(['\'', '"', '`']) {
        let q = rest[i..].chars().next().unwrap_or('"');
        let after = &rest[i + 1..];
        let Some(j) = after.find(q) else { break };
        let inner = &after[..j];
        let keep = inner.is_empty()
            || rest[..i].ends_with("unknown field ")
            || (!inner.contains('\n')
                && (Path::new(inner).exists()
                    || (!inner.starts_with('/') && dir.join(inner).exists())));
        out.push_str(&rest[..=i]);
        if keep {
            out.push_str(inner);
        } else {
            out.push('…');
            hidden = true;
        }
        out.push(q);
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    (out, hidden)
}

/// A file a lenient read left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub file: PathBuf,
    pub why: String,
}

/// The tool whose own config a YAML document is (`skaffold.yaml`, a kustomization, a k3d or kind
/// cluster config, ktwin.yaml): it has `apiVersion` and `kind` but is no Kubernetes object.
pub fn tool_config(api_version: &str) -> Option<&'static str> {
    const TOOLS: &[(&str, &str)] = &[
        ("skaffold/", "a Skaffold config"),
        ("kustomize.config.k8s.io/", "a kustomization"),
        ("k3d.io/", "a k3d config"),
        ("kind.x-k8s.io/", "a kind cluster config"),
        ("ktwin.dev/", "a ktwin project file"),
        ("kpt.dev/", "a kpt file"),
        ("config.kubernetes.io/", "a KRM function config"),
    ];
    TOOLS
        .iter()
        .find(|(p, _)| api_version.starts_with(p))
        .map(|(_, what)| *what)
}

/// The Kubernetes objects of one YAML file, or why it holds none: a Helm template, invalid
/// YAML (position only, never a line of it: it may hold a secret), documents that are not
/// objects, or a tool's own config.
pub fn classify_file(file: &Path, text: &str) -> Result<Vec<Document>, String> {
    // `{{ … }}` inside strings is common in real objects (Prometheus rules, Argo workflows):
    // only a file that does not parse is taken for a template.
    let template = "a Go/Helm template (render its chart with a `helm:` source instead)";
    let docs = match parse_stream(file, text) {
        Ok(d) => d,
        Err(RenderError::Yaml(_) | RenderError::NotAnObject { .. }) if text.contains("{{") => {
            return Err(template.into())
        }
        Err(RenderError::Yaml(d)) => {
            return Err(match d.pos {
                Some(p) => format!("not valid YAML (line {}, column {})", p.line, p.col),
                None => "not valid YAML".into(),
            })
        }
        Err(RenderError::NotAnObject { why, .. }) => {
            return Err(format!("not Kubernetes objects ({why})"))
        }
        Err(e) => return Err(e.to_string()),
    };
    if let Some(what) = docs.first().and_then(|d| tool_config(d.api_version())) {
        if docs.iter().all(|d| tool_config(d.api_version()).is_some()) {
            return Err(what.to_string());
        }
    }
    if docs.is_empty() {
        return Err("no documents".into());
    }
    Ok(docs)
}

/// Like [`load_source`], but a directory's YAML files that hold no Kubernetes objects are left
/// out with the reason instead of failing the whole read (`doctor -f DIR`, `init`). A file named
/// on its own, and a kustomization's output, are read strictly.
pub fn load_source_lenient(
    path: &Path,
    kustomizer: &dyn Kustomizer,
    flags: &[String],
    inputs: &Inputs,
) -> Result<(Vec<Document>, Vec<Skipped>), RenderError> {
    inputs.check(path)?;
    if !path.is_dir() || kustomization_file(path).is_some() {
        return Ok((load_source(path, kustomizer, flags, inputs)?, Vec::new()));
    }
    let mut docs = Vec::new();
    let mut skipped = Vec::new();
    for f in inputs.yaml_files(path)? {
        match classify_file(&f, &inputs.read_text(&f)?) {
            Ok(d) => docs.extend(d),
            Err(why) => skipped.push(Skipped { file: f, why }),
        }
    }
    Ok((docs, skipped))
}

/// kustomize output forgets where objects came from. Point each object back at the file that
/// defines it (by kind and name, allowing for name prefixes and suffixes), else at the
/// kustomization file itself.
fn attribute_kustomize_origins(root: &Path, docs: &mut [Document], inputs: &Inputs) {
    let mut index: HashMap<String, Vec<(String, Source)>> = HashMap::new();
    let mut seen = Vec::new();
    collect_kustomize_resources(root, &mut index, &mut seen, 0, inputs);
    for d in docs.iter_mut() {
        let Some(cands) = index.get(d.kind()) else {
            continue;
        };
        let name = d.name();
        let best = cands
            .iter()
            .filter(|(n, _)| n == name)
            .chain(
                cands
                    .iter()
                    .filter(|(n, _)| n != name && name.contains(n.as_str())),
            )
            .max_by_key(|(n, _)| (n == name, n.len()));
        if let Some((_, src)) = best {
            d.source = src.clone();
        }
    }
}

fn collect_kustomize_resources(
    dir: &Path,
    index: &mut HashMap<String, Vec<(String, Source)>>,
    seen: &mut Vec<PathBuf>,
    depth: usize,
    inputs: &Inputs,
) {
    if depth > 20 || seen.iter().any(|s| s == dir) {
        return;
    }
    seen.push(dir.to_path_buf());
    let Some(kfile) = kustomization_file(dir) else {
        return;
    };
    let Ok(text) = inputs.read_text(&kfile) else {
        return;
    };
    let Ok(k) = serde_saphyr::from_str::<serde_json::Value>(&text) else {
        return;
    };
    for field in ["resources", "bases", "components"] {
        for r in k
            .get(field)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let Some(r) = r.as_str() else { continue };
            if r.contains("://") {
                continue;
            }
            let p = clean_path(&dir.join(r));
            if p.is_dir() {
                collect_kustomize_resources(&p, index, seen, depth + 1, inputs);
            } else if let Ok(t) = inputs.read_text(&p) {
                if let Ok(docs) = parse_stream(&p, &t) {
                    for d in docs {
                        index
                            .entry(d.kind().to_string())
                            .or_default()
                            .push((d.name().to_string(), d.source.clone()));
                    }
                }
            }
        }
    }
}

/// Resolve `.` and `..` lexically, so sources read as the user wrote the tree.
pub fn clean_path(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn kustomize_errors_keep_paths_and_fields_hide_values() {
        let d = std::env::temp_dir();
        let (m, hidden) = super::redact_quoted(
            &format!("error: accumulating resources from '{}': cannot unmarshal !!str `hunter2` into int; invalid line \"PASSWORD s3cret\"; json: unknown field \"sortOptions\"", d.display()),
            &d,
        );
        assert!(hidden);
        assert!(m.contains(&format!("'{}'", d.display())), "{m}");
        assert!(m.contains("`…`") && m.contains("\"…\""), "{m}");
        assert!(!m.contains("hunter2") && !m.contains("s3cret"), "{m}");
        assert!(m.contains("unknown field \"sortOptions\""), "{m}");
        assert_eq!(
            super::redact_quoted("no quotes here", &d),
            ("no quotes here".into(), false)
        );
    }
}
