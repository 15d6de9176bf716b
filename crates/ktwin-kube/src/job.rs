//! `ktwin run` and `ktwin jobs`: create a one-off Job (and the payload Secret it owns), follow
//! its pod's log, and report how it ended — the container's exit code, a deadline, a pod the
//! scheduler cannot place — as deploy explains rollouts. The Job is created (POST) under its
//! own field manager, never server-side applied as `ktwin`: a later deploy's prune leaves it
//! alone (prune takes only what ktwin applied); its TTL deletes it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::Client;
use serde::Serialize;
use serde_json::{json, Value};

use crate::logs::{poll_new, Line, Progress};
use crate::rollout::{explain, pod_problem, PodProblem};
use crate::{api_err, to_values, KubeError, LABEL_ENV, LABEL_PROJECT};

/// The field manager of the Jobs `ktwin run` creates (not `ktwin`: see the module doc).
pub const RUN_MANAGER: &str = "ktwin-run";
pub use ktwin_manifest::job::LABEL_RUN;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    Succeeded,
    Failed,
    /// `activeDeadlineSeconds` passed.
    DeadlineExceeded,
    /// ktwin stopped waiting (`--timeout`); the Job keeps running.
    TimedOut,
    /// Deleted at the user's request (Ctrl-C while attached).
    Cancelled,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ended {
    pub name: String,
    pub namespace: String,
    pub outcome: Outcome,
    /// The container's exit code, when it terminated.
    pub exit_code: Option<i32>,
    /// The Job's failure reason (`BackoffLimitExceeded`, `DeadlineExceeded`), or why ktwin
    /// stopped waiting.
    pub reason: Option<String>,
    /// The container's termination message (`terminationMessagePath`).
    pub termination_message: Option<String>,
    /// Lines that explain a pod that is stuck (unschedulable, image pull, config).
    pub problems: Vec<String>,
    /// The whole log, as followed (for the result marker).
    #[serde(skip)]
    pub log: String,
    pub seconds: f64,
}

/// What attach reports as it goes.
pub enum Progressed<'a> {
    Line(&'a Line),
    /// A stuck pod explained (said once per distinct explanation).
    Problem(&'a [String]),
}

/// Create the Job and, when it has one, the payload Secret it owns: the Job is created
/// suspended, the Secret then names the Job's uid as its owner, and the Job is resumed —
/// so no pod starts before its Secret exists, and the Secret goes with the Job.
pub async fn create(
    client: &Client,
    job: &Value,
    secret: Option<&Value>,
) -> Result<Value, KubeError> {
    let ns = job["metadata"]["namespace"].as_str().unwrap_or("default");
    let name = job["metadata"]["name"].as_str().unwrap_or("").to_string();
    let what = format!("job/{name} ({ns})");
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let mut body = job.clone();
    if secret.is_some() {
        body["spec"]["suspend"] = json!(true);
    }
    let typed: Job = serde_json::from_value(body).map_err(|e| KubeError::Api {
        object: what.clone(),
        message: format!("not a valid Job: {e}"),
    })?;
    let pp = PostParams {
        field_manager: Some(RUN_MANAGER.into()),
        ..Default::default()
    };
    let created = jobs
        .create(&pp, &typed)
        .await
        .map_err(|e| api_err(&what, &e))?;
    let created = serde_json::to_value(&created).unwrap_or_default();
    if let Some(s) = secret {
        let mut s = s.clone();
        ktwin_manifest::job::owned_by(&mut s, &created);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        let typed: Secret = serde_json::from_value(s).map_err(|e| KubeError::Api {
            object: what.clone(),
            message: format!("not a valid Secret: {e}"),
        })?;
        if let Err(e) = secrets.create(&pp, &typed).await {
            // Without its payload the run cannot start: take the Job back.
            let _ = jobs.delete(&name, &foreground()).await;
            return Err(api_err(format!("secret/{name}-payload ({ns})"), &e));
        }
        let resume = json!({"spec": {"suspend": false}});
        let resumed = jobs
            .patch(
                &name,
                &PatchParams {
                    field_manager: Some(RUN_MANAGER.into()),
                    ..Default::default()
                },
                &Patch::Merge(&resume),
            )
            .await;
        if let Err(e) = resumed {
            // A suspended Job never finishes, so its TTL would never remove it: take it back
            // (its Secret goes with it).
            let _ = jobs.delete(&name, &foreground()).await;
            return Err(api_err(&what, &e));
        }
    }
    Ok(created)
}

fn foreground() -> DeleteParams {
    DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        ..Default::default()
    }
}

/// Delete a run with its pods and Secret (propagation Foreground: the Job goes once they
/// have; a plain delete of a batch/v1 Job would orphan its pods).
pub async fn cancel(client: &Client, ns: &str, name: &str) -> Result<(), KubeError> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    jobs.delete(name, &foreground())
        .await
        .map_err(|e| api_err(format!("job/{name} ({ns})"), &e))?;
    Ok(())
}

/// The runs of a project's environment (every namespace), newest first.
pub async fn list(client: &Client, project: &str, env: &str) -> Result<Vec<Value>, KubeError> {
    let jobs: Api<Job> = Api::all(client.clone());
    let lp = ListParams::default().labels(&format!(
        "{LABEL_PROJECT}={project},{LABEL_ENV}={env},{}",
        ktwin_manifest::job::LABEL_JOB
    ));
    let l = jobs.list(&lp).await.map_err(|e| api_err("jobs", &e))?;
    let mut v = to_values(&l.items);
    v.sort_by(|a, b| {
        b["metadata"]["creationTimestamp"]
            .as_str()
            .cmp(&a["metadata"]["creationTimestamp"].as_str())
    });
    Ok(v)
}

/// A run's state in one word, from its status.
pub fn state(job: &Value) -> &'static str {
    let cond = |t: &str| {
        job["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == t && c["status"] == "True")
            .cloned()
    };
    if cond("Complete").is_some() {
        "succeeded"
    } else if let Some(c) = cond("Failed") {
        if c["reason"] == "DeadlineExceeded" {
            "deadline exceeded"
        } else {
            "failed"
        }
    } else if job["spec"]["suspend"] == true {
        "suspended"
    } else if job["status"]["active"].as_i64().unwrap_or(0) > 0 {
        "running"
    } else {
        "pending"
    }
}

async fn pods(client: &Client, ns: &str, name: &str) -> Result<Vec<Value>, KubeError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let l = api
        .list(&ListParams::default().labels(&format!("{LABEL_RUN}={name}")))
        .await
        .map_err(|e| api_err(format!("pods of job/{name}"), &e))?;
    let mut v = to_values(&l.items);
    v.sort_by(|a, b| {
        a["metadata"]["creationTimestamp"]
            .as_str()
            .cmp(&b["metadata"]["creationTimestamp"].as_str())
    });
    Ok(v)
}

/// How [`attach`] waits.
#[derive(Clone, Copy)]
pub struct Attach<'a> {
    /// Stop waiting after this long (the run keeps going); `None`: until it ends.
    pub timeout: Option<Duration>,
    /// How often the Job, its pods and their logs are read.
    pub poll: Duration,
    /// The local registry's `localhost:<port>/` (a pull error of its image gets a hint).
    pub registry_prefix: Option<&'a str>,
}

/// Follow a run until it ends, `timeout` passes (the Job keeps running) or `cancel`
/// resolves (the Job is deleted with its pods). The log is polled every `poll`, from the
/// last line seen; after the end, once more, so no line is lost.
pub async fn attach(
    client: &Client,
    ns: &str,
    name: &str,
    how: &Attach<'_>,
    cancel_requested: &mut tokio::sync::watch::Receiver<bool>,
    report: &(dyn Fn(Progressed<'_>) + Sync),
) -> Result<Ended, KubeError> {
    let Attach {
        timeout,
        poll,
        registry_prefix,
    } = *how;
    let started = Instant::now();
    let since = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_secs(1))
        .unwrap_or_else(|_| jiff::Timestamp::now());
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let what = format!("job/{name} ({ns})");
    let mut progress: BTreeMap<(String, String), Progress> = BTreeMap::new();
    let mut log = String::new();
    let mut said: BTreeSet<Vec<String>> = BTreeSet::new();
    let mut problems: Vec<String> = Vec::new();
    let end = |outcome: Outcome,
               reason: Option<String>,
               pod: Option<&Value>,
               log: String,
               problems: Vec<String>| {
        // The run's container is the first of the spec; statuses are listed by name, not in
        // spec order.
        let term = pod.and_then(|p| {
            let first = p["spec"]["containers"][0]["name"].as_str()?;
            p["status"]["containerStatuses"]
                .as_array()?
                .iter()
                .find(|c| c["name"] == first)
                .map(|c| c["state"]["terminated"].clone())
        });
        Ended {
            name: name.to_string(),
            namespace: ns.to_string(),
            outcome,
            exit_code: term
                .as_ref()
                .and_then(|t| t["exitCode"].as_i64())
                .map(|c| c as i32),
            reason,
            termination_message: term
                .as_ref()
                .and_then(|t| t["message"].as_str())
                .map(|m| m.trim_end().to_string())
                .filter(|m| !m.is_empty()),
            problems,
            log,
            seconds: started.elapsed().as_secs_f64(),
        }
    };
    loop {
        let job = jobs.get(name).await.map_err(|e| api_err(&what, &e))?;
        let job = serde_json::to_value(&job).unwrap_or_default();
        let ps = pods(client, ns, name).await?;
        // Logs of every started container, new lines only.
        for p in &ps {
            let started = matches!(
                p["status"]["phase"].as_str(),
                Some("Running" | "Succeeded" | "Failed")
            );
            if !started {
                continue;
            }
            let pod = p["metadata"]["name"].as_str().unwrap_or("");
            for c in p["spec"]["containers"].as_array().into_iter().flatten() {
                let container = c["name"].as_str().unwrap_or("");
                let pr = progress
                    .entry((pod.to_string(), container.to_string()))
                    .or_default();
                // A log that cannot be read now is asked again at the next poll.
                if let Ok(lines) = poll_new(client, ns, pod, container, since, pr).await {
                    for l in &lines {
                        log.push_str(&l.text);
                        log.push('\n');
                        report(Progressed::Line(l));
                    }
                }
            }
        }
        for p in &ps {
            if let Some(problem) = pod_problem(p) {
                // A crash of a Never-restart pod is the run's failure, reported at the end.
                if matches!(problem, PodProblem::Crash { .. }) {
                    continue;
                }
                let lines = explain(
                    p["metadata"]["name"].as_str().unwrap_or(""),
                    &problem,
                    &[],
                    None,
                    registry_prefix,
                );
                if said.insert(lines.clone()) {
                    report(Progressed::Problem(&lines));
                    problems.extend(lines);
                }
            }
        }
        let state = state(&job);
        let last_pod = ps.last();
        let failed_reason = job["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Failed" && c["status"] == "True")
            .and_then(|c| c["reason"].as_str())
            .map(str::to_string);
        match state {
            "succeeded" => return Ok(end(Outcome::Succeeded, None, last_pod, log, problems)),
            "deadline exceeded" => {
                return Ok(end(
                    Outcome::DeadlineExceeded,
                    failed_reason,
                    last_pod,
                    log,
                    problems,
                ))
            }
            "failed" => return Ok(end(Outcome::Failed, failed_reason, last_pod, log, problems)),
            _ => {}
        }
        if timeout.is_some_and(|t| started.elapsed() >= t) {
            let why = format!(
                "ktwin stopped waiting after {}s; the job keeps running (`ktwin jobs cancel {name}` deletes it)",
                timeout.map(|t| t.as_secs()).unwrap_or(0)
            );
            return Ok(end(Outcome::TimedOut, Some(why), last_pod, log, problems));
        }
        let cancelled = tokio::select! {
            _ = tokio::time::sleep(poll) => false,
            r = cancel_requested.wait_for(|v| *v) => match r {
                Ok(_) => true,
                // No one can ask any more: never a cancel.
                Err(_) => {
                    tokio::time::sleep(poll).await;
                    false
                }
            },
        };
        if cancelled {
            cancel(client, ns, name).await?;
            return Ok(end(
                Outcome::Cancelled,
                Some("cancelled (Ctrl-C): the job and its pods are deleted".into()),
                last_pod,
                log,
                problems,
            ));
        }
    }
}

/// The run's pods' whole logs (`ktwin jobs logs`), oldest pod first.
pub async fn logs(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<Vec<(String, String)>, KubeError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut out = Vec::new();
    for p in pods(client, ns, name).await? {
        let pod = p["metadata"]["name"].as_str().unwrap_or("").to_string();
        for c in p["spec"]["containers"].as_array().into_iter().flatten() {
            let lp = kube::api::LogParams {
                container: c["name"].as_str().map(str::to_string),
                ..Default::default()
            };
            let text = api
                .logs(&pod, &lp)
                .await
                .map_err(|e| api_err(format!("pod/{pod}"), &e))?;
            out.push((pod.clone(), text));
        }
    }
    Ok(out)
}
