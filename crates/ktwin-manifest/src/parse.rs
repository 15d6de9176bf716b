//! YAML streams → documents, each with its file and line. Budgets bound alias expansion and
//! size, so a YAML bomb is an error rather than an out-of-memory kill.

use std::path::Path;

use serde_json::Value;
use serde_saphyr::Spanned;

use crate::doc::{Document, Source};
use crate::error::RenderError;

/// Parse a multi-document stream. Empty documents are skipped; `kind: List` is flattened.
pub fn parse_stream(file: &Path, text: &str) -> Result<Vec<Document>, RenderError> {
    let docs: Vec<Spanned<Value>> =
        serde_saphyr::from_multiple_with_options(text, ktwin_config::load::yaml_options())
            .map_err(|e| RenderError::Yaml(ktwin_config::load::serde_diag(file, text, &e)))?;
    let mut out = Vec::with_capacity(docs.len());
    for d in docs {
        let line = d.referenced.line() as usize;
        push_doc(file, line, d.value, &mut out)?;
    }
    Ok(out)
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
