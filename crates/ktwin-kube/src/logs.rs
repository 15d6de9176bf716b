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
