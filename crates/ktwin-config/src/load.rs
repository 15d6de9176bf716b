//! Find, read and parse `ktwin.yaml`.

use std::path::{Path, PathBuf};

use crate::error::{ConfigError, SourceDiag};
use crate::model::Project;
use crate::pos::{Pos, PosIndex};

pub const FILE_NAME: &str = "ktwin.yaml";

/// Caps that keep a hostile or accidental YAML bomb from exhausting memory.
pub fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_events = 5_000_000;
    budget.max_aliases = 10_000;
    budget.max_anchors = 10_000;
    budget.max_depth = 200;
    budget.max_nodes = 5_000_000;
    budget.max_total_scalar_bytes = 512 * 1024 * 1024;
    budget.max_documents = 1_000_000;
    budget.max_recorded_anchor_events = 100_000;
    let mut opts = serde_saphyr::Options::default();
    opts.budget = Some(budget);
    opts.legacy_octal_numbers = true;
    opts.with_snippet = false;
    opts.alias_limits.max_total_replayed_events = 200_000;
    opts.alias_limits.max_alias_expansions_per_anchor = 10_000;
    opts
}

/// A loaded and validated project file.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub project: Project,
    /// Absolute path of ktwin.yaml.
    pub path: PathBuf,
    /// The directory relative paths in the file resolve against.
    pub dir: PathBuf,
    /// The project root every input must resolve inside (see [`crate::inputs`]).
    pub root: PathBuf,
    pub text: String,
    pub pos: PosIndex,
}

impl Loaded {
    pub fn resolve(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
    /// The project's inputs, confined to its root.
    pub fn inputs(&self) -> crate::inputs::Inputs {
        crate::inputs::Inputs::confined(&self.root)
    }
}

/// Walk up from `start` to the first directory holding ktwin.yaml.
pub fn find(start: &Path) -> Result<PathBuf, ConfigError> {
    let start = absolute(start);
    let mut dir = Some(start.as_path());
    while let Some(d) = dir {
        let candidate = d.join(FILE_NAME);
        if candidate.is_file() {
            return Ok(candidate);
        }
        dir = d.parent();
    }
    Err(ConfigError::NotFound { searched: start })
}

pub fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|c| c.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// Read and parse the project file at `path`, and find its project root (not validated:
/// [`crate::load`] is read, parse and validate).
pub fn read(path: &Path) -> Result<Loaded, ConfigError> {
    let path = absolute(path);
    // Bounded like every input: a regular file within the size limit.
    let text = crate::inputs::Inputs::anywhere().read_text(&path)?;
    let mut loaded = parse(&path, text)?;
    loaded.root = crate::inputs::project_root(&loaded.dir);
    Ok(loaded)
}

/// Parse without the checks that touch the file system (used by tests and `schema`).
pub fn parse(path: &Path, text: String) -> Result<Loaded, ConfigError> {
    let pos = PosIndex::build(&text);
    let mut project: Project = match serde_saphyr::from_str_with_options(&text, yaml_options()) {
        Ok(p) => p,
        Err(e) => return Err(ConfigError::Invalid(vec![serde_diag(path, &text, &e)])),
    };
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    project.source_dir = Some(dir.clone());
    Ok(Loaded {
        project,
        path: path.to_path_buf(),
        root: dir.clone(),
        dir,
        text,
        pos,
    })
}

/// Turn a serde-saphyr error into a diagnostic with position and, for unknown fields, the
/// closest valid name.
pub fn serde_diag(path: &Path, text: &str, e: &serde_saphyr::Error) -> SourceDiag {
    let pos = e.location().and_then(|l| {
        let line = l.line() as usize;
        let col = l.column() as usize;
        if line == 0 {
            return None;
        }
        let offset = offset_of(text, line, col);
        let len = token_len(text, offset);
        Some(Pos {
            line,
            col,
            offset,
            len,
        })
    });
    let raw = e.without_snippet().to_string();
    let message = strip_location_suffix(&raw);
    let mut diag = SourceDiag::new(path, pos, message.clone());
    if let Some(help) = unknown_field_help(&message) {
        diag = diag.with_help(help);
    }
    diag
}

/// serde-saphyr appends " at line L, column C"; the diagnostic carries the position itself.
fn strip_location_suffix(msg: &str) -> String {
    let msg = msg.trim();
    if let Some(i) = msg.find(" at line ") {
        return msg[..i].trim_end_matches(',').to_string();
    }
    msg.to_string()
}

/// Byte offset of 1-based `line` and `col` in `text`.
pub fn offset_of(text: &str, line: usize, col: usize) -> usize {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let chars: usize = l
                .char_indices()
                .nth(col.saturating_sub(1))
                .map(|(b, _)| b)
                .unwrap_or(l.len());
            return offset + chars;
        }
        offset += l.len();
    }
    text.len()
}

fn token_len(text: &str, offset: usize) -> usize {
    text[offset.min(text.len())..]
        .find([':', '\n', ' '])
        .unwrap_or(1)
        .max(1)
}

/// "unknown field `clustr`, expected one of `a`, `b`" → "did you mean `cluster`?".
pub fn unknown_field_help(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let end = rest.find('`')?;
    let field = &rest[..end];
    let tail = rest[end + 1..].trim_start_matches(',').trim();
    let list = tail
        .strip_prefix("expected one of ")
        .or_else(|| tail.strip_prefix("expected "))
        .unwrap_or("");
    let expected: Vec<&str> = list
        .split(", ")
        .flat_map(|s| s.split(" or "))
        .map(|s| s.trim().trim_matches('`'))
        .filter(|s| !s.is_empty() && *s != "nothing")
        .collect();
    if expected.is_empty() {
        return Some(format!("remove `{field}`"));
    }
    match closest(field, &expected) {
        Some(best) => Some(format!("did you mean `{best}`?")),
        None => Some(format!("valid fields here: {}", expected.join(", "))),
    }
}

/// The closest candidate by edit distance, if it is close enough to be a plausible typo.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(&lower, &c.to_ascii_lowercase()),
                *c,
            )
        })
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 2).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_uses_expected_list() {
        let m = "unknown field `clustr`, expected one of `apiVersion`, `kind`, `name`, `cluster`";
        assert_eq!(
            unknown_field_help(m).as_deref(),
            Some("did you mean `cluster`?")
        );
        let far = "unknown field `zzzzzzzz`, expected `name` or `cluster`";
        assert!(unknown_field_help(far)
            .unwrap()
            .starts_with("valid fields here"));
    }

    #[test]
    fn unknown_field_error_has_line_and_column() {
        let text = "apiVersion: ktwin.dev/v1alpha1\nkind: Project\nname: a\nclustr: {}\n";
        let err = parse(Path::new("/p/ktwin.yaml"), text.to_string()).unwrap_err();
        let ConfigError::Invalid(d) = err else {
            panic!("expected Invalid")
        };
        assert_eq!(d[0].pos.map(|p| p.line), Some(4));
        assert_eq!(d[0].help.as_deref(), Some("did you mean `cluster`?"));
        assert!(
            d[0].message.starts_with("unknown field `clustr`"),
            "{}",
            d[0].message
        );
    }

    #[test]
    fn defaults_apply() {
        let text = "apiVersion: ktwin.dev/v1alpha1\nkind: Project\nname: a\n";
        let l = parse(Path::new("/p/ktwin.yaml"), text.to_string()).unwrap();
        assert_eq!(l.project.registry.host_port, 5001);
        assert_eq!(l.project.cluster.servers, 1);
        assert_eq!(l.project.cluster.provider, crate::model::Provider::K3d);
        assert_eq!(l.project.local_context(), "k3d-a");
    }
}
