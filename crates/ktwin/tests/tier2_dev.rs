//! Tier 2: `ktwin dev -o json` with a real engine and registry (scripts/test-env.sh), the API
//! half against ktwin-testkit's kube API **stand-in** (no cluster can run here): an edit of a
//! 5 MB app file is one `build`, one `push` and one `apply` of the workload with the new tag,
//! and the registry serves that tag; a save during a build stops it (the engine never finishes
//! or tags the stale image) and the next cycle builds the new content.
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

/// A `ktwin dev -o json` this test started, ended (by its PID) when dropped.
struct DevProc {
    child: Option<std::process::Child>,
    events: Arc<Mutex<Vec<Value>>>,
}

impl DevProc {
    /// The stand-in API and a stub `k3d` that reports its kubeconfig for project `t2`.
    fn api(r: &Reg) -> (ApiStandIn, StubBin) {
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
        (kube, stubs)
    }

    fn start(r: &Reg, _kube: &ApiStandIn, stubs: &StubBin) -> DevProc {
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
            .stderr(Stdio::null())
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
        DevProc {
            child: Some(child),
            events,
        }
    }

    fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    /// The index of the first `what` event after the first `from`.
    /// The events of the cycle `edit` starts (from the first after it to its `cycle`).
    fn cycle_after<T>(&self, edit: impl FnOnce() -> T) -> Vec<Value> {
        let n = self.events().len();
        edit();
        let c = self.wait(n, "cycle");
        self.events()[n..=c].to_vec()
    }

    fn wait(&self, from: usize, what: &str) -> usize {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let e = self.events();
            if let Some(i) = e.iter().skip(from).position(|x| x["event"] == what) {
                return from + i;
            }
            assert!(Instant::now() < deadline, "no {what}: {e:#?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ctrl-C, as a user stops it; its exit code.
    fn stop(mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let pid = child.id().to_string();
        assert!(std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success());
        child.wait().unwrap().code()
    }
}

impl Drop for DevProc {
    fn drop(&mut self) {
        // A failed assertion must not leave the process watching.
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The start the tier-2 dev tests share, once each test has written its `app/` context: a
/// Deployment `app` (namespace dev) of the image, ktwin.yaml with `config` (its `images:` and
/// environments) after the registry, the registry up, `ktwin dev` running against the
/// stand-in, and the tag its first cycle built.
struct Started {
    dev: DevProc,
    kube: ApiStandIn,
    _stubs: StubBin,
    tag1: String,
}

fn start_dev(r: &mut Reg, repo: &str, image: &str, config: &str) -> Started {
    r.tp.write(
        "k8s/deploy.yaml",
        &format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app, namespace: dev}}\nspec:\n  selector: {{matchLabels: {{app: app}}}}\n  template:\n    metadata: {{labels: {{app: app}}}}\n    spec:\n      containers: [{{name: app, image: '{image}:1.0'}}]\n"),
    );
    r.write_config_with(r.port, config);
    let up = r.ktwin(&["registry", "up"]);
    assert!(up.status.success(), "{}", out(&up));
    r.images
        .push(format!("localhost:{}/{repo}:ktwin-engine", r.port));
    let (kube, stubs) = DevProc::api(r);
    let dev = DevProc::start(r, &kube, &stubs);
    let ready = dev.wait(0, "ready");
    let first = dev.events()[..ready].to_vec();
    let tag1 = first
        .iter()
        .find(|e| e["event"] == "build")
        .and_then(|e| e["tag"].as_str())
        .unwrap_or_else(|| panic!("{first:#?}"))
        .to_string();
    r.images.push(format!("localhost:{}/{repo}:{tag1}", r.port));
    Started {
        dev,
        kube,
        _stubs: stubs,
        tag1,
    }
}

fn five_mb(seed: u8) -> Vec<u8> {
    (0..5_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed)
        .collect()
}

#[test]
#[ignore = "tier 2: needs a Docker or Podman engine; scripts/test.sh runs it on both via scripts/test-env.sh"]
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

    let (kube, stubs) = DevProc::api(&r);
    let dev = DevProc::start(&r, &kube, &stubs);
    let events = &dev.events;
    let wait = |from: usize, what: &str| dev.wait(from, what);
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

    assert_eq!(dev.stop(), Some(0));
}

#[test]
#[ignore = "tier 2: needs a Docker or Podman engine; scripts/test.sh runs it on both via scripts/test-env.sh"]
fn an_edit_during_a_build_stops_it_and_builds_the_new_content() {
    let mut r = Reg::new();
    let repo = r.repo("stale");
    let image = format!("ghcr.io/{repo}");
    let ctx = r.tp.path().join("app");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy("/bin/busybox", ctx.join("busybox")).unwrap();
    std::fs::write(ctx.join("app.txt"), "v1").unwrap();
    // A build that takes a while after the app file (a compile, in real life).
    r.tp.write(
        "app/Dockerfile",
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY app.txt /app.txt\nRUN [\"/bin/busybox\", \"sleep\", \"6\"]\n",
    );
    let Started {
        dev,
        kube,
        tag1,
        _stubs: _stubs_alive,
    } = start_dev(&mut r, &repo, &image, &format!("images:\n  - {{image: {image}, context: app}}\nenvironments:\n  local:\n    manifests: [k8s]\n"));

    // v2 saved; its build starts; v3 saved while it runs.
    let n = dev.events().len();
    std::fs::write(ctx.join("app.txt"), "v2").unwrap();
    dev.wait(n, "change");
    std::thread::sleep(Duration::from_secs(2));
    std::fs::write(ctx.join("app.txt"), "v3").unwrap();
    let stopped = dev.wait(n, "cycle");
    let evs = dev.events();
    let b = &evs[n..=stopped];
    let cancelled: Vec<&Value> = b.iter().filter(|e| e["event"] == "build").collect();
    assert_eq!(cancelled.len(), 1, "{b:#?}");
    assert_eq!(cancelled[0]["outcome"], "cancelled", "{b:#?}");
    assert_eq!(evs[stopped]["cancelled"], true, "{b:#?}");
    assert!(
        !b.iter()
            .any(|e| e["event"] == "push" || e["event"] == "apply"),
        "{b:#?}"
    );
    let tag2 = cancelled[0]["tag"].as_str().unwrap().to_string();
    let ref2 = format!("localhost:{}/{repo}:{tag2}", r.port);
    r.images.push(ref2.clone());
    // Stopped, not finished: the engine never tagged the stale image, the registry never got it.
    assert!(!common::engine(&["image", "inspect", &ref2])
        .status
        .success());
    assert!(!api(r.port).has_manifest(&repo, &tag2).unwrap());

    // The next cycle builds v3 and rolls it out.
    let done = dev.wait(stopped + 1, "cycle");
    let next = &evs_after(&dev, stopped + 1, done);
    let built: Vec<&Value> = next.iter().filter(|e| e["event"] == "build").collect();
    assert_eq!(built.len(), 1, "{next:#?}");
    assert_eq!(built[0]["outcome"], "built");
    let tag3 = built[0]["tag"].as_str().unwrap().to_string();
    r.images.push(format!("localhost:{}/{repo}:{tag3}", r.port));
    assert!(tag3 != tag2 && tag3 != tag1, "{next:#?}");
    // By now a stale build left running would have finished: the engine ended it.
    assert!(!common::engine(&["image", "inspect", &ref2])
        .status
        .success());
    let d = kube.get("apps/v1", "Deployment", "dev", "app").unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("localhost:{}/{repo}:{tag3}", r.port)
    );
    assert_eq!(dev.stop(), Some(0));
}

fn evs_after(dev: &DevProc, from: usize, to: usize) -> Vec<Value> {
    dev.events()[from..=to].to_vec()
}

#[test]
#[ignore = "tier 2: needs a Docker or Podman engine; scripts/test.sh runs it on both via scripts/test-env.sh"]
fn a_synced_file_needs_no_build_and_the_workload_mounts_it() {
    let mut r = Reg::new();
    let repo = r.repo("sync");
    let image = format!("ghcr.io/{repo}");
    std::fs::create_dir_all(r.tp.path().join("app/static")).unwrap();
    r.tp.write("app/static/index.html", "v1");
    r.tp.write("app/server.txt", "server v1");
    r.tp.write("app/Dockerfile", "FROM scratch\nCOPY . /app/\n");
    let Started {
        dev,
        kube,
        tag1,
        _stubs: _stubs_alive,
    } = start_dev(&mut r, &repo, &image, &format!("images:\n  - image: {image}\n    context: app\n    sync: [{{src: 'static/**', dest: /app/static}}]\nenvironments:\n  local:\n    manifests: [k8s]\n"));
    // The workload mounts the synced directory from the project mount every node has.
    let d = kube.get("apps/v1", "Deployment", "dev", "app").unwrap();
    let spec = &d["spec"]["template"]["spec"];
    assert_eq!(
        spec["volumes"][0],
        serde_json::json!({"name": "ktwin-sync-0-0", "hostPath": {"path": "/ktwin/src/app/static", "type": "Directory"}})
    );
    assert_eq!(
        spec["containers"][0]["volumeMounts"][0],
        serde_json::json!({"name": "ktwin-sync-0-0", "mountPath": "/app/static", "readOnly": true})
    );

    // A synced file: no build, nothing sent, a `sync` event.
    let evs = dev.cycle_after(|| r.tp.write("app/static/index.html", "v2"));
    assert!(
        !evs.iter()
            .any(|e| e["event"] == "build" || e["event"] == "apply" && e["action"] != "unchanged"),
        "{evs:#?}"
    );
    let sync: Vec<&Value> = evs.iter().filter(|e| e["event"] == "sync").collect();
    assert_eq!(sync.len(), 1, "{evs:#?}");
    assert_eq!(sync[0]["image"], image.as_str());
    assert_eq!(sync[0]["files"], 1);
    assert_eq!(sync[0]["mode"], "mount");

    // A file outside the sync rules: a build of everything changed since the last one.
    let evs = dev.cycle_after(|| r.tp.write("app/server.txt", "server v2"));
    let b: Vec<&Value> = evs.iter().filter(|e| e["event"] == "build").collect();
    assert_eq!(b.len(), 1, "{evs:#?}");
    assert_eq!(b[0]["outcome"], "built");
    let tag2 = b[0]["tag"].as_str().unwrap().to_string();
    r.images.push(format!("localhost:{}/{repo}:{tag2}", r.port));
    assert_ne!(tag1, tag2);
    assert_eq!(dev.stop(), Some(0));
}

#[test]
#[ignore = "tier 2: needs a Docker or Podman engine; scripts/test.sh runs it on both via scripts/test-env.sh"]
fn copy_mode_puts_synced_files_into_running_containers_or_rebuilds() {
    let mut r = Reg::new();
    let repo = r.repo("copy");
    let image = format!("ghcr.io/{repo}");
    std::fs::create_dir_all(r.tp.path().join("app/static")).unwrap();
    r.tp.write("app/static/index.html", "v1");
    r.tp.write("app/Dockerfile", "FROM scratch\nCOPY . /app/\n");
    let Started {
        dev,
        kube,
        tag1,
        _stubs: _stubs_alive,
    } = start_dev(&mut r, &repo, &image, &format!("syncMode: copy\nimages:\n  - image: {image}\n    context: app\n    sync: [{{src: 'static/**', dest: /srv/static}}]\nenvironments:\n  local:\n    manifests: [k8s]\n"));
    let ref1 = format!("localhost:{}/{repo}:{tag1}", r.port);
    // Copy mode changes no object: no project mount in the workload.
    let d = kube.get("apps/v1", "Deployment", "dev", "app").unwrap();
    assert!(d["spec"]["template"]["spec"]["volumes"].is_null(), "{d}");
    // A running pod of it, its file system played by a directory here.
    let fs = tempfile::tempdir().unwrap();
    kube.put(serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "app-1", "namespace": "dev", "labels": {"app": "app"}},
        "spec": {"containers": [{"name": "app", "image": ref1}]},
        "status": {"phase": "Running"}}));
    kube.with(|s| s.serve_container_fs("dev", "app-1", "app", fs.path(), true));

    let evs = dev.cycle_after(|| r.tp.write("app/static/index.html", "v2"));
    assert!(!evs.iter().any(|e| e["event"] == "build"), "{evs:#?}");
    let sync: Vec<&Value> = evs.iter().filter(|e| e["event"] == "sync").collect();
    assert_eq!(sync.len(), 1, "{evs:#?}");
    assert_eq!(sync[0]["mode"], "copy");
    assert_eq!(sync[0]["pods"], 1);
    assert_eq!(
        std::fs::read_to_string(fs.path().join("srv/static/index.html")).unwrap(),
        "v2"
    );

    // An image without tar: the error says so, and the change is rebuilt instead.
    kube.with(|s| s.serve_container_fs("dev", "app-1", "app", fs.path(), false));
    let evs = dev.cycle_after(|| r.tp.write("app/static/index.html", "v3"));
    let err: Vec<&Value> = evs.iter().filter(|e| e["event"] == "error").collect();
    assert_eq!(err.len(), 1, "{evs:#?}");
    assert_eq!(err[0]["phase"], "sync");
    assert!(
        err[0]["message"].as_str().unwrap().contains("no `tar`"),
        "{evs:#?}"
    );
    let b: Vec<&Value> = evs.iter().filter(|e| e["event"] == "build").collect();
    assert_eq!(b.len(), 1, "{evs:#?}");
    r.images.push(format!(
        "localhost:{}/{repo}:{}",
        r.port,
        b[0]["tag"].as_str().unwrap()
    ));
    assert_eq!(dev.stop(), Some(0));
}

#[test]
#[ignore = "tier 2: needs a Docker or Podman engine; scripts/test.sh runs it on both via scripts/test-env.sh"]
fn a_broken_dockerfile_is_an_error_and_the_next_save_fixes_it() {
    let mut r = Reg::new();
    let repo = r.repo("broken");
    let image = format!("ghcr.io/{repo}");
    r.tp.write("app/app.txt", "v1");
    r.tp.write("app/Dockerfile", "FROM scratch\nCOPY app.txt /app.txt\n");
    let Started {
        dev,
        kube,
        tag1,
        _stubs: _stubs_alive,
    } = start_dev(&mut r, &repo, &image, &format!("images:\n  - {{image: {image}, context: app}}\nenvironments:\n  local:\n    manifests: [k8s]\n"));
    let running = |kube: &ApiStandIn| {
        kube.get("apps/v1", "Deployment", "dev", "app").unwrap()["spec"]["template"]["spec"]
            ["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // A typo in the Dockerfile: an error with the engine's words, the twin keeps running tag1.
    let n = dev.events().len();
    r.tp.write("app/Dockerfile", "FROM scratch\nCOPPY app.txt /app.txt\n");
    let e = dev.wait(n, "error");
    let ev = dev.events()[e].clone();
    assert_eq!(ev["phase"], "build", "{ev}");
    assert!(
        ev["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("coppy"),
        "{ev}"
    );
    assert!(running(&kube).ends_with(&tag1));
    // The failed cycle still ends (its image at the last good tag, nothing to send): wait for
    // that end, or it would be taken for the end of the next cycle.
    dev.wait(e + 1, "cycle");
    // Fixed: built, applied with the new tag.
    let evs = dev.cycle_after(|| {
        r.tp.write(
            "app/Dockerfile",
            "FROM scratch\nCOPY app.txt /data/app.txt\n",
        )
    });
    let b: Vec<&Value> = evs.iter().filter(|e| e["event"] == "build").collect();
    assert_eq!(b.len(), 1, "{evs:#?}");
    assert_eq!(b[0]["outcome"], "built");
    let tag2 = b[0]["tag"].as_str().unwrap().to_string();
    r.images.push(format!("localhost:{}/{repo}:{tag2}", r.port));
    assert!(running(&kube).ends_with(&tag2));
    assert_eq!(dev.stop(), Some(0));
}
