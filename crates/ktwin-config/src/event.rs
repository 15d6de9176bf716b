//! What libraries report while they work: typed events, never finished English. The binary
//! supplies the reporter and its printer renders each event as a line of text, as part of a
//! `-o json` result, or (for `ktwin dev`) as one NDJSON object.

use std::path::PathBuf;

use serde::Serialize;

/// What an apply did to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    Created,
    Configured,
    Unchanged,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Configured => "configured",
            Action::Unchanged => "unchanged",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "event")]
pub enum Event {
    /// An engine or provider command that changes something (or, on a dry run, would).
    Command {
        what: String,
        command: String,
        /// What it is fed on stdin (config files; never a secret).
        stdin: Option<String>,
        dry_run: bool,
    },
    /// A state or config file written (or, on a dry run, that would be).
    File {
        path: PathBuf,
        content: String,
        dry_run: bool,
    },
    /// Waiting for something to become ready (`the API server`).
    Waiting {
        what: String,
    },
    NamespaceCreated {
        name: String,
    },
    Applied {
        object: String,
        action: Action,
    },
    /// An object prune leaves in place, and why (`volume`).
    Kept {
        object: String,
        reason: String,
    },
    /// What prune is about to delete, said before the first delete (remote environments).
    PruneSet {
        objects: Vec<String>,
    },
    Pruned {
        object: String,
    },
    /// A prune candidate left alone at the last moment, and why.
    NotPruned {
        object: String,
        why: String,
    },
    RolloutProgress {
        workload: String,
        message: String,
    },
    RolledOut {
        workload: String,
        seconds: f64,
    },
    /// A fix to the running twin (a node label, the KEP-1755 ConfigMap, a stuck pod).
    Fixed {
        subject: String,
        fix: String,
        dry_run: bool,
    },
    RestartRequested {
        workload: String,
    },
}

/// Where a library sends its events.
pub type Reporter<'a> = &'a dyn Fn(Event);

/// A reporter that drops everything (read-only probes, tests that do not look).
pub fn quiet(_: Event) {}
