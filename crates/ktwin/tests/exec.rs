//! Tier 1: `ktwin exec` runs a real child process on this machine, wired to ktwin-testkit's
//! kube API **stand-in** (the twin stand-in, reached through a stub `k3d` that reports its
//! kubeconfig): the private KUBECONFIG holds only the twin's context and is gone after;
//! `--as` gives the child a container's env (values, ConfigMap/Secret keys, envFrom,
//! Service links with the live cluster IP, downward API) and its config volumes as private
//! files; `--print-env` redacts secrets; the exit code and SIGTERM pass through.
#![allow(clippy::disallowed_methods)] // tests run the binary and real tools directly

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use ktwin_testkit::kubeapi::ApiStandIn;
use ktwin_testkit::{ktwin_with_stubs, StubBin, TempProject};
use serde_json::json;

const APP: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: gateway, namespace: swarm}
spec:
  selector: {matchLabels: {app: gateway}}
  template:
    metadata: {labels: {app: gateway, tier: edge}}
    spec:
      volumes:
        - {name: config, configMap: {name: gw-config}}
        - {name: tls, secret: {secretName: gw-tls}}
      containers:
        - name: gateway
          image: ghcr.io/acme/gateway:1.0
          envFrom: [{configMapRef: {name: swarm-config}}]
          env:
            - {name: DB_PASSWORD, valueFrom: {secretKeyRef: {name: db, key: password}}}
            - {name: DB_URL, value: 'postgres://app:$(DB_PASSWORD)@postgres:5432/app'}
            - {name: POD_NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
            - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
          volumeMounts:
            - {name: config, mountPath: /etc/gateway}
            - {name: tls, mountPath: /tls}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: swarm-config, namespace: swarm}
data: {LOG_LEVEL: debug}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: gw-config, namespace: swarm}
data: {routes.yaml: 'routes: []'}
---
apiVersion: v1
kind: Secret
metadata: {name: db, namespace: swarm}
stringData: {password: Zq9secretPW}
---
apiVersion: v1
kind: Secret
metadata: {name: gw-tls, namespace: swarm}
stringData: {tls.key: KEYMATERIALx7}
---
apiVersion: v1
kind: Service
metadata: {name: postgres, namespace: swarm}
spec:
  selector: {app: postgres}
  ports: [{name: pg, port: 5432}]
";

struct World {
    tp: TempProject,
    stubs: StubBin,
    state: tempfile::TempDir,
    _api: ApiStandIn,
}

impl World {
    fn new() -> World {
        let tp = TempProject::new();
        let api = ApiStandIn::start();
        let kubeconfig = api.kubeconfig(tp.path(), &["k3d-swarm", "prod"]);
        tp.write(
            "ktwin.yaml",
            "apiVersion: ktwin.dev/v1alpha1\nkind: Project\nname: swarm\nenvironments:\n  local:\n    manifests: [k8s]\n",
        );
        tp.write("k8s/app.yaml", APP);
        // The Service as the API server has it: with the cluster IP it allocated.
        api.put(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "postgres", "namespace": "swarm"},
            "spec": {"clusterIP": "10.43.7.9", "ports": [{"name": "pg", "port": 5432}]}}));
        let stubs = StubBin::new();
        let own = std::fs::read_to_string(&kubeconfig).unwrap();
        stubs.add_rules("k3d", &[("kubeconfig get swarm", &own, 0)]);
        World {
            tp,
            stubs,
            state: tempfile::tempdir().unwrap(),
            _api: api,
        }
    }

    fn cmd(&self, args: &[&str]) -> std::process::Command {
        let mut c = ktwin_with_stubs(
            env!("CARGO_BIN_EXE_ktwin"),
            self.tp.path(),
            &self.stubs,
            self.state.path(),
        );
        c.args(args);
        c
    }

    fn ktwin(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// `ktwin exec --as gateway -- sh -c SCRIPT`.
    fn exec_as_gateway(&self, script: &str) -> Output {
        self.ktwin(&["exec", "--as", "gateway", "--", "sh", "-c", script])
    }

    fn read(&self, f: &str) -> String {
        std::fs::read_to_string(self.tp.path().join(f)).unwrap_or_default()
    }
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_child_gets_a_kubeconfig_of_the_twin_only_which_goes_with_it() {
    let w = World::new();
    let o = w.ktwin(&[
        "exec",
        "--",
        "sh",
        "-c",
        "echo \"$KUBECONFIG\" > kc.path; cp \"$KUBECONFIG\" kc.copy; stat -c %a \"$KUBECONFIG\" > kc.mode; echo \"$KTWIN_ENV $KTWIN_NAMESPACE\" > ktwin.env; exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    let kc = w.read("kc.copy");
    assert!(kc.contains("k3d-swarm"), "{kc}");
    // The user's kubeconfig had a `prod` context too: not in the child's.
    assert!(!kc.contains("prod"), "{kc}");
    assert_eq!(w.read("kc.mode").trim(), "600");
    assert_eq!(w.read("ktwin.env").trim(), "local default");
    assert!(!std::path::Path::new(w.read("kc.path").trim()).exists());
    // Nothing to run: an error that says what to do.
    let o = w.ktwin(&["exec"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--print-env"), "{}", text(&o));
}

#[test]
fn as_a_workload_the_child_gets_its_env_and_config_files() {
    let w = World::new();
    let o = w.exec_as_gateway(
        "env > env.txt; cat \"$KTWIN_MOUNT_CONFIG/routes.yaml\" > routes.txt; cat \"$KTWIN_MOUNT_TLS/tls.key\" > key.txt; stat -c %a \"$KTWIN_MOUNT_TLS\" \"$KTWIN_MOUNT_TLS/tls.key\" > modes.txt; echo \"$KTWIN_MOUNT_TLS\" > mount.path",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let env = w.read("env.txt");
    for line in [
        "LOG_LEVEL=debug",
        "DB_PASSWORD=Zq9secretPW",
        "DB_URL=postgres://app:Zq9secretPW@postgres:5432/app",
        "POD_NS=swarm",
        "POD_NAME=gateway-ktwin-exec",
        "POSTGRES_SERVICE_HOST=10.43.7.9",
        "POSTGRES_SERVICE_PORT_PG=5432",
        "POSTGRES_PORT=tcp://10.43.7.9:5432",
        "KTWIN_NAMESPACE=swarm",
    ] {
        assert!(
            env.lines().any(|l| l == line),
            "no `{line}` in the child's env:\n{env}"
        );
    }
    assert!(!env.contains("KUBERNETES_SERVICE_HOST"), "{env}");
    assert_eq!(w.read("routes.txt"), "routes: []");
    assert_eq!(w.read("key.txt"), "KEYMATERIALx7");
    assert_eq!(
        w.read("modes.txt").split_whitespace().collect::<Vec<_>>(),
        ["700", "600"]
    );
    // The files went with the child.
    assert!(!std::path::Path::new(w.read("mount.path").trim()).exists());
    // ktwin's own output never holds a secret value.
    let t = text(&o);
    assert!(
        !t.contains("Zq9secretPW") && !t.contains("KEYMATERIALx7"),
        "{t}"
    );
    // The stand-in a pod-only field got is said.
    assert!(t.contains("POD_NAME") && t.contains("stand-in"), "{t}");
}

#[test]
fn print_env_redacts_secrets_unless_asked() {
    let w = World::new();
    let o = w.ktwin(&["exec", "--as", "deployment/gateway/gateway", "--print-env"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.lines().any(|l| l == "LOG_LEVEL=debug"), "{out}");
    assert!(out.lines().any(|l| l == "DB_PASSWORD=<redacted>"), "{out}");
    // A value built from a secret is a secret.
    assert!(out.lines().any(|l| l == "DB_URL=<redacted>"), "{out}");
    assert!(!text(&o).contains("Zq9secretPW"), "{}", text(&o));
    let o = w.ktwin(&["exec", "--as", "gateway", "--print-env", "--show-secrets"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("DB_PASSWORD=Zq9secretPW"),
        "{}",
        text(&o)
    );
    let o = w.ktwin(&["exec", "--as", "nope", "--print-env"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("deployment/gateway"), "{}", text(&o));
}

#[test]
fn forward_rewrites_service_hosts_to_local_forwards_for_the_childs_life() {
    let w = World::new();
    // The postgres pod, Ready, its port played by a listener here.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let mut c = c;
            let _ = std::io::Write::write_all(&mut c, b"pg says hi");
        }
    });
    w._api.put(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "postgres-0", "namespace": "swarm", "labels": {"app": "postgres"}},
        "spec": {"containers": [{"name": "pg", "image": "postgres:16"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}));
    w._api.put(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "postgres", "namespace": "swarm"},
        "spec": {"clusterIP": "10.43.7.9", "selector": {"app": "postgres"}, "ports": [{"name": "pg", "port": 5432}]}}));
    w._api
        .with(|s| s.serve_pod_port("swarm", "postgres-0", 5432, addr));
    let o = w.ktwin(&[
        "exec",
        "--as",
        "gateway",
        "--forward",
        "--",
        "bash",
        "-c",
        "echo \"$DB_URL\" > url.txt; echo \"$POSTGRES_SERVICE_HOST:$POSTGRES_SERVICE_PORT\" > link.txt; p=${DB_URL##*127.0.0.1:}; p=${p%%/*}; exec 3<>/dev/tcp/127.0.0.1/$p; cat <&3 > got.txt",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let url = w.read("url.txt");
    assert!(
        url.starts_with("postgres://app:Zq9secretPW@127.0.0.1:"),
        "{url}"
    );
    let port = url
        .trim()
        .trim_start_matches("postgres://app:Zq9secretPW@127.0.0.1:")
        .trim_end_matches("/app");
    assert_eq!(w.read("link.txt").trim(), format!("127.0.0.1:{port}"));
    // Through the forward to the pod's port.
    assert_eq!(w.read("got.txt"), "pg says hi");
    // The rewrite list names the variable and the Service, never the value.
    let t = text(&o);
    assert!(
        t.contains(&format!(
            "DB_URL: service/postgres (swarm) port 5432 → 127.0.0.1:{port}"
        )),
        "{t}"
    );
    assert!(!t.contains("Zq9secretPW"), "{t}");
    // The forward ended with the child.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).is_err());
}

#[test]
fn sigterm_to_ktwin_reaches_the_child() {
    let w = World::new();
    let mut child = w
        .cmd(&[
            "exec",
            "--",
            "sh",
            "-c",
            "trap 'echo got-term > term.txt; exit 3' TERM; echo ready > ready.txt; while true; do sleep 0.1; done",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while w.read("ready.txt").is_empty() {
        assert!(Instant::now() < deadline, "the child did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // This test started ktwin: its PID.
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    assert_eq!(w.read("term.txt").trim(), "got-term");
}

#[test]
fn a_volume_mounted_twice_is_written_once() {
    let w = World::new();
    // One ConfigMap volume, mounted whole and as one file by subPath.
    let app = std::fs::read_to_string(w.tp.path().join("k8s/app.yaml")).unwrap();
    w.tp.write(
        "k8s/app.yaml",
        &app.replace(
            "            - {name: config, mountPath: /etc/gateway}\n",
            "            - {name: config, mountPath: /etc/gateway}\n            - {name: config, mountPath: /etc/routes.yaml, subPath: routes.yaml}\n",
        ),
    );
    let o = w.exec_as_gateway("cat \"$KTWIN_MOUNT_CONFIG/routes.yaml\" > routes.txt");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(w.read("routes.txt"), "routes: []");
    assert!(text(&o).contains("/etc/routes.yaml"), "{}", text(&o));
}
