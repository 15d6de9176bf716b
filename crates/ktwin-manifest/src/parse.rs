//! YAML streams → documents, each with its file and line. Budgets bound alias expansion and
//! size, so a YAML bomb is an error rather than an out-of-memory kill.

use std::path::Path;

use serde_json::Value;
use serde_saphyr::Spanned;

use crate::doc::{Document, Source};
use crate::error::RenderError;

/// Parse a multi-document stream. Empty documents are skipped; `kind: List` is flattened.
/// Large streams are split at document markers and parsed on all cores (documents are
/// independent in YAML: anchors do not cross them); any error re-parses serially so its
/// position is exact.
pub fn parse_stream(file: &Path, text: &str) -> Result<Vec<Document>, RenderError> {
    let parts = split_parts(text, parallelism());
    let parsed: Option<Vec<Vec<(usize, Value)>>> = if parts.len() > 1 {
        std::thread::scope(|s| {
            let handles: Vec<_> = parts
                .iter()
                .map(|(start_line, part)| s.spawn(move || parse_part(part, *start_line).ok()))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().ok().flatten())
                .collect()
        })
    } else {
        None
    };
    let docs = match parsed {
        Some(p) => p.into_iter().flatten().collect(),
        None => parse_part(text, 1)
            .map_err(|e| RenderError::Yaml(ktwin_config::load::serde_diag(file, text, &e)))?,
    };
    let mut out = Vec::with_capacity(docs.len());
    for (line, value) in docs {
        push_doc(file, line, value, &mut out)?;
    }
    Ok(out)
}

/// Below this size one thread is faster than starting more.
const PARALLEL_MIN_BYTES: usize = 256 * 1024;

fn parallelism() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
}

fn parse_part(text: &str, start_line: usize) -> Result<Vec<(usize, Value)>, serde_saphyr::Error> {
    let docs: Vec<Spanned<Value>> =
        serde_saphyr::from_multiple_with_options(text, ktwin_config::load::yaml_options())?;
    Ok(docs
        .into_iter()
        .map(|d| (d.referenced.line() as usize + start_line - 1, d.value))
        .collect())
}

/// Split at lines that start a document (`---` at column 0) into about `n` parts of similar
/// size, each with the 1-based line it starts on.
fn split_parts(text: &str, n: usize) -> Vec<(usize, &str)> {
    if n < 2 || text.len() < PARALLEL_MIN_BYTES {
        return vec![(1, text)];
    }
    let mut cuts = vec![0usize];
    let target = text.len() / n;
    let mut next = target;
    for (i, b) in text.bytes().enumerate() {
        if b != b'\n' {
            continue;
        }
        let line_start = i + 1;
        if line_start >= next {
            let rest = &text.as_bytes()[line_start..];
            let is_marker = rest.starts_with(b"---")
                && matches!(rest.get(3), None | Some(b'\n' | b'\r' | b' ' | b'\t'));
            if is_marker {
                cuts.push(line_start);
                next = line_start + target;
                if cuts.len() == n {
                    break;
                }
            }
        }
    }
    cuts.push(text.len());
    let mut line = 1;
    let mut prev = 0;
    let mut parts = Vec::new();
    for w in cuts.windows(2) {
        line += text[prev..w[0]].bytes().filter(|b| *b == b'\n').count();
        prev = w[0];
        parts.push((line, &text[w[0]..w[1]]));
    }
    parts
}

fn push_doc(
    file: &Path,
    line: usize,
    value: Value,
    out: &mut Vec<Document>,
) -> Result<(), RenderError> {
    let source = Source {
        file: file.to_path_buf(),
        line,
    };
    match value {
        Value::Null => Ok(()),
        Value::Object(ref map) => {
            let kind = map.get("kind").and_then(Value::as_str);
            let api = map.get("apiVersion").and_then(Value::as_str);
            let (Some(kind), Some(_)) = (kind, api) else {
                let missing = match (api, kind) {
                    (None, None) => "`apiVersion` and `kind`",
                    (None, _) => "`apiVersion`",
                    _ => "`kind`",
                };
                return Err(RenderError::NotAnObject {
                    at: source,
                    why: format!("the document has no {missing}"),
                });
            };
            if kind == "List" || (kind.ends_with("List") && map.contains_key("items")) {
                let items = map
                    .get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for item in items {
                    push_doc(file, line, item, out)?;
                }
                return Ok(());
            }
            if map
                .get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str)
                .is_none()
                && map
                    .get("metadata")
                    .and_then(|m| m.get("generateName"))
                    .is_none()
            {
                return Err(RenderError::NotAnObject {
                    at: source,
                    why: format!("the {kind} has no `metadata.name`"),
                });
            }
            out.push(Document { value, source });
            Ok(())
        }
        other => Err(RenderError::NotAnObject {
            at: source,
            why: format!("a document must be a mapping, found {}", type_name(&other)),
        }),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Vec<Document>, RenderError> {
        parse_stream(Path::new("m.yaml"), text)
    }

    #[test]
    fn lines_and_empty_docs() {
        let docs = p("---\n# nothing\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b}\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].source.line, 4);
        assert_eq!(docs[1].source.line, 10);
        assert!(p("").unwrap().is_empty());
    }

    #[test]
    fn parallel_split_keeps_lines_and_order() {
        let mut text = String::new();
        for i in 0..4000 {
            text.push_str(&format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{i}\ndata:\n  k: |\n    ---\n    not a marker\n"));
        }
        assert!(text.len() > PARALLEL_MIN_BYTES);
        assert!(split_parts(&text, 2).len() == 2);
        let docs = p(&text).unwrap();
        assert_eq!(docs.len(), 4000);
        for (i, d) in docs.iter().enumerate() {
            assert_eq!(d.name(), format!("c{i}"));
            assert_eq!(d.source.line, i * 9 + 2);
        }
        // An error in any part is reported at its exact position in the whole stream.
        let bad = format!("{text}---\napiVersion: v1\nkind: [\n");
        let RenderError::Yaml(d) = p(&bad).unwrap_err() else {
            panic!()
        };
        assert!(d.pos.unwrap().line > 36000, "{:?}", d.pos);
    }

    #[test]
    fn list_is_flattened() {
        let docs = p("apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n").unwrap();
        assert_eq!(
            docs.iter().map(|d| d.name()).collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[test]
    fn missing_kind_is_an_error() {
        let e = p("apiVersion: v1\nmetadata: {name: a}\n").unwrap_err();
        assert!(e.to_string().contains("no `kind`"), "{e}");
    }

    #[test]
    fn invalid_yaml_has_position() {
        let e = p("apiVersion: v1\nkind: [\n").unwrap_err();
        let RenderError::Yaml(d) = e else { panic!() };
        assert!(d.pos.is_some());
    }

    #[test]
    fn yaml_bomb_hits_the_budget() {
        let mut bomb = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        let mut prev = "a".to_string();
        for i in 0..9 {
            let name = format!("l{i}");
            let refs = vec![format!("*{prev}"); 9].join(",");
            bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
            prev = name;
        }
        let text = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\ndata:\n  {}",
            bomb.replace('\n', "\n  ")
        );
        let e = p(&text).unwrap_err();
        assert!(matches!(e, RenderError::Yaml(_)), "{e}");
    }
}
