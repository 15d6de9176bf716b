//! Tier-1 CLI tests: the real binary, run in temporary projects.
#![allow(clippy::disallowed_methods)] // tests run the binary and real tools directly

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ktwin_testkit::{assert_expected, normalize_tags, workspace_root, StubBin, TempProject};

fn ktwin(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ktwin"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run ktwin")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn expected(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/expected")
        .join(name)
}

fn swarm() -> (TempProject, PathBuf) {
    ktwin_testkit::swarm_example()
}

const SECRET_VALUES: &[&str] = &[
    "local-only",
    "local-token",
    "bG9jYWwtb25seQ",
    "bG9jYWwtdG9rZW4",
];

fn assert_no_secrets(s: &str) {
    for v in SECRET_VALUES {
        assert!(!s.contains(v), "secret value {v} leaked:\n{s}");
    }
}

#[test]
fn render_swarm_yaml() {
    let (_tp, dir) = swarm();
    let o = ktwin(&dir, &["render"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_no_secrets(&stdout(&o));
    assert_no_secrets(&stderr(&o));
    assert_expected(&expected("swarm-render.yaml"), &normalize_tags(&stdout(&o)));
    // Deterministic byte for byte.
    assert_eq!(stdout(&ktwin(&dir, &["render"])), stdout(&o));
}

#[test]
fn render_swarm_json_with_changes() {
    let (_tp, dir) = swarm();
    let o = ktwin(&dir, &["render", "-o", "json", "--explain"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_no_secrets(&stdout(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["kind"], "List");
    assert_eq!(v["items"].as_array().unwrap().len(), 11);
    let knobs: Vec<&str> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["knob"].as_str().unwrap())
        .collect();
    for k in [
        "adapt.images",
        "adapt.pullPolicy",
        "adapt.pullSecrets",
        "adapt.storage",
        "adapt.volumeOwnership",
        "adapt.resources",
        "adapt.env",
        "patches",
        "secrets",
    ] {
        assert!(knobs.contains(&k), "no change from {k}: {knobs:?}");
    }
    assert_expected(
        &expected("swarm-render-explain.json"),
        &normalize_tags(&stdout(&o)),
    );
}

#[test]
fn explain_table_goes_to_stderr_and_secrets_only_on_request() {
    let (_tp, dir) = swarm();
    let plain = ktwin(&dir, &["render"]);
    let o = ktwin(&dir, &["render", "--explain"]);
    assert_eq!(stdout(&o), stdout(&plain));
    let err = stderr(&o);
    assert!(
        err.contains("adapt.volumeOwnership") && err.contains("change(s)"),
        "{err}"
    );
    assert_no_secrets(&err);
    let shown = ktwin(&dir, &["render", "--show-secrets"]);
    assert!(
        stdout(&shown).contains("bG9jYWwtb25seQ=="),
        "--show-secrets prints values"
    );
}

#[test]
fn remote_env_is_not_adapted() {
    let (_tp, dir) = swarm();
    let o = ktwin(&dir, &["render", "--env", "dev"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    assert!(
        s.contains("image: ghcr.io/acme/lobboss:latest") && s.contains("imagePullPolicy: Always")
    );
    assert!(!s.contains("localhost:5001"));
    let o = ktwin(&dir, &["render", "--env", "staging"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("environment `staging` is not defined"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn diff_against_dev() {
    let (_tp, dir) = swarm();
    let md = ktwin(&dir, &["diff", "--against", "dev", "-o", "markdown"]);
    assert!(md.status.success(), "{}", stderr(&md));
    assert_no_secrets(&stdout(&md));
    assert_expected(&expected("swarm-diff.md"), &normalize_tags(&stdout(&md)));
    let js = ktwin(&dir, &["diff", "--against", "dev", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&js)).unwrap();
    let concerns: std::collections::BTreeSet<&str> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["concern"].as_str().unwrap())
        .collect();
    for c in [
        "images",
        "pull policy",
        "pull secrets",
        "storage",
        "resources",
        "env/config values",
        "replicas",
    ] {
        assert!(concerns.contains(c), "missing concern {c}");
    }
    assert_eq!(v["onlyIn"]["local"][0]["name"], "swarm-secrets");
    let text = ktwin(&dir, &["diff", "--against", "dev"]);
    assert!(text.status.success());
    assert!(stdout(&text).contains("pull secrets\n") && stdout(&text).contains("difference(s)"));
}

#[test]
fn init_infers_and_never_overwrites() {
    let tp = TempProject::new();
    let dir = tp.copy_tree(&workspace_root().join("examples/swarm"), "shop");
    std::fs::remove_file(dir.join("ktwin.yaml")).unwrap();
    let o = ktwin(&dir, &["init"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("pool `lobboss`"), "{}", stderr(&o));
    let written = std::fs::read_to_string(dir.join("ktwin.yaml")).unwrap();
    assert_expected(&expected("init-shop.yaml"), &written);
    // The written file is a valid project that renders.
    let r = ktwin(&dir, &["render"]);
    assert!(r.status.success(), "{}", stderr(&r));
    // Never overwrite without --force.
    std::fs::write(dir.join("ktwin.yaml"), "# mine\n").unwrap();
    let again = ktwin(&dir, &["init"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("--force"));
    assert_eq!(
        std::fs::read_to_string(dir.join("ktwin.yaml")).unwrap(),
        "# mine\n"
    );
    assert_eq!(ktwin(&dir, &["init", "--force"]).status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(dir.join("ktwin.yaml")).unwrap(),
        written
    );
}

const HEAD: &str = "apiVersion: ktwin.dev/v1alpha1\nkind: Project\n";

fn deployment(name: &str, image: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n{extra_spec}      containers: [{{name: {name}, image: '{image}'}}]\n"
    )
}

/// A repository like the ones teams have: two services with the same overlay names, a second
/// flavour of the app that shares a base, a plain dir with a subdir, a Helm chart, a
/// skaffold.yaml, a Dockerfile named after nothing, and a nodeSelector on a standard label.
fn messy_repo(tp: &TempProject) -> PathBuf {
    let r = "repo";
    let w = |p: &str, c: &str| {
        tp.write(&format!("{r}/{p}"), c);
    };
    for svc in ["api", "web"] {
        let image = format!("gcr.io/acme/shop/{svc}:1.0");
        let sel = if svc == "api" {
            "      nodeSelector: {beta.kubernetes.io/os: linux, acme.io/pool: apps}\n"
        } else {
            ""
        };
        w(
            &format!("services/{svc}/k8s/base/deploy.yaml"),
            &deployment(svc, &image, sel),
        );
        w(
            &format!("services/{svc}/k8s/base/kustomization.yaml"),
            "resources: [deploy.yaml]\n",
        );
        for env in ["dev", "prod"] {
            w(
                &format!("services/{svc}/k8s/overlays/{env}/kustomization.yaml"),
                "resources: [../../base]\n",
            );
        }
    }
    // skaffold builds `api` from services/api (manifests name gcr.io/acme/shop/api).
    w(
        "skaffold.yaml",
        "apiVersion: skaffold/v4beta1\nkind: Config\nbuild:\n  artifacts:\n  - image: api\n    context: services/api\n",
    );
    w("services/api/Dockerfile", "FROM scratch\n");
    // `web` is matched by its directory name.
    w("services/web/Dockerfile", "FROM scratch\n");
    // A Dockerfile for an image no manifest runs.
    w("tools/migrator/Dockerfile", "FROM scratch\n");
    // A second flavour sharing api's base: overlaps the dev overlay.
    w(
        "flavours/all-in-one/kustomization.yaml",
        "resources: [../../services/api/k8s/base]\n",
    );
    // Plain manifests in a dir and its subdir; a Helm chart whose templates are not YAML.
    w(
        "extras/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n",
    );
    w(
        "extras/more/cm2.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra2}\n",
    );
    w(
        "charts/shop/Chart.yaml",
        "apiVersion: v2\nname: shop\nversion: 0.1.0\n",
    );
    w(
        "charts/shop/templates/svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ .Release.Name }}\n",
    );
    tp.path().join(r)
}

#[test]
fn init_on_a_messy_repo_proposes_only_what_renders() {
    let tp = TempProject::new();
    let dir = messy_repo(&tp);
    let o = ktwin(&dir, &["init"]);
    let notes = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{notes}");
    let y = std::fs::read_to_string(dir.join("ktwin.yaml")).unwrap();
    let p = ktwin_config::load(&dir.join("ktwin.yaml"))
        .unwrap_or_else(|e| panic!("{e}\n{y}"))
        .project;
    // One environment per overlay name, each with both services' overlays; local from `dev`.
    let envs: Vec<&str> = p.environments.keys().map(String::as_str).collect();
    assert_eq!(envs, ["local", "dev", "prod"], "{y}");
    let srcs = |e: &str| -> Vec<String> {
        p.environments[e]
            .manifests
            .iter()
            .map(|m| m.path().to_string())
            .collect()
    };
    assert_eq!(
        srcs("local"),
        [
            "services/api/k8s/overlays/dev",
            "services/web/k8s/overlays/dev"
        ]
    );
    assert_eq!(srcs("prod").len(), 2);
    // The standard label is never a pool; the team's own is.
    assert_eq!(p.cluster.agents.len(), 1, "{y}");
    assert_eq!(
        p.cluster.agents[0].labels.keys().collect::<Vec<_>>(),
        ["acme.io/pool"]
    );
    assert!(notes.contains("label `beta.kubernetes.io/os`"), "{notes}");
    // Images matched with reasons; the stray Dockerfile listed, commented out.
    let images: Vec<(&str, &str)> = p
        .images
        .iter()
        .map(|i| (i.image.as_str(), i.context.as_str()))
        .collect();
    assert_eq!(
        images,
        [
            ("gcr.io/acme/shop/api", "services/api"),
            ("gcr.io/acme/shop/web", "services/web")
        ]
    );
    assert!(
        notes.contains("skaffold.yaml (build.artifacts) builds `api`"),
        "{notes}"
    );
    assert!(
        notes.contains("its directory services/web is named like the image"),
        "{notes}"
    );
    assert!(
        notes.contains("tools/migrator/Dockerfile matches no image"),
        "{notes}"
    );
    assert!(
        y.contains("#  - {image: CHANGE-ME, context: \"tools/migrator\""),
        "{y}"
    );
    // The chart is a chart (not YAML), the plain dir is listed once, skaffold.yaml is not a
    // manifest; none of them is put in an environment.
    assert!(
        y.contains("#   - helm:") && y.contains("chart: \"charts/shop\""),
        "{y}"
    );
    assert!(y.contains("#   - \"extras\""), "{y}");
    assert!(
        !y.contains("extras/more") && !y.contains("\"skaffold.yaml\""),
        "{y}"
    );
    assert!(y.contains("\"flavours/all-in-one\""), "{y}");
    // Every environment renders, and the local one runs the built images.
    for e in envs {
        let r = ktwin(&dir, &["render", "--env", e]);
        assert!(r.status.success(), "{e}: {}", stderr(&r));
        if e == "local" {
            assert!(stdout(&r).contains("image: localhost:5001/acme/shop/api:ktwin-"));
            assert!(!stderr(&r).contains("warning["), "{}", stderr(&r));
        }
    }
}

#[test]
fn init_left_out_overlaps_and_failures_with_the_reason() {
    let tp = TempProject::new();
    let dir = messy_repo(&tp);
    // No overlays: the kustomizations no other includes are the candidates; two flavours
    // that share api's base overlap; a broken one does not render.
    for svc in ["api", "web"] {
        std::fs::remove_dir_all(dir.join(format!("services/{svc}/k8s/overlays"))).unwrap();
    }
    tp.write(
        "repo/broken/kustomization.yaml",
        "resources: [missing.yaml]\n",
    );
    tp.write(
        "repo/flavours/minimal/kustomization.yaml",
        "resources: [../../services/api/k8s/base]\n",
    );
    let o = ktwin(&dir, &["init"]);
    let notes = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{notes}");
    let p = ktwin_config::load(&dir.join("ktwin.yaml")).unwrap().project;
    let local: Vec<String> = p.environments["local"]
        .manifests
        .iter()
        .map(|m| m.path().to_string())
        .collect();
    // The flavour that includes api's base stands for it; of two flavours that share it, one.
    assert_eq!(
        local,
        ["flavours/all-in-one", "services/web/k8s/base"],
        "{notes}"
    );
    assert!(
        notes.contains("left out flavours/minimal (kustomization): 1 of its 1 objects are already in flavours/all-in-one (e.g. Deployment/api)"),
        "{notes}"
    );
    assert!(
        notes.contains("left out broken (kustomization): it does not render"),
        "{notes}"
    );
    assert!(ktwin(&dir, &["render"]).status.success());
}

#[test]
fn init_on_a_helm_only_repo_uses_the_chart_and_its_values_files() {
    if !ktwin_testkit::helm_available() {
        return;
    }
    let tp = TempProject::new();
    tp.write(
        "c/charts/shop/Chart.yaml",
        "apiVersion: v2\nname: shop\nversion: 0.1.0\n",
    );
    tp.write(
        "c/charts/shop/values.yaml",
        "image: ghcr.io/acme/shop:1.0\nreplicas: 3\n",
    );
    tp.write("c/charts/shop/values-dev.yaml", "replicas: 1\n");
    tp.write("c/charts/shop/values-prod.yaml", "replicas: 5\n");
    tp.write(
        "c/charts/shop/templates/deploy.yaml",
        &deployment("shop", "{{ .Values.image }}", "").replace(
            "spec:\n  selector",
            "spec:\n  replicas: {{ .Values.replicas }}\n  selector",
        ),
    );
    tp.write("c/Dockerfile", "FROM scratch\n");
    let dir = tp.path().join("c");
    let o = ktwin(&dir, &["init"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let y = std::fs::read_to_string(dir.join("ktwin.yaml")).unwrap();
    let p = ktwin_config::load(&dir.join("ktwin.yaml")).unwrap().project;
    let envs: Vec<&str> = p.environments.keys().map(String::as_str).collect();
    assert_eq!(envs, ["local", "prod"], "{y}");
    assert!(
        y.contains("values: [\"charts/shop/values-dev.yaml\"]"),
        "{y}"
    );
    assert!(
        y.contains("values: [\"charts/shop/values-prod.yaml\"]"),
        "{y}"
    );
    assert_eq!(p.images[0].image, "ghcr.io/acme/shop");
    let r = ktwin(&dir, &["render"]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(
        stdout(&r).contains("replicas: 1")
            && stdout(&r).contains("localhost:5001/acme/shop:ktwin-")
    );
    let r = ktwin(&dir, &["render", "--env", "prod"]);
    assert!(stdout(&r).contains("replicas: 5"), "{}", stdout(&r));
}

#[test]
fn init_builds_with_the_declared_context_and_leaves_out_what_does_not_render() {
    let tp = TempProject::new();
    tp.write(
        "r/k8s/worker.yaml",
        &deployment("worker", "gcr.io/acme/worker:1.0", ""),
    );
    // A plain dir with a values file in it: `render` would reject it, so init leaves it out.
    tp.write(
        "r/config/app.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\n",
    );
    tp.write("r/config/values.yaml", "replicas: 3\n");
    // compose builds the worker from the repository root with a Dockerfile below it.
    tp.write(
        "r/docker-compose.yml",
        "services:\n  worker:\n    image: gcr.io/acme/worker\n    build: {context: ., dockerfile: worker/Dockerfile}\n",
    );
    tp.write("r/worker/Dockerfile", "FROM scratch\n");
    let dir = tp.path().join("r");
    let o = ktwin(&dir, &["init"]);
    let notes = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{notes}");
    let p = ktwin_config::load(&dir.join("ktwin.yaml")).unwrap().project;
    assert_eq!(p.images.len(), 1, "{notes}");
    assert_eq!(
        (
            p.images[0].context.as_str(),
            p.images[0].dockerfile.as_str()
        ),
        (".", "worker/Dockerfile")
    );
    assert!(
        notes.contains("docker-compose.yml (service `worker`) builds `gcr.io/acme/worker` from ."),
        "{notes}"
    );
    let local: Vec<String> = p.environments["local"]
        .manifests
        .iter()
        .map(|m| m.path().to_string())
        .collect();
    assert_eq!(local, ["k8s"], "{notes}");
    assert!(
        notes.contains("left out config (plain manifests): it does not render"),
        "{notes}"
    );
    let r = ktwin(&dir, &["render"]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(stdout(&r).contains("image: localhost:5001/acme/worker:ktwin-"));
}

#[test]
fn init_does_not_guess_a_third_party_image_for_the_root_dockerfile() {
    let tp = TempProject::new();
    tp.write(
        "r/k8s/prom.yaml",
        &deployment("prom", "quay.io/prometheus/prometheus:v2.53.0", ""),
    );
    tp.write("r/Dockerfile", "FROM scratch\n");
    let dir = tp.path().join("r");
    let o = ktwin(&dir, &["init"]);
    let notes = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{notes}");
    let y = std::fs::read_to_string(dir.join("ktwin.yaml")).unwrap();
    let p = ktwin_config::load(&dir.join("ktwin.yaml")).unwrap().project;
    // Nothing in the repository is named `prometheus`: offered, commented out, not built.
    assert!(p.images.is_empty(), "{y}");
    assert!(
        y.contains("#  - {image: \"quay.io/prometheus/prometheus\", context: \".\""),
        "{y}"
    );
    assert!(
        notes.contains("the root Dockerfile may build it"),
        "{notes}"
    );
}

#[test]
fn doctor_on_a_dir_skips_what_is_not_kubernetes() {
    let tp = TempProject::new();
    tp.write("d/a.yaml", &deployment("a", "ghcr.io/acme/a:1.0", ""));
    tp.write("d/values.yaml", "replicas: 3\n");
    tp.write(
        "d/tpl.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ .Release.Name }}\n",
    );
    tp.write(
        "d/skaffold.yaml",
        "apiVersion: skaffold/v4beta1\nkind: Config\nmetadata: {name: x}\n",
    );
    tp.write("d/broken.yaml", "a: [\n");
    // Go template syntax inside strings is an object like any other.
    tp.write(
        "d/rules.yaml",
        "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: {name: r}\nspec:\n  groups: [{name: g, rules: [{alert: Down, expr: up == 0, annotations: {summary: '{{ $labels.instance }} is down'}}]}]\n",
    );
    let o = ktwin(tp.path(), &["doctor", "-f", "d", "-o", "json"]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
    let e = stderr(&o);
    for (f, why) in [
        ("values.yaml", "not Kubernetes objects"),
        ("tpl.yaml", "a Go/Helm template"),
        ("skaffold.yaml", "a Skaffold config"),
        ("broken.yaml", "not valid YAML (line 1"),
    ] {
        assert!(
            e.contains(&format!("note: skipped d/{f}: {why}")),
            "{f}: {e}"
        );
    }
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(!e.contains("d/rules.yaml"), "{e}");
    // The Deployment was read and checked, and so was the rule.
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["object"]["kind"] == "PrometheusRule"),
        "{v}"
    );
    assert!(v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["object"]["name"] == "a"));
}

/// Run `render` on a project and snapshot the error text.
fn config_error(case: &str, yaml: &str, setup: impl FnOnce(&TempProject)) -> String {
    let tp = TempProject::new();
    tp.write("ktwin.yaml", yaml);
    setup(&tp);
    let o = ktwin(tp.path(), &["render"]);
    assert_eq!(o.status.code(), Some(2), "{case}: {}", stderr(&o));
    assert!(o.stdout.is_empty(), "{case}: nothing on stdout");
    let err = stderr(&o).replace(&tp.path().display().to_string(), "<project>");
    assert_expected(&expected(&format!("errors/{case}.txt")), &err);
    err
}

#[test]
fn config_errors_name_file_line_and_fix() {
    let e = config_error(
        "unknown-field",
        &format!("{HEAD}name: a\nclustr:\n  servers: 1\n"),
        |_| {},
    );
    assert!(
        e.contains("ktwin.yaml:4:1") && e.contains("did you mean `cluster`?"),
        "{e}"
    );

    let e = config_error("name-not-dns", &format!("{HEAD}name: My_App\n"), |_| {});
    assert!(
        e.contains("ktwin.yaml:3:7") && e.contains("not a DNS label"),
        "{e}"
    );

    let e = config_error(
        "ports",
        &format!("{HEAD}name: a\ncluster:\n  ports:\n    - {{hostPort: 8080, nodePort: 80}}\n    - {{hostPort: 8080, nodePort: 30001}}\n"),
        |_| {},
    );
    assert!(
        e.contains("nodePort 80 is outside")
            && e.contains("hostPort 8080 is mapped twice")
            && e.contains("2 errors"),
        "{e}"
    );

    let e = config_error(
        "node-label-reserved",
        &format!("{HEAD}name: a\ncluster:\n  agents:\n    - name: w\n      labels: {{node-role.kubernetes.io/worker: \"\"}}\n"),
        |_| {},
    );
    assert!(
        e.contains("ktwin.yaml:7:16") && e.contains("reserved"),
        "{e}"
    );

    let e = config_error(
        "taint",
        &format!("{HEAD}name: a\ncluster:\n  agents:\n    - name: w\n      taints: [\"dedicated=w:NoSchedul\"]\n"),
        |_| {},
    );
    assert!(e.contains("did you mean `NoSchedule`"), "{e}");

    let e = config_error(
        "remote-env-context",
        &format!("{HEAD}name: a\nenvironments:\n  dev:\n    manifests: []\n"),
        |_| {},
    );
    assert!(e.contains("environment `dev` names no `context`"), "{e}");

    let e = config_error(
        "image-paths",
        &format!("{HEAD}name: a\nimages:\n  - {{image: ghcr.io/a/b, context: nope}}\n  - {{image: ghcr.io/a/c, context: app, dockerfile: Dockerfile.prod}}\n"),
        |tp| {
            tp.write("app/Dockerfile", "FROM scratch\n");
        },
    );
    assert!(
        e.contains("build context `nope` does not exist")
            && e.contains("Dockerfile `Dockerfile.prod` does not exist"),
        "{e}"
    );
}

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(["-c", "user.email=t@example.invalid", "-c", "user.name=t"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
        .status
        .success();
    assert!(ok, "git {args:?}");
}

#[test]
fn secrets_env_file_must_be_git_ignored() {
    let yaml = format!("{HEAD}name: a\nenvironments:\n  local:\n    secrets:\n      - {{name: s, envFile: local.env}}\n");
    let e = config_error("envfile-not-ignored", &yaml, |tp| {
        tp.write("local.env", "K=v\n");
        git(tp.path(), &["init", "-q"]);
    });
    assert!(e.contains("add the line `/local.env` to .gitignore"), "{e}");

    let e = config_error("envfile-tracked", &yaml, |tp| {
        tp.write("local.env", "K=v\n");
        git(tp.path(), &["init", "-q"]);
        git(tp.path(), &["add", "local.env"]);
    });
    assert!(
        e.contains("tracked by git") && e.contains("git rm --cached local.env"),
        "{e}"
    );

    let e = config_error("envfile-missing", &yaml, |tp| {
        tp.write("local.env.example", "K=\n");
    });
    assert!(e.contains("cp local.env.example local.env"), "{e}");

    let tp = TempProject::new();
    tp.write("ktwin.yaml", &yaml);
    tp.write("local.env", "K=very-secret\n");
    tp.write(".gitignore", "/local.env\n");
    git(tp.path(), &["init", "-q"]);
    let o = ktwin(tp.path(), &["render"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains("very-secret") && stdout(&o).contains("<redacted>"));
}

fn manifest_project(files: &[(&str, &str)]) -> TempProject {
    let tp = TempProject::new();
    tp.write(
        "ktwin.yaml",
        &format!("{HEAD}name: a\nenvironments:\n  local:\n    manifests: [m]\n"),
    );
    for (p, c) in files {
        tp.write(&format!("m/{p}"), c);
    }
    tp
}

#[test]
fn bad_manifests_are_input_errors_with_positions() {
    let tp = manifest_project(&[(
        "a.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [a\n",
    )]);
    let o = ktwin(tp.path(), &["render"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("m/a.yaml:"),
        "invalid YAML names file:line:col: {err}"
    );

    let tp = manifest_project(&[
        (
            "a.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
        ),
        (
            "b.yaml",
            "# dup\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
        ),
    ]);
    let o = ktwin(tp.path(), &["render"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("ConfigMap/x is defined twice: m/a.yaml:1 and m/b.yaml:3"),
        "{err}"
    );

    let tp = manifest_project(&[("a.yaml", "metadata: {name: x}\nkind: ConfigMap\n")]);
    let o = ktwin(tp.path(), &["render"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no `apiVersion`"), "{}", stderr(&o));

    let tp = manifest_project(&[
        ("empty.yaml", ""),
        ("comments.yaml", "# nothing here\n---\n"),
    ]);
    let o = ktwin(tp.path(), &["render"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
}

#[test]
fn yaml_bomb_is_rejected_by_budget() {
    let mut bomb = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\nx0: &x0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for i in 1..12 {
        let refs = vec![format!("*x{}", i - 1); 10].join(",");
        bomb.push_str(&format!("x{i}: &x{i} [{refs}]\n"));
    }
    let tp = manifest_project(&[("bomb.yaml", &bomb)]);
    let o = ktwin(tp.path(), &["render"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("m/bomb.yaml") && stderr(&o).contains("budget"),
        "{}",
        stderr(&o)
    );
}

/// A stand-in `kustomize` that logs its argv, answers `version` as kustomize v4 prints it, and
/// fails a build the way every kustomize rejects a field it predates (`json: unknown field`,
/// on stderr) when the kustomization holds `sortOptions`.
fn stub_kustomize_v4(bin: &Path) {
    let script = format!(
        "#!/bin/sh\necho \"kustomize $*\" >> '{log}'\n\
         if [ \"$1\" = version ]; then echo '{{Version:kustomize/v4.5.7 GitCommit:56d82a8}}'; exit 0; fi\n\
         for d; do :; done\n\
         if grep -q sortOptions \"$d/kustomization.yaml\"; then echo 'Error: json: unknown field \"sortOptions\"' >&2; exit 1; fi\n\
         if grep -q secretGenerator \"$d/kustomization.yaml\"; then echo \"Error: env source 'creds.env': invalid line \\\"PASSWORD hunter2\\\"\" >&2; exit 1; fi\n\
         echo 'apiVersion: v1'; echo 'kind: ConfigMap'; echo 'metadata: {{name: built}}'\n",
        log = bin.join("calls.log").display()
    );
    std::fs::create_dir_all(bin).unwrap();
    std::fs::write(bin.join("kustomize"), script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        bin.join("kustomize"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
}

#[test]
fn kustomize_flags_per_project_and_environment_and_old_versions_explained() {
    let tp = TempProject::new();
    tp.write(
        "ktwin.yaml",
        &format!(
            "{HEAD}name: a\nkustomize: {{flags: [--enable-helm]}}\nenvironments:\n  local:\n    manifests: [k]\n    kustomize: {{flags: [--load-restrictor=LoadRestrictionsNone]}}\n  dev:\n    context: dev-ctx\n    manifests: [k]\n  sorted:\n    context: dev-ctx\n    manifests: [s]\n  gen:\n    context: dev-ctx\n    manifests: [g]\n"
        ),
    );
    tp.write("k/kustomization.yaml", "resources: []\n");
    tp.write("s/kustomization.yaml", "sortOptions: {order: legacy}\n");
    tp.write(
        "g/kustomization.yaml",
        "secretGenerator: [{name: creds, envs: [creds.env]}]\n",
    );
    tp.write("g/creds.env", "PASSWORD hunter2\n");
    let bin = tp.path().join("bin");
    stub_kustomize_v4(&bin);
    let render = |env: &str| {
        Command::new(env!("CARGO_BIN_EXE_ktwin"))
            .args(["render", "--env", env])
            .current_dir(tp.path())
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .output()
            .unwrap()
    };
    let o = render("local");
    assert!(o.status.success(), "{}", stderr(&o));
    let o = render("dev");
    assert!(o.status.success(), "{}", stderr(&o));
    let calls = std::fs::read_to_string(bin.join("calls.log")).unwrap();
    let k = tp.path().join("k");
    assert!(
        calls.contains(&format!(
            "kustomize build --load-restrictor=LoadRestrictionsNone {}\n",
            k.display()
        )),
        "the environment's flags replace the project's:\n{calls}"
    );
    assert!(
        calls.contains(&format!("kustomize build --enable-helm {}\n", k.display())),
        "an environment without its own takes the project's:\n{calls}"
    );

    let o = render("sorted");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("unknown field \"sortOptions\"")
            && err.contains("`sortOptions` needs kustomize v5.0.0 or newer")
            && err.contains("ktwin ran kustomize v4.5.7"),
        "{err}"
    );

    // kustomize quotes the env-file line it fails on: ktwin shows the existing path it names,
    // never the quoted value, and says how to see it.
    let o = render("gen");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(!err.contains("hunter2"), "{err}");
    assert!(
        err.contains("'creds.env'") && err.contains("quoted values hidden"),
        "{err}"
    );
}

#[test]
fn kustomize_missing_says_how_to_install() {
    let tp = TempProject::new();
    tp.write(
        "ktwin.yaml",
        &format!("{HEAD}name: a\nenvironments:\n  local:\n    manifests: [k]\n"),
    );
    tp.write("k/kustomization.yaml", "resources: []\n");
    let empty = StubBin::new();
    let o = Command::new(env!("CARGO_BIN_EXE_ktwin"))
        .arg("render")
        .current_dir(tp.path())
        .env("PATH", empty.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("neither `kustomize` nor `kubectl`") && err.contains("install"),
        "{err}"
    );

    // With a stub kustomize first on PATH, ktwin runs `kustomize build <dir>`.
    let stubs = StubBin::new();
    stubs.add(
        "kustomize",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-stub}\n",
        0,
    );
    let o = Command::new(env!("CARGO_BIN_EXE_ktwin"))
        .arg("render")
        .current_dir(tp.path())
        .env("PATH", stubs.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("name: from-stub"));
    // `kustomize version` once (to explain fields it predates), then the build.
    assert_eq!(
        stubs.calls(),
        [
            "kustomize version".to_string(),
            format!("kustomize build {}", tp.path().join("k").display())
        ]
    );
}

#[test]
fn project_file_discovery() {
    let (_tp, dir) = swarm();
    let sub = dir.join("k8s/base");
    let o = ktwin(&sub, &["render", "-o", "json"]);
    assert!(o.status.success(), "found in a parent: {}", stderr(&o));
    let o = ktwin(
        Path::new("/"),
        &["-C", dir.to_str().unwrap(), "render", "-o", "json"],
    );
    assert!(o.status.success(), "-C: {}", stderr(&o));
    let f = dir.join("ktwin.yaml");
    let o = ktwin(Path::new("/"), &["render", "--file", f.to_str().unwrap()]);
    assert!(o.status.success(), "--file: {}", stderr(&o));
    let none = TempProject::new();
    let o = ktwin(none.path(), &["render"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("ktwin init"), "{}", stderr(&o));
}

#[test]
fn schema_and_usage() {
    let o = ktwin(Path::new("/"), &["schema"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    for f in [
        "apiVersion",
        "kind",
        "name",
        "cluster",
        "registry",
        "images",
        "environments",
    ] {
        assert!(v["properties"].get(f).is_some(), "schema lacks {f}");
    }
    assert_eq!(v["additionalProperties"], false);
    let o = ktwin(Path::new("/"), &["render", "--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2));
    let o = ktwin(Path::new("/"), &["--help"]);
    assert!(o.status.success() && stdout(&o).contains("Examples:"));
}

#[test]
fn cluster_config_prints_what_the_provider_receives() {
    let (_tp, dir) = swarm();
    let k3d = ktwin(&dir, &["cluster", "config"]);
    assert!(k3d.status.success(), "{}", stderr(&k3d));
    assert!(stdout(&k3d).starts_with("apiVersion: k3d.io/v1alpha5\n"));
    assert!(stderr(&k3d).contains("context k3d-swarm"));
    let kind = ktwin(&dir, &["cluster", "config", "--provider", "kind"]);
    assert!(stdout(&kind).contains("apiVersion: kind.x-k8s.io/v1alpha4"));
    assert!(stderr(&kind).contains("context kind-swarm"));
}

// ---- inputs confined and bounded -----------------------------------------------------------

fn project_with(manifests: &str, extra: &str) -> TempProject {
    let tp = TempProject::new();
    tp.write(
        "proj/ktwin.yaml",
        &format!("apiVersion: ktwin.dev/v1alpha1\nkind: Project\nname: x\n{extra}environments:\n  local:\n    manifests: {manifests}\n"),
    );
    tp.write(
        "proj/k8s/a.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {}\n",
    );
    tp.write("outside.yaml", "SECRET_FROM_OUTSIDE=1\n");
    tp
}

#[test]
fn inputs_outside_the_project_are_config_errors_never_read() {
    for (manifests, what) in [
        ("[../outside.yaml]", "manifest source `../outside.yaml`"),
        (
            "[/proc/self/environ]",
            "manifest source `/proc/self/environ`",
        ),
    ] {
        let tp = project_with(manifests, "");
        let o = ktwin(&tp.path().join("proj"), &["render"]);
        assert_eq!(o.status.code(), Some(2), "{manifests}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(what) && err.contains("outside the"), "{err}");
        assert!(
            !err.contains("SECRET_FROM_OUTSIDE") && !err.contains("PATH="),
            "{err}"
        );
    }
    // A symlink inside a manifest dir that leads out: refused when read.
    let tp = project_with("[k8s]", "");
    std::os::unix::fs::symlink(
        tp.path().join("outside.yaml"),
        tp.path().join("proj/k8s/link.yaml"),
    )
    .unwrap();
    let o = ktwin(&tp.path().join("proj"), &["render"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("outside the"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("SECRET_FROM_OUTSIDE"));
}

#[test]
fn loops_fifos_and_huge_counts_end_quickly_with_exit_2() {
    let started = std::time::Instant::now();
    let tp = project_with("[k8s]", "");
    let k8s = tp.path().join("proj/k8s");
    std::os::unix::fs::symlink(".", k8s.join("l1")).unwrap();
    std::os::unix::fs::symlink(".", k8s.join("l2")).unwrap();
    for cmd in [&["render"][..], &["doctor"], &["init", "--force"]] {
        let o = ktwin(&tp.path().join("proj"), cmd);
        if cmd[0] == "init" {
            // init does not follow symlinked directories at all.
            assert!(o.status.code().is_some(), "{}", stderr(&o));
        } else {
            assert_eq!(o.status.code(), Some(2), "{cmd:?}: {}", stderr(&o));
            assert!(stderr(&o).contains("symlink loop"), "{}", stderr(&o));
        }
    }
    let tp = project_with("[k8s]", "");
    let fifo = tp.path().join("proj/k8s/fifo.yaml");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let o = ktwin(&tp.path().join("proj"), &["render"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("a FIFO, not a regular file"),
        "{}",
        stderr(&o)
    );
    let tp = project_with(
        "[k8s]",
        "cluster:\n  agents: [{name: a, count: 4000000000}]\n",
    );
    for cmd in [&["doctor"][..], &["cluster", "config"]] {
        let o = ktwin(&tp.path().join("proj"), cmd);
        assert_eq!(o.status.code(), Some(2), "{cmd:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("a local twin runs at most 50"),
            "{}",
            stderr(&o)
        );
    }
    let big = "x".repeat(100_000);
    let tp = project_with("[k8s]", &format!("cluster:\n  name: {big}\n"));
    let o = ktwin(&tp.path().join("proj"), &["render"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).len() < 5_000,
        "{} bytes of error",
        stderr(&o).len()
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

// ---- the plan --------------------------------------------------------------------------

/// `--show-plan` for every fixture project: registry and provider names, node specs, image
/// plans (tags normalised), the allowed context.
#[test]
fn show_plan_for_every_fixture_project() {
    let root = workspace_root();
    let mut projects: Vec<(String, PathBuf)> = vec![
        ("swarm".into(), root.join("examples/swarm")),
        (
            "doctor-every-check".into(),
            root.join("crates/ktwin/tests/fixtures/doctor-every-check"),
        ),
    ];
    let fixtures = root.join("crates/ktwin-manifest/tests/fixtures");
    let mut names: Vec<_> = std::fs::read_dir(&fixtures)
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("ktwin.yaml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for n in names {
        projects.push((n.clone(), fixtures.join(&n)));
    }
    for (name, src) in projects {
        let tp = TempProject::new();
        let dir = tp.copy_tree(&src, "p");
        // Env files from their committed examples, as a user's checkout has them.
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if let Some(real) = n.strip_suffix(".example") {
                std::fs::copy(e.path(), dir.join(real)).unwrap();
            }
        }
        let o = Command::new(env!("CARGO_BIN_EXE_ktwin"))
            .args(["--show-plan", "render"])
            .current_dir(&dir)
            .env_remove("KTWIN_REGISTRY_IMAGE")
            .output()
            .unwrap();
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(plan["registry"]["host"].is_string(), "{name}: {plan}");
        assert_expected(
            &expected(&format!("plan/{name}.json")),
            &normalize_tags(&stdout(&o)),
        );
    }
}
