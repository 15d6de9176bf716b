//! Test helpers shared by ktwin's crates: temporary projects, expected-output files, and stub
//! executables on PATH that record how they were called.
#![allow(clippy::disallowed_methods)] // test support starts stubs, tools and servers

pub mod kubeapi;

use std::path::{Path, PathBuf};

/// A temporary directory holding a project; removed on drop.
pub struct TempProject {
    dir: tempfile::TempDir,
}

impl Default for TempProject {
    fn default() -> Self {
        Self::new()
    }
}

impl TempProject {
    pub fn new() -> TempProject {
        TempProject {
            dir: tempfile::Builder::new()
                .prefix("ktwin-test-")
                .tempdir()
                .expect("create temp dir"),
        }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    /// Write a file (creating parent directories) and return its path.
    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.dir.path().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create dirs");
        }
        std::fs::write(&p, content).expect("write file");
        p
    }
    /// Copy a directory tree into the project at `rel`, skipping `bin/` build outputs.
    pub fn copy_tree(&self, from: &Path, rel: &str) -> PathBuf {
        let to = self.dir.path().join(rel);
        copy_dir(from, &to);
        to
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .expect("read dir")
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let src = e.path();
        if src.is_dir() {
            if name == "bin" {
                continue;
            }
            copy_dir(&src, &to.join(&name));
        } else {
            std::fs::copy(&src, to.join(&name)).expect("copy file");
        }
    }
}

/// Copy a project out of git into a temp dir and create its git-ignored env file from the
/// committed example, as a user's checkout has it.
pub fn copy_project_with_env(
    src: &Path,
    rel: &str,
    example: &str,
    env_file: &str,
) -> (TempProject, PathBuf) {
    let tp = TempProject::new();
    let dir = tp.copy_tree(src, rel);
    let _ = std::fs::remove_file(dir.join(env_file));
    std::fs::copy(dir.join(example), dir.join(env_file)).expect("create env file from its example");
    (tp, dir)
}

/// The swarm example, with `secrets-local.env` created from its example.
pub fn swarm_example() -> (TempProject, PathBuf) {
    copy_project_with_env(
        &workspace_root().join("examples/swarm"),
        "swarm",
        "secrets-local.env.example",
        "secrets-local.env",
    )
}

/// A path under `../shared` (beside the repository: the k3d schema, the corpus). When it is
/// absent the caller skips, saying so, so a clone of the repository alone passes its tests;
/// with `KTWIN_REQUIRE_SHARED=1` (`.ci/run` sets it) its absence fails the test instead.
pub fn shared(rel: &str) -> Option<PathBuf> {
    let p = workspace_root().join("../shared").join(rel);
    if p.exists() {
        return Some(p);
    }
    if std::env::var_os("KTWIN_REQUIRE_SHARED").is_some_and(|v| v == "1") {
        panic!(
            "{} is missing and KTWIN_REQUIRE_SHARED=1 requires it",
            p.display()
        );
    }
    // The skip is said where the test output shows it.
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "skipping what needs {}: ../shared is not beside this clone",
            p.display()
        );
    }
    None
}

/// Without a tool the tests need from the user's machine, the caller skips, saying so, unless
/// `KTWIN_REQUIRE_TOOLS=1` (`.ci/run`, where scripts/tools.sh provides them) makes its absence
/// a failure.
fn tool_missing(what: &str) -> bool {
    if std::env::var_os("KTWIN_REQUIRE_TOOLS").is_some_and(|v| v == "1") {
        panic!("KTWIN_REQUIRE_TOOLS=1 but {what} (source scripts/tools.sh)");
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!("skipping what needs it: {what} (source scripts/tools.sh to get it)");
    }
    false
}

/// Whether the user's `helm` is on PATH (Helm is the user's own tool, like kustomize).
pub fn helm_available() -> bool {
    #[allow(clippy::disallowed_methods)] // a probe of the test machine, not product code
    let found = std::process::Command::new("helm")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    found || tool_missing("`helm` is not on PATH")
}

/// Whether the kustomize ktwin would run (standalone first, else kubectl's) is v5 or newer:
/// real repositories use `components`, `labels`, `replacements`.
pub fn modern_kustomize() -> bool {
    #[allow(clippy::disallowed_methods)] // a probe of the test machine, not product code
    let run = |p: &str, a: &[&str]| {
        std::process::Command::new(p)
            .args(a)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let v = run("kustomize", &["version"]).or_else(|| {
        run("kubectl", &["version", "--client", "-o", "json"]).map(|j| {
            serde_json::from_str::<serde_json::Value>(&j)
                .ok()
                .and_then(|v| v["kustomizeVersion"].as_str().map(str::to_string))
                .unwrap_or_default()
        })
    });
    let major = v
        .as_deref()
        .and_then(|v| v.split("v").nth(1))
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse::<u32>().ok());
    major.is_some_and(|m| m >= 5) || tool_missing("the kustomize on PATH is older than v5")
}

/// Run an async operation to completion from a synchronous test (the product makes its one
/// runtime in `main`; tests make their own).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// The workspace root (for examples and fixtures).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("workspace root")
}

/// Replace content tags, which depend on file modes and contents, with a stable marker.
pub fn normalize_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("ktwin-") {
        let tail = &rest[i + 6..];
        let hex = tail.chars().take_while(|c| c.is_ascii_hexdigit()).count();
        out.push_str(&rest[..i]);
        if hex == 16 {
            out.push_str("ktwin-<tag>");
            rest = &tail[16..];
        } else {
            out.push_str("ktwin-");
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// Compare `actual` with the expected file; with `UPDATE_EXPECT=1`, write it instead.
pub fn assert_expected(path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).expect("create expected dir");
        }
        std::fs::write(path, actual).expect("write expected");
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|_| {
        panic!(
            "missing expected file {} (run with UPDATE_EXPECT=1 to create it)\n--- actual ---\n{actual}",
            path.display()
        )
    });
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(10)
            .map(|(i, (a, b))| format!("line {}:\n  - {a}\n  + {b}", i + 1))
            .collect();
        panic!(
            "{} differs (UPDATE_EXPECT=1 rewrites it)\n{}\nexpected {} lines, got {}\n--- actual ---\n{actual}",
            path.display(),
            diff.join("\n"),
            expected.lines().count(),
            actual.lines().count()
        );
    }
}

/// Answers every HTTP request on 127.0.0.1 with 200 `{}` and counts connections (the
/// registry's `GET /v2/` health check, a listener a guard must never reach). Not a registry.
pub struct Responder {
    pub port: u16,
    pub connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Responder {
    pub fn start() -> Responder {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind responder");
        let port = l.local_addr().expect("addr").port();
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = connections.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
                );
            }
        });
        Responder { port, connections }
    }

    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The `ktwin` binary run in `dir` with `stubs` first on PATH, an engine socket that does not
/// exist (so only the stub `docker` answers), its own state dir, and none of the user's
/// ktwin or kube settings.
pub fn ktwin_with_stubs(
    bin: &str,
    dir: &Path,
    stubs: &StubBin,
    state: &Path,
) -> std::process::Command {
    let mut c = std::process::Command::new(bin);
    c.current_dir(dir)
        .env("PATH", format!("{}:/usr/bin:/bin", stubs.path().display()))
        .env("DOCKER_HOST", "unix:///nonexistent/stub-docker.sock")
        .env("XDG_STATE_HOME", state)
        // Volumes (`cluster.persistentVolumes`) beside the state, never the user's.
        .env("XDG_DATA_HOME", state.join("data"))
        .env_remove("KTWIN_REGISTRY_IMAGE")
        .env_remove("KTWIN_ENGINE")
        .env_remove("KUBECONFIG");
    c
}

/// A directory of stub executables to put first on PATH. Each stub appends its argv (one
/// line, arguments separated by spaces) to `calls.log` and prints its canned output.
pub struct StubBin {
    dir: tempfile::TempDir,
}

impl Default for StubBin {
    fn default() -> Self {
        Self::new()
    }
}

impl StubBin {
    pub fn new() -> StubBin {
        StubBin {
            dir: tempfile::Builder::new()
                .prefix("ktwin-stubs-")
                .tempdir()
                .expect("create stub dir"),
        }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    /// Add a stub that records its call, prints `stdout` and exits with `code`.
    pub fn add(&self, name: &str, stdout: &str, code: i32) {
        let log = self.dir.path().join("calls.log");
        let out = self.dir.path().join(format!("{name}.out"));
        std::fs::write(&out, stdout).expect("write stub output");
        let script = format!(
            "#!/bin/sh\nPATH=\"/usr/bin:/bin:$PATH\"\nprintf '%s' '{name}' >> '{log}'\nfor a in \"$@\"; do printf ' %s' \"$a\" >> '{log}'; done\nprintf '\\n' >> '{log}'\ncat '{out}'\nexit {code}\n",
            log = log.display(),
            out = out.display()
        );
        let p = self.dir.path().join(name);
        std::fs::write(&p, script).expect("write stub");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                .expect("chmod stub");
        }
    }
    /// Add a stub that records its call (argv, then any stdin as `  | ` lines) and answers by
    /// the first rule whose shell pattern matches its arguments (`"cluster list*"`), else
    /// prints nothing and exits 0. Calling it again replaces the rules.
    pub fn add_rules(&self, name: &str, rules: &[(&str, &str, i32)]) {
        let d = self.dir.path();
        let log = d.join("calls.log");
        let mut cases = String::new();
        for (i, (pattern, stdout, code)) in rules.iter().enumerate() {
            let out = d.join(format!("{name}.{i}.out"));
            std::fs::write(&out, stdout).expect("write stub output");
            // Literal parts quoted, `*` left as the wildcard.
            let pat: Vec<String> = pattern.split('*').map(|p| format!("\"{p}\"")).collect();
            cases.push_str(&format!(
                "  {}) cat '{}'; exit {code};;\n",
                pat.join("*"),
                out.display()
            ));
        }
        let script = format!(
            "#!/bin/sh\nPATH=\"/usr/bin:/bin:$PATH\"\nprintf '%s' '{name}' >> '{log}'\nfor a in \"$@\"; do printf ' %s' \"$a\" >> '{log}'; done\nprintf '\\n' >> '{log}'\nin=$(cat)\n[ -z \"$in\" ] || printf '%s\\n' \"$in\" | sed 's/^/  | /' >> '{log}'\ncase \"$*\" in\n{cases}esac\nexit 0\n",
            log = log.display(),
        );
        let p = d.join(name);
        std::fs::write(&p, script).expect("write stub");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                .expect("chmod stub");
        }
    }
    /// Forget the calls recorded so far.
    pub fn clear_calls(&self) {
        let _ = std::fs::remove_file(self.dir.path().join("calls.log"));
    }
    /// Every recorded call, in order.
    pub fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// A standalone containerd (Debian's `containerd` binary) standing in for a cluster node in
/// tier-2 tests and the image benchmark: its own root, state and socket in a temp dir,
/// reachable only through that socket. Stopped (by its PID) and removed on drop.
pub struct Containerd {
    pub dir: tempfile::TempDir,
    pub address: PathBuf,
    child: std::process::Child,
}

impl Containerd {
    pub fn start() -> Containerd {
        let dir = tempfile::Builder::new()
            .prefix("ktwin-containerd-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        let address = d.join("containerd.sock");
        let config = format!(
            "version = 2\nroot = \"{}\"\nstate = \"{}\"\n[grpc]\n  address = \"{}\"\n[ttrpc]\n  address = \"{}\"\n[debug]\n  level = \"warn\"\n[metrics]\n  address = \"\"\n",
            d.join("root").display(),
            d.join("state").display(),
            address.display(),
            d.join("ttrpc.sock").display()
        );
        std::fs::write(d.join("config.toml"), config).expect("write containerd config");
        let log = std::fs::File::create(d.join("containerd.log")).expect("log file");
        let child = std::process::Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start containerd (Debian package `containerd`)");
        let c = Containerd {
            dir,
            address,
            child,
        };
        for _ in 0..100 {
            if c.ctr(&["version"]).status.success() {
                return c;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!(
            "containerd did not come up: {}",
            std::fs::read_to_string(c.dir.path().join("containerd.log")).unwrap_or_default()
        );
    }

    /// Run `ctr --address <socket> ARGS`.
    pub fn ctr(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("ctr")
            .arg("--address")
            .arg(&self.address)
            .args(args)
            .output()
            .expect("ctr")
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // SIGTERM first so it unmounts its snapshots, then make sure.
        let _ = std::process::Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of `program` on PATH, if it is installed.
pub fn which_program(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_normalised() {
        assert_eq!(
            normalize_tags("a:ktwin-0123456789abcdef b:ktwin-xyz"),
            "a:ktwin-<tag> b:ktwin-xyz"
        );
    }

    #[test]
    fn stubs_record_calls() {
        let s = StubBin::new();
        s.add("k3d", "v5.8.3\n", 0);
        let out = std::process::Command::new(s.path().join("k3d"))
            .args(["cluster", "create", "a b"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "v5.8.3\n");
        assert_eq!(s.calls(), ["k3d cluster create a b"]);
    }
}
