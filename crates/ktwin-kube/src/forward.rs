//! Port-forwards that survive rollouts: one local listener (on 127.0.0.1) per forward, and
//! each new connection forwarded to a pod that is Ready *now* behind the Service — so the
//! local port never closes when the pod it last used goes away. (A forward bound to one pod,
//! as `kubectl port-forward svc/x` is, dies with that pod.)

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams};
use kube::Client;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};

use crate::{api_err, to_values, KubeError};

/// One forward: `service`'s `port` (its Service port) on 127.0.0.1:`local_port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub namespace: String,
    pub service: String,
    pub port: u16,
    /// 0: any free port (the listener says which).
    pub local_port: u16,
}

impl Spec {
    pub fn describe(&self) -> String {
        format!(
            "service/{} ({}) port {}",
            self.service, self.namespace, self.port
        )
    }
}

/// What a forward reports.
#[derive(Debug, Clone)]
pub enum Event {
    Listening {
        spec: Spec,
        local_port: u16,
    },
    /// A connection forwarded to this pod's container port.
    Connected {
        spec: Spec,
        local_port: u16,
        pod: String,
    },
    /// A connection that could not be forwarded (the listener stays).
    Failed {
        spec: Spec,
        local_port: u16,
        message: String,
    },
}

/// Bind the local end now (so a port in use is an error before anything else runs).
pub async fn bind(spec: &Spec) -> Result<(TcpListener, u16), KubeError> {
    let l = TcpListener::bind(("127.0.0.1", spec.local_port))
        .await
        .map_err(|e| KubeError::State {
            message: format!(
                "cannot listen on 127.0.0.1:{} for {}: {e}",
                spec.local_port,
                spec.describe()
            ),
            help: "pick another localPort, or end what holds it".into(),
        })?;
    let port = l.local_addr().map(|a| a.port()).unwrap_or(spec.local_port);
    Ok((l, port))
}

fn ready(p: &Value) -> bool {
    p["status"]["phase"] == "Running"
        && p["metadata"]["deletionTimestamp"].is_null()
        && p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// The pod and container port a new connection goes to: the newest Ready pod the Service
/// selects (during a rollout, the one that stays), its `targetPort` resolved (a number, or
/// a container port's name; none: the Service port).
pub async fn target(client: &Client, spec: &Spec) -> Result<(String, u16), String> {
    let svcs: Api<Service> = Api::namespaced(client.clone(), &spec.namespace);
    let svc = svcs
        .get(&spec.service)
        .await
        .map_err(|e| format!("{}: {}", spec.describe(), api_err("", &e)))?;
    let svc = serde_json::to_value(&svc).unwrap_or_default();
    let port = svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["port"].as_u64() == Some(u64::from(spec.port)))
        .cloned()
        .ok_or_else(|| format!("{} has no port {}", spec.describe(), spec.port))?;
    let sel = svc["spec"]["selector"]
        .as_object()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| format!("{} selects no pods (no selector)", spec.describe()))?
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect::<Vec<_>>()
        .join(",");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &spec.namespace);
    let list = pods
        .list(&ListParams::default().labels(&sel))
        .await
        .map_err(|e| format!("pods of {}: {}", spec.describe(), api_err("", &e)))?;
    let mut candidates: Vec<Value> = to_values(&list.items).into_iter().filter(ready).collect();
    candidates.sort_by(|a, b| {
        b["metadata"]["creationTimestamp"]
            .as_str()
            .cmp(&a["metadata"]["creationTimestamp"].as_str())
            .then_with(|| {
                a["metadata"]["name"]
                    .as_str()
                    .cmp(&b["metadata"]["name"].as_str())
            })
    });
    let pod = candidates
        .first()
        .ok_or_else(|| format!("no Ready pod behind {} ({sel}) right now", spec.describe()))?;
    let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
    let cport = match &port["targetPort"] {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(named) => pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["ports"].as_array().into_iter().flatten())
            .find(|p| p["name"] == named.as_str())
            .and_then(|p| p["containerPort"].as_u64())
            .and_then(|n| u16::try_from(n).ok()),
        _ => Some(spec.port),
    }
    .ok_or_else(|| {
        format!(
            "pod {name} has no container port named {}",
            port["targetPort"]
        )
    })?;
    Ok((name, cport))
}

async fn one(
    client: Client,
    spec: Spec,
    local_port: u16,
    mut tcp: TcpStream,
    report: Arc<dyn Fn(Event) + Send + Sync>,
) {
    let fail = |message: String| Event::Failed {
        spec: spec.clone(),
        local_port,
        message,
    };
    let (pod, cport) = match target(&client, &spec).await {
        Ok(t) => t,
        Err(m) => {
            report(fail(m));
            return;
        }
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), &spec.namespace);
    let mut pf = match pods.portforward(&pod, &[cport]).await {
        Ok(pf) => pf,
        Err(e) => {
            report(fail(format!("pod {pod}: {}", api_err("", &e))));
            return;
        }
    };
    let Some(mut upstream) = pf.take_stream(cport) else {
        report(fail(format!("pod {pod}: no stream for port {cport}")));
        return;
    };
    report(Event::Connected {
        spec: spec.clone(),
        local_port,
        pod: pod.clone(),
    });
    let errors = pf.take_error(cport);
    // Resolves only with a message: a closed error channel is no error.
    let err = async move {
        match errors {
            Some(e) => match e.await {
                Some(m) => m,
                None => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    };
    {
        let copy = tokio::io::copy_bidirectional(&mut tcp, &mut upstream);
        tokio::select! {
            _ = copy => {}
            m = err => {
                // The kubelet could not reach the container's port.
                report(fail(format!("pod {pod}: {m}")));
            }
        }
    }
    drop(upstream);
    pf.abort();
}

/// Serve a bound forward until the task is aborted: every connection is forwarded on its own.
/// (The caller reports [`Event::Listening`] once [`bind`] returned, so it comes in order.)
pub async fn serve(
    client: Client,
    spec: Spec,
    listener: TcpListener,
    local_port: u16,
    report: Arc<dyn Fn(Event) + Send + Sync>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            // Out of file descriptors or the like: wait instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(one(
            client.clone(),
            spec.clone(),
            local_port,
            tcp,
            report.clone(),
        ));
    }
}
