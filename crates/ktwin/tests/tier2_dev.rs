//! Tier 2: `ktwin dev -o json` with a real engine and registry (scripts/test-env.sh), the API
//! half against ktwin-testkit's kube API **stand-in** (no cluster can run here): an edit of a
//! 5 MB app file is one `build`, one `push` and one `apply` of the workload with the new tag,
//! and the registry serves that tag.
#![allow(clippy::disallowed_methods)] // tests run the binary and real tools directly

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{api, out, Reg};
use ktwin_testkit::kubeapi::{healthy_workloads, ApiStandIn};
use ktwin_testkit::StubBin;
use serde_json::Value;

fn five_mb(seed: u8) -> Vec<u8> {
    (0..5_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed)
        .collect()
}

#[test]
#[ignore = "tier 2: needs a Docker engine; scripts/test.sh runs it via scripts/test-env.sh"]
fn an_edit_is_built_pushed_and_applied_with_its_new_tag() {
    let mut r = Reg::new();
    let repo = r.repo("devapp");
    let image = format!("ghcr.io/{repo}");
    std::fs::create_dir_all(r.tp.path().join("app")).unwrap();
    std::fs::write(r.tp.path().join("app/app.bin"), five_mb(1)).unwrap();
    r.tp.write("app/Dockerfile", "FROM scratch\nCOPY app.bin /app.bin\n");
    r.tp.write(
        "k8s/deploy.yaml",
        &format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app, namespace: dev}}\nspec:\n  selector: {{matchLabels: {{app: app}}}}\n  template:\n    metadata: {{labels: {{app: app}}}}\n    spec:\n      containers: [{{name: app, image: '{image}:1.0'}}]\n"),
    );
    r.write_config_with(
        r.port,
        &format!("images:\n  - {{image: {image}, context: app}}\nenvironments:\n  local:\n    manifests: [k8s]\n"),
    );
    let up = r.ktwin(&["registry", "up"]);
    assert!(up.status.success(), "{}", out(&up));
    r.images
        .push(format!("localhost:{}/{repo}:ktwin-engine", r.port));

    let kube = ApiStandIn::start();
    kube.controller(healthy_workloads);
    let kubeconfig = kube.kubeconfig(r.tp.path(), &["k3d-t2"]);
    let stubs = StubBin::new();
    stubs.add_rules(
        "k3d",
        &[(
            "kubeconfig get t2",
            &std::fs::read_to_string(&kubeconfig).unwrap(),
            0,
        )],
    );
    let path = format!(
        "{}:{}",
        stubs.path().display(),
        std::env::var("PATH").unwrap()
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ktwin"))
        .args([
            "dev",
            "--no-up",
            "--no-logs",
            "-o",
            "json",
            "--timeout",
            "30s",
        ])
        .current_dir(r.tp.path())
        .env("PATH", path)
        .env("XDG_STATE_HOME", r.state.path())
        .env_remove("KUBECONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let events: Arc<Mutex<Vec<Value>>> = Arc::default();
    let ev = events.clone();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            ev.lock().unwrap().push(serde_json::from_str(&l).unwrap());
        }
    });
    let wait = |from: usize, what: &str| -> usize {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let e = events.lock().unwrap().clone();
            if let Some(i) = e.iter().skip(from).position(|x| x["event"] == what) {
                return from + i;
            }
            assert!(Instant::now() < deadline, "no {what}: {e:#?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let ready = wait(0, "ready");
    let first: Vec<Value> = events.lock().unwrap()[..ready].to_vec();
    let built: Vec<&Value> = first.iter().filter(|e| e["event"] == "build").collect();
    assert_eq!(built.len(), 1, "{first:#?}");
    assert_eq!(built[0]["outcome"], "built");
    let tag1 = built[0]["tag"].as_str().unwrap().to_string();
    r.images.push(format!("localhost:{}/{repo}:{tag1}", r.port));

    // The edit: a new 5 MB app file.
    let n = events.lock().unwrap().len();
    std::fs::write(r.tp.path().join("app/app.bin"), five_mb(2)).unwrap();
    let c = wait(n, "cycle");
    let evs: Vec<Value> = events.lock().unwrap()[n..=c].to_vec();
    let of = |k: &str| {
        evs.iter()
            .filter(|e| e["event"] == k)
            .cloned()
            .collect::<Vec<_>>()
    };
    let b = of("build");
    assert_eq!(b.len(), 1, "{evs:#?}");
    let tag2 = b[0]["tag"].as_str().unwrap().to_string();
    r.images.push(format!("localhost:{}/{repo}:{tag2}", r.port));
    assert_ne!(tag1, tag2);
    assert_eq!(b[0]["outcome"], "built");
    let p = of("push");
    assert_eq!(p.len(), 1, "{evs:#?}");
    assert!(p[0]["bytes"].as_u64().unwrap() >= 5_000_000, "{p:?}");
    let a: Vec<Value> = of("apply")
        .into_iter()
        .filter(|e| e["action"] != "unchanged")
        .collect();
    assert_eq!(a.len(), 1, "{evs:#?}");
    assert_eq!(a[0]["object"], "deployment/app");
    let d = kube.get("apps/v1", "Deployment", "dev", "app").unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("localhost:{}/{repo}:{tag2}", r.port)
    );
    // The registry serves the tag the twin now runs.
    assert!(api(r.port).has_manifest(&repo, &tag2).unwrap());

    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}
