//! `ktwin dev` save-to-apply benchmark (run by scripts/bench-dev.sh, which starts a real
//! Docker engine and provides the registry image). One-file change of a 5 MB app layer on a
//! 300 MB base, three rounds each, measured in the same run:
//!
//! - **ktwin dev**: from the write of the file to the `apply` event of the workload with the
//!   new tag (inotify batch → content tags → build → push → render → server-side apply).
//! - **script loop**: `docker build && docker push && kubectl apply --server-side`, what the
//!   teams' shell scripts do, through the same registry and to the same API.
//! - **kind-load loop**: `docker build && docker save | ctr images import` into a standalone
//!   containerd standing in for a node (what `kind load` / `k3d image import` do; no apply).
//! - a no-op save (same bytes written): builds and API writes counted.
//!
//! The API is ktwin-testkit's kube API **stand-in** (no cluster can run here), the same for
//! ktwin and kubectl. Prints a table; asserts nothing about speed.
#![allow(clippy::disallowed_methods, clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ktwin_testkit::kubeapi::{healthy_workloads, ApiStandIn};
use ktwin_testkit::StubBin;
use serde_json::Value;

const ROUNDS: usize = 3;

fn run(cmd: &mut Command) {
    let o = cmd.output().expect("run");
    assert!(
        o.status.success(),
        "{:?}: {}",
        cmd,
        String::from_utf8_lossy(&o.stderr)
    );
}

fn bytes(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Cleanup {
    registry: String,
    images: Vec<String>,
    containers: Vec<String>,
    containerd: Option<std::process::Child>,
    dev: Option<std::process::Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &self.registry])
            .output();
        let _ = Command::new("docker")
            .args(["volume", "rm", "-f", &format!("{}-data", self.registry)])
            .output();
        for i in &self.images {
            let _ = Command::new("docker").args(["rmi", "-f", i]).output();
        }
        for c in [&mut self.dev, &mut self.containerd].into_iter().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn main() {
    if std::env::var_os("KTWIN_REGISTRY_IMAGE").is_none() {
        eprintln!(
            "run scripts/bench-dev.sh (it starts the engine and provides KTWIN_REGISTRY_IMAGE)"
        );
        return;
    }
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/ktwin");
    assert!(
        bin.exists(),
        "build the release binary first (scripts/bench-dev.sh does)"
    );
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("proj");
    let port = free_port();
    let id = std::process::id();
    let mut clean = Cleanup {
        registry: format!("ktwin-bench-dev-{id}"),
        images: vec![],
        containers: vec![],
        containerd: None,
        dev: None,
    };
    // The 300 MB base, built once (not measured).
    let base = format!("bench-dev-base-{id}:1");
    std::fs::create_dir_all(work.path().join("base")).unwrap();
    // KTWIN_BENCH_BASE_MB shrinks the base for a quick try; the table says what was used.
    let base_mb: usize = std::env::var("KTWIN_BENCH_BASE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    std::fs::write(
        work.path().join("base/base.bin"),
        bytes(base_mb * 1_000_000, 7),
    )
    .unwrap();
    std::fs::write(
        work.path().join("base/Dockerfile"),
        "FROM scratch\nCOPY base.bin /base.bin\n",
    )
    .unwrap();
    run(Command::new("docker")
        .args(["build", "-q", "-t", &base])
        .arg(work.path().join("base")));
    clean.images.push(base.clone());
    std::fs::create_dir_all(dir.join("app")).unwrap();
    std::fs::create_dir_all(dir.join("k8s")).unwrap();
    let app = dir.join("app/app.bin");
    std::fs::write(&app, bytes(5_000_000, 1)).unwrap();
    std::fs::write(
        dir.join("app/Dockerfile"),
        format!("FROM {base}\nCOPY app.bin /app.bin\n"),
    )
    .unwrap();
    let repo = format!("bench/app-{id}");
    let deploy = |image: &str| {
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app, namespace: bench}}\nspec:\n  selector: {{matchLabels: {{app: app}}}}\n  template:\n    metadata: {{labels: {{app: app}}}}\n    spec:\n      containers: [{{name: app, image: '{image}'}}]\n")
    };
    std::fs::write(
        dir.join("k8s/deploy.yaml"),
        deploy(&format!("ghcr.io/{repo}:1.0")),
    )
    .unwrap();
    std::fs::write(
        dir.join("ktwin.yaml"),
        format!("apiVersion: ktwin.dev/v1alpha1\nkind: Project\nname: bench\nregistry:\n  name: {}\n  hostPort: {port}\nimages:\n  - {{image: ghcr.io/{repo}, context: app}}\nenvironments:\n  local:\n    manifests: [k8s]\n", clean.registry),
    )
    .unwrap();
    let state = work.path().join("state");
    run(Command::new(&bin)
        .args(["registry", "up"])
        .current_dir(&dir)
        .env("XDG_STATE_HOME", &state));

    let kube = ApiStandIn::start();
    kube.controller(healthy_workloads);
    let kubeconfig = kube.kubeconfig(work.path(), &["k3d-bench"]);
    let stubs = StubBin::new();
    stubs.add_rules(
        "k3d",
        &[(
            "kubeconfig get bench",
            &std::fs::read_to_string(&kubeconfig).unwrap(),
            0,
        )],
    );

    // ktwin dev.
    let path = format!(
        "{}:{}",
        stubs.path().display(),
        std::env::var("PATH").unwrap()
    );
    let mut child = Command::new(&bin)
        .args([
            "dev",
            "--no-up",
            "--no-logs",
            "-o",
            "json",
            "--timeout",
            "60s",
        ])
        .current_dir(&dir)
        .env("PATH", &path)
        .env("XDG_STATE_HOME", &state)
        .env_remove("KUBECONFIG")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(work.path().join("dev.err")).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    clean.dev = Some(child);
    let events: Arc<Mutex<Vec<(Instant, Value)>>> = Arc::default();
    let ev = events.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&l) {
                ev.lock().unwrap().push((Instant::now(), v));
            }
        }
    });
    let wait = |from: usize, f: &dyn Fn(&Value) -> bool| -> (usize, Instant) {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let e = events.lock().unwrap().clone();
            if let Some(i) = e.iter().skip(from).position(|(_, v)| f(v)) {
                return (from + i, e[from + i].0);
            }
            if Instant::now() > deadline {
                let err = std::fs::read_to_string(work.path().join("dev.err")).unwrap_or_default();
                panic!("timed out; events: {e:#?}\nktwin dev stderr:\n{err}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let cold_start = Instant::now();
    let (ready, _) = wait(0, &|v| v["event"] == "ready");
    let cold = cold_start.elapsed();
    let mut ktwin = Vec::new();
    let mut engine_build = Vec::new();
    let mut from = ready;
    for r in 0..ROUNDS {
        let n = events.lock().unwrap().len().max(from);
        std::fs::write(&app, bytes(5_000_000, 100 + r as u32)).unwrap();
        let t0 = Instant::now();
        let (i, t1) = wait(n, &|v| {
            v["event"] == "apply" && v["object"] == "deployment/app" && v["action"] == "configured"
        });
        ktwin.push(t1 - t0);
        let e = events.lock().unwrap().clone();
        if let Some((_, b)) = e[n..i].iter().find(|(_, v)| v["event"] == "build") {
            engine_build.push(b["seconds"].as_f64().unwrap_or(0.0));
            clean.images.push(format!(
                "localhost:{port}/{repo}:{}",
                b["tag"].as_str().unwrap_or("")
            ));
        }
        let (c, _) = wait(i, &|v| v["event"] == "cycle");
        from = c + 1;
    }
    // A no-op save: the same bytes again.
    let before = kube.writes();
    let n = events.lock().unwrap().len();
    let same = std::fs::read(&app).unwrap();
    std::fs::write(&app, &same).unwrap();
    let (c, _) = wait(n, &|v| v["event"] == "cycle");
    let e = events.lock().unwrap().clone();
    let noop_builds = e[n..=c]
        .iter()
        .filter(|(_, v)| v["event"] == "build")
        .count();
    let noop_writes = kube.writes() - before;
    if let Some(mut child) = clean.dev.take() {
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
    clean
        .images
        .push(format!("localhost:{port}/{repo}:ktwin-engine"));

    // The script loop, to the same registry and API.
    let mut script = Vec::new();
    for r in 0..ROUNDS {
        std::fs::write(&app, bytes(5_000_000, 200 + r as u32)).unwrap();
        let tag = format!("localhost:{port}/{repo}:script-{r}");
        clean.images.push(tag.clone());
        let manifest = work.path().join(format!("script-{r}.yaml"));
        std::fs::write(&manifest, deploy(&tag)).unwrap();
        let t0 = Instant::now();
        run(Command::new("docker")
            .args(["build", "-q", "-t", &tag])
            .arg(dir.join("app")));
        run(Command::new("docker").args(["push", "-q", &tag]));
        run(Command::new("kubectl")
            .args(["--kubeconfig"])
            .arg(&kubeconfig)
            .args([
                "apply",
                "--server-side",
                "--force-conflicts",
                "--validate=false",
                "-f",
            ])
            .arg(&manifest));
        script.push(t0.elapsed());
    }

    // The kind-load loop, into a standalone containerd.
    let ctrd = work.path().join("containerd");
    std::fs::create_dir_all(&ctrd).unwrap();
    let sock = ctrd.join("c.sock");
    std::fs::write(
        ctrd.join("config.toml"),
        format!(
            "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n[grpc]\n  address = \"{1}\"\n[ttrpc]\n  address = \"{0}/t.sock\"\n[metrics]\n  address = \"\"\n",
            ctrd.display(),
            sock.display()
        ),
    )
    .unwrap();
    clean.containerd = Some(
        Command::new("containerd")
            .arg("--config")
            .arg(ctrd.join("config.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("containerd"),
    );
    let ctr_ok = || {
        Command::new("ctr")
            .arg("--address")
            .arg(&sock)
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ctr_ok() {
        assert!(Instant::now() < deadline, "containerd did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Warm: the base is in the node already, as after a first load.
    let load = |tag: &str| {
        let mut save = Command::new("docker")
            .args(["save", tag])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let st = Command::new("ctr")
            .arg("--address")
            .arg(&sock)
            .args(["-n", "k8s.io", "images", "import", "--all-platforms", "-"])
            .stdin(save.stdout.take().unwrap())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success() && save.wait().unwrap().success());
    };
    let warm = format!("localhost:{port}/{repo}:script-0");
    load(&warm);
    let mut kind = Vec::new();
    for r in 0..ROUNDS {
        std::fs::write(&app, bytes(5_000_000, 300 + r as u32)).unwrap();
        let tag = format!("localhost:{port}/{repo}:kind-{r}");
        clean.images.push(tag.clone());
        let t0 = Instant::now();
        run(Command::new("docker")
            .args(["build", "-q", "-t", &tag])
            .arg(dir.join("app")));
        load(&tag);
        kind.push(t0.elapsed());
    }

    // Sync, mount mode: a saved file seen inside a container that bind-mounts the project, as
    // every k3d/kind node mounts it (the pod's hostPath is one more bind of the same tree,
    // which needs a cluster to measure). The container polls the file every 5 ms and prints
    // what it sees; the time is from the write to the line on `docker logs -f`.
    let mut mount = Vec::new();
    let bb = std::path::Path::new("/bin/busybox");
    if bb.exists() {
        let img_dir = work.path().join("watcher");
        std::fs::create_dir_all(&img_dir).unwrap();
        std::fs::copy(bb, img_dir.join("busybox")).unwrap();
        std::fs::write(
            img_dir.join("Dockerfile"),
            "FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT [\"/bin/busybox\", \"sh\", \"-c\", \"p=; while :; do c=$(/bin/busybox cat /ktwin/src/synced.txt 2>/dev/null); if [ \\\"$c\\\" != \\\"$p\\\" ]; then echo \\\"$c\\\"; p=$c; fi; /bin/busybox usleep 5000; done\"]\n",
        )
        .unwrap();
        let watcher = format!("bench-dev-watcher-{id}:1");
        run(Command::new("docker")
            .args(["build", "-q", "-t", &watcher])
            .arg(&img_dir));
        clean.images.push(watcher.clone());
        std::fs::write(dir.join("synced.txt"), "start").unwrap();
        let cname = format!("ktwin-bench-watch-{id}");
        run(Command::new("docker")
            .args(["run", "-d", "--name", &cname, "-v"])
            .arg(format!("{}:/ktwin/src", dir.display()))
            .arg(&watcher));
        clean.containers.push(cname.clone());
        let mut logs = Command::new("docker")
            .args(["logs", "-f", &cname])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let seen: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let sn = seen.clone();
        let lo = logs.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(lo).lines().map_while(Result::ok) {
                sn.lock().unwrap().push((Instant::now(), l));
            }
        });
        for r in 0..10 {
            let text = format!("save {r}");
            let t0 = Instant::now();
            std::fs::write(dir.join("synced.txt"), &text).unwrap();
            let deadline = t0 + Duration::from_secs(10);
            loop {
                if let Some((t, _)) = seen.lock().unwrap().iter().find(|(_, l)| *l == text) {
                    mount.push(*t - t0);
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the container did not see {text}"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let _ = logs.kill();
        let _ = logs.wait();
    }
    let med = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64()
    };
    let (k, s, kl) = (med(&mut ktwin), med(&mut script), med(&mut kind));
    let mut eb = engine_build.clone();
    eb.sort_by(|a, b| a.total_cmp(b));
    let eng = eb.get(eb.len() / 2).copied().unwrap_or(0.0);
    println!("\nktwin dev: save → workload applied with the new tag; 5 MB app layer on a {base_mb} MB base; median of {ROUNDS}");
    println!("| loop | seconds | ktwin is faster by |");
    println!("|---|---|---|");
    println!("| ktwin dev (inotify → build → push → apply) | {k:.2} | — |");
    println!(
        "| script: docker build && docker push && kubectl apply | {s:.2} | {:.1}× |",
        s / k
    );
    println!(
        "| kind-load: docker build && docker save \\| ctr import (no apply) | {kl:.2} | {:.1}× |",
        kl / k
    );
    println!("\nengine build inside ktwin's cycle (median): {eng:.2} s; ktwin's own time on top: {:.2} s (target ≤ 0.30 s)", k - eng);
    println!(
        "first cycle (cold: base layer pushed once): {:.1} s",
        cold.as_secs_f64()
    );
    println!("no-op save (same bytes): {noop_builds} build(s), {noop_writes} API write(s)");
    if mount.is_empty() {
        println!("sync (mount mode): not measured — /bin/busybox (busybox-static) is missing\n");
    } else {
        let m = med(&mut mount);
        println!("sync (mount mode): save → visible in a container bind-mounting the project, median of 10: {:.3} s (target ≤ 0.1 s)\n", m);
    }
    // `clean` (containers, images, containerd) goes before `work` (the files), in that order.
    drop(clean);
    drop(work);
}
