//! Is a port on 127.0.0.1 free, and if not, who holds it (where the OS tells).

use std::net::TcpListener;

/// `None` when free; otherwise a description of the holder, e.g. "`python3` (pid 123)".
pub fn taken_by(port: u16) -> Option<String> {
    if TcpListener::bind(("127.0.0.1", port)).is_ok() {
        return None;
    }
    Some(holder(port).unwrap_or_else(|| "another process".to_string()))
}

/// Find the listening socket's owner through /proc (Linux); None elsewhere or without access.
fn holder(port: u16) -> Option<String> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                continue; // not LISTEN
            }
            let local_port = f[1]
                .rsplit(':')
                .next()
                .and_then(|h| u16::from_str_radix(h, 16).ok());
            if local_port == Some(port) {
                inodes.push(format!("socket:[{}]", f[9]));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for proc_dir in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = proc_dir.file_name().to_string_lossy().into_owned();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(proc_dir.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                if inodes.iter().any(|i| target.to_string_lossy() == *i) {
                    let comm =
                        std::fs::read_to_string(proc_dir.path().join("comm")).unwrap_or_default();
                    return Some(format!("`{}` (pid {pid})", comm.trim()));
                }
            }
        }
    }
    None
}

/// A port that is free right now (for tests and defaults).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_holder() {
        // A port below the ephemeral range, so a parallel test binding port 0 cannot be
        // handed the same port after the drop below.
        let l = (20_000..21_000)
            .find_map(|p| TcpListener::bind(("127.0.0.1", p)).ok())
            .expect("a free port in 20000..21000");
        let port = l.local_addr().unwrap().port();
        let who = taken_by(port).expect("taken");
        // This process, or a child another test forked that has not exec'd yet (a forked
        // child shares the listener until exec closes it).
        let pid: u32 = who
            .rsplit("pid ")
            .next()
            .and_then(|p| p.trim_end_matches(')').parse().ok())
            .expect("a pid");
        let parent = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit(") ")
                    .next()
                    .and_then(|r| r.split_whitespace().nth(1))
                    .and_then(|p| p.parse::<u32>().ok())
            });
        let me = std::process::id();
        assert!(pid == me || parent == Some(me), "{who}");
        drop(l);
        assert_eq!(taken_by(port), None);
    }
}
