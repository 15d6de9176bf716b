//! Tier 1: `ktwin dev -o json` as a user runs it — a long-running process watching a project —
//! against ktwin-testkit's kube API **stand-in** (HTTP on 127.0.0.1) and a stub `k3d` that
//! reports the stand-in's kubeconfig. These projects build no image (the tier-2 test builds
//! with a real engine): what is checked is the loop — a save sends only what changed, a save
//! that changes no content sends nothing, a broken file is an `error` and the loop lives on,
//! ktwin.yaml is re-read, 2,000 files are one cycle, logs follow pods across a rollout.
#![allow(clippy::disallowed_methods)] // tests run the binary and real tools directly

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ktwin_testkit::kubeapi::{healthy_workloads, ApiStandIn};
use ktwin_testkit::{ktwin_with_stubs, Responder, StubBin, TempProject};
use serde_json::{json, Value};

const APP: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: REPLICAS
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: app
          image: nginx:1.27
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80}]
";

fn app(replicas: u32) -> String {
    APP.replace("REPLICAS", &replicas.to_string())
}

struct Dev {
    tp: TempProject,
    api: ApiStandIn,
    child: Child,
    events: Arc<Mutex<Vec<Value>>>,
    _stubs: StubBin,
    _state: tempfile::TempDir,
}

impl Dev {
    fn start(extra_args: &[&str], setup: impl FnOnce(&TempProject, &ApiStandIn)) -> Dev {
        let tp = TempProject::new();
        let api = ApiStandIn::start();
        let kubeconfig = api.kubeconfig(tp.path(), &["k3d-shop"]);
        let reg = Responder::start();
        tp.write(
            "ktwin.yaml",
            &format!(
                "apiVersion: ktwin.dev/v1alpha1\nkind: Project\nname: shop\nregistry:\n  hostPort: {}\nenvironments:\n  local:\n    manifests: [k8s]\n",
                reg.port
            ),
        );
        tp.write("k8s/app.yaml", &app(2));
        tp.write(".gitignore", "ignored/\n");
        setup(&tp, &api);
        api.controller(healthy_workloads);
        let stubs = StubBin::new();
        let own = std::fs::read_to_string(&kubeconfig).unwrap();
        stubs.add_rules("k3d", &[("kubeconfig get shop", &own, 0)]);
        let state = tempfile::tempdir().unwrap();
        let mut child =
            ktwin_with_stubs(env!("CARGO_BIN_EXE_ktwin"), tp.path(), &stubs, state.path())
                .args(["dev", "--no-up", "-o", "json", "--timeout", "20s"])
                .args(extra_args)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .stdin(Stdio::null())
                .spawn()
                .expect("start ktwin dev");
        let events = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let ev = events.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                let v: Value =
                    serde_json::from_str(&l).unwrap_or_else(|e| panic!("not NDJSON ({e}): {l}"));
                ev.lock().unwrap().push(v);
            }
        });
        let d = Dev {
            tp,
            api,
            child,
            events,
            _stubs: stubs,
            _state: state,
        };
        d.wait_for(|e| e["event"] == "ready", "ready");
        d
    }

    fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    /// Wait until an event after the first `from` satisfies `f`; return its index.
    fn wait_from(&self, from: usize, f: impl Fn(&Value) -> bool, what: &str) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let evs = self.events();
            if let Some(i) = evs.iter().skip(from).position(&f) {
                return from + i;
            }
            assert!(Instant::now() < deadline, "no `{what}` event: {evs:#?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_for(&self, f: impl Fn(&Value) -> bool, what: &str) -> usize {
        self.wait_from(0, f, what)
    }

    /// Events from `from` up to and including the next `cycle` or `error` after it.
    fn next_cycle(&self, from: usize) -> Vec<Value> {
        let end = self.wait_from(
            from,
            |e| e["event"] == "cycle" || e["event"] == "error",
            "cycle",
        );
        self.events()[from..=end].to_vec()
    }

    fn stop(mut self) -> i32 {
        // Ctrl-C, as a user stops it (this test started the process: its PID).
        let pid = self.child.id().to_string();
        assert!(std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("ktwin dev did not stop on SIGINT");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        // A failed assertion must not leave the process watching (stop() reaped it already).
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn of<'a>(evs: &'a [Value], event: &str) -> Vec<&'a Value> {
    evs.iter().filter(|e| e["event"] == event).collect()
}

#[test]
fn a_save_sends_what_changed_and_nothing_else() {
    let d = Dev::start(&["--no-logs"], |_, _| {});
    // The first cycle created both objects; every event carries its time.
    let first = d.events();
    let applied: Vec<String> = of(&first, "apply")
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["object"].as_str().unwrap(),
                e["action"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        applied.contains(&"deployment/web created".to_string()),
        "{first:#?}"
    );
    assert!(
        applied.contains(&"service/web created".to_string()),
        "{first:#?}"
    );
    assert!(first
        .iter()
        .all(|e| e["t"].as_str().is_some_and(|t| t.ends_with('Z'))));
    assert!(d.api.get("apps/v1", "Deployment", "shop", "web").is_some());

    // One edit: one apply of that object, no request about the Service.
    d.api.reset_counts();
    let n = d.events().len();
    std::fs::write(d.tp.path().join("k8s/app.yaml"), app(3)).unwrap();
    let evs = d.next_cycle(n);
    let applies: Vec<&Value> = of(&evs, "apply")
        .into_iter()
        .filter(|e| e["action"] != "unchanged")
        .collect();
    assert_eq!(applies.len(), 1, "{evs:#?}");
    assert_eq!(applies[0]["object"], "deployment/web");
    assert_eq!(applies[0]["namespace"], "shop");
    assert_eq!(applies[0]["action"], "configured");
    assert!(of(&evs, "change")[0]["paths"][0]
        .as_str()
        .unwrap()
        .ends_with("k8s/app.yaml"));
    assert_eq!(
        d.api.get("apps/v1", "Deployment", "shop", "web").unwrap()["spec"]["replicas"],
        3
    );
    assert!(
        d.api
            .requests()
            .iter()
            .all(|r| !r.path.contains("/services")),
        "{:?}",
        d.api.requests()
    );

    // Saved again unchanged: no build, no request at all.
    d.api.reset_counts();
    let n = d.events().len();
    std::fs::write(d.tp.path().join("k8s/app.yaml"), app(3)).unwrap();
    let evs = d.next_cycle(n);
    let cycle = of(&evs, "cycle")[0];
    assert_eq!(cycle["noop"], true, "{evs:#?}");
    assert!(of(&evs, "apply").is_empty() && of(&evs, "build").is_empty());
    assert!(d.api.requests().is_empty(), "{:?}", d.api.requests());

    // 2,000 files at once (a branch switch): one batch, one cycle.
    let n = d.events().len();
    for i in 0..2000 {
        d.tp.write(&format!("notes/n{i}.txt"), "x");
    }
    let evs = d.next_cycle(n);
    assert_eq!(of(&evs, "change").len(), 1, "{evs:#?}");
    assert!(of(&evs, "change")[0]["paths"].as_array().unwrap().len() >= 1000);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        of(&d.events()[n..], "cycle").len(),
        1,
        "one cycle for one batch"
    );

    // Gitignored and .git paths start nothing.
    let n = d.events().len();
    d.tp.write("ignored/big.bin", "x");
    d.tp.write(".git/index", "x");
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        of(&d.events()[n..], "change").is_empty(),
        "{:#?}",
        &d.events()[n..]
    );

    assert_eq!(d.stop(), 0);
}

#[test]
fn broken_files_are_errors_and_the_loop_lives_on() {
    let d = Dev::start(&["--no-logs"], |_, _| {});
    // A manifest that does not parse: an error, nothing sent, the twin as it was.
    d.api.reset_counts();
    let n = d.events().len();
    std::fs::write(
        d.tp.path().join("k8s/app.yaml"),
        "apiVersion: v1\nkind: [\n",
    )
    .unwrap();
    let evs = d.next_cycle(n);
    let e = of(&evs, "error");
    assert_eq!(e.len(), 1, "{evs:#?}");
    assert_eq!(e[0]["phase"], "render");
    assert_eq!(d.api.writes(), 0);
    // Fixed on the next save.
    let n = d.events().len();
    std::fs::write(d.tp.path().join("k8s/app.yaml"), app(4)).unwrap();
    let evs = d.next_cycle(n);
    assert!(of(&evs, "error").is_empty(), "{evs:#?}");
    assert_eq!(
        d.api.get("apps/v1", "Deployment", "shop", "web").unwrap()["spec"]["replicas"],
        4
    );

    // A broken ktwin.yaml: shown, and the last good plan stays; fixed, it is read again —
    // here with a namespace the next cycle puts on a new object.
    let y = std::fs::read_to_string(d.tp.path().join("ktwin.yaml")).unwrap();
    let n = d.events().len();
    std::fs::write(
        d.tp.path().join("ktwin.yaml"),
        y.replace("manifests:", "manifestz:"),
    )
    .unwrap();
    let evs = d.next_cycle(n);
    let e = of(&evs, "error");
    assert_eq!(e[0]["phase"], "config", "{evs:#?}");
    assert!(
        e[0]["message"].as_str().unwrap().contains("manifestz"),
        "{e:?}"
    );
    let n = d.events().len();
    std::fs::write(
        d.tp.path().join("ktwin.yaml"),
        y.replace("    manifests: [k8s]\n", "    manifests: [k8s, extra]\n"),
    )
    .unwrap();
    d.tp.write(
        "extra/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra, namespace: shop}\ndata: {a: b}\n",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while d.api.get("v1", "ConfigMap", "shop", "extra").is_none() {
        assert!(Instant::now() < deadline, "{:#?}", &d.events()[n..]);
        std::thread::sleep(Duration::from_millis(100));
    }
    // A source that no longer exists is a config error too; taken out of ktwin.yaml, its
    // object leaves the render and is pruned.
    std::fs::remove_dir_all(d.tp.path().join("extra")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(d.tp.path().join("ktwin.yaml"), &y).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while d.api.get("v1", "ConfigMap", "shop", "extra").is_some() {
        assert!(Instant::now() < deadline, "{:#?}", d.events());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(d.stop(), 0);
}

#[test]
fn logs_follow_pods_across_a_rollout_without_repeats() {
    let pod = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
            "status": {"phase": "Running"}})
    };
    let d = Dev::start(&[], |_, api| {
        api.put(pod("web-1"));
        api.with(|s| {
            // Before the session: not shown.
            s.add_log_line("shop", "web-1", "app", "2020-01-01T00:00:00Z", "old");
        });
    });
    let t = |offset_ms: i64| {
        jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_millis(offset_ms))
            .unwrap()
            .to_string()
    };
    d.api.with(|s| {
        s.add_log_line("shop", "web-1", "app", &t(100), "one");
        s.add_log_line("shop", "web-1", "app", &t(200), "two");
    });
    d.wait_for(|e| e["event"] == "log" && e["line"] == "two", "log two");
    // More lines on the same pod (each reconnect sends everything since a second before).
    d.api
        .with(|s| s.add_log_line("shop", "web-1", "app", &t(300), "three"));
    d.wait_for(|e| e["event"] == "log" && e["line"] == "three", "log three");
    // A rollout replaces the pod.
    d.api.with(|s| {
        s.delete("v1", "Pod", "shop", "web-1");
    });
    d.api.put(pod("web-2"));
    d.api
        .with(|s| s.add_log_line("shop", "web-2", "app", &t(400), "four"));
    d.wait_for(|e| e["event"] == "log" && e["line"] == "four", "log four");
    std::thread::sleep(Duration::from_millis(2500)); // two more polls: nothing repeats
    let lines: Vec<String> = of(&d.events(), "log")
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["pod"].as_str().unwrap(),
                e["line"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        lines,
        ["web-1 one", "web-1 two", "web-1 three", "web-2 four"]
    );
    assert_eq!(d.stop(), 0);
}

/// A "container port": answers each connection with `reply`, then closes.
fn container(reply: &'static str) -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let _ = std::io::Write::write_all(&mut c, reply.as_bytes());
        }
    });
    addr
}

fn web_pod(name: &str, created: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "labels": {"app": "web"}, "creationTimestamp": created},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})
}

fn ask(port: u16) -> String {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut s = String::new();
    let _ = std::io::Read::read_to_string(&mut c, &mut s);
    s
}

#[test]
fn a_forward_is_listening_at_ready_and_follows_the_rollout() {
    let local = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = Dev::start(&["--no-logs"], |tp, api| {
        let text = std::fs::read_to_string(tp.path().join("ktwin.yaml")).unwrap();
        tp.write(
            "ktwin.yaml",
            &format!("{text}    forwards: [{{service: web, port: 80, localPort: {local}}}]\n"),
        );
        api.put(web_pod("web-a", "2026-12-01T10:00:00Z"));
        api.with(|s| s.serve_pod_port("shop", "web-a", 80, container("from a")));
    });
    let ready = d.wait_for(|e| e["event"] == "ready", "ready");
    let listening = d.wait_for(
        |e| e["event"] == "forward" && e["state"] == "listening",
        "forward listening",
    );
    assert!(listening < ready, "{:#?}", d.events());
    assert_eq!(d.events()[listening]["localPort"], local);
    assert_eq!(ask(local), "from a");
    // The rollout replaced the pod: the same local port reaches the new one.
    d.api.put(web_pod("web-b", "2026-12-01T10:05:00Z"));
    d.api
        .with(|s| s.serve_pod_port("shop", "web-b", 80, container("from b")));
    assert!(d.api.with(|s| s.delete("v1", "Pod", "shop", "web-a")));
    assert_eq!(ask(local), "from b");
    let c = d.wait_for(
        |e| e["event"] == "forward" && e["state"] == "connected" && e["pod"] == "web-b",
        "connected to web-b",
    );
    assert_eq!(d.events()[c]["service"], "web");
    assert_eq!(d.stop(), 0);
}

/// On a terminal (a pty from util-linux `script`), text mode pins a status board above the
/// scrolling events: a scroll region below it, the workloads' ready/desired and restarts, the
/// last error; Ctrl-C typed into the terminal gives the whole screen back.
#[test]
#[allow(clippy::print_stderr)] // a skipped test says so
fn on_a_terminal_a_status_board_sits_above_the_log() {
    if ktwin_testkit::which_program("script").is_none() {
        eprintln!("skipped: util-linux `script` is not installed (it provides the pty)");
        return;
    }
    let tp = TempProject::new();
    let api = ApiStandIn::start();
    let kubeconfig = api.kubeconfig(tp.path(), &["k3d-shop"]);
    tp.write(
        "ktwin.yaml",
        "apiVersion: ktwin.dev/v1alpha1\nkind: Project\nname: shop\nenvironments:\n  local:\n    manifests: [k8s]\n",
    );
    tp.write("k8s/app.yaml", &app(2));
    api.controller(healthy_workloads);
    api.put(web_pod("web-a", "2026-12-01T10:00:00Z"));
    let stubs = StubBin::new();
    let own = std::fs::read_to_string(&kubeconfig).unwrap();
    stubs.add_rules("k3d", &[("kubeconfig get shop", &own, 0)]);
    let state = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_ktwin");
    let inner = format!("stty rows 30 cols 100; exec {bin} dev --no-up --no-logs --timeout 5s");
    let mut c = ktwin_with_stubs("script", tp.path(), &stubs, state.path());
    let mut child = c
        .args(["-qfec", &inner, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let screen = Arc::new(Mutex::new(String::new()));
    let sc = screen.clone();
    let mut so = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut so, &mut buf) {
            if n == 0 {
                break;
            }
            sc.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while !screen.lock().unwrap().contains("1/2 ready") {
        assert!(
            Instant::now() < deadline,
            "no board: {:?}",
            screen.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = screen.lock().unwrap().clone();
    // Two workload-ish lines + the error line + the rule; events scroll below, rows 5..30.
    assert!(s.contains("\x1b[2J"), "{s:?}");
    assert!(s.contains(";30r"), "no scroll region: {s:?}");
    assert!(
        s.contains("workload deployment/web (shop)  1/2 ready, 0 restart(s)"),
        "{s:?}"
    );
    assert!(s.contains("last error: none"), "{s:?}");
    assert!(s.contains("ready: watching"), "{s:?}");
    // Ctrl-C, typed.
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"\x03").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "{st:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ktwin dev did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(100));
    // The scroll region is reset on the way out.
    assert!(
        screen.lock().unwrap().contains("\x1b[r"),
        "{:?}",
        screen.lock().unwrap()
    );
}

#[test]
fn polling_sees_an_edit_and_a_touch_sends_nothing() {
    // The fallback when the inotify watch limit is reached, asked for with --poll.
    let d = Dev::start(&["--no-logs", "--poll"], |_, _| {});
    assert!(
        d.events().iter().any(|e| e["event"] == "ready"
            && e["polling"].as_str().is_some_and(|p| p.contains("--poll"))),
        "{:#?}",
        d.events()
    );
    let n = d.events().len();
    std::fs::write(d.tp.path().join("k8s/app.yaml"), app(4)).unwrap();
    let evs = d.next_cycle(n);
    assert!(
        of(&evs, "apply")
            .iter()
            .any(|e| e["object"] == "deployment/web" && e["action"] == "configured"),
        "{evs:#?}"
    );
    // A new mtime, the same bytes: polling sees the change, the content sends nothing.
    d.api.reset_counts();
    let n = d.events().len();
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(d.tp.path().join("k8s/app.yaml"), app(4)).unwrap();
    let evs = d.next_cycle(n);
    assert_eq!(of(&evs, "cycle")[0]["noop"], true, "{evs:#?}");
    assert!(d.api.writes() == 0, "{:?}", d.api.requests());
    assert_eq!(d.stop(), 0);
}
