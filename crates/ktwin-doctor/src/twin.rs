//! The local twin the manifests will run on: its nodes, port mappings, storage classes,
//! images, secrets and adaptation settings.

use std::collections::{BTreeMap, HashSet};

use ktwin_config::desired::NodeRole;
use ktwin_config::imageref::ImageRef;
use ktwin_config::names::parse_taint;
use ktwin_config::{Adapt, Port, Project, Provider};
use ktwin_manifest::Document;

#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub pool: String,
    pub labels: BTreeMap<String, String>,
    /// (key, value, effect)
    pub taints: Vec<(String, Option<String>, String)>,
}

#[derive(Debug, Clone)]
pub struct Twin {
    pub project: String,
    /// The environment whose manifests are checked against this twin.
    pub env: String,
    pub provider: Provider,
    pub nodes: Vec<Node>,
    pub ports: Vec<Port>,
    /// `cluster.k3sArgs` (k3d): e.g. `--disable=traefik` frees ports 80/443.
    pub k3s_args: Vec<String>,
    pub adapt: Adapt,
    /// Normalised repositories ktwin builds.
    pub images: HashSet<String>,
    /// Storage classes that exist locally.
    pub storage_classes: HashSet<String>,
    /// Classes served by local-path-provisioner.
    pub local_path_classes: HashSet<String>,
    /// (namespace or "", name) of Secrets the environment declares under `secrets:`.
    pub declared_secrets: HashSet<(String, String)>,
    /// Where ktwin.yaml is, for findings about the project itself.
    pub project_file: Option<std::path::PathBuf>,
    /// 1-based line of each `cluster.ports` entry in ktwin.yaml.
    pub port_lines: Vec<Option<usize>>,
    /// Each `images:` entry as written, with its line in ktwin.yaml.
    pub image_entries: Vec<(String, Option<usize>)>,
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn base_labels(hostname: &str) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert("kubernetes.io/hostname".into(), hostname.into());
    l.insert("kubernetes.io/os".into(), "linux".into());
    l.insert("kubernetes.io/arch".into(), host_arch().into());
    l.insert("beta.kubernetes.io/os".into(), "linux".into());
    l.insert("beta.kubernetes.io/arch".into(), host_arch().into());
    l
}

impl Twin {
    /// The twin a project declares.
    pub fn from_project(
        p: &Project,
        env: &str,
        project_file: Option<std::path::PathBuf>,
        pos: Option<&ktwin_config::PosIndex>,
    ) -> Twin {
        let provider = p.cluster.provider;
        let mut nodes = Vec::new();
        let agents_total: u32 = p.cluster.agents.iter().map(|a| a.count).sum();
        // Names from the one provider naming ktwin-cluster and ktwin-kube also use.
        for n in ktwin_config::desired::Naming::of(p).nodes(p) {
            let Some(name) = n.node else {
                continue;
            };
            let mut labels = base_labels(&name);
            let mut taints = Vec::new();
            match n.role {
                NodeRole::Server => {
                    labels.insert(
                        "node-role.kubernetes.io/control-plane".into(),
                        "true".into(),
                    );
                    // kind taints its control plane once there are workers; k3s servers stay
                    // schedulable.
                    if provider == Provider::Kind && agents_total > 0 {
                        taints.push((
                            "node-role.kubernetes.io/control-plane".into(),
                            None,
                            "NoSchedule".into(),
                        ));
                    }
                }
                _ => {
                    labels.extend(n.labels.clone());
                    taints = n
                        .taints
                        .iter()
                        .filter_map(|t| parse_taint(t).ok())
                        .map(|t| (t.key, t.value, t.effect))
                        .collect();
                }
            }
            nodes.push(Node {
                name,
                pool: n.pool.unwrap_or_else(|| "server".into()),
                labels,
                taints,
            });
        }
        let images = p
            .images
            .iter()
            .filter_map(|i| ImageRef::parse(&i.image).ok())
            .map(|r| r.repository_key())
            .collect();
        let e = p.environment(env);
        let adapt = e.map(|e| e.adapt.clone()).unwrap_or_default();
        let declared_secrets = e
            .map(|e| {
                e.secrets
                    .iter()
                    .map(|s| {
                        let ns = s
                            .namespace
                            .clone()
                            .or(e.namespace.clone())
                            .unwrap_or_default();
                        (ns, s.name.clone())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let port_lines = (0..p.cluster.ports.len())
            .map(|i| {
                pos.and_then(|x| x.value(&format!("/cluster/ports/{i}")))
                    .map(|p| p.line)
            })
            .collect();
        let image_entries = p
            .images
            .iter()
            .enumerate()
            .map(|(i, img)| {
                (
                    img.image.clone(),
                    pos.and_then(|x| x.value(&format!("/images/{i}/image")))
                        .map(|p| p.line),
                )
            })
            .collect();
        let sc = provider.default_storage_class().to_string();
        Twin {
            image_entries,
            env: env.to_string(),
            project: p.name.clone(),
            provider,
            nodes,
            ports: p.cluster.ports.clone(),
            k3s_args: p.cluster.k3s_args.clone(),
            adapt,
            images,
            storage_classes: HashSet::from([sc.clone()]),
            local_path_classes: HashSet::from([sc]),
            declared_secrets,
            project_file,
            port_lines,
        }
    }

    /// With no ktwin.yaml: a single-node k3d twin, nothing built, every adaptation on.
    pub fn default_k3d() -> Twin {
        let p: Project = Project {
            api_version: ktwin_config::API_VERSION.into(),
            kind: ktwin_config::KIND.into(),
            name: "twin".into(),
            cluster: Default::default(),
            registry: Default::default(),
            images: vec![],
            environments: Default::default(),
            doctor: Default::default(),
            kustomize: None,
            jobs: Default::default(),
            sync_mode: Default::default(),
            source_dir: None,
        };
        Twin::from_project(&p, "local", None, None)
    }

    /// Learn the storage classes the manifests bring themselves.
    pub fn add_rendered(&mut self, docs: &[Document]) {
        let c = ktwin_manifest::adapt::local_classes(self.provider, docs);
        self.storage_classes.extend(c.all);
        self.local_path_classes.extend(c.local_path);
    }

    pub fn builds(&self, image: &str) -> bool {
        ImageRef::parse(image).is_ok_and(|r| self.images.contains(&r.repository_key()))
    }
}
