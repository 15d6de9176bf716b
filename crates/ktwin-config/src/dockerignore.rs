//! `.dockerignore` matching with the builder's semantics: patterns are cleaned and anchored at
//! the context root, `*` and `?` stop at `/`, `**` spans directories, a pattern that matches a
//! parent directory excludes everything under it, `!` re-includes, and the last match wins.

use std::path::Path;

use globset::{GlobBuilder, GlobMatcher};

#[derive(Debug)]
struct Rule {
    glob: GlobMatcher,
    negate: bool,
}

#[derive(Debug, Default)]
pub struct DockerIgnore {
    rules: Vec<Rule>,
}

impl DockerIgnore {
    /// The ignore file for a build: `<Dockerfile>.dockerignore` beside the Dockerfile wins over
    /// `<context>/.dockerignore`, as with BuildKit.
    pub fn for_build(context: &Path, dockerfile: &Path) -> Result<DockerIgnore, String> {
        let specific = {
            let mut s = dockerfile.as_os_str().to_owned();
            s.push(".dockerignore");
            std::path::PathBuf::from(s)
        };
        for candidate in [specific, context.join(".dockerignore")] {
            if candidate.is_file() {
                let text = std::fs::read_to_string(&candidate)
                    .map_err(|e| format!("cannot read {}: {e}", candidate.display()))?;
                return DockerIgnore::parse(&text)
                    .map_err(|e| format!("{}: {e}", candidate.display()));
            }
        }
        Ok(DockerIgnore::default())
    }

    pub fn parse(text: &str) -> Result<DockerIgnore, String> {
        let mut rules = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (negate, pat) = match line.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, line),
            };
            let cleaned = clean(pat);
            if cleaned.is_empty() {
                continue;
            }
            let glob = GlobBuilder::new(&cleaned)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| format!("line {}: invalid pattern `{line}`: {e}", i + 1))?
                .compile_matcher();
            rules.push(Rule { glob, negate });
        }
        Ok(DockerIgnore { rules })
    }

    pub fn has_negations(&self) -> bool {
        self.rules.iter().any(|r| r.negate)
    }

    /// Whether `rel` (slash-separated, relative to the context) is excluded from the build.
    pub fn excluded(&self, rel: &str) -> bool {
        let mut excluded = false;
        for rule in &self.rules {
            if matches_or_parent(&rule.glob, rel) {
                excluded = !rule.negate;
            }
        }
        excluded
    }
}

fn matches_or_parent(glob: &GlobMatcher, rel: &str) -> bool {
    if glob.is_match(rel) {
        return true;
    }
    let mut end = rel.len();
    while let Some(i) = rel[..end].rfind('/') {
        if glob.is_match(&rel[..i]) {
            return true;
        }
        end = i;
    }
    false
}

/// Like Go's `filepath.Clean`, then without a leading `/`.
fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_semantics() {
        let di =
            DockerIgnore::parse("# c\n*.md\n!README.md\nbuild\n**/*.tmp\n/target/\n./docs/*.png\n")
                .unwrap();
        assert!(di.excluded("notes.md"));
        assert!(!di.excluded("README.md"));
        assert!(
            !di.excluded("sub/notes.md"),
            "`*` does not cross directories"
        );
        assert!(
            di.excluded("build/out/x.o"),
            "a matched parent excludes children"
        );
        assert!(di.excluded("a/b/c.tmp"));
        assert!(di.excluded("c.tmp"));
        assert!(di.excluded("target/debug/ktwin"));
        assert!(di.excluded("docs/a.png"));
        assert!(!di.excluded("src/main.rs"));
    }
}
