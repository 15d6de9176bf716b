//! Errors that point into a source file.

use std::path::PathBuf;

use crate::pos::Pos;

/// One problem at one place in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDiag {
    pub file: PathBuf,
    pub pos: Option<Pos>,
    pub message: String,
    pub help: Option<String>,
}

impl SourceDiag {
    /// A diagnostic; a huge quoted value in `message` is clipped ([`crate::pos::clip_quoted`]).
    pub fn new(file: impl Into<PathBuf>, pos: Option<Pos>, message: impl Into<String>) -> Self {
        SourceDiag {
            file: file.into(),
            pos,
            message: crate::pos::clip_quoted(&message.into()),
            help: None,
        }
    }
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(crate::pos::clip_quoted(&help.into()));
        self
    }
    /// `file:line:col` (or just the file when the position is unknown).
    pub fn location(&self) -> String {
        match self.pos {
            Some(p) => format!("{}:{}:{}", self.file.display(), p.line, p.col),
            None => self.file.display().to_string(),
        }
    }
}

impl std::fmt::Display for SourceDiag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location(), self.message)?;
        if let Some(h) = &self.help {
            write!(f, " (help: {h})")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no ktwin.yaml in {searched} or any parent directory")]
    NotFound { searched: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Input(#[from] crate::inputs::InputError),
    /// One or more problems in the file, each with its position.
    #[error("{} in {}", plural(.0.len(), "error"), .0.first().map(|d| d.file.display().to_string()).unwrap_or_default())]
    Invalid(Vec<SourceDiag>),
}

pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
