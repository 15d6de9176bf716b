//! The OCI distribution API of the local registry, on 127.0.0.1.

use std::time::{Duration, Instant};

const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("registry at {url} did not answer: {message}")]
    Unreachable { url: String, message: String },
    #[error("registry returned HTTP {status} for {url}")]
    Status { url: String, status: u16 },
}

#[derive(Debug, Clone)]
pub struct RegistryApi {
    base: String,
    agent: ureq::Agent,
}

impl RegistryApi {
    pub fn new(host_port: u16) -> RegistryApi {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        RegistryApi {
            base: format!("http://127.0.0.1:{host_port}"),
            agent,
        }
    }

    fn status(&self, method: &str, path: &str, accept: Option<&str>) -> Result<u16, ApiError> {
        let url = format!("{}{path}", self.base);
        let resp = match method {
            "HEAD" => {
                let mut r = self.agent.head(&url);
                if let Some(a) = accept {
                    r = r.header("Accept", a);
                }
                r.call()
            }
            _ => self.agent.get(&url).call(),
        };
        resp.map(|r| r.status().as_u16())
            .map_err(|e| ApiError::Unreachable {
                url,
                message: e.to_string(),
            })
    }

    /// `GET /v2/` answers 200.
    pub fn healthy(&self) -> bool {
        matches!(self.status("GET", "/v2/", None), Ok(200))
    }

    /// Poll `GET /v2/` until it answers or `timeout` passes.
    pub fn wait_healthy(&self, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.healthy() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// The manifest of `repo:tag` as JSON (Docker schema 2 or OCI).
    pub fn manifest(&self, repo: &str, tag: &str) -> Result<serde_json::Value, ApiError> {
        let url = format!("{}/v2/{repo}/manifests/{tag}", self.base);
        let mut resp = self
            .agent
            .get(&url)
            .header("Accept", MANIFEST_TYPES)
            .call()
            .map_err(|e| ApiError::Unreachable {
                url: url.clone(),
                message: e.to_string(),
            })?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(ApiError::Status { url, status });
        }
        resp.body_mut()
            .read_json()
            .map_err(|e| ApiError::Unreachable {
                url,
                message: e.to_string(),
            })
    }

    /// Does `repo:tag` exist?
    pub fn has_manifest(&self, repo: &str, tag: &str) -> Result<bool, ApiError> {
        let accept = MANIFEST_TYPES;
        let path = format!("/v2/{repo}/manifests/{tag}");
        match self.status("HEAD", &path, Some(accept))? {
            200 => Ok(true),
            404 => Ok(false),
            s => Err(ApiError::Status {
                url: format!("{}{path}", self.base),
                status: s,
            }),
        }
    }
}
