//! `cluster.kubernetesVersion` → the node image of each provider. Prod parity starts with the
//! same minor version, so a minor (`v1.31`) resolves to one known patch release per provider;
//! an exact version (`v1.31.4`) is used as written.
//!
//! Image naming: k3s publishes `rancher/k3s:v<major>.<minor>.<patch>-k3s<n>` (the `+` of its
//! release names is `-` in image tags); kind publishes `kindest/node:v<major>.<minor>.<patch>`,
//! built for a kind release and only best-effort with others (kind's node-image docs), which
//! is why the table names the release each kind image came with.

/// One supported minor: the patch release each provider's image is pinned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Supported {
    pub minor: u32,
    /// `rancher/k3s` tag.
    pub k3s: &'static str,
    /// `kindest/node` tag, and the kind release that published it.
    pub kind: &'static str,
    pub kind_release: &'static str,
}

/// Minors ktwin knows images for, oldest first.
pub const SUPPORTED: &[Supported] = &[
    Supported {
        minor: 29,
        k3s: "v1.29.12-k3s1",
        kind: "v1.29.12",
        kind_release: "v0.26.0",
    },
    Supported {
        minor: 30,
        k3s: "v1.30.8-k3s1",
        kind: "v1.30.8",
        kind_release: "v0.26.0",
    },
    Supported {
        minor: 31,
        k3s: "v1.31.4-k3s1",
        kind: "v1.31.4",
        kind_release: "v0.26.0",
    },
    Supported {
        minor: 32,
        k3s: "v1.32.0-k3s1",
        kind: "v1.32.0",
        kind_release: "v0.26.0",
    },
];

/// A parsed `kubernetesVersion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KubeVersion {
    pub minor: u32,
    pub patch: Option<u32>,
}

impl KubeVersion {
    /// `v1.31`, `1.31`, `v1.31.4`; only Kubernetes 1.x.
    pub fn parse(s: &str) -> Result<KubeVersion, String> {
        let t = s.trim().strip_prefix('v').unwrap_or(s.trim());
        let parts: Vec<&str> = t.split('.').collect();
        let num = |p: &str| {
            p.parse::<u32>()
                .ok()
                .filter(|_| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        };
        match parts.as_slice() {
            [major, minor] | [major, minor, _] if *major == "1" => {
                let minor = num(minor)
                    .ok_or_else(|| format!("`{s}`: the minor version is not a number"))?;
                let patch = match parts.get(2) {
                    Some(p) => Some(
                        num(p)
                            .ok_or_else(|| format!("`{s}`: the patch version is not a number"))?,
                    ),
                    None => None,
                };
                Ok(KubeVersion { minor, patch })
            }
            _ => Err(format!(
                "`{s}` is not a Kubernetes version like `v1.31` or `v1.31.4`"
            )),
        }
    }

    /// The supported minor this version belongs to, or what is supported.
    pub fn supported(&self) -> Result<&'static Supported, String> {
        SUPPORTED
            .iter()
            .find(|x| x.minor == self.minor)
            .ok_or_else(|| {
                format!(
                    "Kubernetes 1.{} has no known k3s/kind image; ktwin knows {}",
                    self.minor,
                    SUPPORTED
                        .iter()
                        .map(|x| format!("v1.{}", x.minor))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }

    /// The k3s image for this version.
    pub fn k3s_image(&self) -> Result<String, String> {
        let s = self.supported()?;
        Ok(match self.patch {
            Some(p) => format!("rancher/k3s:v1.{}.{p}-k3s1", self.minor),
            None => format!("rancher/k3s:{}", s.k3s),
        })
    }

    /// The kind node image for this version.
    pub fn kind_image(&self) -> Result<String, String> {
        let s = self.supported()?;
        Ok(match self.patch {
            Some(p) => format!("kindest/node:v1.{}.{p}", self.minor),
            None => format!("kindest/node:{}", s.kind),
        })
    }
}

/// The node image `cluster.kubernetesVersion` gives on `provider` (`None`: the provider's
/// default; an invalid version is refused when ktwin.yaml loads).
pub fn node_image(p: &crate::Project) -> Option<String> {
    let k = KubeVersion::parse(p.cluster.kubernetes_version.as_deref()?).ok()?;
    match p.cluster.provider {
        crate::Provider::K3d => k.k3s_image(),
        crate::Provider::Kind => k.kind_image(),
    }
    .ok()
}

/// The `major.minor` of a server version string (`v1.31.4+k3s1`, `v1.30.2-gke.1587003`).
pub fn minor_of(server_version: &str) -> Option<u32> {
    let t = server_version
        .trim()
        .strip_prefix('v')
        .unwrap_or(server_version.trim());
    let mut it = t.split(['.', '+', '-']);
    (it.next()? == "1").then_some(())?;
    it.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minors_resolve_to_the_providers_image_names() {
        let v = KubeVersion::parse("v1.31").unwrap();
        assert_eq!(v.k3s_image().unwrap(), "rancher/k3s:v1.31.4-k3s1");
        assert_eq!(v.kind_image().unwrap(), "kindest/node:v1.31.4");
        let exact = KubeVersion::parse("1.30.2").unwrap();
        assert_eq!(exact.k3s_image().unwrap(), "rancher/k3s:v1.30.2-k3s1");
        assert_eq!(exact.kind_image().unwrap(), "kindest/node:v1.30.2");
    }

    #[test]
    fn unknown_or_malformed_versions_are_refused_with_what_is_known() {
        let e = KubeVersion::parse("v1.19")
            .unwrap()
            .k3s_image()
            .unwrap_err();
        assert!(e.contains("v1.29") && e.contains("v1.32"), "{e}");
        for bad in ["latest", "v2.1", "v1", "v1.x", "v1.31.4.1", "v1.31-rc"] {
            assert!(KubeVersion::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_versions_give_their_minor() {
        assert_eq!(minor_of("v1.31.4+k3s1"), Some(31));
        assert_eq!(minor_of("v1.30.2-gke.1587003"), Some(30));
        assert_eq!(minor_of("garbage"), None);
    }
}
