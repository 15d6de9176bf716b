//! Source positions of YAML nodes, addressed by JSON pointer.
//!
//! serde gives us values; validation needs to point at the line and column of the offending
//! field. This walks the parser's event stream once and records where every key and value of
//! the first document starts.

use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Parser, Span};

/// A position in a source file: 1-based line and column, byte offset and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
    pub offset: usize,
    pub len: usize,
}

impl Pos {
    fn from_span(span: &Span) -> Pos {
        let offset = span.start.byte_offset().unwrap_or(0);
        let end = span.end.byte_offset().unwrap_or(offset);
        Pos {
            line: span.start.line(),
            col: span.start.col() + 1,
            offset,
            len: end.saturating_sub(offset).max(1),
        }
    }
}

/// Positions of the keys and values of one YAML document.
#[derive(Debug, Default, Clone)]
pub struct PosIndex {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
}

enum Frame {
    Map {
        ptr: String,
        pending_key: Option<String>,
    },
    Seq {
        ptr: String,
        next: usize,
    },
}

/// Escape one JSON pointer token (RFC 6901).
/// The longest value an error message echoes whole.
pub const CLIP: usize = 80;

/// `s`, or its first [`CLIP`] characters and how long it was.
pub fn clip(s: &str) -> String {
    if s.chars().count() <= CLIP {
        return s.to_string();
    }
    let head: String = s.chars().take(CLIP).collect();
    format!("{head}… ({} bytes)", s.len())
}

/// `msg` with every `` `quoted` `` or `"quoted"` value longer than [`CLIP`] clipped, so a
/// 50 MB scalar is never echoed into an error.
pub fn clip_quoted(msg: &str) -> String {
    if msg.len() <= 4 * CLIP {
        return msg.to_string();
    }
    let mut out = String::with_capacity(4 * CLIP);
    let mut rest = msg;
    while let Some(start) = rest.find(['`', '"']) {
        let q = rest[start..].chars().next().unwrap_or('`');
        out.push_str(&rest[..=start]);
        let after = &rest[start + 1..];
        match after.find(q) {
            Some(end) => {
                out.push_str(&clip(&after[..end]));
                out.push(q);
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&clip(after));
                rest = "";
            }
        }
    }
    out.push_str(&clip(rest));
    out
}

pub fn escape_token(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

impl PosIndex {
    /// Index the first document of `text`. A parse error yields an empty index: the caller's
    /// deserializer reports the syntax error with its own position.
    pub fn build(text: &str) -> PosIndex {
        let mut idx = PosIndex::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut docs = 0;
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else { break };
            match event {
                Event::DocumentStart(..) => {
                    docs += 1;
                    if docs > 1 {
                        break;
                    }
                }
                Event::Scalar(value, ..) => {
                    if let Some(Frame::Map { ptr, pending_key }) = stack.last_mut() {
                        if pending_key.is_none() {
                            let key_ptr = format!("{ptr}/{}", escape_token(&value));
                            idx.keys.insert(key_ptr.clone(), Pos::from_span(&span));
                            *pending_key = Some(key_ptr);
                            continue;
                        }
                    }
                    let p = idx.child_ptr(&mut stack);
                    idx.values.insert(p, Pos::from_span(&span));
                }
                Event::Alias(..) => {
                    let p = idx.child_ptr(&mut stack);
                    idx.values.insert(p, Pos::from_span(&span));
                }
                Event::MappingStart(..) => {
                    let p = idx.child_ptr(&mut stack);
                    idx.values.insert(p.clone(), Pos::from_span(&span));
                    stack.push(Frame::Map {
                        ptr: p,
                        pending_key: None,
                    });
                }
                Event::SequenceStart(..) => {
                    let p = idx.child_ptr(&mut stack);
                    idx.values.insert(p.clone(), Pos::from_span(&span));
                    stack.push(Frame::Seq { ptr: p, next: 0 });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                _ => {}
            }
        }
        idx
    }

    /// The pointer of the node about to be read, advancing the parent's cursor.
    fn child_ptr(&self, stack: &mut [Frame]) -> String {
        match stack.last_mut() {
            None => String::new(),
            Some(Frame::Map { pending_key, .. }) => pending_key.take().unwrap_or_default(),
            Some(Frame::Seq { ptr, next }) => {
                let p = format!("{ptr}/{next}");
                *next += 1;
                p
            }
        }
    }

    /// Where the value at `ptr` starts, or failing that its closest ancestor's.
    pub fn value(&self, ptr: &str) -> Option<Pos> {
        self.lookup(&self.values, ptr)
    }

    /// Where the key naming `ptr` stands (falls back to the value, then to ancestors).
    pub fn key(&self, ptr: &str) -> Option<Pos> {
        self.keys.get(ptr).copied().or_else(|| self.value(ptr))
    }

    fn lookup(&self, map: &HashMap<String, Pos>, ptr: &str) -> Option<Pos> {
        let mut p = ptr;
        loop {
            if let Some(pos) = map.get(p) {
                return Some(*pos);
            }
            if p.is_empty() {
                return None;
            }
            p = match p.rfind('/') {
                Some(i) => &p[..i],
                None => "",
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_of_nested_maps_and_lists() {
        let text = "name: a\ncluster:\n  ports:\n    - hostPort: 8080\n      nodePort: 1\n";
        let idx = PosIndex::build(text);
        assert_eq!(idx.key("/name").map(|p| (p.line, p.col)), Some((1, 1)));
        assert_eq!(idx.value("/name").map(|p| (p.line, p.col)), Some((1, 7)));
        let np = idx.value("/cluster/ports/0/nodePort").unwrap();
        assert_eq!((np.line, np.col), (5, 17));
        assert_eq!(&text[np.offset..np.offset + np.len], "1");
        // A missing child falls back to its parent.
        assert_eq!(idx.value("/cluster/ports/0/protocol").unwrap().line, 4);
    }

    #[test]
    fn keys_with_slashes_are_escaped() {
        let idx = PosIndex::build("labels:\n  a.io/role: x\n");
        assert_eq!(idx.key("/labels/a.io~1role").unwrap().line, 2);
    }
}

#[cfg(test)]
mod clip_tests {
    use super::*;

    #[test]
    fn huge_values_are_clipped_in_messages() {
        let big = "x".repeat(50_000);
        let m = clip_quoted(&format!("name `{big}` is not a DNS label: too long"));
        assert!(m.len() < 300, "{}", m.len());
        assert!(
            m.starts_with("name `xxxx") && m.ends_with("` is not a DNS label: too long"),
            "{m}"
        );
        assert!(m.contains("(50000 bytes)"));
        let short = "name `ok` is fine";
        assert_eq!(clip_quoted(short), short);
    }
}
