//! `KEY=value` env files for Secrets. Values are returned to the caller and never formatted
//! into an error: an error names the line and column and what was expected, never any text of
//! the file (after a stray `=` or `:` a "key" may well be a secret value).

use indexmap::IndexMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {col}: {message}")]
pub struct EnvFileError {
    pub line: usize,
    pub col: usize,
    /// Fixed text; holds nothing read from the file.
    pub message: String,
}

/// Parse `KEY=value` lines; `#` comments, blank lines and a leading `export ` are allowed;
/// a value wrapped in matching single or double quotes is unwrapped; a UTF-8 byte order mark
/// is skipped.
pub fn parse(text: &str) -> Result<IndexMap<String, String>, EnvFileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = IndexMap::new();
    let mut first_line: IndexMap<String, usize> = IndexMap::new();
    for (i, raw) in text.lines().enumerate() {
        let err = |col: usize, message: &str| EnvFileError {
            line: i + 1,
            col,
            message: message.into(),
        };
        let indent = raw.len() - raw.trim_start().len();
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (line, indent) = match line.strip_prefix("export ") {
            Some(rest) => (
                rest.trim_start(),
                indent + (line.len() - rest.trim_start().len()),
            ),
            None => (line, indent),
        };
        let Some((k, v)) = line.split_once('=') else {
            return Err(err(
                indent + 1,
                "expected KEY=value (a value that spans lines, like a PEM key or JSON, must be on one line: encode it, e.g. as base64)",
            ));
        };
        let k = k.trim();
        if let Some(bad) = k
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || "-._".contains(*c)))
        {
            return Err(err(
                indent + bad.0 + 1,
                "a Secret key may hold only letters, digits, '-', '_' and '.'",
            ));
        }
        if k.is_empty() {
            return Err(err(indent + 1, "the key before `=` is empty"));
        }
        let v = v.trim();
        let v = ['"', '\'']
            .iter()
            .find_map(|q| v.strip_prefix(*q).and_then(|s| s.strip_suffix(*q)))
            .unwrap_or(v);
        if let Some(first) = first_line.get(k) {
            return Err(err(
                indent + 1,
                &format!("this key is already set on line {first}"),
            ));
        }
        first_line.insert(k.to_string(), i + 1);
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_never_echoes_values() {
        let m = parse("\u{feff}# c\nA=1\nexport B=\"two words\"\n\nC='x=y'\n").unwrap();
        assert_eq!(m["A"], "1");
        assert_eq!(m["B"], "two words");
        assert_eq!(m["C"], "x=y");
        for (text, line, col) in [
            ("A=1\nno-equals-sekret\n", 2, 1),
            ("TOKEN: sekret==\n", 1, 6),
            ("A=1\n-----BEGIN sekret KEY-----\n", 2, 1),
            ("A=sekret1\nA=sekret2\n", 2, 1),
            ("  export sek ret=1\n", 1, 13),
            ("=sekret\n", 1, 1),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!((e.line, e.col), (line, col), "{text:?}: {e}");
            assert!(!e.to_string().contains("sek"), "{text:?}: {e}");
        }
    }
}
