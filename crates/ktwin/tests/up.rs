//! Tier 1: `ktwin up` / `ktwin down` against stub `k3d`, `kind` and `docker` executables
//! (ktwin-testkit's StubBin) that record every argv and stdin in order and print canned
//! output, and ktwin-testkit's kube API **stand-in** for the API half (the KEP-1755
//! ConfigMap, node labels and taints), reached through the kubeconfig the stub provider
//! reports. The registry's `GET /v2/` health check is answered by a stand-in HTTP responder on
//! 127.0.0.1 (it answers 200 to everything; it is not a registry). No kubectl is involved.
//! The exact command sequences are snapshots in tests/expected/up/.
#![allow(clippy::disallowed_methods)] // tests run the binary and real tools directly

use std::process::{Command, Output};

use ktwin_testkit::kubeapi::ApiStandIn;
use ktwin_testkit::{
    assert_expected, ktwin_with_stubs, workspace_root, Responder, StubBin, TempProject,
};
use serde_json::{json, Value};

struct Twin {
    tp: TempProject,
    stubs: StubBin,
    state: tempfile::TempDir,
    reg: Responder,
    api: ApiStandIn,
    provider: &'static str,
    /// Members of the `web` pool the stub cluster reports.
    web: std::cell::Cell<usize>,
    /// Agents k3d added live (container names), in the `db` pool; the stand-in shows each
    /// with the `web` pool's taint, as k3d starts it with the first agent's command line.
    live_db: std::cell::RefCell<Vec<String>>,
    /// Exit code of the stub's `k3d node delete` (0: it works).
    node_delete_exit: std::cell::Cell<i32>,
    /// Whether the stub engine shows the containers of agents added live.
    live_containers: std::cell::Cell<bool>,
}

const POOLS: &str = "  agents:\n    - {name: web, count: 2, labels: {pool: web}, taints: ['dedicated=web:NoSchedule']}\n    - {name: db, count: 1, labels: {pool: db}}\n";

impl Twin {
    fn new(provider: &'static str) -> Twin {
        let t = Twin {
            tp: TempProject::new(),
            stubs: StubBin::new(),
            state: tempfile::tempdir().unwrap(),
            reg: Responder::start(),
            api: ApiStandIn::start(),
            provider,
            web: std::cell::Cell::new(2),
            live_db: std::cell::RefCell::new(vec![]),
            node_delete_exit: std::cell::Cell::new(0),
            live_containers: std::cell::Cell::new(false),
        };
        t.config(POOLS);
        t
    }
    fn config(&self, agents: &str) {
        self.tp.write(
            "ktwin.yaml",
            &format!(
                "apiVersion: ktwin.dev/v1alpha1\nkind: Project\nname: shop\ncluster:\n  provider: {}\n{agents}registry:\n  hostPort: {}\n",
                self.provider, self.reg.port
            ),
        );
    }
    fn nodes(&self) -> Vec<(String, Option<&'static str>)> {
        let (server, agent): (String, Box<dyn Fn(usize) -> String>) = match self.provider {
            "k3d" => (
                "k3d-shop-server-0".into(),
                Box::new(|i| format!("k3d-shop-agent-{i}")),
            ),
            _ => (
                "shop-control-plane".into(),
                Box::new(|i| {
                    if i == 0 {
                        "shop-worker".into()
                    } else {
                        format!("shop-worker{}", i + 1)
                    }
                }),
            ),
        };
        let mut v = vec![(server, None)];
        let web = self.web.get();
        for i in 0..web {
            v.push((agent(i), Some("web")));
        }
        v.push((agent(web), Some("db")));
        for n in self.live_db.borrow().iter() {
            v.push((n.clone(), Some("db-live")));
        }
        v
    }
    /// Stubs for a world where the cluster exists or not, nodes labelled `label(pool)` in
    /// the stand-in.
    fn world(&self, exists: bool, version: &str, label: &dyn Fn(&str) -> String) {
        self.api.with(|s| {
            for n in s.list("v1", "Node") {
                s.delete("v1", "Node", "", n["metadata"]["name"].as_str().unwrap());
            }
        });
        for (n, pool) in self.nodes() {
            let node: Value = match pool {
                Some(p) => {
                    let taints = if p == "web" || p == "db-live" {
                        json!([{"key": "dedicated", "value": "web", "effect": "NoSchedule"}])
                    } else {
                        json!([])
                    };
                    let pool = label(p.trim_end_matches("-live"));
                    json!({"apiVersion": "v1", "kind": "Node",
                        "metadata": {"name": n, "labels": {"pool": pool}},
                        "spec": {"taints": taints}})
                }
                None => json!({"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": n, "labels": {}}, "spec": {}}),
            };
            self.api.put(node);
        }
        let context = format!("{}-shop", self.provider);
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig =
            std::fs::read_to_string(self.api.kubeconfig(dir.path(), &[&context])).unwrap();
        let inspect = format!(
            r#"[{{"State":{{"Running":true}},"Config":{{"Image":"registry:2","Labels":{{"dev.ktwin.managed":"true"}}}},"HostConfig":{{"PortBindings":{{"5000/tcp":[{{"HostIp":"127.0.0.1","HostPort":"{}"}}]}}}}}}]"#,
            self.reg.port
        );
        self.stubs.add_rules(
            "docker",
            &[
                // Agent containers k3d adds live: there or not, as the test says.
                (
                    "container inspect -f {{.Id}} k3d-shop-agent-*-0",
                    "",
                    if self.live_containers.get() { 0 } else { 1 },
                ),
                ("container inspect*", &inspect, 0),
                (
                    "inspect -f*",
                    if exists {
                        r#"{"bridge":{},"k3d-shop":{},"kind":{}}"#
                    } else {
                        r#"{"bridge":{}}"#
                    },
                    0,
                ),
            ],
        );
        match self.provider {
            "k3d" => {
                let list = if exists { r#"[{"name":"shop"}]"# } else { "[]" };
                self.stubs.add_rules(
                    "k3d",
                    &[
                        ("version*", version, 0),
                        ("cluster list*", list, 0),
                        ("kubeconfig get shop", &kubeconfig, 0),
                        ("node delete*", "", self.node_delete_exit.get()),
                    ],
                );
            }
            _ => {
                let list = if exists { "shop\n" } else { "" };
                self.stubs.add_rules(
                    "kind",
                    &[
                        ("version*", version, 0),
                        ("get clusters*", list, 0),
                        ("get kubeconfig --name shop", &kubeconfig, 0),
                    ],
                );
            }
        }
    }
    /// Node patches the stand-in received.
    fn node_patches(&self) -> usize {
        self.api
            .requests()
            .iter()
            .filter(|r| r.method == "PATCH" && r.path.starts_with("/api/v1/nodes/"))
            .count()
    }
    fn pool_label(&self, node: &str) -> Value {
        self.api.get("v1", "Node", "", node).unwrap()["metadata"]["labels"]["pool"].clone()
    }
    fn ktwin(&self, args: &[&str]) -> Output {
        ktwin_with_stubs(
            env!("CARGO_BIN_EXE_ktwin"),
            self.tp.path(),
            &self.stubs,
            self.state.path(),
        )
        .args(args)
        .output()
        .unwrap()
    }
    /// The recorded calls with temp paths and ports made stable.
    fn stable(&self, s: &str) -> String {
        s.replace(&self.state.path().display().to_string(), "$STATE")
            .replace(&format!("127.0.0.1:{}", self.api.port), "127.0.0.1:$API")
            .replace(&self.reg.port.to_string(), "$PORT")
    }
    fn calls(&self) -> String {
        let mut s = self.stubs.calls().join("\n");
        s.push('\n');
        self.stable(&s)
    }
    fn snapshot(&self, case: &str, o: &Output) {
        let text = format!(
            "# exit {:?}\n{}# stderr\n{}",
            o.status.code(),
            self.calls(),
            self.stable(&String::from_utf8_lossy(&o.stderr))
        );
        assert_expected(
            &workspace_root().join(format!(
                "crates/ktwin/tests/expected/up/{}-{case}.txt",
                self.provider
            )),
            &text,
        );
        self.stubs.clear_calls();
        self.api.reset_counts();
    }
}

fn version(provider: &str) -> &'static str {
    match provider {
        "k3d" => "k3d version v5.6.0\nk3s version v1.27.4-k3s1 (default)\n",
        _ => "kind v0.20.0 go1.20.4 linux/amd64\n",
    }
}

fn lifecycle(provider: &'static str) {
    let t = Twin::new(provider);
    let same = |p: &str| p.to_string();

    // Fresh: create, wire, check nodes.
    t.world(false, version(provider), &same);
    let o = t.ktwin(&["up"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let calls = t.calls();
    assert!(calls.contains(" create "), "{calls}");
    assert!(!calls.contains("kubectl"), "{calls}");
    let cm = t
        .api
        .get("v1", "ConfigMap", "kube-public", "local-registry-hosting")
        .expect("the KEP-1755 ConfigMap, written through the API");
    assert!(
        cm["data"]["localRegistryHosting.v1"]
            .as_str()
            .unwrap()
            .contains(&format!("localhost:{}", t.reg.port)),
        "{cm}"
    );
    assert!(!calls.contains(" delete"), "{calls}");
    assert_eq!(t.node_patches(), 0, "nodes already carry their labels");
    let config = std::fs::read_to_string(
        t.state
            .path()
            .join(format!("ktwin/clusters/{provider}-shop.config.yaml")),
    )
    .unwrap();
    assert!(
        config.contains("pool=web") || config.contains("pool: web"),
        "{config}"
    );
    t.snapshot("fresh", &o);

    // Already up: no create, nothing fixed.
    t.world(true, version(provider), &same);
    let o = t.ktwin(&["up"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let calls = t.calls();
    assert!(
        !calls.contains(" create ") && !calls.contains(" delete"),
        "{calls}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("up to date"));
    t.snapshot("already-up", &o);

    // Labels changed in ktwin.yaml: fixed in place on the running nodes.
    t.config(&POOLS.replace("pool: web", "pool: front"));
    let o = t.ktwin(&["up"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(t.node_patches(), 2);
    let web0 = if provider == "k3d" {
        "k3d-shop-agent-0"
    } else {
        "shop-worker"
    };
    assert_eq!(t.pool_label(web0), "front");
    t.snapshot("relabelled", &o);
    t.config(POOLS);
    t.ktwin(&["up"]);
    t.stubs.clear_calls();

    // A port added: live on k3d's load balancer, recreate-class on kind (and said why).
    let ports = format!("{POOLS}  ports: [{{hostPort: 8080, nodePort: 30080}}]\n");
    t.config(&ports);
    let o = t.ktwin(&["up"]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    if provider == "k3d" {
        assert!(o.status.success(), "{err}");
        let calls = t.calls();
        assert!(
            calls.contains("k3d node edit k3d-shop-serverlb --port-add 127.0.0.1:8080:30080"),
            "{calls}"
        );
        assert!(
            !calls.contains(" delete") && !calls.contains(" create "),
            "{calls}"
        );
        t.snapshot("port-added-live", &o);
        // And removed again, live too.
        t.config(POOLS);
        let o = t.ktwin(&["up"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(
            t.calls()
                .contains("k3d node edit k3d-shop-serverlb --port-delete 127.0.0.1:8080:30080"),
            "{}",
            t.calls()
        );
    } else {
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            err.contains("kind maps host ports only") && err.contains("--recreate"),
            "{err}"
        );
        assert!(!t.calls().contains(" delete"));
        t.config(POOLS);
    }
    t.stubs.clear_calls();

    // Drifted shape: reported with the exact difference, nothing deleted, exit 1.
    t.config(&POOLS.replace("count: 2", "count: 3"));
    let o = t.ktwin(&["up"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("web×2, db×1 → web×3, db×1") && err.contains("--recreate"),
        "{err}"
    );
    assert!(!t.calls().contains(" delete"));
    t.snapshot("drifted", &o);

    // --dry-run of the recreate: printed, not run.
    let o = t.ktwin(&["up", "--recreate", "--dry-run"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let calls = t.calls();
    assert!(
        !calls.contains(" delete") && !calls.contains(" create "),
        "{calls}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("would delete the cluster"));
    t.snapshot("recreate-dry-run", &o);

    // --recreate: delete, then create (the new cluster has three web nodes).
    t.web.set(3);
    t.world(true, version(provider), &same);
    let o = t.ktwin(&["up", "--recreate"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let calls = t.calls();
    let del = calls.find(" delete").expect("delete");
    let create = calls.find(" create ").expect("create");
    assert!(del < create, "{calls}");
    t.snapshot("recreate", &o);

    // down: deletes the cluster, keeps the registry.
    let o = t.ktwin(&["down"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let calls = t.calls();
    assert!(calls.contains(" delete"), "{calls}");
    assert!(!calls.contains("docker rm"), "registry kept: {calls}");
    t.snapshot("down", &o);
}

#[test]
fn k3d_adds_an_agent_to_the_last_pool_live() {
    let t = Twin::new("k3d");
    let same = |p: &str| p.to_string();
    t.world(false, version("k3d"), &same);
    let o = t.ktwin(&["up"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    t.stubs.clear_calls();

    // One more `db` node: db is the last pool, so it is agent 3, added to the running twin.
    t.config(&POOLS.replace("{name: db, count: 1", "{name: db, count: 2"));
    t.live_db.borrow_mut().push("k3d-shop-agent-3-0".into());
    t.world(true, version("k3d"), &same);
    t.api.reset_counts();
    let o = t.ktwin(&["up"]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{err}");
    let calls = t.calls();
    assert!(
        calls.contains(
            "k3d node create shop-agent-3 --cluster shop --role agent --timeout=180s --k3s-node-label=pool=db\n"
        ),
        "{calls}"
    );
    assert!(
        !calls.contains(" delete") && !calls.contains("cluster create"),
        "{calls}"
    );
    // The web taint it started with is another pool's: removed; its own label is there.
    let node = t.api.get("v1", "Node", "", "k3d-shop-agent-3-0").unwrap();
    assert_eq!(node["spec"]["taints"], json!([]), "{node}");
    assert_eq!(node["metadata"]["labels"]["pool"], "db");
    assert!(
        err.contains("removed taint dedicated=web:NoSchedule (another pool's)"),
        "{err}"
    );
    t.snapshot("agent-added-live", &o);

    // The record names it: the next `up` changes nothing and finds every node.
    let o = t.ktwin(&["up"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!t.calls().contains("node create"), "{}", t.calls());
    assert!(String::from_utf8_lossy(&o.stderr).contains("cluster shop: up to date"));

    // Removed again: drained through the API (its Deployment pod evicted, a DaemonSet's
    // left, as `kubectl drain --ignore-daemonsets` does), then deleted. First with a
    // `k3d node delete` that fails: the drain came before it, the record still holds the
    // node, the Node object is still there.
    let pod = |name: &str, owner: &str| {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner, "name": "x", "uid": "u"}]},
            "spec": {"nodeName": "k3d-shop-agent-3-0", "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running"}})
    };
    t.config(POOLS);
    t.node_delete_exit.set(1);
    t.live_containers.set(true);
    t.world(true, version("k3d"), &same);
    // A volume pinned to the node: not removed, and schedulable again.
    t.api.put(json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pvc-9"},
        "spec": {"claimRef": {"namespace": "shop", "name": "data"}, "nodeAffinity": {"required": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["k3d-shop-agent-3-0"]}]}]}}}}));
    let o = t.ktwin(&["up"]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("volumes live on it") && err.contains("pvc-9 for shop/data"),
        "{err}"
    );
    assert!(!t.calls().contains("node delete"), "{}", t.calls());
    t.api
        .with(|s| s.delete("v1", "PersistentVolume", "", "pvc-9"));
    t.api.put(pod("db-7d9", "ReplicaSet"));
    t.api.put(pod("logs-x1", "DaemonSet"));
    t.stubs.clear_calls();
    let o = t.ktwin(&["up"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        t.api.get("v1", "Pod", "shop", "db-7d9").is_none(),
        "evicted before the delete"
    );
    assert!(
        t.api.get("v1", "Pod", "shop", "logs-x1").is_some(),
        "a DaemonSet pod stays"
    );
    let node = t.api.get("v1", "Node", "", "k3d-shop-agent-3-0").unwrap();
    assert_eq!(node["spec"]["unschedulable"], true, "cordoned: {node}");
    assert!(
        t.calls().contains("k3d node delete k3d-shop-agent-3-0"),
        "{}",
        t.calls()
    );
    // Then it works: the container and the Node object go, and the record forgets it.
    t.node_delete_exit.set(0);
    t.world(true, version("k3d"), &same);
    t.stubs.clear_calls();
    let o = t.ktwin(&["up"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(t.api.get("v1", "Node", "", "k3d-shop-agent-3-0").is_none());
    t.snapshot("agent-removed-live", &o);
    t.live_db.borrow_mut().clear();
    t.world(true, version("k3d"), &same);
    let o = t.ktwin(&["up"]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(err.contains("cluster shop: up to date"), "{err}");
    assert!(!t.calls().contains("node delete"), "{}", t.calls());
}

/// A Postgres row stands here for a file a volume holds: ktwin owns the host dir each node
/// mounts and the class that names volume dirs by claim; what the provisioner and the
/// database do inside a real twin is tier 3.
#[test]
fn persistent_volumes_outlive_down_and_only_purge_volumes_deletes_them() {
    let t = Twin::new("k3d");
    t.config(&format!("{POOLS}  persistentVolumes: true\n"));
    let same = |p: &str| p.to_string();
    t.world(false, version("k3d"), &same);
    let o = t.ktwin(&["up"]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{err}");
    let dir = t.state.path().join("data/ktwin/volumes/shop");
    assert!(dir.is_dir(), "ktwin made the volumes dir");
    let config =
        std::fs::read_to_string(t.state.path().join("ktwin/clusters/k3d-shop.config.yaml"))
            .unwrap();
    assert!(
        config.contains(&format!("{}:/var/lib/rancher/k3s/storage", dir.display())),
        "{config}"
    );
    let class = t
        .api
        .get("storage.k8s.io/v1", "StorageClass", "", "ktwin-persistent")
        .expect("the persistent class, through the API");
    assert_eq!(class["provisioner"], "rancher.io/local-path");
    assert_eq!(
        class["parameters"]["pathPattern"],
        "{{ .PVC.Namespace }}/{{ .PVC.Name }}/"
    );
    assert!(
        err.contains("storageclass ktwin-persistent: created"),
        "{err}"
    );
    // What the database wrote, in the directory the class names for claim shop/data.
    std::fs::create_dir_all(dir.join("shop/data")).unwrap();
    std::fs::write(dir.join("shop/data/row"), "42").unwrap();

    // down keeps it and says where; a dry run of the purge deletes nothing.
    let o = t.ktwin(&["down"]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!("volumes: kept in {}", dir.display()))
            && err.contains("--purge-volumes"),
        "{err}"
    );
    t.world(true, version("k3d"), &same);
    let o = t.ktwin(&["down", "--purge-volumes", "--dry-run"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("would delete the volumes"));
    assert_eq!(
        std::fs::read_to_string(dir.join("shop/data/row")).unwrap(),
        "42"
    );

    // The next twin (a new cluster: no class yet) mounts the same dir and gets the class.
    t.api
        .with(|s| s.delete("storage.k8s.io/v1", "StorageClass", "", "ktwin-persistent"));
    t.world(false, version("k3d"), &same);
    let o = t.ktwin(&["up"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(dir.join("shop/data/row")).unwrap(),
        "42"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("storageclass ktwin-persistent: created"));
    // A second `up` on the same twin finds it.
    t.world(true, version("k3d"), &same);
    let o = t.ktwin(&["up"]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("storageclass ktwin-persistent: created"));
    // A provisioner too old for `pathPattern` would lose the data on the next twin: refused.
    t.api
        .with(|s| s.delete("storage.k8s.io/v1", "StorageClass", "", "ktwin-persistent"));
    t.api.put(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "local-path-provisioner", "namespace": "kube-system"},
        "spec": {"selector": {"matchLabels": {"app": "lpp"}}, "template": {"metadata": {"labels": {"app": "lpp"}},
            "spec": {"containers": [{"name": "p", "image": "rancher/local-path-provisioner:v0.0.24"}]}}}}));
    let o = t.ktwin(&["up"]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("v0.0.24") && err.contains("pathPattern"),
        "{err}"
    );
    t.api.with(|s| {
        s.delete(
            "apps/v1",
            "Deployment",
            "kube-system",
            "local-path-provisioner",
        )
    });

    // --purge-volumes deletes them.
    t.world(true, version("k3d"), &same);
    // Another twin's volumes beside them are not this twin's to delete.
    let other = t
        .state
        .path()
        .join("data/ktwin/volumes/other-twin/shop/data");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("row"), "theirs").unwrap();
    let o = t.ktwin(&["down", "--purge-volumes"]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{err}");
    assert!(!dir.exists(), "{err}");
    assert_eq!(
        std::fs::read_to_string(other.join("row")).unwrap(),
        "theirs"
    );
    assert!(err.contains("volumes: deleted"), "{err}");
}

#[test]
fn k3d_up_down_command_sequences() {
    lifecycle("k3d");
}

#[test]
fn kind_up_down_command_sequences() {
    lifecycle("kind");
}

#[test]
fn too_old_or_missing_tools_are_refused_with_the_reason() {
    let t = Twin::new("k3d");
    let same = |p: &str| p.to_string();
    t.world(false, "k3d version v5.4.9\n", &same);
    let o = t.ktwin(&["up"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("5.4.9") && err.contains("5.5.0") && err.contains("v1alpha5"),
        "{err}"
    );
    assert!(!t.calls().contains(" create "));

    let t = Twin::new("kind");
    t.world(false, "kind v0.19.0 go1.20 linux/amd64\n", &same);
    let err = String::from_utf8_lossy(&t.ktwin(&["up"]).stderr).to_string();
    assert!(err.contains("0.20.0") && err.contains("certs.d"), "{err}");

    // No kind on PATH at all.
    std::fs::remove_file(t.stubs.path().join("kind")).unwrap();
    let o = t.ktwin(&["up"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Install kind"));
}

#[test]
fn a_wrong_context_is_refused_before_any_connection() {
    // A kubeconfig whose every context points at a listener that counts connections; real
    // kubectl (no stub) would connect to it if ktwin let it run.
    let api = Responder::start();
    let t = Twin::new("k3d");
    t.world(false, version("k3d"), &|p: &str| p.to_string());
    let kubeconfig = t.tp.write(
        "kubeconfig",
        &format!("apiVersion: v1\nkind: Config\nclusters:\n- name: x\n  cluster: {{server: 'http://127.0.0.1:{}'}}\ncontexts:\n- name: prod\n  context: {{cluster: x, user: u}}\n- name: k3d-shop\n  context: {{cluster: x, user: u}}\ncurrent-context: prod\nusers:\n- name: u\n  user: {{}}\n", api.port),
    );
    let o = Command::new(env!("CARGO_BIN_EXE_ktwin"))
        .args(["up", "--context", "prod"])
        .current_dir(t.tp.path())
        .env("KUBECONFIG", &kubeconfig)
        .env("XDG_STATE_HOME", t.state.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("prod") && err.contains("k3d-shop"), "{err}");
    assert_eq!(api.connections(), 0);
    assert!(
        t.stubs.calls().is_empty(),
        "nothing ran: {:?}",
        t.stubs.calls()
    );

    // The control: the listener does see a connection when a client is pointed at it
    // (kubectl is installed by scripts/test.sh).
    let _ = Command::new("kubectl")
        .args([
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--context",
            "k3d-shop",
            "get",
            "nodes",
            "--request-timeout=2s",
        ])
        .output()
        .expect("kubectl on PATH");
    assert!(api.connections() > 0);
}

#[test]
fn down_refuses_a_cluster_ktwin_did_not_create() {
    let t = Twin::new("k3d");
    t.world(true, version("k3d"), &|p: &str| p.to_string());
    // A cluster named like the project exists, but ktwin has no record of creating it.
    let o = t.ktwin(&["down"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("no record of creating it"), "{err}");
    assert!(err.contains("`k3d cluster delete shop`"), "{err}");
    assert!(!t.calls().contains("cluster delete"), "{}", t.calls());
}

#[test]
fn a_failure_after_create_leaves_a_cluster_ktwin_still_owns() {
    let t = Twin::new("k3d");
    t.world(false, version("k3d"), &|p: &str| p.to_string());
    // The create works; the step after it (the API half) fails once.
    t.stubs.add_rules(
        "k3d",
        &[
            ("version*", version("k3d"), 0),
            ("cluster list*", "[]", 0),
            ("kubeconfig get shop", "", 1),
        ],
    );
    let o = t.ktwin(&["up"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(t.calls().contains("k3d cluster create"));
    assert!(t
        .state
        .path()
        .join("ktwin/clusters/k3d-shop.spec.json")
        .is_file());
    // The next `up` resumes: the cluster is ktwin's, nothing is recreated.
    t.world(true, version("k3d"), &|p: &str| p.to_string());
    t.stubs.clear_calls();
    let o = t.ktwin(&["up"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("cluster shop: up to date"), "{err}");
    assert!(!t.calls().contains("create") && !t.calls().contains("delete"));
    // A torn spec is an error naming it, never "unmanaged".
    std::fs::write(
        t.state.path().join("ktwin/clusters/k3d-shop.spec.json"),
        "{\"provider\": ",
    )
    .unwrap();
    let o = t.ktwin(&["up"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("k3d-shop.spec.json") && !err.contains("no record"),
        "{err}"
    );
}
