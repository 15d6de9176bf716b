//! The environment and config files a rendered container would get, computed without a pod
//! (`ktwin exec --as WORKLOAD`): what the kubelet builds, in its order —
//! Service-link variables of the namespace's Services, then `envFrom`, then `env` (each later
//! source replacing an earlier name), `$(VAR)` references expanded against what came before —
//! with ConfigMap and Secret values taken from the render, downward-API fields that need a
//! pod given stated stand-in values, and the ConfigMap/Secret volumes the container mounts as
//! files. What cannot be known here is a [`Note`], never a guess passed off as the real value.
//!
//! Facts from the kubelet (k8s.io/kubernetes): pkg/kubelet/kubelet_pods.go
//! `makeEnvironmentVariables` (order and precedence; `enableServiceLinks`), pkg/kubelet/envvars
//! `FromServices` (names, services without a cluster IP skipped), third_party/forked/golang/
//! expansion (`$(VAR)` and `$$`).

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value;

use crate::doc::pod_spec_pointer;

/// One variable and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Var {
    pub name: String,
    pub value: String,
    /// `env value`, `ConfigMap shop/web-config key LOG_LEVEL`, `Service link api`, …
    pub source: String,
    /// From a Secret: never printed by ktwin unless asked.
    pub secret: bool,
}

/// A file of a ConfigMap or Secret volume, relative to its volume's directory.
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    pub path: String,
    pub bytes: Vec<u8>,
}

/// A ConfigMap or Secret volume the container mounts.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    pub volume: String,
    pub mount_path: String,
    /// `ConfigMap shop/web-config` / `Secret shop/db`.
    pub source: String,
    pub secret: bool,
    pub files: Vec<File>,
    /// `subPath`: the container sees only this file or directory of the volume there.
    pub sub_path: Option<String>,
}

/// What could not be resolved without a pod, or was filled with a stand-in.
#[derive(Debug, Clone, PartialEq)]
pub struct Note(pub String);

#[derive(Debug, Clone, Default)]
pub struct PodEnv {
    pub workload: String,
    pub container: String,
    pub namespace: String,
    pub vars: Vec<Var>,
    pub mounts: Vec<Mount>,
    pub notes: Vec<Note>,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("{0}")]
    NotFound(String),
}

/// A name the kubelet accepts for a variable from `envFrom` (a C identifier, or with `.`
/// and `-` as the API validation allows).
fn valid_name(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
}

/// `$(NAME)` replaced by NAME's value when defined, `$$` by `$`; anything else as written.
pub fn expand(s: &str, defined: &BTreeMap<String, String>) -> String {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            if b[i + 1] == b'$' {
                out.push('$');
                i += 2;
                continue;
            }
            if b[i + 1] == b'(' {
                if let Some(end) = s[i + 2..].find(')') {
                    let name = &s[i + 2..i + 2 + end];
                    match defined.get(name) {
                        Some(v) => out.push_str(v),
                        None => out.push_str(&s[i..i + 3 + end]),
                    }
                    i += 3 + end;
                    continue;
                }
            }
        }
        let ch = s[i..].chars().next().unwrap_or('\0');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn find<'a>(docs: &'a [Value], kind: &str, ns: &str, name: &str) -> Option<&'a Value> {
    docs.iter().find(|d| {
        d["kind"] == kind
            && d["metadata"]["name"] == name
            && d["metadata"]["namespace"].as_str().unwrap_or("default") == ns
    })
}

/// A ConfigMap's or Secret's keys and values, as the pod would read them.
fn data(obj: &Value) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let b64 = base64::engine::general_purpose::STANDARD;
    if obj["kind"] == "Secret" {
        for (k, v) in obj["data"].as_object().into_iter().flatten() {
            if let Some(bytes) = v.as_str().and_then(|s| b64.decode(s).ok()) {
                out.insert(k.clone(), bytes);
            }
        }
        // stringData is merged over data on write.
        for (k, v) in obj["stringData"].as_object().into_iter().flatten() {
            out.insert(k.clone(), v.as_str().unwrap_or("").as_bytes().to_vec());
        }
    } else {
        for (k, v) in obj["data"].as_object().into_iter().flatten() {
            out.insert(k.clone(), v.as_str().unwrap_or("").as_bytes().to_vec());
        }
        for (k, v) in obj["binaryData"].as_object().into_iter().flatten() {
            if let Some(bytes) = v.as_str().and_then(|s| b64.decode(s).ok()) {
                out.insert(k.clone(), bytes);
            }
        }
    }
    out
}

/// `API_SERVER` for a Service named `api-server`.
fn env_name(s: &str) -> String {
    s.replace('-', "_").to_uppercase()
}

/// The Service-link variables of one Service at `ip` (pkg/kubelet/envvars).
pub fn service_links(svc: &Value, ip: &str) -> Vec<(String, String)> {
    let name = env_name(svc["metadata"]["name"].as_str().unwrap_or(""));
    let ports: Vec<&Value> = svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let Some(first) = ports.first() else {
        return vec![];
    };
    let mut v = vec![
        (format!("{name}_SERVICE_HOST"), ip.to_string()),
        (format!("{name}_SERVICE_PORT"), first["port"].to_string()),
    ];
    for p in &ports {
        if let Some(pn) = p["name"].as_str().filter(|n| !n.is_empty()) {
            v.push((
                format!("{name}_SERVICE_PORT_{}", env_name(pn)),
                p["port"].to_string(),
            ));
        }
    }
    let host = |port: &Value| {
        if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        }
    };
    for (i, p) in ports.iter().enumerate() {
        let proto = p["protocol"].as_str().unwrap_or("TCP");
        let lower = proto.to_lowercase();
        if i == 0 {
            v.push((
                format!("{name}_PORT"),
                format!("{lower}://{}", host(&p["port"])),
            ));
        }
        let pp = format!("{name}_PORT_{}_{}", p["port"], proto.to_uppercase());
        v.push((pp.clone(), format!("{lower}://{}", host(&p["port"]))));
        v.push((format!("{pp}_PROTO"), lower.clone()));
        v.push((format!("{pp}_PORT"), p["port"].to_string()));
        v.push((format!("{pp}_ADDR"), ip.to_string()));
    }
    v
}

/// The stand-in value of a downward-API field that only a pod has, and what it stands for.
fn field_ref(
    path: &str,
    meta: &Value,
    pod: &Value,
    ns: &str,
    workload: &str,
) -> Result<(String, Option<String>), String> {
    let label = |prefix: &str| -> Option<String> {
        let rest = path.strip_prefix(prefix)?;
        Some(
            rest.trim_start_matches("['")
                .trim_end_matches("']")
                .to_string(),
        )
    };
    Ok(match path {
        "metadata.namespace" => (ns.to_string(), None),
        "metadata.name" => (
            format!("{workload}-ktwin-exec"),
            Some("the pod's name (none: the process runs on this machine)".into()),
        ),
        "metadata.uid" => (
            "00000000-0000-0000-0000-000000000000".into(),
            Some("the pod's uid".into()),
        ),
        "spec.nodeName" => ("localhost".into(), Some("the node's name".into())),
        "spec.serviceAccountName" => (
            pod["serviceAccountName"]
                .as_str()
                .unwrap_or("default")
                .to_string(),
            None,
        ),
        "status.podIP" | "status.hostIP" | "status.podIPs" | "status.hostIPs" => {
            ("127.0.0.1".into(), Some(format!("{path} (this machine)")))
        }
        _ => {
            if let Some(k) = label("metadata.labels") {
                (meta["labels"][&k].as_str().unwrap_or("").to_string(), None)
            } else if let Some(k) = label("metadata.annotations") {
                (
                    meta["annotations"][&k].as_str().unwrap_or("").to_string(),
                    None,
                )
            } else {
                return Err(format!("fieldRef {path} has no value outside a pod"));
            }
        }
    })
}

/// A `resourceFieldRef`: the container's own request or limit, in `divisor` units rounded
/// up as the kubelet does; `None` when unset (the pod would get the node's allocatable).
fn resource_ref(r: &Value, container: &Value) -> Option<String> {
    let res = r["resource"].as_str()?;
    let (which, what) = res.split_once('.')?;
    let q = crate::quantity::parse_value(&container["resources"][which][what])?;
    let div = crate::quantity::parse_value(&r["divisor"]).unwrap_or(1.0);
    Some(format!("{}", (q / div).ceil() as i64))
}

/// The environment `container` (or the workload's default container) of `workload` would
/// get. `docs` is the rendered environment; `service_ips` the live cluster IPs by
/// (namespace, Service name), when the twin is up.
pub fn resolve(
    docs: &[Value],
    workload: &Value,
    container: Option<&str>,
    service_ips: &BTreeMap<(String, String), String>,
) -> Result<PodEnv, EnvError> {
    let kind = workload["kind"].as_str().unwrap_or("");
    let wname = workload["metadata"]["name"].as_str().unwrap_or("");
    let ns = workload["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let ptr = pod_spec_pointer(kind).ok_or_else(|| {
        EnvError::NotFound(format!(
            "{}/{wname} has no pod template",
            kind.to_lowercase()
        ))
    })?;
    let pod = workload.pointer(ptr).cloned().unwrap_or_default();
    let meta = workload
        .pointer(&format!("{}/metadata", ptr.trim_end_matches("/spec")))
        .cloned()
        .unwrap_or_default();
    let containers: Vec<&Value> = pod["containers"].as_array().into_iter().flatten().collect();
    let default_name = meta["annotations"]["kubectl.kubernetes.io/default-container"].as_str();
    let c = match container.or(default_name) {
        Some(n) => containers
            .iter()
            .find(|c| c["name"] == n)
            .copied()
            .ok_or_else(|| {
                EnvError::NotFound(format!(
                    "{}/{wname} has no container `{n}`; it has {}",
                    kind.to_lowercase(),
                    containers
                        .iter()
                        .filter_map(|c| c["name"].as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?,
        None => containers.first().copied().ok_or_else(|| {
            EnvError::NotFound(format!("{}/{wname} has no container", kind.to_lowercase()))
        })?,
    };
    let cname = c["name"].as_str().unwrap_or("").to_string();
    let mut out = PodEnv {
        workload: format!("{}/{wname}", kind.to_lowercase()),
        container: cname.clone(),
        namespace: ns.clone(),
        ..PodEnv::default()
    };
    let mut vars: Vec<Var> = Vec::new();
    let set = |vars: &mut Vec<Var>, v: Var| {
        vars.retain(|x| x.name != v.name);
        vars.push(v);
    };
    // 1. Service links, unless the pod turns them off. The `kubernetes` Service's are left
    // out: the process reaches the API through the KUBECONFIG ktwin gives it, and its
    // variables would make client libraries try an in-cluster config without a token.
    if pod["enableServiceLinks"] != false {
        let mut svcs: Vec<&Value> = docs
            .iter()
            .filter(|d| {
                d["kind"] == "Service"
                    && d["metadata"]["namespace"].as_str().unwrap_or("default") == ns
            })
            .collect();
        svcs.sort_by_key(|s| s["metadata"]["name"].as_str().unwrap_or("").to_string());
        let mut missing = Vec::new();
        for s in svcs {
            let sname = s["metadata"]["name"].as_str().unwrap_or("");
            let cluster_ip = s["spec"]["clusterIP"].as_str();
            if matches!(cluster_ip, Some("None")) {
                continue; // headless: no variables (pkg/kubelet/envvars skips it)
            }
            let Some(ip) = service_ips.get(&(ns.clone(), sname.to_string())) else {
                missing.push(sname.to_string());
                continue;
            };
            if ip.is_empty() || ip == "None" {
                continue;
            }
            for (k, v) in service_links(s, ip) {
                set(
                    &mut vars,
                    Var {
                        name: k,
                        value: v,
                        source: format!("Service link {sname}"),
                        secret: false,
                    },
                );
            }
        }
        if !missing.is_empty() {
            out.notes.push(Note(format!(
                "Service-link variables of {} left out: not deployed, so no cluster IP yet (`ktwin up` first)",
                missing.join(", ")
            )));
        }
    }
    // 2. envFrom.
    for ef in c["envFrom"].as_array().into_iter().flatten() {
        let prefix = ef["prefix"].as_str().unwrap_or("");
        let (kind, r) = if ef["configMapRef"].is_object() {
            ("ConfigMap", &ef["configMapRef"])
        } else if ef["secretRef"].is_object() {
            ("Secret", &ef["secretRef"])
        } else {
            continue;
        };
        let name = r["name"].as_str().unwrap_or("");
        let Some(obj) = find(docs, kind, &ns, name) else {
            if r["optional"] != true {
                out.notes.push(Note(format!(
                    "envFrom {kind} {ns}/{name} is not in the render: the pod would not start (CreateContainerConfigError)"
                )));
            }
            continue;
        };
        let mut invalid = Vec::new();
        for (k, bytes) in data(obj) {
            let key = format!("{prefix}{k}");
            if !valid_name(&key) {
                invalid.push(key);
                continue;
            }
            set(
                &mut vars,
                Var {
                    name: key,
                    value: String::from_utf8_lossy(&bytes).into_owned(),
                    source: format!("envFrom {kind} {ns}/{name}"),
                    secret: kind == "Secret",
                },
            );
        }
        if !invalid.is_empty() {
            out.notes.push(Note(format!(
                "envFrom {kind} {ns}/{name}: keys that are not variable names are skipped, as the kubelet skips them: {}",
                invalid.join(", ")
            )));
        }
    }
    // 3. env, each entry expanded against what is defined before it.
    for e in c["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap_or("").to_string();
        let defined: BTreeMap<String, String> = vars
            .iter()
            .map(|v| (v.name.clone(), v.value.clone()))
            .collect();
        if let Some(v) = e.get("value").and_then(Value::as_str) {
            let secret_input = vars
                .iter()
                .any(|x| x.secret && v.contains(&format!("$({})", x.name)));
            set(
                &mut vars,
                Var {
                    name,
                    value: expand(v, &defined),
                    source: "env value".into(),
                    secret: secret_input,
                },
            );
            continue;
        }
        let vf = &e["valueFrom"];
        let key_ref = |kind: &str, r: &Value, out: &mut PodEnv| -> Option<(String, String)> {
            let n = r["name"].as_str().unwrap_or("");
            let k = r["key"].as_str().unwrap_or("");
            let got = find(docs, kind, &ns, n).and_then(|o| data(o).get(k).cloned());
            match got {
                Some(b) => Some((
                    String::from_utf8_lossy(&b).into_owned(),
                    format!("{kind} {ns}/{n} key {k}"),
                )),
                None => {
                    if r["optional"] != true {
                        out.notes.push(Note(format!(
                            "{name}: {kind} {ns}/{n} key {k} is not in the render: the pod would not start (CreateContainerConfigError)"
                        )));
                    }
                    None
                }
            }
        };
        if vf["configMapKeyRef"].is_object() {
            if let Some((value, source)) = key_ref("ConfigMap", &vf["configMapKeyRef"], &mut out) {
                set(
                    &mut vars,
                    Var {
                        name,
                        value,
                        source,
                        secret: false,
                    },
                );
            }
        } else if vf["secretKeyRef"].is_object() {
            if let Some((value, source)) = key_ref("Secret", &vf["secretKeyRef"], &mut out) {
                set(
                    &mut vars,
                    Var {
                        name,
                        value,
                        source,
                        secret: true,
                    },
                );
            }
        } else if let Some(path) = vf["fieldRef"]["fieldPath"].as_str() {
            match field_ref(path, &meta, &pod, &ns, wname) {
                Ok((value, stand_in)) => {
                    if let Some(what) = &stand_in {
                        out.notes.push(Note(format!(
                            "{name}: fieldRef {path} is a stand-in `{value}` for {what}"
                        )));
                    }
                    set(
                        &mut vars,
                        Var {
                            name,
                            value,
                            source: format!("fieldRef {path}"),
                            secret: false,
                        },
                    );
                }
                Err(why) => out.notes.push(Note(format!("{name}: {why}; left out"))),
            }
        } else if vf["resourceFieldRef"].is_object() {
            let r = &vf["resourceFieldRef"];
            match resource_ref(r, c) {
                Some(value) => set(
                    &mut vars,
                    Var {
                        name,
                        value,
                        source: format!("resourceFieldRef {}", r["resource"].as_str().unwrap_or("")),
                        secret: false,
                    },
                ),
                None => out.notes.push(Note(format!(
                    "{name}: resourceFieldRef {} is unset on the container: a pod would get the node's allocatable; left out",
                    r["resource"].as_str().unwrap_or("")
                ))),
            }
        }
    }
    out.vars = vars;
    // Volumes: ConfigMap and Secret (and those sources of a projected volume).
    let volumes: BTreeMap<String, &Value> = pod["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| Some((v["name"].as_str()?.to_string(), v)))
        .collect();
    for vm in c["volumeMounts"].as_array().into_iter().flatten() {
        let vname = vm["name"].as_str().unwrap_or("");
        let Some(v) = volumes.get(vname) else {
            continue;
        };
        let mount_path = vm["mountPath"].as_str().unwrap_or("").to_string();
        let sub_path = vm["subPath"].as_str().map(str::to_string);
        let mut sources: Vec<(&str, &Value)> = Vec::new();
        if v["configMap"].is_object() {
            sources.push(("ConfigMap", &v["configMap"]));
        } else if v["secret"].is_object() {
            sources.push(("Secret", &v["secret"]));
        } else if let Some(ps) = v["projected"]["sources"].as_array() {
            for s in ps {
                if s["configMap"].is_object() {
                    sources.push(("ConfigMap", &s["configMap"]));
                } else if s["secret"].is_object() {
                    sources.push(("Secret", &s["secret"]));
                } else {
                    out.notes.push(Note(format!(
                        "volume {vname} at {mount_path}: a projected {} source is not materialised",
                        s.as_object()
                            .and_then(|m| m.keys().next())
                            .map(String::as_str)
                            .unwrap_or("?")
                    )));
                }
            }
        } else {
            continue; // emptyDir, PVCs, hostPath: not config, not ktwin's to copy
        }
        let mut files = Vec::new();
        let mut secret = false;
        let mut names = Vec::new();
        for (kind, src) in sources {
            let n = src["name"]
                .as_str()
                .or(src["secretName"].as_str())
                .unwrap_or("");
            secret |= kind == "Secret";
            names.push(format!("{kind} {ns}/{n}"));
            let Some(obj) = find(docs, kind, &ns, n) else {
                if src["optional"] != true {
                    out.notes.push(Note(format!(
                        "volume {vname}: {kind} {ns}/{n} is not in the render: the pod would not start"
                    )));
                }
                continue;
            };
            let d = data(obj);
            match src["items"].as_array() {
                Some(items) => {
                    for it in items {
                        let k = it["key"].as_str().unwrap_or("");
                        if let Some(b) = d.get(k) {
                            files.push(File {
                                path: it["path"].as_str().unwrap_or(k).to_string(),
                                bytes: b.clone(),
                            });
                        }
                    }
                }
                None => files.extend(d.into_iter().map(|(k, b)| File { path: k, bytes: b })),
            }
        }
        out.mounts.push(Mount {
            volume: vname.to_string(),
            mount_path,
            source: names.join(" + "),
            secret,
            files,
            sub_path,
        });
    }
    Ok(out)
}

/// A Service of the render: namespace, name, its TCP ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Svc {
    pub namespace: String,
    pub name: String,
    pub ports: Vec<u16>,
}

impl Svc {
    /// The Services of a render (a headless one too: its name resolves to its pods, and a
    /// forward goes to a pod either way).
    pub fn of(docs: &[Value]) -> Vec<Svc> {
        docs.iter()
            .filter(|d| d["kind"] == "Service")
            .map(|d| Svc {
                namespace: d["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("default")
                    .to_string(),
                name: d["metadata"]["name"].as_str().unwrap_or("").to_string(),
                ports: d["spec"]["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["protocol"].as_str().unwrap_or("TCP") == "TCP")
                    .filter_map(|p| p["port"].as_u64().and_then(|n| u16::try_from(n).ok()))
                    .collect(),
            })
            .collect()
    }
}

/// One reference to an in-cluster Service in an env value: bytes `start..end` of the value
/// (`postgres:5432`, or the host of `http://api.shop.svc.cluster.local/`) name `port` of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRef {
    pub start: usize,
    pub end: usize,
    pub namespace: String,
    pub service: String,
    pub port: u16,
}

/// The Service references in `value`, for a pod in `ns`: `HOST:PORT` with PORT one of the
/// Service's ports, or `scheme://HOST` without a port where the scheme's default port (http,
/// ws: 80; https, wss: 443) is one. HOST is `svc` (same namespace), `svc.ns`, `svc.ns.svc` or
/// `svc.ns.svc.cluster.local`, standing alone (not part of a longer name).
pub fn host_refs(value: &str, services: &[Svc], ns: &str) -> Vec<HostRef> {
    let b = value.as_bytes();
    let boundary_before = |i: usize| i == 0 || b"/@=,;( \"'\t".contains(&b[i - 1]);
    let mut out: Vec<HostRef> = Vec::new();
    let mut forms: Vec<(String, &Svc)> = Vec::new();
    for s in services {
        for f in [
            format!("{}.{}.svc.cluster.local", s.name, s.namespace),
            format!("{}.{}.svc", s.name, s.namespace),
            format!("{}.{}", s.name, s.namespace),
        ] {
            forms.push((f, s));
        }
        if s.namespace == ns {
            forms.push((s.name.clone(), s));
        }
    }
    // Longest first: `api.shop` is not read as `api` followed by `.shop`.
    forms.sort_by_key(|(f, _)| std::cmp::Reverse(f.len()));
    let mut i = 0;
    while i < b.len() {
        let mut hit = None;
        if boundary_before(i) {
            for (f, s) in &forms {
                if !value[i..].starts_with(f.as_str()) {
                    continue;
                }
                let end = i + f.len();
                if end < b.len() && b[end] == b':' {
                    let digits: String = value[end + 1..]
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    let after = end + 1 + digits.len();
                    let port_ok = digits.parse::<u16>().ok().filter(|p| s.ports.contains(p));
                    let clean_end = after >= b.len() || !b[after].is_ascii_alphanumeric();
                    if let (Some(p), true) = (port_ok, clean_end) {
                        hit = Some(HostRef {
                            start: i,
                            end: after,
                            namespace: s.namespace.clone(),
                            service: s.name.clone(),
                            port: p,
                        });
                        break;
                    }
                } else if end >= b.len() || b"/?#\"' ,;".contains(&b[end]) {
                    // No port: only after a scheme whose default port the Service serves.
                    let scheme = value[..i].strip_suffix("://").map(|x| {
                        let start = x
                            .rfind(|c: char| !c.is_ascii_alphanumeric() && c != '+')
                            .map_or(0, |p| p + 1);
                        x[start..].to_ascii_lowercase()
                    });
                    let default = match scheme.as_deref() {
                        Some("http" | "ws") => Some(80),
                        Some("https" | "wss") => Some(443),
                        _ => None,
                    };
                    if let Some(p) = default.filter(|p| s.ports.contains(p)) {
                        hit = Some(HostRef {
                            start: i,
                            end,
                            namespace: s.namespace.clone(),
                            service: s.name.clone(),
                            port: p,
                        });
                        break;
                    }
                }
            }
        }
        match hit {
            Some(h) => {
                i = h.end;
                out.push(h);
            }
            None => i += value[i..].chars().next().map_or(1, char::len_utf8),
        }
    }
    out
}

/// `value` with each reference replaced by `127.0.0.1:<local port>`.
pub fn rewrite(value: &str, refs: &[HostRef], local: &dyn Fn(&HostRef) -> Option<u16>) -> String {
    let mut out = String::new();
    let mut at = 0;
    for r in refs {
        let Some(l) = local(r) else { continue };
        out.push_str(&value[at..r.start]);
        out.push_str(&format!("127.0.0.1:{l}"));
        at = r.end;
    }
    out.push_str(&value[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn world() -> Vec<Value> {
        vec![
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "gateway", "namespace": "swarm"},
              "spec": {"template": {"metadata": {"labels": {"app": "gateway", "tier": "edge"}},
                "spec": {"serviceAccountName": "gw",
                  "volumes": [
                    {"name": "config", "configMap": {"name": "gw-config", "items": [{"key": "routes.yaml", "path": "routes.yaml"}]}},
                    {"name": "tls", "secret": {"secretName": "gw-tls"}},
                    {"name": "cache", "emptyDir": {}}],
                  "containers": [{"name": "gateway", "image": "x",
                    "resources": {"limits": {"memory": "512Mi"}},
                    "envFrom": [{"configMapRef": {"name": "swarm-config"}}, {"secretRef": {"name": "swarm-secrets"}, "prefix": "S_"}],
                    "env": [
                      {"name": "LOG_LEVEL", "value": "info"},
                      {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                      {"name": "DB_URL", "value": "postgres://app:$(DB_PASSWORD)@postgres:5432/app"},
                      {"name": "LITERAL", "value": "$$(DB_PASSWORD) and $(UNDEFINED)"},
                      {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                      {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                      {"name": "TIER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['tier']"}}},
                      {"name": "MEM_MB", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                      {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                      {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "x", "optional": true}}},
                      {"name": "MISSING", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "x"}}}],
                    "volumeMounts": [{"name": "config", "mountPath": "/etc/gw"}, {"name": "tls", "mountPath": "/tls"}, {"name": "cache", "mountPath": "/cache"}]}]}}}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "swarm-config", "namespace": "swarm"},
                   "data": {"LOG_LEVEL": "debug", "REGION": "local", "bad key": "x"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "gw-config", "namespace": "swarm"},
                   "data": {"routes.yaml": "routes: []\n", "other": "x"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "swarm-secrets", "namespace": "swarm"},
                   "data": {"API_KEY": b64("k-123")}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "swarm"},
                   "stringData": {"password": "hunter2"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gw-tls", "namespace": "swarm"},
                   "data": {"tls.crt": b64("CERT"), "tls.key": b64("KEY")}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "postgres", "namespace": "swarm"},
                   "spec": {"ports": [{"name": "pg", "port": 5432}]}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api-server", "namespace": "swarm"},
                   "spec": {"ports": [{"port": 80}]}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "pg-headless", "namespace": "swarm"},
                   "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}}),
        ]
    }

    fn var<'a>(e: &'a PodEnv, n: &str) -> Option<&'a Var> {
        e.vars.iter().find(|v| v.name == n)
    }

    #[test]
    fn the_env_a_pod_would_get_in_the_kubelets_order() {
        let docs = world();
        let ips: BTreeMap<(String, String), String> = [(
            ("swarm".to_string(), "postgres".to_string()),
            "10.43.0.12".to_string(),
        )]
        .into();
        let e = resolve(&docs, &docs[0], None, &ips).unwrap();
        assert_eq!(e.container, "gateway");
        // env wins over envFrom; envFrom's keys, with the prefix; bad names skipped and said.
        assert_eq!(var(&e, "LOG_LEVEL").unwrap().value, "info");
        assert_eq!(var(&e, "REGION").unwrap().value, "local");
        assert_eq!(var(&e, "S_API_KEY").unwrap().value, "k-123");
        assert!(var(&e, "S_API_KEY").unwrap().secret);
        assert!(e.notes.iter().any(|n| n.0.contains("bad key")));
        // Secret key ref; $(VAR) expansion; a value made from a secret is secret too.
        assert_eq!(var(&e, "DB_PASSWORD").unwrap().value, "hunter2");
        let url = var(&e, "DB_URL").unwrap();
        assert_eq!(url.value, "postgres://app:hunter2@postgres:5432/app");
        assert!(url.secret);
        assert_eq!(
            var(&e, "LITERAL").unwrap().value,
            "$(DB_PASSWORD) and $(UNDEFINED)"
        );
        // Downward API: resolvable, or a stated stand-in.
        assert_eq!(var(&e, "POD_NS").unwrap().value, "swarm");
        assert_eq!(var(&e, "TIER").unwrap().value, "edge");
        assert_eq!(var(&e, "POD_NAME").unwrap().value, "gateway-ktwin-exec");
        assert!(e
            .notes
            .iter()
            .any(|n| n.0.contains("POD_NAME") && n.0.contains("stand-in")));
        assert_eq!(var(&e, "MEM_MB").unwrap().value, "512");
        assert!(var(&e, "CPU").is_none());
        assert!(e
            .notes
            .iter()
            .any(|n| n.0.contains("CPU") && n.0.contains("allocatable")));
        // Optional and missing refs.
        assert!(var(&e, "OPT").is_none() && var(&e, "MISSING").is_none());
        assert!(e
            .notes
            .iter()
            .any(|n| n.0.contains("MISSING") && n.0.contains("CreateContainerConfigError")));
        assert!(!e.notes.iter().any(|n| n.0.contains("OPT:")));
        // Service links: the deployed one with its IP; not-yet-deployed said; headless none.
        assert_eq!(
            var(&e, "POSTGRES_SERVICE_HOST").unwrap().value,
            "10.43.0.12"
        );
        assert_eq!(var(&e, "POSTGRES_SERVICE_PORT").unwrap().value, "5432");
        assert_eq!(var(&e, "POSTGRES_SERVICE_PORT_PG").unwrap().value, "5432");
        assert_eq!(
            var(&e, "POSTGRES_PORT").unwrap().value,
            "tcp://10.43.0.12:5432"
        );
        assert_eq!(
            var(&e, "POSTGRES_PORT_5432_TCP_ADDR").unwrap().value,
            "10.43.0.12"
        );
        assert_eq!(
            var(&e, "POSTGRES_PORT_5432_TCP_PROTO").unwrap().value,
            "tcp"
        );
        assert!(var(&e, "PG_HEADLESS_SERVICE_HOST").is_none());
        assert!(e
            .notes
            .iter()
            .any(|n| n.0.contains("api-server") && n.0.contains("no cluster IP")));
        // Mounts: ConfigMap items only, the whole Secret, no emptyDir.
        assert_eq!(e.mounts.len(), 2);
        assert_eq!(
            e.mounts[0].files,
            vec![File {
                path: "routes.yaml".into(),
                bytes: b"routes: []\n".to_vec()
            }]
        );
        assert!(e.mounts[1].secret);
        assert_eq!(e.mounts[1].files.len(), 2);
    }

    #[test]
    fn service_links_can_be_turned_off_and_a_container_named() {
        let mut docs = world();
        docs[0]["spec"]["template"]["spec"]["enableServiceLinks"] = json!(false);
        let ips: BTreeMap<(String, String), String> = [(
            ("swarm".to_string(), "postgres".to_string()),
            "10.43.0.12".to_string(),
        )]
        .into();
        let e = resolve(&docs, &docs[0], Some("gateway"), &ips).unwrap();
        assert!(var(&e, "POSTGRES_SERVICE_HOST").is_none());
        let err = resolve(&docs, &docs[0], Some("sidecar"), &ips)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no container `sidecar`; it has gateway"),
            "{err}"
        );
    }

    #[test]
    fn service_hosts_in_env_values_are_found() {
        let svcs = vec![
            Svc {
                namespace: "swarm".into(),
                name: "postgres".into(),
                ports: vec![5432],
            },
            Svc {
                namespace: "swarm".into(),
                name: "api".into(),
                ports: vec![80, 9090],
            },
            Svc {
                namespace: "other".into(),
                name: "cache".into(),
                ports: vec![6379],
            },
        ];
        let f = |v: &str| -> Vec<(String, u16)> {
            host_refs(v, &svcs, "swarm")
                .into_iter()
                .map(|r| (v[r.start..r.end].to_string(), r.port))
                .collect()
        };
        assert_eq!(
            f("postgres://app:pw@postgres:5432/app"),
            [("postgres:5432".to_string(), 5432)]
        );
        assert_eq!(
            f("http://api.swarm.svc.cluster.local/v1"),
            [("api.swarm.svc.cluster.local".to_string(), 80)]
        );
        assert_eq!(f("http://api"), [("api".to_string(), 80)]);
        assert_eq!(
            f("api:9090,cache.other:6379"),
            [
                ("api:9090".to_string(), 9090),
                ("cache.other:6379".to_string(), 6379)
            ]
        );
        // Not references: another port, a longer name, a bare word, another namespace unqualified.
        assert!(f("postgres:5433").is_empty());
        assert!(f("mypostgres:5432").is_empty());
        assert!(f("api-gateway:80").is_empty());
        assert!(f("postgres").is_empty());
        assert!(f("cache:6379").is_empty());
        assert!(f("https://api/").is_empty()); // api serves no 443
        let v = "postgres://app:pw@postgres:5432/app";
        let refs = host_refs(v, &svcs, "swarm");
        assert_eq!(
            rewrite(v, &refs, &|_| Some(40001)),
            "postgres://app:pw@127.0.0.1:40001/app"
        );
    }

    #[test]
    fn expansion_follows_the_kubelet() {
        let d: BTreeMap<String, String> = [("A".to_string(), "1".to_string())].into();
        assert_eq!(expand("$(A)-$(B)-$$(A)-$A-$", &d), "1-$(B)-$(A)-$A-$");
        assert_eq!(expand("é$(A)", &d), "é1");
    }
}
