//! Shared by the tier-3 tests: run a tool in a directory, and insist that it succeeded.
#![allow(dead_code)]

use std::process::{Command, Output};

pub fn run(cmd: &str, args: &[&str], dir: &std::path::Path) -> Output {
    Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

/// stdout and stderr, as one text.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The command succeeded: its stdout (a failure panics with both streams).
pub fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", text(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The command succeeded: stdout and stderr (where ktwin says what it did).
pub fn ok_all(o: &Output) -> String {
    ok(o);
    text(o)
}

/// `ktwin dev --no-logs -o json` in `dir`, read event by event, stopped with Ctrl-C.
pub struct Dev {
    child: std::process::Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl Dev {
    pub fn start(dir: &std::path::Path) -> Dev {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_ktwin"))
            .args(["dev", "--no-logs", "-o", "json"])
            .current_dir(dir)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        Dev { child, lines }
    }

    /// The next event named `what`.
    pub fn next(&mut self, what: &str) -> serde_json::Value {
        loop {
            let l = self.lines.next().expect("ktwin dev ended").unwrap();
            let v: serde_json::Value = serde_json::from_str(&l).unwrap();
            if v["event"] == what {
                return v;
            }
        }
    }

    /// Ctrl-C, as a user stops it; it must exit 0.
    pub fn stop(mut self, dir: &std::path::Path) {
        ok(&run("kill", &["-INT", &self.child.id().to_string()], dir));
        assert!(self.child.wait().unwrap().success());
    }
}
