//! Shared by the tier-2 tests: a project with a uniquely named registry on a free port,
//! cleaned up (container, volume, images) on drop.
#![allow(dead_code)]

use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use ktwin_testkit::TempProject;

static N: AtomicUsize = AtomicUsize::new(0);

/// The engine under test: Docker, or Podman when the tier-2 Podman pass sets
/// `KTWIN_TEST_ENGINE=podman` (scripts/test.sh; ktwin itself then finds Podman through
/// `DOCKER_HOST`, as a user's k3d does).
pub fn podman() -> bool {
    std::env::var("KTWIN_TEST_ENGINE").as_deref() == Ok("podman")
}

/// The engine's CLI (`docker …`, or `podman --remote …` against the test's Podman service).
pub fn engine(args: &[&str]) -> Output {
    if !podman() {
        return Command::new("docker")
            .args(args)
            .output()
            .expect("docker CLI");
    }
    let host = std::env::var("DOCKER_HOST").expect("DOCKER_HOST for the Podman pass");
    let mut a = vec!["--remote"];
    a.extend(args.first());
    if args.first() == Some(&"push") {
        // Podman does not treat localhost as plain HTTP by itself.
        a.push("--tls-verify=false");
    }
    a.extend(args.iter().skip(1));
    Command::new("podman")
        .env("CONTAINER_HOST", host)
        .args(a)
        .output()
        .expect("podman CLI")
}

pub fn free_port() -> u16 {
    ktwin_engine::ports::free_port().expect("a free port on 127.0.0.1")
}

/// A project whose registry has a unique name and a free port; cleans up on drop.
pub struct Reg {
    pub tp: TempProject,
    pub name: String,
    pub port: u16,
    pub images: Vec<String>,
    /// ktwin's state dir for this test (deploy records, hash caches).
    pub state: tempfile::TempDir,
}

impl Reg {
    pub fn new() -> Reg {
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
            state: tempfile::tempdir().unwrap(),
        };
        r.write_config(r.port);
        r
    }
    pub fn write_config(&self, port: u16) {
        self.write_config_with(port, "");
    }
    /// ktwin.yaml with this registry and `extra` appended (images, environments).
    pub fn write_config_with(&self, port: u16, extra: &str) {
        self.tp.write(
            "ktwin.yaml",
            &format!("apiVersion: ktwin.dev/v1alpha1\nkind: Project\nname: t2\nregistry:\n  name: {}\n  hostPort: {port}\n{extra}", self.name),
        );
    }
    /// A unique repository path for this test's images.
    pub fn repo(&self, what: &str) -> String {
        format!("t2/{what}-{}", self.name.trim_start_matches("ktwin-t2-"))
    }
    pub fn ktwin(&self, args: &[&str]) -> Output {
        self.ktwin_env(args, &[])
    }
    pub fn ktwin_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ktwin"))
            .args(args)
            .env("XDG_STATE_HOME", self.state.path())
            .envs(env.iter().copied())
            .current_dir(self.tp.path())
            .output()
            .unwrap()
    }
    pub fn container_id(&self) -> String {
        String::from_utf8_lossy(
            &engine(&["container", "inspect", "-f", "{{.Id}}", &self.name]).stdout,
        )
        .trim()
        .to_string()
    }
    /// Build a tiny FROM-scratch image and push it with the engine, so data exists.
    pub fn push_sample(&mut self, port: u16) -> String {
        self.push_as(&format!("localhost:{port}/t2/hello:1"), "hello")
    }
    /// Build a tiny FROM-scratch image holding `content` and push it as `tag`.
    pub fn push_as(&mut self, tag: &str, content: &str) -> String {
        let ctx = self.tp.path().join("img");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("hello.txt"), format!("{content} {}", self.name)).unwrap();
        std::fs::write(
            ctx.join("Dockerfile"),
            "FROM scratch\nCOPY hello.txt /hello.txt\n",
        )
        .unwrap();
        let tag = tag.to_string();
        assert!(engine(&["build", "-q", "-t", &tag, ctx.to_str().unwrap()])
            .status
            .success());
        self.images.push(tag.clone());
        let push = engine(&["push", &tag]);
        assert!(
            push.status.success(),
            "{}",
            String::from_utf8_lossy(&push.stderr)
        );
        tag
    }
    pub fn has_manifest(&self, port: u16) -> bool {
        api(port).has_manifest("t2/hello", "1").unwrap_or(false)
    }
}

impl Drop for Reg {
    fn drop(&mut self) {
        let _ = engine(&["rm", "-f", "-v", &self.name]);
        let _ = engine(&["volume", "rm", "-f", &format!("{}-data", self.name)]);
        for i in &self.images {
            let _ = engine(&["rmi", "-f", i]);
        }
    }
}

/// The registry API of a test registry published on `port`.
pub fn api(port: u16) -> ktwin_engine::registry_api::RegistryApi {
    ktwin_engine::registry_api::RegistryApi::new(&ktwin_config::desired::RegistryAddr {
        name: String::new(),
        host_port: port,
    })
}

pub fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
