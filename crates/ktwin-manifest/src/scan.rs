//! What `ktwin init` reads from a repository: kustomize roots (and what each includes), Helm
//! charts, plain manifest directories, Dockerfiles, and the image builds the tools teams already
//! use declare (`skaffold.yaml` artifacts, a `Tiltfile`'s `docker_build`, compose `build:`).
//! Reading only: every file goes through [`Inputs`] (confined to the repository, bounded in
//! size), symlinked directories are not followed, and nothing is executed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ktwin_config::inputs::Inputs;
use serde_json::Value;

use crate::render::{classify_file, clean_path, kustomization_file};

/// Directories no manifest or build context of the project lives in.
const SKIP_DIRS: &[&str] = &[
    "target",
    "node_modules",
    "vendor",
    "dist",
    "third_party",
    "__pycache__",
];

/// How deep the walk goes, and how many entries it looks at (a repository is not a file
/// system).
const MAX_DEPTH: usize = 24;
const MAX_ENTRIES: usize = 200_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KustomizeRoot {
    pub dir: PathBuf,
    /// `kind: Component`: only ever included by another root, never built alone.
    pub component: bool,
    /// The local directories its `resources`, `bases` and `components` name (not URLs).
    pub includes: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chart {
    pub dir: PathBuf,
    /// `values-<env>.yaml` / `values.<env>.yaml` beside `values.yaml`, by environment name.
    pub env_values: Vec<(String, PathBuf)>,
}

/// An image some tool of the repository builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildDecl {
    /// The image name as that tool names it (`frontend`, `gcr.io/acme/frontend`).
    pub image: String,
    pub context: PathBuf,
    /// The Dockerfile, when the tool builds one (`None`: jib, buildpacks, ko, bazel, custom).
    pub dockerfile: Option<PathBuf>,
    /// `docker`, `jib`, `buildpacks`, `ko`, `bazel` or `custom`.
    pub builder: String,
    /// Where it is declared, for the reason init gives (`skaffold.yaml`, `Tiltfile`, …).
    pub origin: String,
}

#[derive(Debug, Default)]
pub struct Scan {
    pub roots: Vec<KustomizeRoot>,
    pub charts: Vec<Chart>,
    pub plain_dirs: Vec<PathBuf>,
    pub dockerfiles: Vec<PathBuf>,
    pub builds: Vec<BuildDecl>,
    /// Manifest paths a `skaffold.yaml` (top level, not a profile) or a `Tiltfile` deploys,
    /// with where it says so.
    pub tool_manifests: Vec<(PathBuf, String)>,
    /// Every directory name seen (for telling first-party images from public ones).
    pub dir_names: BTreeSet<String>,
    /// Directory entries looked at (the walk stops at [`MAX_ENTRIES`]).
    pub visited: usize,
}

pub fn rel(root: &Path, p: &Path) -> String {
    let r = p
        .strip_prefix(root)
        .unwrap_or(p)
        .to_string_lossy()
        .replace('\\', "/");
    if r.is_empty() {
        ".".into()
    } else {
        r
    }
}

pub fn scan(root: &Path) -> Scan {
    let mut s = Scan::default();
    let inputs = Inputs::confined(root);
    walk(root, root, &mut s, false, 0, &inputs);
    s.roots.sort_by(|a, b| a.dir.cmp(&b.dir));
    s.charts.sort_by(|a, b| a.dir.cmp(&b.dir));
    s.plain_dirs.sort();
    s.dockerfiles.sort();
    s
}

fn is_yaml(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml")
}

fn walk(
    root: &Path,
    dir: &Path,
    s: &mut Scan,
    under_kustomize: bool,
    depth: usize,
    inputs: &Inputs,
) {
    if depth > MAX_DEPTH {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    if let Some(n) = dir.file_name() {
        s.dir_names.insert(n.to_string_lossy().into_owned());
    }
    // A chart's templates are not YAML, and its subcharts render with it: not walked. (A chart
    // at the repository root still leaves the rest of the repository to walk.)
    let is_chart = dir.join("Chart.yaml").is_file();
    if is_chart {
        s.charts.push(chart(dir));
        if dir != root {
            return;
        }
    }
    let kfile = kustomization_file(dir);
    if let Some(k) = &kfile {
        s.roots.push(kustomize_root(dir, k, inputs));
    }
    let is_root = kfile.is_some();
    let mut has_manifest = false;
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        s.visited += 1;
        if s.visited > MAX_ENTRIES {
            return;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        let p = e.path();
        if name.starts_with('.') || (is_chart && matches!(name.as_str(), "templates" | "charts")) {
            continue;
        }
        // A symlinked directory is not followed: it is either a copy of what the walk sees
        // anyway or a loop.
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            if !SKIP_DIRS.contains(&name.as_str()) {
                walk(root, &p, s, under_kustomize || is_root, depth + 1, inputs);
            }
            continue;
        }
        if !ft.is_file() {
            continue;
        }
        if name == "Dockerfile" || name.ends_with(".Dockerfile") || name.starts_with("Dockerfile.")
        {
            s.dockerfiles.push(p);
        } else if name == "Tiltfile" {
            if let Ok(t) = inputs.read_text(&p) {
                tiltfile(root, &p, &t, s);
            }
        } else if is_yaml(&name) && name != "ktwin.yaml" && !name.starts_with("kustomization") {
            let Ok(text) = inputs.read_text(&p) else {
                continue;
            };
            if text.contains("apiVersion: skaffold/") {
                skaffold(root, &p, &text, s);
                continue;
            }
            if name.starts_with("docker-compose") || name.starts_with("compose.") {
                compose(root, &p, &text, s);
                continue;
            }
            if !is_root
                && !is_chart
                && !under_kustomize
                && !has_manifest
                && classify_file(&p, &text).is_ok()
            {
                has_manifest = true;
            }
        }
    }
    if has_manifest && !dir.join("ktwin.yaml").is_file() {
        s.plain_dirs.push(dir.to_path_buf());
    }
}

fn chart(dir: &Path) -> Chart {
    let mut env_values = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        let mut names: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for n in names {
            let Some(stem) = n.strip_suffix(".yaml").or_else(|| n.strip_suffix(".yml")) else {
                continue;
            };
            let env = stem
                .strip_prefix("values-")
                .or_else(|| stem.strip_prefix("values."))
                .or_else(|| stem.strip_prefix("values_"));
            if let Some(env) = env.filter(|e| !e.is_empty()) {
                env_values.push((env.to_string(), dir.join(&n)));
            }
        }
    }
    env_values.sort();
    Chart {
        dir: dir.to_path_buf(),
        env_values,
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

fn kustomize_root(dir: &Path, kfile: &Path, inputs: &Inputs) -> KustomizeRoot {
    let k: Value = inputs
        .read_text(kfile)
        .ok()
        .and_then(|t| serde_saphyr::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let component = k.get("kind").and_then(Value::as_str) == Some("Component");
    let mut includes = Vec::new();
    for field in ["resources", "bases", "components"] {
        for r in strings(k.get(field)) {
            if r.contains("://") || r.starts_with("github.com/") {
                continue;
            }
            let p = clean_path(&dir.join(&r));
            if p.is_dir() {
                includes.push(p);
            }
        }
    }
    KustomizeRoot {
        dir: dir.to_path_buf(),
        component,
        includes,
    }
}

/// Every document of a YAML stream as a value, skipping what does not parse.
fn yaml_docs(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple_with_options::<Value>(text, ktwin_config::load::yaml_options())
        .unwrap_or_default()
}

/// A `skaffold.yaml`: `build.artifacts` (image, context relative to the file, the builder) and
/// the top-level manifests it deploys (`manifests.kustomize.paths`, `manifests.rawYaml`, and
/// v2's `deploy.kustomize.paths` / `deploy.kubectl.manifests`). Profiles are left alone: they
/// are variants, and init proposes what `skaffold dev` runs by default.
fn skaffold(root: &Path, file: &Path, text: &str, s: &mut Scan) {
    let base = file.parent().unwrap_or(root);
    let origin = rel(root, file);
    for doc in yaml_docs(text) {
        for a in doc
            .pointer("/build/artifacts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(image) = a.get("image").and_then(Value::as_str) else {
                continue;
            };
            let context =
                clean_path(&base.join(a.get("context").and_then(Value::as_str).unwrap_or(".")));
            let builder = ["jib", "buildpacks", "ko", "bazel", "custom"]
                .into_iter()
                .find(|b| a.get(*b).is_some())
                .unwrap_or("docker");
            let dockerfile = (builder == "docker").then(|| {
                clean_path(
                    &context.join(
                        a.pointer("/docker/dockerfile")
                            .and_then(Value::as_str)
                            .unwrap_or("Dockerfile"),
                    ),
                )
            });
            s.builds.push(BuildDecl {
                image: image.to_string(),
                context,
                dockerfile,
                builder: builder.to_string(),
                origin: format!("{origin} (build.artifacts)"),
            });
        }
        let mut paths = strings(doc.pointer("/manifests/kustomize/paths"));
        paths.extend(strings(doc.pointer("/manifests/rawYaml")));
        paths.extend(strings(doc.pointer("/deploy/kustomize/paths")));
        paths.extend(strings(doc.pointer("/deploy/kubectl/manifests")));
        for p in paths {
            if p.contains('*') {
                continue;
            }
            s.tool_manifests
                .push((clean_path(&base.join(p)), origin.clone()));
        }
    }
}

/// A compose file's `services.<name>.build` (a context string, or `{context, dockerfile}`),
/// with `image:` or, as compose names it, the service name.
fn compose(root: &Path, file: &Path, text: &str, s: &mut Scan) {
    let base = file.parent().unwrap_or(root);
    let origin = rel(root, file);
    for doc in yaml_docs(text) {
        let Some(services) = doc.get("services").and_then(Value::as_object) else {
            continue;
        };
        for (name, svc) in services {
            let (context, dockerfile) = match svc.get("build") {
                Some(Value::String(c)) => (c.clone(), "Dockerfile".to_string()),
                Some(b @ Value::Object(_)) => (
                    b.get("context")
                        .and_then(Value::as_str)
                        .unwrap_or(".")
                        .to_string(),
                    b.get("dockerfile")
                        .and_then(Value::as_str)
                        .unwrap_or("Dockerfile")
                        .to_string(),
                ),
                _ => continue,
            };
            let context = clean_path(&base.join(context));
            let image = svc
                .get("image")
                .and_then(Value::as_str)
                .unwrap_or(name)
                .to_string();
            s.builds.push(BuildDecl {
                image,
                dockerfile: Some(clean_path(&context.join(dockerfile))),
                context,
                builder: "docker".into(),
                origin: format!("{origin} (service `{name}`)"),
            });
        }
    }
}

/// The argument text of every `name(...)` call in a Starlark file (comments dropped, strings
/// and nested parentheses respected).
fn calls<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let pat = format!("{name}(");
    let mut from = 0;
    while let Some(i) = text[from..].find(&pat) {
        let start = from + i;
        from = start + pat.len();
        // Not a longer identifier (`my_docker_build(`) nor a commented line.
        if start > 0 && (b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_') {
            continue;
        }
        let line_start = text[..start].rfind('\n').map_or(0, |n| n + 1);
        if text[line_start..start].contains('#') {
            continue;
        }
        let mut depth = 1;
        let mut quote: Option<u8> = None;
        let mut j = from;
        while j < b.len() && depth > 0 {
            let c = b[j];
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) if c == b'\\' => j += 1,
                Some(_) => {}
                None => match c {
                    b'\'' | b'"' => quote = Some(c),
                    b'(' | b'[' => depth += 1,
                    b')' | b']' => depth -= 1,
                    _ => {}
                },
            }
            j += 1;
        }
        if depth == 0 {
            out.push(&text[from..j - 1]);
        }
    }
    out
}

/// Top-level arguments: `(positional string literals, keyword → string literal)`.
fn args(a: &str) -> (Vec<Option<String>>, Vec<(String, String)>) {
    let mut parts = Vec::new();
    let (mut depth, mut quote, mut cur) = (0, None::<char>, String::new());
    for c in a.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '\'' | '"' => quote = Some(c),
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(std::mem::take(&mut cur));
                    continue;
                }
                _ => {}
            },
        }
        cur.push(c);
    }
    parts.push(cur);
    let lit = |s: &str| {
        let s = s.trim();
        let q = s.chars().next()?;
        (matches!(q, '\'' | '"') && s.len() >= 2 && s.ends_with(q))
            .then(|| s[1..s.len() - 1].to_string())
    };
    let mut pos = Vec::new();
    let mut kw = Vec::new();
    for p in parts.iter().filter(|p| !p.trim().is_empty()) {
        match p.split_once('=') {
            Some((k, v))
                if k.trim()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                if let Some(v) = lit(v) {
                    kw.push((k.trim().to_string(), v));
                }
            }
            _ => pos.push(lit(p)),
        }
    }
    (pos, kw)
}

/// A `Tiltfile`: `docker_build(ref, context, dockerfile=…)` and the manifests `k8s_yaml(…)`
/// deploys (file literals and `kustomize('dir')`). Only string literals are read; anything
/// computed is out of reach without running Starlark, which init never does.
fn tiltfile(root: &Path, file: &Path, text: &str, s: &mut Scan) {
    let base = file.parent().unwrap_or(root);
    let origin = rel(root, file);
    for a in calls(text, "docker_build") {
        let (pos, kw) = args(a);
        let get = |i: usize, k: &str| {
            kw.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .or_else(|| pos.get(i).cloned().flatten())
        };
        let (Some(image), Some(context)) = (get(0, "ref"), get(1, "context")) else {
            continue;
        };
        let context = clean_path(&base.join(context));
        let dockerfile = kw
            .iter()
            .find(|(n, _)| n == "dockerfile")
            .map(|(_, d)| clean_path(&base.join(d)))
            .unwrap_or_else(|| context.join("Dockerfile"));
        s.builds.push(BuildDecl {
            image,
            context,
            dockerfile: Some(dockerfile),
            builder: "docker".into(),
            origin: format!("{origin} (docker_build)"),
        });
    }
    for a in calls(text, "k8s_yaml") {
        let mut lits: Vec<String> = calls(a, "kustomize")
            .into_iter()
            .filter_map(|k| args(k).0.first().cloned().flatten())
            .collect();
        if !a.contains("kustomize(") && !a.contains("helm(") {
            let inner = a.trim().trim_start_matches('[').trim_end_matches(']');
            lits.extend(args(inner).0.into_iter().flatten());
        }
        for l in lits {
            s.tool_manifests
                .push((clean_path(&base.join(l)), origin.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiltfile_builds_and_manifests() {
        let t = r#"
# docker_build('commented/out', '.')
docker_build('gcr.io/acme/api', 'services/api', dockerfile='services/api/Dockerfile.dev',
             live_update=[sync('services/api/src', '/app/src')])
docker_build(ref="acme/web", context="web")
custom_build('acme/x', 'make x', deps=['x'])
k8s_yaml(kustomize('deploy/overlays/dev'))
k8s_yaml(['deploy/extra.yaml', "deploy/more.yaml"])
"#;
        let mut s = Scan::default();
        tiltfile(Path::new("/r"), Path::new("/r/Tiltfile"), t, &mut s);
        let b: Vec<(&str, String, String)> = s
            .builds
            .iter()
            .map(|b| {
                (
                    b.image.as_str(),
                    b.context.display().to_string(),
                    b.dockerfile.as_ref().unwrap().display().to_string(),
                )
            })
            .collect();
        assert_eq!(
            b,
            [
                (
                    "gcr.io/acme/api",
                    "/r/services/api".into(),
                    "/r/services/api/Dockerfile.dev".into()
                ),
                ("acme/web", "/r/web".into(), "/r/web/Dockerfile".into()),
            ]
        );
        let m: Vec<String> = s
            .tool_manifests
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect();
        assert_eq!(
            m,
            [
                "/r/deploy/overlays/dev",
                "/r/deploy/extra.yaml",
                "/r/deploy/more.yaml"
            ]
        );
    }

    #[test]
    fn skaffold_artifacts_relative_to_the_file() {
        let t = "apiVersion: skaffold/v4beta1\nkind: Config\nbuild:\n  artifacts:\n  - image: frontend\n    context: .\n  - image: cart\n    context: ../cart/src\n    docker: {dockerfile: Dockerfile.debug}\n  - image: ledger\n    jib: {}\nmanifests:\n  kustomize:\n    paths: [k8s/overlays/dev]\n  rawYaml: ['k8s/*.yaml', k8s/extra.yaml]\n";
        let mut s = Scan::default();
        skaffold(
            Path::new("/r"),
            Path::new("/r/src/web/skaffold.yaml"),
            t,
            &mut s,
        );
        assert_eq!(s.builds.len(), 3);
        assert_eq!(s.builds[0].context, Path::new("/r/src/web"));
        assert_eq!(
            s.builds[1].dockerfile.as_deref(),
            Some(Path::new("/r/src/cart/src/Dockerfile.debug"))
        );
        assert_eq!(s.builds[2].builder, "jib");
        assert_eq!(s.builds[2].dockerfile, None);
        let m: Vec<&Path> = s.tool_manifests.iter().map(|(p, _)| p.as_path()).collect();
        assert_eq!(
            m,
            [
                Path::new("/r/src/web/k8s/overlays/dev"),
                Path::new("/r/src/web/k8s/extra.yaml")
            ]
        );
    }

    #[test]
    fn compose_build_forms() {
        let t = "services:\n  api:\n    build: ./api\n  web:\n    image: acme/web\n    build: {context: web, dockerfile: Dockerfile.prod}\n  db:\n    image: postgres:16\n";
        let mut s = Scan::default();
        compose(
            Path::new("/r"),
            Path::new("/r/docker-compose.yaml"),
            t,
            &mut s,
        );
        let b: Vec<(&str, &Path)> = s
            .builds
            .iter()
            .map(|b| (b.image.as_str(), b.dockerfile.as_deref().unwrap()))
            .collect();
        assert_eq!(
            b,
            [
                ("api", Path::new("/r/api/Dockerfile")),
                ("acme/web", Path::new("/r/web/Dockerfile.prod"))
            ]
        );
    }

    #[test]
    fn chart_values_per_environment() {
        let tp = ktwin_testkit::TempProject::new();
        tp.write("c/Chart.yaml", "apiVersion: v2\nname: c\nversion: 0.1.0\n");
        for f in [
            "values.yaml",
            "values-prod.yaml",
            "values.dev.yaml",
            "other.yaml",
        ] {
            tp.write(&format!("c/{f}"), "{}\n");
        }
        let c = chart(&tp.path().join("c"));
        let envs: Vec<&str> = c.env_values.iter().map(|(e, _)| e.as_str()).collect();
        assert_eq!(envs, ["dev", "prod"]);
    }
}
