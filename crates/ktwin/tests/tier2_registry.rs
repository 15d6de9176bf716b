//! Tier 2: `ktwin registry` against a real Docker or Podman engine and a real Distribution registry
//! (Debian's, packaged FROM scratch by scripts/test-env.sh). Run by scripts/test.sh:
//! `cargo test -p ktwin --test tier2_registry -- --ignored`. Every container, volume, image and
//! temp dir a test creates is removed by a guard, and names are unique per run.
#![allow(clippy::disallowed_methods)] // tests run the binary and real tools directly

mod common;

use std::net::TcpListener;

use common::{engine, free_port, out, podman, Reg};

#[test]
#[ignore = "tier 2: needs a Docker or Podman engine; scripts/test.sh runs it on both via scripts/test-env.sh"]
fn up_twice_is_a_no_op_and_a_stopped_registry_is_started() {
    let r = Reg::new();
    let first = r.ktwin(&["registry", "up"]);
    assert!(first.status.success(), "{}", out(&first));
    assert!(out(&first).contains("created"));
    let id = r.container_id();
    let second = r.ktwin(&["registry", "up"]);
    assert!(
        second.status.success() && out(&second).contains("up to date"),
        "{}",
        out(&second)
    );
    assert_eq!(r.container_id(), id, "the second up changed nothing");
    assert!(engine(&["stop", &r.name]).status.success());
    let st = r.ktwin(&["registry", "status"]);
    assert_eq!(
        st.status.code(),
        Some(1),
        "a stopped registry is unhealthy: {}",
        out(&st)
    );
    let third = r.ktwin(&["registry", "up"]);
    assert!(out(&third).contains("started"), "{}", out(&third));
    assert_eq!(r.container_id(), id);
    let st = r.ktwin(&["registry", "status", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(
        (v["running"].as_bool(), v["healthy"].as_bool()),
        (Some(true), Some(true))
    );
    // Published on 127.0.0.1 only, restart always, data in the named volume.
    let ins = String::from_utf8_lossy(
        &engine(&[
            "container",
            "inspect",
            "-f",
            "{{json .HostConfig}}",
            &r.name,
        ])
        .stdout,
    )
    .to_string();
    assert!(
        ins.contains("\"HostIp\":\"127.0.0.1\"") && ins.contains("\"Name\":\"always\""),
        "{ins}"
    );
}

#[test]
#[ignore = "tier 2: needs a Docker or Podman engine; scripts/test.sh runs it on both via scripts/test-env.sh"]
fn a_taken_port_is_named_with_its_process() {
    let r = Reg::new();
    let holder = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = holder.local_addr().unwrap().port();
    r.write_config(port);
    let o = r.ktwin(&["registry", "up"]);
    assert_eq!(o.status.code(), Some(1));
    let text = out(&o);
    assert!(
        text.contains(&format!("port {port}"))
            && text.contains(&format!("pid {}", std::process::id())),
        "{text}"
    );
    assert!(r.container_id().is_empty(), "nothing was created");
}

#[test]
#[ignore = "tier 2: needs a Docker or Podman engine; scripts/test.sh runs it on both via scripts/test-env.sh"]
fn down_keeps_images_purge_removes_them_and_drift_needs_recreate() {
    let mut r = Reg::new();
    let up = r.ktwin(&["registry", "up"]);
    assert!(up.status.success(), "{}", out(&up));
    r.push_sample(r.port);
    assert!(r.has_manifest(r.port));
    let down = r.ktwin(&["registry", "down"]);
    assert!(out(&down).contains("images kept"), "{}", out(&down));
    assert!(r.container_id().is_empty());
    let up = r.ktwin(&["registry", "up"]);
    assert!(up.status.success(), "{}", out(&up));
    assert!(r.has_manifest(r.port), "images survive down/up");

    // A port change is drift: reported, and done only with --recreate, keeping the data.
    let new_port = free_port();
    r.write_config(new_port);
    let drift = r.ktwin(&["registry", "up"]);
    assert_eq!(drift.status.code(), Some(1));
    assert!(
        out(&drift).contains("--recreate")
            && out(&drift).contains(&format!("127.0.0.1:{new_port}")),
        "{}",
        out(&drift)
    );
    let re = r.ktwin(&["registry", "up", "--recreate"]);
    assert!(
        re.status.success() && out(&re).contains("recreated"),
        "{}",
        out(&re)
    );
    assert!(r.has_manifest(new_port), "recreate keeps the data volume");

    let purge = r.ktwin(&["registry", "down", "--purge"]);
    assert!(purge.status.success(), "{}", out(&purge));
    let vol = engine(&["volume", "inspect", &format!("{}-data", r.name)]);
    assert!(!vol.status.success(), "--purge removed the volume");
}

#[test]
#[ignore = "tier 2: needs a Docker or Podman engine; scripts/test.sh runs it on both via scripts/test-env.sh"]
fn a_foreign_container_is_left_alone() {
    let r = Reg::new();
    let image = std::env::var("KTWIN_REGISTRY_IMAGE").unwrap();
    assert!(engine(&["create", "--name", &r.name, &image])
        .status
        .success());
    let o = r.ktwin(&["registry", "up"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(out(&o).contains("ktwin did not create it"), "{}", out(&o));
    let o = r.ktwin(&["registry", "down"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!r.container_id().is_empty(), "still there");
}

#[test]
#[ignore = "tier 2: needs a Docker or Podman engine; scripts/test.sh runs it on both via scripts/test-env.sh"]
#[allow(clippy::print_stderr)]
fn podman_is_found_at_its_rootless_socket_when_asked_for() {
    if !podman() {
        return; // the Podman pass runs it
    }
    if std::path::Path::new("/run/podman/podman.sock").exists() {
        // A system Podman's rootful socket comes first in the order; this machine has one.
        eprintln!("skipped: /run/podman/podman.sock exists and would be found first");
        return;
    }
    let r = Reg::new();
    // Podman's rootless socket is $XDG_RUNTIME_DIR/podman/podman.sock; the test's service
    // socket is linked there, and DOCKER_HOST is left unset, as on a user's machine.
    let runtime = tempfile::tempdir().unwrap();
    std::fs::create_dir(runtime.path().join("podman")).unwrap();
    let real = std::env::var("DOCKER_HOST").unwrap();
    let sock = runtime.path().join("podman/podman.sock");
    std::os::unix::fs::symlink(real.trim_start_matches("unix://"), &sock).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ktwin"))
            .args(args)
            .env_remove("DOCKER_HOST")
            .env("XDG_RUNTIME_DIR", runtime.path())
            .env("XDG_STATE_HOME", r.state.path())
            .current_dir(r.tp.path())
            .output()
            .unwrap()
    };
    let up = run(&["--engine", "podman", "registry", "up"]);
    assert!(up.status.success(), "{}", out(&up));
    assert!(
        out(&up).contains(&format!(
            "engine: podman, found by Podman socket {}",
            sock.display()
        )),
        "{}",
        out(&up)
    );
    assert!(!r.container_id().is_empty(), "created through that socket");
    // Nothing there: every place looked at is named, and how to start one.
    std::fs::remove_file(&sock).unwrap();
    let st = run(&["--engine", "podman", "registry", "status"]);
    assert_eq!(st.status.code(), Some(1), "{}", out(&st));
    assert!(
        out(&st).contains(&format!("Podman socket {} (absent)", sock.display()))
            && out(&st).contains("--engine podman (requested)")
            && out(&st).contains("podman.socket"),
        "{}",
        out(&st)
    );
}
