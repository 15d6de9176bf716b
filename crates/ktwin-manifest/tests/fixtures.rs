//! Fixture tests: each directory under tests/fixtures is a project (ktwin.yaml + sources).
//! It is copied to a temp dir (outside git, as a user's checkout with its env files ignored
//! would be), rendered for `local`, and compared with `out.yaml` and `changes.txt` — or, for a
//! project that must fail, with `error.txt`. `UPDATE_EXPECT=1` rewrites the expected files.
#![allow(clippy::disallowed_methods)] // tests run the binary and real tools directly

use std::path::Path;
use std::process::Command;

use ktwin_manifest::output::{brief, redact_changes, to_yaml};
use ktwin_manifest::{render_env, Kustomizer, RenderError};

/// Every image hashed once, as the binary's plan does.
fn plan(
    loaded: &ktwin_config::Loaded,
) -> Result<Vec<ktwin_config::desired::ImagePlan>, RenderError> {
    ktwin_config::desired::plan_images(loaded).map_err(|e| RenderError::Kustomize {
        dir: loaded.dir.clone(),
        message: e.to_string(),
    })
}
use ktwin_testkit::{assert_expected, helm_available, normalize_tags, TempProject};

/// kustomize via the same tools the binary uses: `kustomize build`, else `kubectl kustomize`.
struct TestKustomize;

impl Kustomizer for TestKustomize {
    fn build(&self, dir: &Path, flags: &[String]) -> Result<String, RenderError> {
        let try_run = |prog: &str, args: &[&str]| {
            Command::new(prog)
                .args(args)
                .args(flags)
                .arg(dir)
                .output()
                .ok()
        };
        let out = try_run("kustomize", &["build"])
            .or_else(|| try_run("kubectl", &["kustomize"]))
            .ok_or(RenderError::NoKustomize {
                dir: dir.to_path_buf(),
            })?;
        if !out.status.success() {
            return Err(RenderError::Kustomize {
                dir: dir.to_path_buf(),
                message: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn helm_template(&self, call: &ktwin_manifest::helm::HelmCall) -> Result<String, RenderError> {
        let out = Command::new("helm")
            .args(call.args())
            .output()
            .map_err(|_| RenderError::NoHelm {
                chart: call.chart.clone(),
            })?;
        if !out.status.success() {
            return Err(RenderError::Helm {
                chart: call.chart.clone(),
                message: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn run_case(name: &str) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let tp = TempProject::new();
    let dir = tp.copy_tree(&src, "p");
    for f in ["out.yaml", "changes.txt", "error.txt"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let loaded =
        ktwin_config::load(&dir.join("ktwin.yaml")).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    match plan(&loaded).and_then(|images| render_env(&loaded, "local", &TestKustomize, &images)) {
        Ok(r) => {
            assert!(!src.join("error.txt").exists(), "{name} should have failed");
            assert_expected(
                &src.join("out.yaml"),
                &normalize_tags(&to_yaml(&r.docs, false)),
            );
            let mut changes = String::new();
            for c in redact_changes(&r.changes, false) {
                changes.push_str(&format!(
                    "{} {}: {} -> {} [{}]\n",
                    c.object,
                    if c.path.is_empty() { "/" } else { &c.path },
                    brief(&c.before),
                    brief(&c.after),
                    c.knob
                ));
            }
            assert_expected(&src.join("changes.txt"), &normalize_tags(&changes));
        }
        Err(e) => {
            let text = e
                .to_string()
                .replace(&dir.display().to_string(), "<project>");
            assert_expected(&src.join("error.txt"), &format!("{text}\n"));
        }
    }
}

macro_rules! cases {
    ($($fn_name:ident => $dir:literal),* $(,)?) => {
        $( #[test] fn $fn_name() { run_case($dir); } )*
    };
}

cases! {
    adapt_images => "images",
    adapt_pull_policy => "pull-policy",
    adapt_pull_secrets => "pull-secrets",
    adapt_storage => "storage",
    adapt_storage_kind => "storage-kind",
    adapt_resources_relaxed => "resources-relaxed",
    adapt_resources_drop => "resources-drop",
    adapt_resources_keep => "resources-keep",
    adapt_volume_ownership => "volume-ownership",
    adapt_env_overrides => "env-overrides",
    adapt_patches => "patches",
    adapt_patch_unmatched_is_an_error => "patch-unmatched",
    adapt_secrets => "secrets",
    adapt_every_knob_off => "adapt-off",
    source_kustomize => "source-kustomize",
    source_plain_dir => "source-plain-dir",
    source_list => "source-list",
}

/// Copy a fixture out of git and render its local environment.
fn render_copy(
    name: &str,
) -> (
    TempProject,
    std::path::PathBuf,
    ktwin_config::Loaded,
    ktwin_manifest::Rendered,
) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let tp = TempProject::new();
    let dir = tp.copy_tree(&src, "p");
    let loaded = ktwin_config::load(&dir.join("ktwin.yaml")).unwrap();
    let r = render_env(&loaded, "local", &TestKustomize, &plan(&loaded).unwrap()).unwrap();
    (tp, dir, loaded, r)
}

#[test]
fn rendered_tag_is_the_content_tag_build_will_push() {
    let (_tp, dir, loaded, r) = render_copy("images");
    let tag = ktwin_config::contenttag::content_tag(&ktwin_config::contenttag::BuildInputs::new(
        &loaded.dir,
        &loaded.project.images[0],
    ))
    .unwrap();
    let image = r.docs[0].value["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap();
    assert_eq!(image, format!("localhost:5001/acme/app:{tag}"));
    // A change to the build context changes the tag a new plan gives it; a render from the
    // plan made before the change keeps the tag that plan built (what was pushed).
    let before = plan(&loaded).unwrap();
    std::fs::write(dir.join("app/new-file"), "x").unwrap();
    let r2 = render_env(&loaded, "local", &TestKustomize, &plan(&loaded).unwrap()).unwrap();
    assert_ne!(r2.docs[0].value, r.docs[0].value);
    let r3 = render_env(&loaded, "local", &TestKustomize, &before).unwrap();
    assert_eq!(r3.docs[0].value, r.docs[0].value);
}

#[test]
fn sources_keep_file_and_line() {
    let (_tp, dir, _loaded, r) = render_copy("source-kustomize");
    let dep = r.docs.iter().find(|d| d.is("Deployment")).unwrap();
    assert_eq!(dep.name(), "dev-app");
    assert_eq!(dep.source.file, dir.join("k8s/base/app.yaml"));
    assert_eq!(dep.source.line, 6);
}

#[test]
fn source_helm() {
    if !helm_available() {
        return;
    }
    run_case("source-helm");
    let (_tp, dir, _loaded, r) = render_copy("source-helm");
    // helm's `# Source:` comment, then the template's own `apiVersion` line.
    let dep = r.docs.iter().find(|d| d.is("Deployment")).unwrap();
    assert_eq!(
        dep.source.file,
        dir.join("charts/shop/templates/deployment.yaml")
    );
    assert_eq!(dep.source.line, 1);
    // The test hook is left out, with the reason; the pre-install hook runs first.
    assert_eq!(r.dropped.len(), 1, "{:?}", r.dropped);
    assert_eq!(r.dropped[0].object, "Pod/shop-test");
    assert_eq!(r.docs[0].name(), "shop-migrate");
}

#[test]
fn source_helm_values_per_environment() {
    if !helm_available() {
        return;
    }
    let (_tp, _dir, loaded, _r) = render_copy("source-helm");
    let prod = render_env(&loaded, "prod", &TestKustomize, &[]).unwrap();
    let dep = prod.docs.iter().find(|d| d.is("Deployment")).unwrap();
    // prod reads only the chart's values.yaml: 3 replicas, ClusterIP, the upstream image.
    assert_eq!(dep.value["spec"]["replicas"], 3);
    assert_eq!(
        dep.value["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/acme/shop:1.0"
    );
    let svc = prod.docs.iter().find(|d| d.is("Service")).unwrap();
    assert_eq!(svc.value["spec"]["type"], "ClusterIP");
}

#[test]
fn source_helm_without_helm_says_how_to_install() {
    struct NoTools;
    impl Kustomizer for NoTools {
        fn build(&self, dir: &Path, _: &[String]) -> Result<String, RenderError> {
            Err(RenderError::NoKustomize {
                dir: dir.to_path_buf(),
            })
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/source-helm");
    let tp = TempProject::new();
    let dir = tp.copy_tree(&src, "p");
    let loaded = ktwin_config::load(&dir.join("ktwin.yaml")).unwrap();
    let e = render_env(&loaded, "prod", &NoTools, &[]).unwrap_err();
    assert!(matches!(e, RenderError::NoHelm { .. }), "{e:?}");
    assert!(e.help().unwrap().contains("helm.sh/docs/intro/install"));
}

#[test]
fn source_helm_packaged_chart() {
    if !helm_available() {
        return;
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/source-helm");
    let tp = TempProject::new();
    let dir = tp.copy_tree(&src, "p");
    let o = Command::new("helm")
        .args(["package", "charts/shop", "-d", "dist"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let y = std::fs::read_to_string(dir.join("ktwin.yaml"))
        .unwrap()
        .replace(
            "helm: {chart: charts/shop,",
            "helm: {chart: dist/shop-0.1.0.tgz,",
        );
    std::fs::write(dir.join("ktwin.yaml"), y).unwrap();
    let loaded = ktwin_config::load(&dir.join("ktwin.yaml")).unwrap();
    let prod = render_env(&loaded, "prod", &TestKustomize, &[]).unwrap();
    let dep = prod.docs.iter().find(|d| d.is("Deployment")).unwrap();
    assert_eq!(dep.value["spec"]["replicas"], 3);
    // Its templates are inside the archive: findings point at the archive.
    assert_eq!(dep.source.file, dir.join("dist/shop-0.1.0.tgz"));
}

/// The example and the kustomize fixtures stay buildable by kustomize v2.0.3 (Debian's kubectl
/// 1.20), so the oldest kubectls ktwin supports stay covered while the tests run a v5: none of
/// their kustomizations uses a field added later.
#[test]
fn kustomize_v2_fixtures_use_only_v2_fields() {
    let root = ktwin_testkit::workspace_root();
    let mut seen = 0;
    for dir in [
        root.join("examples/swarm/k8s"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/source-kustomize"),
    ] {
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.file_name().is_some_and(|n| n == "kustomization.yaml") {
                    seen += 1;
                    let k: serde_json::Value =
                        serde_saphyr::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
                    for (field, since) in ktwin_manifest::render::KUSTOMIZE_FIELD_SINCE {
                        assert!(
                            k.get(field).is_none(),
                            "{}: `{field}` needs kustomize {since}",
                            p.display()
                        );
                    }
                }
            }
        }
    }
    assert!(seen >= 4, "{seen} kustomizations");
}
