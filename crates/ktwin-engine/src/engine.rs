//! Which container engine to talk to, and how: Docker or Podman, found in a fixed order
//! (explicit choice, DOCKER_HOST, the Docker socket, Podman's sockets). Every command for the
//! engine is built here so the matching DOCKER_HOST reaches the tools ktwin runs.

use std::path::{Path, PathBuf};

use crate::runner::Cmd;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    Docker,
    Podman,
}

impl EngineKind {
    pub fn cli(self) -> &'static str {
        match self {
            EngineKind::Docker => "docker",
            EngineKind::Podman => "podman",
        }
    }
    pub fn parse(s: &str) -> Option<EngineKind> {
        match s {
            "docker" => Some(EngineKind::Docker),
            "podman" => Some(EngineKind::Podman),
            _ => None,
        }
    }
}

/// A detected engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    pub kind: EngineKind,
    /// `DOCKER_HOST` for the tools ktwin runs (None: the CLI's default).
    pub host: Option<String>,
    /// Why this one was chosen, for `-v` and errors.
    pub reason: String,
    /// May the build read the engine's layer store directly (`KTWIN_LAYER_STORE=off` says no)?
    pub layer_store: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no container engine found. Tried:\n{}", .tried.iter().map(|t| format!("  - {t}")).collect::<Vec<_>>().join("\n"))]
pub struct NoEngine {
    pub tried: Vec<String>,
}

impl NoEngine {
    pub fn help(&self) -> &'static str {
        "install and start Docker (Debian: `apt-get install docker.io && systemctl start docker`, or `dockerd &`) \
         or Podman (`apt-get install podman && systemctl --user start podman.socket`), or point DOCKER_HOST at a running engine"
    }
}

/// What detection looks at, so tests can describe a machine.
pub struct Probe<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub exists: &'a dyn Fn(&Path) -> bool,
}

impl Probe<'_> {
    fn var(&self, k: &str) -> Option<String> {
        (self.env)(k).filter(|v| !v.is_empty())
    }
}

fn sock(p: &Path) -> String {
    format!("unix://{}", p.display())
}

/// Detection order: `requested` (--engine / KTWIN_ENGINE), DOCKER_HOST, the Docker socket
/// (/var/run/docker.sock, then Docker Desktop's ~/.docker/run/docker.sock), Podman rootful
/// (/run/podman/podman.sock), Podman rootless ($XDG_RUNTIME_DIR/podman/podman.sock), the
/// macOS podman machine sockets (Podman 5's under $TMPDIR, then Podman 4's).
pub fn detect(requested: Option<EngineKind>, probe: &Probe<'_>) -> Result<Engine, NoEngine> {
    let requested = requested.or_else(|| {
        probe
            .var("KTWIN_ENGINE")
            .and_then(|v| EngineKind::parse(&v))
    });
    let layer_store = probe.var("KTWIN_LAYER_STORE").as_deref() != Some("off");
    let mut tried = Vec::new();
    let home = probe.var("HOME").map(PathBuf::from);
    let docker_socks: Vec<PathBuf> = [
        Some(PathBuf::from("/var/run/docker.sock")),
        home.as_ref().map(|h| h.join(".docker/run/docker.sock")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut podman_socks: Vec<PathBuf> = vec![PathBuf::from("/run/podman/podman.sock")];
    if let Some(x) = probe.var("XDG_RUNTIME_DIR") {
        podman_socks.push(Path::new(&x).join("podman/podman.sock"));
    }
    // `podman machine` (macOS): Podman 5 serves the default machine's API on
    // $TMPDIR/podman/podman-machine-default-api.sock; Podman 4 under ~/.local/share.
    // (`podman machine inspect --format '{{.ConnectionInfo.PodmanSocket.Path}}'` prints it.)
    if let Some(t) = probe.var("TMPDIR") {
        podman_socks.push(Path::new(&t).join("podman/podman-machine-default-api.sock"));
    }
    if let Some(h) = &home {
        podman_socks.push(h.join(".local/share/containers/podman/machine/podman.sock"));
        podman_socks.push(h.join(".local/share/containers/podman/machine/qemu/podman.sock"));
    }
    if let Some(host) = probe.var("DOCKER_HOST") {
        let kind = requested.unwrap_or(if host.contains("podman") {
            EngineKind::Podman
        } else {
            EngineKind::Docker
        });
        return Ok(Engine {
            kind,
            host: Some(host.clone()),
            reason: format!("DOCKER_HOST={host}"),
            layer_store,
        });
    }
    tried.push("DOCKER_HOST (not set)".into());
    let want_docker = requested != Some(EngineKind::Podman);
    let want_podman = requested != Some(EngineKind::Docker);
    if want_docker {
        for s in &docker_socks {
            if (probe.exists)(s) {
                let default = s == Path::new("/var/run/docker.sock");
                return Ok(Engine {
                    kind: EngineKind::Docker,
                    host: (!default).then(|| sock(s)),
                    reason: format!("Docker socket {}", s.display()),
                    layer_store,
                });
            }
            tried.push(format!("Docker socket {} (absent)", s.display()));
        }
    }
    if want_podman {
        for s in &podman_socks {
            if (probe.exists)(s) {
                return Ok(Engine {
                    kind: EngineKind::Podman,
                    host: Some(sock(s)),
                    reason: format!("Podman socket {}", s.display()),
                    layer_store,
                });
            }
            tried.push(format!("Podman socket {} (absent)", s.display()));
        }
    }
    if let Some(r) = requested {
        tried.insert(0, format!("--engine {} (requested)", r.cli()));
    }
    Err(NoEngine { tried })
}

impl Engine {
    /// A command for the engine's CLI with DOCKER_HOST set to match.
    pub fn cmd<I, S>(&self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.environ(Cmd::new(self.kind.cli()).args(args))
    }

    /// Point any tool that talks to the engine (its CLI, k3d, kind) at this engine.
    pub fn environ(&self, mut c: Cmd) -> Cmd {
        if let Some(h) = &self.host {
            c = c.env("DOCKER_HOST", h);
            if self.kind == EngineKind::Podman {
                c = c.env("CONTAINER_HOST", h);
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn run(
        env: &[(&str, &str)],
        files: &[&str],
        req: Option<EngineKind>,
    ) -> Result<Engine, NoEngine> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let files: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
        let e = move |k: &str| env.get(k).cloned();
        let x = move |p: &Path| files.iter().any(|f| f == p);
        detect(
            req,
            &Probe {
                env: &e,
                exists: &x,
            },
        )
    }

    #[test]
    fn order_is_docker_host_then_docker_then_podman() {
        let e = run(
            &[("DOCKER_HOST", "tcp://127.0.0.1:2375")],
            &["/var/run/docker.sock"],
            None,
        )
        .unwrap();
        assert_eq!(e.host.as_deref(), Some("tcp://127.0.0.1:2375"));
        let e = run(
            &[],
            &["/var/run/docker.sock", "/run/podman/podman.sock"],
            None,
        )
        .unwrap();
        assert_eq!((e.kind, e.host), (EngineKind::Docker, None));
        let e = run(
            &[("XDG_RUNTIME_DIR", "/run/user/1000")],
            &["/run/user/1000/podman/podman.sock"],
            None,
        )
        .unwrap();
        assert_eq!(e.kind, EngineKind::Podman);
        assert_eq!(
            e.host.as_deref(),
            Some("unix:///run/user/1000/podman/podman.sock")
        );
        assert_eq!(
            e.cmd(["ps"]).env[0].1,
            "unix:///run/user/1000/podman/podman.sock"
        );
    }

    #[test]
    fn a_podman_machine_on_macos_is_found_at_its_api_socket() {
        let env = [("HOME", "/Users/u"), ("TMPDIR", "/var/folders/x/T/")];
        let e = run(
            &env,
            &["/var/folders/x/T/podman/podman-machine-default-api.sock"],
            None,
        )
        .unwrap();
        assert_eq!(e.kind, EngineKind::Podman);
        assert_eq!(
            e.host.as_deref(),
            Some("unix:///var/folders/x/T/podman/podman-machine-default-api.sock")
        );
        let e = run(
            &env,
            &["/Users/u/.local/share/containers/podman/machine/qemu/podman.sock"],
            None,
        )
        .unwrap();
        assert_eq!(e.kind, EngineKind::Podman);
        let msg = run(&env, &[], None).unwrap_err().to_string();
        assert!(
            msg.contains("podman-machine-default-api.sock (absent)"),
            "{msg}"
        );
    }

    #[test]
    fn explicit_choice_wins_and_errors_say_what_was_tried() {
        let e = run(
            &[],
            &["/var/run/docker.sock", "/run/podman/podman.sock"],
            Some(EngineKind::Podman),
        )
        .unwrap();
        assert_eq!(e.kind, EngineKind::Podman);
        let e = run(
            &[("KTWIN_ENGINE", "podman")],
            &["/var/run/docker.sock", "/run/podman/podman.sock"],
            None,
        )
        .unwrap();
        assert_eq!(e.kind, EngineKind::Podman);
        let err = run(&[("HOME", "/home/u")], &[], None).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("/var/run/docker.sock")
                && msg.contains("/run/podman/podman.sock")
                && msg.contains("/home/u/.docker/run/docker.sock"),
            "{msg}"
        );
    }
}
