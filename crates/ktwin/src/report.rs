//! Turn library errors into miette reports that name the file, line and column, and into
//! exit codes: 2 for usage and config/input errors, 1 for failed operations.

use std::path::Path;

use ktwin_config::{ConfigError, SourceDiag};
use ktwin_manifest::RenderError;
use miette::{Diagnostic, NamedSource, SourceSpan};

use crate::printer;

/// A command that did not succeed, with the exit code it maps to.
#[derive(Debug)]
pub enum Failure {
    /// Bad usage or bad input (config, manifests): exit 2.
    Input(Vec<miette::Report>),
    /// An operation failed: exit 1.
    Operation(Vec<miette::Report>),
}

impl Failure {
    pub fn code(&self) -> u8 {
        match self {
            Failure::Input(_) => 2,
            Failure::Operation(_) => 1,
        }
    }
    pub fn print(&self) {
        let (Failure::Input(r) | Failure::Operation(r)) = self;
        for rep in r {
            printer::err(&format!("{rep:?}"));
        }
        if r.len() > 1 {
            printer::err(&format!("{} errors", r.len()));
        }
    }
    /// The first report's message (for a status that shows a failure instead of failing).
    pub fn message(&self) -> String {
        let (Failure::Input(r) | Failure::Operation(r)) = self;
        r.first().map(|r| r.to_string()).unwrap_or_default()
    }
    pub fn input(msg: impl Into<String>, help: Option<String>) -> Failure {
        Failure::Input(vec![plain(msg.into(), help)])
    }
}

#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{message}")]
struct Located {
    message: String,
    #[source_code]
    src: NamedSource<String>,
    #[label("{label}")]
    span: Option<SourceSpan>,
    label: String,
    #[help]
    help: Option<String>,
}

#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{message}")]
struct Plain {
    message: String,
    #[help]
    help: Option<String>,
}

pub fn plain(message: String, help: Option<String>) -> miette::Report {
    miette::Report::new(Plain { message, help })
}

/// A path as the user would type it: relative to the working directory when inside it.
pub fn shown(p: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    match cwd.as_deref().and_then(|c| p.strip_prefix(c).ok()) {
        Some(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
        _ => p.display().to_string(),
    }
}

/// Might quoting this file print a secret? A file that declares a Secret (its `data` and
/// `stringData` lines may sit next to the error) is never quoted.
fn holds_secrets(text: &str) -> bool {
    let quote = |c: char| c == '"' || c == '\'';
    text.match_indices("kind").any(|(i, _)| {
        let rest = text[i + 4..].trim_start_matches(quote).trim_start();
        let Some(rest) = rest.strip_prefix(':') else {
            return false;
        };
        let rest = rest.trim_start().trim_start_matches(quote);
        rest.strip_prefix("Secret")
            .is_some_and(|r| !r.starts_with(|c: char| c.is_alphanumeric()))
    })
}

/// A line longer than this is not quoted (a 50 MB scalar would be printed whole).
const MAX_QUOTED: usize = 400;

fn line_len_at(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    end - start
}

/// `file:line:col: message`, quoting nothing.
fn unquoted(d: &SourceDiag) -> miette::Report {
    let at = match d.pos {
        Some(p) => format!("{}:{}:{}", shown(&d.file), p.line, p.col),
        None => shown(&d.file),
    };
    plain(format!("{at}: {}", d.message), d.help.clone())
}

/// A report that quotes the offending line of the file (unless the file holds Secrets).
pub fn located(d: &SourceDiag) -> miette::Report {
    let text = std::fs::read_to_string(&d.file).unwrap_or_default();
    if holds_secrets(&text)
        || d.pos
            .is_some_and(|p| line_len_at(&text, p.offset) > MAX_QUOTED)
    {
        return unquoted(d);
    }
    let name = shown(&d.file);
    let (span, label) = match d.pos {
        Some(p) if p.offset <= text.len() => {
            let len = p
                .len
                .min(text.len().saturating_sub(p.offset))
                .max(if text.is_empty() { 0 } else { 1 });
            (
                Some(SourceSpan::new(p.offset.into(), len)),
                "here".to_string(),
            )
        }
        _ => (None, String::new()),
    };
    if span.is_none() {
        return plain(format!("{}: {}", name, d.message), d.help.clone());
    }
    miette::Report::new(Located {
        message: d.message.clone(),
        src: NamedSource::new(name, text),
        span,
        label,
        help: d.help.clone(),
    })
}

/// Point at the first line of a document.
fn at_line(file: &Path, line: usize, message: String, help: Option<String>) -> miette::Report {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let offset = ktwin_config::load::offset_of(&text, line, 1);
    let pos = ktwin_config::Pos {
        line,
        col: 1,
        offset,
        len: text[offset.min(text.len())..]
            .find('\n')
            .unwrap_or(1)
            .max(1),
    };
    let mut d = SourceDiag::new(file, Some(pos), message);
    d.help = help;
    located(&d)
}

pub fn config_failure(e: ConfigError) -> Failure {
    match e {
        ConfigError::Invalid(diags) => Failure::Input(diags.iter().map(located).collect()),
        ConfigError::NotFound { searched } => Failure::input(
            format!(
                "no ktwin.yaml in {} or any parent directory",
                shown(&searched)
            ),
            Some("run `ktwin init` to write one, or point at it with --file PATH or -C DIR".into()),
        ),
        other => Failure::input(other.to_string(), None),
    }
}

pub fn render_failure(e: RenderError) -> Failure {
    let help = e.help();
    match e {
        RenderError::Yaml(d) => Failure::Input(vec![located(&d)]),
        RenderError::NotAnObject { at, why } => {
            Failure::Input(vec![at_line(&at.file, at.line, why, help)])
        }
        RenderError::Duplicate { obj, first, second } => {
            let message = format!(
                "{obj} is defined twice: {}:{} and {}:{}",
                shown(&first.file),
                first.line,
                shown(&second.file),
                second.line
            );
            // A Secret's lines (or an env file's) are never quoted.
            let r = if obj.kind == "Secret" {
                plain(message, help)
            } else {
                at_line(&second.file, second.line, message, help)
            };
            Failure::Input(vec![r])
        }
        RenderError::EnvFile {
            file,
            line,
            col,
            message,
        } => Failure::Input(vec![plain(
            format!("{}:{line}:{col}: {message}", shown(&file)),
            Some("an env file holds one KEY=value per line (`#` starts a comment); its lines are never printed".into()),
        )]),
        e @ (RenderError::Kustomize { .. }
        | RenderError::NoKustomize { .. }
        | RenderError::Helm { .. }
        | RenderError::NoHelm { .. }) => {
            Failure::Operation(vec![plain(e.to_string(), help)])
        }
        e => Failure::Input(vec![plain(e.to_string(), help)]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_that_declare_secrets_are_recognised() {
        assert!(holds_secrets("apiVersion: v1\nkind: Secret\n"));
        assert!(holds_secrets("items:\n- kind: 'Secret'\n"));
        assert!(holds_secrets("{\"kind\": \"Secret\", \"data\": {}}"));
        assert!(!holds_secrets(
            "kind: SecretProviderClass\nkind: ConfigMap\n"
        ));
    }
}
