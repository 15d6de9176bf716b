//! `ktwin init`: read a repository and propose a commented ktwin.yaml, saying why for each
//! inference.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::doc::{pod_spec_pointer, Document, CONTAINER_LISTS};
use crate::render::{kustomization_file, load_source, Kustomizer};

const SKIP_DIRS: &[&str] = &[
    "target",
    "node_modules",
    "vendor",
    "dist",
    "build",
    "third_party",
];

#[derive(Debug, Default)]
pub struct Scan {
    pub kustomize_roots: Vec<PathBuf>,
    pub plain_dirs: Vec<PathBuf>,
    pub dockerfiles: Vec<PathBuf>,
}

#[derive(Debug)]
pub struct Proposal {
    pub yaml: String,
    /// What was inferred and why, one line each.
    pub notes: Vec<String>,
}

fn rel(root: &Path, p: &Path) -> String {
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
    walk(root, &mut s, false);
    s.kustomize_roots.sort();
    s.plain_dirs.sort();
    s.dockerfiles.sort();
    s
}

fn looks_like_manifest(path: &Path) -> bool {
    // Regular files within the input size limit only (never a FIFO or /dev/zero).
    ktwin_config::inputs::Inputs::anywhere()
        .read_text(path)
        .map(|t| t.contains("apiVersion:") && t.contains("kind:"))
        .unwrap_or(false)
}

fn walk(dir: &Path, s: &mut Scan, under_kustomize: bool) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let is_root = kustomization_file(dir).is_some();
    if is_root {
        s.kustomize_roots.push(dir.to_path_buf());
    }
    let mut has_manifest = false;
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let p = e.path();
        if name.starts_with('.') {
            continue;
        }
        // A symlinked directory is not followed: it is either a copy of what the walk sees
        // anyway or a loop.
        let symlink = e.file_type().is_ok_and(|t| t.is_symlink());
        if p.is_dir() {
            if !symlink && !SKIP_DIRS.contains(&name.as_str()) {
                walk(&p, s, under_kustomize || is_root);
            }
        } else if name == "Dockerfile" || name.ends_with(".Dockerfile") {
            s.dockerfiles.push(p);
        } else if (name.ends_with(".yaml") || name.ends_with(".yml"))
            && name != "ktwin.yaml"
            && !name.starts_with("kustomization")
            && looks_like_manifest(&p)
        {
            has_manifest = true;
        }
    }
    if has_manifest && !is_root && !under_kustomize && !is_ktwin_dir(dir) {
        s.plain_dirs.push(dir.to_path_buf());
    }
}

fn is_ktwin_dir(dir: &Path) -> bool {
    dir.join("ktwin.yaml").is_file()
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

#[derive(Debug, Default)]
struct Pool {
    labels: BTreeMap<String, String>,
    users: Vec<String>,
    tolerated: Option<BTreeSet<String>>,
}

pub fn propose(root: &Path, kustomizer: &dyn Kustomizer) -> Proposal {
    let s = scan(root);
    let mut notes = Vec::new();
    let name = dns_label(
        &root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    notes.push(format!("project name `{name}` from the directory name"));

    // Environments.
    let overlays: Vec<&PathBuf> = s
        .kustomize_roots
        .iter()
        .filter(|p| {
            p.parent()
                .and_then(|pp| pp.file_name())
                .is_some_and(|n| n == "overlays")
        })
        .collect();
    let mut envs: Vec<(String, Vec<PathBuf>)> = Vec::new();
    let mut local_sources: Vec<PathBuf> = Vec::new();
    if !overlays.is_empty() {
        let env_name = |p: &PathBuf| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let pick = ["local", "prod", "production", "dev", "staging"]
            .iter()
            .find_map(|want| overlays.iter().find(|p| env_name(p) == *want))
            .copied()
            .unwrap_or(overlays[0]);
        local_sources.push(pick.clone());
        notes.push(format!(
            "environment `local` renders {} (the twin adapts it; `ktwin diff --against` shows how)",
            rel(root, pick)
        ));
        for o in &overlays {
            let n = dns_label(&env_name(o));
            if n != "local" {
                notes.push(format!(
                    "environment `{n}` from {}; set its real kube context",
                    rel(root, o)
                ));
                envs.push((n, vec![(*o).clone()]));
            }
        }
    } else if !s.kustomize_roots.is_empty() {
        let tops: Vec<PathBuf> = s
            .kustomize_roots
            .iter()
            .filter(|p| {
                !s.kustomize_roots
                    .iter()
                    .any(|o| o != *p && p.starts_with(o))
            })
            .cloned()
            .collect();
        notes.push(format!(
            "environment `local` renders the kustomization(s) {}",
            tops.iter()
                .map(|p| rel(root, p))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        local_sources = tops;
    } else if !s.plain_dirs.is_empty() {
        notes.push(format!(
            "environment `local` reads the plain manifest dir(s) {}",
            s.plain_dirs
                .iter()
                .map(|p| rel(root, p))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        local_sources = s.plain_dirs.clone();
    } else {
        notes.push("no manifests found: add paths under environments.local.manifests".into());
    }

    let mut docs: Vec<Document> = Vec::new();
    let inputs = ktwin_config::inputs::Inputs::confined(root);
    for src in &local_sources {
        match load_source(src, kustomizer, &[], &inputs) {
            Ok(d) => docs.extend(d),
            Err(e) => notes.push(format!(
                "could not render {} to infer more ({e})",
                rel(root, src)
            )),
        }
    }

    // Node pools from nodeSelector / required node affinity.
    let mut pools: BTreeMap<String, Pool> = BTreeMap::new();
    let mut skipped_labels = BTreeSet::new();
    let mut ports = Vec::new();
    let mut images_in_manifests: BTreeSet<String> = BTreeSet::new();
    let defined_secrets: BTreeSet<String> = docs
        .iter()
        .filter(|d| d.is("Secret"))
        .map(|d| d.name().to_string())
        .collect();
    let mut referenced_secrets: BTreeSet<String> = BTreeSet::new();
    for d in &docs {
        if d.is("Service")
            && d.value.pointer("/spec/type").and_then(Value::as_str) == Some("NodePort")
        {
            for p in d
                .value
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(np) = p.get("nodePort").and_then(Value::as_u64) {
                    ports.push((np, d.name().to_string()));
                }
            }
        }
        let Some(ptr) = pod_spec_pointer(d.kind()) else {
            continue;
        };
        let Some(spec) = d.value.pointer(ptr) else {
            continue;
        };
        collect_secret_refs(spec, &mut referenced_secrets);
        for l in CONTAINER_LISTS {
            for c in spec.get(*l).and_then(Value::as_array).into_iter().flatten() {
                if let Some(i) = c.get("image").and_then(Value::as_str) {
                    images_in_manifests.insert(i.to_string());
                }
            }
        }
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
            let well_known = matches!(
                k.as_str(),
                "kubernetes.io/os" | "kubernetes.io/arch" | "kubernetes.io/hostname"
            );
            let allowed = ktwin_config::names::kubelet_may_set(k).is_ok();
            if !allowed {
                skipped_labels.insert(k.clone());
            }
            !well_known && allowed
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
        pool.users.push(format!("{}/{}", d.kind(), d.name()));
        pool.tolerated = Some(match pool.tolerated.take() {
            None => tol,
            Some(prev) => prev.intersection(&tol).cloned().collect(),
        });
    }
    for k in &skipped_labels {
        notes.push(format!(
            "label `{k}` is reserved (the kubelet cannot set it); no pool carries it"
        ));
    }

    // Images from Dockerfiles.
    let mut images = Vec::new();
    for df in &s.dockerfiles {
        let ctx = df.parent().unwrap_or(root);
        let dir_name = ctx
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let matched = images_in_manifests.iter().find_map(|i| {
            let r = ktwin_config::imageref::ImageRef::parse(i).ok()?;
            (r.path.rsplit('/').next() == Some(dir_name.as_str())).then(|| {
                let mut r = r;
                r.tag = None;
                r.digest = None;
                r.to_string()
            })
        });
        let image = match &matched {
            Some(i) => {
                notes.push(format!(
                    "image {i} builds from {} (the manifests use it)",
                    rel(root, df)
                ));
                i.clone()
            }
            None => {
                let i = format!("{name}/{}", dns_label(&dir_name));
                notes.push(format!("image {i} builds from {} (no manifest names an image `{dir_name}`; rename it to match)", rel(root, df)));
                i
            }
        };
        let file = df
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        images.push((image, rel(root, ctx), file));
    }

    // Write the file.
    let mut y = String::new();
    y.push_str("# ktwin.yaml — written by `ktwin init`; review every line, then `ktwin render --explain`.\n");
    y.push_str("# Reference: `ktwin schema` prints the JSON Schema of this file.\n");
    y.push_str("apiVersion: ktwin.dev/v1alpha1\nkind: Project\n");
    y.push_str(&format!("name: {name}\n"));
    y.push_str("cluster:\n  provider: k3d              # or kind\n  servers: 1\n");
    if pools.is_empty() {
        y.push_str("  agents: []                 # one entry per production node pool\n");
    } else {
        y.push_str("  agents:                    # one per node pool the manifests select\n");
        let mut used = BTreeSet::new();
        for pool in pools.values() {
            let mut pname = dns_label(
                pool.labels
                    .values()
                    .next()
                    .map(String::as_str)
                    .unwrap_or("pool"),
            );
            while !used.insert(pname.clone()) {
                pname.push('x');
            }
            y.push_str(&format!(
                "    - name: {pname}              # used by {}\n",
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
            notes.push(format!(
                "pool `{pname}` with {} from the nodeSelector/affinity of {}",
                pool.labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
                pool.users.join(", ")
            ));
        }
    }
    if ports.is_empty() {
        y.push_str(
            "  ports: []                  # {hostPort, nodePort} per NodePort Service to reach\n",
        );
    } else {
        y.push_str("  ports:\n");
        for (np, svc) in &ports {
            y.push_str(&format!(
                "    - {{hostPort: {np}, nodePort: {np}}}   # Service {svc}\n"
            ));
            notes.push(format!(
                "port {np} on 127.0.0.1 → nodePort {np} of Service {svc}"
            ));
        }
    }
    y.push_str("registry:\n  name: ktwin-registry\n  hostPort: 5001\n");
    if images.is_empty() {
        y.push_str("images: []\n");
    } else {
        y.push_str("images:\n");
        for (i, c, f) in &images {
            y.push_str(&format!("  - image: {}\n    context: {}\n", q(i), q(c)));
            if f != "Dockerfile" {
                y.push_str(&format!("    dockerfile: {}\n", q(f)));
            }
        }
    }
    y.push_str("environments:\n  local:\n");
    if local_sources.is_empty() {
        y.push_str("    manifests: []\n");
    } else {
        y.push_str("    manifests:\n");
        for l in &local_sources {
            y.push_str(&format!("      - {}\n", q(&rel(root, l))));
        }
    }
    y.push_str(
        "    adapt: {}                # every local adaptation on; see `ktwin render --explain`\n",
    );
    let missing: Vec<&String> = referenced_secrets.difference(&defined_secrets).collect();
    if !missing.is_empty() {
        y.push_str("    # Secrets the workloads use that no manifest defines. Create each env file, git-ignore\n    # it, then uncomment:\n    # secrets:\n");
        for m in &missing {
            y.push_str(&format!("    #   - {{name: {m}, envFile: {m}.env}}\n"));
            notes.push(format!(
                "Secret `{m}` is used but not defined: see the commented `secrets:` entry"
            ));
        }
    }
    for (n, srcs) in &envs {
        y.push_str(&format!("  {n}:\n    manifests:\n"));
        for src in srcs {
            y.push_str(&format!("      - {}\n", q(&rel(root, src))));
        }
        y.push_str(&format!(
            "    context: CHANGE-ME-{n}   # the kube context of your {n} cluster\n"
        ));
    }
    Proposal { yaml: y, notes }
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
