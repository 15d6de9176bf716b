//! The promise "Secret values never appear in any output", as a test: a table of inputs,
//! most of them malformed, each planting the same two secret values, run through every
//! command and output format (text, json, markdown, sarif, yaml, `-v`, and the errors),
//! swept for the values raw and base64-encoded at every alignment. The cluster-facing
//! commands talk to ktwin-testkit's kube API **stand-in** through a stub `k3d` that reports
//! its kubeconfig; the stand-in is not an API server.
#![allow(clippy::print_stderr)] // the table is the record of the sweep

use std::process::Output;

use ktwin_testkit::kubeapi::{healthy_workloads, ApiStandIn};
use ktwin_testkit::{ktwin_with_stubs, StubBin, TempProject};

const P1: &str = "PWzq81xKQ";
const P2: &str = "TOKyw72pLM";

fn b64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Every form a secret can take in output: itself, and the part of its base64 encoding that
/// depends on it alone, at each of the three alignments it can sit at inside a longer value.
fn forms(secret: &str) -> Vec<String> {
    let mut v = vec![secret.to_string()];
    for o in 0..3 {
        let mut bytes = vec![b'x'; o];
        bytes.extend_from_slice(secret.as_bytes());
        let enc = b64(&bytes);
        let start = (4 * o).div_ceil(3);
        let end = enc.len().saturating_sub(4);
        if end > start + 4 {
            v.push(enc[start..end].to_string());
        }
    }
    v
}

fn leaks(text: &str) -> Vec<String> {
    [P1, P2]
        .iter()
        .flat_map(|s| forms(s))
        .filter(|f| text.contains(f.as_str()))
        .collect()
}

const KTWIN: &str = "apiVersion: ktwin.dev/v1alpha1
kind: Project
name: leak
jobs:
  task: {image: busybox:1.36, command: [sh, -c, 'echo $PROMPT | base64 -d']}
environments:
  local:
    manifests: [k8s]
    secrets:
      - {name: app-secrets, envFile: secrets.env, namespace: shop}
  dev:
    manifests: [k8s]
    context: prod
";

const APP: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: app
          image: nginx:1.27
          envFrom: [{secretRef: {name: app-secrets}}]
";

fn good_env() -> String {
    format!("DATABASE_URL=postgres://u:{P1}@db:5432/app\nAPI_TOKEN={P2}\n")
}

/// One input: what it writes into a fresh copy of the project.
struct Case {
    name: &'static str,
    files: Vec<(&'static str, String)>,
    /// A malformed kubeconfig for the remote environment.
    kubeconfig: Option<String>,
    /// A file outside the project that ktwin.yaml (or a symlink) points at.
    outside: Option<String>,
}

fn cases() -> Vec<Case> {
    let case = |name, files: Vec<(&'static str, String)>| Case {
        name,
        files,
        kubeconfig: None,
        outside: None,
    };
    let env = |text: String| vec![("secrets.env", text)];
    vec![
        case("env file, well-formed", env(good_env())),
        case(
            "env file, a bad line between secrets",
            env(format!(
                "DATABASE_URL=postgres://u:{P1}@db\nBAD LINE\nAPI_TOKEN={P2}\n"
            )),
        ),
        case(
            "env file, a bare value",
            env(format!("{P1}\nAPI_TOKEN={P2}\n")),
        ),
        case(
            "env file, `KEY: value`",
            env(format!("TOKEN: {P1}==\nAPI_TOKEN={P2}\n")),
        ),
        case(
            "env file, a multi-line PEM",
            env(format!(
                "KEY=-----BEGIN PRIVATE KEY-----\n{P1}{P2}\n-----END PRIVATE KEY-----\n"
            )),
        ),
        case(
            "env file, a BOM and a stray `=`",
            env(format!("\u{feff}A={P1}\n={P2}\n")),
        ),
        case(
            "env file, a key set twice",
            env(format!("A={P1}\nA={P2}\n")),
        ),
        case(
            "manifest Secret named like a `secrets:` entry",
            vec![
                ("secrets.env", good_env()),
                (
                    "k8s/secret.yaml",
                    format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: app-secrets, namespace: shop}}\nstringData: {{A: {P1}, B: {P2}}}\n"),
                ),
            ],
        ),
        case(
            "manifest Secret with last-applied-configuration",
            vec![
                ("secrets.env", good_env()),
                (
                    "k8s/exported.yaml",
                    format!(
                        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: exported\n  namespace: shop\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: '{{\"apiVersion\":\"v1\",\"data\":{{\"A\":\"{}\"}},\"stringData\":{{\"B\":\"{P2}\"}},\"kind\":\"Secret\"}}'\ndata: {{A: {}}}\n",
                        b64(P1.as_bytes()),
                        b64(P1.as_bytes())
                    ),
                ),
            ],
        ),
        case(
            "manifest Secret with a YAML error next to its values",
            vec![
                ("secrets.env", good_env()),
                (
                    "k8s/broken.yaml",
                    format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: broken, namespace: shop}}\nstringData:\n  A: {P1}\n   B: {P2}\n  C: [unclosed\n"),
                ),
            ],
        ),
        Case {
            name: "malformed kubeconfig holding a token",
            files: env(good_env()),
            kubeconfig: Some(format!(
                "apiVersion: v1\nclusters:\n- name: prod\n  cluster: {{server: 'https://127.0.0.1:1'}}\nusers:\n- name: admin\n  user:\n    token: {P1}\n    client-key-data: \"{}\"\n   bad: indent\n",
                b64(P2.as_bytes())
            )),
            outside: None,
        },
        Case {
            name: "a manifest path outside the project",
            files: vec![
                ("secrets.env", good_env()),
                ("ktwin.yaml", KTWIN.replace("manifests: [k8s]\n    secrets", "manifests: [k8s, ../outside.yaml]\n    secrets")),
            ],
            kubeconfig: None,
            outside: Some(format!("MY_CI_SECRET={P1}\nOTHER={P2}\n")),
        },
        Case {
            name: "a symlink in a manifest dir to a file outside",
            files: env(good_env()),
            kubeconfig: None,
            outside: Some(format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\ndata: {{A: {P1}, B: {P2}}}\n  bad: [\n")),
        },
    ]
}

const COMMANDS: &[&[&str]] = &[
    &["render"],
    &["render", "-o", "json"],
    &["render", "--explain"],
    &["-v", "render"],
    &["diff", "--against", "dev"],
    &["diff", "--against", "dev", "-o", "markdown"],
    &["diff", "--against", "dev", "-o", "json"],
    &["doctor"],
    &["doctor", "-o", "json"],
    &["doctor", "-o", "sarif"],
    &["deploy", "-o", "json", "--timeout", "10s"],
    &["-v", "deploy", "--timeout", "10s"],
    &["status"],
    &["status", "-o", "json"],
    &["deploy", "--env", "dev", "--timeout", "10s"],
    &["status", "--env", "dev", "-o", "json"],
    // A payload file holding both values (written for every input below).
    &[
        "run",
        "task",
        "--dry-run",
        "--env-b64",
        "PROMPT=@payload.txt",
    ],
    &[
        "run",
        "task",
        "--dry-run",
        "-o",
        "json",
        "--env-b64",
        "PROMPT=@payload.txt",
    ],
    &[
        "run",
        "task",
        "--detach",
        "--env-b64",
        "PROMPT=@payload.txt",
    ],
    &["jobs", "list", "-o", "json"],
];

#[test]
fn no_command_prints_a_secret_for_any_input() {
    let mut table = Vec::new();
    let mut total = 0;
    let mut exits = std::collections::BTreeSet::new();
    for c in cases() {
        let world = tempfile::tempdir().unwrap();
        let tp = TempProject::new();
        tp.write("ktwin.yaml", KTWIN);
        tp.write("k8s/app.yaml", APP);
        tp.write("payload.txt", &format!("token={P1} password={P2}\n"));
        for (f, text) in &c.files {
            tp.write(f, text);
        }
        if let Some(text) = &c.outside {
            let outside = tp.path().parent().unwrap().join("outside.yaml");
            std::fs::write(&outside, text).unwrap();
            if c.name.contains("symlink") {
                std::os::unix::fs::symlink(&outside, tp.path().join("k8s/linked.yaml")).unwrap();
            }
        }
        let api = ApiStandIn::start();
        api.controller(healthy_workloads);
        let kubeconfig = api.kubeconfig(world.path(), &["k3d-leak", "prod"]);
        let kubeconfig = match &c.kubeconfig {
            Some(bad) => {
                let p = world.path().join("bad-kubeconfig");
                std::fs::write(&p, bad).unwrap();
                p
            }
            None => kubeconfig,
        };
        let stubs = StubBin::new();
        let own = std::fs::read_to_string(world.path().join("kubeconfig")).unwrap();
        stubs.add_rules("k3d", &[("kubeconfig get leak", &own, 0)]);
        stubs.add_rules("docker", &[]);
        let state = tempfile::tempdir().unwrap();
        let mut row = Vec::new();
        for args in COMMANDS {
            let o: Output =
                ktwin_with_stubs(env!("CARGO_BIN_EXE_ktwin"), tp.path(), &stubs, state.path())
                    .env("KUBECONFIG", &kubeconfig)
                    .args(*args)
                    .output()
                    .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            exits.insert(o.status.code());
            let found = leaks(&text);
            if !found.is_empty() {
                eprintln!(
                    "LEAK: {} × `ktwin {}` shows {found:?}:\n{text}",
                    c.name,
                    args.join(" ")
                );
            }
            total += found.len();
            row.push(found.len());
        }
        table.push((c.name, row));
        drop(api);
    }
    // The table, for the record (cargo test -- --nocapture shows it).
    eprintln!("inputs × outputs: leaks found (0 everywhere is the promise)");
    for (i, args) in COMMANDS.iter().enumerate() {
        eprintln!("  c{i:02} = ktwin {}", args.join(" "));
    }
    eprintln!(
        "  {:<48} {}",
        "input",
        (0..COMMANDS.len())
            .map(|i| format!("c{i:02}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    for (name, row) in &table {
        eprintln!(
            "  {name:<48} {}",
            row.iter()
                .map(|n| format!("{n:>3}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    assert_eq!(
        total, 0,
        "secret values appeared in output (see LEAK lines above)"
    );
    // The sweep exercised both successes and failures.
    assert!(
        exits.contains(&Some(0)) && exits.contains(&Some(2)),
        "{exits:?}"
    );
}

#[test]
fn the_sweep_would_see_a_leak() {
    // The detector itself: a value, and its base64 inside a longer value, are both found.
    assert_eq!(leaks(&format!("x {P1} y")).len(), 1);
    let inside = b64(format!("postgres://u:{P1}@db").as_bytes());
    assert!(!leaks(&inside).is_empty(), "{inside}");
    assert!(leaks("nothing here").is_empty());
}
