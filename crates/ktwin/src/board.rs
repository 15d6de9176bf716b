//! `ktwin dev`'s status board on a terminal: a few lines pinned at the top — per image its tag
//! and last build, per workload ready/desired and restarts, the forwards, the last error —
//! while events and logs scroll below them (a terminal scroll region, DECSTBM). Off a terminal,
//! or with `-o json`, there is none: plain lines only.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::printer;

#[derive(Default)]
struct Board {
    images: BTreeMap<String, String>,
    workloads: BTreeMap<String, String>,
    forwards: BTreeMap<String, String>,
    last_error: Option<String>,
    /// Rows reserved at the top (0: not drawn).
    height: u16,
    rows: u16,
    cols: u16,
}

static BOARD: Mutex<Option<Board>> = Mutex::new(None);

/// Reserve the top of the terminal for the board; `false` when stderr is not a terminal.
pub fn start(lines: u16) -> bool {
    let Some((rows, cols)) = printer::terminal_size() else {
        return false;
    };
    // A terminal too small for the board and a log region gets no board.
    if rows < lines + 6 {
        return false;
    }
    let height = lines + 1;
    if let Ok(mut b) = BOARD.lock() {
        *b = Some(Board {
            height,
            rows,
            cols,
            ..Board::default()
        });
    }
    // Clear, scroll region below the board, cursor into it.
    printer::err_raw(&format!(
        "\x1b[2J\x1b[{};{}r\x1b[{};1H",
        height + 1,
        rows,
        height + 1
    ));
    draw();
    true
}

/// Give the terminal back: the whole screen scrolls again.
pub fn stop() {
    let rows = BOARD.lock().ok().and_then(|mut b| b.take()).map(|b| b.rows);
    if let Some(rows) = rows {
        printer::err_raw(&format!("\x1b[r\x1b[{rows};1H\n"));
    }
}

fn update(f: impl FnOnce(&mut Board)) {
    let drawn = match BOARD.lock() {
        Ok(mut b) => match b.as_mut() {
            Some(b) => {
                f(b);
                true
            }
            None => false,
        },
        Err(_) => false,
    };
    if drawn {
        draw();
    }
}

pub fn image(image: &str, line: String) {
    update(|b| {
        b.images.insert(image.to_string(), line);
    });
}

pub fn workloads(lines: BTreeMap<String, String>) {
    update(|b| b.workloads = lines);
}

pub fn forward(key: &str, line: String) {
    update(|b| {
        b.forwards.insert(key.to_string(), line);
    });
}

pub fn error(message: Option<String>) {
    update(|b| b.last_error = message);
}

/// The board's lines, fitted to `height` rows and `cols` columns.
fn lines(b: &Board) -> Vec<String> {
    let mut v = Vec::new();
    for (i, l) in &b.images {
        v.push(format!("image    {i}  {l}"));
    }
    for (w, l) in &b.workloads {
        v.push(format!("workload {w}  {l}"));
    }
    for l in b.forwards.values() {
        v.push(format!("forward  {l}"));
    }
    v.push(match &b.last_error {
        Some(e) => format!("last error: {}", e.lines().next().unwrap_or("")),
        None => "last error: none".into(),
    });
    let keep = usize::from(b.height.saturating_sub(1));
    if v.len() > keep {
        let more = v.len() - keep + 1;
        v.truncate(keep.saturating_sub(1));
        v.push(format!("… {more} more"));
    }
    v.into_iter()
        .map(|l| l.chars().take(usize::from(b.cols)).collect())
        .collect()
}

fn draw() {
    let text = {
        let Ok(b) = BOARD.lock() else { return };
        let Some(b) = b.as_ref() else { return };
        let mut s = String::from("\x1b7"); // save the cursor (it is in the log region)
        let ls = lines(b);
        for row in 0..b.height.saturating_sub(1) {
            let l = ls.get(usize::from(row)).map(String::as_str).unwrap_or("");
            s.push_str(&format!("\x1b[{};1H\x1b[2K{l}", row + 1));
        }
        s.push_str(&format!(
            "\x1b[{};1H\x1b[2K\x1b[2m{}\x1b[0m",
            b.height,
            "─".repeat(usize::from(b.cols))
        ));
        s.push_str("\x1b8");
        s
    };
    printer::err_raw(&text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_fit_the_rows_and_say_what_is_left_out() {
        let mut b = Board {
            height: 4,
            cols: 30,
            ..Board::default()
        };
        b.images.insert(
            "ghcr.io/acme/gateway".into(),
            "ktwin-1234 built 2.1s at 10:00:01".into(),
        );
        b.workloads
            .insert("deployment/web".into(), "2/2 ready, 0 restarts".into());
        b.workloads
            .insert("deployment/api".into(), "1/2 ready, 3 restarts".into());
        let l = lines(&b);
        assert_eq!(l.len(), 3);
        assert!(l.iter().all(|x| x.chars().count() <= 30), "{l:?}");
        assert_eq!(l[2], "… 2 more");
        b.height = 10;
        b.cols = 200;
        b.last_error = Some("build: boom\nmore".into());
        let l = lines(&b);
        assert_eq!(l.len(), 4);
        assert_eq!(l[3], "last error: build: boom");
        assert!(l[0].starts_with("image    ghcr.io/acme/gateway  ktwin-1234"));
    }
}
