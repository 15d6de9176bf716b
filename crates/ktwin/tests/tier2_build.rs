//! Tier 2: `ktwin build` against a real engine and registry. Run by scripts/test.sh after
//! scripts/test-env.sh: `cargo test -p ktwin --test tier2_build -- --ignored`.
#![allow(clippy::disallowed_methods)] // tests run the binary and real tools directly

mod common;

use common::{engine, out, Reg};

/// A project with one FROM-scratch image of two layers, and the registry up.
fn project(r: &mut Reg, dockerfile: &str) -> String {
    let repo = r.repo("app");
    let image = format!("ghcr.io/{repo}");
    r.tp.write("app/a.txt", "layer a\n");
    r.tp.write("app/b.txt", "layer b v1\n");
    r.tp.write("app/Dockerfile", dockerfile);
    r.tp.write("k8s/deploy.yaml", &format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app}}\nspec:\n  template:\n    spec:\n      containers: [{{name: app, image: '{image}:1.0'}}]\n"));
    r.write_config_with(r.port, &format!("images:\n  - {{image: {image}, context: app}}\nenvironments:\n  local:\n    manifests: [k8s]\n"));
    let up = r.ktwin(&["registry", "up"]);
    assert!(up.status.success(), "{}", out(&up));
    r.images
        .push(format!("localhost:{}/{repo}:ktwin-engine", r.port));
    image
}

fn build_json(r: &Reg) -> serde_json::Value {
    let o = r.ktwin(&["build", "-o", "json"]);
    assert!(o.status.success(), "{}", out(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v[0].clone()
}

const TWO_LAYERS: &str = "FROM scratch\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\n";

#[test]
#[ignore = "tier 2: needs a Docker or Podman engine; scripts/test.sh runs it on both via scripts/test-env.sh"]
fn unchanged_is_skipped_and_one_changed_file_pushes_one_layer() {
    let mut r = Reg::new();
    project(&mut r, TWO_LAYERS);
    let first = build_json(&r);
    r.images
        .push(first["reference"].as_str().unwrap().to_string());
    assert_eq!(
        (first["outcome"].as_str(), first["via"].as_str()),
        (Some("pushed"), Some("store"))
    );
    assert_eq!(
        (first["layers"].as_u64(), first["layersPushed"].as_u64()),
        (Some(2), Some(2))
    );

    // The tag render shows is the tag build pushed.
    let rendered = r.ktwin(&["render", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&rendered.stdout).unwrap();
    assert_eq!(
        v["items"][0]["spec"]["template"]["spec"]["containers"][0]["image"],
        first["reference"]
    );

    // Unchanged: skipped, nothing built (the local image is not re-created), 0 bytes moved.
    let created = |reference: &str| {
        String::from_utf8_lossy(
            &engine(&["image", "inspect", "-f", "{{.Created}}", reference]).stdout,
        )
        .to_string()
    };
    let before = created(first["reference"].as_str().unwrap());
    let again = build_json(&r);
    assert_eq!(
        (again["outcome"].as_str(), again["bytesPushed"].as_u64()),
        (Some("skipped"), Some(0))
    );
    assert_eq!(created(first["reference"].as_str().unwrap()), before);

    // One file changed: a new tag, and only its layer moves.
    r.tp.write("app/b.txt", "layer b v2\n");
    let changed = build_json(&r);
    r.images
        .push(changed["reference"].as_str().unwrap().to_string());
    assert_ne!(changed["tag"], first["tag"]);
    assert_eq!(
        (
            changed["outcome"].as_str(),
            changed["layersPushed"].as_u64()
        ),
        (Some("pushed"), Some(1))
    );
    assert_eq!(changed["via"], "store");
    assert!(changed["bytesPushed"].as_u64().unwrap() > 0);
}

#[test]
#[ignore = "tier 2: needs a Docker or Podman engine; scripts/test.sh runs it on both via scripts/test-env.sh"]
fn a_failed_build_shows_the_engine_error_fenced() {
    let mut r = Reg::new();
    project(&mut r, "FROM scratch\nCOPY does-not-exist.txt /x\n");
    let o = r.ktwin(&["build"]);
    assert_eq!(o.status.code(), Some(1));
    let text = out(&o);
    assert!(
        text.contains("building ghcr.io/t2/")
            && text.contains("```")
            && text.contains("does-not-exist.txt"),
        "{text}"
    );
}

#[test]
#[ignore = "tier 2: needs a Docker or Podman engine; scripts/test.sh runs it on both via scripts/test-env.sh"]
fn a_stopped_registry_is_a_clear_error() {
    let mut r = Reg::new();
    project(&mut r, TWO_LAYERS);
    assert!(engine(&["stop", &r.name]).status.success());
    let o = r.ktwin(&["build"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        out(&o).contains("does not answer") && out(&o).contains("ktwin registry up"),
        "{}",
        out(&o)
    );
}
