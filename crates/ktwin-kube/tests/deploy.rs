//! Tier 1: deploy against the kube API stand-in (real HTTP on 127.0.0.1, kube-rs client).

use std::cell::RefCell;
use std::time::Duration;

use ktwin_config::event::{Action, Event};
use ktwin_kube::deploy::{deploy, Applied, Options, Report};
use ktwin_kube::{connect, Discovery, KubeError};
use ktwin_testkit::block_on;
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
    ) -> (Result<Report, KubeError>, Vec<Event>) {
        self.deploy_tweaked(docs, env, prune, force, timeout, |_| {})
    }

    fn deploy_tweaked(
        &self,
        docs: &[Value],
        env: &str,
        prune: bool,
        force: bool,
        timeout: Duration,
        tweak: impl FnOnce(&mut Options),
    ) -> (Result<Report, KubeError>, Vec<Event>) {
        self.deploy_in_session(docs, env, prune, force, timeout, None, tweak)
    }

    /// A deploy after `previous` of the same session (`ktwin dev`).
    fn deploy_after(
        &self,
        docs: &[Value],
        previous: &Applied,
    ) -> (Result<Report, KubeError>, Vec<Event>) {
        self.deploy_in_session(
            docs,
            "local",
            true,
            false,
            Duration::from_secs(10),
            Some(previous),
            |_| {},
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn deploy_in_session(
        &self,
        docs: &[Value],
        env: &str,
        prune: bool,
        force: bool,
        timeout: Duration,
        previous: Option<&Applied>,
        tweak: impl FnOnce(&mut Options),
    ) -> (Result<Report, KubeError>, Vec<Event>) {
        let said = RefCell::new(Vec::new());
        let say = |e: Event| said.borrow_mut().push(e);
        let state = self.dir.path().join(format!("state-{env}.json"));
        let r = block_on(async {
            // The stand-in's kubeconfig as the provider would report it (server on 127.0.0.1).
            let text = std::fs::read_to_string(self.dir.path().join("kubeconfig")).unwrap();
            let g = ktwin_kube::guard::local(env, "k3d-swarm", &text, "the test").unwrap();
            let client = connect(&g).await?;
            let mut disc = Discovery::new(client);
            let mut o = Options {
                project: "swarm",
                env,
                prune,
                prune_volumes: false,
                announce_prune: env != "local",
                force_conflicts: force,
                timeout,
                registry_prefix: Some("localhost:5001/".into()),
                state_file: Some(state),
                report: &say,
                previous,
            };
            tweak(&mut o);
            deploy(&mut disc, docs, &o).await
        });
        (r, said.into_inner())
    }

    fn deploy(&self, docs: &[Value]) -> (Result<Report, KubeError>, Vec<Event>) {
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
        .map(|a| format!("{} {}", a.object, a.action.as_str()))
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
        said.iter().any(
            |e| matches!(e, Event::RolledOut { workload, .. } if workload == "deployment/web (shop)")
        ),
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
        r.applied.iter().all(|a| a.action == Action::Unchanged),
        "{:?}",
        r.applied
    );
    assert!(r.namespaces_created.is_empty() && r.pruned.is_empty());
    assert_eq!(t.api.writes(), 0, "the stand-in saw a state change");
    assert_eq!(
        t.api.get("apps/v1", "Deployment", "shop", "web").unwrap()["metadata"]["generation"],
        1
    );
    // Nothing created or configured; only the rollout check.
    assert!(
        said.iter().all(|e| !matches!(
            e,
            Event::NamespaceCreated { .. }
                | Event::Applied {
                    action: Action::Created | Action::Configured,
                    ..
                }
        )),
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
            .any(|e| matches!(e, Event::RolloutProgress { message, .. }
            if message.contains("waiting for the controller"))),
        "{said:?}"
    );
    assert!(
        said.iter().any(|e| matches!(e, Event::RolledOut { .. })),
        "{said:?}"
    );
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
    assert!(said.contains(&Event::Pruned {
        object: "configmap/old (shop)".into()
    }));
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
        said.contains(&Event::RolloutProgress {
            workload: "deployment/web (shop)".into(),
            message: "0 of 2 updated replicas available".into()
        }),
        "{said:?}"
    );
}

// ---- prune by identity (each of these deleted what it had just applied, or what ktwin never
// applied, before prune compared identities) ------------------------------------------------

fn deletes(t: &Twin) -> Vec<String> {
    t.api
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path)
        .collect()
}

#[test]
fn namespace_less_objects_are_not_pruned_by_their_own_deploy() {
    let t = Twin::new();
    t.api.controller(healthy_workloads);
    let docs = vec![
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-config"},
            "data": {"A": "1"}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app-secrets"},
            "type": "Opaque", "data": {"K": "dg=="}}),
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}}}),
    ];
    for round in 0..2 {
        let (r, said) = t.deploy(&docs);
        let r = r.unwrap_or_else(|e| panic!("round {round}: {e}: {said:?}"));
        assert!(r.pruned.is_empty(), "round {round}: {:?}", r.pruned);
    }
    assert_eq!(deletes(&t), Vec::<String>::new(), "DELETEs on the wire");
    for (av, kind, name) in [
        ("v1", "ConfigMap", "app-config"),
        ("v1", "Service", "web"),
        ("v1", "Secret", "app-secrets"),
        ("v1", "PersistentVolumeClaim", "data"),
        ("apps/v1", "Deployment", "web"),
    ] {
        assert!(
            t.api.get(av, kind, "default", name).is_some(),
            "{kind}/{name}"
        );
    }
}

#[test]
fn an_api_version_change_is_not_a_prune() {
    let t = Twin::new();
    let hpa = |av: &str| {
        json!({"apiVersion": av, "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 3}})
    };
    t.deploy(&[hpa("autoscaling/v1")]).0.expect("v1");
    let (r, _) = t.deploy(&[hpa("autoscaling/v2")]);
    assert!(r.expect("v2").pruned.is_empty());
    assert!(t
        .api
        .get("autoscaling/v2", "HorizontalPodAutoscaler", "shop", "web")
        .is_some());
    // A CRD that now serves v1 beside v1alpha1: the custom resource moves to v1.
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget", "singular": "widget"},
            "versions": [{"name": "v1alpha1", "served": true, "storage": false},
                         {"name": "v1", "served": true, "storage": true}]}});
    let widget = |av: &str| {
        json!({"apiVersion": av, "kind": "Widget",
            "metadata": {"name": "important", "namespace": "shop"}, "spec": {"size": 3}})
    };
    t.deploy(&[crd.clone(), widget("example.com/v1alpha1")])
        .0
        .expect("v1alpha1");
    let (r, _) = t.deploy(&[crd, widget("example.com/v1")]);
    assert!(r.expect("v1").pruned.is_empty());
    assert!(t
        .api
        .get("example.com/v1", "Widget", "shop", "important")
        .is_some());
    assert!(
        !deletes(&t).iter().any(|p| p.contains("widgets")),
        "{:?}",
        deletes(&t)
    );
}

#[test]
fn a_cluster_scoped_resource_rendered_with_a_namespace_is_not_pruned() {
    let t = Twin::new();
    // kustomize's `namespace:` adds one to kinds it does not know; the server drops it.
    let docs = vec![
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "clusterissuers.example.com"},
            "spec": {"group": "example.com", "scope": "Cluster",
                "names": {"plural": "clusterissuers", "kind": "ClusterIssuer", "singular": "clusterissuer"},
                "versions": [{"name": "v1", "served": true, "storage": true}]}}),
        json!({"apiVersion": "example.com/v1", "kind": "ClusterIssuer",
            "metadata": {"name": "letsencrypt", "namespace": "app"}, "spec": {"acme": {}}}),
    ];
    for _ in 0..2 {
        let (r, said) = t.deploy(&docs);
        assert!(r.expect("deploy").pruned.is_empty(), "{said:?}");
    }
    assert!(t
        .api
        .get("example.com/v1", "ClusterIssuer", "", "letsencrypt")
        .is_some());
    assert_eq!(deletes(&t), Vec::<String>::new());
}

/// An object a controller made, carrying the ktwin labels it copied from its parent.
fn operator_made(t: &Twin, name: &str, owner: Option<Value>) {
    let labels = json!({"app.kubernetes.io/managed-by": "ktwin",
        "ktwin.dev/project": "swarm", "ktwin.dev/env": "local"});
    let mut pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": "shop", "labels": labels},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    if let Some(o) = owner {
        pvc["metadata"]["ownerReferences"] = json!([o]);
    }
    let (code, out) = t.api.request(
        "POST",
        "/api/v1/namespaces/shop/persistentvolumeclaims?fieldManager=widget-operator",
        &pvc,
    );
    assert_eq!(code, 201, "{out}");
}

#[test]
fn objects_ktwin_did_not_apply_are_never_pruned() {
    let t = Twin::new();
    t.api.controller(healthy_workloads);
    t.deploy(&stack("localhost:5001/web:aaa")).0.expect("first");
    let owner = json!({"apiVersion": "example.com/v1", "kind": "Widget", "name": "important",
        "uid": "00000000-0000-4000-8000-0000000000aa", "controller": true});
    operator_made(&t, "data-important-0", Some(owner));
    operator_made(&t, "copied-labels", None);
    t.api.reset_counts();
    let (r, said) = t.deploy(&stack("localhost:5001/web:aaa"));
    assert!(r.expect("second").pruned.is_empty(), "{said:?}");
    assert_eq!(deletes(&t), Vec::<String>::new());
    assert!(t
        .api
        .get("v1", "PersistentVolumeClaim", "shop", "data-important-0")
        .is_some());
    assert!(t
        .api
        .get("v1", "PersistentVolumeClaim", "shop", "copied-labels")
        .is_some());
}

#[test]
fn a_claim_dropped_from_the_render_is_kept_unless_prune_volumes() {
    let t = Twin::new();
    let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "pgdata", "namespace": "shop"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "web-config", "namespace": "shop"}, "data": {}});
    t.deploy(&[claim, cm.clone()]).0.expect("first");
    t.api.reset_counts();
    let (r, said) = t.deploy(std::slice::from_ref(&cm));
    let r = r.expect("second");
    assert!(r.pruned.is_empty(), "{:?}", r.pruned);
    assert_eq!(
        r.kept,
        [ktwin_kube::deploy::Kept {
            object: "persistentvolumeclaim/pgdata (shop)".into(),
            reason: "volume"
        }]
    );
    assert!(
        said.contains(&Event::Kept {
            object: "persistentvolumeclaim/pgdata (shop)".into(),
            reason: "volume".into()
        }),
        "{said:?}"
    );
    assert_eq!(deletes(&t), Vec::<String>::new());
    assert!(t
        .api
        .get("v1", "PersistentVolumeClaim", "shop", "pgdata")
        .is_some());
    // Asked for, it goes.
    let (r, _) = t.deploy_tweaked(&[cm], "local", true, false, Duration::from_secs(5), |o| {
        o.prune_volumes = true
    });
    assert_eq!(
        r.expect("third").pruned,
        ["persistentvolumeclaim/pgdata (shop)"]
    );
    assert!(t
        .api
        .get("v1", "PersistentVolumeClaim", "shop", "pgdata")
        .is_none());
}

#[test]
fn a_remote_prune_says_the_whole_set_before_the_first_delete() {
    let t = Twin::new();
    let cm = |n: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": n, "namespace": "shop"}, "data": {}})
    };
    let first = [cm("a"), cm("b"), cm("keep")];
    t.deploy_with(&first, "dev", true, false, Duration::from_secs(5))
        .0
        .expect("first");
    let (r, said) = t.deploy_with(&[cm("keep")], "dev", true, false, Duration::from_secs(5));
    assert_eq!(r.expect("second").pruned.len(), 2);
    let at = |e: Event| said.iter().position(|s| *s == e).unwrap_or(usize::MAX);
    let pruned = |o: &str| Event::Pruned { object: o.into() };
    let announce = at(Event::PruneSet {
        objects: vec!["configmap/a (shop)".into(), "configmap/b (shop)".into()],
    });
    assert!(announce < at(pruned("configmap/a (shop)")), "{said:?}");
    assert!(announce < at(pruned("configmap/b (shop)")), "{said:?}");
    assert!(at(pruned("configmap/b (shop)")) < usize::MAX, "{said:?}");
}

/// `ktwin dev` deploys on every save: what is as the previous deploy of the session sent it
/// costs no request at all; one changed object is one apply and one rollout wait; prune runs
/// again only when an object left the render.
#[test]
fn a_session_sends_only_what_changed() {
    let t = Twin::new();
    t.api.controller(healthy_workloads);
    let (r, _) = t.deploy(&stack("localhost:5001/web:aaa"));
    let first = r.unwrap();
    assert_eq!(first.skipped, 0);

    t.api.reset_counts();
    let prev = first.state.clone();
    let (r, said) = t.deploy_after(&stack("localhost:5001/web:aaa"), &prev);
    let same = r.unwrap();
    assert_eq!(same.skipped, 3, "{same:?}");
    assert!(same.applied.is_empty() && same.rolled_out.is_empty());
    assert!(said.is_empty(), "{said:?}");
    // This helper connects afresh, so API discovery is read again (a session keeps its
    // Discovery); no request names an object.
    let discovery = |q: &ktwin_testkit::kubeapi::Request| {
        q.method == "GET" && q.path.trim_start_matches('/').split('/').count() <= 3
    };
    assert!(
        t.api.requests().iter().all(discovery),
        "no request for an unchanged render: {:?}",
        t.api.requests()
    );

    // The image changes: only the Deployment is sent, and only it is waited for.
    t.api.reset_counts();
    let prev = same.state.clone();
    let (r, _) = t.deploy_after(&stack("localhost:5001/web:bbb"), &prev);
    let changed = r.unwrap();
    assert_eq!(actions(&changed), ["deployment/web (shop) configured"]);
    assert_eq!(changed.rolled_out, ["deployment/web (shop)"]);
    assert_eq!(changed.skipped, 2);
    assert!(
        t.api
            .requests()
            .iter()
            .all(|q| discovery(q) || q.path.contains("/deployments")),
        "{:?}",
        t.api.requests()
    );

    // The ConfigMap leaves the render: prune runs and deletes it.
    let prev = changed.state.clone();
    let mut docs = stack("localhost:5001/web:bbb");
    docs.pop();
    let (r, _) = t.deploy_after(&docs, &prev);
    assert_eq!(r.unwrap().pruned, ["configmap/web-config (shop)"]);
    assert!(t.api.get("v1", "ConfigMap", "shop", "web-config").is_none());
}
