//! ktwin on real projects' manifests (`../shared/corpus`: Online Boutique, podinfo, Bank of
//! Anthos), as a new user would try it: `init` → `render --env <each>` → `doctor`. Each repo is
//! copied to a temp dir with a placeholder Dockerfile wherever upstream has one
//! (`DOCKERFILES.txt`). Skipped, saying so, when the corpus is absent (a clone of this repository
//! alone) or the machine's kustomize predates v5 (the corpus uses `components`); `.ci/run` makes
//! both required.
#![allow(clippy::disallowed_methods)] // tests run the binary and real tools directly

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ktwin_testkit::{helm_available, modern_kustomize, shared, TempProject};
use serde_json::Value;

fn ktwin(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ktwin"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run ktwin")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The repo copied to `<tmp>/<copy_as>` with placeholder Dockerfiles; and the Dockerfile paths.
fn checkout(repo: &str, copy_as: &str) -> Option<(TempProject, PathBuf, Vec<String>)> {
    let corpus = shared("corpus")?;
    if !modern_kustomize() {
        return None;
    }
    let tp = TempProject::new();
    let dir = tp.copy_tree(&corpus.join(repo), copy_as);
    let dockerfiles: Vec<String> = std::fs::read_to_string(dir.join("DOCKERFILES.txt"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    for d in &dockerfiles {
        let p = dir.join(d);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "FROM scratch\n").unwrap();
    }
    Some((tp, dir, dockerfiles))
}

struct Tried {
    project: ktwin_config::Project,
    notes: String,
    local: String,
}

/// `init`, then `render --env` for every environment it wrote, then `doctor` on each.
fn init_render_doctor(dir: &Path, dockerfiles: &[String]) -> Tried {
    let o = ktwin(dir, &["init"]);
    let notes = err(&o);
    assert_eq!(o.status.code(), Some(0), "init:\n{notes}");
    let loaded = ktwin_config::load(&dir.join("ktwin.yaml"))
        .unwrap_or_else(|e| panic!("the file init wrote does not load: {e}"));
    let project = loaded.project;
    assert!(
        !notes.contains("DuplicateKeyPolicy"),
        "a YAML library hint leaked:\n{notes}"
    );
    let mut local = String::new();
    for env in project.environments.keys() {
        let o = ktwin(dir, &["render", "--env", env]);
        assert_eq!(o.status.code(), Some(0), "render --env {env}:\n{}", err(&o));
        if env == "local" {
            local = out(&o);
            // Every `images:` entry init wrote runs in the local render.
            assert!(!err(&o).contains("warning[image-unmatched]"), "{}", err(&o));
        }
        let d = ktwin(dir, &["doctor", "--env", env, "-o", "json"]);
        assert!(
            matches!(d.status.code(), Some(0 | 1)),
            "doctor --env {env} exited {:?}:\n{}",
            d.status.code(),
            err(&d)
        );
        let v: Value = serde_json::from_str(&out(&d)).expect("doctor -o json");
        assert!(v["findings"].is_array(), "{v}");
    }
    // Every Dockerfile init can see is built into an image the local render runs, or listed as
    // unmatched with its reason. (Hidden directories such as `.github/` are CI's, not the
    // system's: init does not scan them.)
    for d in dockerfiles.iter().filter(|d| !d.starts_with('.')) {
        let path = dir.join(d);
        let entry = project.images.iter().find(|i| {
            ktwin_manifest::render::clean_path(&dir.join(&i.context).join(&i.dockerfile)) == path
        });
        match entry {
            Some(i) => {
                let r = ktwin_config::imageref::ImageRef::parse(&i.image).unwrap();
                let rewritten = format!("image: localhost:5001/{}:ktwin-", r.path);
                assert!(
                    local.contains(&rewritten),
                    "{d}: image {} is not rewritten in the local render",
                    i.image
                );
            }
            None => assert!(
                notes.contains(&format!("{d} matches no image")),
                "{d} is neither built nor listed as unmatched:\n{notes}"
            ),
        }
    }
    Tried {
        project,
        notes,
        local,
    }
}

fn local_manifests(p: &ktwin_config::Project) -> Vec<String> {
    p.environments["local"]
        .manifests
        .iter()
        .map(|m| m.path().to_string())
        .collect()
}

#[test]
fn online_boutique() {
    let Some((_tp, dir, dockerfiles)) = checkout("microservices-demo", "microservices-demo") else {
        return;
    };
    let t = init_render_doctor(&dir, &dockerfiles);
    // What skaffold.yaml deploys, not every kustomization in the tree (the overlapping
    // `kustomize/` flavours and the `helm-chart/` are listed as found, not used).
    assert_eq!(
        local_manifests(&t.project),
        [
            "kubernetes-manifests",
            "kubernetes-manifests/loadgenerator.yaml"
        ]
    );
    assert!(t.local.contains("kind: Deployment"));
    // All 11 services that run are built, cartservice from its nested context.
    assert_eq!(t.project.images.len(), 11, "{:?}", t.project.images);
    let cart = t
        .project
        .images
        .iter()
        .find(|i| i.image == "cartservice")
        .unwrap();
    assert_eq!(cart.context, "src/cartservice/src");
    assert!(t
        .notes
        .contains("src/shoppingassistantservice/Dockerfile matches no image"));
    let y = std::fs::read_to_string(dir.join("ktwin.yaml")).unwrap();
    assert!(
        y.contains("#   - helm:") && y.contains("\"helm-chart\""),
        "{y}"
    );
}

#[test]
fn podinfo_in_a_differently_named_folder() {
    let Some((_tp, dir, dockerfiles)) = checkout("podinfo", "my-fork") else {
        return;
    };
    let t = init_render_doctor(&dir, &dockerfiles);
    // The root Dockerfile is matched to the only non-official image, whatever the folder is
    // called.
    assert_eq!(t.project.images.len(), 1);
    assert_eq!(t.project.images[0].image, "ghcr.io/stefanprodan/podinfo");
    assert_eq!(t.project.images[0].context, ".");
    assert!(t
        .local
        .contains("image: localhost:5001/stefanprodan/podinfo:ktwin-"));
    // The overlays need scripts the corpus does not carry: left out, saying why.
    assert!(
        t.notes
            .contains("left out deploy/overlays/dev (overlay `dev`): it does not render"),
        "{}",
        t.notes
    );
    assert_eq!(local_manifests(&t.project), ["kustomize"]);
}

#[test]
fn bank_of_anthos() {
    let Some((_tp, dir, dockerfiles)) = checkout("bank-of-anthos", "bank-of-anthos") else {
        return;
    };
    let t = init_render_doctor(&dir, &dockerfiles);
    // One environment per overlay name, every service's overlay of that name in it.
    let envs: Vec<&str> = t.project.environments.keys().map(String::as_str).collect();
    for e in ["local", "development", "production", "staging"] {
        assert!(envs.contains(&e), "{envs:?}");
    }
    let local = local_manifests(&t.project);
    assert_eq!(local.len(), 10, "{local:?}");
    assert!(local.iter().all(|m| m.ends_with("overlays/development")));
    // Never a pool for a label every node carries.
    assert!(t
        .project
        .cluster
        .agents
        .iter()
        .all(|a| a.labels.keys().all(|k| !k.contains("kubernetes.io/"))));
    // Java services built by skaffold with jib: listed, with why.
    for s in ["balancereader", "ledgerwriter", "transactionhistory"] {
        assert!(
            t.notes
                .contains(&format!("image {s} is not built (run by Deployment/{s})"))
                && t.notes.contains("with jib"),
            "{}",
            t.notes
        );
    }
    assert_eq!(t.project.images.len(), 6, "{:?}", t.project.images);
    // Production's GKE-only kinds are what the doctor stops a twin deploy on.
    let d = ktwin(&dir, &["doctor", "--env", "production", "-o", "json"]);
    let v: Value = serde_json::from_str(&out(&d)).unwrap();
    let not_served: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "kind-not-served")
        .map(|f| f["object"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        not_served,
        ["BackendConfig", "FrontendConfig", "ManagedCertificate"]
    );
}

/// podinfo's own chart as a `helm:` source: a values file per environment, the chart's image
/// rewritten like any other, test hooks left out.
#[test]
fn podinfo_chart_through_helm() {
    let Some((_tp, dir, _)) = checkout("podinfo", "podinfo") else {
        return;
    };
    if !helm_available() {
        return;
    }
    std::fs::write(
        dir.join("charts/podinfo/values-local.yaml"),
        "replicaCount: 1\nservice:\n  type: NodePort\n  nodePort: 30898\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("ktwin.yaml"),
        "apiVersion: ktwin.dev/v1alpha1\nkind: Project\nname: podinfo\n\
         images:\n  - {image: ghcr.io/stefanprodan/podinfo, context: .}\n\
         environments:\n\
         \x20 local:\n    manifests:\n      - helm: {chart: charts/podinfo, release: podinfo, namespace: podinfo, values: [charts/podinfo/values-local.yaml]}\n\
         \x20 prod:\n    context: prod-cluster\n    manifests:\n      - helm: {chart: charts/podinfo, release: podinfo, namespace: podinfo, values: [charts/podinfo/values-prod.yaml]}\n",
    )
    .unwrap();
    let items = |o: &Output| -> Vec<Value> {
        let v: Value = serde_json::from_str(&out(o)).expect("render -o json");
        v["items"].as_array().unwrap().clone()
    };
    let o = ktwin(&dir, &["render", "--explain", "-o", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let docs = items(&o);
    let find = |docs: &[Value], kind: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind}"))
    };
    let dep = find(&docs, "Deployment");
    let image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap();
    assert!(
        image.starts_with("localhost:5001/stefanprodan/podinfo:ktwin-"),
        "{image}"
    );
    assert_eq!(dep["metadata"]["namespace"], "podinfo");
    let svc = find(&docs, "Service");
    assert_eq!(svc["spec"]["type"], "NodePort");
    assert_eq!(svc["spec"]["ports"][0]["nodePort"], 30898);
    assert!(
        !docs
            .iter()
            .any(|d| d["metadata"]["annotations"]["helm.sh/hook"]
                .as_str()
                .is_some_and(|h| h.contains("test"))),
        "test hooks are left out"
    );
    assert!(err(&o).contains("left out: Pod/"), "{}", err(&o));
    assert!(err(&o).contains("a Helm test hook"), "{}", err(&o));

    let p = ktwin(&dir, &["render", "--env", "prod", "-o", "json"]);
    assert_eq!(p.status.code(), Some(0), "{}", err(&p));
    let prod = items(&p);
    let dep = find(&prod, "Deployment");
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/stefanprodan/podinfo:6.14.1"
    );
    assert_eq!(find(&prod, "Service")["spec"]["type"], "ClusterIP");

    // The doctor reads the chart's objects where its templates are.
    let d = ktwin(&dir, &["doctor", "-o", "json"]);
    let v: Value = serde_json::from_str(&out(&d)).unwrap();
    for f in v["findings"].as_array().unwrap() {
        if let Some(file) = f["file"].as_str() {
            assert!(
                file.contains("charts/podinfo/templates/") || file.ends_with("ktwin.yaml"),
                "{f}"
            );
        }
    }
}
