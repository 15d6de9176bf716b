//! Sync, copy mode: files into a running container as a tar stream over the exec API (`tar
//! xf - -C /` in the container), for twins created without the project mount. The image needs
//! a `tar`; one without (distroless, scratch) is a clear error that names the other mode.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use kube::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One file to put at `dest` (an absolute path in the container).
#[derive(Debug, Clone)]
pub struct CopyFile {
    pub dest: String,
    pub bytes: Vec<u8>,
    pub mode: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("pod {pod} container {container}: its image has no `tar`, which copy sync runs; use `syncMode: mount` (the default: nothing runs in the container) or add tar to the image")]
    NoTar { pod: String, container: String },
    #[error("pod {pod} container {container}: the copy failed: {message}")]
    Failed {
        pod: String,
        container: String,
        message: String,
    },
}

/// The files as one tar archive, paths relative to `/`.
pub fn archive(files: &[CopyFile]) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for f in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(f.bytes.len() as u64);
        h.set_mode(f.mode);
        h.set_mtime(now);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, f.dest.trim_start_matches('/'), f.bytes.as_slice())?;
    }
    b.into_inner()
}

/// Put `files` into `container` of `ns/pod`.
pub async fn copy_into(
    client: &Client,
    ns: &str,
    pod: &str,
    container: &str,
    files: &[CopyFile],
) -> Result<(), CopyError> {
    let failed = |message: String| CopyError::Failed {
        pod: pod.to_string(),
        container: container.to_string(),
        message,
    };
    let data = archive(files).map_err(|e| failed(e.to_string()))?;
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let ap = AttachParams::default()
        .container(container)
        .stdin(true)
        .stdout(false)
        .stderr(true);
    let mut p = api
        .exec(pod, vec!["tar", "xf", "-", "-C", "/"], &ap)
        .await
        .map_err(|e| failed(crate::api_err("", &e).to_string()))?;
    let status = p.take_status();
    let mut stderr = p.stderr();
    let err_text = tokio::spawn(async move {
        let mut s = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.read_to_string(&mut s).await;
        }
        s
    });
    // Written beside the wait: a container that could not start tar answers with its status
    // at once and reads nothing more.
    let writer = p.stdin().map(|mut stdin| {
        tokio::spawn(async move {
            let _ = stdin.write_all(&data).await;
            let _ = stdin.shutdown().await;
        })
    });
    let st = match status {
        Some(s) => s.await,
        None => None,
    };
    if let Some(w) = writer {
        w.abort();
    }
    let _ = p.join().await;
    let stderr = err_text.await.unwrap_or_default();
    match st {
        Some(s) if s.status.as_deref() == Some("Success") => Ok(()),
        Some(s) => {
            let msg = s.message.unwrap_or_default();
            if msg.contains("executable file not found")
                || msg.contains("no such file or directory") && msg.contains("\"tar\"")
            {
                Err(CopyError::NoTar {
                    pod: pod.to_string(),
                    container: container.to_string(),
                })
            } else {
                let tail = stderr.trim();
                Err(failed(if tail.is_empty() {
                    msg
                } else {
                    format!("{msg}: {tail}")
                }))
            }
        }
        None => Err(failed("the exec ended without a status".into())),
    }
}
