//! `ktwin status`: nodes against ktwin.yaml, workloads of the environment, health checks.

use std::time::{Duration, Instant};

use ktwin_config::desired::{NodeFix, NodeSpec};
use ktwin_config::HealthCheck;
use kube::api::{Api, ListParams};
use serde::Serialize;
use serde_json::Value;

use crate::rollout::{self, Rollout};
use crate::{describe, Discovery, KubeError};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    pub name: String,
    pub ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    pub cordoned: bool,
    /// What differs from ktwin.yaml (missing labels or taints; a node that is absent).
    pub drift: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    pub object: String,
    pub ready: i64,
    pub desired: i64,
    pub restarts: i64,
    pub age: String,
    pub rolled_out: bool,
    /// Why it is not ready (pods' errors), empty when healthy.
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    pub name: String,
    pub ok: bool,
    pub latency_ms: f64,
    pub detail: String,
}

/// Pure: how a node differs from what its pool in ktwin.yaml declares (labels, taints).
pub fn node_drift(want: &NodeSpec, node: &Value) -> Vec<String> {
    want.diff(node, false)
        .iter()
        .filter(|f| f.is_pool_drift())
        .map(NodeFix::drift)
        .collect()
}

pub fn node_ready(node: &Value) -> bool {
    node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Pure: one row per expected node (absent nodes included) plus unexpected ones.
pub fn nodes_status(wants: &[NodeSpec], nodes: &[Value]) -> Vec<NodeStatus> {
    let mut out = Vec::new();
    for w in wants {
        let Some(name) = &w.node else { continue };
        match nodes
            .iter()
            .find(|n| n["metadata"]["name"] == name.as_str())
        {
            Some(n) => out.push(NodeStatus {
                name: name.clone(),
                ready: node_ready(n),
                pool: w.pool.clone(),
                cordoned: n["spec"]["unschedulable"] == true,
                drift: node_drift(w, n),
            }),
            None => out.push(NodeStatus {
                name: name.clone(),
                ready: false,
                pool: w.pool.clone(),
                cordoned: false,
                drift: vec!["not in the cluster".into()],
            }),
        }
    }
    for n in nodes {
        let name = n["metadata"]["name"].as_str().unwrap_or("");
        if !wants.iter().any(|w| w.node.as_deref() == Some(name)) {
            out.push(NodeStatus {
                name: name.into(),
                ready: node_ready(n),
                pool: None,
                cordoned: n["spec"]["unschedulable"] == true,
                drift: vec!["not declared in ktwin.yaml".into()],
            });
        }
    }
    out
}

/// `3d`, `5h`, `12m`, `40s` since an RFC 3339 timestamp.
pub fn age(created: Option<&str>, now: jiff::Timestamp) -> String {
    let Some(t) = created.and_then(|c| c.parse::<jiff::Timestamp>().ok()) else {
        return "?".into();
    };
    let s = (now.as_second() - t.as_second()).max(0);
    match s {
        s if s >= 86400 => format!("{}d", s / 86400),
        s if s >= 3600 => format!("{}h", s / 3600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Pure: the container restarts of `pods`, summed.
pub fn restarts<'a>(pods: impl IntoIterator<Item = &'a Value>) -> i64 {
    pods.into_iter()
        .flat_map(|p| {
            p["status"]["containerStatuses"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .filter_map(|c| c["restartCount"].as_i64())
        .sum()
}

/// Pure: a workload's row from its object and its pods.
pub fn workload_status(obj: &Value, pods: &[Value], now: jiff::Timestamp) -> WorkloadStatus {
    let (ready, desired) = match obj["kind"].as_str() {
        Some("DaemonSet") => (
            obj["status"]["numberReady"].as_i64().unwrap_or(0),
            obj["status"]["desiredNumberScheduled"]
                .as_i64()
                .unwrap_or(0),
        ),
        _ => (
            obj["status"]["readyReplicas"].as_i64().unwrap_or(0),
            obj["spec"]["replicas"].as_i64().unwrap_or(1),
        ),
    };
    let restarts = restarts(pods);
    WorkloadStatus {
        object: describe(obj),
        ready,
        desired,
        restarts,
        age: age(obj["metadata"]["creationTimestamp"].as_str(), now),
        rolled_out: matches!(rollout::state(obj), Rollout::Done(_)),
        problems: vec![],
    }
}

/// Observe nodes.
pub async fn nodes(disc: &mut Discovery, wants: &[NodeSpec]) -> Result<Vec<NodeStatus>, KubeError> {
    let api: Api<k8s_openapi::api::core::v1::Node> = Api::all(disc.client().clone());
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| crate::api_err("nodes", &e))?;
    Ok(nodes_status(wants, &crate::to_values(&list.items)))
}

/// Observe the rendered workloads (Deployments, StatefulSets, DaemonSets).
pub async fn workloads(
    disc: &mut Discovery,
    rendered: &[Value],
    registry_prefix: Option<&str>,
) -> Result<Vec<WorkloadStatus>, KubeError> {
    let now = jiff::Timestamp::now();
    let mut out = Vec::new();
    for w in rendered
        .iter()
        .filter(|d| rollout::is_workload(d["kind"].as_str().unwrap_or("")))
    {
        let api = disc.api_for(w).await?;
        let name = w["metadata"]["name"].as_str().unwrap_or("");
        let Some(obj) = api
            .get_opt(name)
            .await
            .map_err(|e| crate::api_err(describe(w), &e))?
        else {
            out.push(WorkloadStatus {
                object: describe(w),
                ready: 0,
                desired: w["spec"]["replicas"].as_i64().unwrap_or(1),
                restarts: 0,
                age: "-".into(),
                rolled_out: false,
                problems: vec!["not deployed: `ktwin deploy` applies it".into()],
            });
            continue;
        };
        let mut v = serde_json::to_value(&obj).unwrap_or_default();
        v["apiVersion"] = w["apiVersion"].clone();
        v["kind"] = w["kind"].clone();
        let listed = crate::pods_of(disc.client(), &v).await;
        let pods = listed.as_ref().ok().cloned().flatten().unwrap_or_default();
        let mut s = workload_status(&v, &pods, now);
        if !s.rolled_out || s.ready < s.desired {
            s.problems = crate::deploy::explain_listed(disc, &v, &listed, registry_prefix).await;
        }
        out.push(s);
    }
    Ok(out)
}

fn timed(name: &str, f: impl FnOnce() -> Result<String, String>) -> CheckResult {
    let t = Instant::now();
    let r = f();
    let latency_ms = t.elapsed().as_secs_f64() * 1000.0;
    let (ok, detail) = match r {
        Ok(d) => (true, d),
        Err(d) => (false, d),
    };
    CheckResult {
        name: name.into(),
        ok,
        latency_ms,
        detail,
    }
}

/// Run one health check from ktwin.yaml. `exec` checks run `kubectl exec` in `context`.
/// Runs an `exec` health check: `(workload, container, command, namespace)` → what it
/// printed or why it failed. The binary supplies it (it runs `kubectl exec` through the
/// runner, pointed at exactly the guarded context).
pub type ExecRunner<'a> =
    &'a dyn Fn(&ktwin_config::HealthExec, Option<&str>) -> Result<String, String>;

/// Run one health check, timed.
pub fn run_check(c: &HealthCheck, exec: ExecRunner<'_>, namespace: Option<&str>) -> CheckResult {
    if let Some(url) = &c.http {
        let want = c.expect.as_ref().and_then(|e| e.status).unwrap_or(200);
        let needle = c.expect.as_ref().and_then(|e| e.body_contains.clone());
        return timed(&c.name, || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(5)))
                .build()
                .into();
            let mut resp = agent
                .get(url)
                .call()
                .map_err(|e| format!("GET {url}: {e}"))?;
            let code = resp.status().as_u16();
            let body = resp.body_mut().read_to_string().unwrap_or_default();
            if code != want {
                return Err(format!("GET {url}: status {code}, want {want}"));
            }
            if let Some(n) = &needle {
                if !body.contains(n.as_str()) {
                    return Err(format!("GET {url}: status {code}, body lacks {n:?}"));
                }
            }
            Ok(format!("GET {url}: {code}"))
        });
    }
    if let Some(addr) = &c.tcp {
        return timed(&c.name, || {
            use std::net::ToSocketAddrs;
            let sa = addr
                .to_socket_addrs()
                .map_err(|e| format!("{addr}: {e}"))?
                .next()
                .ok_or_else(|| format!("{addr}: no address"))?;
            std::net::TcpStream::connect_timeout(&sa, Duration::from_secs(5))
                .map(|_| format!("connected to {addr}"))
                .map_err(|e| format!("{addr}: {e}"))
        });
    }
    if let Some(e) = &c.exec {
        return timed(&c.name, || exec(e, namespace));
    }
    CheckResult {
        name: c.name.clone(),
        ok: false,
        latency_ms: 0.0,
        detail: "no http, tcp or exec given".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn no_exec(_: &ktwin_config::HealthExec, _: Option<&str>) -> Result<String, String> {
        Err("no exec here".into())
    }

    #[test]
    fn node_rows_show_drift_cordons_and_absent_nodes() {
        let wants = vec![
            NodeSpec {
                pool: Some("web".into()),
                labels: [("pool".to_string(), "web".to_string())].into(),
                taints: vec!["dedicated=web:NoSchedule".into()],
                ..NodeSpec::named("a1")
            },
            NodeSpec {
                pool: Some("db".into()),
                ..NodeSpec::named("a2")
            },
        ];
        let nodes = vec![
            json!({"metadata": {"name": "a1", "labels": {"pool": "api"}},
                "spec": {"unschedulable": true},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
            json!({"metadata": {"name": "x"}, "status": {}}),
        ];
        let rows = nodes_status(&wants, &nodes);
        assert_eq!(
            rows[0].drift,
            [
                "label pool=api, want pool=web",
                "taint dedicated=web:NoSchedule missing"
            ]
        );
        assert!(rows[0].ready && rows[0].cordoned);
        assert_eq!(rows[1].drift, ["not in the cluster"]);
        assert_eq!(rows[2].drift, ["not declared in ktwin.yaml"]);
    }

    #[test]
    fn workload_row_counts_restarts_and_age() {
        let now: jiff::Timestamp = "2026-01-02T03:00:00Z".parse().unwrap();
        let d = json!({"kind": "Deployment", "metadata": {"name": "web", "namespace": "shop",
            "generation": 1, "creationTimestamp": "2026-01-02T01:30:00Z"},
            "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2,
                "readyReplicas": 1, "availableReplicas": 1}});
        let pods = vec![
            json!({"status": {"containerStatuses": [{"restartCount": 3}, {"restartCount": 1}]}}),
            json!({"status": {"containerStatuses": [{"restartCount": 0}]}}),
        ];
        let s = workload_status(&d, &pods, now);
        assert_eq!((s.ready, s.desired, s.restarts), (1, 2, 4));
        assert_eq!(s.age, "1h");
        assert!(!s.rolled_out);
    }

    #[test]
    fn tcp_and_http_checks_measure_and_fail_for_real() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for s in l.incoming().take(3) {
                let mut s = s.unwrap();
                let mut b = [0u8; 1024];
                let _ = s.read(&mut b);
                let _ = s.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 6\r\nConnection: close\r\n\r\ndenied");
            }
        });
        let check = |yaml: &str| -> HealthCheck { serde_json::from_str(yaml).unwrap() };
        let r = run_check(
            &check(&format!(r#"{{"name": "db", "tcp": "127.0.0.1:{port}"}}"#)),
            &no_exec,
            None,
        );
        assert!(r.ok, "{r:?}");
        let r = run_check(
            &check(&format!(
                r#"{{"name": "web", "http": "http://127.0.0.1:{port}/healthz"}}"#
            )),
            &no_exec,
            None,
        );
        assert!(!r.ok);
        assert_eq!(
            r.detail,
            format!("GET http://127.0.0.1:{port}/healthz: status 401, want 200")
        );
        let r = run_check(
            &check(&format!(
                r#"{{"name": "web", "http": "http://127.0.0.1:{port}/", "expect": {{"status": 401, "bodyContains": "denied"}}}}"#
            )),
            &no_exec,
            None,
        );
        assert!(r.ok, "{r:?}");
        // A closed port fails.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let r = run_check(
            &check(&format!(r#"{{"name": "x", "tcp": "127.0.0.1:{closed}"}}"#)),
            &no_exec,
            None,
        );
        assert!(!r.ok && r.latency_ms >= 0.0);
    }
}
