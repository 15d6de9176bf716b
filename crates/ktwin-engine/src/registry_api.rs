//! The OCI distribution API of the local registry, on 127.0.0.1.

use std::io::Read;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("registry at {url} did not answer: {message}")]
    Unreachable { url: String, message: String },
    #[error("registry returned HTTP {status} for {url}")]
    Status { url: String, status: u16 },
    #[error("the connection to the registry broke while uploading a blob to {repo}, after {sent} bytes: {message}")]
    Upload {
        repo: String,
        sent: u64,
        message: String,
    },
    #[error("blob content does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch { expected: String, actual: String },
}

/// A blob in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
}

/// Hashes and counts what passes through; `progress` is told the running total.
pub struct Hashing<'a, R> {
    inner: R,
    hasher: Sha256,
    pub bytes: u64,
    progress: &'a (dyn Fn(u64) + Sync),
}

impl<'a, R: Read> Hashing<'a, R> {
    pub fn new(inner: R, progress: &'a (dyn Fn(u64) + Sync)) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
            progress,
        }
    }
    pub fn digest(&self) -> String {
        format!("sha256:{:x}", self.hasher.clone().finalize())
    }
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        (self.progress)(self.bytes);
        Ok(n)
    }
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

#[derive(Debug, Clone)]
pub struct RegistryApi {
    base: String,
    agent: ureq::Agent,
    /// For blob bodies: no overall deadline (an 800 MB layer takes seconds), only connect.
    bulk: ureq::Agent,
}

impl RegistryApi {
    pub fn new(host_port: u16) -> RegistryApi {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        let bulk = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .build()
            .new_agent();
        RegistryApi {
            base: format!("http://127.0.0.1:{host_port}"),
            agent,
            bulk,
        }
    }

    fn unreachable(url: &str, e: impl std::fmt::Display) -> ApiError {
        ApiError::Unreachable {
            url: url.to_string(),
            message: e.to_string(),
        }
    }

    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}{location}", self.base)
        }
    }

    /// The size of `digest` if it is linked into `repo`.
    pub fn blob_size(&self, repo: &str, digest: &str) -> Result<Option<u64>, ApiError> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        let resp = self
            .agent
            .head(&url)
            .call()
            .map_err(|e| Self::unreachable(&url, e))?;
        match resp.status().as_u16() {
            200 => Ok(Some(
                resp.headers()
                    .get("Content-Length")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )),
            404 => Ok(None),
            status => Err(ApiError::Status { url, status }),
        }
    }

    /// Link a blob another repository of this registry has (no bytes move). False when the
    /// registry does not have it there.
    pub fn mount_blob(&self, repo: &str, digest: &str, from: &str) -> Result<bool, ApiError> {
        let url = format!(
            "{}/v2/{repo}/blobs/uploads/?mount={digest}&from={from}",
            self.base
        );
        let resp = self
            .agent
            .post(&url)
            .send_empty()
            .map_err(|e| Self::unreachable(&url, e))?;
        Ok(resp.status().as_u16() == 201)
    }

    /// Stream a blob in (POST, one PATCH with the whole body, PUT with the digest computed on
    /// the way). With `expect`, a body whose digest differs is refused before the PUT.
    pub fn upload(
        &self,
        repo: &str,
        body: &mut dyn Read,
        expect: Option<&str>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Blob, ApiError> {
        let start = format!("{}/v2/{repo}/blobs/uploads/", self.base);
        let resp = self
            .agent
            .post(&start)
            .send_empty()
            .map_err(|e| Self::unreachable(&start, e))?;
        let location = self.location(&start, &resp, 202)?;
        let mut hashing = Hashing::new(body, progress);
        let sent = self
            .bulk
            .patch(&location)
            .header("Content-Type", "application/octet-stream")
            .send(ureq::SendBody::from_reader(&mut hashing));
        let resp = sent.map_err(|e| ApiError::Upload {
            repo: repo.to_string(),
            sent: hashing.bytes,
            message: e.to_string(),
        })?;
        let location = self.location(&location, &resp, 202)?;
        let digest = hashing.digest();
        if let Some(e) = expect {
            if e != digest {
                return Err(ApiError::DigestMismatch {
                    expected: e.to_string(),
                    actual: digest,
                });
            }
        }
        let sep = if location.contains('?') { '&' } else { '?' };
        let finish = format!("{location}{sep}digest={digest}");
        let resp = self
            .agent
            .put(&finish)
            .send_empty()
            .map_err(|e| Self::unreachable(&finish, e))?;
        if resp.status().as_u16() != 201 {
            return Err(ApiError::Status {
                url: finish,
                status: resp.status().as_u16(),
            });
        }
        Ok(Blob {
            digest,
            size: hashing.bytes,
        })
    }

    fn location(
        &self,
        url: &str,
        resp: &ureq::http::Response<ureq::Body>,
        want: u16,
    ) -> Result<String, ApiError> {
        let status = resp.status().as_u16();
        if status != want {
            return Err(ApiError::Status {
                url: url.to_string(),
                status,
            });
        }
        resp.headers()
            .get("Location")
            .and_then(|v| v.to_str().ok())
            .map(|l| self.absolute(l))
            .ok_or_else(|| Self::unreachable(url, "no Location header in the upload answer"))
    }

    /// A blob's content as a stream.
    pub fn blob_reader(&self, repo: &str, digest: &str) -> Result<impl Read, ApiError> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        let resp = self
            .bulk
            .get(&url)
            .call()
            .map_err(|e| Self::unreachable(&url, e))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(ApiError::Status { url, status });
        }
        Ok(resp.into_body().into_reader())
    }

    /// A small blob (a config) in memory.
    pub fn blob_bytes(&self, repo: &str, digest: &str) -> Result<Vec<u8>, ApiError> {
        let mut v = Vec::new();
        self.blob_reader(repo, digest)?
            .read_to_end(&mut v)
            .map_err(|e| {
                Self::unreachable(&format!("{}/v2/{repo}/blobs/{digest}", self.base), e)
            })?;
        Ok(v)
    }

    /// PUT a manifest under `reference`; returns its digest.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Result<String, ApiError> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let resp = self
            .agent
            .put(&url)
            .header("Content-Type", media_type)
            .send(body)
            .map_err(|e| Self::unreachable(&url, e))?;
        let status = resp.status().as_u16();
        if status != 201 {
            return Err(ApiError::Status { url, status });
        }
        Ok(sha256_digest(body))
    }

    /// The digest `reference` (a tag) points at, if any.
    pub fn manifest_digest(&self, repo: &str, reference: &str) -> Result<Option<String>, ApiError> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let resp = self
            .agent
            .head(&url)
            .header("Accept", MANIFEST_TYPES)
            .call()
            .map_err(|e| Self::unreachable(&url, e))?;
        match resp.status().as_u16() {
            200 => Ok(resp
                .headers()
                .get("Docker-Content-Digest")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)),
            404 => Ok(None),
            status => Err(ApiError::Status { url, status }),
        }
    }

    /// Delete a manifest by digest (every tag pointing at it goes with it).
    pub fn delete_manifest(&self, repo: &str, digest: &str) -> Result<(), ApiError> {
        let url = format!("{}/v2/{repo}/manifests/{digest}", self.base);
        let resp = self
            .agent
            .delete(&url)
            .call()
            .map_err(|e| Self::unreachable(&url, e))?;
        match resp.status().as_u16() {
            202 | 404 => Ok(()),
            status => Err(ApiError::Status { url, status }),
        }
    }

    fn get_json(&self, path: &str) -> Result<serde_json::Value, ApiError> {
        let url = format!("{}{path}", self.base);
        let mut resp = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| Self::unreachable(&url, e))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(ApiError::Status { url, status });
        }
        resp.body_mut()
            .read_json()
            .map_err(|e| Self::unreachable(&url, e))
    }

    /// Every repository (`/v2/_catalog`).
    pub fn catalog(&self) -> Result<Vec<String>, ApiError> {
        // Pages of 100 (the registry caps `n`), continued from the last name seen.
        let mut all: Vec<String> = Vec::new();
        loop {
            let path = match all.last() {
                Some(last) => format!("/v2/_catalog?n=100&last={last}"),
                None => "/v2/_catalog?n=100".to_string(),
            };
            let page = strings(&self.get_json(&path)?["repositories"]);
            let done = page.len() < 100;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    /// Every tag of `repo`.
    pub fn tags(&self, repo: &str) -> Result<Vec<String>, ApiError> {
        let v = self.get_json(&format!("/v2/{repo}/tags/list"))?;
        Ok(strings(&v["tags"]))
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

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}
