//! Container image references: `[host[:port]/]path[:tag][@digest]`.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host as written (`None` for Docker Hub short forms).
    pub host: Option<String>,
    /// Repository path as written, without host.
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    pub fn parse(s: &str) -> Result<ImageRef, String> {
        if s.is_empty() {
            return Err("it is empty".into());
        }
        if s.chars().any(char::is_whitespace) {
            return Err("it contains whitespace".into());
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                if !d.contains(':') {
                    return Err(format!("digest `{d}` must be `algorithm:hex`"));
                }
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        let last_slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(i) if last_slash.is_none_or(|j| i > j) => {
                (&rest[..i], Some(rest[i + 1..].to_string()))
            }
            _ => (rest, None),
        };
        if let Some(t) = &tag {
            if t.is_empty()
                || t.len() > 128
                || !t
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            {
                return Err(format!("tag `{t}` is invalid"));
            }
        }
        let (host, path) = match name.split_once('/') {
            Some((first, p))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (Some(first.to_string()), p.to_string())
            }
            _ => (None, name.to_string()),
        };
        if path.is_empty()
            || path.split('/').any(str::is_empty)
            || !path
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c))
        {
            return Err(format!(
                "repository `{path}` must be lowercase letters, digits, '.', '_', '-' and '/'"
            ));
        }
        Ok(ImageRef {
            host,
            path,
            tag,
            digest,
        })
    }

    /// The normalised repository (`docker.io/library/nginx` for `nginx`), used for matching.
    pub fn repository_key(&self) -> String {
        match self.host.as_deref() {
            None | Some("docker.io") | Some("index.docker.io") => {
                if self.path.contains('/') {
                    format!("docker.io/{}", self.path)
                } else {
                    format!("docker.io/library/{}", self.path)
                }
            }
            Some(h) => format!("{h}/{}", self.path),
        }
    }

    /// Whether this reference names no tag or `latest` (kubelet's implicit `Always`).
    pub fn is_latest(&self) -> bool {
        self.digest.is_none() && self.tag.as_deref().is_none_or(|t| t == "latest")
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(h) = &self.host {
            write!(f, "{h}/")?;
        }
        write!(f, "{}", self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_tags_digests() {
        let r = ImageRef::parse("ghcr.io/acme/lobboss:latest").unwrap();
        assert_eq!(r.host.as_deref(), Some("ghcr.io"));
        assert_eq!(r.path, "acme/lobboss");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        let r = ImageRef::parse("localhost:5001/a/b@sha256:abc").unwrap();
        assert_eq!(r.host.as_deref(), Some("localhost:5001"));
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some("sha256:abc"));
        let r = ImageRef::parse("nginx").unwrap();
        assert_eq!(r.repository_key(), "docker.io/library/nginx");
        assert_eq!(
            ImageRef::parse("docker.io/library/nginx:1")
                .unwrap()
                .repository_key(),
            "docker.io/library/nginx"
        );
        assert!(ImageRef::parse("Acme/App").is_err());
        assert!(ImageRef::parse("a:").is_err());
    }

    #[test]
    fn latest_detection() {
        assert!(ImageRef::parse("a/b").unwrap().is_latest());
        assert!(ImageRef::parse("a/b:latest").unwrap().is_latest());
        assert!(!ImageRef::parse("a/b:1.2").unwrap().is_latest());
        assert!(!ImageRef::parse("a/b@sha256:00").unwrap().is_latest());
    }
}
