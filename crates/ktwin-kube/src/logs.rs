//! `ktwin logs` and `ktwin restart`.

use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams, Patch, PatchParams};
use serde_json::{json, Value};

use crate::rollout::is_workload;
use crate::{describe, Discovery, KubeError};

/// The field manager of restarts: kept apart from `ktwin`'s applies so the next deploy
/// neither conflicts with nor removes the restart annotation.
pub const RESTART_MANAGER: &str = "ktwin-restart";
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// Pure: the rendered workloads a name picks (`web`, or `deployment/web` when ambiguous).
pub fn pick<'a>(rendered: &'a [Value], name: Option<&str>) -> Result<Vec<&'a Value>, KubeError> {
    let all: Vec<&Value> = rendered
        .iter()
        .filter(|d| is_workload(d["kind"].as_str().unwrap_or("")))
        .collect();
    let Some(name) = name else {
        return Ok(all);
    };
    let (kind, n) = match name.split_once('/') {
        Some((k, n)) => (Some(k.to_lowercase()), n),
        None => (None, name),
    };
    let hits: Vec<&Value> = all
        .into_iter()
        .filter(|d| d["metadata"]["name"] == n)
        .filter(|d| {
            kind.as_deref().is_none_or(|k| {
                let dk = d["kind"].as_str().unwrap_or("").to_lowercase();
                dk == k
                    || (k == "deploy" && dk == "deployment")
                    || (k == "sts" && dk == "statefulset")
                    || (k == "ds" && dk == "daemonset")
            })
        })
        .collect();
    if hits.is_empty() {
        return Err(KubeError::NoWorkload(name.into()));
    }
    Ok(hits)
}

/// One log source: a container of a pod of a workload.
#[derive(Debug, Clone)]
pub struct Source {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// Index of the pod among all pods shown (for colours).
    pub pod_index: usize,
}

impl Source {
    pub fn label(&self) -> String {
        format!("pod/{} ({})", self.pod, self.namespace)
    }
}

pub async fn sources(
    client: &kube::Client,
    workloads: &[&Value],
) -> Result<Vec<Source>, KubeError> {
    let mut out = Vec::new();
    let mut pod_index = 0;
    for w in workloads {
        let ns = w["metadata"]["namespace"].as_str().unwrap_or("default");
        let pods = crate::pods_of(client, w)
            .await
            .map_err(|e| crate::api_err(describe(w), &e))?
            .unwrap_or_default();
        for v in pods {
            let pod = v["metadata"]["name"].as_str().unwrap_or("").to_string();
            for c in v["spec"]["containers"].as_array().into_iter().flatten() {
                out.push(Source {
                    namespace: ns.into(),
                    pod: pod.clone(),
                    container: c["name"].as_str().unwrap_or("").into(),
                    pod_index,
                });
            }
            pod_index += 1;
        }
    }
    Ok(out)
}

/// Print every source's lines through `line(source, text)`; with `follow`, interleaved as
/// they arrive until every stream ends.
pub async fn stream(
    client: &kube::Client,
    srcs: &[Source],
    follow: bool,
    since_seconds: Option<i64>,
    line: &dyn Fn(&Source, &str),
) -> Result<(), KubeError> {
    let params = |s: &Source| LogParams {
        container: Some(s.container.clone()),
        follow,
        since_seconds,
        ..Default::default()
    };
    if !follow {
        for s in srcs {
            let api: Api<Pod> = Api::namespaced(client.clone(), &s.namespace);
            let text = api
                .logs(&s.pod, &params(s))
                .await
                .map_err(|e| crate::api_err(s.label(), &e))?;
            for l in text.lines() {
                line(s, l);
            }
        }
        return Ok(());
    }
    let mut streams = Vec::new();
    for (i, s) in srcs.iter().enumerate() {
        let api: Api<Pod> = Api::namespaced(client.clone(), &s.namespace);
        let r = api
            .log_stream(&s.pod, &params(s))
            .await
            .map_err(|e| crate::api_err(s.label(), &e))?;
        streams.push(r.lines().map(move |l| (i, l)).boxed());
    }
    let mut all = futures::stream::select_all(streams);
    while let Some((i, l)) = all.next().await {
        if let Ok(l) = l {
            line(&srcs[i], &l);
        }
    }
    Ok(())
}

/// `kubectl rollout restart`: stamp the pod template so the controller replaces every pod.
pub async fn restart(disc: &mut Discovery, w: &Value, at: &str) -> Result<(), KubeError> {
    let api = disc.api_for(w).await?;
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: at}}}}});
    let pp = PatchParams {
        field_manager: Some(RESTART_MANAGER.into()),
        ..Default::default()
    };
    api.patch(
        w["metadata"]["name"].as_str().unwrap_or(""),
        &pp,
        &Patch::Merge(&patch),
    )
    .await
    .map_err(|e| crate::api_err(describe(w), &e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_by_name_or_kind_slash_name() {
        let docs = vec![
            json!({"kind": "Deployment", "metadata": {"name": "web"}}),
            json!({"kind": "StatefulSet", "metadata": {"name": "web"}}),
            json!({"kind": "Service", "metadata": {"name": "web"}}),
            json!({"kind": "DaemonSet", "metadata": {"name": "agent"}}),
        ];
        assert_eq!(pick(&docs, None).unwrap().len(), 3);
        assert_eq!(pick(&docs, Some("web")).unwrap().len(), 2);
        assert_eq!(
            pick(&docs, Some("sts/web")).unwrap()[0]["kind"],
            "StatefulSet"
        );
        assert_eq!(
            pick(&docs, Some("deployment/web")).unwrap()[0]["kind"],
            "Deployment"
        );
        assert_eq!(
            pick(&docs, Some("nope")).unwrap_err().to_string(),
            "no workload named `nope` in the rendered environment"
        );
    }
}

/// One line a session follower saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// The kubelet's timestamp of the line (RFC 3339).
    pub at: String,
    pub text: String,
}

/// `2026-12-01T10:00:00.123456789Z text` → (timestamp, text), as `timestamps=true` gives it.
pub fn split_timestamp(l: &str) -> Option<(jiff::Timestamp, &str)> {
    let (ts, rest) = l.split_once(' ').unwrap_or((l, ""));
    Some((ts.parse().ok()?, rest))
}

/// Where each followed container's stream got to: the last line's timestamp and the texts
/// seen at exactly that instant (a reconnect's `sinceTime` is rounded down to the second, so
/// the lines since then come again and are recognised).
/// The kubelet's sinceTime filter is inclusive.
#[derive(Debug, Default)]
pub struct Progress {
    last: Option<jiff::Timestamp>,
    at_last: Vec<String>,
}

impl Progress {
    /// Whether this line is new; records it.
    pub fn fresh(&mut self, ts: jiff::Timestamp, text: &str) -> bool {
        match self.last {
            Some(l) if ts < l => false,
            Some(l) if ts == l => {
                if self.at_last.iter().any(|t| t == text) {
                    return false;
                }
                self.at_last.push(text.to_string());
                true
            }
            _ => {
                self.last = Some(ts);
                self.at_last = vec![text.to_string()];
                true
            }
        }
    }
}

type Key = (String, String, String);

/// The lines of one container not seen yet (per `p`), asked without follow: from the last
/// line's time (less a second: kube rounds `sinceTime` to the second), or from `since`.
pub async fn poll_new(
    client: &kube::Client,
    ns: &str,
    pod: &str,
    container: &str,
    since: jiff::Timestamp,
    p: &mut Progress,
) -> Result<Vec<Line>, kube::Error> {
    let from = p.last.unwrap_or(since);
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let lp = LogParams {
        container: Some(container.to_string()),
        timestamps: true,
        since_time: Some(
            from.checked_sub(jiff::SignedDuration::from_secs(1))
                .unwrap_or(from),
        ),
        ..Default::default()
    };
    let text = api.logs(pod, &lp).await?;
    let mut out = Vec::new();
    for l in text.lines() {
        let Some((ts, t)) = split_timestamp(l) else {
            continue;
        };
        if ts >= since && p.fresh(ts, t) {
            out.push(Line {
                namespace: ns.to_string(),
                pod: pod.to_string(),
                container: container.to_string(),
                at: ts.to_string(),
                text: t.to_string(),
            });
        }
    }
    Ok(out)
}

/// Follow every container of the pods of `workloads` (which the caller replaces after each
/// deploy) until `stop` resolves: a new pod is picked up within `poll`; a stream that ends
/// (the container restarted, the pod was replaced, the connection dropped) is reopened from
/// its last line's timestamp, and no line is shown twice or skipped. Lines before `since` are
/// not shown. Errors listing pods are retried at the next poll.
pub async fn follow_session(
    client: kube::Client,
    mut workloads: tokio::sync::watch::Receiver<Vec<Value>>,
    since: jiff::Timestamp,
    poll: std::time::Duration,
    line: std::sync::Arc<dyn Fn(Line) + Send + Sync>,
) {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::{Arc, Mutex};
    let progress: Arc<Mutex<BTreeMap<Key, Progress>>> = Arc::default();
    let active: Arc<Mutex<BTreeSet<Key>>> = Arc::default();
    loop {
        let ws = workloads.borrow_and_update().clone();
        for w in &ws {
            let Ok(Some(pods)) = crate::pods_of(&client, w).await else {
                continue;
            };
            for p in pods {
                // A container that has not started has no log yet.
                let started = matches!(
                    p["status"]["phase"].as_str(),
                    Some("Running" | "Succeeded" | "Failed")
                );
                if !started || !p["metadata"]["deletionTimestamp"].is_null() {
                    continue;
                }
                let ns = p["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("default")
                    .to_string();
                let pod = p["metadata"]["name"].as_str().unwrap_or("").to_string();
                for c in p["spec"]["containers"].as_array().into_iter().flatten() {
                    let container = c["name"].as_str().unwrap_or("").to_string();
                    let key = (ns.clone(), pod.clone(), container.clone());
                    if !active
                        .lock()
                        .map(|mut a| a.insert(key.clone()))
                        .unwrap_or(false)
                    {
                        continue;
                    }
                    let from = progress
                        .lock()
                        .ok()
                        .and_then(|p| p.get(&key).and_then(|x| x.last))
                        .unwrap_or(since);
                    let (client, progress, active, line) = (
                        client.clone(),
                        progress.clone(),
                        active.clone(),
                        line.clone(),
                    );
                    tokio::spawn(async move {
                        let api: Api<Pod> = Api::namespaced(client, &key.0);
                        let lp = LogParams {
                            container: Some(key.2.clone()),
                            follow: true,
                            timestamps: true,
                            // kube rounds sinceTime to the second (up, from .5): a second
                            // earlier loses nothing; what comes twice is recognised.
                            since_time: Some(
                                from.checked_sub(jiff::SignedDuration::from_secs(1))
                                    .unwrap_or(from),
                            ),
                            ..Default::default()
                        };
                        if let Ok(r) = api.log_stream(&key.1, &lp).await {
                            let mut lines = r.lines();
                            while let Some(Ok(l)) = lines.next().await {
                                let Some((ts, text)) = split_timestamp(&l) else {
                                    continue;
                                };
                                if ts < since {
                                    continue;
                                }
                                let fresh = progress
                                    .lock()
                                    .map(|mut p| p.entry(key.clone()).or_default().fresh(ts, text))
                                    .unwrap_or(false);
                                if fresh {
                                    line(Line {
                                        namespace: key.0.clone(),
                                        pod: key.1.clone(),
                                        container: key.2.clone(),
                                        at: ts.to_string(),
                                        text: text.to_string(),
                                    });
                                }
                            }
                        }
                        if let Ok(mut a) = active.lock() {
                            a.remove(&key);
                        }
                    });
                }
            }
        }
        // Wake early when the workloads change (a deploy), else poll.
        let _ = tokio::time::timeout(poll, workloads.changed()).await;
    }
}

#[cfg(test)]
mod follow_tests {
    use super::*;

    #[test]
    fn a_reconnect_repeats_nothing_and_loses_nothing() {
        let t = |s: &str| -> jiff::Timestamp { s.parse().unwrap() };
        let mut p = Progress::default();
        assert!(p.fresh(t("2026-12-01T10:00:00.1Z"), "a"));
        assert!(p.fresh(t("2026-12-01T10:00:00.2Z"), "b"));
        assert!(
            p.fresh(t("2026-12-01T10:00:00.2Z"), "c"),
            "same instant, other text"
        );
        // The reconnect from 10:00:00 sends a, b, c again, then d.
        assert!(!p.fresh(t("2026-12-01T10:00:00.1Z"), "a"));
        assert!(!p.fresh(t("2026-12-01T10:00:00.2Z"), "b"));
        assert!(!p.fresh(t("2026-12-01T10:00:00.2Z"), "c"));
        assert!(p.fresh(t("2026-12-01T10:00:01Z"), "d"));
        assert_eq!(
            split_timestamp("2026-12-01T10:00:00.123456789Z hello world").map(|(_, x)| x),
            Some("hello world")
        );
        assert!(split_timestamp("no timestamp").is_none());
    }
}
