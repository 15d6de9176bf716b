//! The one-off Jobs `ktwin run` creates: from a `jobs:` template in ktwin.yaml, or from a
//! rendered CronJob or Job (`--from cronjob/NAME`). What the template (or the rendered object)
//! sets is kept; every field it leaves unset gets a hardened default, and each default is
//! recorded as a [`Change`] with its reason, like an adaptation (`ktwin run --dry-run` lists
//! them). Pure: no cluster is asked anything here.

use base64::Engine as _;
use ktwin_config::JobTemplate;
use serde_json::{json, Map, Value};

use crate::change::{Change, Recorder};
use crate::doc::ObjRef;

/// Labels that tie a run to its project, environment and template (`ktwin jobs` lists by them).
pub const LABEL_JOB: &str = "ktwin.dev/job";
/// The label that names one run (its pods carry it: the logs and outcome are found by it).
pub const LABEL_RUN: &str = "ktwin.dev/run";
/// The annotation that carries the template's result marker to `ktwin jobs logs`.
pub const ANNOTATION_MARKER: &str = "ktwin.dev/result-marker";

/// The most env bytes (names and values) a run puts in the pod spec itself. Linux refuses a
/// single environment string over 128 KiB (`MAX_ARG_STRLEN`, execve(2)) and the whole object
/// must stay well under the API server's request limit, so bigger payloads go to a Secret
/// the Job owns.
pub const ENV_BUDGET: usize = 64 * 1024;
/// A Secret holds at most 1 MiB of data (the API server's limit).
pub const SECRET_MAX: usize = 1024 * 1024;

/// The hardened defaults, each with its reason.
const DEFAULT_BACKOFF: u32 = 0;
const DEFAULT_TTL: u32 = 300;
const DEFAULT_DEADLINE: u32 = 3600;
const DEFAULT_UID: u32 = 1000;

pub struct JobInputs<'a> {
    /// The template's name (`agent-runner`), or the rendered object's name for `--from`.
    pub template: &'a str,
    /// A short unique id: the Job is `<template>-<id>`.
    pub id: &'a str,
    pub project: &'a str,
    pub env: &'a str,
    pub namespace: &'a str,
    /// The image reference the container runs (a ktwin-built one at its content tag).
    pub image: Option<String>,
    /// `--set-env K=V`, in order (later wins).
    pub set_env: &'a [(String, String)],
    /// `--env-b64 K=@FILE`: the file's bytes, base64-encoded into `K`.
    pub payloads: &'a [(String, Vec<u8>)],
    /// The twin has one node: the pod tolerates the control-plane taint.
    pub single_node: bool,
}

/// A Job ready to create, and the Secret its payloads need (created owned by the Job).
#[derive(Debug, Clone)]
pub struct Generated {
    pub job: Value,
    pub secret: Option<Value>,
    pub changes: Vec<Change>,
    pub result_marker: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{0}")]
    Input(String),
}

/// The Job spec the ktwin.yaml template `name` writes (only what it sets; [`generate`] adds
/// the rest). Its one container is called after the template.
pub fn from_template(name: &str, t: &JobTemplate) -> Value {
    let mut c = Map::new();
    c.insert("name".into(), json!(name));
    if !t.command.is_empty() {
        c.insert("command".into(), json!(t.command));
    }
    if !t.args.is_empty() {
        c.insert("args".into(), json!(t.args));
    }
    if !t.env.is_empty() {
        let env: Vec<Value> = t
            .env
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect();
        c.insert("env".into(), json!(env));
    }
    let mut res = Map::new();
    if let Some(r) = &t.requests {
        res.insert("requests".into(), json!(r));
    }
    if let Some(l) = &t.limits {
        res.insert("limits".into(), json!(l));
    }
    if !res.is_empty() {
        c.insert("resources".into(), Value::Object(res));
    }
    let mut pod = Map::new();
    pod.insert("containers".into(), json!([Value::Object(c)]));
    if let Some(sa) = &t.service_account_name {
        pod.insert("serviceAccountName".into(), json!(sa));
    }
    if let Some(a) = t.automount_service_account_token {
        pod.insert("automountServiceAccountToken".into(), json!(a));
    }
    let mut sc = Map::new();
    if let Some(u) = t.run_as_user {
        sc.insert("runAsUser".into(), json!(u));
    }
    if let Some(g) = t.run_as_group {
        sc.insert("runAsGroup".into(), json!(g));
    }
    if !sc.is_empty() {
        pod.insert("securityContext".into(), Value::Object(sc));
    }
    let mut spec = Map::new();
    spec.insert("template".into(), json!({"spec": Value::Object(pod)}));
    if let Some(b) = t.backoff_limit {
        spec.insert("backoffLimit".into(), json!(b));
    }
    if let Some(x) = t.ttl_seconds_after_finished {
        spec.insert("ttlSecondsAfterFinished".into(), json!(x));
    }
    if let Some(x) = t.active_deadline_seconds {
        spec.insert("activeDeadlineSeconds".into(), json!(x));
    }
    Value::Object(spec)
}

/// The Job spec of a rendered CronJob (its `jobTemplate.spec`) or Job (its `spec`).
pub fn from_rendered(obj: &Value) -> Result<Value, JobError> {
    let kind = obj["kind"].as_str().unwrap_or("");
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let spec = match kind {
        "CronJob" => &obj["spec"]["jobTemplate"]["spec"],
        "Job" => &obj["spec"],
        other => {
            return Err(JobError::Input(format!(
                "{}/{name} is not a CronJob or Job; `--from` takes cronjob/NAME or job/NAME",
                other.to_lowercase()
            )))
        }
    };
    let mut spec = spec.clone();
    if !spec["template"]["spec"]["containers"].is_array() {
        return Err(JobError::Input(format!(
            "{}/{name} has no pod template with containers",
            kind.to_lowercase()
        )));
    }
    if let Some(m) = spec.as_object_mut() {
        // The rendered Job's own identity stays with it: selector and its labels are the
        // Job controller's to set for a new Job.
        m.remove("selector");
        m.remove("manualSelector");
    }
    Ok(spec)
}

/// The Job `spec` with every unset field given its hardened default (recorded), named
/// `<template>-<id>`, labelled, with `--set-env` and payloads in the first container's env.
pub fn generate(
    spec: Value,
    i: &JobInputs<'_>,
    result_marker: Option<&str>,
) -> Result<Generated, JobError> {
    let name = format!("{}-{}", i.template, i.id);
    let obj = ObjRef {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        namespace: Some(i.namespace.to_string()),
        name: name.clone(),
    };
    let mut rec = Recorder::default();
    let mut d = |path: &str, value: Value, why: &str| {
        rec.push(
            &obj,
            Change::partial(path, None, Some(value), why.to_string(), "jobs"),
        );
    };
    let mut spec = spec;
    let s = spec.as_object_mut().expect("a Job spec is an object");
    let mut fill = |s: &mut Map<String, Value>, k: &str, v: Value, why: &str| {
        if !s.contains_key(k) {
            s.insert(k.into(), v.clone());
            d(&format!("/spec/{k}"), v, why);
        }
    };
    fill(
        s,
        "backoffLimit",
        json!(DEFAULT_BACKOFF),
        "a one-off runs once: a failure is reported, not retried",
    );
    fill(
        s,
        "ttlSecondsAfterFinished",
        json!(DEFAULT_TTL),
        "a finished run (and its pod and log) is deleted 5 minutes later",
    );
    fill(
        s,
        "activeDeadlineSeconds",
        json!(DEFAULT_DEADLINE),
        "a run that hangs is failed (DeadlineExceeded) after an hour",
    );
    let pod = s
        .entry("template")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| JobError::Input("the Job's template is not an object".into()))?
        .entry("spec")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| JobError::Input("the Job's pod spec is not an object".into()))?;
    let p = "/spec/template/spec";
    let mut fill_pod = |pod: &mut Map<String, Value>, k: &str, v: Value, why: &str| {
        if !pod.contains_key(k) {
            pod.insert(k.into(), v.clone());
            d(&format!("{p}/{k}"), v, why);
        }
    };
    fill_pod(
        pod,
        "restartPolicy",
        json!("Never"),
        "a failed container is a failed run, not a restart loop",
    );
    fill_pod(
        pod,
        "automountServiceAccountToken",
        json!(false),
        "no API token in the pod unless the template asks for one",
    );
    if i.single_node {
        fill_pod(
            pod,
            "tolerations",
            json!([{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]),
            "the twin has one node, the control plane: the run may be scheduled there",
        );
    }
    let sc = pod
        .entry("securityContext")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| JobError::Input("the pod's securityContext is not an object".into()))?;
    for (k, v, why) in [
        (
            "runAsNonRoot",
            json!(true),
            "the kubelet refuses to start the container as root",
        ),
        (
            "runAsUser",
            json!(DEFAULT_UID),
            "a fixed unprivileged uid, whatever the image's USER says",
        ),
        ("runAsGroup", json!(DEFAULT_UID), "a fixed unprivileged gid"),
        (
            "seccompProfile",
            json!({"type": "RuntimeDefault"}),
            "the runtime's default syscall filter",
        ),
    ] {
        if !sc.contains_key(k) {
            sc.insert(k.into(), v.clone());
            d(&format!("{p}/securityContext/{k}"), v, why);
        }
    }
    let containers = pod
        .get_mut("containers")
        .and_then(Value::as_array_mut)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| JobError::Input("the Job has no container".into()))?;
    for (n, c) in containers.iter_mut().enumerate() {
        let cp = format!("{p}/containers/{n}");
        let c = c
            .as_object_mut()
            .ok_or_else(|| JobError::Input("a container is not an object".into()))?;
        if n == 0 {
            if let Some(img) = &i.image {
                c.insert("image".into(), json!(img));
            }
        }
        let csc = c
            .entry("securityContext")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or_else(|| {
                JobError::Input("a container's securityContext is not an object".into())
            })?;
        for (k, v, why) in [
            (
                "allowPrivilegeEscalation",
                json!(false),
                "no setuid binary or file capability can raise the process's privileges",
            ),
            (
                "capabilities",
                json!({"drop": ["ALL"]}),
                "no Linux capability (no raw sockets, no chown of others' files)",
            ),
        ] {
            if !csc.contains_key(k) {
                csc.insert(k.into(), v.clone());
                d(&format!("{cp}/securityContext/{k}"), v, why);
            }
        }
        let res = c
            .entry("resources")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or_else(|| JobError::Input("a container's resources are not an object".into()))?;
        for (k, v, why) in [
            (
                "requests",
                json!({"cpu": "500m", "memory": "1Gi"}),
                "what a run is scheduled with",
            ),
            (
                "limits",
                json!({"cpu": "2", "memory": "4Gi"}),
                "a runaway run is throttled (cpu) or OOM-killed (memory), not the node",
            ),
        ] {
            if !res.contains_key(k) {
                res.insert(k.into(), v.clone());
                d(&format!("{cp}/resources/{k}"), v, why);
            }
        }
    }
    // --set-env and payloads: the first container's env, a later entry replacing an earlier.
    let first = containers[0].as_object_mut().expect("checked above");
    let env = first
        .entry("env")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .ok_or_else(|| JobError::Input("the container's env is not a list".into()))?;
    let set = |env: &mut Vec<Value>, name: &str, v: Value| {
        env.retain(|e| e["name"] != name);
        env.push(v);
    };
    for (k, v) in i.set_env {
        set(env, k, json!({"name": k, "value": v}));
    }
    let encoded: Vec<(String, String)> = i
        .payloads
        .iter()
        .map(|(k, b)| {
            (
                k.clone(),
                base64::engine::general_purpose::STANDARD.encode(b),
            )
        })
        .collect();
    let in_env: usize = env
        .iter()
        .map(|e| e["name"].as_str().map_or(0, str::len) + e["value"].as_str().map_or(0, str::len))
        .sum::<usize>()
        + encoded
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>();
    let mut secret = None;
    if in_env <= ENV_BUDGET {
        for (k, v) in &encoded {
            set(env, k, json!({"name": k, "value": v}));
        }
    } else {
        let total: usize = encoded.iter().map(|(_, v)| v.len()).sum();
        if total > SECRET_MAX {
            return Err(JobError::Input(format!(
                "the payloads are {total} bytes once base64-encoded; a Secret holds at most {SECRET_MAX} (1 MiB): pass a smaller file, or have the job fetch it"
            )));
        }
        let sname = format!("{name}-payload");
        for (k, _) in &encoded {
            set(
                env,
                k,
                json!({"name": k, "valueFrom": {"secretKeyRef": {"name": sname, "key": k}}}),
            );
        }
        let data: Map<String, Value> = encoded
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    json!(base64::engine::general_purpose::STANDARD.encode(v)),
                )
            })
            .collect();
        d(
            &format!("{p}/containers/0/env"),
            json!(format!("{} from Secret {sname}", encoded.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", "))),
            "the payloads exceed the env budget (64 KiB): they are kept in a Secret the Job owns, deleted with it",
        );
        secret = Some(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": sname, "namespace": i.namespace, "labels": labels(i)},
            "type": "Opaque",
            "data": Value::Object(data),
        }));
    }
    if env.is_empty() {
        first.remove("env");
    }
    let mut annotations = Map::new();
    if let Some(m) = result_marker {
        annotations.insert(ANNOTATION_MARKER.into(), json!(m));
    }
    let mut job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": i.namespace, "labels": labels(i)},
        "spec": spec,
    });
    if !annotations.is_empty() {
        job["metadata"]["annotations"] = Value::Object(annotations);
    }
    // The pods carry the same labels, so `ktwin jobs` and the logs find them too.
    let tl = &mut job["spec"]["template"]["metadata"]["labels"];
    if !tl.is_object() {
        *tl = json!({});
    }
    if let (Some(t), Value::Object(l)) = (tl.as_object_mut(), labels(i)) {
        t.extend(l);
    }
    Ok(Generated {
        job,
        secret,
        changes: rec.changes,
        result_marker: result_marker.map(str::to_string),
    })
}

fn labels(i: &JobInputs<'_>) -> Value {
    json!({
        "app.kubernetes.io/managed-by": "ktwin",
        "ktwin.dev/project": i.project,
        "ktwin.dev/env": i.env,
        LABEL_JOB: i.template,
        LABEL_RUN: format!("{}-{}", i.template, i.id),
    })
}

/// The Secret's ownerReference to the created Job (its uid is known only after the create):
/// the garbage collector deletes the Secret with the Job.
pub fn owned_by(secret: &mut Value, job: &Value) {
    secret["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": job["metadata"]["name"],
        "uid": job["metadata"]["uid"],
        "blockOwnerDeletion": true,
    }]);
}

/// The text after `marker` on each line that carries it: JSON when it parses, else the text.
pub fn results(log: &str, marker: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| l.split_once(marker).map(|(_, r)| r))
        .map(|r| {
            let r = r.trim_start_matches([':', '=']).trim();
            serde_json::from_str(r).unwrap_or_else(|_| json!(r))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs<'a>(
        set_env: &'a [(String, String)],
        payloads: &'a [(String, Vec<u8>)],
        single_node: bool,
    ) -> JobInputs<'a> {
        JobInputs {
            template: "agent-runner",
            id: "x7k2q",
            project: "swarm",
            env: "local",
            namespace: "swarm",
            image: Some("localhost:5001/acme/agent-runner:ktwin-abc".into()),
            set_env,
            payloads,
            single_node,
        }
    }

    fn template() -> JobTemplate {
        JobTemplate {
            image: "ghcr.io/acme/agent-runner".into(),
            command: vec!["bun".into(), "run".into(), "/app/job-runner.ts".into()],
            env: [("EXECUTION_BACKEND".to_string(), "k8s".to_string())]
                .into_iter()
                .collect(),
            result_marker: Some("SandboxExecutionResult".into()),
            ..JobTemplate::default()
        }
    }

    #[test]
    fn every_default_is_set_and_recorded() {
        let g = generate(
            from_template("agent-runner", &template()),
            &inputs(&[], &[], true),
            Some("SandboxExecutionResult"),
        )
        .unwrap();
        let j = &g.job;
        assert_eq!(j["metadata"]["name"], "agent-runner-x7k2q");
        assert_eq!(j["spec"]["backoffLimit"], 0);
        assert_eq!(j["spec"]["ttlSecondsAfterFinished"], 300);
        assert_eq!(j["spec"]["activeDeadlineSeconds"], 3600);
        let pod = &j["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(pod["securityContext"]["runAsUser"], 1000);
        assert_eq!(pod["securityContext"]["runAsGroup"], 1000);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        assert_eq!(
            pod["tolerations"][0]["key"],
            "node-role.kubernetes.io/control-plane"
        );
        let c = &pod["containers"][0];
        assert_eq!(c["image"], "localhost:5001/acme/agent-runner:ktwin-abc");
        assert_eq!(c["command"], json!(["bun", "run", "/app/job-runner.ts"]));
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(
            c["resources"]["requests"],
            json!({"cpu": "500m", "memory": "1Gi"})
        );
        assert_eq!(
            c["resources"]["limits"],
            json!({"cpu": "2", "memory": "4Gi"})
        );
        assert_eq!(
            c["env"],
            json!([{"name": "EXECUTION_BACKEND", "value": "k8s"}])
        );
        for l in [&j["metadata"]["labels"], &pod_labels(j)] {
            assert_eq!(l["ktwin.dev/project"], "swarm");
            assert_eq!(l["ktwin.dev/env"], "local");
            assert_eq!(l[LABEL_JOB], "agent-runner");
            assert_eq!(l[LABEL_RUN], "agent-runner-x7k2q");
        }
        assert_eq!(
            j["metadata"]["annotations"][ANNOTATION_MARKER],
            "SandboxExecutionResult"
        );
        // Each default is a recorded change with its reason: 3 job, 2 pod, 1 toleration,
        // 4 pod security, 2 container security, 2 resources.
        assert_eq!(g.changes.len(), 14, "{:#?}", g.changes);
        assert!(g
            .changes
            .iter()
            .all(|c| !c.reason.is_empty() && c.knob == "jobs"));
        assert!(g.secret.is_none());
    }

    fn pod_labels(j: &Value) -> Value {
        j["spec"]["template"]["metadata"]["labels"].clone()
    }

    #[test]
    fn what_the_template_sets_is_kept() {
        let mut t = template();
        t.backoff_limit = Some(2);
        t.run_as_user = Some(4242);
        t.limits = Some(
            [("memory".to_string(), "512Mi".to_string())]
                .into_iter()
                .collect(),
        );
        t.automount_service_account_token = Some(true);
        let g = generate(
            from_template("agent-runner", &t),
            &inputs(&[], &[], false),
            None,
        )
        .unwrap();
        let pod = &g.job["spec"]["template"]["spec"];
        assert_eq!(g.job["spec"]["backoffLimit"], 2);
        assert_eq!(pod["securityContext"]["runAsUser"], 4242);
        assert_eq!(pod["automountServiceAccountToken"], true);
        assert_eq!(
            pod["containers"][0]["resources"]["limits"],
            json!({"memory": "512Mi"})
        );
        // Not single-node: no toleration.
        assert!(pod["tolerations"].is_null());
        assert!(!g.changes.iter().any(|c| c.path.ends_with("/backoffLimit")));
    }

    #[test]
    fn set_env_overrides_and_small_payloads_go_in_env() {
        let set = vec![("EXECUTION_BACKEND".to_string(), "local".to_string())];
        let pay = vec![("TASK_PROMPT_B64".to_string(), b"hello".to_vec())];
        let g = generate(
            from_template("agent-runner", &template()),
            &inputs(&set, &pay, false),
            None,
        )
        .unwrap();
        let env = &g.job["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(
            *env,
            json!([
                {"name": "EXECUTION_BACKEND", "value": "local"},
                {"name": "TASK_PROMPT_B64", "value": "aGVsbG8="}
            ])
        );
        assert!(g.secret.is_none());
    }

    #[test]
    fn a_payload_over_the_budget_goes_to_a_secret_the_job_owns() {
        let big = vec![b'x'; ENV_BUDGET];
        let pay = vec![("TASK_PROMPT_B64".to_string(), big.clone())];
        let g = generate(
            from_template("agent-runner", &template()),
            &inputs(&[], &pay, false),
            None,
        )
        .unwrap();
        let env = &g.job["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(
            env[1],
            json!({"name": "TASK_PROMPT_B64", "valueFrom": {"secretKeyRef": {"name": "agent-runner-x7k2q-payload", "key": "TASK_PROMPT_B64"}}})
        );
        let mut s = g.secret.unwrap();
        // Secret data is base64 of the value the env gets (itself base64 of the file).
        let once = base64::engine::general_purpose::STANDARD.encode(&big);
        let twice = base64::engine::general_purpose::STANDARD.encode(&once);
        assert_eq!(s["data"]["TASK_PROMPT_B64"], json!(twice));
        let job = json!({"metadata": {"name": "agent-runner-x7k2q", "uid": "u-1"}});
        owned_by(&mut s, &job);
        assert_eq!(s["metadata"]["ownerReferences"][0]["uid"], "u-1");
        assert_eq!(s["metadata"]["ownerReferences"][0]["kind"], "Job");
        // Over a Secret's 1 MiB: an error that says what to do.
        let huge = vec![("P".to_string(), vec![b'x'; SECRET_MAX])];
        let e = generate(
            from_template("agent-runner", &template()),
            &inputs(&[], &huge, false),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("1 MiB"), "{e}");
    }

    #[test]
    fn from_a_cronjob_keeps_its_settings_and_fills_the_rest() {
        let cj = json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "lobster-sweep", "namespace": "swarm"},
            "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"backoffLimit": 3,
              "template": {"spec": {"restartPolicy": "OnFailure",
                "containers": [{"name": "sweep", "image": "ghcr.io/acme/lobster:1", "args": ["sweep"]}]}}}}}});
        let spec = from_rendered(&cj).unwrap();
        let mut i = inputs(&[], &[], false);
        i.template = "lobster-sweep";
        i.image = None;
        let g = generate(spec, &i, None).unwrap();
        assert_eq!(g.job["metadata"]["name"], "lobster-sweep-x7k2q");
        assert_eq!(g.job["spec"]["backoffLimit"], 3);
        let pod = &g.job["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "OnFailure");
        assert_eq!(pod["containers"][0]["image"], "ghcr.io/acme/lobster:1");
        assert_eq!(pod["containers"][0]["name"], "sweep");
        assert_eq!(g.job["spec"]["ttlSecondsAfterFinished"], 300);
        let dep = json!({"kind": "Deployment", "metadata": {"name": "web"}});
        assert!(from_rendered(&dep)
            .unwrap_err()
            .to_string()
            .contains("cronjob/NAME"));
    }

    #[test]
    fn results_are_the_marked_lines() {
        let log = "starting\nSandboxExecutionResult {\"ok\":true,\"n\":2}\nnoise\nSandboxExecutionResult: done\n";
        assert_eq!(
            results(log, "SandboxExecutionResult"),
            vec![json!({"ok": true, "n": 2}), json!("done")]
        );
    }
}
