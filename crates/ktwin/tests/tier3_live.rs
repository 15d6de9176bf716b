//! Tier 3: changes to a running k3d twin that `ktwin up` applies live, and volumes that
//! outlive it. A real cluster is needed (privileged node containers, the k3s image, and for
//! the volume test the `postgres:16-alpine` image from Docker Hub), so these are
//! `#[ignore = "needs cluster"]` and run by scripts/e2e.sh.
#![allow(clippy::disallowed_methods)] // tests run the binary and real tools directly

mod tier3;

use std::io::{Read, Write};
use std::process::Output;
use std::time::{Duration, Instant};

use ktwin_testkit::TempProject;
use tier3::{ok, ok_all, run};

fn ktwin(args: &[&str], dir: &std::path::Path) -> Output {
    run(env!("CARGO_BIN_EXE_ktwin"), args, dir)
}

/// A project `name` on k3d with `cluster` as its cluster block and `manifests` under k8s/.
fn project(name: &str, cluster: &str, manifests: &str) -> TempProject {
    let tp = TempProject::new();
    tp.write(
        "ktwin.yaml",
        &format!("apiVersion: ktwin.dev/v1alpha1\nkind: Project\nname: {name}\ncluster:\n  provider: k3d\n{cluster}images:\n  - {{image: ghcr.io/ktwin-e2e/web, context: web}}\nenvironments:\n  local:\n    manifests: [k8s]\n"),
    );
    tp.write(
        "web/Dockerfile",
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY index.html /www/index.html\nCMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
    );
    std::fs::copy("/bin/busybox", tp.path().join("web/busybox"))
        .expect("a static /bin/busybox (Debian's busybox-static)");
    tp.write("web/index.html", "served live\n");
    tp.write("k8s/app.yaml", manifests);
    tp
}

const WEB: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: default}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: ghcr.io/ktwin-e2e/web:1}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec:\n  type: NodePort\n  selector: {app: web}\n  ports: [{port: 8080, targetPort: 8080, nodePort: 30091}]\n";

fn http_get(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn server_created(cluster: &str, dir: &std::path::Path) -> String {
    ok(&run(
        "docker",
        &[
            "inspect",
            "-f",
            "{{.Created}}",
            &format!("k3d-{cluster}-server-0"),
        ],
        dir,
    ))
}

#[test]
#[ignore = "needs cluster"]
fn a_port_added_to_a_running_twin_is_served_without_a_recreate() {
    let tp = project("e2e-port", "", WEB);
    let d = tp.path();
    ok(&ktwin(&["up"], d));
    let created = server_created("e2e-port", d);
    // The port, added to ktwin.yaml of the running twin.
    let text = std::fs::read_to_string(d.join("ktwin.yaml")).unwrap();
    std::fs::write(
        d.join("ktwin.yaml"),
        text.replace(
            "  provider: k3d\n",
            "  provider: k3d\n  ports: [{hostPort: 18091, nodePort: 30091}]\n",
        ),
    )
    .unwrap();
    let out = ok_all(&ktwin(&["up"], d));
    assert!(out.contains("ports added on the load balancer"), "{out}");
    assert_eq!(server_created("e2e-port", d), created, "not recreated");
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = loop {
        match http_get(18091) {
            Some(b) if b.contains("served live") => break b,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_secs(1)),
            other => panic!("127.0.0.1:18091 did not serve the page: {other:?}"),
        }
    };
    assert!(body.starts_with("HTTP/1."), "{body}");
    ok(&ktwin(&["down"], d));
}

#[test]
#[ignore = "needs cluster"]
fn an_agent_added_live_carries_its_pools_labels_and_no_other_pools_taint() {
    let pools = "  agents:\n    - {name: web, labels: {pool: web}, taints: ['dedicated=web:NoSchedule']}\n    - {name: db, labels: {pool: db}}\n";
    let tp = project("e2e-agent", pools, WEB);
    let d = tp.path();
    ok(&ktwin(&["up"], d));
    let created = server_created("e2e-agent", d);
    let text = std::fs::read_to_string(d.join("ktwin.yaml")).unwrap();
    std::fs::write(
        d.join("ktwin.yaml"),
        text.replace("{name: db, labels", "{name: db, count: 2, labels"),
    )
    .unwrap();
    let out = ok_all(&ktwin(&["up"], d));
    assert!(
        out.contains("agent k3d-e2e-agent-agent-2-0 added to pool db"),
        "{out}"
    );
    assert_eq!(server_created("e2e-agent", d), created, "not recreated");
    let node: serde_json::Value = serde_json::from_str(
        &ok(&run(
            "kubectl",
            &[
                "--context",
                "k3d-e2e-agent",
                "get",
                "node",
                "k3d-e2e-agent-agent-2-0",
                "-o",
                "json",
            ],
            d,
        ))
        .lines()
        .filter(|l| !l.starts_with("Warning"))
        .collect::<Vec<_>>()
        .join("\n"),
    )
    .unwrap();
    assert_eq!(node["metadata"]["labels"]["pool"], "db", "{node}");
    let taints = node["spec"]["taints"].to_string();
    assert!(!taints.contains("dedicated"), "{taints}");
    // And removed again: drained, then deleted, the cluster still the same.
    std::fs::write(d.join("ktwin.yaml"), &text).unwrap();
    let out = ok_all(&ktwin(&["up"], d));
    assert!(
        out.contains("delete the drained agent k3d-e2e-agent-agent-2-0"),
        "{out}"
    );
    assert_eq!(server_created("e2e-agent", d), created, "not recreated");
    ok(&ktwin(&["down"], d));
}

const POSTGRES: &str = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data, namespace: default}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: pg, namespace: default}\nspec:\n  selector: {matchLabels: {app: pg}}\n  strategy: {type: Recreate}\n  template:\n    metadata: {labels: {app: pg}}\n    spec:\n      containers:\n        - name: pg\n          image: postgres:16-alpine\n          env:\n            - {name: POSTGRES_PASSWORD, value: e2e}\n            - {name: PGDATA, value: /var/lib/postgresql/data/pgdata}\n          readinessProbe: {exec: {command: [pg_isready, -U, postgres]}, periodSeconds: 2}\n          volumeMounts: [{name: data, mountPath: /var/lib/postgresql/data}]\n      volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]\n";

fn psql(sql: &str, dir: &std::path::Path) -> Output {
    run(
        "kubectl",
        &[
            "--context",
            "k3d-e2e-pv",
            "exec",
            "deploy/pg",
            "--",
            "psql",
            "-U",
            "postgres",
            "-tAc",
            sql,
        ],
        dir,
    )
}

#[test]
#[ignore = "needs cluster"]
fn a_postgres_row_written_before_down_is_there_after_up() {
    let tp = project(
        "e2e-pv",
        "  persistentVolumes: true\n",
        &format!("{WEB}---\n{POSTGRES}"),
    );
    let d = tp.path();
    ok(&ktwin(&["up"], d));
    ok(&psql(
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('kept');",
        d,
    ));
    let out = ok_all(&ktwin(&["down"], d));
    assert!(out.contains("volumes: kept in"), "{out}");
    ok(&ktwin(&["up"], d));
    let got = ok(&psql("SELECT v FROM t;", d));
    assert!(got.contains("kept"), "{got}");
    let out = ok_all(&ktwin(&["down", "--purge-volumes"], d));
    assert!(out.contains("volumes: deleted"), "{out}");
}
