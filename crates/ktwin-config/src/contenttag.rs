//! Content tags: a hash of everything that goes into a build, so an unchanged image is never
//! rebuilt or pushed, and `render` shows the exact tag `build` will push.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::dockerignore::DockerIgnore;
use crate::model::Image;

/// Bump when the hashed inputs change meaning, so old tags are never reused by mistake.
const SCHEME: &[u8] = b"ktwin-content-tag-v2\n";

#[derive(Debug, thiserror::Error)]
pub enum TagError {
    #[error("{0}")]
    DockerIgnore(String),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What goes into a build, resolved to paths.
#[derive(Debug, Clone)]
pub struct BuildInputs<'a> {
    pub context: PathBuf,
    pub dockerfile: PathBuf,
    pub image: &'a Image,
    /// Target platform (`linux/amd64`); `None` means the engine's default.
    pub platform: Option<&'a str>,
}

impl<'a> BuildInputs<'a> {
    pub fn new(project_dir: &Path, image: &'a Image) -> Self {
        let context = project_dir.join(&image.context);
        let dockerfile = context.join(&image.dockerfile);
        BuildInputs {
            context,
            dockerfile,
            image,
            platform: None,
        }
    }
}

/// `ktwin-<16 hex>` over: every file of the context the builder would send (honouring
/// .dockerignore), sorted by path, each with its type, mode and contents; the Dockerfile;
/// build args; target; platform.
pub fn content_tag(inputs: &BuildInputs<'_>) -> Result<ContentTag, TagError> {
    let ignore = DockerIgnore::for_build(&inputs.context, &inputs.dockerfile)
        .map_err(TagError::DockerIgnore)?;
    let mut files = Vec::new();
    walk(&inputs.context, "", &ignore, &mut files)?;
    files.sort();
    let mut cache = HashCache::load(&inputs.context);
    let mut h = blake3::Hasher::new();
    h.update(SCHEME);
    for rel in &files {
        hash_entry(&mut h, &inputs.context, rel, &mut cache)?;
    }
    h.update(b"\0dockerfile\0");
    field(&mut h, "content", &cache.file_hash(&inputs.dockerfile)?);
    cache.save();
    for (k, v) in &inputs.image.build_args {
        field(&mut h, "arg", &format!("{k}={v}"));
    }
    field(
        &mut h,
        "target",
        inputs.image.target.as_deref().unwrap_or(""),
    );
    field(&mut h, "platform", inputs.platform.unwrap_or(""));
    Ok(ContentTag::from_hash(h.finalize().to_hex().as_str()))
}

fn field(h: &mut blake3::Hasher, name: &str, value: &str) {
    h.update(b"\0");
    h.update(name.as_bytes());
    h.update(b"\0");
    h.update(&(value.len() as u64).to_le_bytes());
    h.update(value.as_bytes());
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TagError + '_ {
    move |source| TagError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn walk(
    root: &Path,
    rel: &str,
    ignore: &DockerIgnore,
    out: &mut Vec<String>,
) -> Result<(), TagError> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let rd = std::fs::read_dir(&dir).map_err(io_err(&dir))?;
    for entry in rd {
        let entry = entry.map_err(io_err(&dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let child = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let ft = entry.file_type().map_err(io_err(&entry.path()))?;
        let excluded = ignore.excluded(&child);
        if ft.is_dir() {
            if excluded && !ignore.has_negations() {
                continue;
            }
            if !excluded {
                out.push(child.clone());
            }
            walk(root, &child, ignore, out)?;
        } else if !excluded {
            out.push(child);
        }
    }
    Ok(())
}

fn hash_entry(
    h: &mut blake3::Hasher,
    root: &Path,
    rel: &str,
    cache: &mut HashCache,
) -> Result<(), TagError> {
    let path = root.join(rel);
    let meta = std::fs::symlink_metadata(&path).map_err(io_err(&path))?;
    field(h, "path", rel);
    field(h, "mode", &mode_string(&meta));
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(&path).map_err(io_err(&path))?;
        field(h, "link", &target.to_string_lossy());
    } else if meta.is_file() {
        field(h, "content", &cache.file_hash(&path)?);
    }
    Ok(())
}

#[cfg(unix)]
fn mode_string(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::PermissionsExt;
    let kind = if meta.file_type().is_symlink() {
        'l'
    } else if meta.is_dir() {
        'd'
    } else {
        'f'
    };
    format!("{kind}{:o}", meta.permissions().mode() & 0o7777)
}

#[cfg(not(unix))]
fn mode_string(meta: &std::fs::Metadata) -> String {
    let kind = if meta.is_dir() { 'd' } else { 'f' };
    format!(
        "{kind}{}",
        if meta.permissions().readonly() {
            "r"
        } else {
            "w"
        }
    )
}

/// blake3 of a file's length and contents, as hex.
fn hash_file(path: &Path) -> Result<String, TagError> {
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let len = f.metadata().map_err(io_err(path))?.len();
    let mut h = blake3::Hasher::new();
    h.update(&len.to_le_bytes());
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().to_hex().to_string())
}

pub use crate::state::state_dir;

/// A tag ktwin wrote: `ktwin-` and 16 hex digits of the build inputs' hash.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct ContentTag(String);

impl ContentTag {
    const PREFIX: &'static str = "ktwin-";

    /// From the hash of the build inputs (its first 16 hex digits are the tag).
    pub fn from_hash(hex: &str) -> ContentTag {
        ContentTag(format!("{}{}", Self::PREFIX, &hex[..16.min(hex.len())]))
    }
    /// A tag, if it is one ktwin wrote.
    pub fn parse(tag: &str) -> Option<ContentTag> {
        Self::is(tag).then(|| ContentTag(tag.to_string()))
    }
    /// Is `tag` one ktwin wrote?
    pub fn is(tag: &str) -> bool {
        tag.strip_prefix(Self::PREFIX)
            .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ContentTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Per-file hashes of one build context, keyed by path and trusted only while the file's
/// length, mtime, ctime and inode are unchanged — so an unchanged 800 MB context is a few
/// `stat` calls, not a read. Like git's index, a file modified less than two seconds before
/// it was hashed is never trusted (timestamps are coarse), and any doubt means re-hashing.
struct HashCache {
    path: PathBuf,
    old: std::collections::BTreeMap<String, CacheEntry>,
    new: std::collections::BTreeMap<String, CacheEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct CacheEntry {
    stat: [i64; 6],
    hashed_at: i64,
    hash: String,
}

#[cfg(unix)]
fn stat_key(meta: &std::fs::Metadata) -> Option<([i64; 6], i64)> {
    use std::os::unix::fs::MetadataExt;
    Some((
        [
            meta.len() as i64,
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec(),
            meta.ino() as i64,
        ],
        meta.mtime(),
    ))
}

#[cfg(not(unix))]
fn stat_key(_meta: &std::fs::Metadata) -> Option<([i64; 6], i64)> {
    None
}

impl HashCache {
    fn load(context: &Path) -> HashCache {
        let abs = std::fs::canonicalize(context).unwrap_or_else(|_| context.to_path_buf());
        let key = blake3::hash(abs.to_string_lossy().as_bytes()).to_hex();
        let path = state_dir()
            .join("hashes")
            .join(format!("{}.json", &key[..16]));
        let old = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        HashCache {
            path,
            old,
            new: Default::default(),
        }
    }

    fn file_hash(&mut self, path: &Path) -> Result<String, TagError> {
        let meta = std::fs::metadata(path).map_err(io_err(path))?;
        let name = path.to_string_lossy().into_owned();
        let Some((stat, mtime)) = stat_key(&meta) else {
            return hash_file(path);
        };
        if let Some(e) = self.old.get(&name) {
            if e.stat == stat && mtime + 2 <= e.hashed_at {
                self.new.insert(name, e.clone());
                return Ok(e.hash.clone());
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let hash = hash_file(path)?;
        self.new.insert(
            name,
            CacheEntry {
                stat,
                hashed_at: now,
                hash: hash.clone(),
            },
        );
        Ok(hash)
    }

    /// Best effort: a cache that cannot be written only costs time next run.
    fn save(self) {
        let path = self.path;
        if self.new == self.old {
            return;
        }
        if let Ok(bytes) = serde_json::to_vec(&self.new) {
            let _ = crate::state::write_atomic(&path, &bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn image() -> Image {
        Image {
            image: "ghcr.io/acme/a".into(),
            context: "ctx".into(),
            dockerfile: "Dockerfile".into(),
            build_args: BTreeMap::new(),
            target: None,
            sync: vec![],
        }
    }

    fn tag(dir: &Path, img: &Image) -> String {
        content_tag(&BuildInputs::new(dir, img))
            .unwrap()
            .to_string()
    }

    #[test]
    fn cached_hashes_are_dropped_when_a_file_changes_behind_an_old_mtime() {
        let d = tempfile::tempdir().unwrap();
        let ctx = d.path().join("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("Dockerfile"), "FROM scratch\n").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        let set_old = |p: &Path| {
            std::fs::File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(old)
                .unwrap()
        };
        std::fs::write(ctx.join("big"), "aaaa").unwrap();
        set_old(&ctx.join("big"));
        let img = image();
        let t1 = tag(d.path(), &img);
        assert_eq!(t1, tag(d.path(), &img), "second run answers from the cache");
        // Same length, same (old) mtime: only ctime tells, and it must.
        std::fs::write(ctx.join("big"), "bbbb").unwrap();
        set_old(&ctx.join("big"));
        assert_ne!(t1, tag(d.path(), &img));
    }

    #[test]
    fn changes_with_inputs_and_honours_dockerignore() {
        let d = tempfile::tempdir().unwrap();
        let ctx = d.path().join("ctx");
        std::fs::create_dir_all(ctx.join("src")).unwrap();
        std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY src /src\n").unwrap();
        std::fs::write(ctx.join("src/app"), "v1").unwrap();
        std::fs::write(ctx.join(".dockerignore"), "*.log\n").unwrap();
        let mut img = image();
        let t1 = tag(d.path(), &img);
        assert!(t1.starts_with("ktwin-") && t1.len() == 22, "{t1}");
        assert_eq!(t1, tag(d.path(), &img), "deterministic");

        std::fs::write(ctx.join("debug.log"), "noise").unwrap();
        assert_eq!(t1, tag(d.path(), &img), "ignored file does not count");

        std::fs::write(ctx.join("src/app"), "v2").unwrap();
        let t2 = tag(d.path(), &img);
        assert_ne!(t1, t2, "content counts");

        img.build_args.insert("A".into(), "1".into());
        let t3 = tag(d.path(), &img);
        assert_ne!(t2, t3, "build args count");
        img.target = Some("prod".into());
        assert_ne!(t3, tag(d.path(), &img), "target counts");
    }

    #[cfg(unix)]
    #[test]
    fn mode_counts() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let ctx = d.path().join("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(ctx.join("run.sh"), "echo").unwrap();
        let img = image();
        let t1 = tag(d.path(), &img);
        std::fs::set_permissions(ctx.join("run.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        assert_ne!(t1, tag(d.path(), &img));
    }
}
