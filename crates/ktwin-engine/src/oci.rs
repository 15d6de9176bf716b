//! ktwin's own push into the local registry. Layers are stored **uncompressed** (OCI allows
//! `application/vnd.oci.image.layer.v1.tar`): on a laptop-local registry gzip only burns CPU
//! twice (engine compresses, node decompresses) to save bytes that never leave the machine.
//! A layer's registry digest is then its diffID, so "does the registry have it?" is one HEAD.
//!
//! Two ways layers reach the registry, chosen per build by `build.rs`:
//! - **export**: the engine's image export stream (`docker save`) is read once, and each layer
//!   entry is uploaded as it streams by. Used the first time a repository is pushed.
//! - **engine push + convert**: the engine pushes to the repository's `ktwin-engine` tag (it
//!   gzips only the layers it has not pushed before, which after the first time is just the
//!   changed ones), then each layer the registry lacks uncompressed is converted from the
//!   engine's gzip blob. Used once the engine knows the repository.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};

use serde_json::{json, Value};

use crate::engine::Engine;
use crate::registry_api::{sha256_digest, ApiError, RegistryApi};
use crate::runner::RunError;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The tag the engine pushes to; the engine remembers which of its layers the registry has
/// (as gzip blobs) and from then on compresses only new ones.
pub const ENGINE_TAG: &str = "ktwin-engine";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

impl Descriptor {
    /// An uncompressed layer: its digest is its diffID.
    pub fn tar(digest: &str, size: u64) -> Descriptor {
        Descriptor {
            media_type: LAYER_TAR.into(),
            digest: digest.into(),
            size,
        }
    }
    pub fn config(digest: &str, size: u64) -> Descriptor {
        Descriptor {
            media_type: OCI_CONFIG.into(),
            digest: digest.into(),
            size,
        }
    }
    fn json(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

/// An OCI image manifest.
pub fn oci_manifest(config: &Descriptor, layers: &[Descriptor]) -> Vec<u8> {
    let m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.json(),
        "layers": layers.iter().map(Descriptor::json).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&m).unwrap_or_default()
}

/// What moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Moved {
    pub layers: usize,
    pub layers_pushed: usize,
    pub bytes_pushed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Engine(#[from] RunError),
    #[error(
        "the engine's export of {reference} is not an image archive ktwin understands: {message}"
    )]
    Archive { reference: String, message: String },
    #[error("reading the engine's export of {reference}: {message}")]
    Read { reference: String, message: String },
}

/// Where an image goes: a repository of the local registry, the content tag, and the other
/// repositories of the project (blobs they hold are mounted, not uploaded).
pub struct Target<'a> {
    pub api: &'a RegistryApi,
    pub repo: &'a str,
    pub tag: &'a str,
    pub siblings: &'a [String],
}

impl Target<'_> {
    /// The size of `digest` if this repository has it, mounting it from a sibling if one does.
    pub fn present(&self, digest: &str) -> Result<Option<u64>, ApiError> {
        if let Some(n) = self.api.blob_size(self.repo, digest)? {
            return Ok(Some(n));
        }
        for s in self.siblings.iter().filter(|s| s.as_str() != self.repo) {
            if self.api.blob_size(s, digest)?.is_some()
                && self.api.mount_blob(self.repo, digest, s)?
            {
                return self.api.blob_size(self.repo, digest);
            }
        }
        Ok(None)
    }

    /// Upload the image config unless the repository has it.
    pub fn ensure_config(&self, config: &[u8]) -> Result<Descriptor, ApiError> {
        let digest = sha256_digest(config);
        if self.present(&digest)?.is_none() {
            self.api
                .upload(self.repo, &mut &config[..], Some(&digest), &|_| {})?;
        }
        Ok(Descriptor::config(&digest, config.len() as u64))
    }

    /// Write the OCI manifest under the content tag.
    pub fn write_manifest(
        &self,
        config: &Descriptor,
        layers: &[Descriptor],
    ) -> Result<(), ApiError> {
        self.api
            .put_manifest(
                self.repo,
                self.tag,
                OCI_MANIFEST,
                &oci_manifest(config, layers),
            )
            .map(|_| ())
    }
}

/// Progress of one image: a phase and the bytes moved so far in it.
pub type Progress<'a> = &'a (dyn Fn(&str, u64) + Sync);

/// The export path: read `<engine> save <reference>` once; upload each layer entry the
/// registry lacks (entries named by digest are checked first; legacy `<id>/layer.tar` entries
/// are hashed while they upload), then the config and an OCI manifest under the tag.
pub fn push_from_export(
    engine: &Engine,
    reference: &str,
    t: &Target,
    progress: Progress,
) -> Result<Moved, PushError> {
    let mut child = engine.cmd(["save", reference]).spawn_stdout()?;
    let Some(stdout) = child.stdout.take() else {
        return Err(PushError::Archive {
            reference: reference.into(),
            message: "no output".into(),
        });
    };
    let read_err = |e: std::io::Error| PushError::Read {
        reference: reference.into(),
        message: e.to_string(),
    };
    let mut archive = tar::Archive::new(stdout);
    let mut layers: HashMap<String, (Descriptor, bool)> = HashMap::new();
    let mut configs: HashMap<String, Vec<u8>> = HashMap::new();
    let mut manifest: Option<Value> = None;
    let mut uploaded_before = 0u64;
    for entry in archive.entries().map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let path = entry
            .path()
            .map_err(read_err)?
            .to_string_lossy()
            .into_owned();
        // Docker names layers `<id>/layer.tar` (or `blobs/sha256/<hex>` in OCI-layout
        // exports); Podman's docker-archive names them `<diffID hex>.tar` at the top and adds
        // `<id>/layer.tar` as a symlink to it, which is not a layer of its own.
        let top_tar = !path.contains('/') && path.ends_with(".tar");
        let is_layer =
            (path.ends_with("/layer.tar") || path.starts_with("blobs/sha256/") || top_tar)
                && entry.header().entry_type().is_file();
        if path == "manifest.json" || (!path.contains('/') && path.ends_with(".json")) {
            let mut bytes = Vec::new();
            let mut e = entry;
            e.read_to_end(&mut bytes).map_err(read_err)?;
            if path == "manifest.json" {
                manifest =
                    Some(
                        serde_json::from_slice(&bytes).map_err(|e| PushError::Archive {
                            reference: reference.into(),
                            message: format!("manifest.json: {e}"),
                        })?,
                    );
            } else {
                configs.insert(path, bytes);
            }
            continue;
        }
        if !is_layer {
            continue;
        }
        // Entries named by digest (OCI-layout exports, Podman's `<hex>.tar`) can be checked
        // before reading.
        let named = path
            .strip_prefix("blobs/sha256/")
            .or_else(|| path.strip_suffix(".tar").filter(|h| top_tar && is_hex64(h)))
            .map(|h| format!("sha256:{h}"));
        if let Some(d) = &named {
            if let Some(size) = t.present(d)? {
                let mt = LAYER_TAR.to_string();
                layers.insert(
                    path,
                    (
                        Descriptor {
                            media_type: mt,
                            digest: d.clone(),
                            size,
                        },
                        false,
                    ),
                );
                continue;
            }
        }
        // Small blobs in an OCI-layout export may be configs or manifests, not layers; those
        // are uploaded too (harmless) but only manifest.json's layers are referenced.
        let mut r = BufReader::with_capacity(1 << 20, entry);
        let gzip = r.fill_buf().map_err(read_err)?.starts_with(&[0x1f, 0x8b]);
        let base = uploaded_before;
        let blob = t.api.upload(t.repo, &mut r, named.as_deref(), &|n| {
            progress("uploading layers", base + n)
        })?;
        uploaded_before += blob.size;
        let media_type = if gzip { LAYER_GZIP } else { LAYER_TAR }.to_string();
        layers.insert(
            path,
            (
                Descriptor {
                    media_type,
                    digest: blob.digest,
                    size: blob.size,
                },
                true,
            ),
        );
    }
    drop(archive);
    child.finish()?;
    let bad = |message: &str| PushError::Archive {
        reference: reference.into(),
        message: message.into(),
    };
    let m = manifest.ok_or_else(|| bad("no manifest.json"))?;
    let first = m
        .get(0)
        .ok_or_else(|| bad("manifest.json lists no image"))?;
    let config_name = first["Config"].as_str().ok_or_else(|| bad("no Config"))?;
    let config = match configs.get(config_name) {
        Some(c) => c.clone(),
        None => {
            return Err(bad(&format!("config {config_name} is not in the export")));
        }
    };
    let config_desc = t.ensure_config(&config)?;
    let mut moved = Moved::default();
    let mut descs = Vec::new();
    for l in first["Layers"].as_array().into_iter().flatten() {
        let p = l.as_str().unwrap_or_default();
        let (d, uploaded) = layers
            .get(p)
            .ok_or_else(|| bad(&format!("layer {p} is not in the export")))?;
        moved.layers += 1;
        if *uploaded {
            moved.layers_pushed += 1;
            moved.bytes_pushed += d.size;
        }
        descs.push(d.clone());
    }
    t.write_manifest(&config_desc, &descs)?;
    Ok(moved)
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The convert path: after the engine pushed the image to `<repo>:ktwin-engine`, give every
/// layer the registry lacks uncompressed an uncompressed copy (gunzip of the engine's blob,
/// checked against the config's diffID), then write the OCI manifest under the tag.
pub fn convert_engine_push(t: &Target, progress: Progress) -> Result<Moved, PushError> {
    let m = t.api.manifest(t.repo, ENGINE_TAG)?;
    let bad = |message: String| PushError::Archive {
        reference: format!("{}:{ENGINE_TAG}", t.repo),
        message,
    };
    let config_digest = m["config"]["digest"]
        .as_str()
        .ok_or_else(|| bad("manifest without config".into()))?
        .to_string();
    let config = t.api.blob_bytes(t.repo, &config_digest)?;
    let cfg: Value = serde_json::from_slice(&config).map_err(|e| bad(format!("config: {e}")))?;
    let diff_ids: Vec<String> = cfg["rootfs"]["diff_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let gz: Vec<(String, String)> = m["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            (
                l["digest"].as_str().unwrap_or_default().to_string(),
                l["mediaType"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    if gz.len() != diff_ids.len() {
        return Err(bad(format!(
            "{} layers but {} diffIDs",
            gz.len(),
            diff_ids.len()
        )));
    }
    let mut moved = Moved::default();
    let mut descs = Vec::new();
    let mut sent = 0u64;
    for (diff_id, (blob, media_type)) in diff_ids.iter().zip(&gz) {
        moved.layers += 1;
        if let Some(size) = t.present(diff_id)? {
            descs.push(Descriptor::tar(diff_id, size));
            continue;
        }
        let body = t.api.blob_reader(t.repo, blob)?;
        let mut r: Box<dyn Read> = if media_type.contains("gzip") {
            Box::new(flate2::read::GzDecoder::new(BufReader::with_capacity(
                1 << 20,
                body,
            )))
        } else {
            Box::new(body)
        };
        let base = sent;
        let b = t.api.upload(t.repo, &mut r, Some(diff_id), &|n| {
            progress("converting changed layers", base + n)
        })?;
        sent += b.size;
        moved.layers_pushed += 1;
        moved.bytes_pushed += b.size;
        descs.push(Descriptor::tar(&b.digest, b.size));
    }
    t.write_manifest(
        &Descriptor::config(&config_digest, config.len() as u64),
        &descs,
    )?;
    Ok(moved)
}

/// Uploads running at once: the registry ingests about twice as fast with two streams.
const UPLOADS: usize = 2;

/// The layer-store path: the layers the registry lacks (`sizes[i]` is `None`) are read from
/// the engine's store (see `layerstore.rs`) and uploaded, two at a time, each checked against
/// its diffID; then the config and the manifest.
pub fn push_from_store(
    store: &crate::layerstore::LayerStore,
    image_id: &str,
    diff_ids: &[String],
    mut sizes: Vec<Option<u64>>,
    t: &Target,
    progress: Progress,
) -> Result<Moved, PushError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let bad = |message: String| PushError::Archive {
        reference: format!("{}:{}", t.repo, t.tag),
        message,
    };
    let config = store
        .config(image_id)
        .ok_or_else(|| bad(format!("config {image_id} not in the engine's store")))?;
    if sha256_digest(&config) != image_id {
        return Err(bad("the stored config does not match the image ID".into()));
    }
    let sources = store.layers(image_id, diff_ids).ok_or_else(|| {
        bad(format!(
            "the layers of {image_id} are not in the engine's store"
        ))
    })?;
    // Open every missing layer before uploading anything: a store that cannot serve one
    // means the caller falls back before a byte moved.
    let mut missing = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        if size.is_none() {
            let r = store
                .open(&sources[i])
                .ok_or_else(|| bad(format!("layer {} not in the engine's store", diff_ids[i])))?;
            missing.push((i, r));
        }
    }
    let queue = std::sync::Mutex::new(missing.into_iter());
    let sent = AtomicU64::new(0);
    let results: Vec<Result<(usize, crate::registry_api::Blob), ApiError>> =
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..UPLOADS)
                .map(|_| {
                    s.spawn(|| {
                        let mut done = Vec::new();
                        // Each worker takes the next layer until the queue is empty or an
                        // upload fails.
                        while let Some((i, mut r)) = queue.lock().ok().and_then(|mut q| q.next()) {
                            let last = AtomicU64::new(0);
                            let res = t.api.upload(t.repo, &mut r, Some(&diff_ids[i]), &|n| {
                                let d = n - last.swap(n, Ordering::SeqCst);
                                progress(
                                    "uploading layers",
                                    sent.fetch_add(d, Ordering::SeqCst) + d,
                                );
                            });
                            let failed = res.is_err();
                            done.push(res.map(|b| (i, b)));
                            if failed {
                                break;
                            }
                        }
                        done
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap_or_default())
                .collect()
        });
    let mut moved = Moved {
        layers: diff_ids.len(),
        ..Moved::default()
    };
    for r in results {
        let (i, b) = r?;
        sizes[i] = Some(b.size);
        moved.layers_pushed += 1;
        moved.bytes_pushed += b.size;
    }
    let config_desc = t.ensure_config(&config)?;
    let descs = diff_ids
        .iter()
        .zip(&sizes)
        .map(|(d, size)| {
            size.map(|n| Descriptor::tar(d, n))
                .ok_or_else(|| bad(format!("layer {d} was not uploaded")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    t.write_manifest(&config_desc, &descs)?;
    Ok(moved)
}

/// When the registry already has every layer and the config: only the manifest is written.
pub fn manifest_only(
    t: &Target,
    config: (&str, u64),
    layers: &[(&String, u64)],
) -> Result<Moved, PushError> {
    let descs: Vec<Descriptor> = layers.iter().map(|(d, n)| Descriptor::tar(d, *n)).collect();
    t.write_manifest(&Descriptor::config(config.0, config.1), &descs)?;
    Ok(Moved {
        layers: descs.len(),
        ..Moved::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_is_oci_with_uncompressed_layers() {
        let c = Descriptor::config("sha256:c", 10);
        let l = Descriptor::tar("sha256:l", 2048);
        let m: Value = serde_json::from_slice(&oci_manifest(&c, &[l])).unwrap();
        assert_eq!(m["schemaVersion"], 2);
        assert_eq!(m["mediaType"], OCI_MANIFEST);
        assert_eq!(m["config"]["digest"], "sha256:c");
        assert_eq!(m["layers"][0]["size"], 2048);
        assert_eq!(m["layers"][0]["mediaType"], LAYER_TAR);
    }
}
