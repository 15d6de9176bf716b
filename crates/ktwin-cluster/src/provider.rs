//! What every provider adapter offers.

use ktwin_config::{Project, Provider};
use ktwin_engine::EngineKind;

use crate::{k3d::K3d, kind::Kind};

/// A semantic version as the tools print it (`v5.6.0`, `0.20.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// The first `vX.Y.Z` / `X.Y.Z` in `text` after `prefix` (e.g. "k3d version").
    pub fn find(text: &str, prefix: &str) -> Option<Version> {
        let rest = &text[text.find(prefix)? + prefix.len()..];
        let token = rest.split_whitespace().next()?.trim_start_matches('v');
        let mut parts = token.split(['.', '-', '+']).map(|p| p.parse::<u32>());
        Some(Version(
            parts.next()?.ok()?,
            parts.next()?.ok()?,
            parts.next().and_then(Result::ok).unwrap_or(0),
        ))
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VersionError {
    #[error("`{tool}` is not installed. {install}")]
    Missing {
        tool: &'static str,
        install: &'static str,
    },
    #[error("could not read the version from `{tool} version` output: {output}")]
    Unparsable { tool: &'static str, output: String },
    #[error("{tool} {found} is too old: ktwin needs {tool} >= {min} ({why}). {install}")]
    TooOld {
        tool: &'static str,
        found: Version,
        min: Version,
        why: &'static str,
        install: &'static str,
    },
}

/// One adapter per provider (k3d.rs, kind.rs).
/// Names (context, network, node containers) are not here: they are facts of the desired
/// twin, in `ktwin_config::desired::Naming`, which every crate reads.
pub trait ClusterProvider {
    fn tool(&self) -> &'static str;
    /// The minimum tool version and why.
    fn min_version(&self) -> (Version, &'static str);
    fn install_help(&self) -> &'static str;
    /// Parse `<tool> version` output.
    fn parse_version(&self, output: &str) -> Option<Version>;
    /// The exact config file the provider receives.
    fn render_config(&self, project: &Project) -> serde_json::Value;
    /// argv (without the tool) to create from a config file, delete, and list clusters.
    fn create_args(&self, project: &Project, config_path: &str) -> Vec<String>;
    fn delete_args(&self, cluster: &str) -> Vec<String>;
    /// argv (without the tool) that prints the cluster's kubeconfig on stdout (k3d:
    /// `kubeconfig get NAME`, https://k3d.io/stable/usage/commands/k3d_kubeconfig_get; kind:
    /// `get kubeconfig --name NAME`). The local twin is reached only through it.
    fn kubeconfig_args(&self, cluster: &str) -> Vec<String>;
    fn list_args(&self) -> Vec<String>;
    /// Cluster names in the output of `list_args`.
    fn parse_list(&self, output: &str) -> Vec<String>;
    /// Does each node need containerd `hosts.toml` files for the registry mirrors written
    /// into it after create (kind), or are mirrors part of the create config (k3d)?
    fn mirrors_per_node(&self) -> bool;
    /// Environment the tool needs to reach an engine of `kind` (kind's Podman provider).
    fn engine_env(&self, kind: EngineKind) -> Vec<(&'static str, &'static str)>;

    /// Check `<tool> version` output against the minimum.
    fn check_version(&self, output: Option<&str>) -> Result<Version, VersionError> {
        let tool = self.tool();
        let Some(out) = output else {
            return Err(VersionError::Missing {
                tool,
                install: self.install_help(),
            });
        };
        let found = self
            .parse_version(out)
            .ok_or_else(|| VersionError::Unparsable {
                tool,
                output: out.trim().to_string(),
            })?;
        let (min, why) = self.min_version();
        if found < min {
            return Err(VersionError::TooOld {
                tool,
                found,
                min,
                why,
                install: self.install_help(),
            });
        }
        Ok(found)
    }
}

pub fn provider_for(p: Provider) -> Box<dyn ClusterProvider> {
    match p {
        Provider::K3d => Box::new(K3d),
        Provider::Kind => Box::new(Kind),
    }
}

/// Config as YAML text, the way it is written to disk for the tool.
pub fn to_yaml(v: &serde_json::Value) -> String {
    serde_saphyr::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            Version::find(
                "k3d version v5.6.0\nk3s version v1.27.4-k3s1 (default)\n",
                "k3d version"
            ),
            Some(Version(5, 6, 0))
        );
        assert_eq!(
            Version::find("kind v0.20.0 go1.20.4 linux/amd64\n", "kind"),
            Some(Version(0, 20, 0))
        );
        assert_eq!(Version::find("nothing", "kind"), None);
        assert!(Version(5, 5, 0) < Version(5, 10, 0));
    }
}
