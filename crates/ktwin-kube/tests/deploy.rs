//! Tier 1: deploy against the kube API stand-in (real HTTP on 127.0.0.1, kube-rs client).

use std::cell::RefCell;
use std::time::Duration;

use ktwin_kube::deploy::{deploy, Options, Report};
use ktwin_kube::{block_on, connect_file, Discovery, KubeError};
use ktwin_testkit::kubeapi::{healthy_workloads, ApiStandIn};
use ktwin_testkit::TempProject;
use serde_json::{json, Value};

struct Twin {
    api: ApiStandIn,
    dir: TempProject,
}

impl Twin {
    fn new() -> Twin {
        let api = ApiStandIn::start();
        let dir = TempProject::new();
        api.kubeconfig(dir.path(), &["k3d-swarm"]);
        Twin { api, dir }
    }

    fn deploy_with(
        &self,
        docs: &[Value],
        env: &str,
        prune: bool,
        force: bool,
        timeout: Duration,
    ) -> (Result<Report, KubeError>, Vec<String>) {
        let said = RefCell::new(Vec::new());
        let say = |s: &str| said.borrow_mut().push(s.to_string());
        let state = self.dir.path().join(format!("state-{env}.json"));
        let r = block_on(async {
            let client = connect_file(&self.dir.path().join("kubeconfig"), "k3d-swarm").await?;
            let mut disc = Discovery::new(client);
            let o = Options {
                project: "swarm",
                env,
                prune,
                force_conflicts: force,
                timeout,
                registry_prefix: Some("localhost:5001/".into()),
                state_file: Some(state),
                say: &say,
            };
            deploy(&mut disc, docs, &o).await
        });
        (r, said.into_inner())
    }

    fn deploy(&self, docs: &[Value]) -> (Result<Report, KubeError>, Vec<String>) {
        self.deploy_with(docs, "local", true, false, Duration::from_secs(10))
    }
}

fn web(image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": image,
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}}}]}}}})
}

fn stack(image: &str) -> Vec<Value> {
    vec![
        web(image),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-config", "namespace": "shop"},
            "data": {"MODE": "local"}}),
    ]
}

fn actions(r: &Report) -> Vec<String> {
    r.applied
        .iter()
        .map(|a| format!("{} {}", a.object, a.action))
        .collect()
}

#[test]
fn first_deploy_creates_namespace_applies_in_order_and_waits_for_rollout() {
    let t = Twin::new();
    t.api.controller(healthy_workloads);
    let (r, said) = t.deploy(&stack("localhost:5001/web:aaa"));
    let r = r.expect("deploy");
    assert_eq!(r.namespaces_created, ["shop"]);
    assert_eq!(
        actions(&r),
        [
            "configmap/web-config (shop) created",
            "service/web (shop) created",
            "deployment/web (shop) created"
        ]
    );
    assert_eq!(r.rolled_out, ["deployment/web (shop)"]);
    assert!(
        said.iter()
            .any(|s| s.starts_with("deployment/web (shop): rolled out")),
        "{said:?}"
    );
    let d = t.api.get("apps/v1", "Deployment", "shop", "web").unwrap();
    assert_eq!(
        d["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "ktwin"
    );
    assert_eq!(d["metadata"]["labels"]["ktwin.dev/project"], "swarm");
    assert_eq!(d["metadata"]["labels"]["ktwin.dev/env"], "local");
    assert_eq!(d["metadata"]["generation"], 1);
    // Every write was a server-side apply by the `ktwin` field manager.
    let patches: Vec<_> = t
        .api
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 4, "namespace + 3 objects");
    assert!(patches
        .iter()
        .all(|p| p.query.contains("fieldManager=ktwin")));
    assert!(t
        .api
        .requests()
        .iter()
        .all(|r| r.method != "POST" && r.method != "PUT"));
}

#[test]
fn redeploy_without_change_writes_nothing() {
    let t = Twin::new();
    t.api.controller(healthy_workloads);
    t.deploy(&stack("localhost:5001/web:aaa")).0.expect("first");
    t.api.reset_counts();
    let (r, said) = t.deploy(&stack("localhost:5001/web:aaa"));
    let r = r.expect("second");
    assert!(
        r.applied.iter().all(|a| a.action == "unchanged"),
        "{:?}",
        r.applied
    );
    assert!(r.namespaces_created.is_empty() && r.pruned.is_empty());
    assert_eq!(t.api.writes(), 0, "the stand-in saw a state change");
    assert_eq!(
        t.api.get("apps/v1", "Deployment", "shop", "web").unwrap()["metadata"]["generation"],
        1
    );
    // Only progress for the rollout check, no "created"/"configured" lines.
    assert!(
        said.iter()
            .all(|s| !s.contains("created") && !s.contains("configured")),
        "{said:?}"
    );
}

#[test]
fn changed_image_bumps_generation_and_waits_for_the_new_rollout() {
    let t = Twin::new();
    t.api.controller(healthy_workloads);
    t.deploy(&stack("localhost:5001/web:aaa")).0.expect("first");
    // Now the controller is slow: the new generation is observed only when the test plays
    // the controller, once ktwin is watching.
    let t = Twin {
        api: t.api.without_controllers(),
        dir: t.dir,
    };
    let (r, said) = {
        let api = &t.api;
        std::thread::scope(|s| {
            s.spawn(|| {
                // Until ktwin watches the deployment (its first look found it not rolled out).
                while !api.requests().iter().any(|r| r.method == "WATCH") {
                    std::thread::sleep(Duration::from_millis(20));
                }
                std::thread::sleep(Duration::from_millis(300));
                api.with(healthy_workloads);
            });
            t.deploy(&stack("localhost:5001/web:bbb"))
        })
    };
    let r = r.expect("deploy");
    assert!(actions(&r).contains(&"deployment/web (shop) configured".to_string()));
    assert!(actions(&r).contains(&"service/web (shop) unchanged".to_string()));
    let d = t.api.get("apps/v1", "Deployment", "shop", "web").unwrap();
    assert_eq!(d["metadata"]["generation"], 2);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "localhost:5001/web:bbb"
    );
    assert!(
        said.iter()
            .any(|s| s.contains("waiting for the controller")),
        "{said:?}"
    );
    assert!(said.iter().any(|s| s.contains("rolled out")), "{said:?}");
}

#[test]
fn prune_removes_only_this_projects_objects_of_this_env() {
    let t = Twin::new();
    t.api.controller(healthy_workloads);
    let mut docs = stack("localhost:5001/web:aaa");
    docs.push(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "old", "namespace": "shop"}, "data": {}}));
    t.deploy(&docs).0.expect("first");
    let foreign = |name: &str, labels: Value| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "shop", "labels": labels}, "data": {}})
    };
    t.api.put(foreign("hand-made", json!({})));
    t.api.put(foreign(
        "other-project",
        json!({"app.kubernetes.io/managed-by": "ktwin",
        "ktwin.dev/project": "hive", "ktwin.dev/env": "local"}),
    ));
    t.api.put(foreign(
        "other-env",
        json!({"app.kubernetes.io/managed-by": "ktwin",
        "ktwin.dev/project": "swarm", "ktwin.dev/env": "dev"}),
    ));
    docs.pop();
    let (r, said) = t.deploy(&docs);
    let r = r.expect("second");
    assert_eq!(r.pruned, ["configmap/old (shop)"]);
    assert!(said.contains(&"configmap/old (shop): pruned".to_string()));
    let names: Vec<String> = t
        .api
        .list("v1", "ConfigMap")
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        ["hand-made", "other-env", "other-project", "web-config"]
    );
    // The namespace ktwin created is never pruned, even when nothing uses it any more.
    let (r, _) = t.deploy_with(&[], "local", true, false, Duration::from_secs(5));
    assert_eq!(r.unwrap().pruned.len(), 3);
    assert!(t.api.get("v1", "Namespace", "", "shop").is_some());
    // --no-prune leaves everything.
    t.deploy(&docs).0.expect("again");
    let (r, _) = t.deploy_with(&[], "local", false, false, Duration::from_secs(5));
    assert!(r.unwrap().pruned.is_empty());
    assert!(t.api.get("apps/v1", "Deployment", "shop", "web").is_some());
}

#[test]
fn crd_and_its_custom_resource_in_one_stream() {
    let t = Twin::new();
    let docs = vec![
        json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "blue", "namespace": "shop"}, "spec": {"size": 3}}),
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "singular": "widget"},
                "versions": [{"name": "v1", "served": true, "storage": true}]}}),
    ];
    let (r, _) = t.deploy(&docs);
    let r = r.expect("deploy");
    assert_eq!(
        actions(&r),
        [
            "customresourcedefinition/widgets.example.com created",
            "widget/blue (shop) created"
        ]
    );
    assert_eq!(
        t.api
            .get("example.com/v1", "Widget", "shop", "blue")
            .unwrap()["spec"]["size"],
        3
    );
    // A custom resource whose CRD is nowhere is an error naming it.
    let t = Twin::new();
    let (r, _) = t.deploy(&docs[..1]);
    let e = r.unwrap_err();
    assert_eq!(
        e.to_string(),
        "widget/blue (shop): the API server does not serve example.com/v1 Widget"
    );
}

#[test]
fn conflicts_name_the_other_manager_and_force_takes_over() {
    let t = Twin::new();
    t.api.controller(healthy_workloads);
    t.deploy(&stack("localhost:5001/web:aaa")).0.expect("first");
    // Someone scales it by hand.
    t.api.with(|s| {
        s.set("apps/v1", "Deployment", "shop", "web", |d| {
            d["spec"]["replicas"] = json!(5)
        });
        s.own("apps/v1", "Deployment", "shop", "web", "kubectl-edit");
    });
    let (r, _) = t.deploy(&stack("localhost:5001/web:aaa"));
    let e = r.unwrap_err();
    assert!(matches!(e, KubeError::Conflict { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.starts_with("deployment/web (shop): Apply failed with 1 conflict"),
        "{text}"
    );
    assert!(
        text.contains("\"kubectl-edit\"") && text.contains(".spec.replicas"),
        "{text}"
    );
    assert!(e.help().unwrap().contains("--force-conflicts"));
    let (r, _) = t.deploy_with(
        &stack("localhost:5001/web:aaa"),
        "local",
        true,
        true,
        Duration::from_secs(10),
    );
    r.expect("forced");
    assert_eq!(
        t.api.get("apps/v1", "Deployment", "shop", "web").unwrap()["spec"]["replicas"],
        2
    );
}

#[test]
fn stuck_rollouts_are_explained_from_pods_events_and_logs() {
    let t = Twin::new();
    let mut docs = stack("localhost:5001/web:aaa");
    docs.push(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "worker", "namespace": "shop"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "worker"}},
            "template": {"metadata": {"labels": {"app": "worker"}},
                "spec": {"containers": [{"name": "main", "image": "localhost:5001/worker:aaa"}]}}}}));
    // The controller observes the spec but the pods never get ready.
    t.api.controller(|s| {
        for name in ["web", "worker"] {
            s.set("apps/v1", "Deployment", "shop", name, |d| {
                let g = d["metadata"]["generation"].clone();
                let n = d["spec"]["replicas"].clone();
                d["status"] = json!({"observedGeneration": g, "replicas": n, "updatedReplicas": n, "availableReplicas": 0});
            });
        }
    });
    let pod = |name: &str, app: &str, cs: Value| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "shop",
            "labels": {"app": app}},
            "spec": {"containers": [{"name": cs["name"], "image": cs["image"]}]},
            "status": {"phase": "Pending", "containerStatuses": [cs]}})
    };
    t.api.put(pod(
        "web-1",
        "web",
        json!({"name": "app", "image": "localhost:5001/web:aaa", "ready": false,
        "state": {"waiting": {"reason": "ImagePullBackOff",
            "message": "Back-off pulling image \"localhost:5001/web:aaa\""}}}),
    ));
    t.api.put(pod(
        "worker-1",
        "worker",
        json!({"name": "main", "image": "localhost:5001/worker:aaa",
        "ready": false, "restartCount": 3,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 2}}}),
    ));
    t.api.with(|s| {
        s.set_logs(
            "shop",
            "worker-1",
            "main",
            true,
            "starting\nconnecting to db:5432\nfatal: DB_PASSWORD is not set\n",
        )
    });
    let (r, said) = t.deploy_with(&docs, "local", true, false, Duration::from_secs(2));
    let e = r.unwrap_err();
    assert_eq!(e.to_string(), "2 workload(s) did not roll out within 2s");
    let help = e.help().unwrap();
    let expected = "\
deployment/web (shop): 0 of 2 updated replicas available
  pod web-1: ImagePullBackOff: container app cannot pull localhost:5001/web:aaa
    Back-off pulling image \"localhost:5001/web:aaa\"
    help: the image lives in ktwin's registry; `ktwin build` pushes it and `ktwin images verify` checks the nodes can pull
deployment/worker (shop): 0 of 1 updated replicas available
  pod worker-1: CrashLoopBackOff: container main restarted 3 times, last exit code 2
    last log lines:
    | starting
    | connecting to db:5432
    | fatal: DB_PASSWORD is not set";
    assert_eq!(help, expected);
    assert!(
        said.contains(&"deployment/web (shop): 0 of 2 updated replicas available".to_string()),
        "{said:?}"
    );
}
