//! Content tags: a hash of everything that goes into a build, so an unchanged image is never
//! rebuilt or pushed, and `render` shows the exact tag `build` will push.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::dockerignore::DockerIgnore;
use crate::model::Image;

/// Bump when the hashed inputs change meaning, so old tags are never reused by mistake.
const SCHEME: &[u8] = b"ktwin-content-tag-v1\n";

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
pub fn content_tag(inputs: &BuildInputs<'_>) -> Result<String, TagError> {
    let ignore = DockerIgnore::for_build(&inputs.context, &inputs.dockerfile)
        .map_err(TagError::DockerIgnore)?;
    let mut files = Vec::new();
    walk(&inputs.context, "", &ignore, &mut files)?;
    files.sort();
    let mut h = blake3::Hasher::new();
    h.update(SCHEME);
    for rel in &files {
        hash_entry(&mut h, &inputs.context, rel)?;
    }
    h.update(b"\0dockerfile\0");
    hash_file(&mut h, &inputs.dockerfile)?;
    for (k, v) in &inputs.image.build_args {
        field(&mut h, "arg", &format!("{k}={v}"));
    }
    field(
        &mut h,
        "target",
        inputs.image.target.as_deref().unwrap_or(""),
    );
    field(&mut h, "platform", inputs.platform.unwrap_or(""));
    let hex = h.finalize().to_hex();
    Ok(format!("ktwin-{}", &hex[..16]))
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

fn hash_entry(h: &mut blake3::Hasher, root: &Path, rel: &str) -> Result<(), TagError> {
    let path = root.join(rel);
    let meta = std::fs::symlink_metadata(&path).map_err(io_err(&path))?;
    field(h, "path", rel);
    field(h, "mode", &mode_string(&meta));
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(&path).map_err(io_err(&path))?;
        field(h, "link", &target.to_string_lossy());
    } else if meta.is_file() {
        hash_file(h, &path)?;
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

fn hash_file(h: &mut blake3::Hasher, path: &Path) -> Result<(), TagError> {
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let len = f.metadata().map_err(io_err(path))?.len();
    h.update(&len.to_le_bytes());
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(())
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
        }
    }

    fn tag(dir: &Path, img: &Image) -> String {
        content_tag(&BuildInputs::new(dir, img)).unwrap()
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
