//! Reading single layers straight from a local Docker engine's overlay2 store, when ktwin may
//! read it (root, or rootless Docker whose data-root the user owns). A layer's tar is
//! reassembled exactly as the engine's own export does: its tar-split record gives the raw
//! tar headers, and file bodies come from the layer's diff directory. Every layer read this
//! way is uploaded against its diffID, so a wrong byte is a refused upload, never a wrong
//! image — and then ktwin falls back to the engine's export.
//!
//! Why: the engine's export copies the whole image into a temp dir before the first byte
//! comes out (seconds for a large image) and always includes every layer; this reads only the
//! layers the registry lacks.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::engine::{Engine, EngineKind};

#[derive(Debug, Clone)]
pub struct LayerStore {
    root: PathBuf,
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

impl LayerStore {
    /// The store of a local Docker engine using overlay2, if this process can read it.
    /// `KTWIN_LAYER_STORE=off` (the engine's `layer_store: false`) turns this path off
    /// (ktwin then uses the engine's export).
    pub fn detect(engine: &Engine) -> Option<LayerStore> {
        if !engine.layer_store
            || engine.kind != EngineKind::Docker
            || engine
                .host
                .as_deref()
                .is_some_and(|h| !h.starts_with("unix://"))
        {
            return None;
        }
        let out = engine
            .cmd(["info", "-f", "{{.DockerRootDir}}\t{{.Driver}}"])
            .run()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let (root, driver) = text.trim().split_once('\t')?;
        if driver != "overlay2" {
            return None;
        }
        LayerStore::at(Path::new(root))
    }

    /// The store under a data-root, if readable.
    pub fn at(root: &Path) -> Option<LayerStore> {
        std::fs::read_dir(root.join("image/overlay2/layerdb/sha256")).ok()?;
        Some(LayerStore {
            root: root.to_path_buf(),
        })
    }

    /// The image config exactly as the engine stores it (its digest is the image ID).
    pub fn config(&self, image_id: &str) -> Option<Vec<u8>> {
        let hex = image_id.strip_prefix("sha256:")?;
        std::fs::read(
            self.root
                .join("image/overlay2/imagedb/content/sha256")
                .join(hex),
        )
        .ok()
    }

    /// A reader producing the layer's tar, byte for byte.
    pub fn layer(&self, chain_id: &str) -> Option<LayerTar> {
        let hex = chain_id.strip_prefix("sha256:")?;
        let meta = self.root.join("image/overlay2/layerdb/sha256").join(hex);
        let cache_id = std::fs::read_to_string(meta.join("cache-id")).ok()?;
        let diff = self
            .root
            .join("overlay2")
            .join(cache_id.trim())
            .join("diff");
        if !diff.is_dir() {
            return None;
        }
        let split = File::open(meta.join("tar-split.json.gz")).ok()?;
        Some(LayerTar {
            entries: BufReader::new(flate2::read::GzDecoder::new(BufReader::new(split))),
            diff,
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
        store
            .layer("sha256:abc")
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "HEADBODYPAD");
        assert!(store.layer("sha256:missing").is_none());
    }
}
