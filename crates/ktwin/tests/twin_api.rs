//! Tier 1: `ktwin deploy`, `status`, `heal`, `logs`, `restart` and `doctor --live` end to
//! end, the binary talking to ktwin-testkit's kube API **stand-in** (real HTTP on 127.0.0.1,
//! through a kubeconfig) and to stub `docker` / `k3d` executables that record their argv.
//! The registry's `GET /v2/` is answered by a small responder; it is not a registry.

use std::process::Output;

use ktwin_testkit::kubeapi::{healthy_workloads, ApiStandIn};
use ktwin_testkit::{ktwin_with_stubs, Responder, StubBin, TempProject};
use serde_json::{json, Value};

const MANIFESTS: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: app
          image: nginx:1.27
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80}]
";

struct World {
    tp: TempProject,
    stubs: StubBin,
    state: tempfile::TempDir,
    api: ApiStandIn,
    kubeconfig: std::path::PathBuf,
    reg_port: u16,
}

impl World {
    /// Project `shop` on k3d, one agent pool `web` (label pool=web), local env from k8s/.
    fn new(health: &str) -> World {
        let tp = TempProject::new();
        let api = ApiStandIn::start();
        let kubeconfig = api.kubeconfig(tp.path(), &["k3d-shop", "prod"]);
        // Its listener lives as long as the test process.
        let reg_port = Responder::start().port;
        tp.write(
            "ktwin.yaml",
            &format!(
                "apiVersion: ktwin.dev/v1alpha1\nkind: Project\nname: shop\ncluster:\n  provider: k3d\n  agents:\n    - {{name: web, count: 1, labels: {{pool: web}}}}\nregistry:\n  hostPort: {reg_port}\nenvironments:\n  local:\n    manifests: [k8s]\n{health}"
            ),
        );
        tp.write("k8s/app.yaml", MANIFESTS);
        let w = World {
            tp,
            stubs: StubBin::new(),
            state: tempfile::tempdir().unwrap(),
            api,
            kubeconfig,
            reg_port,
        };
        w.engine(true, true, true);
        // The twin's own kubeconfig, as `k3d kubeconfig get shop` reports it: the only one
        // the local environment is reached with.
        let own = std::fs::read_to_string(&w.kubeconfig).unwrap();
        w.stubs
            .add_rules("k3d", &[("kubeconfig get shop", &own, 0)]);
        w
    }

    /// Stub docker: node containers running or stopped, registry running, attached or not.
    fn engine(&self, nodes_running: bool, registry_running: bool, attached: bool) {
        let inspect = format!(
            r#"[{{"State":{{"Running":{registry_running}}},"Config":{{"Image":"registry:2","Labels":{{"dev.ktwin.managed":"true"}}}},"HostConfig":{{"PortBindings":{{"5000/tcp":[{{"HostIp":"127.0.0.1","HostPort":"{}"}}]}}}}}}]"#,
            self.reg_port
        );
        let nets = if attached {
            r#"{"bridge":{},"k3d-shop":{}}"#
        } else {
            r#"{"bridge":{}}"#
        };
        let agent = if nodes_running { "true\n" } else { "false\n" };
        self.stubs.add_rules(
            "docker",
            &[
                (
                    "container inspect -f {{.State.Running}} k3d-shop-agent-0",
                    agent,
                    0,
                ),
                (
                    "container inspect -f {{.State.Running}} k3d-shop-serverlb",
                    agent,
                    0,
                ),
                ("container inspect -f {{.State.Running}}*", "true\n", 0),
                ("container inspect*", &inspect, 0),
                ("inspect -f*", nets, 0),
            ],
        );
    }

    fn nodes(&self, agent: Value) {
        self.api.put(json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "k3d-shop-server-0", "labels": {}},
            "spec": {}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}));
        let mut a = json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "k3d-shop-agent-0", "labels": {"pool": "web"}},
            "spec": {}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        merge(&mut a, &agent);
        self.api.put(a);
        self.api.put(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "local-registry-hosting", "namespace": "kube-public"},
            "data": kep_data(self.tp.path())}));
    }

    fn ktwin(&self, args: &[&str]) -> Output {
        ktwin_with_stubs(
            env!("CARGO_BIN_EXE_ktwin"),
            self.tp.path(),
            &self.stubs,
            self.state.path(),
        )
        .env("KUBECONFIG", &self.kubeconfig)
        .args(args)
        .output()
        .unwrap()
    }
}

/// The KEP-1755 ConfigMap data ktwin writes for this project.
fn kep_data(dir: &std::path::Path) -> Value {
    let loaded = ktwin_config::load(&dir.join("ktwin.yaml")).unwrap();
    ktwin_cluster::registry_wiring::kep1755_configmap(&ktwin_config::desired::RegistryAddr::of(
        &loaded.project.registry,
    ))["data"]
        .clone()
}

fn merge(a: &mut Value, b: &Value) {
    if let (Some(a), Some(b)) = (a.as_object_mut(), b.as_object()) {
        for (k, v) in b {
            if v.is_null() {
                a.remove(k);
            } else {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    } else {
        *a = b.clone();
    }
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn deploy_twice_then_the_context_guard() {
    let w = World::new("");
    w.api.controller(healthy_workloads);
    let o = w.ktwin(&["deploy", "--timeout", "20s"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("namespace/shop: created"), "{err}");
    assert!(err.contains("service/web (shop): created"), "{err}");
    assert!(err.contains("deployment/web (shop): rolled out"), "{err}");
    assert!(
        err.contains("deployed: 2 created, 0 configured, 0 unchanged, 0 pruned; 1 rolled out"),
        "{err}"
    );
    // The local adaptation reached the API: pull policy set by ktwin's render.
    let d = w.api.get("apps/v1", "Deployment", "shop", "web").unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );

    w.api.reset_counts();
    let o = w.ktwin(&["deploy", "-o", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        r["applied"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["action"] == "unchanged"),
        "{r}"
    );
    assert_eq!(w.api.writes(), 0);

    // A context the local environment may not use: refused before any request.
    w.api.reset_counts();
    let o = w.ktwin(&["deploy", "--context", "prod"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).1.contains("may only use `k3d-shop`"),
        "{}",
        text(&o).1
    );
    assert!(w.api.requests().is_empty(), "{:?}", w.api.requests());
}

#[test]
fn a_stuck_rollout_exits_1_with_its_explanation() {
    let w = World::new("");
    w.api.controller(|s| {
        if let Some(mut d) = s.get("apps/v1", "Deployment", "shop", "web") {
            let g = d["metadata"]["generation"].clone();
            if d["status"]["observedGeneration"] != g {
                d["status"] = json!({"observedGeneration": g, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 0});
                s.put(d);
                s.put(json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
                    "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                        "message": "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."}]}}));
            }
        }
    });
    let o = w.ktwin(&["deploy", "--timeout", "2s"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("1 workload(s) did not roll out within 2s"),
        "{err}"
    );
    assert!(
        err.contains("deployment/web (shop): 0 of 2 updated replicas available"),
        "{err}"
    );
    assert!(
        err.contains("pod web-1: Pending: 0/2 nodes are available"),
        "{err}"
    );
}

#[test]
fn status_healthy_then_each_kind_of_unhealthy() {
    let w = World::new(&format!(
        "    health:\n      - {{name: api, tcp: 127.0.0.1:{}}}\n",
        // the stand-in itself is a TCP endpoint that answers
        0
    ));
    // Point the tcp check at the kube stand-in's port (it listens on 127.0.0.1).
    let y = std::fs::read_to_string(w.tp.path().join("ktwin.yaml"))
        .unwrap()
        .replace("127.0.0.1:0", &format!("127.0.0.1:{}", w.api.port));
    std::fs::write(w.tp.path().join("ktwin.yaml"), y).unwrap();
    w.nodes(json!({}));
    w.api.controller(healthy_workloads);
    assert_eq!(w.ktwin(&["deploy"]).status.code(), Some(0));

    let o = w.ktwin(&["status", "-o", "json"]);
    let r: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o).1));
    assert_eq!(o.status.code(), Some(0), "{r:#}");
    assert_eq!(r["healthy"], true);
    assert_eq!(r["nodes"].as_array().unwrap().len(), 2);
    assert_eq!(r["nodes"][1]["pool"], "web");
    assert_eq!(r["registry"]["running"], true);
    assert_eq!(r["registry"]["reachable"], true);
    assert_eq!(r["registry"]["onClusterNetwork"], true);
    assert_eq!(r["workloads"][0]["object"], "deployment/web (shop)");
    assert_eq!(r["workloads"][0]["ready"], 2);
    assert_eq!(r["health"][0]["name"], "api");
    assert_eq!(r["health"][0]["ok"], true);
    assert!(r["health"][0]["latencyMs"].as_f64().unwrap() >= 0.0);

    // Text form: one screen.
    let o = w.ktwin(&["status"]);
    let (out, _) = text(&o);
    assert!(
        out.contains("k3d-shop-agent-0") && out.contains("healthy"),
        "{out}"
    );

    // Drifted label + cordon, registry detached, a workload not ready: exit 1, each named.
    w.api.set("v1", "Node", "", "k3d-shop-agent-0", |n| {
        n["metadata"]["labels"]["pool"] = json!("db");
        n["spec"]["unschedulable"] = json!(true);
    });
    w.api.set("apps/v1", "Deployment", "shop", "web", |d| {
        d["status"]["readyReplicas"] = json!(1);
    });
    w.engine(true, true, false);
    let o = w.ktwin(&["status", "-o", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["healthy"], false);
    assert_eq!(r["nodes"][1]["drift"][0], "label pool=db, want pool=web");
    assert_eq!(r["nodes"][1]["cordoned"], true);
    assert_eq!(r["registry"]["onClusterNetwork"], false);
    assert_eq!(r["workloads"][0]["ready"], 1);
}

#[test]
fn heal_fixes_what_a_reboot_breaks_and_a_second_run_finds_nothing() {
    let w = World::new("");
    w.api.controller(healthy_workloads);
    assert_eq!(w.ktwin(&["deploy"]).status.code(), Some(0));
    // After a reboot: the agent and load balancer stopped, the registry detached, the
    // agent cordoned with its pool label gone, a pod stuck Terminating, the ConfigMap gone.
    w.nodes(json!({"metadata": {"labels": {"pool": null}}, "spec": {"unschedulable": true}}));
    w.api.with(|s| {
        s.delete("v1", "ConfigMap", "kube-public", "local-registry-hosting");
    });
    w.api.put(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-old", "namespace": "shop", "labels": {"app": "web"},
            "deletionTimestamp": "2026-01-01T00:00:00Z", "deletionGracePeriodSeconds": 30},
        "status": {"phase": "Running"}}));
    w.engine(false, true, false);

    let o = w.ktwin(&["heal", "--dry-run"]);
    let (_, err) = text(&o);
    assert!(err.contains("would start k3d-shop-serverlb"), "{err}");
    assert!(
        err.contains("would fix: node k3d-shop-agent-0: uncordoned"),
        "{err}"
    );
    assert!(w
        .stubs
        .calls()
        .iter()
        .all(|c| !c.starts_with("docker start") && !c.starts_with("docker network")));
    assert!(
        w.api.get("v1", "Pod", "shop", "web-old").is_some(),
        "dry run deleted nothing"
    );
    w.stubs.clear_calls();

    let o = w.ktwin(&["heal"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let changes: Vec<String> = w
        .stubs
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("docker start") || c.starts_with("docker network"))
        .collect();
    // Load balancer before the agent; then the registry joins the cluster network.
    assert_eq!(
        changes,
        [
            "docker start k3d-shop-serverlb",
            "docker start k3d-shop-agent-0",
            "docker network connect k3d-shop ktwin-registry"
        ]
    );
    for line in [
        "configmap kube-public/local-registry-hosting: written",
        "node k3d-shop-agent-0: uncordoned",
        "node k3d-shop-agent-0: label pool=web",
        "pod web-old (shop): stuck Terminating since 2026-01-01T00:00:00Z: deleted",
    ] {
        assert!(err.contains(line), "missing {line:?} in\n{err}");
    }
    let n = w.api.get("v1", "Node", "", "k3d-shop-agent-0").unwrap();
    assert_eq!(n["metadata"]["labels"]["pool"], "web");
    assert!(n["spec"].get("unschedulable").is_none());
    assert!(w.api.get("v1", "Pod", "shop", "web-old").is_none());
    let cm = w
        .api
        .get("v1", "ConfigMap", "kube-public", "local-registry-hosting")
        .unwrap();
    assert!(cm["data"]["localRegistryHosting.v1"]
        .as_str()
        .unwrap()
        .contains(&format!("localhost:{}", w.reg_port)));

    // The engine now reports everything running and attached: nothing left to do.
    w.engine(true, true, true);
    w.stubs.clear_calls();
    w.api.reset_counts();
    let o = w.ktwin(&["heal"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("nothing to heal"), "{err}");
    assert_eq!(w.api.writes(), 0);
    assert!(w
        .stubs
        .calls()
        .iter()
        .all(|c| !c.starts_with("docker start")));
}

#[test]
fn heal_reports_what_is_still_unhealthy_with_logs() {
    let w = World::new("");
    w.nodes(json!({}));
    w.api.controller(healthy_workloads);
    assert_eq!(w.ktwin(&["deploy"]).status.code(), Some(0));
    w.api.set("apps/v1", "Deployment", "shop", "web", |d| {
        d["status"]["readyReplicas"] = json!(1);
    });
    w.api.put(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
        "status": {"phase": "Running", "containerStatuses": [{"name": "app", "ready": false, "restartCount": 7,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}));
    w.api.with(|s| {
        s.set_logs(
            "shop",
            "web-1",
            "app",
            true,
            "listening\npanic: cannot open /data: permission denied\n",
        )
    });
    let o = w.ktwin(&["heal"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("nothing to heal"), "{err}");
    assert!(
        err.contains("still unhealthy:\ndeployment/web (shop): 1/2 ready"),
        "{err}"
    );
    assert!(
        err.contains("CrashLoopBackOff: container app restarted 7 times"),
        "{err}"
    );
    assert!(
        err.contains("| panic: cannot open /data: permission denied"),
        "{err}"
    );
}

#[test]
fn logs_and_restart() {
    let w = World::new("");
    w.api.controller(healthy_workloads);
    assert_eq!(w.ktwin(&["deploy"]).status.code(), Some(0));
    for (pod, text) in [("web-a", "a1\na2\n"), ("web-b", "b1\n")] {
        w.api.put(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod, "namespace": "shop", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app"}, {"name": "sidecar"}]}}));
        w.api.with(|s| s.set_logs("shop", pod, "app", false, text));
        w.api
            .with(|s| s.set_logs("shop", pod, "sidecar", false, "side\n"));
    }
    let o = w.ktwin(&["logs", "web"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(
        out,
        "web-a/app | a1\nweb-a/app | a2\nweb-a/sidecar | side\nweb-b/app | b1\nweb-b/sidecar | side\n"
    );
    let o = w.ktwin(&["logs", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("no workload named `nope`"));

    let o = w.ktwin(&["restart", "web", "--timeout", "20s"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("deployment/web (shop): restart requested"),
        "{err}"
    );
    assert!(err.contains("rolled out"), "{err}");
    let d = w.api.get("apps/v1", "Deployment", "shop", "web").unwrap();
    assert_eq!(d["metadata"]["generation"], 2);
    assert!(
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string()
    );
    // The next deploy neither conflicts with the restart nor undoes it.
    w.api.reset_counts();
    let o = w.ktwin(&["deploy"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    assert_eq!(w.api.writes(), 0);
}

#[test]
fn doctor_live_checks_the_running_twin() {
    let w = World::new("");
    w.nodes(json!({"metadata": {"labels": {"pool": "api"}}}));
    w.api.put(json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "local-path"}}));
    w.api.put(json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "web-1.1", "namespace": "shop"},
        "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "shop"},
        "reason": "Unhealthy", "message": "Readiness probe failed: HTTP probe failed with statuscode: 403"}));
    let o = w.ktwin(&["doctor", "--live", "-o", "json"]);
    let r: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o).1));
    let checks: Vec<&str> = r
        .as_array()
        .or_else(|| r["findings"].as_array())
        .unwrap()
        .iter()
        .filter_map(|f| f["check"].as_str())
        .filter(|c| c.starts_with("live-"))
        .collect();
    assert_eq!(checks, ["live-node-drift", "live-probe-auth"], "{r:#}");
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn doctor_live_reports_the_version_skew_with_a_remote_environment() {
    let w = World::new("  prod:\n    manifests: [k8s]\n    context: prod\n");
    w.nodes(json!({}));
    w.api.put(json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "local-path"}}));
    // Production is another API server, on Kubernetes 1.31; the twin's stand-in says 1.33.
    let remote = ApiStandIn::start();
    remote.with(|s| s.server_minor = 31);
    // The guard knows a cluster by its kube-system namespace.
    remote
        .put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}}));
    let both = |remote_port: u16| {
        std::fs::write(&w.kubeconfig, format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: twin\n  cluster: {{server: 'http://127.0.0.1:{}'}}\n- name: prod\n  cluster: {{server: 'http://127.0.0.1:{remote_port}'}}\nusers:\n- name: u\n  user: {{token: t}}\ncontexts:\n- name: k3d-shop\n  context: {{cluster: twin, user: u}}\n- name: prod\n  context: {{cluster: prod, user: u}}\ncurrent-context: k3d-shop\n",
            w.api.port
        )).unwrap();
    };
    both(remote.port);
    let skew = |o: &std::process::Output| -> Vec<Value> {
        let r: Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(o).1));
        r.as_array()
            .or_else(|| r["findings"].as_array())
            .unwrap()
            .iter()
            .filter(|f| f["check"] == "live-version-skew")
            .cloned()
            .collect()
    };
    let o = w.ktwin(&["doctor", "--live", "-o", "json"]);
    let found = skew(&o);
    assert_eq!(found.len(), 1, "{}", text(&o).1);
    let msg = found[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("v1.33.0-stand-in") && msg.contains("`prod` runs v1.31.0-stand-in"),
        "{msg}"
    );
    assert!(
        found[0]["fix"]
            .as_str()
            .unwrap()
            .contains("kubernetesVersion: v1.31"),
        "{}",
        found[0]
    );
    // The same minor: nothing to say.
    remote.with(|s| s.server_minor = 33);
    assert!(skew(&w.ktwin(&["doctor", "--live", "-o", "json"])).is_empty());
    // Production unreachable: said on stderr, not a finding.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    both(closed);
    let o = w.ktwin(&["doctor", "--live", "-o", "json"]);
    assert!(skew(&o).is_empty());
    assert!(
        text(&o).1.contains("environment `prod` could not be read"),
        "{}",
        text(&o).1
    );
}

// ---- the guard by identity ---------------------------------------------------------------

#[test]
fn a_same_named_context_elsewhere_is_never_contacted() {
    let w = World::new("");
    w.api.controller(healthy_workloads);
    // The user's kubeconfig: `k3d-shop` leads to a listener that counts connections (a
    // production cluster that happens to carry the twin's name). The provider's kubeconfig
    // (the stub `k3d kubeconfig get shop`) leads to the stand-in.
    let elsewhere = Responder::start();
    let user = w.tp.write(
        "user-kubeconfig",
        &format!("apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster: {{server: 'http://127.0.0.1:{}'}}\ncontexts:\n- name: k3d-shop\n  context: {{cluster: prod, user: admin}}\ncurrent-context: k3d-shop\nusers:\n- name: admin\n  user: {{token: PRODTOKEN123}}\n", elsewhere.port),
    );
    let o = ktwin_with_stubs(
        env!("CARGO_BIN_EXE_ktwin"),
        w.tp.path(),
        &w.stubs,
        w.state.path(),
    )
    .env("KUBECONFIG", &user)
    .args(["deploy", "--timeout", "20s"])
    .output()
    .unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(
        elsewhere.connections(),
        0,
        "the same-named context was contacted"
    );
    let standin = format!("http://127.0.0.1:{}", w.api.port);
    assert!(
        err.contains(&format!(
            "deploying 2 object(s) of local to k3d-shop at {standin}"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "warning: your kubeconfig's context `k3d-shop` points at http://127.0.0.1:{}, not at the twin ({standin})",
            elsewhere.port
        )),
        "{err}"
    );
    assert!(!err.contains("PRODTOKEN123"));
    assert!(w.api.get("apps/v1", "Deployment", "shop", "web").is_some());
}

#[test]
fn a_twin_whose_server_is_not_on_this_machine_is_refused() {
    let w = World::new("");
    w.stubs.add_rules(
        "k3d",
        &[(
            "kubeconfig get shop",
            "apiVersion: v1\nkind: Config\nclusters:\n- name: k3d-shop\n  cluster: {server: 'https://10.255.0.1:6443'}\ncontexts:\n- name: k3d-shop\n  context: {cluster: k3d-shop, user: admin@k3d-shop}\ncurrent-context: k3d-shop\nusers:\n- name: admin@k3d-shop\n  user: {token: t}\n",
            0,
        )],
    );
    for args in [&["deploy"][..], &["restart", "web"], &["heal"], &["status"]] {
        let o = w.ktwin(args);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("its server https://10.255.0.1:6443 is not"),
            "{args:?}: {err}"
        );
    }
    assert!(w.api.requests().is_empty(), "{:?}", w.api.requests());
}

#[test]
fn a_remote_context_that_now_leads_to_another_cluster_is_refused() {
    let w = World::new("");
    w.api.controller(healthy_workloads);
    let y = std::fs::read_to_string(w.tp.path().join("ktwin.yaml")).unwrap()
        + "  dev:\n    manifests: [k8s]\n    context: prod\n";
    std::fs::write(w.tp.path().join("ktwin.yaml"), y).unwrap();
    let kube_system = |uid: &str| {
        json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "kube-system", "uid": uid}})
    };
    w.api.put(kube_system("11111111-aaaa"));
    let o = w.ktwin(&["deploy", "--env", "dev", "--timeout", "20s"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    let record =
        std::fs::read_to_string(w.state.path().join("ktwin/identities/shop-dev.json")).unwrap();
    assert!(record.contains("11111111-aaaa"), "{record}");

    // The same context name, another cluster (rebuilt, or someone re-pointed it).
    w.api.with(|s| {
        s.delete("v1", "Namespace", "", "kube-system");
    });
    w.api.put(kube_system("22222222-bbbb"));
    w.api.reset_counts();
    let o = w.ktwin(&["deploy", "--env", "dev"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("11111111-aaaa") && err.contains("22222222-bbbb"),
        "{err}"
    );
    assert!(err.contains("--accept-new-cluster"), "{err}");
    let writes: Vec<_> = w
        .api
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
    // Reading still works, with a warning.
    let o = w.ktwin(&["status", "--env", "dev"]);
    assert!(text(&o)
        .1
        .contains("warning: context `prod` now leads to a different cluster"));
    // Accepted: deployed, and the new identity recorded.
    let o = w.ktwin(&["deploy", "--env", "dev", "--accept-new-cluster"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    let record =
        std::fs::read_to_string(w.state.path().join("ktwin/identities/shop-dev.json")).unwrap();
    assert!(record.contains("22222222-bbbb"), "{record}");
}
