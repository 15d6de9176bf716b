//! The only place ktwin writes to stdout and stderr. Data goes to stdout; progress, tables
//! that explain, and diagnostics go to stderr.

use std::io::{IsTerminal, Write};

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

pub fn stdout_is_tty() -> bool {
    std::io::stdout().is_terminal()
}
