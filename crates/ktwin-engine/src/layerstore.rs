//! Reading single layers straight from a local engine's store, when ktwin may read it: Docker's
//! overlay2 store (root, or rootless Docker whose data-root the user owns), or Podman's
//! containers/storage overlay store (rootful Podman, read as root). A layer's tar is
//! reassembled exactly as the engine's own export does: its tar-split record gives the raw
//! tar headers, and file bodies come from the layer's diff directory. Every layer read this
//! way is uploaded against its diffID, so a wrong byte is a refused upload, never a wrong
//! image — and then ktwin falls back to the engine's export.
//!
//! Why: the engine's export copies the whole image into a temp dir before the first byte
//! comes out (seconds for a large image) and always includes every layer; this reads only the
//! layers the registry lacks.
//!
//! The two layouts (both keep the tar-split of every layer they applied):
//! - Docker overlay2: `image/overlay2/imagedb/content/sha256/<image id>` is the config;
//!   `image/overlay2/layerdb/sha256/<chain id>/{cache-id,tar-split.json.gz}` per layer, whose
//!   files are in `overlay2/<cache-id>/diff`.
//! - containers/storage overlay (Podman, Buildah, CRI-O): `overlay-images/images.json` lists
//!   images with their top layer; `overlay-layers/layers.json` lists layers with `parent` and
//!   `diff-digest` (the diffID); a layer's tar-split is `overlay-layers/<id>.tar-split.gz` and
//!   its files are in `overlay/<id>/diff`; an image's config is the big-data item named by
//!   its ID, stored as `overlay-images/<id>/=<base64 of "sha256:<id>">`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::engine::{Engine, EngineKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    DockerOverlay2,
    ContainersStorage,
}

#[derive(Debug, Clone)]
pub struct LayerStore {
    root: PathBuf,
    layout: Layout,
}

/// Where one layer's tar comes from: its tar-split record and its diff directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSource {
    split: PathBuf,
    diff: PathBuf,
}

/// diffIDs → chainIDs (the layer store's keys).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(parent) => format!(
                "sha256:{:x}",
                Sha256::digest(format!("{parent} {d}").as_bytes())
            ),
        };
        out.push(next);
    }
    out
}

#[derive(Deserialize)]
struct CsImage {
    id: String,
    #[serde(default)]
    layer: Option<String>,
}

#[derive(Deserialize)]
struct CsLayer {
    id: String,
    #[serde(default)]
    parent: Option<String>,
    #[serde(rename = "diff-digest", default)]
    diff_digest: Option<String>,
}

impl LayerStore {
    /// The store of a local engine on the same machine, if this process can read it.
    /// `KTWIN_LAYER_STORE=off` (the engine's `layer_store: false`) turns this path off
    /// (ktwin then uses the engine's export).
    pub fn detect(engine: &Engine) -> Option<LayerStore> {
        if !engine.layer_store
            || engine
                .host
                .as_deref()
                .is_some_and(|h| !h.starts_with("unix://"))
        {
            return None;
        }
        let format = match engine.kind {
            EngineKind::Docker => "{{.DockerRootDir}}\t{{.Driver}}\tfalse",
            // A rootless store's files belong to subordinate IDs ktwin cannot read.
            EngineKind::Podman => {
                "{{.Store.GraphRoot}}\t{{.Store.GraphDriverName}}\t{{.Host.Security.Rootless}}"
            }
        };
        let out = engine.cmd(["info", "-f", format]).run().ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut f = text.trim().split('\t');
        let (root, driver, rootless) = (f.next()?, f.next()?, f.next()?);
        match (engine.kind, driver, rootless) {
            (EngineKind::Docker, "overlay2", _) => LayerStore::at(Path::new(root)),
            (EngineKind::Podman, "overlay", "false") => LayerStore::podman_at(Path::new(root)),
            _ => None,
        }
    }

    /// Docker's overlay2 store under a data-root, if readable.
    pub fn at(root: &Path) -> Option<LayerStore> {
        std::fs::read_dir(root.join("image/overlay2/layerdb/sha256")).ok()?;
        Some(LayerStore {
            root: root.to_path_buf(),
            layout: Layout::DockerOverlay2,
        })
    }

    /// A containers/storage overlay store (Podman's graph root), if readable.
    pub fn podman_at(root: &Path) -> Option<LayerStore> {
        std::fs::metadata(root.join("overlay-layers/layers.json")).ok()?;
        std::fs::read_dir(root.join("overlay")).ok()?;
        Some(LayerStore {
            root: root.to_path_buf(),
            layout: Layout::ContainersStorage,
        })
    }

    /// The image config exactly as the engine stores it (its digest is the image ID).
    pub fn config(&self, image_id: &str) -> Option<Vec<u8>> {
        let hex = image_id.strip_prefix("sha256:")?;
        let path = match self.layout {
            Layout::DockerOverlay2 => self
                .root
                .join("image/overlay2/imagedb/content/sha256")
                .join(hex),
            Layout::ContainersStorage => {
                let key = base64::engine::general_purpose::STANDARD.encode(image_id);
                self.root
                    .join("overlay-images")
                    .join(hex)
                    .join(format!("={key}"))
            }
        };
        std::fs::read(path).ok()
    }

    /// Where each layer of the image comes from, base first, checked against its diffIDs;
    /// `None` when the store does not hold exactly these layers.
    pub fn layers(&self, image_id: &str, diff_ids: &[String]) -> Option<Vec<LayerSource>> {
        match self.layout {
            Layout::DockerOverlay2 => chain_ids(diff_ids)
                .iter()
                .map(|c| self.docker_layer(c))
                .collect(),
            Layout::ContainersStorage => self.podman_layers(image_id, diff_ids),
        }
    }

    fn docker_layer(&self, chain_id: &str) -> Option<LayerSource> {
        let hex = chain_id.strip_prefix("sha256:")?;
        let meta = self.root.join("image/overlay2/layerdb/sha256").join(hex);
        let cache_id = std::fs::read_to_string(meta.join("cache-id")).ok()?;
        let diff = self
            .root
            .join("overlay2")
            .join(cache_id.trim())
            .join("diff");
        Some(LayerSource {
            split: meta.join("tar-split.json.gz"),
            diff,
        })
    }

    fn podman_layers(&self, image_id: &str, diff_ids: &[String]) -> Option<Vec<LayerSource>> {
        let hex = image_id.strip_prefix("sha256:")?;
        let images: Vec<CsImage> = serde_json::from_slice(
            &std::fs::read(self.root.join("overlay-images/images.json")).ok()?,
        )
        .ok()?;
        let top = images.into_iter().find(|i| i.id == hex)?.layer;
        let layers: Vec<CsLayer> = serde_json::from_slice(
            &std::fs::read(self.root.join("overlay-layers/layers.json")).ok()?,
        )
        .ok()?;
        let by_id: HashMap<&str, &CsLayer> = layers.iter().map(|l| (l.id.as_str(), l)).collect();
        // From the top layer down its parents; the base comes last.
        let mut chain = Vec::new();
        let mut at = top;
        while let Some(id) = at {
            let l = by_id.get(id.as_str())?;
            chain.push(*l);
            if chain.len() > diff_ids.len() {
                return None;
            }
            at = l.parent.clone();
        }
        chain.reverse();
        if chain.len() != diff_ids.len() {
            return None;
        }
        chain
            .iter()
            .zip(diff_ids)
            .map(|(l, d)| {
                (l.diff_digest.as_deref() == Some(d.as_str())).then(|| LayerSource {
                    split: self
                        .root
                        .join("overlay-layers")
                        .join(format!("{}.tar-split.gz", l.id)),
                    diff: self.root.join("overlay").join(&l.id).join("diff"),
                })
            })
            .collect()
    }

    /// A reader producing the layer's tar, byte for byte.
    pub fn open(&self, src: &LayerSource) -> Option<LayerTar> {
        if !src.diff.is_dir() {
            return None;
        }
        let split = File::open(&src.split).ok()?;
        Some(LayerTar {
            entries: BufReader::new(flate2::read::GzDecoder::new(BufReader::new(split))),
            diff: src.diff.clone(),
            segment: Vec::new(),
            at: 0,
            file: None,
            line: String::new(),
        })
    }
}

/// One tar-split record: type 2 = raw tar bytes (headers, padding), type 1 = a file body.
#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "type")]
    kind: u8,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    name_raw: Option<String>,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    payload: Option<String>,
}

pub struct LayerTar {
    entries: BufReader<flate2::read::GzDecoder<BufReader<File>>>,
    diff: PathBuf,
    segment: Vec<u8>,
    at: usize,
    file: Option<std::io::Take<File>>,
    line: String,
}

fn bad(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

impl LayerTar {
    /// Load the next record; false at the end.
    fn next_entry(&mut self) -> std::io::Result<bool> {
        loop {
            self.line.clear();
            if self.entries.read_line(&mut self.line)? == 0 {
                return Ok(false);
            }
            if self.line.trim().is_empty() {
                continue;
            }
            let e: Entry = serde_json::from_str(&self.line)
                .map_err(|err| bad(format!("tar-split record: {err}")))?;
            let b64 = base64::engine::general_purpose::STANDARD;
            match e.kind {
                2 => {
                    self.segment = b64
                        .decode(e.payload.unwrap_or_default())
                        .map_err(|err| bad(format!("tar-split payload: {err}")))?;
                    self.at = 0;
                    return Ok(true);
                }
                1 if e.size == 0 => continue,
                1 => {
                    let name = match (e.name, e.name_raw) {
                        (Some(n), _) => PathBuf::from(n),
                        (None, Some(raw)) => {
                            use std::os::unix::ffi::OsStringExt;
                            let bytes = b64
                                .decode(raw)
                                .map_err(|err| bad(format!("tar-split name: {err}")))?;
                            PathBuf::from(std::ffi::OsString::from_vec(bytes))
                        }
                        (None, None) => return Err(bad("tar-split file without a name".into())),
                    };
                    if name
                        .components()
                        .any(|c| matches!(c, Component::ParentDir | Component::RootDir))
                    {
                        return Err(bad(format!("unsafe path {}", name.display())));
                    }
                    let f = File::open(self.diff.join(&name))?;
                    self.file = Some(f.take(e.size));
                    return Ok(true);
                }
                k => return Err(bad(format!("unknown tar-split record type {k}"))),
            }
        }
    }
}

impl Read for LayerTar {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.at < self.segment.len() {
                let n = (self.segment.len() - self.at).min(buf.len());
                buf[..n].copy_from_slice(&self.segment[self.at..self.at + n]);
                self.at += n;
                return Ok(n);
            }
            if let Some(f) = self.file.as_mut() {
                let left = f.limit();
                if left > 0 {
                    let n = f.read(buf)?;
                    if n == 0 {
                        return Err(bad("a layer file is shorter than its tar header".into()));
                    }
                    return Ok(n);
                }
                self.file = None;
            }
            if !self.next_entry()? {
                return Ok(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let d = vec!["sha256:a".to_string(), "sha256:b".to_string()];
        let c = chain_ids(&d);
        assert_eq!(c[0], "sha256:a");
        assert_eq!(
            c[1],
            format!("sha256:{:x}", Sha256::digest(b"sha256:a sha256:b"))
        );
    }

    #[test]
    fn reassembles_segments_and_file_bodies_in_order() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let meta = r.join("image/overlay2/layerdb/sha256/abc");
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::create_dir_all(r.join("overlay2/cid/diff/dir")).unwrap();
        std::fs::write(meta.join("cache-id"), "cid").unwrap();
        std::fs::write(r.join("overlay2/cid/diff/dir/f"), "BODY").unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        let lines = format!(
            "{{\"type\":2,\"payload\":\"{}\",\"position\":0}}\n{{\"type\":1,\"name\":\"dir/f\",\"size\":4,\"payload\":null,\"position\":1}}\n{{\"type\":1,\"name\":\"empty\",\"size\":0,\"position\":2}}\n{{\"type\":2,\"payload\":\"{}\",\"position\":3}}\n",
            b64.encode("HEAD"),
            b64.encode("PAD")
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, lines.as_bytes()).unwrap();
        std::fs::write(meta.join("tar-split.json.gz"), gz.finish().unwrap()).unwrap();
        let store = LayerStore::at(r).unwrap();
        let mut out = String::new();
        let src = store.layers("sha256:img", &["sha256:abc".into()]).unwrap();
        store
            .open(&src[0])
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "HEADBODYPAD");
        assert!(store
            .layers("sha256:img", &["sha256:missing".into()])
            .is_none());
    }

    /// A containers/storage store as Podman 4.3 writes it (layout read off a real store on
    /// this machine: `podman build` of a two-layer FROM-scratch image).
    #[test]
    fn podman_layers_follow_the_parent_chain_and_must_match_the_diff_ids() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("overlay-layers")).unwrap();
        std::fs::create_dir_all(r.join("overlay/L1/diff")).unwrap();
        std::fs::create_dir_all(r.join("overlay/L2/diff")).unwrap();
        std::fs::write(
            r.join("overlay-layers/layers.json"),
            r#"[{"id":"L2","parent":"L1","diff-digest":"sha256:d2"},{"id":"L1","diff-digest":"sha256:d1"},{"id":"X","diff-digest":"sha256:d2"}]"#,
        )
        .unwrap();
        let config = br#"{"rootfs":{"type":"layers","diff_ids":["sha256:d1","sha256:d2"]}}"#;
        let id = format!("sha256:{:x}", Sha256::digest(config));
        let hex = id.trim_start_matches("sha256:");
        std::fs::create_dir_all(r.join("overlay-images").join(hex)).unwrap();
        std::fs::write(
            r.join("overlay-images/images.json"),
            format!(r#"[{{"id":"{hex}","layer":"L2","names":["localhost/app:1"]}}]"#),
        )
        .unwrap();
        let key = base64::engine::general_purpose::STANDARD.encode(&id);
        std::fs::write(
            r.join("overlay-images").join(hex).join(format!("={key}")),
            config,
        )
        .unwrap();
        let store = LayerStore::podman_at(r).unwrap();
        assert_eq!(store.config(&id).as_deref(), Some(&config[..]));
        let diff_ids = ["sha256:d1".to_string(), "sha256:d2".to_string()];
        let src = store.layers(&id, &diff_ids).unwrap();
        assert_eq!(src[0].diff, r.join("overlay/L1/diff"));
        assert_eq!(src[1].split, r.join("overlay-layers/L2.tar-split.gz"));
        // A diffID the chain does not have, or a different layer count: not this image.
        assert!(store
            .layers(&id, &["sha256:d1".into(), "sha256:other".into()])
            .is_none());
        assert!(store.layers(&id, &diff_ids[1..]).is_none());
        assert!(store.layers("sha256:unknown", &diff_ids).is_none());
    }
}
