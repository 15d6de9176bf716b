//! `ktwin exec`: run one component on this machine, wired to the twin — a KUBECONFIG that
//! reaches only the environment's cluster, and with `--as` the env and config files the
//! rendered container would get (`ktwin_manifest::podenv`). Secret values go to the child
//! process only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ktwin_kube::guard::Intent;
use ktwin_manifest::doc::pod_spec_pointer;
use ktwin_manifest::podenv::{resolve, PodEnv};
use serde_json::Value;

use crate::cli::{Cli, ExecArgs};
use crate::plan::{kube_failure, Plan};
use crate::printer;
use crate::report::Failure;

/// The rendered object `--as` names: `NAME`, `KIND/NAME`, either with `/CONTAINER`.
fn pick<'a>(docs: &'a [Value], spec: &str) -> Result<(&'a Value, Option<String>), Failure> {
    let with_pods: Vec<&Value> = docs
        .iter()
        .filter(|d| pod_spec_pointer(d["kind"].as_str().unwrap_or("")).is_some())
        .collect();
    let matches = |kind: Option<&str>, name: &str| -> Vec<&'a Value> {
        with_pods
            .iter()
            .copied()
            .filter(|d| d["metadata"]["name"] == name)
            .filter(|d| {
                kind.is_none_or(|k| {
                    let dk = d["kind"].as_str().unwrap_or("").to_lowercase();
                    let k = k.to_lowercase();
                    dk == k
                        || (k == "deploy" && dk == "deployment")
                        || (k == "sts" && dk == "statefulset")
                        || (k == "ds" && dk == "daemonset")
                        || (k == "cj" && dk == "cronjob")
                })
            })
            .collect()
    };
    let parts: Vec<&str> = spec.split('/').collect();
    // Readings in order: NAME; KIND/NAME; NAME/CONTAINER; KIND/NAME/CONTAINER.
    let candidates: Vec<(Option<&str>, &str, Option<&str>)> = match parts.as_slice() {
        [n] => vec![(None, n, None)],
        [a, b] => vec![(Some(a), b, None), (None, a, Some(b))],
        [k, n, c] => vec![(Some(k), n, Some(c))],
        _ => vec![],
    };
    for (k, n, c) in candidates {
        let hits = matches(k, n);
        match hits.len() {
            0 => continue,
            1 => return Ok((hits[0], c.map(str::to_string))),
            _ => {
                return Err(Failure::input(
                    format!("`{spec}` names more than one workload"),
                    Some(format!(
                        "say which: {}",
                        hits.iter()
                            .map(|d| format!(
                                "{}/{}",
                                d["kind"].as_str().unwrap_or("").to_lowercase(),
                                n
                            ))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                ))
            }
        }
    }
    let names: Vec<String> = with_pods
        .iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap_or("").to_lowercase(),
                d["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    Err(Failure::input(
        format!("no workload `{spec}` in the rendered environment"),
        Some(format!("workloads: {}", names.join(", "))),
    ))
}

/// `KTWIN_MOUNT_CONFIG` for volume `config`.
fn mount_var(volume: &str) -> String {
    let up: String = volume
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("KTWIN_MOUNT_{up}")
}

/// Write each volume's files once under a private directory (0700; Secret files 0600) — a
/// volume mounted twice (`subPath`) is one directory — returning the variables that name them.
/// A volume name that is not a plain name (the render is not validated by an API server) is
/// left out with a note: nothing is written outside the directory.
fn materialise(env: &PodEnv, dir: &Path) -> Result<Vec<(String, PathBuf, String)>, Failure> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let io = |e: std::io::Error| Failure::input(format!("cannot write the mounts: {e}"), None);
    let plain = |n: &str| {
        !n.is_empty()
            && n.len() <= 253
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            && n != "."
            && n != ".."
    };
    let mut written: std::collections::BTreeSet<String> = Default::default();
    let mut out = Vec::new();
    for m in &env.mounts {
        if !plain(&m.volume) {
            printer::err(&format!(
                "note: volume `{}` at {} is not a valid volume name; not materialised",
                m.volume, m.mount_path
            ));
            continue;
        }
        let vdir = dir.join(&m.volume);
        if written.insert(m.volume.clone()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&vdir)
                .map_err(io)?;
            for f in &m.files {
                // A key is a file name (the API refuses `..` and `/`-leading paths in items).
                let rel = Path::new(&f.path);
                if rel.is_absolute()
                    || rel
                        .components()
                        .any(|c| !matches!(c, std::path::Component::Normal(_)))
                {
                    continue;
                }
                let p = vdir.join(rel);
                if let Some(parent) = p.parent() {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(parent)
                        .map_err(io)?;
                }
                let mut o = std::fs::OpenOptions::new();
                o.write(true)
                    .create_new(true)
                    .mode(if m.secret { 0o600 } else { 0o644 });
                let mut file = o.open(&p).map_err(io)?;
                std::io::Write::write_all(&mut file, &f.bytes).map_err(io)?;
            }
        }
        let path = match &m.sub_path {
            Some(sp)
                if Path::new(sp)
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_))) =>
            {
                vdir.join(sp)
            }
            _ => vdir,
        };
        let var = mount_var(&m.volume);
        if !out
            .iter()
            .any(|(v, _, _): &(String, PathBuf, String)| *v == var)
        {
            out.push((var, path, m.mount_path.clone()));
        } else {
            printer::err(&format!(
                "{} → {} (volume {})",
                m.mount_path,
                path.display(),
                m.volume
            ));
        }
    }
    Ok(out)
}

/// A value as a `KEY=value` line shows it: quoted when the shell would split it.
fn shown_value(v: &str) -> String {
    if v.chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-./:@%+=,".contains(c))
    {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', "'\\''"))
    }
}

pub async fn run(cli: &Cli, a: &ExecArgs) -> Result<u8, Failure> {
    // From the first step: a signal while the kubeconfig and mounts are being written must not
    // end ktwin before it removes them (it is passed to the child once that runs).
    let signals = Signals::new()?;
    if a.command.is_empty() && !a.print_env {
        return Err(Failure::input(
            "no command to run",
            Some("give it after `--`: `ktwin exec --as gateway -- cargo run -p gateway`; or `--print-env` to see the env".into()),
        ));
    }
    let mut plan = Plan::resolve(cli, &a.env, a.context.as_deref())?;
    let env_ns = plan
        .project()
        .environments
        .get(&a.env)
        .and_then(|e| e.namespace.clone());
    // The workload's env, from the render.
    let picked = match &a.as_workload {
        Some(spec) => {
            let docs = plan.rendered()?;
            let (w, container) = pick(&docs, spec)?;
            Some((docs.clone(), w.clone(), container))
        }
        None => None,
    };
    // The twin: its kubeconfig (required to run; --print-env works without a twin, saying so).
    let guarded = match plan.guard(Intent::Read).await {
        Ok(g) => Some(g.clone()),
        Err(f) if a.print_env => {
            printer::err(&format!(
                "note: the environment's cluster is not reachable ({}); Service-link variables are left out",
                f.message()
            ));
            None
        }
        Err(f) => return Err(f),
    };
    let mut service_ips: BTreeMap<(String, String), String> = BTreeMap::new();
    if let (Some(g), Some((_, w, _))) = (&guarded, &picked) {
        let ns = w["metadata"]["namespace"].as_str().unwrap_or("default");
        let client = ktwin_kube::connect(g).await.map_err(kube_failure)?;
        match ktwin_kube::services(&client, ns).await {
            Ok(svcs) => {
                for s in svcs {
                    if let (Some(n), Some(ip)) = (
                        s["metadata"]["name"].as_str(),
                        s["spec"]["clusterIP"].as_str(),
                    ) {
                        service_ips.insert((ns.to_string(), n.to_string()), ip.to_string());
                    }
                }
            }
            Err(e) => printer::err(&format!(
                "note: cannot list the Services of {ns} ({e}); Service-link variables are left out"
            )),
        }
    }
    let pod_env = match &picked {
        Some((docs, w, container)) => Some(
            resolve(docs, w, container.as_deref(), &service_ips)
                .map_err(|e| Failure::input(e.to_string(), None))?,
        ),
        None => None,
    };
    let namespace = pod_env
        .as_ref()
        .map(|e| e.namespace.clone())
        .or(env_ns)
        .unwrap_or_else(|| "default".into());
    if let Some(e) = &pod_env {
        for n in &e.notes {
            printer::err(&format!("note: {}", n.0));
        }
    }
    if a.print_env {
        let mut lines = String::new();
        lines.push_str(&format!(
            "KTWIN_ENV={}\nKTWIN_NAMESPACE={namespace}\n",
            a.env
        ));
        if let Some(e) = &pod_env {
            for v in &e.vars {
                let shown = if v.secret && !a.show_secrets {
                    "<redacted>".to_string()
                } else {
                    shown_value(&v.value)
                };
                lines.push_str(&format!("{}={shown}\n", v.name));
            }
            if cli.verbose {
                let mut t = printer::table(&["variable", "from"]);
                for v in &e.vars {
                    t.add_row(vec![v.name.clone(), v.source.clone()]);
                }
                printer::err(&t.to_string());
            }
            for m in &e.mounts {
                printer::err(&format!(
                    "mount {} ({}, {} file(s)) → ${}",
                    m.mount_path,
                    m.source,
                    m.files.len(),
                    mount_var(&m.volume)
                ));
            }
        }
        printer::out(&lines);
        return Ok(0);
    }
    let g = guarded.expect("required above when running a command");
    let kubeconfig = g
        .kubeconfig_file()
        .map_err(|e| Failure::input(format!("cannot write the private kubeconfig: {e}"), None))?;
    let mounts_dir = tempfile::Builder::new()
        .prefix("ktwin-exec-")
        .tempdir()
        .map_err(|e| Failure::input(format!("cannot make the mounts directory: {e}"), None))?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(mounts_dir.path(), std::fs::Permissions::from_mode(0o700));
    }
    let mut pod_env = pod_env;
    let forwards = match (&mut pod_env, &picked) {
        (Some(e), Some((docs, _, _))) if a.forward => forward_env(e, docs, &g).await?,
        _ => Vec::new(),
    };
    let mut cmd = ktwin_engine::runner::Cmd::new(&a.command[0]).args(&a.command[1..]);
    cmd = cmd
        .env("KUBECONFIG", &kubeconfig.path)
        .env("KTWIN_ENV", &a.env)
        .env("KTWIN_NAMESPACE", &namespace);
    if let Some(e) = &pod_env {
        for v in &e.vars {
            cmd = cmd.env(&v.name, &v.value);
        }
        for (var, path, mount_path) in materialise(e, mounts_dir.path())? {
            printer::err(&format!("{mount_path} → {} (${var})", path.display()));
            cmd = cmd.env(&var, &path);
        }
        printer::err(&format!(
            "{} ({}) env: {} variable(s), {} secret; {}",
            e.workload,
            e.container,
            e.vars.len(),
            e.vars.iter().filter(|v| v.secret).count(),
            "`--print-env` lists them"
        ));
    }
    let code = run_child(&cmd, signals).await?;
    for f in forwards {
        f.abort();
    }
    drop(kubeconfig);
    drop(mounts_dir);
    Ok(code)
}

/// `--forward`: a local forward per Service port the env refers to, and those values (and the
/// forwarded Services' link variables) rewritten to `127.0.0.1:<port>`. The rewrite list goes
/// to stderr by variable name — never a value.
async fn forward_env(
    e: &mut PodEnv,
    docs: &[Value],
    g: &ktwin_kube::GuardedContext,
) -> Result<Vec<tokio::task::JoinHandle<()>>, Failure> {
    use ktwin_kube::forward::{bind, serve, Event as Fwd, Spec};
    use ktwin_manifest::podenv::{host_refs, rewrite, Svc};
    let services = Svc::of(docs);
    let mut wanted: BTreeMap<(String, String, u16), u16> = BTreeMap::new();
    let refs: Vec<Vec<ktwin_manifest::podenv::HostRef>> = e
        .vars
        .iter()
        .map(|v| {
            if v.source.starts_with("Service link ") {
                Vec::new()
            } else {
                host_refs(&v.value, &services, &e.namespace)
            }
        })
        .collect();
    for r in refs.iter().flatten() {
        wanted.insert((r.namespace.clone(), r.service.clone(), r.port), 0);
    }
    if wanted.is_empty() {
        printer::err("--forward: the env refers to no in-cluster Service; nothing forwarded");
        return Ok(Vec::new());
    }
    let client = ktwin_kube::connect(g).await.map_err(kube_failure)?;
    let mut tasks = Vec::new();
    let report = std::sync::Arc::new(|ev: Fwd| {
        if let Fwd::Failed {
            spec,
            local_port,
            message,
        } = ev
        {
            printer::err(&format!(
                "forward 127.0.0.1:{local_port} ({}): {message}",
                spec.describe()
            ));
        }
    });
    for ((ns, svc, port), local) in wanted.iter_mut() {
        let spec = Spec {
            namespace: ns.clone(),
            service: svc.clone(),
            port: *port,
            local_port: 0,
        };
        let (l, p) = bind(&spec).await.map_err(kube_failure)?;
        *local = p;
        tasks.push(tokio::spawn(serve(
            client.clone(),
            spec,
            l,
            p,
            report.clone(),
        )));
    }
    let local_of = |ns: &str, svc: &str, port: u16| {
        wanted
            .get(&(ns.to_string(), svc.to_string(), port))
            .copied()
    };
    for (v, rs) in e.vars.iter_mut().zip(&refs) {
        if rs.is_empty() {
            continue;
        }
        let to = rewrite(&v.value, rs, &|r| {
            local_of(&r.namespace, &r.service, r.port)
        });
        let what: Vec<String> = rs
            .iter()
            .filter_map(|r| {
                local_of(&r.namespace, &r.service, r.port).map(|l| {
                    format!(
                        "service/{} ({}) port {} → 127.0.0.1:{l}",
                        r.service, r.namespace, r.port
                    )
                })
            })
            .collect();
        printer::err(&format!("{}: {}", v.name, what.join(", ")));
        v.value = to;
    }
    // The link variables of the forwarded Services point at the forwards too.
    for v in e.vars.iter_mut() {
        let Some(svc) = v.source.strip_prefix("Service link ") else {
            continue;
        };
        let ns = e.namespace.clone();
        let fwd: Vec<(u16, u16)> = wanted
            .iter()
            .filter(|((n, s, _), _)| *n == ns && s == svc)
            .map(|((_, _, p), l)| (*p, *l))
            .collect();
        if fwd.is_empty() {
            continue;
        }
        let value = v.value.clone();
        if let Ok(p) = value.parse::<u16>() {
            if let Some((_, l)) = fwd.iter().find(|(sp, _)| *sp == p) {
                v.value = l.to_string();
            }
        } else if let Some(rest) = value.strip_prefix("tcp://") {
            if let Some((_, port)) = rest.rsplit_once(':') {
                if let Some((_, l)) = port
                    .parse::<u16>()
                    .ok()
                    .and_then(|p| fwd.iter().find(|(sp, _)| *sp == p))
                {
                    v.value = format!("tcp://127.0.0.1:{l}");
                }
            }
        } else if value.parse::<std::net::IpAddr>().is_ok() {
            v.value = "127.0.0.1".into();
        }
    }
    Ok(tasks)
}

/// SIGINT, SIGTERM and SIGHUP, taken over from ktwin's start (a signal before the child
/// runs is held and passed on once it does).
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Signals, Failure> {
        use tokio::signal::unix::{signal, SignalKind};
        let sig =
            |k| signal(k).map_err(|e| Failure::input(format!("cannot handle signals: {e}"), None));
        Ok(Signals {
            int: sig(SignalKind::interrupt())?,
            term: sig(SignalKind::terminate())?,
            hup: sig(SignalKind::hangup())?,
        })
    }
}

/// Run the child with this terminal; SIGINT reaches it from the terminal (same process
/// group) while ktwin waits; SIGTERM and SIGHUP sent to ktwin are passed on. Its exit code,
/// or 128 + the signal that ended it.
async fn run_child(cmd: &ktwin_engine::runner::Cmd, signals: Signals) -> Result<u8, Failure> {
    use std::os::unix::process::ExitStatusExt;
    // Registered at ktwin's start: ktwin itself does not die of the terminal's Ctrl-C (the
    // child gets it too, and decides).
    let Signals {
        mut int,
        mut term,
        mut hup,
    } = signals;
    let mut c = cmd
        .command()
        .map_err(|e| Failure::input(e.to_string(), None))?;
    c.stdin(std::process::Stdio::inherit());
    let mut child = c
        .spawn()
        .map_err(|e| Failure::input(format!("cannot run `{}`: {e}", cmd.display()), None))?;
    let pid = child.id().to_string();
    let mut wait = tokio::task::spawn_blocking(move || child.wait());
    // Through kill(1): the PID is this process's own child, not reaped while the wait runs.
    let pass = |s: &str| {
        let _ = ktwin_engine::runner::Cmd::new("kill")
            .args([s, pid.as_str()])
            .run();
    };
    let status = loop {
        tokio::select! {
            r = &mut wait => break r,
            _ = int.recv() => {}
            _ = term.recv() => pass("-TERM"),
            _ = hup.recv() => pass("-HUP"),
        }
    };
    let status = status
        .map_err(|e| Failure::input(format!("waiting for `{}`: {e}", cmd.display()), None))?
        .map_err(|e| Failure::input(format!("waiting for `{}`: {e}", cmd.display()), None))?;
    Ok(match (status.code(), status.signal()) {
        (Some(c), _) => u8::try_from(c).unwrap_or(1),
        (None, Some(s)) => u8::try_from(128 + s).unwrap_or(1),
        _ => 1,
    })
}
