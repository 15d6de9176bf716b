//! Kubernetes API effects on kube-rs: server-side apply, prune, rollout wait, status, heal,
//! logs and restarts. Every entry point takes a client made by [`connect`], which takes only a
//! [`guard::GuardedContext`]: no path reaches a cluster without passing the guard.

pub mod deploy;
pub mod forward;
pub mod guard;
pub mod heal;
pub mod job;
pub mod live;
pub mod logs;
pub mod rollout;
pub mod status;
pub mod sync;

use std::collections::HashMap;

use kube::api::{Api, DynamicObject};
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
pub use kube::Client;

/// The field manager ktwin applies with.
pub const FIELD_MANAGER: &str = "ktwin";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_PROJECT: &str = "ktwin.dev/project";
pub const LABEL_ENV: &str = "ktwin.dev/env";

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("cannot use the kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("cannot talk to the API server of context `{context}`: {message}")]
    Connect { context: String, message: String },
    #[error("the API server did not answer: {0}")]
    Unreachable(String),
    #[error("{object}: the API server does not serve {api_version} {kind}")]
    NotServed {
        object: String,
        api_version: String,
        kind: String,
    },
    #[error("{object}: {message}")]
    Conflict { object: String, message: String },
    #[error("{object}: {message}")]
    Api { object: String, message: String },
    #[error("CustomResourceDefinition {0} was not Established in time")]
    CrdNotEstablished(String),
    #[error("{count} workload(s) did not roll out within {timeout}s")]
    Stuck {
        count: usize,
        timeout: u64,
        lines: Vec<String>,
    },
    #[error("no workload named `{0}` in the rendered environment")]
    NoWorkload(String),
    #[error("{message}")]
    State { message: String, help: String },
    #[error(transparent)]
    Guard(guard::GuardError),
}

impl KubeError {
    pub fn help(&self) -> Option<String> {
        match self {
            KubeError::Kubeconfig(_) => Some(
                "a remote environment's context comes from $KUBECONFIG or ~/.kube/config; the local twin's from its provider (`ktwin up` creates it)".into(),
            ),
            KubeError::Connect { .. } | KubeError::Unreachable(_) => {
                Some("is the cluster running? `ktwin status` shows it, `ktwin heal` restarts it".into())
            }
            KubeError::NotServed { .. } => Some(
                "install the CustomResourceDefinition first, or add it to the environment's manifests".into(),
            ),
            KubeError::Conflict { .. } => Some(
                "another field manager owns these fields; remove its change, or pass --force-conflicts to take them over".into(),
            ),
            KubeError::Stuck { lines, .. } => Some(lines.join("\n")),
            KubeError::NoWorkload(_) => Some("`ktwin render` lists the rendered objects".into()),
            KubeError::State { help, .. } => Some(help.clone()),
            KubeError::Guard(g) => g.help(),
            _ => None,
        }
    }
}

pub use guard::{connect, GuardedContext};

/// After node containers were started: wait until the API server answers `/version`.
pub async fn wait_for_api(
    client: &Client,
    context: &str,
    timeout: std::time::Duration,
    report: ktwin_config::event::Reporter<'_>,
) -> Result<(), KubeError> {
    let deadline = std::time::Instant::now() + timeout;
    report(ktwin_config::event::Event::Waiting {
        what: "the API server".into(),
    });
    loop {
        match client.apiserver_version().await {
            Ok(_) => return Ok(()),
            Err(e) if std::time::Instant::now() >= deadline => {
                return Err(KubeError::Connect {
                    context: context.into(),
                    message: message(&e),
                })
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_secs(2)).await,
        }
    }
}

/// Now, as the API writes timestamps.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The message of a kube error, without kube-rs's debug wrapping.
pub fn message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// The one mapping from kube-rs errors, naming the object the request was about.
pub fn api_err(object: impl Into<String>, e: &kube::Error) -> KubeError {
    match e {
        kube::Error::Api(s) if s.code == 409 && s.reason == "Conflict" => KubeError::Conflict {
            object: object.into(),
            message: s.message.clone(),
        },
        kube::Error::Api(s) => KubeError::Api {
            object: object.into(),
            message: s.message.clone(),
        },
        other => KubeError::Unreachable(other.to_string()),
    }
}

pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// `apps/v1` → (`apps`, `v1`); `v1` → (``, `v1`).
pub fn group_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

/// Discovery, one request per group version, remembered for the run.
pub struct Discovery {
    client: Client,
    known: HashMap<String, Vec<(ApiResource, ApiCapabilities)>>,
}

/// A kind the server does not serve, in a group version it does (or does not) serve.
fn not_served(api_version: &str, kind: &str) -> kube::Error {
    kube::Error::Api(Box::new(
        kube::core::Status::failure(&format!("{api_version} {kind} is not served"), "NotFound")
            .with_code(404),
    ))
}

impl Discovery {
    pub fn new(client: Client) -> Discovery {
        Discovery {
            client,
            known: HashMap::new(),
        }
    }

    /// Forget what was learned (after CRDs are established).
    pub fn forget(&mut self) {
        self.known.clear();
    }

    pub async fn resolve(
        &mut self,
        api_version: &str,
        kind: &str,
    ) -> Result<(ApiResource, ApiCapabilities), kube::Error> {
        if !self.known.contains_key(api_version) {
            let (g, v) = group_version(api_version);
            let gv = kube::core::GroupVersion::gv(g, v);
            let resources = match kube::discovery::pinned_group(&self.client, &gv).await {
                Ok(group) => group.versioned_resources(v),
                Err(e) if is_not_found(&e) => vec![],
                Err(e) => return Err(e),
            };
            self.known.insert(api_version.to_string(), resources);
        }
        self.known[api_version]
            .iter()
            .find(|(ar, _)| ar.kind == kind)
            .cloned()
            .ok_or_else(|| not_served(api_version, kind))
    }

    /// `obj`'s kind resolved, or the error naming the object.
    pub async fn resolve_obj(
        &mut self,
        obj: &serde_json::Value,
    ) -> Result<(ApiResource, ApiCapabilities), KubeError> {
        let av = obj["apiVersion"].as_str().unwrap_or("");
        let kind = obj["kind"].as_str().unwrap_or("");
        self.resolve(av, kind).await.map_err(|e| {
            if is_not_found(&e) {
                KubeError::NotServed {
                    object: describe(obj),
                    api_version: av.into(),
                    kind: kind.into(),
                }
            } else {
                api_err(describe(obj), &e)
            }
        })
    }

    /// The API serving `obj` (its kind resolved, its namespace or `default`).
    pub async fn api_for(
        &mut self,
        obj: &serde_json::Value,
    ) -> Result<Api<DynamicObject>, KubeError> {
        let (ar, caps) = self.resolve_obj(obj).await?;
        Ok(self.api(&ar, &caps, obj["metadata"]["namespace"].as_str()))
    }

    /// The API for one object of a resolved kind (namespaced ones default to `default`).
    pub fn api(
        &self,
        ar: &ApiResource,
        caps: &ApiCapabilities,
        ns: Option<&str>,
    ) -> Api<DynamicObject> {
        match caps.scope {
            Scope::Namespaced => {
                Api::namespaced_with(self.client.clone(), ns.unwrap_or("default"), ar)
            }
            Scope::Cluster => Api::all_with(self.client.clone(), ar),
        }
    }

    pub fn all(&self, ar: &ApiResource) -> Api<DynamicObject> {
        Api::all_with(self.client.clone(), ar)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// Typed API objects as JSON, the form every pure function here reads.
pub fn to_values<T: serde::Serialize>(items: &[T]) -> Vec<serde_json::Value> {
    items
        .iter()
        .map(|i| serde_json::to_value(i).unwrap_or_default())
        .collect()
}

/// The pods a workload selects (its `matchLabels`); `None` when it has no such selector.
pub async fn pods_of(
    client: &Client,
    w: &serde_json::Value,
) -> Result<Option<Vec<serde_json::Value>>, kube::Error> {
    let Some(sel) = rollout::selector(w) else {
        return Ok(None);
    };
    let ns = w["metadata"]["namespace"].as_str().unwrap_or("default");
    let api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), ns);
    let list = api
        .list(&kube::api::ListParams::default().labels(&sel))
        .await?;
    Ok(Some(to_values(&list.items)))
}

/// The Services of a namespace, as the API server has them (their cluster IPs).
pub async fn services(client: &Client, ns: &str) -> Result<Vec<serde_json::Value>, KubeError> {
    let api: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), ns);
    let l = api
        .list(&kube::api::ListParams::default())
        .await
        .map_err(|e| api_err(format!("services ({ns})"), &e))?;
    Ok(to_values(&l.items))
}

/// `kind/name` or `kind/name (ns)` as printed everywhere.
pub fn describe(v: &serde_json::Value) -> String {
    let kind = v["kind"].as_str().unwrap_or("?").to_lowercase();
    let name = v["metadata"]["name"].as_str().unwrap_or("?");
    match v["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind}/{name} ({ns})"),
        None => format!("{kind}/{name}"),
    }
}
