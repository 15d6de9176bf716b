//! Kubernetes naming rules: DNS labels, label keys and values, taints, kubelet label rules.

/// RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn dns_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("it is empty".into());
    }
    if s.len() > 63 {
        return Err(format!("it is {} characters long (at most 63)", s.len()));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "`{c}` is not allowed (lowercase letters, digits and '-' only)"
        ));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err("it must start and end with a letter or digit".into());
    }
    Ok(())
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub fn dns_subdomain(s: &str) -> Result<(), String> {
    if s.len() > 253 {
        return Err(format!("it is {} characters long (at most 253)", s.len()));
    }
    for part in s.split('.') {
        dns_label(part)?;
    }
    Ok(())
}

/// Docker container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn container_name(s: &str) -> Result<(), String> {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return Err("it must start with a letter or digit".into()),
    }
    if s.len() < 2 {
        return Err("it needs at least two characters".into());
    }
    if let Some(c) = chars.find(|c| !(c.is_ascii_alphanumeric() || "_.-".contains(*c))) {
        return Err(format!("`{c}` is not allowed"));
    }
    Ok(())
}

fn name_part(s: &str, what: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 63 {
        return Err(format!("the {what} must be 1–63 characters"));
    }
    let ok_inner = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    let first = s.chars().next().unwrap_or('-');
    let last = s.chars().last().unwrap_or('-');
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() || !s.chars().all(ok_inner) {
        return Err(format!(
            "the {what} `{s}` must be alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"
        ));
    }
    Ok(())
}

/// A qualified name: `[prefix/]name`, prefix a DNS subdomain.
pub fn label_key(key: &str) -> Result<(), String> {
    match key.split_once('/') {
        Some((prefix, name)) => {
            dns_subdomain(prefix).map_err(|e| format!("prefix `{prefix}`: {e}"))?;
            name_part(name, "name")
        }
        None => name_part(key, "name"),
    }
}

pub fn label_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    name_part(v, "value")
}

/// Labels the kubelet may set on its own Node (the NodeRestriction admission rules).
const KUBELET_LABELS: &[&str] = &[
    "kubernetes.io/hostname",
    "kubernetes.io/arch",
    "kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "failure-domain.beta.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
];
const KUBELET_NAMESPACES: &[&str] = &["kubelet.kubernetes.io", "node.kubernetes.io"];

/// Whether a node label can be declared for a pool, which k3s/kind apply through the kubelet.
pub fn kubelet_may_set(key: &str) -> Result<(), String> {
    let Some((ns, _)) = key.split_once('/') else {
        return Ok(());
    };
    let restricted = ["kubernetes.io", "k8s.io"]
        .iter()
        .any(|r| ns == *r || ns.ends_with(&format!(".{r}")));
    if !restricted || KUBELET_LABELS.contains(&key) {
        return Ok(());
    }
    if KUBELET_NAMESPACES
        .iter()
        .any(|a| ns == *a || ns.ends_with(&format!(".{a}")))
    {
        return Ok(());
    }
    if ns == "node-role.kubernetes.io" {
        return Err("node-role.kubernetes.io/* is reserved; the kubelet refuses to start with it, and NodeRestriction forbids it".into());
    }
    Err(format!(
        "labels under `{ns}` are reserved for Kubernetes; the kubelet may only set {} and keys under {}",
        KUBELET_LABELS.join(", "),
        KUBELET_NAMESPACES.join(", ")
    ))
}

/// What one node of the twin must carry, from its pool in ktwin.yaml.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeWant {
    pub name: String,
    pub pool: Option<String>,
    pub labels: std::collections::BTreeMap<String, String>,
    /// `key[=value]:Effect`.
    pub taints: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: Option<String>,
    pub effect: String,
}

pub const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// `key[=value]:Effect`.
pub fn parse_taint(s: &str) -> Result<Taint, String> {
    let (kv, effect) = s
        .rsplit_once(':')
        .ok_or_else(|| "missing `:Effect`".to_string())?;
    if !TAINT_EFFECTS.contains(&effect) {
        let hint = crate::load::closest(effect, TAINT_EFFECTS)
            .map(|c| format!(" (did you mean `{c}`?)"))
            .unwrap_or_default();
        return Err(format!(
            "effect `{effect}` is not one of {}{hint}",
            TAINT_EFFECTS.join(", ")
        ));
    }
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (kv, None),
    };
    label_key(key).map_err(|e| format!("key: {e}"))?;
    if let Some(v) = value {
        label_value(v).map_err(|e| format!("value: {e}"))?;
    }
    Ok(Taint {
        key: key.to_string(),
        value: value.map(str::to_string),
        effect: effect.to_string(),
    })
}

impl Taint {
    /// Whether a node (as the API shows it) carries this taint.
    pub fn on(&self, node: &serde_json::Value) -> bool {
        node["spec"]["taints"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|x| {
                x["key"] == self.key.as_str()
                    && x["effect"] == self.effect.as_str()
                    && x["value"].as_str().unwrap_or("") == self.value.as_deref().unwrap_or("")
            })
    }

    /// `key[=value]:Effect`, as kubectl takes it.
    pub fn spec(&self) -> String {
        match &self.value {
            Some(v) => format!("{}={v}:{}", self.key, self.effect),
            None => format!("{}:{}", self.key, self.effect),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert!(dns_label("swarm-1").is_ok());
        assert!(dns_label("Swarm").is_err());
        assert!(dns_label("-a").is_err());
        assert!(dns_label(&"a".repeat(64)).is_err());
    }

    #[test]
    fn kubelet_label_rules() {
        assert!(kubelet_may_set("lobmob.io/role").is_ok());
        assert!(kubelet_may_set("role").is_ok());
        assert!(kubelet_may_set("topology.kubernetes.io/zone").is_ok());
        assert!(kubelet_may_set("node.kubernetes.io/pool").is_ok());
        assert!(kubelet_may_set("x.kubelet.kubernetes.io/a").is_ok());
        assert!(kubelet_may_set("node-role.kubernetes.io/worker")
            .unwrap_err()
            .contains("reserved"));
        assert!(kubelet_may_set("kubernetes.io/role").is_err());
        assert!(kubelet_may_set("cloud.google.com/gke-nodepool").is_ok());
        assert!(kubelet_may_set("k8s.io/x").is_err());
        assert!(kubelet_may_set("foo.k8s.io/x").is_err());
    }

    #[test]
    fn taints() {
        let t = parse_taint("dedicated=lobboss:NoSchedule").unwrap();
        assert_eq!(t.key, "dedicated");
        assert_eq!(t.value.as_deref(), Some("lobboss"));
        assert!(parse_taint("gpu:NoExecute").unwrap().value.is_none());
        assert!(parse_taint("dedicated=x").unwrap_err().contains("Effect"));
        assert!(parse_taint("a=b:NoSchedul")
            .unwrap_err()
            .contains("did you mean `NoSchedule`"));
        assert!(parse_taint("bad key=x:NoSchedule").is_err());
    }
}
