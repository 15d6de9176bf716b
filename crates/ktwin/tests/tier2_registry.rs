//! Tier 2: `ktwin registry` against a real Docker engine and a real Distribution registry
//! (Debian's, packaged FROM scratch by scripts/test-env.sh). Run by scripts/test.sh:
//! `cargo test -p ktwin --test tier2_registry -- --ignored`. Every container, volume, image and
//! temp dir a test creates is removed by a guard, and names are unique per run.

use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use ktwin_testkit::TempProject;

static N: AtomicUsize = AtomicUsize::new(0);

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI")
}

fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A project whose registry has a unique name and a free port; cleans up on drop.
struct Reg {
    tp: TempProject,
    name: String,
    port: u16,
    images: Vec<String>,
}

impl Reg {
    fn new() -> Reg {
        assert!(
            std::env::var_os("KTWIN_REGISTRY_IMAGE").is_some(),
            "source scripts/test-env.sh first (KTWIN_REGISTRY_IMAGE)"
        );
        let name = format!(
            "ktwin-t2-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let r = Reg {
            tp: TempProject::new(),
            name,
            port: free_port(),
            images: vec![],
        };
        r.write_config(r.port);
        r
    }
    fn write_config(&self, port: u16) {
        self.tp.write(
            "ktwin.yaml",
            &format!("apiVersion: ktwin.dev/v1alpha1\nkind: Project\nname: t2\nregistry:\n  name: {}\n  hostPort: {port}\n", self.name),
        );
    }
    fn ktwin(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ktwin"))
            .args(args)
            .current_dir(self.tp.path())
            .output()
            .unwrap()
    }
    fn container_id(&self) -> String {
        String::from_utf8_lossy(
            &docker(&["container", "inspect", "-f", "{{.Id}}", &self.name]).stdout,
        )
        .trim()
        .to_string()
    }
    /// Build a tiny FROM-scratch image and push it with the engine, so data exists.
    fn push_sample(&mut self, port: u16) -> String {
        let ctx = self.tp.path().join("img");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("hello.txt"), format!("hello {}", self.name)).unwrap();
        std::fs::write(
            ctx.join("Dockerfile"),
            "FROM scratch\nCOPY hello.txt /hello.txt\n",
        )
        .unwrap();
        let tag = format!("localhost:{port}/t2/hello:1");
        assert!(docker(&["build", "-q", "-t", &tag, ctx.to_str().unwrap()])
            .status
            .success());
        self.images.push(tag.clone());
        let push = docker(&["push", &tag]);
        assert!(
            push.status.success(),
            "{}",
            String::from_utf8_lossy(&push.stderr)
        );
        tag
    }
    fn has_manifest(&self, port: u16) -> bool {
        ktwin_engine::registry_api::RegistryApi::new(port)
            .has_manifest("t2/hello", "1")
            .unwrap_or(false)
    }
}

impl Drop for Reg {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.name]);
        let _ = docker(&["volume", "rm", "-f", &format!("{}-data", self.name)]);
        for i in &self.images {
            let _ = docker(&["rmi", "-f", i]);
        }
    }
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
#[ignore = "tier 2: needs a Docker engine; scripts/test.sh runs it via scripts/test-env.sh"]
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
    assert!(docker(&["stop", &r.name]).status.success());
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
        &docker(&[
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
#[ignore = "tier 2: needs a Docker engine; scripts/test.sh runs it via scripts/test-env.sh"]
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
#[ignore = "tier 2: needs a Docker engine; scripts/test.sh runs it via scripts/test-env.sh"]
fn down_keeps_images_purge_removes_them_and_drift_needs_recreate() {
    let mut r = Reg::new();
    assert!(r.ktwin(&["registry", "up"]).status.success());
    r.push_sample(r.port);
    assert!(r.has_manifest(r.port));
    let down = r.ktwin(&["registry", "down"]);
    assert!(out(&down).contains("images kept"), "{}", out(&down));
    assert!(r.container_id().is_empty());
    assert!(r.ktwin(&["registry", "up"]).status.success());
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
    let vol = docker(&["volume", "inspect", &format!("{}-data", r.name)]);
    assert!(!vol.status.success(), "--purge removed the volume");
}

#[test]
#[ignore = "tier 2: needs a Docker engine; scripts/test.sh runs it via scripts/test-env.sh"]
fn a_foreign_container_is_left_alone() {
    let r = Reg::new();
    let image = std::env::var("KTWIN_REGISTRY_IMAGE").unwrap();
    assert!(docker(&["create", "--name", &r.name, &image])
        .status
        .success());
    let o = r.ktwin(&["registry", "up"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(out(&o).contains("ktwin did not create it"), "{}", out(&o));
    let o = r.ktwin(&["registry", "down"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!r.container_id().is_empty(), "still there");
}
