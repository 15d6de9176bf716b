//! The one local registry: a container that outlives every cluster, published on
//! 127.0.0.1:<hostPort>, its data in a named volume. Reconciled, never silently recreated.

use std::time::Duration;

use serde_json::Value;

use ktwin_config::imageref::ImageRef;

use crate::engine::Engine;
use crate::registry_api::RegistryApi;
use crate::runner::RunError;

pub const MANAGED_LABEL: &str = "dev.ktwin.managed";
pub const ROLE_LABEL: &str = "dev.ktwin.role";

/// What the registry should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySpec {
    pub name: String,
    pub host_port: u16,
    pub image: String,
}

impl RegistrySpec {
    /// From ktwin.yaml; `image` overrides its image (the plan passes `KTWIN_REGISTRY_IMAGE`,
    /// which tests set).
    pub fn from_config(r: &ktwin_config::Registry, image: Option<&str>) -> RegistrySpec {
        let image = image
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| r.image.clone());
        RegistrySpec {
            name: r.name.clone(),
            host_port: r.host_port,
            image,
        }
    }
    pub fn addr(&self) -> ktwin_config::desired::RegistryAddr {
        ktwin_config::desired::RegistryAddr {
            name: self.name.clone(),
            host_port: self.host_port,
        }
    }
    pub fn volume(&self) -> String {
        format!("{}-data", self.name)
    }
}

/// What the engine has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    Absent,
    Present {
        running: bool,
        image: String,
        host_ip: Option<String>,
        host_port: Option<u16>,
        managed: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Nothing,
    Create,
    Start,
    /// Differences that need a recreate; done only when asked.
    Drift(Vec<String>),
    Recreate(Vec<String>),
    /// A container with that name that ktwin did not create: never touched.
    Foreign,
}

/// Pure: compare observed with desired.
pub fn plan(spec: &RegistrySpec, observed: &Observed, recreate: bool) -> Plan {
    let Observed::Present {
        running,
        image,
        host_ip,
        host_port,
        managed,
    } = observed
    else {
        return Plan::Create;
    };
    if !managed {
        return Plan::Foreign;
    }
    let mut drift = Vec::new();
    if !same_image(image, &spec.image) {
        drift.push(format!("image is {image}, ktwin.yaml wants {}", spec.image));
    }
    if *host_port != Some(spec.host_port) || host_ip.as_deref() != Some("127.0.0.1") {
        let have = match (host_ip, host_port) {
            (Some(ip), Some(p)) => format!("{ip}:{p}"),
            _ => "unpublished".into(),
        };
        drift.push(format!(
            "published on {have}, ktwin.yaml wants 127.0.0.1:{}",
            spec.host_port
        ));
    }
    match (drift.is_empty(), recreate, running) {
        (true, _, true) => Plan::Nothing,
        (true, _, false) => Plan::Start,
        (false, false, _) => Plan::Drift(drift),
        (false, true, _) => Plan::Recreate(drift),
    }
}

/// Whether the image a container records is the one ktwin.yaml names. Podman records the
/// fully qualified name it resolved a short name to: `docker.io/library/registry:2` for a
/// pulled `registry:2`, `localhost/ktwin-test/registry:debian` for a local image built or
/// loaded under a short name (containers-registries.conf(5), "short-name aliasing"); Docker
/// records the name as given. Both forms of the same name are the same image.
fn same_image(observed: &str, wanted: &str) -> bool {
    fn key(s: &str) -> Option<(String, String)> {
        let r = ImageRef::parse(s).ok()?;
        let tag = r
            .digest
            .clone()
            .or(r.tag.clone())
            .unwrap_or("latest".into());
        let repo = if r.host.as_deref() == Some("localhost") {
            ImageRef { host: None, ..r }.repository_key()
        } else {
            r.repository_key()
        };
        Some((repo, tag))
    }
    observed == wanted || matches!((key(observed), key(wanted)), (Some(a), Some(b)) if a == b)
}

/// Parse `docker container inspect` output.
pub fn parse_inspect(json: &str) -> Option<Observed> {
    let v: Value = serde_json::from_str(json).ok()?;
    let c = v.as_array()?.first()?;
    let binding = c.pointer("/HostConfig/PortBindings/5000~1tcp/0");
    Some(Observed::Present {
        running: c
            .pointer("/State/Running")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        image: c
            .pointer("/Config/Image")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        host_ip: binding
            .and_then(|b| b.get("HostIp"))
            .and_then(Value::as_str)
            .map(str::to_string),
        host_port: binding
            .and_then(|b| b.get("HostPort"))
            .and_then(Value::as_str)
            .and_then(|p| p.parse().ok()),
        managed: c
            .pointer(&format!("/Config/Labels/{MANAGED_LABEL}"))
            .and_then(Value::as_str)
            == Some("true"),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "port {port} on 127.0.0.1 is taken by {holder}: the registry cannot be published there"
    )]
    PortTaken { port: u16, holder: String },
    #[error(
        "a container named `{name}` exists and ktwin did not create it; ktwin leaves it alone"
    )]
    Foreign { name: String },
    #[error("the registry `{name}` differs from ktwin.yaml: {}", .drift.join("; "))]
    Drift { name: String, drift: Vec<String> },
    #[error(
        "the registry `{name}` did not answer GET /v2/ on 127.0.0.1:{port} within {secs} s\n{logs}"
    )]
    Unhealthy {
        name: String,
        port: u16,
        secs: u64,
        logs: String,
    },
    #[error(transparent)]
    Engine(#[from] RunError),
}

impl RegistryError {
    pub fn help(&self) -> Option<String> {
        match self {
            RegistryError::PortTaken { .. } => Some("stop that process, or set `registry.hostPort` in ktwin.yaml to a free port".into()),
            RegistryError::Foreign { .. } => Some("remove or rename that container, or set `registry.name` in ktwin.yaml".into()),
            RegistryError::Drift { .. } => Some("`ktwin registry up --recreate` recreates it; its images are kept in the data volume".into()),
            _ => None,
        }
    }
}

/// What `up` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpAction {
    UpToDate,
    Created,
    Started,
    Recreated(Vec<String>),
}

pub struct Registry<'a> {
    pub engine: &'a Engine,
    pub spec: RegistrySpec,
}

impl Registry<'_> {
    pub fn api(&self) -> RegistryApi {
        RegistryApi::new(&self.spec.addr())
    }

    pub fn observe(&self) -> Result<Observed, RegistryError> {
        match self
            .engine
            .cmd(["container", "inspect", self.spec.name.as_str()])
            .run()
        {
            Ok(out) => Ok(
                parse_inspect(&String::from_utf8_lossy(&out.stdout)).unwrap_or(Observed::Absent)
            ),
            Err(RunError::Failed { stderr, .. })
                if stderr.to_ascii_lowercase().contains("no such") =>
            {
                Ok(Observed::Absent)
            }
            Err(e) => Err(e.into()),
        }
    }

    pub fn up(&self, recreate: bool) -> Result<UpAction, RegistryError> {
        let observed = self.observe()?;
        let action = match plan(&self.spec, &observed, recreate) {
            Plan::Nothing => UpAction::UpToDate,
            Plan::Foreign => {
                return Err(RegistryError::Foreign {
                    name: self.spec.name.clone(),
                })
            }
            Plan::Drift(drift) => {
                return Err(RegistryError::Drift {
                    name: self.spec.name.clone(),
                    drift,
                })
            }
            Plan::Start => {
                self.engine.cmd(["start", self.spec.name.as_str()]).run()?;
                UpAction::Started
            }
            Plan::Create => {
                self.create()?;
                UpAction::Created
            }
            Plan::Recreate(drift) => {
                self.engine
                    .cmd(["rm", "-f", "-v", self.spec.name.as_str()])
                    .run()?;
                self.create()?;
                UpAction::Recreated(drift)
            }
        };
        self.wait_healthy()?;
        Ok(action)
    }

    fn create(&self) -> Result<(), RegistryError> {
        if let Some(holder) = crate::ports::taken_by(self.spec.host_port) {
            return Err(RegistryError::PortTaken {
                port: self.spec.host_port,
                holder,
            });
        }
        let s = &self.spec;
        let label = format!("{MANAGED_LABEL}=true");
        // The volume a `down` kept is reused. `docker volume create` of an existing name is a
        // no-op, Podman's fails ("volume already exists"), so ask first.
        let kept = self
            .engine
            .cmd(["volume", "inspect", s.volume().as_str()])
            .run()
            .is_ok();
        if !kept {
            self.engine
                .cmd([
                    "volume",
                    "create",
                    "--label",
                    label.as_str(),
                    s.volume().as_str(),
                ])
                .run()?;
        }
        self.engine
            .cmd([
                "run",
                "-d",
                "--name",
                s.name.as_str(),
                "--restart",
                "always",
                "-p",
                &format!(
                    "127.0.0.1:{}:{}",
                    s.host_port,
                    ktwin_config::desired::REGISTRY_CONTAINER_PORT
                ),
                "-v",
                &format!("{}:/var/lib/registry", s.volume()),
                "-e",
                "REGISTRY_STORAGE_DELETE_ENABLED=true",
                "--label",
                label.as_str(),
                "--label",
                &format!("{ROLE_LABEL}=registry"),
                s.image.as_str(),
            ])
            .run()?;
        Ok(())
    }

    fn wait_healthy(&self) -> Result<(), RegistryError> {
        let secs = 20;
        if self.api().wait_healthy(Duration::from_secs(secs)) {
            return Ok(());
        }
        let logs = self
            .engine
            .cmd(["logs", "--tail", "20", self.spec.name.as_str()])
            .run()
            .map(|o| {
                String::from_utf8_lossy(&o.stderr).into_owned()
                    + &String::from_utf8_lossy(&o.stdout)
            })
            .unwrap_or_default();
        Err(RegistryError::Unhealthy {
            name: self.spec.name.clone(),
            port: self.spec.host_port,
            secs,
            logs,
        })
    }

    /// Remove the container; the data volume (and every image) stays unless `purge`.
    pub fn down(&self, purge: bool) -> Result<bool, RegistryError> {
        let existed = match self.observe()? {
            Observed::Absent => false,
            Observed::Present { managed: false, .. } => {
                return Err(RegistryError::Foreign {
                    name: self.spec.name.clone(),
                })
            }
            Observed::Present { .. } => {
                self.engine
                    .cmd(["rm", "-f", "-v", self.spec.name.as_str()])
                    .run()?;
                true
            }
        };
        if purge {
            match self
                .engine
                .cmd(["volume", "rm", self.spec.volume().as_str()])
                .run()
            {
                Ok(_) => {}
                Err(RunError::Failed { stderr, .. })
                    if stderr.to_ascii_lowercase().contains("no such") => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RegistrySpec {
        RegistrySpec {
            name: "ktwin-registry".into(),
            host_port: 5001,
            image: "registry:2".into(),
        }
    }

    fn present(running: bool, image: &str, port: u16) -> Observed {
        Observed::Present {
            running,
            image: image.into(),
            host_ip: Some("127.0.0.1".into()),
            host_port: Some(port),
            managed: true,
        }
    }

    #[test]
    fn reconcile_plans() {
        assert_eq!(plan(&spec(), &Observed::Absent, false), Plan::Create);
        assert_eq!(
            plan(&spec(), &present(true, "registry:2", 5001), false),
            Plan::Nothing
        );
        assert_eq!(
            plan(&spec(), &present(false, "registry:2", 5001), false),
            Plan::Start
        );
        let Plan::Drift(d) = plan(&spec(), &present(true, "registry:2", 5002), false) else {
            panic!()
        };
        assert!(d[0].contains("127.0.0.1:5002"));
        assert!(matches!(
            plan(&spec(), &present(true, "other:1", 5001), true),
            Plan::Recreate(_)
        ));
        let foreign = Observed::Present {
            running: true,
            image: "x".into(),
            host_ip: None,
            host_port: None,
            managed: false,
        };
        assert_eq!(plan(&spec(), &foreign, true), Plan::Foreign);
    }

    #[test]
    fn parses_inspect() {
        let j = r#"[{"State":{"Running":true},"Config":{"Image":"registry:2","Labels":{"dev.ktwin.managed":"true"}},"HostConfig":{"PortBindings":{"5000/tcp":[{"HostIp":"127.0.0.1","HostPort":"5001"}]}}}]"#;
        assert_eq!(parse_inspect(j), Some(present(true, "registry:2", 5001)));
    }

    #[test]
    fn podman_qualified_names_are_the_same_image() {
        assert!(same_image("docker.io/library/registry:2", "registry:2"));
        assert!(same_image(
            "localhost/ktwin-test/registry:debian",
            "ktwin-test/registry:debian"
        ));
        assert!(same_image("docker.io/library/registry:latest", "registry"));
        assert!(!same_image("docker.io/library/registry:2", "registry:3"));
        assert!(!same_image("localhost:5000/registry:2", "registry:2"));
    }
}
