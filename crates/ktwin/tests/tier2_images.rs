//! Tier 2: what reaches the registry and whether a node can pull it. A standalone containerd
//! (ktwin-testkit's `Containerd`) stands in for a cluster node; it is not a node, but it reads
//! the same hosts.toml mirror files a kind node does and pulls with the same code. Run by
//! scripts/test.sh after scripts/test-env.sh.
#![allow(clippy::disallowed_methods)] // tests run the binary and real tools directly

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{engine, out, Reg};
use ktwin_testkit::Containerd;

/// A project with one image (`extra` bytes of incompressible data in its first layer) and
/// the registry up. Returns the repository path.
fn project(r: &mut Reg, big: usize) -> String {
    let repo = r.repo("img");
    r.tp.write("app/b.txt", "v1\n");
    let mut data = vec![0u8; big];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
    std::fs::create_dir_all(r.tp.path().join("app")).unwrap();
    std::fs::write(r.tp.path().join("app/big.bin"), data).unwrap();
    r.tp.write(
        "app/Dockerfile",
        "FROM scratch\nCOPY big.bin /big.bin\nCOPY b.txt /b.txt\n",
    );
    r.write_config_with(
        r.port,
        &format!("images:\n  - {{image: ghcr.io/{repo}, context: app}}\n"),
    );
    let up = r.ktwin(&["registry", "up"]);
    assert!(up.status.success(), "{}", out(&up));
    r.images
        .push(format!("localhost:{}/{repo}:ktwin-engine", r.port));
    repo
}

/// `ktwin images verify` through the stand-in node succeeds.
fn assert_pulls(r: &Reg, node: &Containerd) {
    let v = r.ktwin(&[
        "images",
        "verify",
        "--containerd",
        node.address.to_str().unwrap(),
    ]);
    assert!(v.status.success(), "{}", out(&v));
}

fn build(r: &mut Reg) -> serde_json::Value {
    build_env(r, &[])
}

fn build_env(r: &mut Reg, env: &[(&str, &str)]) -> serde_json::Value {
    let o = r.ktwin_env(&["build", "-o", "json"], env);
    assert!(o.status.success(), "{}", out(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    r.images
        .push(v[0]["reference"].as_str().unwrap().to_string());
    v[0].clone()
}

#[test]
#[ignore = "tier 2: needs a Docker or Podman engine; scripts/test.sh runs it on both via scripts/test-env.sh"]
fn built_images_are_uncompressed_oci_and_pull_through_the_node_mirror_config() {
    let mut r = Reg::new();
    let repo = project(&mut r, 1 << 20);
    // Without the layer store (an engine ktwin cannot read): the export path first, then the
    // engine's incremental push plus conversion.
    let no_store = [("KTWIN_LAYER_STORE", "off")];
    let first = build_env(&mut r, &no_store);
    assert_eq!(first["via"], "export", "{first}");
    let api = common::api(r.port);
    let m = api.manifest(&repo, first["tag"].as_str().unwrap()).unwrap();
    assert_eq!(m["mediaType"], ktwin_engine::oci::OCI_MANIFEST);
    assert!(m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["mediaType"] == ktwin_engine::oci::LAYER_TAR));

    let node = Containerd::start();
    let sock = node.address.to_str().unwrap().to_string();
    let v = r.ktwin(&["images", "verify", "--containerd", &sock, "-o", "json"]);
    assert!(v.status.success(), "{}", out(&v));
    let rows: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    let refs: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reference"].as_str().unwrap())
        .collect();
    assert_eq!(refs.len(), 2, "{rows}");
    assert!(refs[0].starts_with(&format!("localhost:{}/", r.port)));
    assert!(refs[1].starts_with(&format!("{}:5000/", r.name)));
    let listed = node.ctr(&["-n", "ktwin-verify", "images", "ls", "-q"]);
    for reference in refs {
        assert!(
            String::from_utf8_lossy(&listed.stdout).contains(reference),
            "{reference} not in the stand-in node"
        );
    }

    // A changed file: the engine pushes only the changed layer, ktwin stores it
    // uncompressed, and the stand-in node pulls the new tag.
    r.tp.write("app/b.txt", "v2\n");
    let changed = build_env(&mut r, &no_store);
    assert_eq!(
        (changed["via"].as_str(), changed["layersPushed"].as_u64()),
        (Some("engine-push"), Some(1)),
        "{changed}"
    );
    assert!(changed["bytesPushed"].as_u64().unwrap() < 10_000);
    assert_pulls(&r, &node);

    // With the layer store: only the changed layer is read and uploaded, and it pulls.
    r.tp.write("app/b.txt", "v3\n");
    let store = build(&mut r);
    assert_eq!(
        (store["via"].as_str(), store["layersPushed"].as_u64()),
        (Some("store"), Some(1)),
        "{store}"
    );
    assert_pulls(&r, &node);
}

#[test]
#[ignore = "tier 2: needs a Docker or Podman engine; scripts/test.sh runs it on both via scripts/test-env.sh"]
fn a_registry_killed_mid_push_is_a_clear_error_and_a_rerun_completes() {
    let mut r = Reg::new();
    let repo = project(&mut r, 200 << 20);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ktwin"))
        .args(["-v", "build"])
        .current_dir(r.tp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    for l in lines.by_ref() {
        let l = l.unwrap();
        seen.push_str(&l);
        seen.push('\n');
        if l.contains("uploading layers") {
            assert!(engine(&["kill", &r.name]).status.success());
            break;
        }
    }
    for l in lines {
        seen.push_str(&l.unwrap());
        seen.push('\n');
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{seen}");
    // miette wraps long lines; compare the words.
    let flat = seen
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        flat.contains("pushing localhost:")
            && flat.contains("the connection to the registry broke")
            && flat.contains("rerunning `ktwin build` resumes"),
        "{seen}"
    );

    let up = r.ktwin(&["registry", "up"]);
    assert!(up.status.success(), "{}", out(&up));
    let again = build(&mut r);
    assert_eq!(again["outcome"], "pushed");
    let api = common::api(r.port);
    assert!(api
        .has_manifest(&repo, again["tag"].as_str().unwrap())
        .unwrap());
    assert_pulls(&r, &Containerd::start());
}

#[test]
#[ignore = "tier 2: needs a Docker or Podman engine; scripts/test.sh runs it on both via scripts/test-env.sh"]
fn gc_keeps_the_newest_content_tags_and_reclaims_blobs() {
    let mut r = Reg::new();
    let repo = project(&mut r, 1 << 16);
    let mut tags = Vec::new();
    for v in ["v1", "v2", "v3"] {
        r.tp.write("app/b.txt", &format!("{v}\n"));
        // Without the layer store, so the engine's `ktwin-engine` tag exists and must survive.
        let built = build_env(&mut r, &[("KTWIN_LAYER_STORE", "off")]);
        tags.push(built["tag"].as_str().unwrap().to_string());
        // Image creation times are compared at second resolution.
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    // Another project's repository with two content tags: not this project's to collect.
    let other = format!("localhost:{}/other/app", r.port);
    r.push_as(&format!("{other}:ktwin-00000000000000a1"), "one");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    r.push_as(&format!("{other}:ktwin-00000000000000a2"), "two");
    let dry = r.ktwin(&["registry", "gc", "--keep", "1", "--dry-run", "-o", "json"]);
    assert!(dry.status.success(), "{}", out(&dry));
    let d: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(d["deleted"][&repo].as_array().unwrap().len(), 2, "{d}");
    assert!(d["deleted"].get("other/app").is_none(), "{d}");
    let api = common::api(r.port);
    assert!(
        api.has_manifest(&repo, &tags[0]).unwrap(),
        "dry run deleted"
    );
    let all = r.ktwin(&[
        "registry",
        "gc",
        "--keep",
        "1",
        "--all-projects",
        "--dry-run",
        "-o",
        "json",
    ]);
    let a: serde_json::Value = serde_json::from_slice(&all.stdout).unwrap();
    assert_eq!(
        a["deleted"]["other/app"],
        serde_json::json!(["ktwin-00000000000000a1"]),
        "{a}"
    );
    // A tag a deploy recorded (an old branch, deployed now) is kept however old.
    let record = r.state.path().join("ktwin/deploys/t2-local.deploy.json");
    std::fs::create_dir_all(record.parent().unwrap()).unwrap();
    std::fs::write(
        &record,
        serde_json::json!({"kinds": [], "images": [format!("localhost:{}/{repo}:{}", r.port, tags[0])]})
            .to_string(),
    )
    .unwrap();
    let d = r.ktwin(&["registry", "gc", "--keep", "1", "--dry-run", "-o", "json"]);
    let d: serde_json::Value = serde_json::from_slice(&d.stdout).unwrap();
    assert_eq!(
        d["deleted"][&repo],
        serde_json::json!([tags[1].clone()]),
        "{d}"
    );
    std::fs::remove_file(&record).unwrap();
    // --keep 0 is refused.
    let zero = r.ktwin(&["registry", "gc", "--keep", "0"]);
    assert_eq!(zero.status.code(), Some(2), "{}", out(&zero));

    let gc = r.ktwin(&["registry", "gc", "--keep", "1", "-o", "json"]);
    assert!(gc.status.success(), "{}", out(&gc));
    let g: serde_json::Value = serde_json::from_slice(&gc.stdout).unwrap();
    let mut deleted: Vec<String> = g["deleted"][&repo]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    deleted.sort();
    let mut old = tags[..2].to_vec();
    old.sort();
    assert_eq!(deleted, old);
    assert!(g["blobsReclaimed"].as_u64().unwrap() >= 2, "{g}");
    assert!(!api.has_manifest(&repo, &tags[0]).unwrap());
    assert!(!api.has_manifest(&repo, &tags[1]).unwrap());
    assert!(api.has_manifest(&repo, &tags[2]).unwrap());
    assert!(api.has_manifest(&repo, "ktwin-engine").unwrap());
    assert_pulls(&r, &Containerd::start());
}
