//! Tier 3: a real k3d (or kind) cluster. These need Docker able to run privileged node
//! containers and the provider's node image, which CI machines here cannot provide; they are
//! `#[ignore = "needs cluster"]` and run by scripts/e2e.sh where the prerequisites exist.
//! KTWIN_E2E_PROVIDER=kind switches the provider (default k3d).
#![allow(clippy::disallowed_methods)] // tests run the binary and real tools directly

mod tier3;

use ktwin_testkit::{swarm_example, workspace_root, TempProject};
use tier3::{ok, run};

fn swarm() -> (TempProject, std::path::PathBuf) {
    let (tp, dir) = swarm_example();
    // The busybox scripts/example-prepare.sh put into each build context (copy_tree skips bin/).
    for c in ["lobboss", "lobster", "gateway"] {
        let from = workspace_root().join(format!("examples/swarm/containers/{c}/bin/busybox"));
        let to = dir.join(format!("containers/{c}/bin"));
        std::fs::create_dir_all(&to).unwrap();
        std::fs::copy(&from, to.join("busybox")).expect("run scripts/example-prepare.sh first");
    }
    if let Ok(p) = std::env::var("KTWIN_E2E_PROVIDER") {
        let f = dir.join("ktwin.yaml");
        let text = std::fs::read_to_string(&f).unwrap();
        std::fs::write(&f, text.replace("provider: k3d", &format!("provider: {p}"))).unwrap();
    }
    (tp, dir)
}

#[test]
#[ignore = "needs cluster"]
fn up_wires_pools_and_registry_and_is_idempotent_and_down_keeps_images() {
    let (_tp, dir) = swarm();
    let d = dir.as_path();
    let ktwin = env!("CARGO_BIN_EXE_ktwin");
    ok(&run(ktwin, &["up"], d));
    let ctx = if std::env::var("KTWIN_E2E_PROVIDER").as_deref() == Ok("kind") {
        "kind-swarm"
    } else {
        "k3d-swarm"
    };

    // Every pool's nodes carry its labels.
    let nodes: serde_json::Value = serde_json::from_str(&ok(&run(
        "kubectl",
        &["--context", ctx, "get", "nodes", "-o", "json"],
        d,
    )))
    .unwrap();
    let roles: Vec<String> = nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| {
            n["metadata"]["labels"]["lobmob.io/role"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    for r in ["lobboss", "lobster", "gateway", "data"] {
        assert!(
            roles.iter().any(|x| x == r),
            "no node with role {r}: {roles:?}"
        );
    }
    assert_eq!(roles.iter().filter(|r| *r == "lobster").count(), 2);

    // A pod from localhost:<port>/... runs on every node.
    let verify = ok(&run(ktwin, &["images", "verify", "-o", "json"], d));
    let rows: serde_json::Value = serde_json::from_str(&verify).unwrap();
    let image = rows[0]["reference"].as_str().unwrap().to_string();
    for (i, n) in nodes["items"].as_array().unwrap().iter().enumerate() {
        let node = n["metadata"]["name"].as_str().unwrap();
        let name = format!("ktwin-e2e-{i}");
        let overrides = format!(
            r#"{{"spec":{{"nodeName":"{node}","tolerations":[{{"operator":"Exists"}}]}}}}"#
        );
        ok(&run(
            "kubectl",
            &[
                "--context",
                ctx,
                "run",
                &name,
                "--image",
                &image,
                "--restart=Never",
                "--overrides",
                &overrides,
                "--command",
                "--",
                "/bin/busybox",
                "true",
            ],
            d,
        ));
        ok(&run(
            "kubectl",
            &[
                "--context",
                ctx,
                "wait",
                "--for=jsonpath={.status.phase}=Succeeded",
                &format!("pod/{name}"),
                "--timeout=120s",
            ],
            d,
        ));
        ok(&run(
            "kubectl",
            &["--context", ctx, "delete", "pod", &name],
            d,
        ));
    }

    // The KEP-1755 ConfigMap.
    let cm = ok(&run(
        "kubectl",
        &[
            "--context",
            ctx,
            "-n",
            "kube-public",
            "get",
            "configmap",
            "local-registry-hosting",
            "-o",
            "json",
        ],
        d,
    ));
    assert!(cm.contains("hostFromClusterNetwork"), "{cm}");

    // Again: no change.
    let again = run(ktwin, &["up"], d);
    ok(&again);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("up to date") && !err.contains("create the cluster"),
        "{err}"
    );

    // Down keeps the registry and its images.
    ok(&run(ktwin, &["down"], d));
    let status = ok(&run(ktwin, &["registry", "status", "-o", "json"], d));
    assert!(status.contains("\"healthy\": true"), "{status}");
    let skipped = ok(&run(ktwin, &["build", "-o", "json"], d));
    assert!(
        !skipped.contains("\"pushed\""),
        "images survived the cluster: {skipped}"
    );
}

/// The tier-3 twin of twin_api.rs: deploy, status, a node container restarted, heal.
#[test]
#[ignore = "needs cluster"]
fn deploy_status_restart_a_node_heal_and_healthy_again() {
    let (_tp, dir) = swarm();
    let d = dir.as_path();
    let ktwin = env!("CARGO_BIN_EXE_ktwin");
    let kind = std::env::var("KTWIN_E2E_PROVIDER").as_deref() == Ok("kind");
    // `up` ends with a deploy of local and waits for every rollout.
    ok(&run(ktwin, &["up"], d));
    let status = ok(&run(ktwin, &["status", "-o", "json"], d));
    let s: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(s["healthy"], true, "{status}");

    // A second deploy changes nothing.
    let again = ok(&run(ktwin, &["deploy", "-o", "json"], d));
    let r: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert!(
        r["applied"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["action"] == "unchanged"),
        "{again}"
    );

    // Restart a node container, as a reboot would; then heal.
    let node = if kind {
        "swarm-worker"
    } else {
        "k3d-swarm-agent-0"
    };
    ok(&run("docker", &["restart", node], d));
    let healed = run(ktwin, &["heal"], d);
    let err = String::from_utf8_lossy(&healed.stderr).into_owned();
    assert!(healed.status.success(), "{err}");

    // Healthy again within three minutes; a second heal finds nothing to do.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        let o = run(ktwin, &["status", "-o", "json"], d);
        if o.status.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still unhealthy: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        std::thread::sleep(std::time::Duration::from_secs(5));
    }
    let second = run(ktwin, &["heal"], d);
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("nothing to heal"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    ok(&run(ktwin, &["down"], d));
}

/// The tier-3 twins of run.rs and exec.rs: a hardened one-off Job runs to its result on the
/// twin; a host process gets the gateway's env and reaches the twin's API (only) through
/// ktwin's KUBECONFIG, and postgres through a forward.
#[test]
#[ignore = "needs cluster"]
fn run_a_job_and_exec_a_host_process_against_the_twin() {
    let (_tp, dir) = swarm();
    let d = dir.as_path();
    let ktwin = env!("CARGO_BIN_EXE_ktwin");
    ok(&run(ktwin, &["up"], d));
    std::fs::write(d.join("prompt.md"), "sweep tank 3").unwrap();
    let o = run(
        ktwin,
        &[
            "run",
            "lobster-task",
            "--env-b64",
            "TASK_PROMPT_B64=@prompt.md",
            "-o",
            "json",
        ],
        d,
    );
    let out = ok(&o);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["outcome"], "succeeded", "{out}");
    assert_eq!(v["exitCode"], 0, "{out}");
    assert_eq!(v["result"][0]["ok"], true, "{out}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("task: sweep tank 3"));

    let env = ok(&run(
        ktwin,
        &[
            "exec",
            "--as",
            "gateway",
            "--",
            "sh",
            "-c",
            "echo $LOG_LEVEL $POD_NAMESPACE",
        ],
        d,
    ));
    assert_eq!(env.trim(), "debug swarm");
    let ns = ok(&run(
        ktwin,
        &["exec", "--", "kubectl", "get", "ns", "swarm", "-o", "name"],
        d,
    ));
    assert_eq!(ns.trim(), "namespace/swarm");
    ok(&run(ktwin, &["down"], d));
}

/// The tier-3 twin of dev.rs: an edit of the gateway's page is rebuilt, rolled out, and
/// served on localhost:8080 by the new pods.
#[test]
#[ignore = "needs cluster"]
fn dev_edit_is_served_by_new_pods() {
    let (_tp, dir) = swarm();
    let d = dir.as_path();
    let ktwin = env!("CARGO_BIN_EXE_ktwin");
    let mut dev = tier3::Dev::start(d);
    dev.next("ready");
    std::fs::write(
        d.join("containers/gateway/app/index.html"),
        "edited by tier 3\n",
    )
    .unwrap();
    let c = dev.next("cycle");
    assert_eq!(c["images"], 1, "{c}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let o = run("curl", &["-fsS", "http://127.0.0.1:8080/"], d);
        if String::from_utf8_lossy(&o.stdout).contains("edited by tier 3") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the edit is not served"
        );
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    // Ctrl-C (this test started it: its PID) leaves the twin running.
    dev.stop(d);
    ok(&run(ktwin, &["down"], d));
}

/// The tier-3 twin of sync (mount mode): the gateway's page directory synced; an edit is
/// served by the same pods (no new pod, no build).
#[test]
#[ignore = "needs cluster"]
fn dev_sync_mount_edit_is_seen_without_a_new_pod() {
    let (_tp, dir) = swarm();
    let d = dir.as_path();
    let f = d.join("ktwin.yaml");
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(
        &f,
        text.replace(
            "    context: containers/gateway\n",
            "    context: containers/gateway\n    sync: [{src: app, dest: /app}]\n",
        ),
    )
    .unwrap();
    let ktwin = env!("CARGO_BIN_EXE_ktwin");
    let ctx = if std::env::var("KTWIN_E2E_PROVIDER").as_deref() == Ok("kind") {
        "kind-swarm"
    } else {
        "k3d-swarm"
    };
    let pods = || {
        ok(&run(
            "kubectl",
            &[
                "--context",
                ctx,
                "-n",
                "swarm",
                "get",
                "pods",
                "-l",
                "app=gateway",
                "-o",
                "name",
            ],
            d,
        ))
    };
    let mut dev = tier3::Dev::start(d);
    dev.next("ready");
    let before = pods();
    std::fs::write(
        d.join("containers/gateway/app/index.html"),
        "synced by tier 3\n",
    )
    .unwrap();
    let s = dev.next("sync");
    assert_eq!(s["mode"], "mount", "{s}");
    let c = dev.next("cycle");
    assert_eq!(c["images"], 0, "{c}");
    let o = run("curl", &["-fsS", "http://127.0.0.1:8080/"], d);
    assert!(String::from_utf8_lossy(&o.stdout).contains("synced by tier 3"));
    assert_eq!(pods(), before, "the same pods serve it");
    dev.stop(d);
    ok(&run(ktwin, &["down"], d));
}
