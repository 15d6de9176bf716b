//! `KEY=value` env files for Secrets. Values are returned to the caller and never formatted
//! into an error.

use indexmap::IndexMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct EnvFileError {
    pub line: usize,
    pub message: String,
}

/// Parse `KEY=value` lines; `#` comments, blank lines and a leading `export ` are allowed;
/// a value wrapped in matching single or double quotes is unwrapped.
pub fn parse(text: &str) -> Result<IndexMap<String, String>, EnvFileError> {
    let mut out = IndexMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            return Err(EnvFileError {
                line: i + 1,
                message: "expected KEY=value".into(),
            });
        };
        let k = k.trim();
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
        {
            return Err(EnvFileError {
                line: i + 1,
                message: format!(
                    "`{k}` is not a valid Secret key (letters, digits, '-', '_', '.')"
                ),
            });
        }
        let v = v.trim();
        let v = ['"', '\'']
            .iter()
            .find_map(|q| v.strip_prefix(*q).and_then(|s| s.strip_suffix(*q)))
            .unwrap_or(v);
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(EnvFileError {
                line: i + 1,
                message: format!("`{k}` is set twice"),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_never_echoes_values() {
        let m = parse("# c\nA=1\nexport B=\"two words\"\n\nC='x=y'\n").unwrap();
        assert_eq!(m["A"], "1");
        assert_eq!(m["B"], "two words");
        assert_eq!(m["C"], "x=y");
        let e = parse("A=1\nno-equals-sekret\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(!e.to_string().contains("sekret"));
    }
}
