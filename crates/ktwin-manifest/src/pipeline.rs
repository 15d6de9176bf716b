//! Render one environment: sources → documents → namespace → secrets → duplicate check →
//! local adaptation → env overrides → patches. Every change is recorded.

use std::collections::{HashMap, HashSet};

use base64::Engine;
use ktwin_config::desired::ImagePlan;
use std::path::Path;

use ktwin_config::{Environment, HelmSource, Loaded, ManifestSource, LOCAL_ENV};
use serde_json::{json, Value};

use crate::adapt::{adapt, LocalTwin};
use crate::change::Change;
use crate::doc::{is_cluster_scoped, pod_spec_pointer, Document, Source, CONTAINER_LISTS};
use crate::error::RenderError;
use crate::render::{load_source, Kustomizer};

pub use crate::change::Recorder;

#[derive(Debug)]
pub struct Rendered {
    pub env: String,
    pub docs: Vec<Document>,
    pub changes: Vec<Change>,
    /// Objects a source rendered that the environment leaves out (Helm test hooks), and why.
    pub dropped: Vec<crate::helm::Dropped>,
    /// The objects as the sources give them (namespace and env-file Secrets filled in), before
    /// any adaptation or patch: what `render` checks `images:` against.
    pub sources: Vec<Document>,
}

/// Render one Helm chart source with the user's `helm template`.
fn load_chart(
    loaded: &Loaded,
    env: &Environment,
    h: &HelmSource,
    kustomizer: &dyn Kustomizer,
) -> Result<(Vec<Document>, Vec<crate::helm::Dropped>), RenderError> {
    let chart = loaded.dir.join(&h.chart);
    loaded.inputs().check(&chart)?;
    let values = h
        .values
        .iter()
        .map(|v| {
            let p = loaded.dir.join(v);
            loaded.inputs().check(&p).map(|_| p)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let release = h.release.clone().unwrap_or_else(|| {
        chart
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "release".into())
    });
    let namespace = h.namespace.clone().or(env.namespace.clone());
    let call = crate::helm::HelmCall {
        release,
        chart: chart.clone(),
        namespace: namespace.clone(),
        values,
        set: h.set.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        include_crds: h.include_crds,
    };
    let out = kustomizer.helm_template(&call)?;
    let chart_dir = if chart.is_dir() {
        chart.clone()
    } else {
        chart
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or(chart.clone())
    };
    let (mut docs, dropped) = crate::helm::documents(&out, &chart_dir, namespace.as_deref())?;
    if chart.is_file() {
        // A packaged chart's templates are inside the archive: point at the archive.
        for d in docs.iter_mut() {
            d.source.file = chart.clone();
            d.source.line = 1;
        }
    } else {
        point_at_templates(&mut docs, &loaded.inputs());
    }
    Ok((docs, dropped))
}

/// `helm template` names each object's template file, not its line. Point at the line of the
/// template that starts the object: its n-th `kind: <Kind>` line (n counting the objects of
/// that kind the template rendered before it), or the `apiVersion` line just above it. Where the template spells the kind through a template expression, the line stays the
/// one in helm's output.
fn point_at_templates(docs: &mut [Document], inputs: &ktwin_config::inputs::Inputs) {
    let mut texts: HashMap<std::path::PathBuf, Option<Vec<String>>> = HashMap::new();
    let mut nth: HashMap<(std::path::PathBuf, String), usize> = HashMap::new();
    for d in docs.iter_mut() {
        let file = d.source.file.clone();
        let lines = texts.entry(file.clone()).or_insert_with(|| {
            inputs
                .read_text(&file)
                .ok()
                .map(|t| t.lines().map(str::to_string).collect())
        });
        let Some(lines) = lines else { continue };
        let n = nth.entry((file, d.kind().to_string())).or_insert(0);
        let want = format!("kind: {}", d.kind());
        let hits: Vec<usize> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.trim() == want)
            .map(|(i, _)| i)
            .collect();
        // More objects than `kind:` lines: a `range` loop renders them all from the last one.
        let hit = hits.get(*n).or(hits.last()).copied();
        *n += 1;
        if let Some(i) = hit {
            let start = if i > 0 && lines[i - 1].trim_start().starts_with("apiVersion:") {
                i - 1
            } else {
                i
            };
            d.source.line = start + 1;
        }
    }
}

pub fn environment<'a>(loaded: &'a Loaded, env: &str) -> Result<&'a Environment, RenderError> {
    loaded
        .project
        .environment(env)
        .ok_or_else(|| RenderError::UnknownEnv {
            env: env.to_string(),
            defined: if loaded.project.environments.is_empty() {
                "none".to_string()
            } else {
                loaded
                    .project
                    .environments
                    .keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
}

/// Render an environment as its manifests are written: sources, namespace, declared secrets,
/// env overrides and patches, but none of the local adaptations. The doctor reads this, so it
/// can say which findings the adaptation resolves.
pub fn render_unadapted(
    loaded: &Loaded,
    env_name: &str,
    kustomizer: &dyn Kustomizer,
) -> Result<Rendered, RenderError> {
    environment(loaded, env_name)?;
    let mut l = loaded.clone();
    if let Some(env) = l.project.environments.get_mut(env_name) {
        let a = &mut env.adapt;
        a.images = false;
        a.pull_policy = false;
        a.pull_secrets = false;
        a.storage = false;
        a.storage_classes.clear();
        a.volume_ownership = false;
        a.resources = ktwin_config::ResourcesMode::Keep;
    }
    render_env(&l, env_name, kustomizer, &[])
}

/// What the local adaptation knows of the twin: the environment's knobs, the provider, the
/// plan's image references, the Secrets `secrets:` declares, and (sync mode `mount`) the
/// images' sync mounts.
fn local_twin<'a>(
    loaded: &Loaded,
    env: &'a Environment,
    images: &[ImagePlan],
    declared_secrets: HashSet<(String, String)>,
) -> LocalTwin<'a> {
    LocalTwin {
        adapt: &env.adapt,
        provider: loaded.project.cluster.provider,
        images: if env.adapt.images {
            images
                .iter()
                .map(|i| (i.repo.repository_key(), i.reference.clone()))
                .collect()
        } else {
            HashMap::new()
        },
        declared_secrets,
        single_node: ktwin_config::desired::single_node(&loaded.project),
        sync: match loaded.project.source_mount() {
            Some(dir) => crate::adapt::sync_mounts(images, dir, ktwin_config::SOURCE_MOUNT),
            None => HashMap::new(),
        },
        persistent: loaded.project.cluster.persistent_volumes,
    }
}

/// Adapt objects ktwin makes itself (a `ktwin run` Job) as the environment's render adapts
/// its own: for `local`, images rewritten to the plan's references, pull policy, resources;
/// elsewhere unchanged. The changes are returned for the record.
pub fn adapt_objects(
    loaded: &Loaded,
    env_name: &str,
    images: &[ImagePlan],
    docs: &mut [Document],
) -> Result<Vec<Change>, RenderError> {
    let env = environment(loaded, env_name)?;
    let mut rec = Recorder::default();
    if env_name == LOCAL_ENV {
        let twin = local_twin(loaded, env, images, HashSet::new());
        adapt(docs, &twin, &mut rec)?;
    }
    Ok(rec.changes)
}

/// Render an environment; for `local`, adapted to the twin, with the images ktwin builds
/// rewritten to the references `images` (the plan's, hashed once) give them.
pub fn render_env(
    loaded: &Loaded,
    env_name: &str,
    kustomizer: &dyn Kustomizer,
    images: &[ImagePlan],
) -> Result<Rendered, RenderError> {
    let env = environment(loaded, env_name)?;
    let mut rec = Recorder::default();
    let mut docs = Vec::new();
    let inputs = loaded.inputs();
    let flags = env.kustomize_flags(&loaded.project);
    let mut dropped = Vec::new();
    for m in &env.manifests {
        match m {
            ManifestSource::Path(p) => docs.extend(load_source(
                &loaded.dir.join(p),
                kustomizer,
                flags,
                &inputs,
            )?),
            ManifestSource::Helm { helm } => {
                let (d, x) = load_chart(loaded, env, helm, kustomizer)?;
                docs.extend(d);
                dropped.extend(x);
            }
        }
    }
    if let Some(ns) = &env.namespace {
        for d in docs.iter_mut() {
            if d.namespace().is_none() && !is_cluster_scoped(d.kind()) {
                if let Some(meta) = d.value.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.insert("namespace".into(), json!(ns));
                    let obj = d.obj_ref();
                    rec.push(
                        &obj,
                        Change::partial(
                            "/metadata/namespace",
                            None,
                            Some(json!(ns)),
                            format!("environment `{env_name}` has namespace `{ns}`"),
                            "namespace",
                        ),
                    );
                }
            }
        }
    }
    let mut declared = HashSet::new();
    for s in &env.secrets {
        let doc = secret_from_env_file(loaded, env, s)?;
        declared.insert((
            doc.namespace().unwrap_or("").to_string(),
            doc.name().to_string(),
        ));
        rec.push(
            &doc.obj_ref(),
            Change::partial(
                "",
                None,
                Some(json!("<redacted>")),
                format!("Opaque Secret built from {}", s.env_file),
                "secrets",
            ),
        );
        docs.push(doc);
    }
    check_duplicates(&docs)?;
    let sources = docs.clone();
    if env_name == LOCAL_ENV {
        let twin = local_twin(loaded, env, images, declared);
        adapt(&mut docs, &twin, &mut rec)?;
        apply_env_overrides(&mut docs, env, &mut rec)?;
    }
    apply_patches(&mut docs, env_name, env, &mut rec)?;
    Ok(Rendered {
        env: env_name.to_string(),
        docs,
        changes: rec.changes,
        dropped,
        sources,
    })
}

fn secret_from_env_file(
    loaded: &Loaded,
    env: &Environment,
    s: &ktwin_config::SecretSource,
) -> Result<Document, RenderError> {
    let path = loaded.dir.join(&s.env_file);
    let text = loaded.inputs().read_text(&path)?;
    let kv = ktwin_config::envfile::parse(&text).map_err(|e| RenderError::EnvFile {
        file: path.clone(),
        line: e.line,
        col: e.col,
        message: e.message,
    })?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let data: serde_json::Map<String, Value> = kv
        .into_iter()
        .map(|(k, v)| (k, json!(b64.encode(v.as_bytes()))))
        .collect();
    let mut meta = serde_json::Map::new();
    meta.insert("name".into(), json!(s.name));
    if let Some(ns) = s.namespace.as_ref().or(env.namespace.as_ref()) {
        meta.insert("namespace".into(), json!(ns));
    }
    meta.insert(
        "labels".into(),
        json!({"app.kubernetes.io/managed-by": "ktwin"}),
    );
    Ok(Document {
        value: json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque", "data": data}),
        source: Source {
            file: path,
            line: 1,
        },
    })
}

/// Two objects with one identity would silently overwrite each other on apply.
fn check_duplicates(docs: &[Document]) -> Result<(), RenderError> {
    let mut seen: HashMap<(String, String, String, String), &Source> = HashMap::new();
    for d in docs {
        if d.name().is_empty() {
            continue; // generateName
        }
        let key = (
            d.group().to_string(),
            d.kind().to_string(),
            d.namespace().unwrap_or("").to_string(),
            d.name().to_string(),
        );
        if let Some(first) = seen.insert(key, &d.source) {
            return Err(RenderError::Duplicate {
                obj: Box::new(d.obj_ref()),
                first: first.clone(),
                second: d.source.clone(),
            });
        }
    }
    Ok(())
}

fn apply_env_overrides(
    docs: &mut [Document],
    env: &Environment,
    rec: &mut Recorder,
) -> Result<(), RenderError> {
    for (i, o) in env.adapt.env.iter().enumerate() {
        let mut matched = false;
        for d in docs.iter_mut() {
            if o.namespace
                .as_deref()
                .is_some_and(|ns| d.namespace() != Some(ns))
            {
                continue;
            }
            let obj = d.obj_ref();
            if let Some(cm) = &o.config_map {
                if !(d.is("ConfigMap") && d.name() == cm) {
                    continue;
                }
                matched = true;
                let Some(root) = d.value.as_object_mut() else {
                    continue;
                };
                let data = root.entry("data").or_insert_with(|| json!({}));
                let Some(data) = data.as_object_mut() else {
                    continue;
                };
                for (k, v) in &o.set {
                    let before = data.insert(k.clone(), json!(v));
                    if before.as_ref() != Some(&json!(v)) {
                        rec.push(
                            &obj,
                            Change::partial(
                                &format!("/data/{}", ktwin_config::pos::escape_token(k)),
                                before,
                                Some(json!(v)),
                                format!("adapt.env[{i}] sets `{k}` for the local twin"),
                                "adapt.env",
                            ),
                        );
                    }
                }
                continue;
            }
            let Some(cname) = &o.container else { continue };
            if o.workload.as_deref().is_some_and(|w| w != d.name()) {
                continue;
            }
            let Some(ptr) = pod_spec_pointer(d.kind()) else {
                continue;
            };
            for list in CONTAINER_LISTS {
                let lp = format!("{ptr}/{list}");
                let Some(cs) = d.value.pointer_mut(&lp).and_then(Value::as_array_mut) else {
                    continue;
                };
                for (ci, c) in cs.iter_mut().enumerate() {
                    if c.get("name").and_then(Value::as_str) != Some(cname.as_str()) {
                        continue;
                    }
                    matched = true;
                    let Some(c) = c.as_object_mut() else { continue };
                    let envs = c.entry("env").or_insert_with(|| json!([]));
                    let Some(envs) = envs.as_array_mut() else {
                        continue;
                    };
                    for (k, v) in &o.set {
                        let new = json!({"name": k, "value": v});
                        let pos = envs
                            .iter()
                            .position(|e| e.get("name").and_then(Value::as_str) == Some(k));
                        let (idx, before) = match pos {
                            Some(p) => (p, Some(std::mem::replace(&mut envs[p], new.clone()))),
                            None => {
                                envs.push(new.clone());
                                (envs.len() - 1, None)
                            }
                        };
                        if before.as_ref() != Some(&new) {
                            rec.push(
                                &obj,
                                Change::partial(
                                    &format!("{lp}/{ci}/env/{idx}"),
                                    before,
                                    Some(new),
                                    format!("adapt.env[{i}] sets `{k}` in container `{cname}`"),
                                    "adapt.env",
                                ),
                            );
                        }
                    }
                }
            }
        }
        if !matched {
            let target = match (&o.config_map, &o.container) {
                (Some(cm), _) => format!("ConfigMap `{cm}`"),
                (_, Some(c)) => match &o.workload {
                    Some(w) => format!("container `{c}` of `{w}`"),
                    None => format!("container `{c}`"),
                },
                _ => "nothing".into(),
            };
            return Err(RenderError::Unmatched {
                what: format!("environments.local.adapt.env[{i}]"),
                target,
            });
        }
    }
    Ok(())
}

fn apply_patches(
    docs: &mut [Document],
    env_name: &str,
    env: &Environment,
    rec: &mut Recorder,
) -> Result<(), RenderError> {
    for (i, p) in env.patches.iter().enumerate() {
        let what = format!("environments.{env_name}.patches[{i}]");
        let t = &p.target;
        let mut matched = false;
        for d in docs.iter_mut() {
            if d.kind() != t.kind || d.name() != t.name {
                continue;
            }
            if t.namespace
                .as_deref()
                .is_some_and(|ns| d.namespace() != Some(ns))
            {
                continue;
            }
            matched = true;
            let obj = d.obj_ref();
            let before = d.value.clone();
            let fail = |message: String| RenderError::PatchFailed {
                what: what.clone(),
                obj: Box::new(obj.clone()),
                message,
            };
            if let Some(ops) = &p.json {
                let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops.clone()))
                    .map_err(|e| fail(format!("invalid RFC 6902 operations: {e}")))?;
                json_patch::patch(&mut d.value, &patch).map_err(|e| fail(e.to_string()))?;
            }
            if let Some(m) = &p.merge {
                json_patch::merge(&mut d.value, m);
            }
            let reason = format!(
                "{what} ({})",
                if p.json.is_some() {
                    "JSON patch"
                } else {
                    "merge patch"
                }
            );
            for op in json_patch::diff(&before, &d.value).0 {
                let path = op.path().to_string();
                rec.push(
                    &obj,
                    Change::partial(
                        &path,
                        before.pointer(&path).cloned(),
                        d.value.pointer(&path).cloned(),
                        reason.clone(),
                        "patches",
                    ),
                );
            }
        }
        if !matched {
            return Err(RenderError::Unmatched {
                what,
                target: match &t.namespace {
                    Some(ns) => format!("{}/{} in namespace {ns}", t.kind, t.name),
                    None => format!("{}/{}", t.kind, t.name),
                },
            });
        }
    }
    Ok(())
}
