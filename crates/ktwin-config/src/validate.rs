//! Semantic checks on a parsed project, each pointing at the field it is about.

use std::collections::HashMap;
use std::path::Path;

use crate::error::SourceDiag;
use crate::load::Loaded;
use crate::model::{Environment, LOCAL_ENV};
use crate::names;
use crate::pos::escape_token;

/// Node containers one laptop can reasonably run.
pub const MAX_NODES: u64 = 50;
pub const MAX_SERVERS: u32 = 7;

struct Ctx<'a> {
    loaded: &'a Loaded,
    out: Vec<SourceDiag>,
}

impl Ctx<'_> {
    fn err(&mut self, ptr: &str, msg: impl Into<String>, help: Option<String>) {
        self.push(ptr, false, msg, help)
    }
    fn err_key(&mut self, ptr: &str, msg: impl Into<String>, help: Option<String>) {
        self.push(ptr, true, msg, help)
    }
    fn push(&mut self, ptr: &str, key: bool, msg: impl Into<String>, help: Option<String>) {
        let pos = if key {
            self.loaded.pos.key(ptr)
        } else {
            self.loaded.pos.value(ptr)
        };
        let mut d = SourceDiag::new(&self.loaded.path, pos, msg);
        d.help = help.map(|h| crate::pos::clip_quoted(&h));
        self.out.push(d);
    }
}

/// Every problem in the project, in file order.
pub fn validate(loaded: &Loaded) -> Vec<SourceDiag> {
    let mut cx = Ctx {
        loaded,
        out: Vec::new(),
    };
    let p = &loaded.project;
    if p.api_version != crate::model::API_VERSION {
        cx.err(
            "/apiVersion",
            format!("unsupported apiVersion `{}`", p.api_version),
            Some(format!("use `apiVersion: {}`", crate::model::API_VERSION)),
        );
    }
    if p.kind != crate::model::KIND {
        cx.err(
            "/kind",
            format!("unsupported kind `{}`", p.kind),
            Some("use `kind: Project`".into()),
        );
    }
    if let Err(why) = names::dns_label(&p.name) {
        cx.err(
            "/name",
            format!("name `{}` is not a DNS label: {why}", p.name),
            Some(
                "use lowercase letters, digits and '-', at most 63 characters, e.g. `my-app`"
                    .into(),
            ),
        );
    }
    if let Some(n) = &p.cluster.name {
        if let Err(why) = names::dns_label(n) {
            cx.err(
                "/cluster/name",
                format!("cluster name `{n}` is not a DNS label: {why}"),
                None,
            );
        }
    }
    if let Some(v) = &p.cluster.kubernetes_version {
        if let Err(why) =
            crate::kube_version::KubeVersion::parse(v).and_then(|k| k.supported().map(|_| ()))
        {
            cx.err(
                "/cluster/kubernetesVersion",
                why,
                Some("use production's minor version, e.g. `kubernetesVersion: v1.31`".into()),
            );
        }
    }
    match p.cluster.provider {
        crate::model::Provider::Kind if !p.cluster.k3s_args.is_empty() => cx.err(
            "/cluster/k3sArgs",
            "k3sArgs are k3s arguments, and this cluster is kind",
            Some("kind takes `kubeadmConfigPatches`; or set `provider: k3d`".into()),
        ),
        crate::model::Provider::K3d if !p.cluster.kubeadm_config_patches.is_empty() => cx.err(
            "/cluster/kubeadmConfigPatches",
            "kubeadmConfigPatches are kind's, and this cluster is k3d",
            Some("k3d takes `k3sArgs` (e.g. `--disable=traefik`); or set `provider: kind`".into()),
        ),
        _ => {}
    }
    for (i, a) in p.cluster.k3s_args.iter().enumerate() {
        if a.chars().any(char::is_whitespace) {
            cx.err(
                &format!("/cluster/k3sArgs/{i}"),
                format!("`{a}` holds a space: k3d passes each entry to k3s as one argument"),
                Some("write the flag and its value with `=`, e.g. `--disable=traefik`".into()),
            );
        } else if !a.starts_with("--") {
            cx.err(
                &format!("/cluster/k3sArgs/{i}"),
                format!("`{a}` is not a k3s flag"),
                Some("write the flag with its value, e.g. `--disable=traefik`".into()),
            );
        }
    }
    if p.cluster.servers == 0 {
        cx.err(
            "/cluster/servers",
            "a cluster needs at least one server",
            Some("set `servers: 1`".into()),
        );
    }
    if p.cluster.servers > MAX_SERVERS {
        cx.err(
            "/cluster/servers",
            format!(
                "{} servers is more than a local twin can run (at most {MAX_SERVERS})",
                p.cluster.servers
            ),
            Some("one server is enough for a twin; three give an HA control plane".into()),
        );
    }
    let nodes = p
        .cluster
        .agents
        .iter()
        .fold(u64::from(p.cluster.servers), |n, a| n + u64::from(a.count));
    if nodes > MAX_NODES {
        let ptr = p
            .cluster
            .agents
            .iter()
            .position(|a| u64::from(a.count) > MAX_NODES / 2)
            .map(|i| format!("/cluster/agents/{i}/count"))
            .unwrap_or_else(|| "/cluster/agents".into());
        cx.err(
            &ptr,
            format!("the cluster would have {nodes} nodes; a local twin runs at most {MAX_NODES}"),
            Some("a twin needs one node per production pool, not the pool's production size: `count: 1` is usually right".into()),
        );
    }
    check_agents(&mut cx);
    check_ports(&mut cx);
    if let Err(why) = names::container_name(&p.registry.name) {
        cx.err(
            "/registry/name",
            format!(
                "registry name `{}` is not a valid container name: {why}",
                p.registry.name
            ),
            None,
        );
    }
    if p.registry.host_port == 0 {
        cx.err("/registry/hostPort", "hostPort must be 1–65535", None);
    }
    check_images(&mut cx);
    check_jobs(&mut cx);
    check_forwards(&mut cx);
    check_sync(&mut cx);
    for (env_name, env) in &p.environments {
        check_env(&mut cx, env_name, env);
    }
    let mut out = cx.out;
    out.sort_by_key(|d| d.pos.map(|p| p.offset).unwrap_or(usize::MAX));
    out
}

fn check_agents(cx: &mut Ctx<'_>) {
    let p = &cx.loaded.project;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, a) in p.cluster.agents.iter().enumerate() {
        let base = format!("/cluster/agents/{i}");
        if let Err(why) = names::dns_label(&a.name) {
            cx.err(
                &format!("{base}/name"),
                format!("pool name `{}` is not a DNS label: {why}", a.name),
                None,
            );
        }
        if let Some(first) = seen.insert(&a.name, i) {
            cx.err(
                &format!("{base}/name"),
                format!("pool `{}` is declared twice (also agents[{first}])", a.name),
                Some("give each pool a unique name, or raise `count`".into()),
            );
        }
        if a.count == 0 {
            cx.err(
                &format!("{base}/count"),
                "count must be at least 1",
                Some("remove the pool, or set `count: 1`".into()),
            );
        }
        for (k, v) in &a.labels {
            let ptr = format!("{base}/labels/{}", escape_token(k));
            if let Err(why) = names::label_key(k) {
                cx.err_key(&ptr, format!("invalid label key `{k}`: {why}"), None);
            } else if let Err(why) = names::kubelet_may_set(k) {
                cx.err_key(
                    &ptr,
                    format!("node label `{k}` cannot be set by the kubelet: {why}"),
                    Some(
                        "use your own prefix (e.g. `example.com/role`); a label under kubernetes.io or k8s.io must be \
                         one the NodeRestriction admission plugin lets a kubelet set on its own node"
                            .into(),
                    ),
                );
            }
            if let Err(why) = names::label_value(v) {
                cx.err(
                    &ptr,
                    format!("invalid label value `{v}` for `{k}`: {why}"),
                    None,
                );
            }
        }
        for (j, t) in a.taints.iter().enumerate() {
            if let Err(why) = names::parse_taint(t) {
                cx.err(
                    &format!("{base}/taints/{j}"),
                    format!("malformed taint `{t}`: {why}"),
                    Some("write taints as `key[=value]:Effect`, Effect one of NoSchedule, PreferNoSchedule, NoExecute — e.g. `dedicated=gpu:NoSchedule`".into()),
                );
            }
        }
    }
}

fn check_ports(cx: &mut Ctx<'_>) {
    let p = &cx.loaded.project;
    let mut by_host: HashMap<(u16, crate::model::Protocol), usize> = HashMap::new();
    for (i, port) in p.cluster.ports.iter().enumerate() {
        let base = format!("/cluster/ports/{i}");
        if !(30000..=32767).contains(&port.node_port) {
            cx.err(
                &format!("{base}/nodePort"),
                format!(
                    "nodePort {} is outside the NodePort range 30000–32767",
                    port.node_port
                ),
                Some(
                    "map the host port to the Service's nodePort, not to its port or targetPort"
                        .into(),
                ),
            );
        }
        if port.host_port == 0 {
            cx.err(
                &format!("{base}/hostPort"),
                "hostPort must be 1–65535",
                None,
            );
        }
        if let Some(first) = by_host.insert((port.host_port, port.protocol), i) {
            cx.err(
                &format!("{base}/hostPort"),
                format!(
                    "hostPort {} is mapped twice (also cluster.ports[{first}])",
                    port.host_port
                ),
                Some("a host port can reach only one nodePort; pick another hostPort".into()),
            );
        }
        if port.host_port == p.registry.host_port {
            cx.err(
                &format!("{base}/hostPort"),
                format!("hostPort {} is the registry's port", port.host_port),
                Some("change this hostPort or `registry.hostPort`".into()),
            );
        }
    }
}

fn check_sync(cx: &mut Ctx<'_>) {
    let loaded = cx.loaded;
    for (i, img) in loaded.project.images.iter().enumerate() {
        for (j, r) in img.sync.iter().enumerate() {
            let base = format!("/images/{i}/sync/{j}");
            let src = std::path::Path::new(&r.src);
            if r.src.is_empty()
                || src.is_absolute()
                || src
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                cx.err(
                    &format!("{base}/src"),
                    format!("sync src `{}` must be a path inside the image's context", r.src),
                    Some("write it relative to the context, e.g. `app/**/*.py` or `target/debug/gateway`".into()),
                );
            }
            if !r.dest.starts_with('/') {
                cx.err(
                    &format!("{base}/dest"),
                    format!(
                        "sync dest `{}` must be an absolute path in the container",
                        r.dest
                    ),
                    Some("e.g. `/app`".into()),
                );
            }
            if r.src.contains(['*', '?', '[', '{']) {
                if let Err(e) = globset::Glob::new(&r.src) {
                    cx.err(
                        &format!("{base}/src"),
                        format!("sync src `{}` is not a glob: {e}", r.src),
                        None,
                    );
                }
            }
        }
    }
}

fn check_forwards(cx: &mut Ctx<'_>) {
    let loaded = cx.loaded;
    for (env, e) in &loaded.project.environments {
        let mut seen: std::collections::BTreeMap<u16, usize> = Default::default();
        for (i, f) in e.forwards.iter().enumerate() {
            let base = format!("/environments/{env}/forwards/{i}");
            let local = f.local_port.unwrap_or(f.port);
            if f.port == 0 {
                cx.err(
                    &format!("{base}/port"),
                    "port 0 is not a Service port",
                    None,
                );
            }
            if let Some(first) = seen.insert(local, i) {
                cx.err(
                    &format!("{base}/localPort"),
                    format!("local port {local} is also forwards[{first}]'s"),
                    Some("give each forward its own `localPort`".into()),
                );
            }
            if local == loaded.project.registry.host_port {
                cx.err(
                    &format!("{base}/localPort"),
                    format!("local port {local} is the registry's hostPort"),
                    Some("pick another `localPort`".into()),
                );
            }
        }
    }
}

fn check_jobs(cx: &mut Ctx<'_>) {
    let loaded = cx.loaded;
    for (name, j) in &loaded.project.jobs {
        let base = format!("/jobs/{name}");
        // `<name>-<5 chars>` must stay a DNS label (Job and pod names derive from it).
        if let Err(why) = names::dns_label(name) {
            cx.err(
                &base,
                format!("job name `{name}` is not a DNS label: {why}"),
                Some("use lowercase letters, digits and '-', e.g. `agent-runner`".into()),
            );
        } else if name.len() > 50 {
            cx.err(
                &base,
                format!("job name `{name}` is longer than 50 characters; ktwin adds `-` and a 5-character id to it"),
                None,
            );
        }
        if j.image.trim().is_empty() {
            cx.err(
                &format!("{base}/image"),
                "a job needs an image",
                Some("e.g. `image: ghcr.io/acme/agent-runner`".into()),
            );
        }
        if let Some(ns) = &j.namespace {
            if let Err(why) = names::dns_label(ns) {
                cx.err(
                    &format!("{base}/namespace"),
                    format!("namespace `{ns}` is not a DNS label: {why}"),
                    None,
                );
            }
        }
        if j.run_as_user == Some(0) {
            cx.err(
                &format!("{base}/runAsUser"),
                "a ktwin job runs as non-root (runAsNonRoot: true); uid 0 would never start",
                Some("drop `runAsUser` (default 1000) or give a non-zero uid".into()),
            );
        }
    }
}

fn check_images(cx: &mut Ctx<'_>) {
    let loaded = cx.loaded;
    let dir = &loaded.dir;
    let images = &loaded.project.images;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, img) in images.iter().enumerate() {
        let base = format!("/images/{i}");
        let repo = crate::imageref::ImageRef::parse(&img.image);
        match repo {
            Ok(r) => {
                if let Some(first) = seen.insert(r.repository_key(), i) {
                    cx.err(
                        &format!("{base}/image"),
                        format!(
                            "image `{}` is declared twice (also images[{first}])",
                            img.image
                        ),
                        None,
                    );
                }
            }
            Err(why) => {
                cx.err(
                    &format!("{base}/image"),
                    format!("invalid image `{}`: {why}", img.image),
                    None,
                );
                continue;
            }
        }
        let ctx_dir = dir.join(&img.context);
        if !confined(
            cx,
            &format!("{base}/context"),
            &img.context,
            "build context",
        ) {
            continue;
        }
        if !ctx_dir.is_dir() {
            cx.err(
                &format!("{base}/context"),
                format!(
                    "build context `{}` does not exist ({})",
                    img.context,
                    ctx_dir.display()
                ),
                Some("paths are relative to the directory of ktwin.yaml".into()),
            );
            continue;
        }
        let dockerfile = ctx_dir.join(&img.dockerfile);
        let df_rel = format!("{}/{}", img.context, img.dockerfile);
        if !confined(cx, &format!("{base}/dockerfile"), &df_rel, "Dockerfile") {
            continue;
        }
        if !dockerfile.is_file() {
            cx.err(
                &format!("{base}/dockerfile"),
                format!(
                    "Dockerfile `{}` does not exist ({})",
                    img.dockerfile,
                    dockerfile.display()
                ),
                Some("`dockerfile` is relative to `context`".into()),
            );
        }
    }
}

/// A path ktwin.yaml names must resolve (after symlinks) inside the project root; true when
/// it does. Nothing is read.
fn confined(cx: &mut Ctx<'_>, ptr: &str, rel: &str, what: &str) -> bool {
    let inputs = cx.loaded.inputs();
    match inputs.check(&cx.loaded.dir.join(rel)) {
        Ok(_) => true,
        Err(crate::inputs::InputError::Outside { real, root, .. }) => {
            cx.err(
                ptr,
                format!(
                    "{what} `{}` resolves to {}, outside the project root {}",
                    crate::pos::clip(rel),
                    real.display(),
                    root.display()
                ),
                Some("ktwin reads only files inside the project (the git worktree holding ktwin.yaml); move or copy it in".into()),
            );
            false
        }
        // Missing paths are reported by the checks that follow.
        Err(_) => true,
    }
}

fn check_env(cx: &mut Ctx<'_>, name: &str, env: &Environment) {
    let base = format!("/environments/{}", escape_token(name));
    let local = name == LOCAL_ENV;
    let managed = cx.loaded.project.local_context();
    match (&env.context, local) {
        (None, false) => cx.err_key(
            &base,
            format!("environment `{name}` names no `context`"),
            Some(format!(
                "a remote environment must name its kube context explicitly, e.g. `context: my-{name}-cluster`"
            )),
        ),
        (Some(c), true) if *c != managed => cx.err(
            &format!("{base}/context"),
            format!("the local environment writes only to `{managed}`, not `{c}`"),
            Some("remove `context` from the local environment".into()),
        ),
        _ => {}
    }
    if !local && env.adapt != crate::model::Adapt::default() {
        cx.err_key(
            &format!("{base}/adapt"),
            format!("`adapt` applies only to the local environment, not `{name}`"),
            Some("use `patches` to change a remote environment's objects".into()),
        );
    }
    if let Some(ns) = &env.namespace {
        if let Err(why) = names::dns_label(ns) {
            cx.err(
                &format!("{base}/namespace"),
                format!("namespace `{ns}` is not a DNS label: {why}"),
                None,
            );
        }
    }
    for (i, m) in env.manifests.iter().enumerate() {
        let mp = format!("{base}/manifests/{i}");
        match m {
            crate::model::ManifestSource::Path(p) => {
                check_input_path(cx, &mp, p, "manifest source")
            }
            crate::model::ManifestSource::Helm { helm } => {
                let hp = format!("{mp}/helm");
                check_input_path(cx, &format!("{hp}/chart"), &helm.chart, "Helm chart");
                for (j, v) in helm.values.iter().enumerate() {
                    check_input_path(cx, &format!("{hp}/values/{j}"), v, "values file");
                }
                if let Some(r) = &helm.release {
                    if let Err(why) = names::dns_label(r) {
                        cx.err(
                            &format!("{hp}/release"),
                            format!("release name `{r}` is not a DNS label: {why}"),
                            None,
                        );
                    }
                }
                if let Some(ns) = &helm.namespace {
                    if let Err(why) = names::dns_label(ns) {
                        cx.err(
                            &format!("{hp}/namespace"),
                            format!("namespace `{ns}` is not a DNS label: {why}"),
                            None,
                        );
                    }
                }
            }
        }
    }
    for (i, s) in env.secrets.iter().enumerate() {
        let sp = format!("{base}/secrets/{i}");
        if let Err(why) = names::dns_subdomain(&s.name) {
            cx.err(
                &format!("{sp}/name"),
                format!("secret name `{}` is invalid: {why}", s.name),
                None,
            );
        }
        check_env_file(cx, &format!("{sp}/envFile"), &s.env_file);
    }
    for (i, p) in env.patches.iter().enumerate() {
        if p.json.is_some() == p.merge.is_some() {
            cx.err_key(
                &format!("{base}/patches/{i}"),
                "a patch needs exactly one of `json` (RFC 6902 operations) or `merge` (RFC 7396 document)",
                None,
            );
        }
    }
    for (i, e) in env.adapt.env.iter().enumerate() {
        if e.config_map.is_some() == e.container.is_some() {
            cx.err_key(
                &format!("{base}/adapt/env/{i}"),
                "an env override needs exactly one of `configMap` or `container`",
                None,
            );
        }
        if e.config_map.is_some() && e.workload.is_some() {
            cx.err(
                &format!("{base}/adapt/env/{i}/workload"),
                "`workload` narrows a `container` override; a ConfigMap override has none",
                None,
            );
        }
    }
    for (i, h) in env.health.iter().enumerate() {
        let n = [h.http.is_some(), h.tcp.is_some(), h.exec.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if n != 1 {
            cx.err_key(
                &format!("{base}/health/{i}"),
                format!(
                    "health check `{}` needs exactly one of `http`, `tcp` or `exec`",
                    h.name
                ),
                None,
            );
        }
        if h.expect.is_some() && h.http.is_none() {
            cx.err(
                &format!("{base}/health/{i}/expect"),
                "`expect` applies to `http` checks only",
                None,
            );
        }
    }
}

/// A path ktwin.yaml names for input: inside the project, and existing.
fn check_input_path(cx: &mut Ctx<'_>, ptr: &str, rel: &str, what: &str) {
    if !confined(cx, ptr, rel, what) {
        return;
    }
    let path = cx.loaded.dir.join(rel);
    if !path.exists() {
        cx.err(
            ptr,
            format!("{what} `{rel}` does not exist ({})", path.display()),
            Some("paths are relative to the directory of ktwin.yaml".into()),
        );
    }
}

/// A secrets env file must exist and must never reach git.
fn check_env_file(cx: &mut Ctx<'_>, ptr: &str, rel: &str) {
    if !confined(cx, ptr, rel, "env file") {
        return;
    }
    let path = cx.loaded.dir.join(rel);
    if !path.is_file() {
        let example = format!("{rel}.example");
        let help = if cx.loaded.dir.join(&example).is_file() {
            format!("create it from the example: cp {example} {rel}")
        } else {
            format!("create {rel} with one KEY=value per line")
        };
        cx.err(ptr, format!("env file `{rel}` does not exist"), Some(help));
        return;
    }
    match git_status(&cx.loaded.dir, Path::new(rel)) {
        GitStatus::NotARepo | GitStatus::Ignored => {}
        GitStatus::Tracked => cx.err(
            ptr,
            format!("env file `{rel}` is tracked by git: its secret values are in the repository"),
            Some(format!(
                "run `git rm --cached {rel}`, add `/{rel}` to .gitignore, and rotate the values it held"
            )),
        ),
        GitStatus::NotIgnored { gitignore } => cx.err(
            ptr,
            format!("env file `{rel}` is not ignored by git: one `git add .` would commit its secrets"),
            Some(format!("add the line `/{rel}` to {gitignore}")),
        ),
    }
}

enum GitStatus {
    NotARepo,
    Tracked,
    Ignored,
    NotIgnored { gitignore: String },
}

fn git_status(dir: &Path, rel: &Path) -> GitStatus {
    let git = |args: &[&std::ffi::OsStr]| crate::git::git(dir, args).ok_or(());
    let Some(top) = crate::git::toplevel(dir) else {
        return GitStatus::NotARepo;
    };
    let top = top.display().to_string();
    if let Ok(o) = git(&[
        "ls-files".as_ref(),
        "--error-unmatch".as_ref(),
        "--".as_ref(),
        rel.as_os_str(),
    ]) {
        if o.status.success() {
            return GitStatus::Tracked;
        }
    }
    match git(&[
        "check-ignore".as_ref(),
        "-q".as_ref(),
        "--".as_ref(),
        rel.as_os_str(),
    ]) {
        Ok(o) if o.status.success() => GitStatus::Ignored,
        _ => {
            let gi = dir.join(".gitignore");
            let shown = pathdiff(&gi, Path::new(&top));
            GitStatus::NotIgnored { gitignore: shown }
        }
    }
}

fn pathdiff(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}
