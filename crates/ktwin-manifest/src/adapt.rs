//! Local adaptation: the visible, recorded step that turns production manifests into ones a
//! laptop cluster runs. Every knob lives under `environments.local.adapt` and can be turned off.

use std::collections::{HashMap, HashSet};

use ktwin_config::imageref::ImageRef;
use ktwin_config::{Adapt, Provider, ResourcesMode};
use serde_json::{json, Map, Value};

use crate::change::{Change, Recorder};
use crate::doc::{pod_spec_pointer, Document, CONTAINER_LISTS};
use crate::error::RenderError;
use crate::quantity;

/// The storage class annotation local-path-provisioner reads to create a `local` PV (whose
/// ownership the kubelet manages) instead of a `hostPath` one.
pub const VOLUME_TYPE_ANNOTATION: &str = "volumeType";
pub const LOCAL_PATH_PROVISIONER: &str = "rancher.io/local-path";

/// `relaxed` caps.
pub const RELAXED_CPU: &str = "100m";
pub const RELAXED_MEMORY: &str = "128Mi";

/// Everything adaptation needs to know about the local twin.
#[derive(Debug, Clone)]
pub struct LocalTwin<'a> {
    pub adapt: &'a Adapt,
    pub provider: Provider,
    /// Normalised repository → the reference ktwin pushed it as (`localhost:<port>/…:<tag>`,
    /// from the plan).
    pub images: HashMap<String, String>,
    /// (namespace or "", name) of Secrets declared under `secrets:`.
    pub declared_secrets: HashSet<(String, String)>,
    /// One node only: a ReadWriteOnce volume serves every pod (see `adapt.rwxToRwo`).
    pub single_node: bool,
    /// Normalised repository → its sync rules as mounts (sync mode `mount`).
    pub sync: HashMap<String, Vec<SyncMount>>,
    /// `cluster.persistentVolumes`: claims of the local-path class use
    /// [`ktwin_config::PERSISTENT_CLASS`].
    pub persistent: bool,
}

/// A sync rule as the local adaptation mounts it: the node path under the project mount, the
/// container path, and whether it is a directory (a glob mounts its static prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncMount {
    pub src: String,
    pub node_path: String,
    pub dest: String,
    pub directory: bool,
}

/// The mounts of `images`' sync rules under `project_dir` mounted at `node_root`.
pub fn sync_mounts(
    images: &[ktwin_config::desired::ImagePlan],
    project_dir: &std::path::Path,
    node_root: &str,
) -> HashMap<String, Vec<SyncMount>> {
    let mut out = HashMap::new();
    for i in images {
        let mut v = Vec::new();
        for r in &i.spec.sync {
            let glob = r.src.contains(['*', '?', '[', '{']);
            // A glob mounts the directory before its first pattern component.
            let prefix: std::path::PathBuf = if glob {
                std::path::Path::new(&r.src)
                    .components()
                    .take_while(|c| {
                        !c.as_os_str()
                            .to_string_lossy()
                            .contains(['*', '?', '[', '{'])
                    })
                    .collect()
            } else {
                std::path::PathBuf::from(&r.src)
            };
            let abs = i.context.join(&prefix);
            // Only what the project mount holds, and what exists: a hostPath of a missing
            // path would keep the pod from starting (and `*OrCreate` would write into the
            // repository). Such a rule gets no mount, and `ktwin dev` rebuilds for it.
            let Ok(rel) = abs.strip_prefix(project_dir) else {
                continue;
            };
            if !abs.exists() {
                continue;
            }
            let node_path = if rel.as_os_str().is_empty() {
                node_root.to_string()
            } else {
                format!("{node_root}/{}", rel.display())
            };
            v.push(SyncMount {
                src: r.src.clone(),
                node_path,
                dest: r.dest.clone(),
                directory: glob || abs.is_dir(),
            });
        }
        if !v.is_empty() {
            out.insert(i.repo.repository_key(), v);
        }
    }
    out
}

/// Mount each sync rule of the container's image into it (hostPath under the project mount
/// every node has). Recorded per volume and mount.
fn adapt_sync(d: &mut Document, twin: &LocalTwin<'_>, rec: &mut Recorder) {
    let Some(ptr) = pod_spec_pointer(d.kind()) else {
        return;
    };
    let obj = d.obj_ref();
    let Some(spec) = d.value.pointer_mut(ptr).and_then(Value::as_object_mut) else {
        return;
    };
    let mut wanted: Vec<(usize, Vec<SyncMount>)> = Vec::new();
    for (i, c) in spec
        .get("containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let Some(r) = c["image"].as_str().and_then(|x| ImageRef::parse(x).ok()) else {
            continue;
        };
        if let Some(m) = twin.sync.get(&r.repository_key()) {
            wanted.push((i, m.clone()));
        }
    }
    for (ci, mounts) in wanted {
        for (k, m) in mounts.iter().enumerate() {
            // Per container and rule: two images' rules never share a volume.
            let vname = format!("ktwin-sync-{ci}-{k}");
            // A mount the manifests already have at that path wins over the sync.
            let taken = spec["containers"][ci]["volumeMounts"]
                .as_array()
                .is_some_and(|v| v.iter().any(|x| x["mountPath"] == m.dest.as_str()));
            if taken {
                continue;
            }
            let volumes = spec
                .entry("volumes")
                .or_insert_with(|| json!([]))
                .as_array_mut();
            let Some(volumes) = volumes else { return };
            if !volumes.iter().any(|v| v["name"] == vname.as_str()) {
                let v = json!({"name": vname, "hostPath": {"path": m.node_path,
                    "type": if m.directory { "Directory" } else { "File" }}});
                volumes.push(v.clone());
                rec.push(
                    &obj,
                    Change::partial(
                        &format!("{ptr}/volumes/{}", volumes.len() - 1),
                        None,
                        Some(v),
                        format!(
                            "sync (mount): `{}` from the project, through the mount every node has",
                            m.src
                        ),
                        "images[].sync",
                    ),
                );
            }
            let Some(c) = spec
                .get_mut("containers")
                .and_then(|c| c.get_mut(ci))
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            let cname = c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let Some(vms) = c
                .entry("volumeMounts")
                .or_insert_with(|| json!([]))
                .as_array_mut()
            else {
                continue;
            };
            // Read-only: a container never writes into the working tree through it.
            let vm = json!({"name": vname, "mountPath": m.dest, "readOnly": true});
            vms.push(vm.clone());
            let why = if m.directory {
                format!(
                    "container `{cname}`: sync (mount) — `{}` is live at {} without a rebuild",
                    m.src, m.dest
                )
            } else {
                format!("container `{cname}`: sync (mount) — `{}` at {}; a single file is mounted by inode, so a tool that replaces the file (most compilers) is seen after a restart: use `restart: process`", m.src, m.dest)
            };
            rec.push(
                &obj,
                Change::partial(
                    &format!("{ptr}/containers/{ci}/volumeMounts/{}", vms.len() - 1),
                    None,
                    Some(vm),
                    why,
                    "images[].sync",
                ),
            );
        }
    }
}

fn ns_key(d: &Document) -> String {
    d.namespace().unwrap_or("").to_string()
}

pub fn adapt(
    docs: &mut [Document],
    twin: &LocalTwin<'_>,
    rec: &mut Recorder,
) -> Result<(), RenderError> {
    let a = twin.adapt;
    let mut secrets: HashSet<(String, String)> = twin.declared_secrets.clone();
    for d in docs.iter().filter(|d| d.is("Secret")) {
        secrets.insert((ns_key(d), d.name().to_string()));
    }
    let LocalClasses {
        all: classes,
        local_path: local_path_classes,
    } = local_classes(twin.provider, docs);
    // Sync first: it matches containers by the repository the manifests wrote, before the
    // image adaptation rewrites it to the local registry.
    if !twin.sync.is_empty() {
        for d in docs.iter_mut() {
            adapt_sync(d, twin, rec);
        }
    }
    for d in docs.iter_mut() {
        let Some(ptr) = pod_spec_pointer(d.kind()) else {
            continue;
        };
        let obj = d.obj_ref();
        let ns = ns_key(d);
        let Some(spec) = d.value.pointer_mut(ptr).and_then(Value::as_object_mut) else {
            continue;
        };
        if a.pull_secrets {
            adapt_pull_secrets(spec, ptr, &ns, &secrets, &mut |c| rec.push(&obj, c));
        }
        for list in CONTAINER_LISTS {
            let Some(containers) = spec.get_mut(*list).and_then(Value::as_array_mut) else {
                continue;
            };
            for (i, c) in containers.iter_mut().enumerate() {
                let Some(c) = c.as_object_mut() else { continue };
                let cptr = format!("{ptr}/{list}/{i}");
                let cname = c
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if a.images {
                    adapt_image(c, &cptr, &cname, twin, &mut |ch| rec.push(&obj, ch));
                }
                if a.pull_policy {
                    let before = c.get("imagePullPolicy").cloned();
                    if before.as_ref().and_then(Value::as_str) != Some("IfNotPresent") {
                        c.insert("imagePullPolicy".into(), json!("IfNotPresent"));
                        rec.push(
                            &obj,
                            Change::partial(
                                &format!("{cptr}/imagePullPolicy"),
                                before,
                                Some(json!("IfNotPresent")),
                                format!("container `{cname}`: use the image the local registry or node already has"),
                                "adapt.pullPolicy",
                            ),
                        );
                    }
                }
                if a.resources != ResourcesMode::Keep {
                    adapt_resources(c, &cptr, &cname, a.resources, &mut |ch| rec.push(&obj, ch));
                }
            }
        }
    }
    if a.storage || !a.storage_classes.is_empty() {
        for d in docs.iter_mut() {
            adapt_storage(d, a, &classes, twin.provider, rec);
        }
    }
    let mut local_path_classes = local_path_classes;
    if twin.persistent {
        for d in docs.iter_mut() {
            adapt_persistent(d, twin.provider, rec);
        }
        local_path_classes.insert(ktwin_config::PERSISTENT_CLASS.to_string());
    }
    if a.rwx_to_rwo && twin.single_node {
        for d in docs.iter_mut() {
            adapt_access_modes(d, &local_path_classes, rec);
        }
    }
    if a.volume_ownership {
        adapt_volume_ownership(docs, &local_path_classes, rec);
    }
    Ok(())
}

/// Access modes local-path cannot provision (it answers `Only support ReadWriteOnce access
/// mode`, and the claim stays Pending).
pub const UNSUPPORTED_ACCESS_MODES: &[&str] = &["ReadWriteMany", "ReadOnlyMany"];

/// The claims of one object (a PVC, or a StatefulSet's templates): (JSON pointer to the
/// claim spec, its name).
pub fn claim_specs(d: &Document) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if d.is("PersistentVolumeClaim") {
        out.push(("/spec".to_string(), d.name().to_string()));
    }
    if d.is("StatefulSet") {
        for (i, t) in d
            .value
            .pointer("/spec/volumeClaimTemplates")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let n = t
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("?");
            out.push((
                format!("/spec/volumeClaimTemplates/{i}/spec"),
                n.to_string(),
            ));
        }
    }
    out
}

/// The class a claim spec gets: its own, else the provider's default (local-path).
pub fn claim_class<'a>(spec: &'a Value, default: &'a str) -> &'a str {
    spec.get("storageClassName")
        .and_then(Value::as_str)
        .unwrap_or(default)
}

/// `adapt.rwxToRwo` on a single-node twin: ReadWriteMany/ReadOnlyMany claims served by
/// local-path become ReadWriteOnce (one node: every pod mounts it anyway).
fn adapt_access_modes(d: &mut Document, local_path: &HashSet<String>, rec: &mut Recorder) {
    let obj = d.obj_ref();
    for (ptr, name) in claim_specs(d) {
        let Some(spec) = d.value.pointer_mut(&ptr) else {
            continue;
        };
        let class = spec
            .get("storageClassName")
            .and_then(Value::as_str)
            .map(str::to_string);
        if class.as_ref().is_some_and(|c| !local_path.contains(c)) {
            continue;
        }
        let Some(modes) = spec.get("accessModes").and_then(Value::as_array) else {
            continue;
        };
        if !modes.iter().any(|m| {
            m.as_str()
                .is_some_and(|m| UNSUPPORTED_ACCESS_MODES.contains(&m))
        }) {
            continue;
        }
        let before = spec.get("accessModes").cloned();
        spec["accessModes"] = json!(["ReadWriteOnce"]);
        rec.push(
            &obj,
            Change::partial(
                &format!("{ptr}/accessModes"),
                before,
                Some(json!(["ReadWriteOnce"])),
                format!("claim `{name}`: local-path provisions only ReadWriteOnce; on a single-node twin every pod mounts it anyway"),
                "adapt.rwxToRwo",
            ),
        );
    }
}

fn adapt_pull_secrets(
    spec: &mut Map<String, Value>,
    ptr: &str,
    ns: &str,
    secrets: &HashSet<(String, String)>,
    push: &mut dyn FnMut(Change),
) {
    let Some(list) = spec.get("imagePullSecrets").and_then(Value::as_array) else {
        return;
    };
    let before = list.clone();
    let (keep, dropped): (Vec<Value>, Vec<Value>) = list.iter().cloned().partition(|s| {
        let name = s.get("name").and_then(Value::as_str).unwrap_or("");
        secrets.contains(&(ns.to_string(), name.to_string()))
    });
    if dropped.is_empty() {
        return;
    }
    let names: Vec<&str> = dropped
        .iter()
        .filter_map(|s| s.get("name").and_then(Value::as_str))
        .collect();
    let after = if keep.is_empty() {
        spec.remove("imagePullSecrets");
        None
    } else {
        spec.insert("imagePullSecrets".into(), Value::Array(keep.clone()));
        Some(Value::Array(keep))
    };
    push(Change::partial(
        &format!("{ptr}/imagePullSecrets"),
        Some(Value::Array(before)),
        after,
        format!(
            "pull secret{} {} not rendered or declared under `secrets:`; the local registry needs none",
            if names.len() == 1 { "" } else { "s" },
            names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
        ),
        "adapt.pullSecrets",
    ));
}

fn adapt_image(
    c: &mut Map<String, Value>,
    cptr: &str,
    cname: &str,
    twin: &LocalTwin<'_>,
    push: &mut dyn FnMut(Change),
) {
    let Some(image) = c.get("image").and_then(Value::as_str) else {
        return;
    };
    let Ok(r) = ImageRef::parse(image) else {
        return;
    };
    let Some(new) = twin.images.get(&r.repository_key()).cloned() else {
        return;
    };
    if new == image {
        return;
    }
    let before = c.insert("image".into(), json!(new));
    push(Change::partial(
        &format!("{cptr}/image"),
        before,
        Some(json!(new)),
        format!("container `{cname}`: ktwin builds this image and pushes it to the local registry under its content tag"),
        "adapt.images",
    ));
}

fn adapt_resources(
    c: &mut Map<String, Value>,
    cptr: &str,
    cname: &str,
    mode: ResourcesMode,
    push: &mut dyn FnMut(Change),
) {
    let Some(res) = c.get_mut("resources").and_then(Value::as_object_mut) else {
        return;
    };
    if mode == ResourcesMode::Drop {
        for k in ["requests", "limits"] {
            if let Some(before) = res.remove(k) {
                push(Change::partial(
                    &format!("{cptr}/resources/{k}"),
                    Some(before),
                    None,
                    format!("container `{cname}`: adapt.resources is `drop`"),
                    "adapt.resources",
                ));
            }
        }
        return;
    }
    // relaxed
    // A resource with a limit and no request requests its limit (Kubernetes defaults the
    // request to the limit): for cpu and memory, write the capped request explicitly.
    let limits_now = res.get("limits").and_then(Value::as_object).cloned();
    for (k, cap) in [("cpu", RELAXED_CPU), ("memory", RELAXED_MEMORY)] {
        let Some(limit) = limits_now.as_ref().and_then(|l| l.get(k)) else {
            continue;
        };
        if res.get("requests").and_then(|r| r.get(k)).is_some() {
            continue;
        }
        let over = match (quantity::parse_value(limit), quantity::parse(cap)) {
            (Some(x), Some(c)) => x > c,
            _ => false,
        };
        if !over {
            continue;
        }
        if !res.get("requests").is_some_and(Value::is_object) {
            res.insert("requests".into(), json!({}));
        }
        if let Some(req) = res.get_mut("requests").and_then(Value::as_object_mut) {
            req.insert(k.into(), json!(cap));
        }
        push(Change::partial(
            &format!("{cptr}/resources/requests/{k}"),
            None,
            Some(json!(cap)),
            format!("container `{cname}`: no {k} request, so it would request its limit ({}); capped at {cap} so the system schedules on a laptop (the limit stays)", crate::output::brief(&Some(limit.clone()))),
            "adapt.resources",
        ));
    }
    let mut extended_dropped = Vec::new();
    if let Some(req) = res.get_mut("requests").and_then(Value::as_object_mut) {
        let keys: Vec<String> = req.keys().cloned().collect();
        for k in keys {
            let rptr = format!(
                "{cptr}/resources/requests/{}",
                ktwin_config::pos::escape_token(&k)
            );
            let cap = match k.as_str() {
                "cpu" => Some(RELAXED_CPU),
                "memory" => Some(RELAXED_MEMORY),
                _ => None,
            };
            if let Some(cap) = cap {
                let v = &req[&k];
                let over = match (quantity::parse_value(v), quantity::parse(cap)) {
                    (Some(x), Some(c)) => x > c,
                    _ => false,
                };
                if over {
                    let before = req.insert(k.clone(), json!(cap));
                    push(Change::partial(
                        &rptr,
                        before,
                        Some(json!(cap)),
                        format!("container `{cname}`: {k} request capped at {cap} so the system schedules on a laptop (limits stay)"),
                        "adapt.resources",
                    ));
                }
            } else {
                // A request that the limit would set again is not dropped: Kubernetes defaults
                // a missing request to the limit, so removing it changes nothing
                // (ephemeral-storage with a limit).
                let limited = k == "ephemeral-storage"
                    && limits_now.as_ref().is_some_and(|l| l.contains_key(&k));
                if limited {
                    continue;
                }
                // hugepages-*, vendor.com/gpu, unlimited ephemeral-storage: a laptop node has
                // none (or little) to give.
                let before = req.remove(&k);
                if k.contains('/') || k.starts_with("hugepages-") {
                    extended_dropped.push(k.clone());
                }
                push(Change::partial(
                    &rptr,
                    before,
                    None,
                    format!("container `{cname}`: no local node offers `{k}`"),
                    "adapt.resources",
                ));
            }
        }
        if req.is_empty() {
            res.remove("requests");
        }
    }
    // Extended resources must have limit == request; drop the limit with the request.
    if let Some(lim) = res.get_mut("limits").and_then(Value::as_object_mut) {
        let keys: Vec<String> = lim
            .keys()
            .filter(|k| {
                k.contains('/') || k.starts_with("hugepages-") || extended_dropped.contains(k)
            })
            .cloned()
            .collect();
        for k in keys {
            let before = lim.remove(&k);
            push(Change::partial(
                &format!(
                    "{cptr}/resources/limits/{}",
                    ktwin_config::pos::escape_token(&k)
                ),
                before,
                None,
                format!("container `{cname}`: no local node offers `{k}`"),
                "adapt.resources",
            ));
        }
        if lim.is_empty() {
            res.remove("limits");
        }
    }
}

fn map_class(
    sc: &str,
    a: &Adapt,
    classes: &HashSet<String>,
    provider: Provider,
) -> Option<(String, String)> {
    if let Some(to) = a.storage_classes.get(sc) {
        return (to != sc).then(|| {
            (
                to.clone(),
                format!("adapt.storageClasses maps `{sc}` to `{to}`"),
            )
        });
    }
    if !a.storage || sc.is_empty() || classes.contains(sc) {
        return None;
    }
    let to = provider.default_storage_class();
    Some((
        to.to_string(),
        format!(
            "storage class `{sc}` does not exist on a {} twin; `{to}` is its local-path class",
            provider.as_str()
        ),
    ))
}

/// `cluster.persistentVolumes`: a claim of the provider's local-path class, or of no class
/// (the default), uses the persistent class, whose directories outlive the twin. A claim of
/// `""` (no dynamic provisioning) or of another class is left alone.
fn adapt_persistent(d: &mut Document, provider: Provider, rec: &mut Recorder) {
    let obj = d.obj_ref();
    let mut specs: Vec<String> = Vec::new();
    if d.is("PersistentVolumeClaim") {
        specs.push("/spec".into());
    }
    if d.is("StatefulSet") {
        let n = d
            .value
            .pointer("/spec/volumeClaimTemplates")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        specs.extend((0..n).map(|i| format!("/spec/volumeClaimTemplates/{i}/spec")));
    }
    let local = provider.default_storage_class();
    for sp in specs {
        let Some(spec) = d.value.pointer_mut(&sp).and_then(Value::as_object_mut) else {
            continue;
        };
        let before = spec.get("storageClassName").cloned();
        let ours = match &before {
            None | Some(Value::Null) => true,
            Some(Value::String(c)) => c == local,
            _ => false,
        };
        if !ours {
            continue;
        }
        spec.insert(
            "storageClassName".into(),
            json!(ktwin_config::PERSISTENT_CLASS),
        );
        rec.push(
            &obj,
            Change::partial(
                &format!("{sp}/storageClassName"),
                before,
                Some(json!(ktwin_config::PERSISTENT_CLASS)),
                format!(
                    "cluster.persistentVolumes: the claim keeps its data in ktwin's volumes dir across down/up (`{local}` → `{}`)",
                    ktwin_config::PERSISTENT_CLASS
                ),
                "cluster.persistentVolumes",
            ),
        );
    }
}

fn adapt_storage(
    d: &mut Document,
    a: &Adapt,
    classes: &HashSet<String>,
    provider: Provider,
    rec: &mut Recorder,
) {
    let obj = d.obj_ref();
    let mut targets: Vec<String> = Vec::new();
    if d.is("PersistentVolumeClaim") {
        targets.push("/spec/storageClassName".into());
    }
    if d.is("StatefulSet") {
        if let Some(vcts) = d
            .value
            .pointer("/spec/volumeClaimTemplates")
            .and_then(Value::as_array)
        {
            for i in 0..vcts.len() {
                targets.push(format!(
                    "/spec/volumeClaimTemplates/{i}/spec/storageClassName"
                ));
            }
        }
    }
    for t in targets {
        let Some(sc) = d
            .value
            .pointer(&t)
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            continue;
        };
        if let Some((to, why)) = map_class(&sc, a, classes, provider) {
            if let Some(slot) = d.value.pointer_mut(&t) {
                *slot = json!(to);
            }
            rec.push(
                &obj,
                Change::partial(&t, Some(json!(sc)), Some(json!(to)), why, "adapt.storage"),
            );
        }
    }
}

/// Pods that set fsGroup/runAsUser expect the kubelet to give them their volume. local-path's
/// default hostPath volumes skip that, so postgres/minio/rabbitmq crash on a laptop while prod
/// works. Annotating the claim `volumeType: local` makes local-path create a `local` PV, on which
/// the kubelet applies fsGroup — prod semantics kept, nothing deleted.
fn adapt_volume_ownership(
    docs: &mut [Document],
    local_path_classes: &HashSet<String>,
    rec: &mut Recorder,
) {
    let mut wanted: HashMap<(String, String), String> = HashMap::new();
    for d in docs.iter_mut() {
        let Some(ptr) = pod_spec_pointer(d.kind()) else {
            continue;
        };
        let Some(spec) = d.value.pointer(ptr) else {
            continue;
        };
        if sets_ownership(spec).is_none() {
            continue;
        }
        let workload = format!("{}/{}", d.kind(), d.name());
        for v in spec
            .get("volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(claim) = v
                .pointer("/persistentVolumeClaim/claimName")
                .and_then(Value::as_str)
            {
                wanted.insert((ns_key(d), claim.to_string()), workload.clone());
            }
        }
        if d.is("StatefulSet") {
            let obj = d.obj_ref();
            let n = d
                .value
                .pointer("/spec/volumeClaimTemplates")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            for i in 0..n {
                let base = format!("/spec/volumeClaimTemplates/{i}");
                let Some(vct) = d.value.pointer_mut(&base) else {
                    continue;
                };
                if let Some(ch) = annotate_claim(vct, &base, local_path_classes, &workload) {
                    rec.push(&obj, ch);
                }
            }
        }
    }
    for d in docs.iter_mut() {
        if !d.is("PersistentVolumeClaim") {
            continue;
        }
        let Some(workload) = wanted.get(&(ns_key(d), d.name().to_string())).cloned() else {
            continue;
        };
        let obj = d.obj_ref();
        if let Some(ch) = annotate_claim(&mut d.value, "", local_path_classes, &workload) {
            rec.push(&obj, ch);
        }
    }
}

/// Storage classes the twin has, and which of them local-path-provisioner serves.
#[derive(Debug, Clone, Default)]
pub struct LocalClasses {
    pub all: HashSet<String>,
    pub local_path: HashSet<String>,
}

/// The provider's local-path class plus the StorageClasses the manifests bring.
pub fn local_classes(provider: Provider, docs: &[Document]) -> LocalClasses {
    let default = provider.default_storage_class().to_string();
    let mut c = LocalClasses {
        all: HashSet::from([default.clone()]),
        local_path: HashSet::from([default]),
    };
    for d in docs.iter().filter(|d| d.is("StorageClass")) {
        c.all.insert(d.name().to_string());
        if d.value.pointer("/provisioner").and_then(Value::as_str) == Some(LOCAL_PATH_PROVISIONER) {
            c.local_path.insert(d.name().to_string());
        }
    }
    c
}

/// Whether a pod spec asks the kubelet for volume ownership (pod fsGroup/runAsUser, or a
/// container's runAsUser), and which setting does.
pub fn sets_ownership(spec: &Value) -> Option<String> {
    if let Some(sc) = spec.get("securityContext") {
        if let Some(g) = sc.get("fsGroup") {
            return Some(format!("fsGroup {g}"));
        }
        if let Some(u) = sc.get("runAsUser") {
            return Some(format!("runAsUser {u}"));
        }
    }
    CONTAINER_LISTS.iter().find_map(|l| {
        spec.get(*l)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find_map(|c| {
                let name = c.get("name").and_then(Value::as_str).unwrap_or("");
                c.pointer("/securityContext/runAsUser")
                    .map(|u| format!("runAsUser {u} (container {name})"))
            })
    })
}

fn annotate_claim(
    claim: &mut Value,
    base: &str,
    local_path_classes: &HashSet<String>,
    workload: &str,
) -> Option<Change> {
    let sc = claim
        .pointer("/spec/storageClassName")
        .and_then(Value::as_str);
    let served_by_local_path = match sc {
        None => true, // the twin's default class is local-path
        Some(s) => local_path_classes.contains(s),
    };
    if !served_by_local_path {
        return None;
    }
    let meta = claim
        .as_object_mut()?
        .entry("metadata")
        .or_insert_with(|| json!({}));
    let ann = meta
        .as_object_mut()?
        .entry("annotations")
        .or_insert_with(|| json!({}));
    let ann = ann.as_object_mut()?;
    if ann.contains_key(VOLUME_TYPE_ANNOTATION) {
        return None;
    }
    ann.insert(VOLUME_TYPE_ANNOTATION.into(), json!("local"));
    Some(Change::partial(
        &format!("{base}/metadata/annotations/{VOLUME_TYPE_ANNOTATION}"),
        None,
        Some(json!("local")),
        format!(
            "{workload} sets fsGroup/runAsUser; a `local` PV (not hostPath) makes the kubelet apply volume ownership as in prod"
        ),
        "adapt.volumeOwnership",
    ))
}

#[cfg(test)]
mod sync_tests {
    use super::*;

    fn doc(v: Value) -> Document {
        Document {
            value: v,
            source: crate::doc::Source {
                file: "k8s/app.yaml".into(),
                line: 1,
            },
        }
    }

    #[test]
    fn each_container_gets_its_own_read_only_mounts_and_taken_paths_win() {
        let a = Adapt::default();
        let m = |src: &str, node: &str, dest: &str| SyncMount {
            src: src.into(),
            node_path: node.into(),
            dest: dest.into(),
            directory: true,
        };
        let sync: HashMap<String, Vec<SyncMount>> = [
            (
                "ghcr.io/acme/web".to_string(),
                vec![m("static", "/ktwin/src/web/static", "/srv")],
            ),
            (
                "ghcr.io/acme/api".to_string(),
                vec![
                    m("app", "/ktwin/src/api/app", "/app"),
                    m("conf", "/ktwin/src/api/conf", "/etc/api"),
                ],
            ),
        ]
        .into_iter()
        .collect();
        let twin = LocalTwin {
            adapt: &a,
            provider: Provider::K3d,
            images: HashMap::new(),
            declared_secrets: HashSet::new(),
            single_node: true,
            sync,
            persistent: false,
        };
        let mut d = doc(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "both", "namespace": "shop"},
            "spec": {"template": {"spec": {"containers": [
                {"name": "web", "image": "ghcr.io/acme/web:1"},
                {"name": "api", "image": "ghcr.io/acme/api:1", "volumeMounts": [{"name": "own", "mountPath": "/etc/api"}]}],
              "volumes": [{"name": "own", "emptyDir": {}}]}}}}),
        );
        let mut rec = Recorder::default();
        adapt_sync(&mut d, &twin, &mut rec);
        let spec = &d.value["spec"]["template"]["spec"];
        let vols: Vec<(&str, &str)> = spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| Some((v["name"].as_str()?, v["hostPath"]["path"].as_str()?)))
            .collect();
        // Container 0 (web) and container 1 (api) never share a volume name; the api's
        // /etc/api is the manifests' own mount and gets no sync volume.
        assert_eq!(
            vols,
            [
                ("ktwin-sync-0-0", "/ktwin/src/web/static"),
                ("ktwin-sync-1-0", "/ktwin/src/api/app")
            ]
        );
        assert_eq!(
            spec["containers"][0]["volumeMounts"],
            json!([{"name": "ktwin-sync-0-0", "mountPath": "/srv", "readOnly": true}])
        );
        assert_eq!(
            spec["containers"][1]["volumeMounts"],
            json!([{"name": "own", "mountPath": "/etc/api"}, {"name": "ktwin-sync-1-0", "mountPath": "/app", "readOnly": true}])
        );
        assert!(rec.changes.iter().all(|c| c.knob == "images[].sync"));
        assert_eq!(rec.changes.len(), 4);
    }

    #[test]
    fn a_missing_source_or_one_outside_the_project_gets_no_mount() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("app/static")).unwrap();
        std::fs::write(dir.path().join("app/Dockerfile"), "FROM scratch\n").unwrap();
        let text = "apiVersion: ktwin.dev/v1alpha1\nkind: Project\nname: p\nimages:\n  - image: ghcr.io/acme/app\n    context: app\n    sync:\n      - {src: 'static/**', dest: /srv}\n      - {src: target/debug/app, dest: /usr/local/bin/app}\n";
        let l = ktwin_config::load::parse(&dir.path().join("ktwin.yaml"), text.into()).unwrap();
        let images = ktwin_config::desired::plan_images(&l).unwrap();
        let m = sync_mounts(&images, dir.path(), "/ktwin/src");
        let mounts = &m["ghcr.io/acme/app"];
        // The binary is not built yet: no File hostPath that would keep the pod from starting.
        assert_eq!(mounts.len(), 1, "{mounts:?}");
        assert_eq!(mounts[0].node_path, "/ktwin/src/app/static");
        assert!(mounts[0].directory);
        let elsewhere = tempfile::tempdir().unwrap();
        assert!(sync_mounts(&images, elsewhere.path(), "/ktwin/src").is_empty());
    }

    #[test]
    fn persistent_volumes_move_local_path_claims_to_the_persistent_class() {
        let pvc = |class: Option<&str>| {
            let mut v = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data", "namespace": "shop"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
            if let Some(c) = class {
                v["spec"]["storageClassName"] = json!(c);
            }
            doc(v)
        };
        let class_of = |d: &Document| d.value["spec"]["storageClassName"].clone();
        let mut rec = Recorder::default();
        for (before, after) in [
            (None, json!("ktwin-persistent")),
            (Some("local-path"), json!("ktwin-persistent")),
            // No dynamic provisioning, or a class of its own: left alone.
            (Some(""), json!("")),
            (Some("fast-nvme"), json!("fast-nvme")),
        ] {
            let mut d = pvc(before);
            adapt_persistent(&mut d, Provider::K3d, &mut rec);
            assert_eq!(class_of(&d), after, "{before:?}");
        }
        assert_eq!(rec.changes.len(), 2, "each change is recorded");
        // kind's local-path class is `standard`; a StatefulSet's claim templates too.
        let mut sts = doc(json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "pg", "namespace": "shop"},
            "spec": {"volumeClaimTemplates": [
                {"metadata": {"name": "data"}, "spec": {"storageClassName": "standard"}},
                {"metadata": {"name": "wal"}, "spec": {}}]}}));
        adapt_persistent(&mut sts, Provider::Kind, &mut rec);
        for i in 0..2 {
            assert_eq!(
                sts.value["spec"]["volumeClaimTemplates"][i]["spec"]["storageClassName"],
                "ktwin-persistent"
            );
        }
    }
}
