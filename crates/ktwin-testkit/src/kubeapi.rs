//! A Kubernetes API **stand-in** served over real HTTP on 127.0.0.1, for tier-1 tests.
//!
//! It is not an API server. It enforces only the semantics ktwin's code relies on:
//! discovery documents for the groups it knows (plus CRDs once applied, which it marks
//! Established itself), server-side apply with per-manager field ownership (arrays are
//! atomic), conflicts with other managers (409, overridable with `force`), `generation`
//! bumped only when something outside `metadata`/`status` changes, `resourceVersion`
//! bumped only on a real change, get/list with equality label selectors and
//! `metadata.name` field selectors, watch (chunked, newline-delimited events), JSON merge
//! patch, create, delete (404 when absent, 409 on a failed uid precondition) and pod logs.
//! Where prune and apply depend on it, it follows the real API server: the namespace comes
//! from the request path (a different body namespace is a 400; a cluster-scoped kind's body
//! namespace is dropped), one storage is served under several versions (HPA
//! `autoscaling/v1` and `v2`, every version of a CRD), every object gets a `uid` on create,
//! `ownerReferences` are kept like any other field, and reads return `managedFields` (manager,
//! operation `Apply`/`Update`, FieldsV1). Controllers are played by the test through
//! [`ApiStandIn::set`], [`ApiStandIn::put`] and [`ApiStandIn::controller`].

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

/// A resource type the stand-in serves.
#[derive(Debug, Clone)]
pub struct Kind {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
}

impl Kind {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

fn builtin_kinds() -> Vec<Kind> {
    let k = |g: &str, v: &str, kind: &str, plural: &str, ns: bool| Kind {
        group: g.into(),
        version: v.into(),
        kind: kind.into(),
        plural: plural.into(),
        namespaced: ns,
    };
    vec![
        k("", "v1", "Namespace", "namespaces", false),
        k("", "v1", "Node", "nodes", false),
        k("", "v1", "Pod", "pods", true),
        k("", "v1", "Service", "services", true),
        k("", "v1", "ConfigMap", "configmaps", true),
        k("", "v1", "Secret", "secrets", true),
        k("", "v1", "ServiceAccount", "serviceaccounts", true),
        k("", "v1", "Event", "events", true),
        k(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            true,
        ),
        k("", "v1", "PersistentVolume", "persistentvolumes", false),
        // One storage served under two versions, as every current API server serves HPAs
        // (autoscaling/v2 preferred, autoscaling/v1 still served).
        k(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            true,
        ),
        k(
            "autoscaling",
            "v1",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            true,
        ),
        k("apps", "v1", "Deployment", "deployments", true),
        k("apps", "v1", "StatefulSet", "statefulsets", true),
        k("apps", "v1", "DaemonSet", "daemonsets", true),
        k("apps", "v1", "ReplicaSet", "replicasets", true),
        k("batch", "v1", "Job", "jobs", true),
        k("batch", "v1", "CronJob", "cronjobs", true),
        k("networking.k8s.io", "v1", "Ingress", "ingresses", true),
        k(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
            true,
        ),
        k(
            "storage.k8s.io",
            "v1",
            "StorageClass",
            "storageclasses",
            false,
        ),
        k(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
        ),
        k("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
        k(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
        ),
    ]
}

type Path_ = Vec<String>;

#[derive(Debug, Clone)]
struct Stored {
    value: Value,
    /// Field manager → the leaf paths it owns.
    managers: BTreeMap<String, BTreeSet<Path_>>,
    /// Field manager → the operation it last wrote with (`Apply` or `Update`), as the API
    /// server records it in `metadata.managedFields`.
    ops: BTreeMap<String, &'static str>,
}

/// One recorded request: method, path (without query) and query string.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
}

/// A controller hook: called (under the store lock) after every write a client makes.
pub type Controller = Box<dyn FnMut(&mut Store) + Send>;

/// The objects, keyed by (plural with group, namespace, name).
pub struct Store {
    kinds: Vec<Kind>,
    objects: BTreeMap<(String, String, String), Stored>,
    events: Vec<(u64, String, String, Value)>, // (rv, resource key, type, object)
    rv: u64,
    logs: BTreeMap<(String, String, String, bool), String>, // (ns, pod, container, previous)
    /// Lines with the kubelet's timestamps (ns, pod, container) → [(RFC 3339, text)].
    timed_logs: BTreeMap<(String, String, String), Vec<(String, String)>>,
    /// (namespace, pod, port) → the address that plays the container's port for a
    /// port-forward (a listener the test runs).
    forward_targets: BTreeMap<(String, String, u16), std::net::SocketAddr>,
    /// (namespace, pod, container) → the directory that plays its file system for exec, and
    /// whether its image has `tar`.
    container_fs: BTreeMap<(String, String, String), (PathBuf, bool)>,
    /// Number of client requests that changed stored state.
    pub writes: u64,
    requests: Vec<Request>,
    /// The minor version `/version` reports (`gitVersion` `v1.<minor>.0-stand-in`).
    pub server_minor: u32,
}

fn res_key(k: &Kind) -> String {
    if k.group.is_empty() {
        k.plural.clone()
    } else {
        format!("{}.{}", k.plural, k.group)
    }
}

impl Store {
    fn kind_of(&self, api_version: &str, kind: &str) -> Option<Kind> {
        self.kinds
            .iter()
            .find(|k| k.api_version() == api_version && k.kind == kind)
            .cloned()
    }

    fn kind_by_plural(&self, group: &str, version: &str, plural: &str) -> Option<Kind> {
        self.kinds
            .iter()
            .find(|k| k.group == group && k.version == version && k.plural == plural)
            .cloned()
    }

    fn bump(&mut self, key: &str, typ: &str, obj: &Value) {
        self.events
            .push((self.rv, key.to_string(), typ.to_string(), obj.clone()));
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// Insert or replace an object as a controller would (no field ownership).
    pub fn put(&mut self, mut obj: Value) {
        let kind = self
            .kind_of(
                obj["apiVersion"].as_str().unwrap_or(""),
                obj["kind"].as_str().unwrap_or(""),
            )
            .unwrap_or_else(|| panic!("stand-in does not serve {}", obj["kind"]));
        let key = (
            res_key(&kind),
            obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            obj["metadata"]["name"].as_str().unwrap_or("").to_string(),
        );
        let rv = self.next_rv();
        let old = self.objects.get(&key).cloned();
        let meta = obj["metadata"].as_object_mut().expect("metadata");
        // Ownership lives beside the object; [`shown`] renders it on every read.
        meta.remove("managedFields");
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        if !meta.contains_key("generation") {
            let g = old
                .as_ref()
                .and_then(|o| o.value["metadata"]["generation"].as_i64())
                .unwrap_or(1);
            meta.insert("generation".into(), json!(g));
        }
        meta.entry("uid").or_insert_with(|| json!(uid(rv)));
        meta.entry("creationTimestamp")
            .or_insert_with(|| json!("2026-01-01T00:00:00Z"));
        let typ = if old.is_some() { "MODIFIED" } else { "ADDED" };
        self.bump(&key.0, typ, &obj);
        let (managers, ops) = old.map(|o| (o.managers, o.ops)).unwrap_or_default();
        if typ == "ADDED" && kind.kind == "CustomResourceDefinition" {
            self.establish(&obj);
        }
        self.objects.insert(
            key,
            Stored {
                value: obj,
                managers,
                ops,
            },
        );
    }

    /// Change a stored object in place (a controller writing status, a kubelet, …).
    /// Returns false when the object does not exist.
    pub fn set(
        &mut self,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> bool {
        let Some(obj) = self.get(api_version, kind, ns, name) else {
            return false;
        };
        let mut v = obj;
        f(&mut v);
        self.put(v);
        true
    }

    pub fn get(&self, api_version: &str, kind: &str, ns: &str, name: &str) -> Option<Value> {
        let k = self.kind_of(api_version, kind)?;
        self.objects
            .get(&(res_key(&k), ns.to_string(), name.to_string()))
            .map(|s| shown(&k, s))
    }

    /// Every stored object of a kind, in key order.
    pub fn list(&self, api_version: &str, kind: &str) -> Vec<Value> {
        let Some(k) = self.kind_of(api_version, kind) else {
            return vec![];
        };
        let key = res_key(&k);
        self.objects
            .iter()
            .filter(|((r, _, _), _)| *r == key)
            .map(|(_, s)| shown(&k, s))
            .collect()
    }

    /// Give an object to a field manager (as `kubectl edit` or a client-side apply would).
    pub fn own(&mut self, api_version: &str, kind: &str, ns: &str, name: &str, manager: &str) {
        let k = self.kind_of(api_version, kind).expect("kind");
        let key = (res_key(&k), ns.to_string(), name.to_string());
        let s = self.objects.get_mut(&key).expect("object");
        let paths = owned_paths(&s.value);
        s.managers.insert(manager.to_string(), paths);
        s.ops.insert(manager.to_string(), "Update");
    }

    pub fn delete(&mut self, api_version: &str, kind: &str, ns: &str, name: &str) -> bool {
        let Some(k) = self.kind_of(api_version, kind) else {
            return false;
        };
        let key = (res_key(&k), ns.to_string(), name.to_string());
        match self.objects.remove(&key) {
            Some(s) => {
                self.next_rv();
                self.bump(&key.0, "DELETED", &s.value);
                true
            }
            None => false,
        }
    }

    /// The garbage collector's part of a delete: objects whose ownerReferences name `uid`
    /// are deleted (and theirs, in turn), or with `orphan` lose that reference.
    fn collect_dependents(&mut self, uid: &str, orphan: bool) {
        if uid.is_empty() {
            return;
        }
        let owned: Vec<(String, String, String)> = self
            .objects
            .iter()
            .filter(|(_, s)| {
                s.value["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|o| o["uid"] == uid))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in owned {
            if orphan {
                if let Some(st) = self.objects.get_mut(&key) {
                    if let Some(refs) = st.value["metadata"]["ownerReferences"].as_array_mut() {
                        refs.retain(|o| o["uid"] != uid);
                    }
                }
                continue;
            }
            if let Some(st) = self.objects.remove(&key) {
                self.next_rv();
                self.bump(&key.0, "DELETED", &st.value);
                let child = st.value["metadata"]["uid"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                self.collect_dependents(&child, false);
            }
        }
    }

    /// Make `addr` play port `port` of pod `ns/pod` for port-forwards.
    pub fn serve_pod_port(&mut self, ns: &str, pod: &str, port: u16, addr: std::net::SocketAddr) {
        self.forward_targets
            .insert((ns.into(), pod.into(), port), addr);
    }

    /// Make `root` play the file system of `container` in `ns/pod` for exec; `has_tar`: its
    /// image has a `tar` (exec of `tar` runs the host's, confined to `root`).
    pub fn serve_container_fs(
        &mut self,
        ns: &str,
        pod: &str,
        container: &str,
        root: &Path,
        has_tar: bool,
    ) {
        self.container_fs.insert(
            (ns.into(), pod.into(), container.into()),
            (root.to_path_buf(), has_tar),
        );
    }

    /// What `kubectl logs` returns for a container (`previous`: the last terminated run).
    pub fn set_logs(&mut self, ns: &str, pod: &str, container: &str, previous: bool, text: &str) {
        self.logs.insert(
            (ns.into(), pod.into(), container.into(), previous),
            text.into(),
        );
    }

    /// A line the container wrote at `at` (RFC 3339). Such lines are served as the kubelet
    /// serves them: `timestamps=true` prefixes each with its timestamp and a space, and
    /// `sinceTime` keeps the lines at or after it (k8s.io/kubernetes pkg/kubelet/kuberuntime
    /// `ReadLogs`: `!t.Before(since)`). A follow returns what there is and ends, as a stream
    /// does when its container stops.
    pub fn add_log_line(&mut self, ns: &str, pod: &str, container: &str, at: &str, text: &str) {
        self.timed_logs
            .entry((ns.into(), pod.into(), container.into()))
            .or_default()
            .push((at.into(), text.into()));
    }

    fn establish(&mut self, crd: &Value) {
        let group = crd["spec"]["group"].as_str().unwrap_or("").to_string();
        let plural = crd["spec"]["names"]["plural"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let kind = crd["spec"]["names"]["kind"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let namespaced = crd["spec"]["scope"] != "Cluster";
        for v in crd["spec"]["versions"].as_array().into_iter().flatten() {
            let version = v["name"].as_str().unwrap_or("").to_string();
            if self.kind_by_plural(&group, &version, &plural).is_none() {
                self.kinds.push(Kind {
                    group: group.clone(),
                    version,
                    kind: kind.clone(),
                    plural: plural.clone(),
                    namespaced,
                });
            }
        }
    }
}

/// The stand-in server. Dropping it stops accepting connections.
pub struct ApiStandIn {
    pub port: u16,
    shared: Arc<(Mutex<Inner>, Condvar)>,
}

struct Inner {
    store: Store,
    controllers: Vec<Controller>,
    stopped: bool,
}

impl Default for ApiStandIn {
    fn default() -> Self {
        Self::start()
    }
}

impl ApiStandIn {
    pub fn start() -> ApiStandIn {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the API stand-in");
        let port = listener.local_addr().expect("addr").port();
        let shared = Arc::new((
            Mutex::new(Inner {
                store: Store {
                    kinds: builtin_kinds(),
                    objects: BTreeMap::new(),
                    events: Vec::new(),
                    rv: 1,
                    logs: BTreeMap::new(),
                    timed_logs: BTreeMap::new(),
                    forward_targets: BTreeMap::new(),
                    container_fs: BTreeMap::new(),
                    writes: 0,
                    requests: Vec::new(),
                    server_minor: 33,
                },
                controllers: Vec::new(),
                stopped: false,
            }),
            Condvar::new(),
        ));
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.0.lock().map(|i| i.stopped).unwrap_or(true) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || serve(conn, s));
            }
        });
        ApiStandIn { port, shared }
    }

    /// Write a kubeconfig whose contexts all point at this stand-in; the first is current.
    pub fn kubeconfig(&self, dir: &Path, contexts: &[&str]) -> PathBuf {
        let mut text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    server: http://127.0.0.1:{}\nusers:\n- name: standin\n  user:\n    token: stand-in-token\ncontexts:\n",
            self.port
        );
        for c in contexts {
            text.push_str(&format!(
                "- name: {c}\n  context:\n    cluster: standin\n    user: standin\n"
            ));
        }
        text.push_str(&format!("current-context: {}\n", contexts[0]));
        let path = dir.join("kubeconfig");
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// Run `f` against the store, then wake watchers.
    pub fn with<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let (m, cv) = &*self.shared;
        let mut inner = m.lock().unwrap();
        let r = f(&mut inner.store);
        cv.notify_all();
        r
    }

    pub fn put(&self, obj: Value) {
        self.with(|s| s.put(obj))
    }

    pub fn set(
        &self,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) {
        let found = self.with(|s| s.set(api_version, kind, ns, name, f));
        assert!(found, "stand-in has no {kind} {ns}/{name}");
    }

    pub fn get(&self, api_version: &str, kind: &str, ns: &str, name: &str) -> Option<Value> {
        self.with(|s| s.get(api_version, kind, ns, name))
    }

    pub fn list(&self, api_version: &str, kind: &str) -> Vec<Value> {
        self.with(|s| s.list(api_version, kind))
    }

    /// Client requests that changed state since the start (or the last `reset_counts`).
    pub fn writes(&self) -> u64 {
        self.with(|s| s.writes)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.with(|s| s.requests.clone())
    }

    pub fn reset_counts(&self) {
        self.with(|s| {
            s.writes = 0;
            s.requests.clear();
        })
    }

    /// A client request over HTTP, as another tool would send it (e.g. an operator creating
    /// an object with its own field manager). Returns the status code and the JSON body.
    pub fn request(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let body = serde_json::to_vec(body).expect("json");
        let mut c = TcpStream::connect(("127.0.0.1", self.port)).expect("connect the stand-in");
        write!(
            c,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .and_then(|_| c.write_all(&body))
        .expect("send");
        let mut r = BufReader::new(c);
        let mut line = String::new();
        let _ = r.read_line(&mut line);
        let code = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut len = 0;
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut out = vec![0; len];
        let _ = r.read_exact(&mut out);
        (code, serde_json::from_slice(&out).unwrap_or(Value::Null))
    }

    /// Stop playing every controller registered so far (the test plays them by hand).
    pub fn without_controllers(self) -> ApiStandIn {
        self.shared.0.lock().unwrap().controllers.clear();
        self
    }

    /// Play a controller: `f` runs after every client write, under the store lock.
    pub fn controller(&self, f: impl FnMut(&mut Store) + Send + 'static) {
        let (m, _) = &*self.shared;
        m.lock().unwrap().controllers.push(Box::new(f));
    }
}

impl Drop for ApiStandIn {
    fn drop(&mut self) {
        let (m, cv) = &*self.shared;
        if let Ok(mut i) = m.lock() {
            i.stopped = true;
        }
        cv.notify_all();
        // Unblock the accept loop so its thread ends.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// How the Job controller and kubelet a test plays run one Job's pod.
#[derive(Debug, Clone)]
pub enum JobScript {
    /// The container writes `lines` and exits with `exit` (0: the Job completes; else it
    /// fails with BackoffLimitExceeded), leaving `message` as its termination message.
    Exit {
        exit: i32,
        lines: Vec<String>,
        message: Option<String>,
    },
    /// The container writes `lines`, then `activeDeadlineSeconds` passes: the Job fails with
    /// DeadlineExceeded and its pod is terminated (SIGTERM, exit 143).
    Deadline { lines: Vec<String> },
    /// The scheduler cannot place the pod: it stays Pending with this message.
    Unschedulable(String),
}

/// A controller that plays the Job controller and the kubelet: every Job that is not
/// suspended gets one pod (labelled from its template, `job-name`, and owned by the Job),
/// which runs as `script` says for that Job. As in a cluster, the pod's log lines carry the
/// kubelet's timestamps, and the Job's conditions say how it ended (`Complete`, or `Failed`
/// with reason `BackoffLimitExceeded` / `DeadlineExceeded`).
pub fn job_controller(
    script: impl Fn(&Value) -> JobScript + Send + 'static,
) -> impl FnMut(&mut Store) + Send + 'static {
    move |s: &mut Store| {
        for job in s.list("batch/v1", "Job") {
            if job["spec"]["suspend"] == true || job["status"]["startTime"].is_string() {
                continue;
            }
            let (ns, name) = ns_name(&job);
            // `<job>-<5 characters>`, as the Job controller's generateName gives.
            let uid = job["metadata"]["uid"].as_str().unwrap_or("00000");
            let pod_name = format!("{name}-{}", &uid[uid.len().saturating_sub(5)..]);
            let mut labels = job["spec"]["template"]["metadata"]["labels"].clone();
            if !labels.is_object() {
                labels = json!({});
            }
            labels["job-name"] = json!(name);
            labels["batch.kubernetes.io/job-name"] = json!(name);
            labels["controller-uid"] = job["metadata"]["uid"].clone();
            let container = job["spec"]["template"]["spec"]["containers"][0]["name"]
                .as_str()
                .unwrap_or("job")
                .to_string();
            let now = jiff::Timestamp::now();
            let at = |i: usize| {
                format!(
                    "{:.9}",
                    now.checked_add(jiff::SignedDuration::from_millis(i as i64))
                        .unwrap_or(now)
                )
            };
            let run = script(&job);
            let (phase, state, conditions, job_conditions, lines) = match &run {
                JobScript::Exit {
                    exit,
                    lines,
                    message,
                } => {
                    let mut term = json!({"exitCode": exit, "reason": if *exit == 0 {"Completed"} else {"Error"}});
                    if let Some(m) = message {
                        term["message"] = json!(m);
                    }
                    let jc = if *exit == 0 {
                        json!([{"type": "Complete", "status": "True"}])
                    } else {
                        json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                "message": "Job has reached the specified backoff limit"}])
                    };
                    (
                        if *exit == 0 { "Succeeded" } else { "Failed" },
                        json!({"terminated": term}),
                        json!([{"type": "PodScheduled", "status": "True"}]),
                        jc,
                        lines.clone(),
                    )
                }
                JobScript::Deadline { lines } => (
                    "Failed",
                    json!({"terminated": {"exitCode": 143, "reason": "Error"}}),
                    json!([{"type": "PodScheduled", "status": "True"}]),
                    json!([{"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
                            "message": "Job was active longer than specified deadline"}]),
                    lines.clone(),
                ),
                JobScript::Unschedulable(m) => (
                    "Pending",
                    json!({"waiting": {"reason": "Pending"}}),
                    json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": m}]),
                    json!([]),
                    vec![],
                ),
            };
            let pod = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod_name, "namespace": ns, "labels": labels,
                    "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name,
                        "uid": job["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]},
                "spec": job["spec"]["template"]["spec"],
                "status": {"phase": phase, "conditions": conditions,
                    "containerStatuses": [{"name": container, "ready": false, "restartCount": 0,
                        "image": job["spec"]["template"]["spec"]["containers"][0]["image"], "state": state}]},
            });
            let mut pod = pod;
            if phase == "Pending" {
                // Never scheduled: no container has a status yet.
                if let Some(st) = pod["status"].as_object_mut() {
                    st.remove("containerStatuses");
                }
            }
            s.put(pod);
            for (i, l) in lines.iter().enumerate() {
                s.add_log_line(&ns, &pod_name, &container, &at(i), l);
            }
            let active = i64::from(job_conditions.as_array().is_none_or(|c| c.is_empty()));
            s.set("batch/v1", "Job", &ns, &name, |j| {
                j["status"] =
                    json!({"startTime": at(0), "active": active, "conditions": job_conditions});
            });
        }
    }
}

/// A controller that makes every Deployment, StatefulSet and DaemonSet roll out at once.
pub fn healthy_workloads(s: &mut Store) {
    for (av, kind) in [
        ("apps/v1", "Deployment"),
        ("apps/v1", "StatefulSet"),
        ("apps/v1", "DaemonSet"),
    ] {
        for obj in s.list(av, kind) {
            let want = rolled_out_status(&obj);
            if obj["status"] != want {
                let (ns, name) = ns_name(&obj);
                s.set(av, kind, &ns, &name, |o| o["status"] = want);
            }
        }
    }
}

/// The status a controller reports once `obj` has fully rolled out.
pub fn rolled_out_status(obj: &Value) -> Value {
    let g = obj["metadata"]["generation"].as_i64().unwrap_or(1);
    let n = obj["spec"]["replicas"].as_i64().unwrap_or(1);
    match obj["kind"].as_str() {
        Some("DaemonSet") => json!({"observedGeneration": g, "desiredNumberScheduled": n,
            "currentNumberScheduled": n, "updatedNumberScheduled": n, "numberReady": n,
            "numberAvailable": n}),
        Some("StatefulSet") => json!({"observedGeneration": g, "replicas": n, "readyReplicas": n,
            "currentReplicas": n, "updatedReplicas": n, "availableReplicas": n,
            "currentRevision": "r1", "updateRevision": "r1"}),
        _ => json!({"observedGeneration": g, "replicas": n, "updatedReplicas": n,
            "readyReplicas": n, "availableReplicas": n}),
    }
}

pub fn ns_name(obj: &Value) -> (String, String) {
    (
        obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        obj["metadata"]["name"].as_str().unwrap_or("").to_string(),
    )
}

// ---- port-forward ----------------------------------------------------------------------

/// A pod's port-forward as the kubelet serves it over WebSocket (k8s.io/kubelet
/// pkg/cri/streaming/portforward/websocket.go): subprotocol `v4.channel.k8s.io`; per
/// requested port a data channel 2n and an error channel 2n+1, the first frame on each
/// carrying the port as a little-endian u16; every binary frame's first byte is its channel.
/// Frames per RFC 6455 (client frames masked, server frames not). A pod that does not
/// exist is a 404 before the upgrade; a port nothing listens on is a message on the error
/// channel, as the kubelet reports a refused connection.
fn port_forward(mut w: TcpStream, req: &Req, shared: &Arc<(Mutex<Inner>, Condvar)>) {
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let (ns, pod) = match segs.as_slice() {
        ["api", "v1", "namespaces", ns, "pods", pod, "portforward"] => {
            (ns.to_string(), pod.to_string())
        }
        _ => {
            let (c, v) = status(404, "NotFound", "not a pod portforward path", json!([]));
            let _ = respond(&mut w, c, "application/json", v.to_string().as_bytes());
            return;
        }
    };
    let ports: Vec<u16> = req
        .query
        .get("ports")
        .map(|p| p.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_default();
    let (exists, targets) = {
        let i = shared.0.lock().unwrap();
        let exists = i.store.get("v1", "Pod", &ns, &pod).is_some();
        let t: Vec<Option<std::net::SocketAddr>> = ports
            .iter()
            .map(|p| {
                i.store
                    .forward_targets
                    .get(&(ns.clone(), pod.clone(), *p))
                    .copied()
            })
            .collect();
        (exists, t)
    };
    if !exists {
        pod_not_found(&mut w, &pod);
        return;
    }
    if ws_upgrade(&mut w, req, "v4.channel.k8s.io").is_err() {
        return;
    }
    let writer = Arc::new(Mutex::new(w));
    let send = |ch: u8, data: &[u8]| -> bool {
        let mut payload = vec![ch];
        payload.extend_from_slice(data);
        ws_write(&mut writer.lock().unwrap(), 0x2, &payload).is_ok()
    };
    for (i, p) in ports.iter().enumerate() {
        let le = p.to_le_bytes();
        if !send(2 * i as u8, &le) || !send(2 * i as u8 + 1, &le) {
            return;
        }
    }
    // One port per connection is what ktwin asks for; more are served the same way.
    let mut conns: Vec<Option<TcpStream>> = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        match t.and_then(|a| TcpStream::connect(a).ok()) {
            Some(c) => {
                let mut from = c.try_clone().unwrap();
                let wr = writer.clone();
                let ch = 2 * i as u8;
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 32 * 1024];
                    loop {
                        match from.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                let mut payload = vec![ch];
                                payload.extend_from_slice(&buf[..n]);
                                if ws_write(&mut wr.lock().unwrap(), 0x2, &payload).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    // The container closed its end: close the WebSocket.
                    let _ = ws_write(&mut wr.lock().unwrap(), 0x8, &[]);
                });
                conns.push(Some(c));
            }
            None => {
                let msg = format!(
                    "error forwarding port {} to pod {pod}, uid : failed to connect: connection refused",
                    ports[i]
                );
                let _ = send(2 * i as u8 + 1, msg.as_bytes());
                let _ = ws_write(&mut writer.lock().unwrap(), 0x8, &[]);
                conns.push(None);
            }
        }
    }
    // Client → container.
    let Ok(mut r) = writer.lock().unwrap().try_clone() else {
        return;
    };
    while let Some((op, payload)) = ws_read(&mut r) {
        match op {
            0x8 => break,
            0x2 if !payload.is_empty() => {
                let idx = payload[0] as usize / 2;
                if payload[0] % 2 == 0 {
                    if let Some(Some(c)) = conns.get_mut(idx) {
                        if c.write_all(&payload[1..]).is_err() {
                            break;
                        }
                    }
                }
            }
            _ => {}
        }
    }
    for c in conns.into_iter().flatten() {
        let _ = c.shutdown(std::net::Shutdown::Write);
    }
}

/// Exec in a container as the API server and kubelet serve it over WebSocket: subprotocol
/// `v5.channel.k8s.io` (k8s.io/apimachinery pkg/util/remotecommand: channels 0 stdin,
/// 1 stdout, 2 stderr, 3 status as a JSON `Status`; v5 adds the close signal
/// `[255, channel]` for stdin EOF). Only `tar` runs, and only in a container whose file
/// system the test registered; an image without it gets the runtime's "executable file not
/// found" failure, which is what a distroless image answers.
fn exec(mut w: TcpStream, req: &Req, shared: &Arc<(Mutex<Inner>, Condvar)>) {
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let ["api", "v1", "namespaces", ns, "pods", pod, "exec"] = segs.as_slice() else {
        let (c, v) = status(404, "NotFound", "not a pod exec path", json!([]));
        let _ = respond(&mut w, c, "application/json", v.to_string().as_bytes());
        return;
    };
    let (ns, pod) = (ns.to_string(), pod.to_string());
    let mut command = Vec::new();
    let mut container = String::new();
    for kv in req.raw_query.split('&') {
        match kv.split_once('=') {
            Some(("command", v)) => command.push(pct_decode(v)),
            Some(("container", v)) => container = pct_decode(v),
            _ => {}
        }
    }
    let (exists, fs) = {
        let i = shared.0.lock().unwrap();
        (
            i.store.get("v1", "Pod", &ns, &pod).is_some(),
            i.store
                .container_fs
                .get(&(ns.clone(), pod.clone(), container.clone()))
                .cloned(),
        )
    };
    if !exists {
        pod_not_found(&mut w, &pod);
        return;
    }
    if ws_upgrade(&mut w, req, "v5.channel.k8s.io").is_err() {
        return;
    }
    let Ok(mut r) = w.try_clone() else { return };
    let finish = |w: &mut TcpStream, stderr: &[u8], st: Value| {
        if !stderr.is_empty() {
            let mut p = vec![2u8];
            p.extend_from_slice(stderr);
            let _ = ws_write(w, 0x2, &p);
        }
        let mut p = vec![3u8];
        p.extend_from_slice(st.to_string().as_bytes());
        let _ = ws_write(w, 0x2, &p);
        let _ = ws_write(w, 0x8, &[]);
    };
    let runnable = matches!(
        (command.first().map(String::as_str), &fs),
        (Some("tar"), Some((_, true)))
    );
    if !runnable {
        let exe = command.first().cloned().unwrap_or_default();
        finish(
            &mut w,
            b"",
            json!({"metadata": {}, "status": "Failure", "reason": "InternalError",
            "message": format!("Internal error occurred: error executing command in container: failed to exec in container: failed to start exec: OCI runtime exec failed: exec failed: unable to start container process: exec: \"{exe}\": executable file not found in $PATH: unknown")}),
        );
        return;
    }
    let (root, _) = fs.expect("runnable");
    // `-C DIR` is read inside the container's root.
    let mut args: Vec<String> = Vec::new();
    let mut it = command.iter().skip(1);
    while let Some(a) = it.next() {
        if a == "-C" {
            let d = it.next().cloned().unwrap_or_default();
            args.push("-C".into());
            args.push(root.join(d.trim_start_matches('/')).display().to_string());
        } else {
            args.push(a.clone());
        }
    }
    let mut child = match std::process::Command::new("tar")
        .args(&args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            finish(
                &mut w,
                b"",
                json!({"status": "Failure", "message": e.to_string()}),
            );
            return;
        }
    };
    let mut stdin = child.stdin.take();
    while let Some((op, payload)) = ws_read(&mut r) {
        match op {
            0x8 => break,
            0x2 if payload.first() == Some(&0) => {
                if let Some(s) = stdin.as_mut() {
                    let _ = s.write_all(&payload[1..]);
                }
            }
            // v5: the client closed stdin.
            0x2 if payload.as_slice() == [255, 0] => {
                stdin = None;
                break;
            }
            _ => {}
        }
    }
    drop(stdin);
    let out = child.wait_with_output();
    let (code, stderr) = match out {
        Ok(o) => (o.status.code().unwrap_or(1), o.stderr),
        Err(e) => (1, e.to_string().into_bytes()),
    };
    let st = if code == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
            "message": format!("command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"),
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}})
    };
    finish(&mut w, &stderr, st);
}

/// Answer a WebSocket upgrade (RFC 6455 §4.2.2: `Sec-WebSocket-Accept` is the base64 SHA-1
/// of the key and the protocol's GUID) with the subprotocol the API server picks.
fn ws_upgrade(w: &mut TcpStream, req: &Req, protocol: &str) -> std::io::Result<()> {
    use base64::Engine as _;
    use sha1::Digest as _;
    let key = req.ws_key.clone().unwrap_or_default();
    let mut h = sha1::Sha1::new();
    h.update(key.as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let accept = base64::engine::general_purpose::STANDARD.encode(h.finalize());
    let head = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n");
    w.write_all(head.as_bytes())
}

/// One server frame (FIN set, unmasked).
fn ws_write(w: &mut TcpStream, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(n as u8),
        n if n < 65536 => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    w.write_all(&f)?;
    w.flush()
}

/// One client frame, unmasked (continuations are not used by the clients the tests run).
fn ws_read(r: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    r.read_exact(&mut h).ok()?;
    let opcode = h[0] & 0x0f;
    let masked = h[1] & 0x80 != 0;
    let mut len = u64::from(h[1] & 0x7f);
    if len == 126 {
        let mut b = [0u8; 2];
        r.read_exact(&mut b).ok()?;
        len = u64::from(u16::from_be_bytes(b));
    } else if len == 127 {
        let mut b = [0u8; 8];
        r.read_exact(&mut b).ok()?;
        len = u64::from_be_bytes(b);
    }
    let mut mask = [0u8; 4];
    if masked {
        r.read_exact(&mut mask).ok()?;
    }
    let mut payload = vec![0u8; usize::try_from(len).ok()?];
    r.read_exact(&mut payload).ok()?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Some((opcode, payload))
}

// ---- field ownership -------------------------------------------------------------------

const UNOWNED: &[&[&str]] = &[
    &["apiVersion"],
    &["kind"],
    &["metadata", "name"],
    &["metadata", "namespace"],
];

fn leaves(v: &Value, prefix: &mut Path_, out: &mut BTreeSet<Path_>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                prefix.push(k.clone());
                leaves(x, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            out.insert(prefix.clone());
        }
    }
}

fn owned_paths(v: &Value) -> BTreeSet<Path_> {
    let mut out = BTreeSet::new();
    leaves(v, &mut Vec::new(), &mut out);
    out.retain(|p| {
        let unowned = UNOWNED
            .iter()
            .any(|u| p.iter().map(String::as_str).eq(u.iter().copied()));
        let status = p.first().map(String::as_str) == Some("status");
        let server_set = p.len() >= 2
            && p[0] == "metadata"
            && matches!(
                p[1].as_str(),
                "resourceVersion" | "generation" | "uid" | "creationTimestamp" | "managedFields"
            );
        !unowned && !status && !server_set
    });
    out
}

fn at<'a>(v: &'a Value, p: &[String]) -> Option<&'a Value> {
    p.iter().try_fold(v, |cur, k| cur.get(k))
}

fn set_at(v: &mut Value, p: &[String], x: Value) {
    let mut cur = v;
    for k in &p[..p.len() - 1] {
        if !cur.get(k).is_some_and(Value::is_object) {
            cur[k] = json!({});
        }
        cur = cur.get_mut(k).expect("just set");
    }
    cur[&p[p.len() - 1]] = x;
}

fn remove_at(v: &mut Value, p: &[String]) {
    let mut cur = v;
    for k in &p[..p.len() - 1] {
        match cur.get_mut(k) {
            Some(x) => cur = x,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(&p[p.len() - 1]);
    }
}

fn spec_part(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

fn strip_server_fields(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v["metadata"].as_object_mut() {
        for k in [
            "resourceVersion",
            "generation",
            "uid",
            "creationTimestamp",
            "managedFields",
        ] {
            m.remove(k);
        }
    }
    v
}

/// The 404 a pod subresource (exec, portforward) answers for a pod that is not there.
fn pod_not_found(w: &mut TcpStream, pod: &str) {
    let (c, v) = status(
        404,
        "NotFound",
        &format!("pods \"{pod}\" not found"),
        json!([]),
    );
    let _ = respond(w, c, "application/json", v.to_string().as_bytes());
}

fn status(code: u16, reason: &str, message: &str, causes: Value) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "details": {"causes": causes}, "code": code}),
    )
}

/// The namespace rule of the API server, for a body sent to a resource URL.
///
/// Real behaviour (k8s.io/apiserver `pkg/endpoints/handlers/rest.go` `checkName` and
/// `pkg/registry/rest/meta.go` `EnsureObjectNamespaceMatchesRequestNamespace`): the namespace
/// comes from the request path; a body namespace that differs from it is a 400; a body
/// without one gets the path's; for a cluster-scoped kind any body namespace is cleared.
fn namespace_rule(kind: &Kind, path_ns: &str, body: &mut Value) -> Result<(), (u16, Value)> {
    let body_ns = body["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if !kind.namespaced {
        if let Some(m) = body["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        return Ok(());
    }
    if !body_ns.is_empty() && body_ns != path_ns {
        return Err(status(
            400,
            "BadRequest",
            &format!(
                "the namespace of the object ({body_ns}) does not match the namespace on the request ({path_ns})"
            ),
            json!([]),
        ));
    }
    if body["metadata"].is_object() {
        body["metadata"]["namespace"] = json!(path_ns);
    }
    Ok(())
}

/// `metadata.managedFields` as the API server returns it: one entry per manager with the
/// fields it owns in the FieldsV1 form (`f:<field>` keys), the operation it last used, and
/// the apiVersion it wrote with.
fn managed_fields(kind: &Kind, s: &Stored) -> Value {
    let mut entries = Vec::new();
    for (m, paths) in &s.managers {
        if paths.is_empty() {
            continue;
        }
        let mut tree = json!({});
        for p in paths {
            let mut cur = &mut tree;
            for k in p {
                cur = cur
                    .as_object_mut()
                    .expect("object")
                    .entry(format!("f:{k}"))
                    .or_insert_with(|| json!({}));
            }
        }
        entries.push(
            json!({"manager": m, "operation": s.ops.get(m).copied().unwrap_or("Update"),
            "apiVersion": kind.api_version(), "time": "2026-01-01T00:00:00Z",
            "fieldsType": "FieldsV1", "fieldsV1": tree}),
        );
    }
    Value::Array(entries)
}

/// An object as a client reading it through `kind`'s version sees it: that apiVersion (one
/// storage is served under every version of the kind, as the API server converts on read;
/// the stand-in converts nothing but the apiVersion) and its managedFields.
fn shown(kind: &Kind, s: &Stored) -> Value {
    let mut v = s.value.clone();
    v["apiVersion"] = json!(kind.api_version());
    if v["metadata"].is_object() {
        v["metadata"]["managedFields"] = managed_fields(kind, s);
    }
    v
}

/// Server-side apply of `applied` by `manager`.
fn apply(
    store: &mut Store,
    kind: &Kind,
    ns: &str,
    name: &str,
    mut applied: Value,
    manager: &str,
    force: bool,
) -> (u16, Value) {
    if applied["metadata"]["name"].as_str() != Some(name) {
        return status(
            400,
            "BadRequest",
            "metadata.name does not match the URL",
            json!([]),
        );
    }
    if let Err(e) = namespace_rule(kind, ns, &mut applied) {
        return e;
    }
    let key = (res_key(kind), ns.to_string(), name.to_string());
    let paths = owned_paths(&applied);
    let existing = store.objects.get(&key).cloned();
    let (mut new, mut managers, mut ops, created) = match existing.clone() {
        Some(s) => (s.value, s.managers, s.ops, false),
        None => {
            let mut v = json!({"apiVersion": kind.api_version(), "kind": kind.kind,
                "metadata": {"name": name}});
            if kind.namespaced {
                v["metadata"]["namespace"] = json!(ns);
            }
            (v, BTreeMap::new(), BTreeMap::new(), true)
        }
    };
    let mut conflicts = Vec::new();
    for p in &paths {
        for (m, owned) in &managers {
            if m != manager && owned.contains(p) && at(&new, p) != at(&applied, p) {
                conflicts.push((m.clone(), format!(".{}", p.join("."))));
            }
        }
    }
    if !conflicts.is_empty() {
        if !force {
            let msg = format!(
                "Apply failed with {} conflict{}: {}",
                conflicts.len(),
                if conflicts.len() == 1 { "" } else { "s" },
                conflicts
                    .iter()
                    .map(|(m, f)| format!(
                        "conflict with \"{m}\" using {}: {f}",
                        kind.api_version()
                    ))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            let causes: Vec<Value> = conflicts
                .iter()
                .map(|(m, f)| json!({"reason": "FieldManagerConflict",
                    "message": format!("conflict with \"{m}\" using {}", kind.api_version()), "field": f}))
                .collect();
            return status(409, "Conflict", &msg, json!(causes));
        }
        for (m, _) in &conflicts {
            if let Some(o) = managers.get_mut(m) {
                o.retain(|p| !paths.contains(p));
            }
        }
    }
    let before = new.clone();
    let previously = managers.remove(manager).unwrap_or_default();
    for p in previously.difference(&paths) {
        if !managers.values().any(|o| o.contains(p)) {
            remove_at(&mut new, p);
        }
    }
    for p in &paths {
        set_at(&mut new, p, at(&applied, p).cloned().unwrap_or(Value::Null));
    }
    managers.insert(manager.to_string(), paths);
    ops.insert(manager.to_string(), "Apply");
    let changed = created || strip_server_fields(&before) != strip_server_fields(&new);
    if changed {
        let rv = store.next_rv();
        let gen = before["metadata"]["generation"].as_i64().unwrap_or(0);
        let gen = if created || spec_part(&before) != spec_part(&new) {
            gen + 1
        } else {
            gen
        };
        let meta = new["metadata"].as_object_mut().expect("metadata");
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        meta.insert("generation".into(), json!(gen));
        meta.entry("uid").or_insert_with(|| json!(uid(rv)));
        meta.entry("creationTimestamp")
            .or_insert_with(|| json!("2026-01-01T00:00:00Z"));
        store.writes += 1;
        store.bump(&key.0, if created { "ADDED" } else { "MODIFIED" }, &new);
        if created && kind.kind == "CustomResourceDefinition" {
            new["status"] = json!({"conditions": [
                {"type": "NamesAccepted", "status": "True"},
                {"type": "Established", "status": "True"}]});
            store.establish(&new);
        }
    }
    let stored = Stored {
        value: new,
        managers,
        ops,
    };
    let out = shown(kind, &stored);
    store.objects.insert(key, stored);
    (if created { 201 } else { 200 }, out)
}

/// A uid as the API server makes them (a UUID), unique per stored revision here.
fn uid(rv: u64) -> String {
    format!("00000000-0000-4000-8000-{rv:012}")
}

// ---- HTTP ------------------------------------------------------------------------------

struct Req {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    raw_query: String,
    content_type: String,
    body: Vec<u8>,
    /// `Sec-WebSocket-Key` of an upgrade request.
    ws_key: Option<String>,
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 3 <= b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match h.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(x) => {
                        out.push(x);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn read_req(r: &mut BufReader<TcpStream>) -> Option<Req> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut len = 0usize;
    let mut content_type = String::new();
    let mut ws_key = None;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            match k.to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().ok()?,
                "content-type" => content_type = v.trim().to_string(),
                "sec-websocket-key" => ws_key = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    let (path, raw_query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    let query = raw_query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (pct_decode(k), pct_decode(v)),
            None => (pct_decode(kv), String::new()),
        })
        .collect();
    Some(Req {
        method,
        path,
        query,
        raw_query,
        content_type,
        body,
        ws_key,
    })
}

fn respond(w: &mut TcpStream, code: u16, ctype: &str, body: &[u8]) -> std::io::Result<()> {
    // One write: a header segment followed by a body segment would wait on delayed ACKs.
    let mut out = format!(
        "HTTP/1.1 {code} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    w.write_all(&out)?;
    w.flush()
}

fn serve(conn: TcpStream, shared: Arc<(Mutex<Inner>, Condvar)>) {
    let _ = conn.set_nodelay(true);
    let mut w = match conn.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut r = BufReader::new(conn);
    while let Some(req) = read_req(&mut r) {
        if req.path.ends_with("/portforward") && req.ws_key.is_some() {
            port_forward(w, &req, &shared);
            return;
        }
        if req.path.ends_with("/exec") && req.ws_key.is_some() {
            exec(w, &req, &shared);
            return;
        }
        let watch = matches!(
            req.query.get("watch").map(String::as_str),
            Some("true" | "1")
        );
        if watch {
            stream_watch(&mut w, &req, &shared);
            return;
        }
        let (code, ctype, body) = handle(&req, &shared);
        if respond(&mut w, code, ctype, &body).is_err() {
            return;
        }
    }
}

/// A parsed resource URL.
struct Target {
    kind: Kind,
    ns: String,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_target(store: &Store, path: &str) -> Result<Target, (u16, Value)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => {
            return Err(status(
                404,
                "NotFound",
                "the server could not find the requested resource",
                json!([]),
            ))
        }
    };
    let (ns, rest) = match rest {
        ["namespaces", ns, r, more @ ..] if !r.is_empty() => (ns.to_string(), {
            let mut v = vec![*r];
            v.extend_from_slice(more);
            v
        }),
        r => (String::new(), r.to_vec()),
    };
    let plural = rest.first().copied().unwrap_or("");
    let kind = store
        .kind_by_plural(group, version, plural)
        .ok_or_else(|| {
            status(
                404,
                "NotFound",
                &format!("the server could not find the requested resource ({plural})"),
                json!([]),
            )
        })?;
    Ok(Target {
        kind,
        ns,
        name: rest.get(1).map(|s| s.to_string()),
        sub: rest.get(2).map(|s| s.to_string()),
    })
}

fn selector_matches(obj: &Value, labels: Option<&String>, fields: Option<&String>) -> bool {
    let ok = |sel: Option<&String>, get: &dyn Fn(&str) -> Option<String>| {
        sel.map(|s| {
            s.split(',').filter(|c| !c.is_empty()).all(|c| {
                if let Some((k, v)) = c.split_once("!=") {
                    get(k).as_deref() != Some(v)
                } else if let Some((k, v)) = c.split_once('=') {
                    get(k.trim_end_matches('=')).as_deref() == Some(v)
                } else {
                    get(c).is_some()
                }
            })
        })
        .unwrap_or(true)
    };
    ok(labels, &|k| {
        obj["metadata"]["labels"][k].as_str().map(str::to_string)
    }) && ok(fields, &|k| match k {
        "metadata.name" => obj["metadata"]["name"].as_str().map(str::to_string),
        "metadata.namespace" => obj["metadata"]["namespace"].as_str().map(str::to_string),
        "spec.nodeName" => obj["spec"]["nodeName"].as_str().map(str::to_string),
        "involvedObject.name" => obj["involvedObject"]["name"].as_str().map(str::to_string),
        _ => None,
    })
}

fn discovery(store: &Store, path: &str) -> Option<Value> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let list = |g: &str, v: &str| {
        let resources: Vec<Value> = store
            .kinds
            .iter()
            .filter(|k| k.group == g && k.version == v)
            .flat_map(|k| {
                let verbs = json!(["create", "delete", "get", "list", "patch", "update", "watch"]);
                let mut r = vec![
                    json!({"name": k.plural, "singularName": k.kind.to_lowercase(),
                    "namespaced": k.namespaced, "kind": k.kind, "verbs": verbs}),
                ];
                if matches!(
                    k.kind.as_str(),
                    "Deployment" | "StatefulSet" | "DaemonSet" | "CustomResourceDefinition"
                ) {
                    r.push(
                        json!({"name": format!("{}/status", k.plural), "singularName": "",
                        "namespaced": k.namespaced, "kind": k.kind, "verbs": ["get", "patch"]}),
                    );
                }
                if k.kind == "Pod" {
                    r.push(
                        json!({"name": "pods/log", "singularName": "", "namespaced": true,
                        "kind": "Pod", "verbs": ["get"]}),
                    );
                }
                r
            })
            .collect();
        let gv = if g.is_empty() {
            v.to_string()
        } else {
            format!("{g}/{v}")
        };
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
    };
    match segs.as_slice() {
        // The fields kube-apiserver's /version serves (k8s.io/apimachinery version.Info).
        ["version"] => Some(
            json!({"major": "1", "minor": store.server_minor.to_string(),
            "gitVersion": format!("v1.{}.0-stand-in", store.server_minor),
            "platform": "linux/amd64"}),
        ),
        ["api"] => Some(json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": []})),
        ["api", v] => Some(list("", v)),
        ["apis"] => {
            let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for k in store.kinds.iter().filter(|k| !k.group.is_empty()) {
                let e = groups.entry(&k.group).or_default();
                if !e.contains(&k.version.as_str()) {
                    e.push(&k.version);
                }
            }
            let groups: Vec<Value> = groups
                .into_iter()
                .map(|(g, vs)| {
                    let versions: Vec<Value> = vs
                        .iter()
                        .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                        .collect();
                    json!({"name": g, "versions": versions, "preferredVersion": versions[0]})
                })
                .collect();
            Some(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        }
        ["apis", g, v] if store.kinds.iter().any(|k| k.group == *g && k.version == *v) => {
            Some(list(g, v))
        }
        _ => None,
    }
}

fn handle(req: &Req, shared: &Arc<(Mutex<Inner>, Condvar)>) -> (u16, &'static str, Vec<u8>) {
    let (m, cv) = &**shared;
    let mut inner = m.lock().unwrap();
    inner.store.requests.push(Request {
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.raw_query.clone(),
    });
    let writes_before = inner.store.writes;
    let (code, body) = route(&mut inner.store, req);
    if inner.store.writes != writes_before {
        let mut ctrls = std::mem::take(&mut inner.controllers);
        for c in ctrls.iter_mut() {
            c(&mut inner.store);
        }
        inner.controllers = ctrls;
        cv.notify_all();
    }
    match body {
        Ok(v) => (
            code,
            "application/json",
            serde_json::to_vec(&v).unwrap_or_default(),
        ),
        Err(text) => (code, "text/plain", text.into_bytes()),
    }
}

fn route(store: &mut Store, req: &Req) -> (u16, Result<Value, String>) {
    if req.method == "GET" {
        if let Some(d) = discovery(store, &req.path) {
            return (200, Ok(d));
        }
    }
    let t = match parse_target(store, &req.path) {
        Ok(t) => t,
        Err((c, v)) => return (c, Ok(v)),
    };
    let key_of = |name: &str| (res_key(&t.kind), t.ns.clone(), name.to_string());
    let not_found = |name: &str| {
        status(
            404,
            "NotFound",
            &format!("{} \"{name}\" not found", t.kind.plural),
            json!([]),
        )
    };
    match (req.method.as_str(), &t.name, t.sub.as_deref()) {
        ("GET", None, _) => {
            let items: Vec<Value> = store
                .objects
                .iter()
                .filter(|((r, ns, _), _)| {
                    *r == res_key(&t.kind) && (t.ns.is_empty() || *ns == t.ns)
                })
                .map(|(_, s)| shown(&t.kind, s))
                .filter(|o| {
                    selector_matches(
                        o,
                        req.query.get("labelSelector"),
                        req.query.get("fieldSelector"),
                    )
                })
                .collect();
            (
                200,
                Ok(
                    json!({"kind": format!("{}List", t.kind.kind), "apiVersion": t.kind.api_version(),
                    "metadata": {"resourceVersion": store.rv.to_string()}, "items": items}),
                ),
            )
        }
        // The Eviction subresource (policy/v1): the pod is deleted, and the answer is 201
        // with a Success Status, as kube-apiserver's pod eviction REST storage gives
        // (pkg/registry/core/pod/storage/eviction.go). PodDisruptionBudgets are not
        // modelled: no eviction is ever refused with 429.
        ("POST", Some(name), Some("eviction")) if t.kind.plural == "pods" => {
            if !store.objects.contains_key(&key_of(name)) {
                let (c, v) = not_found(name);
                return (c, Ok(v));
            }
            let ns = t.ns.clone();
            store.delete("v1", "Pod", &ns, name);
            store.writes += 1;
            (
                201,
                Ok(
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
                ),
            )
        }
        ("GET", Some(name), Some("log")) => {
            let container = req.query.get("container").cloned().unwrap_or_default();
            let previous = req.query.get("previous").map(String::as_str) == Some("true");
            if !store.objects.contains_key(&key_of(name)) {
                let (c, v) = not_found(name);
                return (c, Ok(v));
            }
            if let Some(lines) =
                store
                    .timed_logs
                    .get(&(t.ns.clone(), name.to_string(), container.clone()))
            {
                let since = req
                    .query
                    .get("sinceTime")
                    .map(|s| s.parse::<jiff::Timestamp>().expect("sinceTime is RFC 3339"));
                let stamps = req.query.get("timestamps").map(String::as_str) == Some("true");
                let text: String = lines
                    .iter()
                    .filter(|(at, _)| {
                        since.is_none_or(|s| at.parse::<jiff::Timestamp>().is_ok_and(|t| t >= s))
                    })
                    .map(|(at, l)| {
                        if stamps {
                            format!("{at} {l}\n")
                        } else {
                            format!("{l}\n")
                        }
                    })
                    .collect();
                return (200, Err(text));
            }
            let text = store
                .logs
                .iter()
                .find(|((ns, p, c, prev), _)| {
                    *ns == t.ns
                        && p == name
                        && (container.is_empty() || *c == container)
                        && *prev == previous
                })
                .map(|(_, t)| t.clone())
                .unwrap_or_default();
            let text = match req
                .query
                .get("tailLines")
                .and_then(|n| n.parse::<usize>().ok())
            {
                Some(n) => {
                    let lines: Vec<&str> = text.lines().collect();
                    let from = lines.len().saturating_sub(n);
                    lines[from..].iter().map(|l| format!("{l}\n")).collect()
                }
                None => text,
            };
            (200, Err(text))
        }
        ("GET", Some(name), _) => match store.objects.get(&key_of(name)) {
            Some(s) => (200, Ok(shown(&t.kind, s))),
            None => {
                let (c, v) = not_found(name);
                (c, Ok(v))
            }
        },
        ("PATCH", Some(name), sub) => {
            let manager = req
                .query
                .get("fieldManager")
                .cloned()
                .unwrap_or_else(|| "unknown".into());
            let body: Value = match serde_json::from_slice(&req.body) {
                Ok(v) => v,
                Err(e) => {
                    let (c, v) = status(
                        400,
                        "BadRequest",
                        &format!("body is not JSON: {e}"),
                        json!([]),
                    );
                    return (c, Ok(v));
                }
            };
            if req.content_type.starts_with("application/apply-patch") {
                if sub.is_some() {
                    let (c, v) = status(
                        405,
                        "MethodNotAllowed",
                        "subresource apply unsupported by the stand-in",
                        json!([]),
                    );
                    return (c, Ok(v));
                }
                let force = req.query.get("force").map(String::as_str) == Some("true");
                let (c, v) = apply(store, &t.kind, &t.ns, name, body, &manager, force);
                (c, Ok(v))
            } else if req.content_type.starts_with("application/merge-patch+json") {
                let Some(cur) = store.objects.get(&key_of(name)).cloned() else {
                    let (c, v) = not_found(name);
                    return (c, Ok(v));
                };
                let mut new = cur.value.clone();
                merge(&mut new, &body);
                if strip_server_fields(&new) != strip_server_fields(&cur.value) {
                    let gen = new["metadata"]["generation"].as_i64().unwrap_or(1);
                    if spec_part(&new) != spec_part(&cur.value) {
                        new["metadata"]["generation"] = json!(gen + 1);
                    }
                    store.writes += 1;
                    let (managers, ops) = (cur.managers, cur.ops);
                    store.put(new.clone());
                    if let Some(s) = store.objects.get_mut(&key_of(name)) {
                        s.managers = managers;
                        s.ops = ops;
                        s.managers
                            .entry(manager.clone())
                            .or_default()
                            .extend(owned_paths(&body));
                        s.ops.insert(manager, "Update");
                    }
                }
                let v = store.objects.get(&key_of(name)).map(|s| shown(&t.kind, s));
                (200, Ok(v.unwrap_or(Value::Null)))
            } else {
                let (c, v) = status(
                    415,
                    "UnsupportedMediaType",
                    &format!("the stand-in does not take {}", req.content_type),
                    json!([]),
                );
                (c, Ok(v))
            }
        }
        ("POST", None, _) => {
            let mut obj: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
            if store.objects.contains_key(&key_of(&name)) {
                let (c, v) = status(
                    409,
                    "AlreadyExists",
                    &format!("{} \"{name}\" already exists", t.kind.plural),
                    json!([]),
                );
                return (c, Ok(v));
            }
            if let Err((c, v)) = namespace_rule(&t.kind, &t.ns, &mut obj) {
                return (c, Ok(v));
            }
            obj["metadata"]["generation"] = json!(1);
            store.writes += 1;
            let paths = owned_paths(&obj);
            store.put(obj);
            // A create is an `Update` operation of the manager the client names.
            let manager = req
                .query
                .get("fieldManager")
                .cloned()
                .unwrap_or_else(|| "unknown".into());
            let key = key_of(&name);
            if let Some(s) = store.objects.get_mut(&key) {
                s.managers.insert(manager.clone(), paths);
                s.ops.insert(manager, "Update");
            }
            (
                201,
                Ok(store
                    .objects
                    .get(&key)
                    .map(|s| shown(&t.kind, s))
                    .unwrap_or_default()),
            )
        }
        ("DELETE", Some(name), None) => {
            let Some(s) = store.objects.get(&key_of(name)).cloned() else {
                let (c, v) = not_found(name);
                return (c, Ok(v));
            };
            // DeleteOptions.preconditions.uid: the API server refuses (409) to delete an
            // object whose uid differs (k8s.io/apiserver storage `checkPreconditions`).
            let opts: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            if let Some(want) = opts["preconditions"]["uid"].as_str() {
                let have = s.value["metadata"]["uid"].as_str().unwrap_or("");
                if want != have {
                    let (c, v) = status(
                        409,
                        "Conflict",
                        &format!(
                            "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {want}, UID in object meta: {have}",
                            t.kind.plural
                        ),
                        json!([]),
                    );
                    return (c, Ok(v));
                }
            }
            store.writes += 1;
            store.delete(&t.kind.api_version(), &t.kind.kind, &t.ns, name);
            // Dependents, as the garbage collector treats them: the policy comes from the
            // query or DeleteOptions; without one, batch/v1 Jobs orphan their pods (k8s
            // pkg/registry/batch/job/strategy.go `DefaultGarbageCollectionPolicy`: "for
            // back compatibility") and every other kind deletes dependents in the background.
            // Foreground and Background differ in when the owner goes, not in what remains.
            let policy = req
                .query
                .get("propagationPolicy")
                .cloned()
                .or_else(|| opts["propagationPolicy"].as_str().map(str::to_string))
                .unwrap_or_else(|| {
                    if t.kind.api_version() == "batch/v1" && t.kind.kind == "Job" {
                        "Orphan".into()
                    } else {
                        "Background".into()
                    }
                });
            let owner = s.value["metadata"]["uid"]
                .as_str()
                .unwrap_or("")
                .to_string();
            store.collect_dependents(&owner, policy == "Orphan");
            (200, Ok(shown(&t.kind, &s)))
        }
        _ => {
            let (c, v) = status(
                405,
                "MethodNotAllowed",
                "not served by the stand-in",
                json!([]),
            );
            (c, Ok(v))
        }
    }
}

fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let t = target.as_object_mut().expect("object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        v => *target = v.clone(),
    }
}

fn stream_watch(w: &mut TcpStream, req: &Req, shared: &Arc<(Mutex<Inner>, Condvar)>) {
    let (m, cv) = &**shared;
    let mut inner = m.lock().unwrap();
    inner.store.requests.push(Request {
        method: "WATCH".into(),
        path: req.path.clone(),
        query: req.raw_query.clone(),
    });
    let t = match parse_target(&inner.store, &req.path) {
        Ok(t) => t,
        Err((c, v)) => {
            drop(inner);
            let _ = respond(
                w,
                c,
                "application/json",
                &serde_json::to_vec(&v).unwrap_or_default(),
            );
            return;
        }
    };
    drop(inner);
    if write!(
        w,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .is_err()
    {
        return;
    }
    let key = res_key(&t.kind);
    let mut since: u64 = req
        .query
        .get("resourceVersion")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let secs = req
        .query
        .get("timeoutSeconds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(60u64)
        .min(60);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut inner = m.lock().unwrap();
    if since == 0 {
        // No resourceVersion: the current objects arrive as ADDED first, as from a server.
        let now: Vec<Value> = inner
            .store
            .objects
            .iter()
            .filter(|((r, ns, _), s)| {
                *r == key
                    && (t.ns.is_empty() || *ns == t.ns)
                    && selector_matches(
                        &s.value,
                        req.query.get("labelSelector"),
                        req.query.get("fieldSelector"),
                    )
            })
            .map(|(_, s)| s.value.clone())
            .collect();
        since = inner.store.rv;
        drop(inner);
        for o in now {
            let line = format!("{}\n", json!({"type": "ADDED", "object": o}));
            if write!(w, "{:x}\r\n{line}\r\n", line.len()).is_err() {
                return;
            }
        }
        inner = m.lock().unwrap();
    }
    loop {
        if inner.stopped || Instant::now() >= deadline {
            break;
        }
        let pending: Vec<(u64, String, Value)> = inner
            .store
            .events
            .iter()
            .filter(|(rv, k, _, o)| {
                *rv > since
                    && *k == key
                    && (t.ns.is_empty() || o["metadata"]["namespace"] == t.ns.as_str())
                    && selector_matches(
                        o,
                        req.query.get("labelSelector"),
                        req.query.get("fieldSelector"),
                    )
            })
            .map(|(rv, _, typ, o)| (*rv, typ.clone(), o.clone()))
            .collect();
        since = since.max(inner.store.rv);
        drop(inner);
        for (_, typ, o) in pending {
            let line = format!("{}\n", json!({"type": typ, "object": o}));
            if write!(w, "{:x}\r\n{line}\r\n", line.len()).is_err() || w.flush().is_err() {
                return;
            }
        }
        inner = m.lock().unwrap();
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(500));
        inner = cv.wait_timeout(inner, wait).unwrap().0;
    }
    drop(inner);
    let _ = write!(w, "0\r\n\r\n");
    let _ = w.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_api_servers_namespace_uid_and_version_rules() {
        let api = ApiStandIn::start();
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "other"}, "data": {}});
        let (code, body) = api.request("POST", "/api/v1/namespaces/shop/configmaps", &cm);
        assert_eq!(code, 400, "{body}");
        assert!(body["message"]
            .as_str()
            .unwrap()
            .contains("does not match the namespace on the request"));
        let mut cm = cm;
        cm["metadata"].as_object_mut().unwrap().remove("namespace");
        let (code, made) = api.request(
            "POST",
            "/api/v1/namespaces/shop/configmaps?fieldManager=tool",
            &cm,
        );
        assert_eq!(code, 201);
        assert_eq!(made["metadata"]["namespace"], "shop");
        assert_eq!(made["metadata"]["managedFields"][0]["manager"], "tool");
        assert_eq!(made["metadata"]["managedFields"][0]["operation"], "Update");
        let uid = made["metadata"]["uid"].as_str().unwrap().to_string();
        let (code, _) = api.request(
            "DELETE",
            "/api/v1/namespaces/shop/configmaps/c",
            &json!({"preconditions": {"uid": "someone-else"}}),
        );
        assert_eq!(code, 409);
        let (code, _) = api.request(
            "DELETE",
            "/api/v1/namespaces/shop/configmaps/c",
            &json!({"preconditions": {"uid": uid}}),
        );
        assert_eq!(code, 200);
        // A cluster-scoped kind drops a body namespace.
        let pv = json!({"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": "pv1", "namespace": "shop"}, "spec": {}});
        let (code, made) = api.request("POST", "/api/v1/persistentvolumes", &pv);
        assert_eq!(code, 201);
        assert!(made["metadata"].get("namespace").is_none(), "{made}");
        // One HPA, read through both versions.
        let hpa = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "h"}, "spec": {"maxReplicas": 2}});
        let (code, _) = api.request(
            "POST",
            "/apis/autoscaling/v1/namespaces/shop/horizontalpodautoscalers",
            &hpa,
        );
        assert_eq!(code, 201);
        let (code, v2) = api.request(
            "GET",
            "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers/h",
            &Value::Null,
        );
        assert_eq!(code, 200);
        assert_eq!(v2["apiVersion"], "autoscaling/v2");
    }
}
