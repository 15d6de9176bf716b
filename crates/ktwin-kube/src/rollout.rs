//! Pure rollout logic: when is a workload rolled out (the rules `kubectl rollout status`
//! uses), and why is it stuck (read from its pods, their events and logs).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    Done(String),
    Waiting(String),
    /// The controller gave up (Deployment progress deadline exceeded).
    Failed(String),
}

fn int(v: &Value, p: &str) -> i64 {
    v.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

/// The workload kinds ktwin waits for.
pub fn is_workload(kind: &str) -> bool {
    matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet")
}

/// The rollout state of a Deployment, StatefulSet or DaemonSet.
pub fn state(obj: &Value) -> Rollout {
    let kind = obj["kind"].as_str().unwrap_or("");
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let gen = int(obj, "/metadata/generation");
    let observed = int(obj, "/status/observedGeneration");
    if obj.pointer("/status/observedGeneration").is_none() || observed < gen {
        return Rollout::Waiting("waiting for the controller to observe the new spec".into());
    }
    match kind {
        "Deployment" => {
            let conds = obj["status"]["conditions"].as_array();
            if let Some(c) = conds
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded")
            {
                return Rollout::Failed(format!(
                    "deployment \"{name}\" exceeded its progress deadline: {}",
                    c["message"].as_str().unwrap_or("")
                ));
            }
            let want = obj["spec"]["replicas"].as_i64().unwrap_or(1);
            let updated = int(obj, "/status/updatedReplicas");
            let total = int(obj, "/status/replicas");
            let available = int(obj, "/status/availableReplicas");
            if updated < want {
                Rollout::Waiting(format!("{updated} of {want} updated replicas"))
            } else if total > updated {
                Rollout::Waiting(format!(
                    "{} old replicas are pending termination",
                    total - updated
                ))
            } else if available < updated {
                Rollout::Waiting(format!(
                    "{available} of {updated} updated replicas available"
                ))
            } else {
                Rollout::Done(format!("{available}/{want} available"))
            }
        }
        "StatefulSet" => {
            let want = obj["spec"]["replicas"].as_i64().unwrap_or(1);
            let ready = int(obj, "/status/readyReplicas");
            if ready < want {
                return Rollout::Waiting(format!("{ready} of {want} pods ready"));
            }
            let rolling = obj["spec"]["updateStrategy"]["type"]
                .as_str()
                .unwrap_or("RollingUpdate")
                == "RollingUpdate";
            if !rolling {
                return Rollout::Done(format!("{ready}/{want} ready (OnDelete)"));
            }
            let partition = int(obj, "/spec/updateStrategy/rollingUpdate/partition");
            if partition > 0 {
                let updated = int(obj, "/status/updatedReplicas");
                let expected = want - partition;
                if updated < expected {
                    return Rollout::Waiting(format!(
                        "{updated} of {expected} pods updated (partition {partition})"
                    ));
                }
                return Rollout::Done(format!("{updated} updated (partition {partition})"));
            }
            let cur = obj["status"]["currentRevision"].as_str();
            let upd = obj["status"]["updateRevision"].as_str();
            if cur != upd {
                let updated = int(obj, "/status/updatedReplicas");
                return Rollout::Waiting(format!(
                    "{updated} of {want} pods at revision {}",
                    upd.unwrap_or("?")
                ));
            }
            Rollout::Done(format!("{ready}/{want} ready"))
        }
        "DaemonSet" => {
            let desired = int(obj, "/status/desiredNumberScheduled");
            let updated = int(obj, "/status/updatedNumberScheduled");
            let available = int(obj, "/status/numberAvailable");
            if updated < desired {
                Rollout::Waiting(format!("{updated} of {desired} updated pods scheduled"))
            } else if available < desired {
                Rollout::Waiting(format!("{available} of {desired} updated pods available"))
            } else {
                Rollout::Done(format!("{available}/{desired} available"))
            }
        }
        _ => Rollout::Done(String::new()),
    }
}

/// A label selector string for a workload's `spec.selector.matchLabels`.
pub fn selector(obj: &Value) -> Option<String> {
    let m = obj["spec"]["selector"]["matchLabels"].as_object()?;
    if m.is_empty() {
        return None;
    }
    Some(
        m.iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// What a stuck pod shows, and what else must be fetched to explain it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodProblem {
    /// The image cannot be pulled.
    Pull {
        container: String,
        image: String,
        reason: String,
        message: String,
    },
    /// The container keeps exiting: its previous run's log explains it.
    Crash {
        container: String,
        restarts: i64,
        exit: Option<String>,
    },
    /// The scheduler cannot place it.
    Unschedulable(String),
    /// Running, not ready: a readiness probe fails.
    NotReady { container: String, probe: String },
    /// Waiting for another reason (CreateContainerConfigError names a missing Secret key, …).
    Waiting {
        container: String,
        reason: String,
        message: String,
    },
}

fn describe_probe(p: &Value) -> String {
    if let Some(h) = p.get("httpGet") {
        let port = match &h["port"] {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        format!(
            "httpGet {}:{}",
            h["path"].as_str().unwrap_or("/"),
            port.trim_matches('"')
        )
    } else if let Some(t) = p.get("tcpSocket") {
        format!("tcpSocket :{}", t["port"].to_string().trim_matches('"'))
    } else if let Some(e) = p.get("exec") {
        let cmd: Vec<&str> = e["command"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        format!("exec {}", cmd.join(" "))
    } else if p.get("grpc").is_some() {
        "grpc".into()
    } else {
        "probe".into()
    }
}

/// Classify one pod. `None` means it looks fine.
pub fn pod_problem(pod: &Value) -> Option<PodProblem> {
    let statuses = pod["status"]["containerStatuses"].as_array();
    for cs in statuses.into_iter().flatten() {
        let container = cs["name"].as_str().unwrap_or("").to_string();
        let waiting = &cs["state"]["waiting"];
        let reason = waiting["reason"].as_str().unwrap_or("");
        let message = waiting["message"].as_str().unwrap_or("").to_string();
        match reason {
            "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName" | "ErrImageNeverPull" => {
                return Some(PodProblem::Pull {
                    container,
                    image: cs["image"].as_str().unwrap_or("").to_string(),
                    reason: reason.into(),
                    message,
                })
            }
            "CrashLoopBackOff" => {
                let term = &cs["lastState"]["terminated"];
                let exit = term["exitCode"]
                    .as_i64()
                    .map(|c| match term["reason"].as_str() {
                        Some(r) => format!("exit code {c} ({r})"),
                        None => format!("exit code {c}"),
                    });
                return Some(PodProblem::Crash {
                    container,
                    restarts: cs["restartCount"].as_i64().unwrap_or(0),
                    exit,
                });
            }
            "" | "ContainerCreating" | "PodInitializing" => {}
            _ => {
                return Some(PodProblem::Waiting {
                    container,
                    reason: reason.into(),
                    message,
                })
            }
        }
    }
    let conds = pod["status"]["conditions"].as_array();
    if let Some(c) = conds
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "PodScheduled" && c["status"] == "False")
    {
        return Some(PodProblem::Unschedulable(
            c["message"]
                .as_str()
                .unwrap_or("the scheduler gave no reason")
                .into(),
        ));
    }
    for cs in statuses.into_iter().flatten() {
        if cs["state"].get("running").is_some() && cs["ready"] == false {
            let name = cs["name"].as_str().unwrap_or("");
            let spec = pod["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["name"] == name);
            if let Some(p) = spec.and_then(|c| c.get("readinessProbe")) {
                return Some(PodProblem::NotReady {
                    container: name.into(),
                    probe: describe_probe(p),
                });
            }
        }
    }
    None
}

/// The lines that explain one stuck pod. `events` are the pod's events (newest last);
/// `previous_log` the tail of the crashed container's previous run.
pub fn explain(
    pod_name: &str,
    problem: &PodProblem,
    events: &[Value],
    previous_log: Option<&str>,
    registry_prefix: Option<&str>,
) -> Vec<String> {
    let mut out = Vec::new();
    match problem {
        PodProblem::Pull {
            container,
            image,
            reason,
            message,
        } => {
            out.push(format!(
                "pod {pod_name}: {reason}: container {container} cannot pull {image}"
            ));
            if !message.is_empty() {
                out.push(format!("  {message}"));
            }
            if registry_prefix.is_some_and(|p| image.starts_with(p)) {
                out.push(
                    "  help: the image lives in ktwin's registry; `ktwin build` pushes it and `ktwin images verify` checks the nodes can pull".into(),
                );
            }
        }
        PodProblem::Crash {
            container,
            restarts,
            exit,
        } => {
            out.push(format!(
                "pod {pod_name}: CrashLoopBackOff: container {container} restarted {restarts} times{}",
                exit.as_ref().map(|e| format!(", last {e}")).unwrap_or_default()
            ));
            match previous_log {
                Some(l) if !l.trim().is_empty() => {
                    out.push("  last log lines:".into());
                    out.extend(l.lines().map(|x| format!("  | {x}")));
                }
                _ => out.push("  (the previous run left no log lines)".into()),
            }
        }
        PodProblem::Unschedulable(m) => {
            out.push(format!("pod {pod_name}: Pending: {m}"));
        }
        PodProblem::NotReady { container, probe } => {
            out.push(format!(
                "pod {pod_name}: container {container} runs but is not ready: readiness probe {probe}"
            ));
            if let Some(e) = events
                .iter()
                .rev()
                .find(|e| e["reason"] == "Unhealthy")
                .and_then(|e| e["message"].as_str())
            {
                out.push(format!("  {e}"));
                if e.contains("statuscode: 401") || e.contains("statuscode: 403") {
                    out.push("  help: the probe path is behind authentication; probe an unauthenticated health path".into());
                }
            }
        }
        PodProblem::Waiting {
            container,
            reason,
            message,
        } => {
            out.push(format!(
                "pod {pod_name}: container {container} is waiting: {reason}"
            ));
            if !message.is_empty() {
                out.push(format!("  {message}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(gen: i64, status: Value) -> Value {
        json!({"kind": "Deployment", "metadata": {"name": "web", "generation": gen},
            "spec": {"replicas": 2}, "status": status})
    }

    #[test]
    fn deployment_follows_kubectl_rules() {
        assert!(
            matches!(state(&deploy(2, json!({"observedGeneration": 1}))), Rollout::Waiting(m) if m.contains("observe"))
        );
        let s = json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 2});
        assert_eq!(
            state(&deploy(2, s)),
            Rollout::Waiting("1 of 2 updated replicas".into())
        );
        let s = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2});
        assert_eq!(
            state(&deploy(2, s)),
            Rollout::Waiting("1 old replicas are pending termination".into())
        );
        let s = json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1});
        assert_eq!(
            state(&deploy(2, s)),
            Rollout::Waiting("1 of 2 updated replicas available".into())
        );
        let s = json!({"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2});
        assert_eq!(state(&deploy(2, s)), Rollout::Done("2/2 available".into()));
        let s = json!({"observedGeneration": 2, "conditions": [{"type": "Progressing",
            "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet has timed out"}]});
        assert!(matches!(state(&deploy(2, s)), Rollout::Failed(m) if m.contains("timed out")));
    }

    #[test]
    fn statefulset_and_daemonset() {
        let ss = |status: Value, strategy: Value| {
            json!({"kind": "StatefulSet", "metadata": {"name": "db", "generation": 1},
                "spec": {"replicas": 2, "updateStrategy": strategy}, "status": status})
        };
        let s = json!({"observedGeneration": 1, "readyReplicas": 2, "updatedReplicas": 1,
            "currentRevision": "a", "updateRevision": "b"});
        assert!(
            matches!(state(&ss(s.clone(), json!({}))), Rollout::Waiting(m) if m.contains("revision b"))
        );
        assert!(matches!(
            state(&ss(s.clone(), json!({"type": "OnDelete"}))),
            Rollout::Done(_)
        ));
        let part = json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 1}});
        assert!(matches!(state(&ss(s, part)), Rollout::Done(_)));
        let ds = json!({"kind": "DaemonSet", "metadata": {"name": "agent", "generation": 1},
            "status": {"observedGeneration": 1, "desiredNumberScheduled": 3,
                "updatedNumberScheduled": 3, "numberAvailable": 2}});
        assert_eq!(
            state(&ds),
            Rollout::Waiting("2 of 3 updated pods available".into())
        );
    }

    fn pod(cs: Value, extra: Value) -> Value {
        let mut p = json!({"metadata": {"name": "web-1"},
            "spec": {"containers": [{"name": "app", "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}}}]},
            "status": {"containerStatuses": [cs]}});
        if let Some(c) = extra.get("conditions") {
            p["status"]["conditions"] = c.clone();
        }
        p
    }

    #[test]
    fn pull_crash_pending_and_probe_are_told_apart() {
        let p = pod(
            json!({"name": "app", "image": "localhost:5001/web:abc", "ready": false,
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}),
            json!({}),
        );
        let prob = pod_problem(&p).unwrap();
        let lines = explain("web-1", &prob, &[], None, Some("localhost:5001/"));
        assert_eq!(
            lines[0],
            "pod web-1: ImagePullBackOff: container app cannot pull localhost:5001/web:abc"
        );
        assert!(lines[2].contains("ktwin build"));

        let p = pod(
            json!({"name": "app", "restartCount": 4, "ready": false,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}),
            json!({}),
        );
        let lines = explain(
            "web-1",
            &pod_problem(&p).unwrap(),
            &[],
            Some("boot\npanic: no DB_URL\n"),
            None,
        );
        assert_eq!(lines[0], "pod web-1: CrashLoopBackOff: container app restarted 4 times, last exit code 1 (Error)");
        assert_eq!(
            lines[2..],
            ["  | boot".to_string(), "  | panic: no DB_URL".to_string()]
        );

        let p = pod(
            json!({"name": "app", "ready": false, "state": {"waiting": {"reason": "ContainerCreating"}}}),
            json!({"conditions": [{"type": "PodScheduled", "status": "False",
                "message": "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."}]}),
        );
        assert_eq!(
            explain("web-1", &pod_problem(&p).unwrap(), &[], None, None),
            ["pod web-1: Pending: 0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."]
        );

        let p = pod(
            json!({"name": "app", "ready": false, "state": {"running": {}}}),
            json!({}),
        );
        let ev = [
            json!({"reason": "Unhealthy", "message": "Readiness probe failed: HTTP probe failed with statuscode: 401"}),
        ];
        let lines = explain("web-1", &pod_problem(&p).unwrap(), &ev, None, None);
        assert_eq!(
            lines[0],
            "pod web-1: container app runs but is not ready: readiness probe httpGet /healthz:8080"
        );
        assert!(lines[2].contains("behind authentication"));

        let fine = pod(
            json!({"name": "app", "ready": true, "state": {"running": {}}}),
            json!({}),
        );
        assert_eq!(pod_problem(&fine), None);
    }
}
