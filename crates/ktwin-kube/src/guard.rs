//! The context guard, by identity. A [`GuardedContext`] is the only thing [`crate::connect`]
//! accepts, and only this module can make one:
//!
//! - for the local twin, from the kubeconfig the provider reports for the cluster ktwin
//!   manages (`k3d kubeconfig get NAME`, `kind get kubeconfig --name NAME`), and only when its
//!   server is on this machine (loopback, `0.0.0.0` or `localhost`). A same-named context in
//!   the user's kubeconfig is never used; when it points elsewhere, [`same_name_elsewhere`]
//!   says so.
//! - for a remote environment, from the context ktwin.yaml names, and only while it still
//!   leads to the cluster recorded at the first deploy (the `kube-system` namespace UID and
//!   the server URL). A different cluster behind the same context is refused for writes
//!   unless the caller accepts it.
//!
//! Kubeconfig files are read here with YAML snippets off: an error names the file, line and
//! column, never a line of the file (it holds tokens and keys).

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Namespace;
use kube::config::{KubeConfigOptions, Kubeconfig, NamedCluster, NamedContext};
use kube::{Api, Client, Config};
use serde::{Deserialize, Serialize};

use crate::KubeError;

/// The largest kubeconfig file read (real ones are a few KiB; exec-plugin configs more).
const MAX_KUBECONFIG: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("{source_name}:{line}:{col}: not a valid kubeconfig")]
    BadKubeconfig {
        source_name: String,
        line: usize,
        col: usize,
    },
    #[error("cannot read the kubeconfig {path}: {why}")]
    UnreadableKubeconfig { path: String, why: String },
    #[error("{source_name} has no context named `{context}`")]
    NoContext {
        source_name: String,
        context: String,
    },
    #[error("context `{context}` in {source_name} names no cluster with a server URL")]
    NoServer {
        source_name: String,
        context: String,
    },
    #[error(
        "refusing to write the local twin through `{context}`: its server {server} is not on this machine"
    )]
    NotLocal { context: String, server: String },
    #[error(
        "context `{context}` now leads to a different cluster than the one environment `{env}` was first deployed to:\n  recorded: {} (kube-system uid {})\n  now:      {} (kube-system uid {})",
        recorded.server, recorded.kube_system_uid, now.server, now.kube_system_uid
    )]
    ClusterChanged {
        env: String,
        context: String,
        recorded: Box<Identity>,
        now: Box<Identity>,
    },
    #[error("{0}")]
    State(String),
}

impl GuardError {
    pub fn help(&self) -> Option<String> {
        Some(match self {
            GuardError::BadKubeconfig { .. } => {
                "fix the YAML at that line (`kubectl config view` shows what kubectl makes of it)"
                    .into()
            }
            GuardError::NoContext { .. } => {
                "`kubectl config get-contexts` lists the contexts; set the environment's `context:` to one of them"
                    .into()
            }
            GuardError::NotLocal { .. } => "ktwin writes the local environment only to a cluster on this machine; a cluster on a remote Docker host is a remote environment: give it its own `environments.<name>.context`".into(),
            GuardError::ClusterChanged { .. } => "if the cluster was rebuilt on purpose, pass --accept-new-cluster to record the new one".into(),
            _ => return None,
        })
    }
}

/// A kube context that passed the guard. Holds a kubeconfig with exactly that one context,
/// its cluster and its user.
#[derive(Clone)]
pub struct GuardedContext {
    env: String,
    context: String,
    server: String,
    kubeconfig: Kubeconfig,
    /// Where the credentials came from (for messages).
    source_name: String,
}

impl std::fmt::Debug for GuardedContext {
    // Never the kubeconfig: it holds credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedContext")
            .field("env", &self.env)
            .field("context", &self.context)
            .field("server", &self.server)
            .finish()
    }
}

impl GuardedContext {
    pub fn env(&self) -> &str {
        &self.env
    }
    pub fn context(&self) -> &str {
        &self.context
    }
    pub fn server(&self) -> &str {
        &self.server
    }
    pub fn source_name(&self) -> &str {
        &self.source_name
    }
    /// "k3d-swarm at https://0.0.0.0:6443", as every write path's first line names it.
    pub fn describe(&self) -> String {
        format!("{} at {}", self.context, self.server)
    }

    /// A private kubeconfig file (0600) holding only this context, for a tool that must be
    /// pointed at exactly this cluster (`kubectl exec`); removed when dropped.
    pub fn kubeconfig_file(&self) -> std::io::Result<KubeconfigFile> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("ktwin-kubeconfig-{}-{n}.yaml", std::process::id()));
        let text = serde_saphyr::to_string(&self.kubeconfig).map_err(std::io::Error::other)?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(text.as_bytes())?;
        Ok(KubeconfigFile { path })
    }
}

/// See [`GuardedContext::kubeconfig_file`].
#[derive(Debug)]
pub struct KubeconfigFile {
    pub path: PathBuf,
}

impl Drop for KubeconfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Parse kubeconfig text (one or more YAML documents, merged first-wins as kubectl does).
pub fn parse_kubeconfig(text: &str, source_name: &str) -> Result<Kubeconfig, GuardError> {
    let bad = |e: Option<&serde_saphyr::Error>| {
        let (line, col) = e
            .and_then(|e| e.location())
            .map(|l| (l.line() as usize, l.column() as usize))
            .unwrap_or((1, 1));
        GuardError::BadKubeconfig {
            source_name: source_name.into(),
            line,
            col,
        }
    };
    let docs: Vec<Kubeconfig> =
        serde_saphyr::from_multiple_with_options(text, ktwin_config::load::yaml_options())
            .map_err(|e| bad(Some(&e)))?;
    docs.into_iter()
        .try_fold(Kubeconfig::default(), Kubeconfig::merge)
        .map_err(|_| bad(None))
}

/// The user's kubeconfig from `paths` (what `$KUBECONFIG` lists, else `~/.kube/config`; the
/// plan reads the environment): missing files skipped, as kubectl does; merged first-wins.
/// Relative certificate and key paths are made absolute against each file's directory.
pub fn user_kubeconfig(paths: &[PathBuf]) -> Result<Kubeconfig, GuardError> {
    let mut merged = Kubeconfig::default();
    for p in paths {
        let Some(kc) = read_kubeconfig_file(p)? else {
            continue;
        };
        merged = merged.merge(kc).map_err(|_| GuardError::BadKubeconfig {
            source_name: p.display().to_string(),
            line: 1,
            col: 1,
        })?;
    }
    Ok(merged)
}

/// One kubeconfig file; `None` when it does not exist.
fn read_kubeconfig_file(p: &Path) -> Result<Option<Kubeconfig>, GuardError> {
    let unreadable = |why: String| GuardError::UnreadableKubeconfig {
        path: p.display().to_string(),
        why,
    };
    let meta = match std::fs::metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unreadable(e.to_string())),
    };
    if !meta.is_file() {
        return Err(unreadable("not a regular file".into()));
    }
    if meta.len() > MAX_KUBECONFIG {
        return Err(unreadable(format!(
            "{} bytes, over the {MAX_KUBECONFIG}-byte limit",
            meta.len()
        )));
    }
    let bytes = std::fs::read(p).map_err(|e| unreadable(e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|_| unreadable("not UTF-8 text".into()))?;
    let name = p.display().to_string();
    // Validated with ktwin's snippet-free parser first; then read by kube-rs, which also
    // resolves relative file references against the file's directory.
    parse_kubeconfig(&text, &name)?;
    Kubeconfig::read_from(p)
        .map(Some)
        .map_err(|_| GuardError::BadKubeconfig {
            source_name: name,
            line: 1,
            col: 1,
        })
}

fn named_context<'a>(kc: &'a Kubeconfig, context: &str) -> Option<&'a NamedContext> {
    kc.contexts.iter().find(|c| c.name == context)
}

fn cluster_of<'a>(kc: &'a Kubeconfig, ctx: &NamedContext) -> Option<&'a NamedCluster> {
    let cluster = &ctx.context.as_ref()?.cluster;
    kc.clusters.iter().find(|c| &c.name == cluster)
}

/// The server URL `context` leads to in `kc`, if any.
pub fn server_of(kc: &Kubeconfig, context: &str) -> Option<String> {
    let ctx = named_context(kc, context)?;
    cluster_of(kc, ctx)?.cluster.as_ref()?.server.clone()
}

/// `kc` cut down to `context`, its cluster and its user, with that context current.
fn only(
    kc: &Kubeconfig,
    context: &str,
    source_name: &str,
) -> Result<(Kubeconfig, String), GuardError> {
    let ctx = named_context(kc, context).ok_or_else(|| GuardError::NoContext {
        source_name: source_name.into(),
        context: context.into(),
    })?;
    let no_server = || GuardError::NoServer {
        source_name: source_name.into(),
        context: context.into(),
    };
    let cluster = cluster_of(kc, ctx).ok_or_else(no_server)?;
    let server = cluster
        .cluster
        .as_ref()
        .and_then(|c| c.server.clone())
        .ok_or_else(no_server)?;
    let user = ctx.context.as_ref().and_then(|c| c.user.clone());
    let out = Kubeconfig {
        clusters: vec![cluster.clone()],
        auth_infos: kc
            .auth_infos
            .iter()
            .filter(|a| Some(&a.name) == user.as_ref())
            .cloned()
            .collect(),
        contexts: vec![ctx.clone()],
        current_context: Some(context.into()),
        api_version: kc.api_version.clone(),
        kind: kc.kind.clone(),
        ..Default::default()
    };
    Ok((out, server))
}

/// The host part of a server URL (`https://[::1]:6443` → `::1`).
pub fn server_host(server: &str) -> &str {
    let rest = server.split_once("://").map_or(server, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("");
    }
    authority.split(':').next().unwrap_or("")
}

/// Is this server on this machine?
pub fn is_local_server(server: &str) -> bool {
    let host = server_host(server);
    if host.eq_ignore_ascii_case("localhost") || host == "0.0.0.0" {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// The local twin: `context` from the kubeconfig text the provider reported (`tool` names
/// where it came from). Refused unless its server is on this machine.
pub fn local(
    env: &str,
    context: &str,
    provider_kubeconfig: &str,
    tool: &str,
) -> Result<GuardedContext, GuardError> {
    let source_name = format!("the kubeconfig {tool} reports");
    let kc = parse_kubeconfig(provider_kubeconfig, &source_name)?;
    let (kubeconfig, server) = only(&kc, context, &source_name)?;
    if !is_local_server(&server) {
        return Err(GuardError::NotLocal {
            context: context.into(),
            server,
        });
    }
    Ok(GuardedContext {
        env: env.into(),
        context: context.into(),
        server,
        kubeconfig,
        source_name,
    })
}

/// When the user's kubeconfig has a context of the twin's name that leads elsewhere: the
/// warning naming both servers (that context is never contacted).
pub fn same_name_elsewhere(g: &GuardedContext, user: &Kubeconfig) -> Option<String> {
    let theirs = server_of(user, &g.context)?;
    (theirs != g.server).then(|| {
        format!(
            "warning: your kubeconfig's context `{}` points at {theirs}, not at the twin ({}); ktwin uses the kubeconfig {} instead and never contacts {theirs}",
            g.context, g.server, g.source_name.trim_start_matches("the kubeconfig ")
        )
    })
}

/// What a remote environment's cluster was the first time ktwin deployed to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub context: String,
    pub server: String,
    pub kube_system_uid: String,
}

/// Why the remote guard is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Reading: a changed cluster is a warning.
    Read,
    /// Writing: a changed cluster is refused unless accepted; the first write records it.
    Write { accept_new_cluster: bool },
}

/// A remote environment: `context` from the user's kubeconfig, checked against the identity
/// recorded in `record` (a state file). Contacts the cluster once, read-only (the
/// `kube-system` namespace). Returns the context and, for reads, a warning when the cluster
/// changed.
pub async fn remote(
    env: &str,
    context: &str,
    user: &Kubeconfig,
    record: &Path,
    intent: Intent,
) -> Result<(GuardedContext, Option<String>), KubeError> {
    let source_name = "your kubeconfig".to_string();
    let (kubeconfig, server) = only(user, context, &source_name)?;
    let g = GuardedContext {
        env: env.into(),
        context: context.into(),
        server,
        kubeconfig,
        source_name,
    };
    let client = connect(&g).await?;
    let ns: Api<Namespace> = Api::all(client);
    let uid = ns
        .get("kube-system")
        .await
        .map_err(|e| crate::api_err("namespace/kube-system", &e))?
        .metadata
        .uid
        .unwrap_or_default();
    let now = Identity {
        context: context.into(),
        server: g.server.clone(),
        kube_system_uid: uid,
    };
    let state = |e: ktwin_config::state::StateError| {
        KubeError::from(GuardError::State(format!("{e} ({})", e.help())))
    };
    let recorded: Option<Identity> = ktwin_config::state::read_json(record).map_err(state)?;
    let mut warning = None;
    match (recorded, intent) {
        (Some(r), _) if r.kube_system_uid == now.kube_system_uid => {}
        (None, Intent::Read) => {}
        (None, Intent::Write { .. })
        | (
            Some(_),
            Intent::Write {
                accept_new_cluster: true,
            },
        ) => {
            ktwin_config::state::write_json(record, &now).map_err(state)?;
        }
        (Some(r), intent) => {
            let e = GuardError::ClusterChanged {
                env: env.into(),
                context: context.into(),
                recorded: Box::new(r),
                now: Box::new(now),
            };
            if intent == Intent::Read {
                warning = Some(format!("warning: {e}"));
            } else {
                return Err(e.into());
            }
        }
    }
    Ok((g, warning))
}

/// A client for a guarded context, built from the kubeconfig the guard holds (no file is
/// read again).
pub async fn connect(g: &GuardedContext) -> Result<Client, KubeError> {
    let opts = KubeConfigOptions {
        context: Some(g.context.clone()),
        ..Default::default()
    };
    let cfg = Config::from_custom_kubeconfig(g.kubeconfig.clone(), &opts)
        .await
        .map_err(|e| {
            KubeError::Kubeconfig(format!(
                "context `{}`: {}",
                g.context,
                kubeconfig_reason(&e)
            ))
        })?;
    Client::try_from(cfg).map_err(|e| KubeError::Connect {
        context: g.context.clone(),
        message: e.to_string(),
    })
}

/// A kubeconfig error without any of the file's content.
fn kubeconfig_reason(e: &kube::config::KubeconfigError) -> String {
    use kube::config::KubeconfigError as K;
    match e {
        K::LoadContext(c) => format!("no context `{c}`"),
        K::LoadClusterOfContext(c) => format!("no cluster `{c}`"),
        K::ParseClusterUrl(_) => "the cluster's server is not a valid URL".into(),
        K::ParseProxyUrl(_) => "the cluster's proxy-url is not a valid URL".into(),
        K::LoadCertificateAuthority(_) => "cannot load the certificate authority".into(),
        K::LoadClientCertificate(_) => "cannot load the client certificate".into(),
        K::LoadClientKey(_) => "cannot load the client key".into(),
        _ => "its credentials cannot be used".into(),
    }
}

impl From<GuardError> for KubeError {
    fn from(e: GuardError) -> KubeError {
        KubeError::Guard(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kc(server: &str, extra: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: '{server}'}}\ncontexts:\n- name: k3d-swarm\n  context: {{cluster: c, user: u}}\n{extra}current-context: k3d-swarm\nusers:\n- name: u\n  user: {{token: SUPERSECRETKUBETOKEN123}}\n- name: other\n  user: {{token: OTHERTOKEN}}\n"
        )
    }

    #[test]
    fn local_accepts_only_servers_on_this_machine() {
        for s in [
            "https://0.0.0.0:6443",
            "https://127.0.0.1:41234",
            "https://127.0.0.53:1",
            "https://localhost:6443",
            "https://[::1]:6443",
        ] {
            let g = local("local", "k3d-swarm", &kc(s, ""), "k3d").unwrap();
            assert_eq!(g.server(), s);
            assert_eq!(g.describe(), format!("k3d-swarm at {s}"));
        }
        for s in [
            "https://10.0.0.5:6443",
            "https://k8s.example.com",
            "https://localhost.example.com:6443",
        ] {
            let e = local("local", "k3d-swarm", &kc(s, ""), "k3d").unwrap_err();
            assert!(matches!(e, GuardError::NotLocal { .. }), "{s}: {e}");
        }
        let e = local("local", "k3d-other", &kc("https://0.0.0.0:1", ""), "k3d").unwrap_err();
        assert!(matches!(e, GuardError::NoContext { .. }));
    }

    #[test]
    fn the_guarded_kubeconfig_holds_only_its_own_user() {
        let g = local("local", "k3d-swarm", &kc("https://0.0.0.0:1", ""), "k3d").unwrap();
        assert_eq!(g.kubeconfig.auth_infos.len(), 1);
        assert_eq!(g.kubeconfig.auth_infos[0].name, "u");
        assert!(!format!("{g:?}").contains("SUPERSECRET"));
    }

    #[test]
    fn kubeconfig_errors_name_the_line_never_the_content() {
        let text = "apiVersion: v1\nusers:\n- name: u\n  user:\n    token: SUPERSECRETKUBETOKEN123\n    client-key-data: \"LS0tLS1CRUdJTi\"\n   bad: indent\n";
        let e = parse_kubeconfig(text, "/home/u/.kube/config").unwrap_err();
        let shown = format!("{e} {:?}", e.help());
        assert!(shown.starts_with("/home/u/.kube/config:"), "{shown}");
        assert!(
            !shown.contains("SUPERSECRET") && !shown.contains("LS0tLS1"),
            "{shown}"
        );
        let e = parse_kubeconfig("users: {token: SUPERSECRET}\n", "k").unwrap_err();
        assert!(!e.to_string().contains("SUPERSECRET"), "{e}");
    }

    #[test]
    fn a_same_named_context_elsewhere_is_named_not_used() {
        let g = local("local", "k3d-swarm", &kc("https://0.0.0.0:6443", ""), "k3d").unwrap();
        let user = parse_kubeconfig(&kc("https://prod.example.com:443", ""), "u").unwrap();
        let w = same_name_elsewhere(&g, &user).unwrap();
        assert!(
            w.contains("https://prod.example.com:443") && w.contains("https://0.0.0.0:6443"),
            "{w}"
        );
        let same = parse_kubeconfig(&kc("https://0.0.0.0:6443", ""), "u").unwrap();
        assert_eq!(same_name_elsewhere(&g, &same), None);
    }

    #[test]
    fn the_private_kubeconfig_file_holds_one_context_and_goes_away() {
        use std::os::unix::fs::PermissionsExt;
        let g = local("local", "k3d-swarm", &kc("https://0.0.0.0:6443", ""), "k3d").unwrap();
        let f = g.kubeconfig_file().unwrap();
        let meta = std::fs::metadata(&f.path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let back = parse_kubeconfig(&std::fs::read_to_string(&f.path).unwrap(), "f").unwrap();
        assert_eq!(back.contexts.len(), 1);
        assert_eq!(
            server_of(&back, "k3d-swarm").unwrap(),
            "https://0.0.0.0:6443"
        );
        let path = f.path.clone();
        drop(f);
        assert!(!path.exists());
    }

    #[test]
    fn server_hosts() {
        assert_eq!(server_host("https://u:p@1.2.3.4:6443/x"), "1.2.3.4");
        assert_eq!(server_host("https://[::1]:6443"), "::1");
        assert_eq!(server_host("http://localhost"), "localhost");
    }
}
