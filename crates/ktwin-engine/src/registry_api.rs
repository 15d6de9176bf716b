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
    /// The registry's HTTP API, as the host reaches it.
    pub fn new(registry: &ktwin_config::desired::RegistryAddr) -> RegistryApi {
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
            base: registry.api_base(),
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

    /// One body-less request (`GET`, `HEAD`, `DELETE`, or `POST` with an empty body) to
    /// `<base><path>`; any HTTP status is an answer, only a transport failure is an error.
    fn call(
        &self,
        agent: &ureq::Agent,
        method: &str,
        path: &str,
        accept: Option<&str>,
    ) -> Result<Answer, ApiError> {
        let url = format!("{}{path}", self.base);
        let with_accept = |r: ureq::RequestBuilder<ureq::typestate::WithoutBody>| match accept {
            Some(a) => r.header("Accept", a),
            None => r,
        };
        let resp = match method {
            "HEAD" => with_accept(agent.head(&url)).call(),
            "DELETE" => with_accept(agent.delete(&url)).call(),
            "POST" => agent.post(&url).send_empty(),
            _ => with_accept(agent.get(&url)).call(),
        }
        .map_err(|e| Self::unreachable(&url, e))?;
        Ok(Answer { url, resp })
    }

    /// The size of `digest` if it is linked into `repo`.
    pub fn blob_size(&self, repo: &str, digest: &str) -> Result<Option<u64>, ApiError> {
        let a = self.call(
            &self.agent,
            "HEAD",
            &format!("/v2/{repo}/blobs/{digest}"),
            None,
        )?;
        Ok(a.found()?.then(|| {
            a.header("Content-Length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        }))
    }

    /// Link a blob another repository of this registry has (no bytes move). False when the
    /// registry does not have it there.
    pub fn mount_blob(&self, repo: &str, digest: &str, from: &str) -> Result<bool, ApiError> {
        let path = format!("/v2/{repo}/blobs/uploads/?mount={digest}&from={from}");
        Ok(self.call(&self.agent, "POST", &path, None)?.status() == 201)
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
        let a = self.call(
            &self.bulk,
            "GET",
            &format!("/v2/{repo}/blobs/{digest}"),
            None,
        )?;
        a.expect(&[200])?;
        Ok(a.resp.into_body().into_reader())
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
        Answer { url, resp }.expect(&[201])?;
        Ok(sha256_digest(body))
    }

    /// Does `repo:tag` exist?
    pub fn has_manifest(&self, repo: &str, tag: &str) -> Result<bool, ApiError> {
        let path = format!("/v2/{repo}/manifests/{tag}");
        self.call(&self.agent, "HEAD", &path, Some(MANIFEST_TYPES))?
            .found()
    }

    /// The manifest of `repo:tag` as JSON (Docker schema 2 or OCI) and its digest.
    pub fn manifest_and_digest(
        &self,
        repo: &str,
        tag: &str,
    ) -> Result<(serde_json::Value, Option<String>), ApiError> {
        let path = format!("/v2/{repo}/manifests/{tag}");
        let mut a = self.call(&self.agent, "GET", &path, Some(MANIFEST_TYPES))?;
        a.expect(&[200])?;
        let digest = a.header("Docker-Content-Digest").map(str::to_string);
        Ok((a.json()?, digest))
    }

    /// The manifest of `repo:tag` as JSON (Docker schema 2 or OCI).
    pub fn manifest(&self, repo: &str, tag: &str) -> Result<serde_json::Value, ApiError> {
        self.manifest_and_digest(repo, tag).map(|(m, _)| m)
    }

    /// Delete a manifest by digest (every tag pointing at it goes with it).
    pub fn delete_manifest(&self, repo: &str, digest: &str) -> Result<(), ApiError> {
        let path = format!("/v2/{repo}/manifests/{digest}");
        self.call(&self.agent, "DELETE", &path, None)?
            .expect(&[202, 404])
    }

    fn get_json(&self, path: &str) -> Result<serde_json::Value, ApiError> {
        let mut a = self.call(&self.agent, "GET", path, None)?;
        a.expect(&[200])?;
        a.json()
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

    /// `GET /v2/` answers 200.
    pub fn healthy(&self) -> bool {
        self.call(&self.agent, "GET", "/v2/", None)
            .is_ok_and(|a| a.status() == 200)
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
}

/// A registry answer with the URL it came from (for error messages).
struct Answer {
    url: String,
    resp: ureq::http::Response<ureq::Body>,
}

impl Answer {
    fn status(&self) -> u16 {
        self.resp.status().as_u16()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.resp.headers().get(name).and_then(|v| v.to_str().ok())
    }
    /// Any status in `ok` passes; another is an error naming the URL.
    fn expect(&self, ok: &[u16]) -> Result<(), ApiError> {
        if ok.contains(&self.status()) {
            Ok(())
        } else {
            Err(ApiError::Status {
                url: self.url.clone(),
                status: self.status(),
            })
        }
    }
    /// 200 → true, 404 → false, anything else an error.
    fn found(&self) -> Result<bool, ApiError> {
        self.expect(&[200, 404])?;
        Ok(self.status() == 200)
    }
    fn json(&mut self) -> Result<serde_json::Value, ApiError> {
        let url = self.url.clone();
        self.resp
            .body_mut()
            .read_json()
            .map_err(|e| RegistryApi::unreachable(&url, e))
    }
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}
