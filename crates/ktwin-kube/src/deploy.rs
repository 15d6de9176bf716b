//! `ktwin deploy`: namespaces → CRDs (wait Established) → server-side apply of everything
//! else with field manager `ktwin` → prune → rollout wait with explanations.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject};
use kube::api::{DeleteParams, ListParams, LogParams, Patch, PatchParams, PropagationPolicy};
use serde::Serialize;
use serde_json::{json, Value};

use kube::discovery::Scope;

use ktwin_config::event::{Action, Event, Reporter};

use crate::rollout::{self, is_workload, Rollout};
use crate::{
    describe, message, Discovery, KubeError, FIELD_MANAGER, LABEL_ENV, LABEL_MANAGED_BY,
    LABEL_PROJECT,
};

pub struct Options<'a> {
    pub project: &'a str,
    pub env: &'a str,
    pub prune: bool,
    /// Also prune PersistentVolumeClaims and PersistentVolumes (their data goes with them).
    pub prune_volumes: bool,
    /// Say the whole prune set before the first delete (remote environments).
    pub announce_prune: bool,
    pub force_conflicts: bool,
    pub timeout: Duration,
    /// `localhost:<port>/`: images from ktwin's registry get a `ktwin build` hint.
    pub registry_prefix: Option<String>,
    /// Where the kinds applied last time are remembered (for pruning kinds that left).
    pub state_file: Option<PathBuf>,
    pub report: Reporter<'a>,
    /// What the previous deploy of this session applied (`ktwin dev`): an object whose prepared
    /// form is the same is not sent again — no request at all — and its workload is not waited
    /// for; prune runs only when an object the previous deploy had is gone from the render.
    pub previous: Option<&'a Applied>,
}

/// What one deploy applied, for the next deploy of the same session: each object's identity
/// and prepared form (labels added, namespace normalised), and the namespaces that exist.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub forms: BTreeMap<Identity, String>,
    pub namespaces: BTreeSet<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AppliedObject {
    pub object: String,
    pub action: Action,
}

/// An object prune would have deleted and did not, with why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Kept {
    pub object: String,
    /// `volume`: a claim or volume, pruned only with `--prune-volumes`.
    pub reason: &'static str,
}

#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub namespaces_created: Vec<String>,
    pub applied: Vec<AppliedObject>,
    pub pruned: Vec<String>,
    pub kept: Vec<Kept>,
    pub rolled_out: Vec<String>,
    /// Objects not sent because they are as the previous deploy of the session left them.
    pub skipped: usize,
    /// What this deploy applied (for the next one of a `ktwin dev` session).
    #[serde(skip)]
    pub state: Applied,
}

/// Kinds always looked at when pruning, besides those rendered now or last time.
const PRUNE_KINDS: &[(&str, &str)] = &[
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("v1", "PersistentVolumeClaim"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("networking.k8s.io/v1", "Ingress"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
];

/// Kinds never pruned: deleting them takes everything inside with them.
const NEVER_PRUNED: &[&str] = &["Namespace", "CustomResourceDefinition"];

/// Kinds that hold data: pruned only when asked (`--prune-volumes`). With local-path,
/// deleting the claim deletes the data.
const VOLUME_KINDS: &[&str] = &["PersistentVolumeClaim", "PersistentVolume"];

/// Apply order: what others refer to first, workloads last.
fn rank(kind: &str) -> u8 {
    match kind {
        "Namespace" => 0,
        "CustomResourceDefinition" => 1,
        "StorageClass" | "PriorityClass" => 2,
        "ServiceAccount" => 3,
        "ClusterRole" | "Role" => 4,
        "ClusterRoleBinding" | "RoleBinding" => 5,
        "Secret" | "ConfigMap" => 6,
        "PersistentVolume" | "PersistentVolumeClaim" => 7,
        "Service" => 8,
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Pod" | "Job" | "CronJob" => 20,
        "Ingress" | "HorizontalPodAutoscaler" | "PodDisruptionBudget" => 21,
        _ => 10,
    }
}

/// Pure: label every object and order them for applying.
pub fn prepare(docs: &[Value], project: &str, env: &str) -> Vec<Value> {
    let mut out: Vec<Value> = docs
        .iter()
        .map(|d| {
            let mut d = d.clone();
            if !d["metadata"]["labels"].is_object() {
                d["metadata"]["labels"] = json!({});
            }
            let l = &mut d["metadata"]["labels"];
            l[LABEL_MANAGED_BY] = json!("ktwin");
            l[LABEL_PROJECT] = json!(project);
            l[LABEL_ENV] = json!(env);
            d
        })
        .collect();
    out.sort_by_key(|d| rank(d["kind"].as_str().unwrap_or("")));
    out
}

/// The label selector of what ktwin applied for one project and environment.
pub fn own_selector(project: &str, env: &str) -> String {
    format!("{LABEL_MANAGED_BY}=ktwin,{LABEL_PROJECT}={project},{LABEL_ENV}={env}")
}

/// What names one object on the server, whatever version it was written or read through:
/// (API group, kind, namespace — empty for cluster-scoped kinds — and name).
pub type Identity = (String, String, String, String);

fn identity(v: &Value) -> Identity {
    let (group, _) = crate::group_version(v["apiVersion"].as_str().unwrap_or(""));
    (
        group.to_string(),
        v["kind"].as_str().unwrap_or("").to_string(),
        v["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        v["metadata"]["name"].as_str().unwrap_or("").to_string(),
    )
}

/// Pure: the namespace the API server will give `obj`, written into it. A namespaced kind
/// keeps its namespace or gets `default` (the request path decides, and ktwin sends
/// namespace-less objects to `default`); a cluster-scoped kind has none (the server drops one
/// that kustomize's `namespace:` added).
pub fn normalize_namespace(obj: &mut Value, scope: &Scope) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    match scope {
        Scope::Namespaced => {
            if meta
                .get("namespace")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                meta.insert("namespace".into(), json!("default"));
            }
        }
        Scope::Cluster => {
            meta.remove("namespace");
        }
    }
}

/// Did the field manager `ktwin` server-side apply this object (its managedFields say so)?
pub fn applied_by_ktwin(v: &Value) -> bool {
    v["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|m| m["manager"] == FIELD_MANAGER && m["operation"] == "Apply")
}

fn api_err(obj: &Value, e: &kube::Error) -> KubeError {
    crate::api_err(describe(obj), e)
}

/// The server-side apply itself.
async fn ssa(
    api: &Api<DynamicObject>,
    obj: &Value,
    force: bool,
) -> Result<DynamicObject, KubeError> {
    let mut pp = PatchParams::apply(FIELD_MANAGER);
    if force {
        pp = pp.force();
    }
    api.patch(
        obj["metadata"]["name"].as_str().unwrap_or(""),
        &pp,
        &Patch::Apply(obj),
    )
    .await
    .map_err(|e| api_err(obj, &e))
}

/// Server-side apply one object (its namespace already normalised); says whether it was
/// created, changed or left alone, and returns the uid the server gave it.
async fn apply_one(
    disc: &mut Discovery,
    obj: &Value,
    force: bool,
) -> Result<(Action, Option<String>), KubeError> {
    let api = disc.api_for(obj).await?;
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let before = api.get_opt(name).await.map_err(|e| api_err(obj, &e))?;
    let after = ssa(&api, obj, force).await?;
    let action = match before {
        None => Action::Created,
        Some(b) if b.metadata.resource_version == after.metadata.resource_version => {
            Action::Unchanged
        }
        Some(_) => Action::Configured,
    };
    Ok((action, after.metadata.uid))
}

async fn wait_established(
    disc: &mut Discovery,
    crd: &Value,
    timeout: Duration,
) -> Result<(), KubeError> {
    let api = disc.api_for(crd).await?;
    let name = crd["metadata"]["name"].as_str().unwrap_or("");
    let deadline = Instant::now() + timeout;
    loop {
        let o = api.get(name).await.map_err(|e| api_err(crd, &e))?;
        let est = o.data["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Established" && c["status"] == "True");
        if est {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(KubeError::CrdNotEstablished(name.into()));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What a deploy records for the next one: the kinds it applied (to prune kinds that left)
/// and the images it deployed (so `registry gc` keeps them).
#[derive(Debug, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployRecord {
    /// (apiVersion, kind)
    pub kinds: Vec<(String, String)>,
    #[serde(default)]
    pub images: Vec<String>,
}

fn state_err(e: ktwin_config::state::StateError) -> KubeError {
    KubeError::State {
        help: e.help(),
        message: e.to_string(),
    }
}

/// Every image a pod template of `objs` runs.
fn images_of(objs: &[Value]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for o in objs {
        let Some(ptr) = ktwin_manifest::doc::pod_spec_pointer(o["kind"].as_str().unwrap_or(""))
        else {
            continue;
        };
        for list in ktwin_manifest::doc::CONTAINER_LISTS {
            for c in o
                .pointer(&format!("{ptr}/{list}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(i) = c["image"].as_str() {
                    out.insert(i.to_string());
                }
            }
        }
    }
    out
}

/// Deploy rendered documents. Errors stop at the first failing object.
pub async fn deploy(
    disc: &mut Discovery,
    docs: &[Value],
    o: &Options<'_>,
) -> Result<Report, KubeError> {
    let previous: DeployRecord = match &o.state_file {
        Some(p) => ktwin_config::state::read_json(p)
            .map_err(state_err)?
            .unwrap_or_default(),
        None => DeployRecord::default(),
    };
    let mut objs = prepare(docs, o.project, o.env);
    let mut report = Report::default();
    let mut applied_uids = BTreeSet::new();

    // Namespaces and CRDs first (both cluster-scoped); then the rest is discovered again.
    let split = objs
        .iter()
        .position(|d| rank(d["kind"].as_str().unwrap_or("")) > 1)
        .unwrap_or(objs.len());
    // An object as the previous deploy of the session sent it is not sent again.
    let unchanged = |obj: &Value, report: &mut Report| -> bool {
        let form = obj.to_string();
        let same = o
            .previous
            .and_then(|p| p.forms.get(&identity(obj)))
            .is_some_and(|f| *f == form);
        report.state.forms.insert(identity(obj), form);
        if same {
            report.skipped += 1;
        }
        same
    };
    let mut sent: BTreeSet<Identity> = BTreeSet::new();
    let mut crds = Vec::new();
    for obj in objs[..split].iter_mut() {
        let (_, caps) = disc.resolve_obj(obj).await?;
        normalize_namespace(obj, &caps.scope);
        if obj["kind"] == "Namespace" {
            if let Some(n) = obj["metadata"]["name"].as_str() {
                report.state.namespaces.insert(n.to_string());
            }
        }
        if unchanged(obj, &mut report) {
            continue;
        }
        let (action, uid) = apply_one(disc, obj, o.force_conflicts).await?;
        applied_uids.extend(uid);
        sent.insert(identity(obj));
        say_applied(o, obj, action, &mut report);
        if obj["kind"] == "CustomResourceDefinition" {
            crds.push(obj.clone());
        }
    }
    for crd in &crds {
        wait_established(disc, crd, o.timeout).await?;
    }
    if !crds.is_empty() {
        disc.forget();
    }
    // Every other object's kind resolved (a kind the server does not serve is an error
    // before anything else is written) and its namespace made the one the server will use.
    for obj in objs[split..].iter_mut() {
        let (_, caps) = disc.resolve_obj(obj).await?;
        normalize_namespace(obj, &caps.scope);
    }

    // Namespaces the objects need and the render does not declare.
    let declared: BTreeSet<String> = objs[..split]
        .iter()
        .filter(|d| d["kind"] == "Namespace")
        .filter_map(|d| d["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    let needed: BTreeSet<String> = objs[split..]
        .iter()
        .filter_map(|d| d["metadata"]["namespace"].as_str().map(str::to_string))
        .filter(|n| !declared.contains(n))
        .collect();
    for ns in needed {
        let known = o.previous.is_some_and(|p| p.namespaces.contains(&ns));
        report.state.namespaces.insert(ns.clone());
        if known {
            continue;
        }
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns,
            "labels": {LABEL_MANAGED_BY: "ktwin", LABEL_PROJECT: o.project, LABEL_ENV: o.env}}});
        let api = disc.api_for(&obj).await?;
        if api
            .get_opt(&ns)
            .await
            .map_err(|e| api_err(&obj, &e))?
            .is_none()
        {
            ssa(&api, &obj, false).await?;
            (o.report)(Event::NamespaceCreated { name: ns.clone() });
            report.namespaces_created.push(ns);
        }
    }

    for obj in &objs[split..] {
        if unchanged(obj, &mut report) {
            continue;
        }
        let (action, uid) = apply_one(disc, obj, o.force_conflicts).await?;
        applied_uids.extend(uid);
        sent.insert(identity(obj));
        say_applied(o, obj, action, &mut report);
    }

    let kinds_now: BTreeSet<(String, String)> = objs
        .iter()
        .map(|d| {
            (
                d["apiVersion"].as_str().unwrap_or("").to_string(),
                d["kind"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    // Within a session, what the previous deploy pruned is gone: prune again only when an
    // object it applied is no longer rendered.
    let desired_now: BTreeSet<Identity> = objs.iter().map(identity).collect();
    let something_left = o
        .previous
        .is_none_or(|p| p.forms.keys().any(|id| !desired_now.contains(id)));
    if o.prune && something_left {
        let mut kinds: Vec<(String, String)> = kinds_now.iter().cloned().collect();
        kinds.extend(previous.kinds.iter().cloned());
        kinds.extend(
            PRUNE_KINDS
                .iter()
                .map(|(a, k)| (a.to_string(), k.to_string())),
        );
        let desired: BTreeSet<Identity> = objs.iter().map(identity).collect();
        let (pruned, kept) = prune(disc, &kinds, &desired, &applied_uids, o).await?;
        report.pruned = pruned;
        report.kept = kept;
    }
    if let Some(p) = &o.state_file {
        let record = DeployRecord {
            kinds: kinds_now.into_iter().collect(),
            images: images_of(&objs).into_iter().collect(),
        };
        ktwin_config::state::write_json(p, &record).map_err(state_err)?;
    }

    let workloads: Vec<&Value> = objs
        .iter()
        .filter(|d| is_workload(d["kind"].as_str().unwrap_or("")))
        .filter(|d| o.previous.is_none() || sent.contains(&identity(d)))
        .collect();
    report.rolled_out = wait_rollouts(disc, &workloads, o).await?;
    Ok(report)
}

fn say_applied(o: &Options, obj: &Value, action: Action, report: &mut Report) {
    (o.report)(Event::Applied {
        object: describe(obj),
        action,
    });
    report.applied.push(AppliedObject {
        object: describe(obj),
        action,
    });
}

/// One object prune will delete: found by its labels, examined, and deleted only while its
/// uid is still the one examined.
struct Doomed {
    api: Api<DynamicObject>,
    name: String,
    uid: Option<String>,
    label: String,
}

/// Delete what this project and environment applied before and the render no longer has.
/// The candidates are this run's labels on the server; of those, never deleted: an object
/// whose identity (group, kind, namespace, name) was rendered now, whatever its version; one
/// whose uid an apply of this run returned; one with an ownerReference (a controller made
/// it, and may have copied the labels from its parent); one whose managedFields show no
/// server-side apply by `ktwin`; Namespaces and CRDs; and claims and volumes unless
/// `prune_volumes`.
async fn prune(
    disc: &mut Discovery,
    kinds: &[(String, String)],
    desired: &BTreeSet<Identity>,
    applied_uids: &BTreeSet<String>,
    o: &Options<'_>,
) -> Result<(Vec<String>, Vec<Kept>), KubeError> {
    // One listing per (group, kind): a kind served under several versions is one storage.
    let mut by_kind: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (av, kind) in kinds {
        let (group, _) = crate::group_version(av);
        let versions = by_kind
            .entry((group.to_string(), kind.clone()))
            .or_default();
        if !versions.contains(av) {
            versions.push(av.clone());
        }
    }
    let lp = ListParams::default().labels(&own_selector(o.project, o.env));
    let mut doomed: Vec<Doomed> = Vec::new();
    let mut kept = Vec::new();
    let mut seen_uids = BTreeSet::new();
    for ((group, kind), versions) in &by_kind {
        if NEVER_PRUNED.contains(&kind.as_str()) {
            continue;
        }
        // The first version the server still serves; none: nothing left to prune.
        let mut resolved = None;
        for av in versions {
            if let Ok(r) = disc.resolve(av, kind).await {
                resolved = Some(r);
                break;
            }
        }
        let Some((ar, caps)) = resolved else {
            continue;
        };
        let list = disc
            .all(&ar)
            .list(&lp)
            .await
            .map_err(|e| crate::api_err(format!("{kind} list"), &e))?;
        for item in list.items {
            let mut v = serde_json::to_value(&item).unwrap_or_default();
            v["apiVersion"] = json!(ar.api_version);
            v["kind"] = json!(kind);
            let uid = v["metadata"]["uid"].as_str().map(str::to_string);
            let id = identity(&v);
            debug_assert_eq!(&id.0, group);
            let l = &v["metadata"]["labels"];
            let ours = l[LABEL_MANAGED_BY] == "ktwin"
                && l[LABEL_PROJECT] == o.project
                && l[LABEL_ENV] == o.env;
            let owned = v["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|a| !a.is_empty());
            if !ours
                || desired.contains(&id)
                || uid.as_ref().is_some_and(|u| applied_uids.contains(u))
                || owned
                || !applied_by_ktwin(&v)
                || uid.as_ref().is_some_and(|u| !seen_uids.insert(u.clone()))
            {
                continue;
            }
            if VOLUME_KINDS.contains(&kind.as_str()) && !o.prune_volumes {
                (o.report)(Event::Kept {
                    object: describe(&v),
                    reason: "volume".into(),
                });
                kept.push(Kept {
                    object: describe(&v),
                    reason: "volume",
                });
                continue;
            }
            doomed.push(Doomed {
                api: disc.api(&ar, &caps, v["metadata"]["namespace"].as_str()),
                name: id.3.clone(),
                uid,
                label: describe(&v),
            });
        }
    }
    if o.announce_prune && !doomed.is_empty() {
        (o.report)(Event::PruneSet {
            objects: doomed.iter().map(|d| d.label.clone()).collect(),
        });
    }
    let mut pruned = Vec::new();
    for d in doomed {
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: d.uid.clone().map(|uid| kube::api::Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..Default::default()
        };
        match d.api.delete(&d.name, &dp).await {
            Ok(_) => {}
            Err(e) if crate::is_not_found(&e) => {}
            // The uid precondition failed: it was deleted and made again since it was
            // listed, so it is not the object examined.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                (o.report)(Event::NotPruned {
                    object: d.label.clone(),
                    why: "it was recreated meanwhile".into(),
                });
                continue;
            }
            Err(e) => return Err(crate::api_err(d.label, &e)),
        }
        (o.report)(Event::Pruned {
            object: d.label.clone(),
        });
        pruned.push(d.label);
    }
    Ok((pruned, kept))
}

/// Wait for every workload the way `kubectl rollout status` does, one progress line per
/// change; explain the ones still stuck at the deadline.
pub async fn wait_rollouts(
    disc: &mut Discovery,
    workloads: &[&Value],
    o: &Options<'_>,
) -> Result<Vec<String>, KubeError> {
    if workloads.is_empty() {
        return Ok(vec![]);
    }
    let start = Instant::now();
    let mut apis = Vec::new();
    for w in workloads {
        apis.push(disc.api_for(w).await?);
    }
    let last: RefCell<BTreeMap<String, String>> = RefCell::new(BTreeMap::new());
    let waits = workloads.iter().zip(apis.iter()).map(|(w, api)| {
        let name = w["metadata"]["name"].as_str().unwrap_or("").to_string();
        let label = describe(w);
        let last = &last;
        let report = o.report;
        async move {
            let cond = |obj: Option<&DynamicObject>| -> bool {
                let Some(obj) = obj else { return false };
                let v = serde_json::to_value(obj).unwrap_or_default();
                let (done, msg) = match rollout::state(&v) {
                    Rollout::Done(m) => (true, m),
                    Rollout::Waiting(m) => (false, m),
                    Rollout::Failed(m) => (true, m),
                };
                let mut l = last.borrow_mut();
                if l.get(&label) != Some(&msg) {
                    if !done {
                        report(Event::RolloutProgress {
                            workload: label.clone(),
                            message: msg.clone(),
                        });
                    }
                    l.insert(label.clone(), msg);
                }
                done
            };
            let r = tokio::time::timeout(
                o.timeout,
                kube::runtime::wait::await_condition(api.clone(), &name, cond),
            )
            .await;
            (w, r)
        }
    });
    let results = futures::future::join_all(waits).await;
    let mut done = Vec::new();
    let mut stuck = Vec::new();
    for (w, r) in results {
        let label = describe(w);
        match r {
            Ok(Ok(Some(obj))) => {
                let v = serde_json::to_value(&obj).unwrap_or_default();
                match rollout::state(&v) {
                    Rollout::Failed(m) => stuck.push((*w, m)),
                    _ => {
                        (o.report)(Event::RolledOut {
                            workload: label.clone(),
                            seconds: start.elapsed().as_secs_f64(),
                        });
                        done.push(label);
                    }
                }
            }
            Ok(Ok(None)) => stuck.push((*w, "it was deleted while waiting".into())),
            Ok(Err(e)) => return Err(KubeError::Unreachable(format!("watching {label}: {e}"))),
            Err(_) => {
                let m = last.borrow().get(&label).cloned().unwrap_or_default();
                stuck.push((*w, m));
            }
        }
    }
    if stuck.is_empty() {
        return Ok(done);
    }
    let mut lines = Vec::new();
    for (w, m) in &stuck {
        lines.push(format!("{}: {m}", describe(w)));
        lines.extend(explain_workload(disc, w, o.registry_prefix.as_deref()).await);
    }
    Err(KubeError::Stuck {
        count: stuck.len(),
        timeout: o.timeout.as_secs(),
        lines,
    })
}

/// Why a workload's pods are not ready, read from the API (pods, events, previous logs).
pub async fn explain_workload(
    disc: &mut Discovery,
    w: &Value,
    registry_prefix: Option<&str>,
) -> Vec<String> {
    let listed = crate::pods_of(disc.client(), w).await;
    explain_listed(disc, w, &listed, registry_prefix).await
}

/// [`explain_workload`] for pods already listed with [`crate::pods_of`].
pub async fn explain_listed(
    disc: &mut Discovery,
    w: &Value,
    listed: &Result<Option<Vec<Value>>, kube::Error>,
    registry_prefix: Option<&str>,
) -> Vec<String> {
    let list = match listed {
        Ok(Some(l)) => l,
        Ok(None) => return vec!["  (no matchLabels selector: cannot find its pods)".into()],
        Err(e) => return vec![format!("  (cannot list its pods: {})", message(e))],
    };
    if list.is_empty() {
        return vec![format!(
            "  no pod matches {} yet",
            rollout::selector(w).unwrap_or_default()
        )];
    }
    let ns = w["metadata"]["namespace"].as_str().unwrap_or("default");
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(disc.client().clone(), ns);
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(disc.client().clone(), ns);
    let mut out = Vec::new();
    for v in list.iter().take(3) {
        let name = v["metadata"]["name"].as_str().unwrap_or("").to_string();
        let Some(problem) = rollout::pod_problem(v) else {
            continue;
        };
        let evs: Vec<Value> = events
            .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
            .await
            .map(|l| crate::to_values(&l.items))
            .unwrap_or_default();
        let log = if let rollout::PodProblem::Crash { container, .. } = &problem {
            let lp = LogParams {
                container: Some(container.clone()),
                previous: true,
                tail_lines: Some(10),
                ..Default::default()
            };
            pods.logs(&name, &lp).await.ok()
        } else {
            None
        };
        out.extend(
            rollout::explain(&name, &problem, &evs, log.as_deref(), registry_prefix)
                .into_iter()
                .map(|l| format!("  {l}")),
        );
    }
    if out.is_empty() {
        out.push("  its pods show no error yet; they may still be starting".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_labels_and_orders() {
        let docs = vec![
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}}),
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}),
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "widgets.example.com"}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
        ];
        let out = prepare(&docs, "swarm", "local");
        let kinds: Vec<&str> = out.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "Namespace",
                "CustomResourceDefinition",
                "Service",
                "Widget",
                "Deployment"
            ]
        );
        let l = &out[4]["metadata"]["labels"];
        assert_eq!(l["app"], "web");
        assert_eq!(l[LABEL_MANAGED_BY], "ktwin");
        assert_eq!(l[LABEL_PROJECT], "swarm");
        assert_eq!(l[LABEL_ENV], "local");
        assert_eq!(
            own_selector("swarm", "local"),
            "app.kubernetes.io/managed-by=ktwin,ktwin.dev/project=swarm,ktwin.dev/env=local"
        );
    }
}
