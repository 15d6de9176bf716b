//! `ktwin init`: turn a [`Scan`] into a commented ktwin.yaml that renders, saying why for each
//! inference and what was left out.
//!
//! Environments: one per distinct overlay name (`overlays/<name>` anywhere in the tree; every
//! service's `overlays/development` together make `development`). `local` renders, in order of
//! preference: what `skaffold.yaml`/`Tiltfile` deploy, else the dev-like overlay group, else the
//! kustomizations no other includes, else the plain manifest directories, else a Helm chart.
//! Every candidate source is rendered first; one that fails, one whose objects another chosen
//! source already defines, and one made only of kinds a plain cluster does not serve are left
//! out, each with the reason. Before the file is returned, every environment of it is parsed,
//! validated and rendered as `ktwin render` would.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use ktwin_config::imageref::ImageRef;
use ktwin_config::inputs::Inputs;
use serde_json::Value;

use crate::doc::{pod_spec_pointer, Document, BUILT_IN_GROUPS, CONTAINER_LISTS};
use crate::render::{kustomization_file, load_source, Kustomizer};
use crate::scan::{rel, scan, BuildDecl, Scan};

#[derive(Debug)]
pub struct Proposal {
    pub yaml: String,
    /// What was inferred and why, one line each.
    pub notes: Vec<String>,
}

/// Lower-case, non-alphanumerics to '-', trimmed to a DNS label.
pub fn dns_label(s: &str) -> String {
    let mut out: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    let t = out.trim_matches('-');
    let t = if t.len() > 63 { &t[..63] } else { t };
    if t.is_empty() {
        "app".into()
    } else {
        t.trim_end_matches('-').to_string()
    }
}

fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// A DNS label as a YAML scalar: bare when YAML reads it back as that string, quoted when it
/// would read as a number, a bool or null (`2`, `no`, `null`, `1e3`).
fn plain(s: &str) -> String {
    let special = matches!(
        s,
        "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null" | "~"
    ) || s.parse::<f64>().is_ok()
        || s.starts_with(|c: char| c.is_ascii_digit());
    if special || s.is_empty() {
        q(s)
    } else {
        s.to_string()
    }
}

/// Directories named after what they hold rather than a service: never an image's name.
const GENERIC_DIRS: &[&str] = &[
    "src",
    "source",
    "app",
    "apps",
    "docker",
    "dockerfiles",
    "build",
    "deploy",
    "deployment",
    "cmd",
    "server",
    "service",
    "services",
    "code",
    "images",
    "image",
    "containers",
    "container",
    "k8s",
    "kubernetes",
    "main",
    "root",
];

/// Overlay group names `local` is made from, in order of preference.
const LOCAL_LIKE: &[&str] = &[
    "local",
    "dev",
    "development",
    "develop",
    "sandbox",
    "test",
    "staging",
    "stage",
];

/// Path components that mark a source as a test, an example or a variant rather than the system.
fn is_aside(root: &Path, p: &Path) -> bool {
    rel(root, p).split('/').any(|c| {
        matches!(
            c,
            "test"
                | "tests"
                | "e2e"
                | "example"
                | "examples"
                | "samples"
                | "extras"
                | "hack"
                | "docs"
        )
    })
}

/// One manifest source of a proposed environment.
#[derive(Debug, Clone, PartialEq)]
enum Src {
    Path(PathBuf),
    Helm {
        chart: PathBuf,
        values: Vec<PathBuf>,
    },
}

impl Src {
    fn path(&self) -> &Path {
        match self {
            Src::Path(p) => p,
            Src::Helm { chart, .. } => chart,
        }
    }
}

/// (group, kind, namespace, name): an object's identity, for overlap between sources.
type Key = (String, String, String, String);

fn key(d: &Document) -> Key {
    (
        d.group().to_string(),
        d.kind().to_string(),
        d.namespace().unwrap_or("").to_string(),
        d.name().to_string(),
    )
}

/// A renderer's output, or its failure message.
type Outcome = Result<String, String>;

/// The user's kustomize and helm, each build run once: the candidates init tries and the final
/// check of the file it writes share the results.
struct Once<'a> {
    inner: &'a dyn Kustomizer,
    builds: std::cell::RefCell<HashMap<(PathBuf, Vec<String>), Outcome>>,
    charts: std::cell::RefCell<HashMap<String, Outcome>>,
}

impl Kustomizer for Once<'_> {
    fn build(&self, dir: &Path, flags: &[String]) -> Result<String, crate::RenderError> {
        let k = (dir.to_path_buf(), flags.to_vec());
        if let Some(r) = self.builds.borrow().get(&k) {
            return r.clone().map_err(|message| crate::RenderError::Kustomize {
                dir: dir.to_path_buf(),
                message,
            });
        }
        let r = self.inner.build(dir, flags);
        let stored = match &r {
            Ok(out) => Ok(out.clone()),
            Err(crate::RenderError::Kustomize { message, .. }) => Err(message.clone()),
            // Not a build failure (no kustomize at all): not remembered.
            Err(_) => return r,
        };
        self.builds.borrow_mut().insert(k, stored);
        r
    }

    fn helm_template(&self, call: &crate::helm::HelmCall) -> Result<String, crate::RenderError> {
        let k = call.args().join("\0");
        if let Some(r) = self.charts.borrow().get(&k) {
            return r.clone().map_err(|message| crate::RenderError::Helm {
                chart: call.chart.clone(),
                message,
            });
        }
        let r = self.inner.helm_template(call);
        let stored = match &r {
            Ok(out) => Ok(out.clone()),
            Err(crate::RenderError::Helm { message, .. }) => Err(message.clone()),
            Err(_) => return r,
        };
        self.charts.borrow_mut().insert(k, stored);
        r
    }
}

/// Renders candidate sources once each.
struct Tryer<'a> {
    root: &'a Path,
    kustomizer: &'a dyn Kustomizer,
    inputs: Inputs,
    done: HashMap<PathBuf, Result<Vec<Document>, String>>,
}

fn first_line(s: &str, max: usize) -> String {
    let l = s
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string();
    if l.chars().count() > max {
        format!("{}…", l.chars().take(max).collect::<String>())
    } else {
        l
    }
}

impl Tryer<'_> {
    fn render(&mut self, src: &Src) -> Result<&[Document], String> {
        // A chart is rendered once per values files.
        let k = match src {
            Src::Path(p) => p.clone(),
            Src::Helm { chart, values } => {
                let mut k = chart.clone().into_os_string();
                for v in values {
                    k.push("\0");
                    k.push(v);
                }
                PathBuf::from(k)
            }
        };
        if !self.done.contains_key(&k) {
            let r = match src {
                // Strictly, as `ktwin render` will read it: a directory with a values file or
                // a template in it does not render, and is left out saying so.
                Src::Path(p) => {
                    load_source(p, self.kustomizer, &[], &self.inputs).map_err(|e| match e {
                        // The directory is named already; kustomize's own first line says why.
                        crate::RenderError::Kustomize { message, .. } => {
                            first_line(message.trim_start_matches("error: "), 240)
                        }
                        e => first_line(&e.to_string(), 240),
                    })
                }
                Src::Helm { chart, values } => self
                    .kustomizer
                    .helm_template(&crate::helm::HelmCall {
                        release: chart_release(chart),
                        chart: chart.clone(),
                        namespace: None,
                        values: values.clone(),
                        set: vec![],
                        include_crds: true,
                    })
                    .and_then(|out| crate::helm::documents(&out, chart, None))
                    .map(|(d, _)| d)
                    .map_err(|e| first_line(&e.to_string(), 240)),
            };
            self.done.insert(k.clone(), r);
        }
        match &self.done[&k] {
            Ok(d) => Ok(d.as_slice()),
            Err(e) => Err(e.clone()),
        }
    }

    /// The candidates, in order, that render, are not made only of kinds a plain cluster does
    /// not serve, and define no object an earlier chosen one does; the rest noted with why.
    fn pick(&mut self, cands: &[Src], notes: &mut Vec<String>, what: &str) -> Vec<Src> {
        let mut chosen: Vec<Src> = Vec::new();
        let mut owner: HashMap<Key, PathBuf> = HashMap::new();
        for c in cands {
            let shown = rel(self.root, c.path());
            let docs = match self.render(c) {
                Ok(d) => d.to_vec(),
                Err(e) => {
                    notes.push(format!(
                        "left out {shown} ({what}): it does not render: {e}"
                    ));
                    continue;
                }
            };
            if docs.is_empty() {
                notes.push(format!("left out {shown} ({what}): it renders no objects"));
                continue;
            }
            let crds: BTreeSet<String> = docs
                .iter()
                .filter(|d| d.is("CustomResourceDefinition"))
                .filter_map(|d| d.value.pointer("/spec/group").and_then(Value::as_str))
                .map(str::to_string)
                .collect();
            let served =
                |d: &Document| BUILT_IN_GROUPS.contains(&d.group()) || crds.contains(d.group());
            if !docs.iter().any(served) {
                let kinds: BTreeSet<&str> = docs.iter().map(|d| d.kind()).collect();
                notes.push(format!(
                    "left out {shown} ({what}): only kinds a plain cluster does not serve ({})",
                    kinds.into_iter().collect::<Vec<_>>().join(", ")
                ));
                continue;
            }
            let shared: Vec<&Document> = docs
                .iter()
                .filter(|d| owner.contains_key(&key(d)))
                .collect();
            if let Some(first) = shared.first() {
                let other = rel(self.root, &owner[&key(first)]);
                notes.push(format!(
                    "left out {shown} ({what}): {} of its {} objects are already in {other} (e.g. {}/{}); `ktwin render` would reject the duplicates",
                    shared.len(),
                    docs.len(),
                    first.kind(),
                    first.name()
                ));
                continue;
            }
            for d in &docs {
                owner.insert(key(d), c.path().to_path_buf());
            }
            chosen.push(c.clone());
        }
        chosen
    }
}

fn chart_release(chart: &Path) -> String {
    dns_label(
        &chart
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    )
}

/// Sort candidates: not a test/example first, then shallower, then by path.
fn by_preference(root: &Path, mut v: Vec<PathBuf>) -> Vec<PathBuf> {
    v.sort_by_key(|p| (is_aside(root, p), p.components().count(), p.clone()));
    v.dedup();
    v
}

#[derive(Debug, Default)]
struct Pool {
    labels: BTreeMap<String, String>,
    users: Vec<String>,
    tolerated: Option<BTreeSet<String>>,
}

/// Node labels a production cluster sets itself (kubelet, cloud controllers): never a pool.
fn well_known_label(k: &str) -> bool {
    let prefix = k.split_once('/').map_or("", |(p, _)| p);
    matches!(
        prefix,
        "kubernetes.io" | "beta.kubernetes.io" | "topology.kubernetes.io" | "node.kubernetes.io"
    ) || prefix.ends_with(".kubernetes.io") && prefix != "node-role.kubernetes.io"
        || k == "failure-domain.beta.kubernetes.io/zone"
        || k == "failure-domain.beta.kubernetes.io/region"
}

/// An image a workload of the local render runs.
#[derive(Debug, Clone)]
struct RunImage {
    /// As the manifests name it, without tag or digest.
    repo: String,
    key: String,
    last: String,
    users: BTreeSet<String>,
}

fn last_segment(repo: &str) -> &str {
    repo.rsplit('/').next().unwrap_or(repo)
}

/// `host/org` of a normalised repository key.
fn org(key: &str) -> Option<&str> {
    key.rsplit_once('/').map(|(o, _)| o)
}

/// An `images:` entry init proposes.
#[derive(Debug, Clone)]
struct ImageEntry {
    image: String,
    context: PathBuf,
    dockerfile: PathBuf,
}

/// `p` relative to `base`, with `..` where it lies outside.
fn relative_to(base: &Path, p: &Path) -> String {
    let b: Vec<_> = base.components().collect();
    let t: Vec<_> = p.components().collect();
    let common = b.iter().zip(&t).take_while(|(x, y)| x == y).count();
    let mut out: Vec<String> = vec!["..".into(); b.len() - common];
    out.extend(
        t[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    out.join("/")
}

struct Matching {
    entries: Vec<ImageEntry>,
    /// Dockerfiles no image was matched to, with an image they may build (uncorroborated).
    unmatched_dockerfiles: Vec<(PathBuf, Option<String>)>,
}

/// The last path segment of an image reference's repository (`api` of `gcr.io/a/api:1.0`).
fn repo_last(image: &str) -> String {
    match ImageRef::parse(image) {
        Ok(r) => last_segment(&r.path).to_string(),
        Err(_) => last_segment(image.split([':', '@']).next().unwrap_or(image)).to_string(),
    }
}

/// A match: the image's key → (context, Dockerfile, why).
type Claims = BTreeMap<String, (PathBuf, PathBuf, String)>;

/// Match the images the local render runs to the Dockerfiles that build them: first what a
/// tool's build declaration says, then the nearest named directory on the Dockerfile's path
/// when it is named like the image, then the root Dockerfile to the only image that is not an
/// official Docker Hub one when the repository names it too (a directory of that name). Each
/// match, and every first-party-looking image left unmatched, is noted with its reason.
fn match_images(root: &Path, s: &Scan, docs: &[Document], notes: &mut Vec<String>) -> Matching {
    let mut run: BTreeMap<String, RunImage> = BTreeMap::new();
    for d in docs {
        let Some(spec) = pod_spec_pointer(d.kind()).and_then(|p| d.value.pointer(p)) else {
            continue;
        };
        for l in CONTAINER_LISTS {
            for c in spec.get(*l).and_then(Value::as_array).into_iter().flatten() {
                let Some(i) = c.get("image").and_then(Value::as_str) else {
                    continue;
                };
                let Ok(mut r) = ImageRef::parse(i) else {
                    continue;
                };
                r.tag = None;
                r.digest = None;
                let key = r.repository_key();
                let repo = r.to_string();
                let e = run.entry(key.clone()).or_insert_with(|| RunImage {
                    last: last_segment(&r.path).to_string(),
                    repo,
                    key,
                    users: BTreeSet::new(),
                });
                e.users.insert(format!("{}/{}", d.kind(), d.name()));
            }
        }
    }
    let inside = |p: &Path| p.starts_with(root);
    let mut claimed: Claims = BTreeMap::new();
    let mut df_matched: BTreeSet<PathBuf> = BTreeSet::new();
    let mut claim = |key: &str, ctx: &Path, df: &Path, why: String, claimed: &mut Claims| {
        claimed.insert(key.to_string(), (ctx.to_path_buf(), df.to_path_buf(), why));
        df_matched.insert(df.to_path_buf());
    };
    // A build declaration names the image (its context, which may not be the Dockerfile's
    // directory). A build outside the project is not proposed: ktwin.yaml would refuse it.
    for b in &s.builds {
        let Some(df) = &b.dockerfile else { continue };
        if !df.is_file() || !inside(df) || !inside(&b.context) {
            continue;
        }
        let want = ImageRef::parse(&b.image).ok();
        for r in run.values() {
            if claimed.contains_key(&r.key) {
                continue;
            }
            let same = want.as_ref().is_some_and(|w| w.repository_key() == r.key)
                || r.last == repo_last(&b.image);
            if same {
                claim(
                    &r.key,
                    &b.context,
                    df,
                    format!(
                        "{} builds `{}` from {}",
                        b.origin,
                        b.image,
                        rel(root, &b.context)
                    ),
                    &mut claimed,
                );
            }
        }
    }
    let matched_dfs: BTreeSet<PathBuf> = claimed.values().map(|(_, df, _)| df.clone()).collect();
    // The nearest directory on the Dockerfile's path that is named after something (not `src`,
    // `docker`, …) is named like the image. Tests and examples are not the system.
    for df in &s.dockerfiles {
        if matched_dfs.contains(df) || is_aside(root, df) {
            continue;
        }
        let mut dir = df.parent();
        while let Some(d) = dir.filter(|d| d.starts_with(root) && *d != root) {
            let name = d
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if GENERIC_DIRS.contains(&name.as_str()) {
                dir = d.parent();
                continue;
            }
            let hits: Vec<String> = run
                .values()
                .filter(|r| !claimed.contains_key(&r.key) && r.last == name)
                .map(|r| r.key.clone())
                .collect();
            for k in hits {
                claim(
                    &k,
                    df.parent().unwrap_or(root),
                    df,
                    format!("its directory {} is named like the image", rel(root, d)),
                    &mut claimed,
                );
            }
            break;
        }
    }
    // The repository's root Dockerfile and its only image that is not an official Docker Hub
    // one — when something in the repository is named like it too (a chart or folder: podinfo's
    // `charts/podinfo`). Else it is only a guess: offered, commented out.
    let mut guesses: BTreeMap<PathBuf, String> = BTreeMap::new();
    let claimed_dfs: BTreeSet<PathBuf> = claimed.values().map(|(_, df, _)| df.clone()).collect();
    for df in &s.dockerfiles {
        if claimed_dfs.contains(df) || df.parent() != Some(root) {
            continue;
        }
        let rest: Vec<&RunImage> = run
            .values()
            .filter(|r| !claimed.contains_key(&r.key) && !r.key.starts_with("docker.io/library/"))
            .collect();
        if let [only] = rest.as_slice() {
            let named = s.dir_names.contains(&only.last)
                || root
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy() == only.last);
            if named {
                let k = only.key.clone();
                claim(
                    &k,
                    root,
                    df,
                    format!(
                        "the repository's root Dockerfile, the only image the manifests run that is not an official Docker Hub image, and the repository has a directory named `{}`",
                        only.last
                    ),
                    &mut claimed,
                );
            } else {
                guesses.insert(df.clone(), only.repo.clone());
            }
        }
    }

    let mut entries = Vec::new();
    for (k, (ctx, df, why)) in &claimed {
        let r = &run[k];
        notes.push(format!(
            "image {} builds from {}: {why} (run by {})",
            r.repo,
            rel(root, df),
            r.users.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
        entries.push(ImageEntry {
            image: r.repo.clone(),
            context: ctx.clone(),
            dockerfile: df.clone(),
        });
    }
    // What looks first-party but has no Dockerfile ktwin can build.
    // Docker Hub's official images share one "organisation"; it says nothing.
    let built_orgs: BTreeSet<&str> = claimed
        .keys()
        .filter_map(|k| org(k))
        .filter(|o| *o != "docker.io/library")
        .collect();
    let decl_for = |r: &RunImage| -> Option<&BuildDecl> {
        s.builds.iter().find(|b| {
            ImageRef::parse(&b.image).is_ok_and(|w| w.repository_key() == r.key)
                || repo_last(&b.image) == r.last
        })
    };
    for r in run.values().filter(|r| !claimed.contains_key(&r.key)) {
        let why = if let Some(b) = decl_for(r) {
            match &b.dockerfile {
                None => format!(
                    "{} builds it with {}; ktwin builds Dockerfiles only, so the twin runs the image as the manifests name it",
                    b.origin, b.builder
                ),
                Some(df) if !inside(df) || !inside(&b.context) => format!(
                    "{} builds it from {}, outside the project",
                    b.origin,
                    rel(root, &b.context)
                ),
                Some(df) => format!(
                    "{} builds it from {}, which is not in this checkout",
                    b.origin,
                    rel(root, df)
                ),
            }
        } else if org(&r.key).is_some_and(|o| built_orgs.contains(o)) {
            "it shares its registry and organisation with images ktwin builds, but no Dockerfile matched it".into()
        } else if s.dir_names.contains(&r.last) {
            format!(
                "a directory `{}` exists, but holds no Dockerfile matched to it",
                r.last
            )
        } else if guesses.values().any(|g| *g == r.repo) {
            "the root Dockerfile may build it (it is the only image not from Docker Hub's official ones), but nothing in the repository is named like it: see the commented `images:` line".into()
        } else {
            continue;
        };
        notes.push(format!(
            "image {} is not built (run by {}): {why}; add an `images:` entry if the twin should build it",
            r.repo,
            r.users.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    let unmatched_dockerfiles: Vec<(PathBuf, Option<String>)> = s
        .dockerfiles
        .iter()
        .filter(|d| !df_matched.contains(*d))
        .map(|d| (d.clone(), guesses.get(d).cloned()))
        .collect();
    for (d, _) in &unmatched_dockerfiles {
        notes.push(format!(
            "{} matches no image the local manifests run (listed, commented out, under images:)",
            rel(root, d)
        ));
    }
    Matching {
        entries,
        unmatched_dockerfiles,
    }
}

/// Everything the file is written from.
#[derive(Debug, Default)]
struct Draft {
    name: String,
    pools: Vec<(String, Pool)>,
    ports: Vec<(u64, String)>,
    images: Vec<ImageEntry>,
    unmatched_dockerfiles: Vec<(PathBuf, Option<String>)>,
    local: Vec<Src>,
    missing_secrets: Vec<String>,
    envs: Vec<(String, Vec<Src>)>,
    /// Sources found but in no environment, with why.
    aside: Vec<(Src, String)>,
}

fn src_yaml(root: &Path, s: &Src, indent: &str) -> String {
    match s {
        Src::Path(p) => format!("{indent}- {}\n", q(&rel(root, p))),
        Src::Helm { chart, values } => {
            let mut y = format!(
                "{indent}- helm:\n{indent}    chart: {}\n",
                q(&rel(root, chart))
            );
            y.push_str(&format!("{indent}    release: {}\n", chart_release(chart)));
            if !values.is_empty() {
                let v: Vec<String> = values.iter().map(|v| q(&rel(root, v))).collect();
                y.push_str(&format!("{indent}    values: [{}]\n", v.join(", ")));
            }
            y
        }
    }
}

fn write(root: &Path, d: &Draft) -> String {
    let mut y = String::new();
    y.push_str("# ktwin.yaml — written by `ktwin init`; review every line, then `ktwin render --explain`.\n");
    y.push_str("# Reference: `ktwin schema` prints the JSON Schema of this file.\n");
    y.push_str("apiVersion: ktwin.dev/v1alpha1\nkind: Project\n");
    y.push_str(&format!("name: {}\n", plain(&d.name)));
    y.push_str("cluster:\n  provider: k3d              # or kind\n  servers: 1\n");
    if d.pools.is_empty() {
        y.push_str("  agents: []                 # one entry per production node pool\n");
    } else {
        y.push_str("  agents:                    # one per node pool the manifests select\n");
        for (pname, pool) in &d.pools {
            y.push_str(&format!(
                "    - name: {}              # used by {}\n",
                plain(pname),
                pool.users.join(", ")
            ));
            let labels: Vec<String> = pool
                .labels
                .iter()
                .map(|(k, v)| format!("{}: {}", q(k), q(v)))
                .collect();
            y.push_str(&format!("      labels: {{{}}}\n", labels.join(", ")));
            let taints: Vec<String> = pool
                .tolerated
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect();
            if !taints.is_empty() {
                y.push_str(&format!(
                    "      taints: [{}]   # every pod of this pool tolerates it\n",
                    taints.iter().map(|t| q(t)).collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    if d.ports.is_empty() {
        y.push_str(
            "  ports: []                  # {hostPort, nodePort} per NodePort Service to reach\n",
        );
    } else {
        y.push_str("  ports:\n");
        for (np, svc) in &d.ports {
            y.push_str(&format!(
                "    - {{hostPort: {np}, nodePort: {np}}}   # Service {svc}\n"
            ));
        }
    }
    y.push_str("registry:\n  name: ktwin-registry\n  hostPort: 5001\n");
    if d.images.is_empty() {
        y.push_str("images: []\n");
    } else {
        y.push_str("images:\n");
        for i in &d.images {
            y.push_str(&format!(
                "  - image: {}\n    context: {}\n",
                q(&i.image),
                q(&rel(root, &i.context))
            ));
            let df = relative_to(&i.context, &i.dockerfile);
            if df != "Dockerfile" {
                y.push_str(&format!("    dockerfile: {}\n", q(&df)));
            }
        }
    }
    if !d.unmatched_dockerfiles.is_empty() {
        y.push_str("# Dockerfiles no image of the local manifests matched (uncomment and name the image to build one):\n");
        for (df, guess) in &d.unmatched_dockerfiles {
            let ctx = df.parent().unwrap_or(root);
            y.push_str(&format!(
                "#  - {{image: {}, context: {}, dockerfile: {}}}\n",
                guess
                    .as_deref()
                    .map(q)
                    .unwrap_or_else(|| "CHANGE-ME".into()),
                q(&rel(root, ctx)),
                q(&relative_to(ctx, df))
            ));
        }
    }
    y.push_str("environments:\n  local:\n");
    if d.local.is_empty() {
        y.push_str("    manifests: []\n");
    } else {
        y.push_str("    manifests:\n");
        for s in &d.local {
            y.push_str(&src_yaml(root, s, "      "));
        }
    }
    y.push_str(
        "    adapt: {}                # every local adaptation on; see `ktwin render --explain`\n",
    );
    if !d.missing_secrets.is_empty() {
        y.push_str("    # Secrets the workloads use that no manifest defines. Create each env file, git-ignore\n    # it, then uncomment:\n    # secrets:\n");
        for m in &d.missing_secrets {
            y.push_str(&format!("    #   - {{name: {m}, envFile: {m}.env}}\n"));
        }
    }
    for (n, srcs) in &d.envs {
        y.push_str(&format!("  {}:\n    manifests:\n", plain(n)));
        for s in srcs {
            y.push_str(&src_yaml(root, s, "      "));
        }
        y.push_str(&format!(
            "    context: CHANGE-ME-{n}   # the kube context of your {n} cluster\n"
        ));
    }
    if !d.aside.is_empty() {
        y.push_str("# Also found, in no environment (add one to an environment's `manifests:` to use it):\n");
        for (s, why) in &d.aside {
            match s {
                Src::Path(p) => y.push_str(&format!("#   - {}   # {why}\n", q(&rel(root, p)))),
                Src::Helm { .. } => {
                    y.push_str(&format!("#   {why}:\n"));
                    for l in src_yaml(root, s, "#   ").lines() {
                        y.push_str(l);
                        y.push('\n');
                    }
                }
            }
        }
    }
    y
}

/// Parse, validate and render every environment of `yaml` as `ktwin render` would: the
/// environment that fails and the reason, if any does.
fn check(
    root: &Path,
    yaml: &str,
    kustomizer: &dyn Kustomizer,
) -> Result<(), (Option<String>, String)> {
    let path = root.join(ktwin_config::load::FILE_NAME);
    let mut loaded = ktwin_config::load::parse(&path, yaml.to_string())
        .map_err(|e| (None, first_line(&e.to_string(), 300)))?;
    loaded.root = ktwin_config::inputs::project_root(&loaded.dir);
    let diags = ktwin_config::validate::validate(&loaded);
    if let Some(d) = diags.first() {
        return Err((None, first_line(&d.message, 300)));
    }
    let images = ktwin_config::desired::plan_images(&loaded)
        .map_err(|e| (None, first_line(&e.to_string(), 300)))?;
    let names: Vec<String> = loaded.project.environments.keys().cloned().collect();
    for env in names {
        let imgs = if env == ktwin_config::LOCAL_ENV {
            images.as_slice()
        } else {
            &[]
        };
        crate::pipeline::render_env(&loaded, &env, kustomizer, imgs)
            .map_err(|e| (Some(env.clone()), first_line(&e.to_string(), 300)))?;
    }
    Ok(())
}

pub fn propose(root: &Path, kustomizer: &dyn Kustomizer) -> Proposal {
    let root = &crate::render::clean_path(root);
    let once = Once {
        inner: kustomizer,
        builds: Default::default(),
        charts: Default::default(),
    };
    let kustomizer: &dyn Kustomizer = &once;
    let s = scan(root);
    let mut notes = Vec::new();
    let mut d = Draft {
        name: dns_label(
            &root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ),
        ..Draft::default()
    };
    notes.push(format!("project name `{}` from the directory name", d.name));
    let mut t = Tryer {
        root,
        kustomizer,
        inputs: Inputs::confined(&ktwin_config::inputs::project_root(root)),
        done: HashMap::new(),
    };

    // Kustomize roots: overlay groups, and the tops no other root includes.
    let roots: Vec<&crate::scan::KustomizeRoot> = s.roots.iter().filter(|r| !r.component).collect();
    let included: BTreeSet<&PathBuf> = s.roots.iter().flat_map(|r| r.includes.iter()).collect();
    let mut groups: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for r in &roots {
        let parent = r
            .dir
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned());
        if matches!(
            parent.as_deref(),
            Some("overlays" | "envs" | "environments")
        ) {
            let name = r
                .dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            groups
                .entry(dns_label(&name))
                .or_default()
                .push(r.dir.clone());
        }
    }
    let in_group: BTreeSet<&PathBuf> = groups.values().flatten().collect();
    let tops: Vec<PathBuf> = roots
        .iter()
        .filter(|r| !included.contains(&r.dir) && !in_group.contains(&r.dir))
        .map(|r| r.dir.clone())
        .collect();
    // Plain directories: each reads its subdirectories too, so a subdirectory of one is not
    // listed again.
    let plain: Vec<PathBuf> = s
        .plain_dirs
        .iter()
        .filter(|p| !s.plain_dirs.iter().any(|o| o != *p && p.starts_with(o)))
        .cloned()
        .collect();
    let tool: Vec<(PathBuf, String)> = {
        let mut seen = BTreeSet::new();
        s.tool_manifests
            .iter()
            .filter(|(p, _)| p.exists() && seen.insert(p.clone()))
            .cloned()
            .collect()
    };
    let srcs = |v: &[PathBuf]| v.iter().cloned().map(Src::Path).collect::<Vec<_>>();

    // local.
    let mut local_from: Option<String> = None;
    if !tool.is_empty() {
        let c: Vec<Src> = tool.iter().map(|(p, _)| Src::Path(p.clone())).collect();
        let origins: BTreeSet<&str> = tool.iter().map(|(_, o)| o.as_str()).collect();
        let picked = t.pick(&c, &mut notes, "deployed by skaffold/Tilt");
        if !picked.is_empty() {
            local_from = Some(format!(
                "what {} deploys",
                origins.into_iter().collect::<Vec<_>>().join(", ")
            ));
            d.local = picked;
        }
    }
    let local_group = LOCAL_LIKE
        .iter()
        .find(|n| groups.contains_key(**n))
        .map(|n| n.to_string());
    if d.local.is_empty() {
        if let Some(g) = &local_group {
            let picked = t.pick(
                &srcs(&by_preference(root, groups[g].clone())),
                &mut notes,
                &format!("overlay `{g}`"),
            );
            if !picked.is_empty() {
                local_from = Some(format!("the `{g}` overlay(s)"));
                d.local = picked;
            }
        }
    }
    if d.local.is_empty() && !tops.is_empty() {
        let picked = t.pick(
            &srcs(&by_preference(root, tops.clone())),
            &mut notes,
            "kustomization",
        );
        if !picked.is_empty() {
            local_from = Some("the kustomization(s) no other includes".into());
            d.local = picked;
        }
    }
    if d.local.is_empty() && !plain.is_empty() {
        let picked = t.pick(
            &srcs(&by_preference(root, plain.clone())),
            &mut notes,
            "plain manifests",
        );
        if !picked.is_empty() {
            local_from = Some("the plain manifest director(ies)".into());
            d.local = picked;
        }
    }
    let mut chart_envs: Vec<(String, Src)> = Vec::new();
    if d.local.is_empty() {
        let mut charts: Vec<&crate::scan::Chart> = s.charts.iter().collect();
        charts.sort_by_key(|c| {
            (
                is_aside(root, &c.dir),
                c.dir.components().count(),
                c.dir.clone(),
            )
        });
        for c in charts {
            let local_values: Vec<PathBuf> = LOCAL_LIKE
                .iter()
                .find_map(|n| c.env_values.iter().find(|(e, _)| e == n))
                .map(|(_, v)| vec![v.clone()])
                .unwrap_or_default();
            let src = Src::Helm {
                chart: c.dir.clone(),
                values: local_values.clone(),
            };
            let picked = t.pick(std::slice::from_ref(&src), &mut notes, "Helm chart");
            if picked.is_empty() {
                continue;
            }
            local_from = Some(format!("the Helm chart {}", rel(root, &c.dir)));
            d.local = picked;
            for (e, v) in &c.env_values {
                if local_values.first() != Some(v) {
                    chart_envs.push((
                        dns_label(e),
                        Src::Helm {
                            chart: c.dir.clone(),
                            values: vec![v.clone()],
                        },
                    ));
                }
            }
            break;
        }
    }
    if d.local.is_empty() {
        for (g, members) in groups
            .iter()
            .filter(|(g, _)| Some(*g) != local_group.as_ref())
        {
            let picked = t.pick(
                &srcs(&by_preference(root, members.clone())),
                &mut notes,
                &format!("overlay `{g}`"),
            );
            if !picked.is_empty() {
                local_from = Some(format!(
                    "the `{g}` overlay(s), the first overlay group that renders"
                ));
                d.local = picked;
                break;
            }
        }
    }
    match &local_from {
        Some(from) => notes.push(format!(
            "environment `local` renders {from}: {} (the twin adapts it; `ktwin render --explain` shows how)",
            d.local.iter().map(|s| rel(root, s.path())).collect::<Vec<_>>().join(", ")
        )),
        None => notes.push("no source renders: add paths under environments.local.manifests".into()),
    }

    // One environment per overlay name (and per chart values file when local is the chart).
    for (g, members) in &groups {
        if g == ktwin_config::LOCAL_ENV {
            continue;
        }
        let picked = t.pick(
            &srcs(&by_preference(root, members.clone())),
            &mut notes,
            &format!("overlay `{g}`"),
        );
        if picked.is_empty() {
            notes.push(format!(
                "no environment `{g}`: none of its overlays renders"
            ));
            continue;
        }
        notes.push(format!(
            "environment `{g}` from {} overlay(s) named `{g}`; set its real kube context",
            picked.len()
        ));
        d.envs.push((g.clone(), picked));
    }
    for (e, src) in chart_envs {
        if e == ktwin_config::LOCAL_ENV || d.envs.iter().any(|(n, _)| *n == e) {
            continue;
        }
        if t.pick(std::slice::from_ref(&src), &mut notes, "Helm chart")
            .is_empty()
        {
            continue;
        }
        notes.push(format!(
            "environment `{e}` renders the chart with {}; set its real kube context",
            match &src {
                Src::Helm { values, .. } => values
                    .iter()
                    .map(|v| rel(root, v))
                    .collect::<Vec<_>>()
                    .join(", "),
                Src::Path(_) => String::new(),
            }
        ));
        d.envs.push((e, vec![src]));
    }

    // What was found but is in no environment.
    let used: BTreeSet<PathBuf> = d
        .local
        .iter()
        .chain(d.envs.iter().flat_map(|(_, v)| v.iter()))
        .map(|s| s.path().to_path_buf())
        .collect();
    for p in by_preference(root, tops.iter().chain(plain.iter()).cloned().collect()) {
        if !used.contains(&p) {
            let what = if kustomization_file(&p).is_some() {
                "a kustomization no other includes"
            } else {
                "plain manifests"
            };
            d.aside.push((Src::Path(p), what.into()));
        }
    }
    for c in &s.charts {
        if !used.contains(&c.dir) {
            d.aside.push((
                Src::Helm {
                    chart: c.dir.clone(),
                    values: vec![],
                },
                "a Helm chart: rendered with your `helm template`".into(),
            ));
        }
    }

    // What the local render holds: pools, ports, Secrets, images.
    let mut docs: Vec<Document> = Vec::new();
    for src in d.local.clone() {
        if let Ok(x) = t.render(&src) {
            docs.extend(x.iter().cloned());
        }
    }
    infer_cluster(&docs, &mut d, &mut notes);
    let m = match_images(root, &s, &docs, &mut notes);
    d.images = m.entries;
    d.unmatched_dockerfiles = m.unmatched_dockerfiles;

    // The file must render: drop an environment that does not (saying why) and try again.
    let mut yaml = write(root, &d);
    for _ in 0..=d.envs.len() + 1 {
        match check(root, &yaml, kustomizer) {
            Ok(()) => break,
            Err((Some(env), why)) if env != ktwin_config::LOCAL_ENV => {
                notes.push(format!("no environment `{env}`: it does not render: {why}"));
                d.envs.retain(|(n, _)| *n != env);
            }
            Err((Some(_), why)) => {
                notes.push(format!(
                    "environment `local` does not render together ({why}); its manifests are left for you to choose"
                ));
                // What was inferred from it goes with it.
                d.local.clear();
                d.pools.clear();
                d.ports.clear();
                d.missing_secrets.clear();
                d.images.clear();
                d.unmatched_dockerfiles = s.dockerfiles.iter().map(|f| (f.clone(), None)).collect();
            }
            Err((None, why)) => {
                notes.push(format!("the proposal needs attention: {why}"));
                break;
            }
        }
        yaml = write(root, &d);
    }
    // A source two environments share was noted once for each.
    let mut seen = BTreeSet::new();
    notes.retain(|n| seen.insert(n.clone()));
    Proposal { yaml, notes }
}

/// Node pools (from nodeSelectors and required node affinity), NodePorts and missing Secrets.
fn infer_cluster(docs: &[Document], d: &mut Draft, notes: &mut Vec<String>) {
    let mut pools: BTreeMap<String, Pool> = BTreeMap::new();
    let mut skipped_labels = BTreeSet::new();
    let mut well_known = BTreeSet::new();
    let defined_secrets: BTreeSet<String> = docs
        .iter()
        .filter(|d| d.is("Secret"))
        .map(|d| d.name().to_string())
        .collect();
    let mut referenced_secrets: BTreeSet<String> = BTreeSet::new();
    for doc in docs {
        if doc.is("Service")
            && doc.value.pointer("/spec/type").and_then(Value::as_str) == Some("NodePort")
        {
            for p in doc
                .value
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(np) = p.get("nodePort").and_then(Value::as_u64) {
                    if !d.ports.iter().any(|(n, _)| *n == np) {
                        d.ports.push((np, doc.name().to_string()));
                    }
                }
            }
        }
        let Some(spec) = pod_spec_pointer(doc.kind()).and_then(|p| doc.value.pointer(p)) else {
            continue;
        };
        collect_secret_refs(spec, &mut referenced_secrets);
        let mut labels: BTreeMap<String, String> = BTreeMap::new();
        if let Some(ns) = spec.get("nodeSelector").and_then(Value::as_object) {
            for (k, v) in ns {
                if let Some(v) = v.as_str() {
                    labels.insert(k.clone(), v.to_string());
                }
            }
        }
        let terms = spec
            .pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
            .and_then(Value::as_array);
        if let Some(first) = terms.and_then(|t| t.first()) {
            for e in first
                .get("matchExpressions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let key = e.get("key").and_then(Value::as_str);
                let op = e.get("operator").and_then(Value::as_str);
                let vals = e.get("values").and_then(Value::as_array);
                if let (Some(k), Some("In"), Some(vals)) = (key, op, vals) {
                    if let Some(v) = vals.first().and_then(Value::as_str) {
                        labels.insert(k.to_string(), v.to_string());
                    }
                }
            }
        }
        labels.retain(|k, _| {
            if well_known_label(k) {
                well_known.insert(k.clone());
                return false;
            }
            let allowed = ktwin_config::names::kubelet_may_set(k).is_ok();
            if !allowed {
                skipped_labels.insert(k.clone());
            }
            allowed
        });
        if labels.is_empty() {
            continue;
        }
        let key = labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let tol: BTreeSet<String> = spec
            .get("tolerations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| {
                let k = t.get("key")?.as_str()?;
                let eff = t.get("effect")?.as_str()?;
                if eff == "PreferNoSchedule" {
                    return None;
                }
                match t.get("value").and_then(Value::as_str) {
                    Some(v) => Some(format!("{k}={v}:{eff}")),
                    None => Some(format!("{k}:{eff}")),
                }
            })
            .collect();
        let pool = pools.entry(key).or_default();
        pool.labels = labels;
        pool.users.push(format!("{}/{}", doc.kind(), doc.name()));
        pool.tolerated = Some(match pool.tolerated.take() {
            None => tol,
            Some(prev) => prev.intersection(&tol).cloned().collect(),
        });
    }
    for k in &well_known {
        notes.push(format!(
            "label `{k}` is one every node carries or the cloud sets (kubelet/topology): no pool is made for it"
        ));
    }
    for k in &skipped_labels {
        notes.push(format!(
            "label `{k}` is reserved (the kubelet cannot set it); no pool carries it"
        ));
    }
    let mut used = BTreeSet::new();
    for pool in pools.into_values() {
        let base = dns_label(
            pool.labels
                .values()
                .next()
                .map(String::as_str)
                .unwrap_or("pool"),
        );
        // Short enough for node names built from it; a second pool with the same label value
        // gets `-2`, `-3`…
        let base: String = base
            .chars()
            .take(40)
            .collect::<String>()
            .trim_end_matches('-')
            .to_string();
        let mut pname = base.clone();
        let mut n = 1;
        while !used.insert(pname.clone()) {
            n += 1;
            pname = format!("{base}-{n}");
        }
        notes.push(format!(
            "pool `{pname}` with {} from the nodeSelector/affinity of {}",
            pool.labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
            pool.users.join(", ")
        ));
        d.pools.push((pname, pool));
    }
    for (np, svc) in &d.ports {
        notes.push(format!(
            "port {np} on 127.0.0.1 → nodePort {np} of Service {svc}"
        ));
    }
    d.missing_secrets = referenced_secrets
        .difference(&defined_secrets)
        .cloned()
        .collect();
    for m in &d.missing_secrets {
        notes.push(format!(
            "Secret `{m}` is used but not defined: see the commented `secrets:` entry"
        ));
    }
}

fn collect_secret_refs(spec: &Value, out: &mut BTreeSet<String>) {
    fn visit(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                for (k, val) in m {
                    match k.as_str() {
                        "secretKeyRef" | "secretRef" => {
                            if let Some(n) = val.get("name").and_then(Value::as_str) {
                                out.insert(n.to_string());
                            }
                        }
                        "secret" => {
                            if let Some(n) = val.get("secretName").and_then(Value::as_str) {
                                out.insert(n.to_string());
                            }
                        }
                        "imagePullSecrets" => continue,
                        _ => {}
                    }
                    visit(val, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| visit(x, out)),
            _ => {}
        }
    }
    visit(spec, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_labels_are_never_pools() {
        for k in [
            "kubernetes.io/os",
            "beta.kubernetes.io/os",
            "beta.kubernetes.io/arch",
            "topology.kubernetes.io/zone",
            "node.kubernetes.io/instance-type",
            "failure-domain.beta.kubernetes.io/zone",
        ] {
            assert!(well_known_label(k), "{k}");
        }
        for k in [
            "cloud.google.com/gke-nodepool",
            "acme.io/role",
            "node-role.kubernetes.io/worker",
            "pool",
        ] {
            assert!(!well_known_label(k), "{k}");
        }
    }

    #[test]
    fn relative_paths_between_dirs() {
        assert_eq!(
            relative_to(Path::new("/r/a"), Path::new("/r/a/Dockerfile")),
            "Dockerfile"
        );
        assert_eq!(
            relative_to(Path::new("/r/a/b"), Path::new("/r/a/Dockerfile.dev")),
            "../Dockerfile.dev"
        );
    }
}
