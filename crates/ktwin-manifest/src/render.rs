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
