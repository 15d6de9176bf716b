//! Rendered documents as a YAML stream or a kubectl-style JSON List; Secret values redacted
//! unless the caller asks for them.

use serde_json::{json, Value};

use crate::change::Change;
use crate::doc::Document;

pub const REDACTED: &str = "<redacted>";

/// The annotation `kubectl apply` leaves on what it applied: on a Secret, a copy of its data.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Does the field at `segments` (from the object's root) of a `kind` object hold secret
/// material? A Secret's `data` and `stringData` values, its last-applied-configuration
/// annotation, and the whole object.
pub fn is_secret_field<'a>(kind: &str, segments: impl IntoIterator<Item = &'a str>) -> bool {
    if kind != "Secret" {
        return false;
    }
    let segs: Vec<&str> = segments.into_iter().collect();
    match segs.as_slice() {
        [] => true,
        ["data" | "stringData", ..] => true,
        ["metadata"] | ["metadata", "annotations"] => true,
        ["metadata", "annotations", a, ..] => *a == LAST_APPLIED,
        _ => false,
    }
}

/// A copy of the object with every Secret value replaced by `<redacted>`.
pub fn redact(v: &Value) -> Value {
    let mut v = v.clone();
    if v.get("kind").and_then(Value::as_str) == Some("Secret") {
        for field in ["data", "stringData"] {
            if let Some(m) = v.get_mut(field).and_then(Value::as_object_mut) {
                for val in m.values_mut() {
                    *val = json!(REDACTED);
                }
            }
        }
        if let Some(a) = v
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            if let Some(x) = a.get_mut(LAST_APPLIED) {
                *x = json!(REDACTED);
            }
        }
    }
    v
}

fn is_secret_value_path(c: &Change) -> bool {
    let segs: Vec<String> = c
        .path
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    is_secret_field(&c.object.kind, segs.iter().map(String::as_str))
}

/// Changes with Secret values hidden.
pub fn redact_changes(changes: &[Change], show_secrets: bool) -> Vec<Change> {
    changes
        .iter()
        .map(|c| {
            let mut c = c.clone();
            if !show_secrets && is_secret_value_path(&c) {
                c.before = c.before.map(|_| json!(REDACTED));
                c.after = c.after.map(|_| json!(REDACTED));
            }
            c
        })
        .collect()
}

fn values(docs: &[Document], show_secrets: bool) -> Vec<Value> {
    docs.iter()
        .map(|d| {
            if show_secrets {
                d.value.clone()
            } else {
                redact(&d.value)
            }
        })
        .collect()
}

/// A multi-document YAML stream, each document introduced by `---`.
pub fn to_yaml(docs: &[Document], show_secrets: bool) -> String {
    let mut out = String::new();
    for v in values(docs, show_secrets) {
        out.push_str("---\n");
        match serde_saphyr::to_string(&v) {
            Ok(s) => out.push_str(&s),
            Err(e) => out.push_str(&format!("# cannot serialise: {e}\n")),
        }
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// `{"apiVersion":"v1","kind":"List","items":[...]}`, with `changes` beside `items` on request.
pub fn to_json(docs: &[Document], changes: Option<&[Change]>, show_secrets: bool) -> String {
    let mut list = json!({"apiVersion": "v1", "kind": "List", "items": values(docs, show_secrets)});
    if let Some(ch) = changes {
        list["changes"] =
            serde_json::to_value(redact_changes(ch, show_secrets)).unwrap_or(Value::Null);
    }
    let mut s = serde_json::to_string_pretty(&list).unwrap_or_default();
    s.push('\n');
    s
}

/// A compact one-line form of a value for tables.
pub fn brief(v: &Option<Value>) -> String {
    match v {
        None => "—".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            let s = other.to_string();
            if s.len() > 80 {
                format!(
                    "{}…",
                    &s[..s.char_indices().nth(79).map_or(s.len(), |(i, _)| i)]
                )
            } else {
                s
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::Source;

    #[test]
    fn secrets_are_redacted_in_every_format() {
        let d = Document {
            value: json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s",
                "annotations": {LAST_APPLIED: "{\"data\":{\"K\":\"c2VrcmV0\"}}", "note": "kept"}},
                "data":{"K":"c2VrcmV0"},"stringData":{"P":"hunter2"}}),
            source: Source {
                file: "x".into(),
                line: 1,
            },
        };
        let y = to_yaml(std::slice::from_ref(&d), false);
        let j = to_json(std::slice::from_ref(&d), Some(&[]), false);
        for out in [&y, &j] {
            assert!(
                !out.contains("c2VrcmV0") && !out.contains("hunter2"),
                "{out}"
            );
            assert!(out.contains(REDACTED));
            assert!(out.contains("kept"), "{out}");
        }
        let c = Change {
            object: d.obj_ref(),
            ..Change::partial(
                "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
                None,
                Some(json!("{\"data\":{\"K\":\"c2VrcmV0\"}}")),
                "r",
                "k",
            )
        };
        let shown = format!("{:?}", redact_changes(&[c], false));
        assert!(!shown.contains("c2VrcmV0"), "{shown}");
        assert!(to_yaml(&[d], true).contains("hunter2"));
    }

    #[test]
    fn yaml_quotes_strings_that_look_like_other_types() {
        let d = Document {
            value: json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"a":"true","b":"1","c":"0755","d":"null","e":"x: y"}}),
            source: Source {
                file: "x".into(),
                line: 1,
            },
        };
        let y = to_yaml(std::slice::from_ref(&d), false);
        let back = crate::parse::parse_stream(std::path::Path::new("x"), &y).unwrap();
        assert_eq!(back[0].value, d.value, "{y}");
    }
}
