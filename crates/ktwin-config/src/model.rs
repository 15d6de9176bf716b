//! The `ktwin.yaml` data model (apiVersion `ktwin.dev/v1alpha1`, kind `Project`).
//!
//! Field names are exactly those of DESIGN.md §2. Every struct rejects unknown fields so a
//! typo is an error that names the closest valid field instead of a silently ignored key.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const API_VERSION: &str = "ktwin.dev/v1alpha1";
pub const KIND: &str = "Project";
pub const LOCAL_ENV: &str = "local";

/// A ktwin project: one local twin and the remote environments it mirrors.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Project {
    /// Must be `ktwin.dev/v1alpha1`.
    pub api_version: String,
    /// Must be `Project`.
    pub kind: String,
    /// DNS label; the cluster and kube context names derive from it.
    pub name: String,
    #[serde(default)]
    pub cluster: Cluster,
    #[serde(default)]
    pub registry: Registry,
    /// Images ktwin builds; `image` is the repository as written in the manifests.
    #[serde(default)]
    pub images: Vec<Image>,
    /// Environments by name. `local` is the twin; any other names a remote cluster by context.
    #[serde(default)]
    pub environments: IndexMap<String, Environment>,
    /// How the user's kustomize is run (an environment's `kustomize` overrides it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<Kustomize>,
    #[serde(default)]
    pub doctor: Doctor,
    /// One-off Job templates `ktwin run NAME` starts, hardened by default.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub jobs: IndexMap<String, JobTemplate>,
    /// How `images[].sync` reaches containers: `mount` (default) or `copy`.
    #[serde(default, skip_serializing_if = "is_default_sync")]
    pub sync_mode: SyncMode,
    /// The directory ktwin.yaml is in (set by the loader; not part of the file).
    #[serde(skip)]
    #[schemars(skip)]
    pub source_dir: Option<std::path::PathBuf>,
}

fn is_default_sync(m: &SyncMode) -> bool {
    *m == SyncMode::Mount
}

/// A one-off Job `ktwin run` creates from this template. Every field but `image` is optional;
/// what is not set gets ktwin's hardened default (`ktwin run NAME --dry-run` lists each).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JobTemplate {
    /// The image; one ktwin builds (listed under `images:`) runs at its content tag.
    pub image: String,
    /// The container's command (its entrypoint when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables (`ktwin run --set-env K=V` adds or overrides).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub env: IndexMap<String, String>,
    /// Lines of the log that carry this string are the job's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_marker: Option<String>,
    /// Namespace (default: the environment's namespace, else `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Retries before the Job fails (default 0: a one-off runs once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_limit: Option<u32>,
    /// Seconds a finished Job (and its pod) is kept (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_finished: Option<u32>,
    /// Seconds the Job may run before it is failed with DeadlineExceeded (default 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<u32>,
    /// User and group the container runs as (default 1000/1000, non-root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<u32>,
    /// Resource requests and limits (defaults cpu 500m/memory 1Gi and cpu 2/memory 4Gi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<BTreeMap<String, String>>,
    /// The pod's ServiceAccount; its token is mounted only when this is set to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automount_service_account_token: Option<bool>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    #[default]
    K3d,
    Kind,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::K3d => "k3d",
            Provider::Kind => "kind",
        }
    }
    /// The storage class the provider's bundled provisioner serves (both are local-path-provisioner).
    pub fn default_storage_class(self) -> &'static str {
        match self {
            Provider::K3d => "local-path",
            Provider::Kind => "standard",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Cluster {
    /// `k3d` (default) or `kind`.
    #[serde(default)]
    pub provider: Provider,
    /// Cluster name; defaults to the project name. Context is `k3d-<name>` / `kind-<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Control-plane nodes (default 1).
    #[serde(default = "one")]
    pub servers: u32,
    /// One entry per production node pool.
    #[serde(default)]
    pub agents: Vec<Agent>,
    /// Host ports mapped to nodePorts: one declaration gives both sides.
    #[serde(default)]
    pub ports: Vec<Port>,
    /// The nodes' Kubernetes version, to match production's: `v1.31` (that minor's image of
    /// the provider, see `ktwin_config::kube_version`) or an exact `v1.31.4`. Default: the
    /// provider's own default image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// k3d only: extra arguments for k3s on the servers, e.g. `--disable=traefik` when a
    /// LoadBalancer Service of the project wants ports 80/443.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub k3s_args: Vec<String>,
    /// kind only: kubeadm config patches for every node (kind's `kubeadmConfigPatches`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kubeadm_config_patches: Vec<String>,
    /// Keep the data of the twin's volumes across `down`/`up`: every node's local-path
    /// storage is `$XDG_DATA_HOME/ktwin/volumes/<project>` on the host, and claims of the
    /// local-path class use the `ktwin-persistent` class, which names each volume's directory
    /// `<namespace>/<claim>`, so a recreated twin finds its databases again.
    /// `ktwin down --purge-volumes` deletes that directory.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub persistent_volumes: bool,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            provider: Provider::K3d,
            name: None,
            servers: 1,
            agents: Vec::new(),
            ports: Vec::new(),
            kubernetes_version: None,
            k3s_args: Vec::new(),
            kubeadm_config_patches: Vec::new(),
            persistent_volumes: false,
        }
    }
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Agent {
    /// Pool name (DNS label).
    pub name: String,
    /// Nodes in the pool (default 1).
    #[serde(default = "one")]
    pub count: u32,
    /// Node labels the production pool carries.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Taints as `key[=value]:Effect`.
    #[serde(default)]
    pub taints: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Hash)]
pub enum Protocol {
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Port {
    /// Port on 127.0.0.1 of the host.
    pub host_port: u16,
    /// The Service nodePort it reaches (30000–32767).
    pub node_port: u16,
    #[serde(default)]
    pub protocol: Protocol,
}

pub const DEFAULT_REGISTRY_NAME: &str = "ktwin-registry";
pub const DEFAULT_REGISTRY_PORT: u16 = 5001;
pub const DEFAULT_REGISTRY_IMAGE: &str = "registry:2";

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Registry {
    /// Container name; it outlives every cluster.
    #[serde(default = "default_registry_name")]
    pub name: String,
    /// Published on 127.0.0.1; image refs are `localhost:<hostPort>/...`.
    #[serde(default = "default_registry_port")]
    pub host_port: u16,
    /// Registry image (default `registry:2`).
    #[serde(default = "default_registry_image")]
    pub image: String,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            name: default_registry_name(),
            host_port: DEFAULT_REGISTRY_PORT,
            image: default_registry_image(),
        }
    }
}

fn default_registry_name() -> String {
    DEFAULT_REGISTRY_NAME.to_string()
}
fn default_registry_port() -> u16 {
    DEFAULT_REGISTRY_PORT
}
fn default_registry_image() -> String {
    DEFAULT_REGISTRY_IMAGE.to_string()
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Image {
    /// Repository as written in the manifests; any tag there is ignored.
    pub image: String,
    /// Build context, relative to ktwin.yaml.
    pub context: String,
    /// Dockerfile, relative to the context (default `Dockerfile`).
    #[serde(default = "default_dockerfile")]
    pub dockerfile: String,
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Files `ktwin dev` brings into running containers of this image without a rebuild.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync: Vec<SyncRule>,
}

/// One sync rule: `src` (relative to the image's context; a path, or a glob such as
/// `app/**/*.py`) appears at `dest` in the container.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SyncRule {
    pub src: String,
    /// An absolute path in the container.
    pub dest: String,
    /// `none` (default): the process sees the new files; `process`: the container is
    /// restarted (a rollout restart of the workloads that run the image).
    #[serde(default)]
    pub restart: SyncRestart,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SyncRestart {
    #[default]
    None,
    Process,
}

/// How `images[].sync` reaches containers.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// The project directory is mounted into every node at cluster create (`/ktwin/src`) and
    /// each rule's files into the containers of its image: zero copy, and it works for
    /// distroless, non-root and read-only-root images. Adding it to an existing twin is a
    /// recreate.
    #[default]
    Mount,
    /// Copied into running containers (tar over the exec API); the image needs `tar`.
    Copy,
}

/// Where the project directory is mounted on every node in `mount` sync mode.
pub const SOURCE_MOUNT: &str = "/ktwin/src";

impl Environment {
    /// The kustomize flags for this environment: its own, else the project's.
    pub fn kustomize_flags<'a>(&'a self, project: &'a Project) -> &'a [String] {
        self.kustomize
            .as_ref()
            .or(project.kustomize.as_ref())
            .map(|k| k.flags.as_slice())
            .unwrap_or(&[])
    }
}

/// One manifest source of an environment.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ManifestSource {
    /// A kustomize directory, a plain YAML directory, or a YAML file.
    Path(String),
    /// A Helm chart, rendered with the user's `helm template`.
    Helm { helm: HelmSource },
}

impl ManifestSource {
    /// The path as written (a chart's directory or archive for Helm).
    pub fn path(&self) -> &str {
        match self {
            ManifestSource::Path(p) => p,
            ManifestSource::Helm { helm } => &helm.chart,
        }
    }
}

impl From<&str> for ManifestSource {
    fn from(p: &str) -> ManifestSource {
        ManifestSource::Path(p.to_string())
    }
}

/// A path, or `{helm: {...}}` with every field checked (unknown ones named, with the closest
/// valid one, as everywhere in ktwin.yaml).
impl<'de> Deserialize<'de> for ManifestSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ManifestSource;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a path, or `helm: {chart: DIR, ...}`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ManifestSource, E> {
                Ok(ManifestSource::Path(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ManifestSource, A::Error> {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Wrapped {
                    helm: HelmSource,
                }
                let w = Wrapped::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(ManifestSource::Helm { helm: w.helm })
            }
        }
        d.deserialize_any(V)
    }
}

/// A Helm chart as a manifest source.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HelmSource {
    /// A chart directory or `.tgz`, relative to ktwin.yaml.
    pub chart: String,
    /// Release name (default: the chart directory's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// `--namespace` for the release (default: the environment's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Values files, relative to ktwin.yaml, in order (`-f`).
    #[serde(default)]
    pub values: Vec<String>,
    /// `--set key=value`, in order.
    #[serde(default)]
    pub set: IndexMap<String, String>,
    /// Render the chart's CRDs too (`--include-crds`; default true: a twin needs them).
    #[serde(default = "yes", rename = "includeCRDs")]
    pub include_crds: bool,
}

/// How the user's kustomize is run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Kustomize {
    /// Extra flags for `kustomize build` / `kubectl kustomize` (e.g. `--enable-helm`,
    /// `--load-restrictor=LoadRestrictionsNone`).
    #[serde(default)]
    pub flags: Vec<String>,
}

fn default_dockerfile() -> String {
    "Dockerfile".to_string()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Environment {
    /// Kustomize dirs, plain YAML dirs or files (relative to ktwin.yaml), and Helm charts
    /// (`{helm: {chart, ...}}`).
    #[serde(default)]
    pub manifests: Vec<ManifestSource>,
    /// How the user's kustomize is run for this environment (overrides the project's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<Kustomize>,
    /// Kube context. Required for every environment but `local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Namespace given to namespaced objects that do not name one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Local adaptation (environment `local` only).
    #[serde(default)]
    pub adapt: Adapt,
    /// Secrets built from env files that git ignores; values are never printed.
    #[serde(default)]
    pub secrets: Vec<SecretSource>,
    /// RFC 6902 / RFC 7396 patches by target.
    #[serde(default)]
    pub patches: Vec<Patch>,
    /// Health checks `ktwin status` runs.
    #[serde(default)]
    pub health: Vec<HealthCheck>,
    /// Port-forwards `ktwin dev` keeps open on 127.0.0.1 for Services without a NodePort
    /// mapping; each new connection goes to a pod that is Ready then, so a rollout never
    /// closes the local port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwards: Vec<Forward>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Forward {
    /// The Service's name.
    pub service: String,
    /// Its port (a `spec.ports[].port`).
    pub port: u16,
    /// The port on 127.0.0.1 (default: the Service port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_port: Option<u16>,
    /// Default: the environment's namespace, else `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ResourcesMode {
    /// Cap CPU requests at 100m and memory requests at 128Mi; drop extended-resource and
    /// ephemeral-storage requests. Limits stay.
    #[default]
    Relaxed,
    /// Leave requests and limits as written.
    Keep,
    /// Remove requests and limits.
    Drop,
}

impl ResourcesMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourcesMode::Relaxed => "relaxed",
            ResourcesMode::Keep => "keep",
            ResourcesMode::Drop => "drop",
        }
    }
}

/// Local adaptation knobs. Everything is on by default; each can be turned off.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Adapt {
    /// Rewrite images ktwin builds to `localhost:<port>/<repo>:<content tag>`.
    #[serde(default = "yes")]
    pub images: bool,
    /// Set `imagePullPolicy: IfNotPresent` on every container.
    #[serde(default = "yes")]
    pub pull_policy: bool,
    /// Drop `imagePullSecrets` naming Secrets the environment does not have.
    #[serde(default = "yes")]
    pub pull_secrets: bool,
    /// Map storage classes the provider lacks to its local class.
    #[serde(default = "yes")]
    pub storage: bool,
    /// Explicit storage class mapping, e.g. `{do-block-storage: local-path}`.
    #[serde(default)]
    pub storage_classes: BTreeMap<String, String>,
    /// Make fsGroup/runAsUser work on local-path claims (`volumeType: local`).
    #[serde(default = "yes")]
    pub volume_ownership: bool,
    /// On a single-node twin, rewrite ReadWriteMany/ReadOnlyMany claims served by local-path
    /// (which provisions only ReadWriteOnce) to ReadWriteOnce: every pod shares the one node,
    /// so the claim behaves the same. Off by default: it changes what the claim promises.
    #[serde(default)]
    pub rwx_to_rwo: bool,
    /// `relaxed` (default), `keep` or `drop`.
    #[serde(default)]
    pub resources: ResourcesMode,
    /// Env and ConfigMap value overrides.
    #[serde(default)]
    pub env: Vec<EnvOverride>,
}

impl Default for Adapt {
    fn default() -> Self {
        Adapt {
            images: true,
            pull_policy: true,
            pull_secrets: true,
            storage: true,
            storage_classes: BTreeMap::new(),
            volume_ownership: true,
            rwx_to_rwo: false,
            resources: ResourcesMode::Relaxed,
            env: Vec::new(),
        }
    }
}

fn yes() -> bool {
    true
}

/// Set keys in a ConfigMap (`configMap`) or in a container's env (`container`, optionally
/// only in one `workload`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub set: IndexMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretSource {
    /// Secret name.
    pub name: String,
    /// `KEY=value` file relative to ktwin.yaml; git must ignore it.
    pub env_file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchTarget {
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Exactly one of `json` (RFC 6902 operations) or `merge` (RFC 7396 document).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Patch {
    pub target: PatchTarget,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Vec<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<serde_json::Value>,
}

/// One of `http`, `tcp` or `exec`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HealthCheck {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<HealthExpect>,
    /// `HOST:PORT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<HealthExec>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HealthExpect {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HealthExec {
    pub workload: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Doctor {
    /// Silence a check, optionally for one kind and/or name.
    #[serde(default)]
    pub ignore: Vec<DoctorIgnore>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DoctorIgnore {
    pub check: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The StorageClass of `cluster.persistentVolumes`: local-path-provisioner (v0.0.29 or newer
/// for `pathPattern`) with a directory per claim named `<namespace>/<claim>`, so a claim of
/// the same name in a recreated twin finds its data.
pub const PERSISTENT_CLASS: &str = "ktwin-persistent";

/// Where each provider's local-path-provisioner keeps volumes on a node: k3s's bundled one,
/// and kind's.
pub fn provisioner_storage_path(p: Provider) -> &'static str {
    match p {
        Provider::K3d => "/var/lib/rancher/k3s/storage",
        Provider::Kind => "/var/local-path-provisioner",
    }
}

impl Project {
    /// The host directory every node mounts at [`SOURCE_MOUNT`]: the project's, when some
    /// image syncs files in `mount` mode.
    pub fn source_mount(&self) -> Option<&std::path::Path> {
        if self.sync_mode == SyncMode::Mount && self.images.iter().any(|i| !i.sync.is_empty()) {
            self.source_dir.as_deref()
        } else {
            None
        }
    }
    /// The host directory that holds the twin's volumes, when `cluster.persistentVolumes`.
    pub fn volumes_dir(&self) -> Option<std::path::PathBuf> {
        self.cluster.persistent_volumes.then(|| self.volumes_path())
    }
    /// Where the twin's volumes are kept, whether or not it keeps them now:
    /// `$XDG_DATA_HOME/ktwin/volumes/<cluster>` (the project name unless `cluster.name`
    /// says otherwise: one directory per twin, as one cluster per name).
    pub fn volumes_path(&self) -> std::path::PathBuf {
        crate::state::data_dir()
            .join("volumes")
            .join(self.cluster_name())
    }
    pub fn cluster_name(&self) -> &str {
        self.cluster.name.as_deref().unwrap_or(&self.name)
    }
    /// The only kube context the local environment may write to.
    pub fn local_context(&self) -> String {
        format!("{}-{}", self.cluster.provider.as_str(), self.cluster_name())
    }
    pub fn environment(&self, name: &str) -> Option<&Environment> {
        self.environments.get(name)
    }
}
