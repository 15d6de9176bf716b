//! The record of every change ktwin makes to a rendered object.

use serde::Serialize;
use serde_json::Value;

use crate::doc::ObjRef;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub object: ObjRef,
    /// JSON pointer into the object.
    pub path: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    /// Why, in words a reviewer understands.
    pub reason: String,
    /// The `ktwin.yaml` setting that made it (and that turns it off).
    pub knob: String,
}

impl Change {
    /// A change whose object the recorder fills in.
    pub fn partial(
        path: &str,
        before: Option<Value>,
        after: Option<Value>,
        reason: impl Into<String>,
        knob: &str,
    ) -> Change {
        Change {
            object: ObjRef::default(),
            path: path.to_string(),
            before,
            after,
            reason: reason.into(),
            knob: knob.to_string(),
        }
    }
}

/// Collects changes, filling in the object each is about.
#[derive(Debug, Default)]
pub struct Recorder {
    pub changes: Vec<Change>,
}

impl Recorder {
    pub fn push(&mut self, obj: &ObjRef, mut c: Change) {
        c.object = obj.clone();
        self.changes.push(c);
    }
}
