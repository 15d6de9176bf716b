//! The only place ktwin writes to stdout and stderr. Data goes to stdout; progress, tables
//! that explain, and diagnostics go to stderr.

use std::io::{IsTerminal, Write};

use ktwin_config::event::{Action, Event};

/// Write data to stdout. A closed pipe (`ktwin render | head`) is not an error.
pub fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(s.as_bytes());
    let _ = o.flush();
}

/// Write a message to stderr.
pub fn err(s: &str) {
    let mut e = std::io::stderr().lock();
    let _ = e.write_all(s.as_bytes());
    if !s.ends_with('\n') {
        let _ = e.write_all(b"\n");
    }
}

/// Write to stderr as is (terminal control for `dev`'s status board).
pub fn err_raw(s: &str) {
    let mut e = std::io::stderr().lock();
    let _ = e.write_all(s.as_bytes());
    let _ = e.flush();
}

/// The terminal's (rows, columns) on stderr, when it is one.
pub fn terminal_size() -> Option<(u16, u16)> {
    let t = console::Term::stderr();
    t.is_term().then(|| t.size())
}

pub fn stderr_is_tty() -> bool {
    std::io::stderr().is_terminal()
}

/// A table with the house style: no colour unless on a terminal, fixed width when not.
pub fn table(header: &[&str]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    if !stderr_is_tty() {
        t.set_width(180);
    }
    t.set_header(header.iter().map(comfy_table::Cell::new));
    t
}

/// The change record as a table on stderr.
pub fn changes(changes: &[ktwin_manifest::Change], show_secrets: bool) {
    if changes.is_empty() {
        err("no changes: the rendered objects are exactly the sources");
        return;
    }
    let mut t = table(&["object", "field", "change", "why", "knob"]);
    for c in ktwin_manifest::output::redact_changes(changes, show_secrets) {
        t.add_row(vec![
            c.object.to_string(),
            if c.path.is_empty() {
                "/".into()
            } else {
                c.path.clone()
            },
            format!(
                "{} → {}",
                ktwin_manifest::output::brief(&c.before),
                ktwin_manifest::output::brief(&c.after)
            ),
            c.reason.clone(),
            c.knob.clone(),
        ]);
    }
    // Objects and knobs are read whole; paths and prose wrap within sensible bounds.
    use comfy_table::{ColumnConstraint::*, Width::Fixed};
    for (i, c) in [
        (0, ContentWidth),
        (1, UpperBoundary(Fixed(48))),
        (2, LowerBoundary(Fixed(28))),
        (3, LowerBoundary(Fixed(36))),
        (4, ContentWidth),
    ] {
        if let Some(col) = t.column_mut(i) {
            col.set_constraint(c);
        }
    }
    err(&format!("{t}\n{} change(s)", changes.len()));
}

pub fn stdout_is_tty() -> bool {
    std::io::stdout().is_terminal()
}

/// Progress bars on stderr, one per item; drawn only on a terminal. Without one, `-v` prints
/// each phase change as a line instead.
pub struct Bars {
    multi: Option<indicatif::MultiProgress>,
    verbose: bool,
}

pub struct Bar {
    pb: Option<indicatif::ProgressBar>,
    name: String,
    verbose: bool,
    phase: std::sync::Mutex<String>,
    started: std::time::Instant,
}

impl Bars {
    pub fn new(verbose: bool) -> Bars {
        Bars {
            multi: stderr_is_tty().then(indicatif::MultiProgress::new),
            verbose,
        }
    }
    pub fn bar(&self, name: &str) -> Bar {
        let pb = self.multi.as_ref().map(|m| {
            let pb = m.add(indicatif::ProgressBar::new_spinner());
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} {prefix}: {msg} {bytes} ({binary_bytes_per_sec}) {elapsed}",
            ) {
                pb.set_style(style);
            }
            pb.set_prefix(name.to_string());
            pb.enable_steady_tick(std::time::Duration::from_millis(120));
            pb
        });
        Bar {
            pb,
            name: name.to_string(),
            verbose: self.verbose,
            phase: std::sync::Mutex::new(String::new()),
            started: std::time::Instant::now(),
        }
    }
}

impl Bar {
    pub fn update(&self, phase: &str, bytes: u64) {
        if let Some(pb) = &self.pb {
            pb.set_message(phase.to_string());
            pb.set_position(bytes);
            return;
        }
        if let Ok(mut p) = self.phase.lock() {
            if *p != phase {
                *p = phase.to_string();
                if self.verbose {
                    err(&format!(
                        "{}: {phase}… (+{:.2} s)",
                        self.name,
                        self.started.elapsed().as_secs_f64()
                    ));
                }
            }
        }
    }
    /// Remove the bar; the caller prints the outcome line.
    pub fn finish(&self) {
        if let Some(pb) = &self.pb {
            pb.finish_and_clear();
        }
    }
}

/// An event as a line (or lines) of text, as ktwin has always said it; `None` for events
/// text mode does not show (an object applied without change).
pub fn event_text(e: &Event) -> Option<String> {
    let stdin_lines = |s: &str| {
        s.lines()
            .map(|l| format!("\n    | {l}"))
            .collect::<String>()
    };
    Some(match e {
        Event::Command {
            what,
            command,
            stdin,
            dry_run: true,
        } => format!(
            "would {what}: {command}{}",
            stdin.as_deref().map(stdin_lines).unwrap_or_default()
        ),
        Event::Command { what, command, .. } => format!("{what}: {command}"),
        Event::File { path, content, .. } => {
            format!("would write {}:{}", path.display(), stdin_lines(content))
        }
        Event::Waiting { what } => format!("waiting for {what} to answer"),
        Event::NamespaceCreated { name } => format!("namespace/{name}: created"),
        Event::Applied {
            action: Action::Unchanged,
            ..
        } => return None,
        Event::Applied { object, action } => format!("{object}: {}", action.as_str()),
        Event::Kept { object, reason } if reason == "volume" => {
            format!("{object}: kept (volume; --prune-volumes deletes it and its data)")
        }
        Event::Kept { object, reason } => format!("{object}: kept ({reason})"),
        Event::PruneSet { objects } => format!(
            "pruning {} object(s) no longer rendered:{}",
            objects.len(),
            objects
                .iter()
                .map(|o| format!("\n  - {o}"))
                .collect::<String>()
        ),
        Event::Pruned { object } => format!("{object}: pruned"),
        Event::NotPruned { object, why } => format!("{object}: not pruned ({why})"),
        Event::RolloutProgress { workload, message } => format!("{workload}: {message}"),
        Event::RolledOut { workload, seconds } => {
            format!("{workload}: rolled out ({seconds:.1}s)")
        }
        Event::Fixed {
            subject,
            fix,
            dry_run: true,
        } => format!("would fix: {subject}: {fix}"),
        Event::Fixed { subject, fix, .. } => format!("{subject}: {fix}"),
        Event::RestartRequested { workload } => format!("{workload}: restart requested"),
    })
}

/// The reporter commands hand to libraries: each event as text on stderr.
pub fn event(e: Event) {
    if let Some(t) = event_text(&e) {
        err(&t);
    }
}
