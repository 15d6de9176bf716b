//! The Plan: every fact a command needs, resolved once at its head from the command line,
//! ktwin.yaml, the files it names and the environment variables ktwin reads — and nowhere
//! else. Downstream code takes facts from the Plan and never re-derives them: the registry's
//! names, the provider's names, each node's spec, each image's content tag (hashed once, so
//! the tag `up` deploys is the tag it pushed), the context the environment may use, and
//! (once the cluster exists) the guarded context. `--show-plan` prints it.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};

use ktwin_config::desired::{self, ImagePlan, Naming, NodeSpec, RegistryAddr};
use ktwin_config::{Environment, Loaded, LOCAL_ENV};
use ktwin_engine::registry::RegistrySpec;
use ktwin_engine::{Engine, EngineKind};
use ktwin_kube::guard::{self, GuardedContext, Intent};
use ktwin_manifest::{render_env, Rendered};
use serde_json::{json, Value};

use crate::cli::{Cli, EngineArg};
use crate::kustomize::ExternalKustomize;
use crate::printer;
use crate::report::{config_failure, plain, render_failure, Failure};

/// The environment variables ktwin reads, read here once (clippy forbids `std::env::var`
/// elsewhere). Tests and stubs set them; nothing else is consulted.
#[derive(Debug, Clone, Default)]
pub struct HostEnv {
    vars: std::collections::BTreeMap<String, String>,
}

/// Every variable that changes what ktwin does.
const VARS: &[&str] = &[
    "KUBECONFIG",
    "HOME",
    "KTWIN_ENGINE",
    "DOCKER_HOST",
    "XDG_RUNTIME_DIR",
    "KTWIN_LAYER_STORE",
    "KTWIN_REGISTRY_IMAGE",
];

impl HostEnv {
    #[allow(clippy::disallowed_methods)] // the one place the process environment is read
    pub fn read() -> HostEnv {
        HostEnv {
            vars: VARS
                .iter()
                .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
                .collect(),
        }
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.vars
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
    /// The user's kubeconfig files, in kubectl's order: `$KUBECONFIG`'s list, else
    /// `~/.kube/config`.
    pub fn kubeconfig_paths(&self) -> Vec<PathBuf> {
        match self.get("KUBECONFIG") {
            Some(v) => std::env::split_paths(v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect(),
            None => self
                .get("HOME")
                .map(|h| vec![Path::new(h).join(".kube/config")])
                .unwrap_or_default(),
        }
    }
}

/// The project file: `--file`, else ktwin.yaml in the working directory or a parent.
pub fn load_project(cli: &Cli) -> Result<Loaded, Failure> {
    let path: PathBuf = match &cli.file {
        Some(f) => f.clone(),
        None => ktwin_config::find(&std::env::current_dir().unwrap_or_default())
            .map_err(config_failure)?,
    };
    ktwin_config::load(&path).map_err(config_failure)
}

/// Like [`load_project`], but no project at all is not an error.
pub fn load_project_if_any(cli: &Cli) -> Result<Option<Loaded>, Failure> {
    match (
        &cli.file,
        ktwin_config::find(&std::env::current_dir().unwrap_or_default()),
    ) {
        (None, Err(ktwin_config::ConfigError::NotFound { .. })) => Ok(None),
        _ => load_project(cli).map(Some),
    }
}

pub fn kube_failure(e: ktwin_kube::KubeError) -> Failure {
    let r = plain(e.to_string(), e.help());
    match e {
        ktwin_kube::KubeError::Guard(_) => Failure::Input(vec![r]),
        _ => Failure::Operation(vec![r]),
    }
}

pub fn up_failure(e: ktwin_cluster::up::UpError) -> Failure {
    let r = plain(e.to_string(), e.help());
    if e.is_input() {
        Failure::Input(vec![r])
    } else {
        Failure::Operation(vec![r])
    }
}

pub struct Plan {
    pub loaded: Loaded,
    /// The environment the command is about (`local` unless `--env`).
    pub env: String,
    /// The context `env` may use, by name: the name rule passed before anything was contacted.
    pub context: String,
    pub registry: RegistryAddr,
    pub registry_spec: RegistrySpec,
    pub naming: Naming,
    pub nodes: Vec<NodeSpec>,
    pub single_node: bool,
    pub host: HostEnv,
    engine_arg: Option<EngineArg>,
    images: OnceCell<Vec<ImagePlan>>,
    guarded: Option<GuardedContext>,
}

impl Plan {
    /// Resolve the plan for `env` (whose `--context`, if given, must be the one it may use):
    /// refused with exit 2 before any engine, provider or API server is contacted.
    pub fn resolve(cli: &Cli, env: &str, requested_context: Option<&str>) -> Result<Plan, Failure> {
        let loaded = load_project(cli)?;
        Self::of(cli, loaded, env, requested_context)
    }

    pub fn of(
        cli: &Cli,
        loaded: Loaded,
        env: &str,
        requested_context: Option<&str>,
    ) -> Result<Plan, Failure> {
        let p = &loaded.project;
        // The one "unknown environment" error; `local` may be absent (up, build).
        if env != LOCAL_ENV {
            ktwin_manifest::pipeline::environment(&loaded, env).map_err(render_failure)?;
        }
        let context = ktwin_cluster::guard(p, env, requested_context)
            .map_err(|e| Failure::input(e.to_string(), Some(e.help())))?;
        let host = HostEnv::read();
        let registry = RegistryAddr::of(&p.registry);
        let registry_spec =
            RegistrySpec::from_config(&p.registry, host.get("KTWIN_REGISTRY_IMAGE"));
        let naming = Naming::of(p);
        // Agents k3d added to the running twin carry the names its record holds.
        let nodes = naming.nodes_named(p, &ktwin_cluster::up::agent_names(p));
        Ok(Plan {
            env: env.to_string(),
            context,
            registry,
            registry_spec,
            single_node: desired::single_node(p),
            naming,
            nodes,
            host,
            engine_arg: cli.engine,
            images: OnceCell::new(),
            guarded: None,
            loaded,
        })
    }

    pub fn project(&self) -> &ktwin_config::Project {
        &self.loaded.project
    }

    pub fn local(&self) -> bool {
        self.env == LOCAL_ENV
    }

    /// The environment's definition (None: `local` not declared).
    pub fn environment(&self) -> Option<&Environment> {
        self.project().environment(&self.env)
    }

    /// Every image, each hashed once, the first time it is asked for.
    pub fn images(&self) -> Result<&[ImagePlan], Failure> {
        if let Some(i) = self.images.get() {
            return Ok(i);
        }
        let planned =
            desired::plan_images(&self.loaded).map_err(|e| Failure::input(e.to_string(), None))?;
        Ok(self.images.get_or_init(|| planned))
    }

    /// Use these image plans instead of hashing the contexts (`dev` keeps an image at its
    /// last good tag when its build failed, or when it is not among the images it rebuilds).
    pub fn set_images(&mut self, images: Vec<ImagePlan>) {
        self.images = OnceCell::from(images);
    }

    /// The images `wanted` names (all when empty): by repository as written, path, or the
    /// path's last segment.
    pub fn select(&self, wanted: &[String]) -> Result<Vec<&ImagePlan>, Failure> {
        let all = self.images()?;
        if wanted.is_empty() {
            return Ok(all.iter().collect());
        }
        wanted
            .iter()
            .map(|w| {
                all.iter()
                    .find(|i| {
                        i.image == *w
                            || i.repo.path == *w
                            || i.repo.path.rsplit('/').next() == Some(w.as_str())
                    })
                    .ok_or_else(|| {
                        Failure::input(
                            format!("no image `{w}` in ktwin.yaml"),
                            Some(format!(
                                "images: {}",
                                all.iter()
                                    .map(|i| i.image.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )),
                        )
                    })
            })
            .collect()
    }

    /// Render `env` from this plan (its image tags; no image is hashed twice).
    pub fn render_env(&self, env: &str) -> Result<Rendered, Failure> {
        let adapted = env == LOCAL_ENV
            && self
                .project()
                .environment(env)
                .is_some_and(|e| e.adapt.images);
        let images: &[ImagePlan] = if adapted { self.images()? } else { &[] };
        render_env(&self.loaded, env, &ExternalKustomize, images).map_err(render_failure)
    }

    /// The plan's environment rendered, as documents.
    pub fn rendered(&self) -> Result<Vec<Value>, Failure> {
        Ok(self
            .render_env(&self.env)?
            .docs
            .into_iter()
            .map(|d| d.value)
            .collect())
    }

    pub fn engine(&self) -> Result<Engine, Failure> {
        let cli_engine = self.engine_arg;
        let req = cli_engine.map(|e| match e {
            EngineArg::Docker => EngineKind::Docker,
            EngineArg::Podman => EngineKind::Podman,
        });
        let env = |k: &str| self.host.get(k).map(str::to_string);
        let exists = |p: &Path| p.exists();
        ktwin_engine::detect(
            req,
            &ktwin_engine::Probe {
                env: &env,
                exists: &exists,
            },
        )
        .map_err(|e| Failure::Operation(vec![plain(e.to_string(), Some(e.help().to_string()))]))
    }

    /// The guarded context (the guard by identity), made once. Local: from the provider's
    /// own kubeconfig for the cluster ktwin manages; a same-named context in the user's
    /// kubeconfig that points elsewhere is warned about, never used. Remote: the context
    /// ktwin.yaml names, while it leads to the cluster recorded at the first deploy.
    pub async fn guard(&mut self, intent: Intent) -> Result<&GuardedContext, Failure> {
        if self.guarded.is_none() {
            let g = self.guard_now(intent).await?;
            self.guarded = Some(g);
        }
        Ok(self.guarded.as_ref().expect("just set"))
    }

    async fn guard_now(&self, intent: Intent) -> Result<GuardedContext, Failure> {
        let p = self.project();
        if self.local() {
            let eng = self.engine()?;
            let tool = ktwin_cluster::provider_for(p.cluster.provider).tool();
            let text = ktwin_cluster::up::provider_kubeconfig(p, &eng).map_err(|e| {
                Failure::Operation(vec![plain(
                    format!(
                        "cannot get the kubeconfig of cluster `{}` from {tool}: {e}",
                        p.cluster_name()
                    ),
                    Some("is the twin up? `ktwin up` creates it, `ktwin heal` restarts it".into()),
                )])
            })?;
            let g = guard::local(&self.env, &self.context, &text, tool)
                .map_err(|e| kube_failure(e.into()))?;
            // Only read, to warn; a user kubeconfig ktwin cannot read changes nothing here.
            if let Ok(user) = guard::user_kubeconfig(&self.host.kubeconfig_paths()) {
                if let Some(w) = guard::same_name_elsewhere(&g, &user) {
                    printer::err(&w);
                }
            }
            return Ok(g);
        }
        let user = guard::user_kubeconfig(&self.host.kubeconfig_paths())
            .map_err(|e| kube_failure(e.into()))?;
        let record = ktwin_config::state::state_dir()
            .join("identities")
            .join(format!("{}-{}.json", p.name, self.env));
        let (g, warning) = guard::remote(&self.env, &self.context, &user, &record, intent)
            .await
            .map_err(kube_failure)?;
        if let Some(w) = warning {
            printer::err(&w);
        }
        Ok(g)
    }

    /// The plan as data: what `--show-plan` prints. Paths are relative to the project.
    pub fn show(&self) -> Result<Value, Failure> {
        let rel = |p: &Path| {
            p.strip_prefix(&self.loaded.dir)
                .unwrap_or(p)
                .display()
                .to_string()
        };
        let images: Vec<Value> = self
            .images()?
            .iter()
            .map(|i| {
                json!({"image": i.image, "context": rel(&i.context),
                    "dockerfile": rel(&i.dockerfile), "tag": i.tag, "reference": i.reference})
            })
            .collect();
        Ok(json!({
            "project": self.project().name,
            "env": self.env,
            "local": self.local(),
            "context": self.context,
            "registry": {
                "name": self.registry.name,
                "hostPort": self.registry.host_port,
                "host": self.registry.host(),
                "inNetwork": self.registry.in_network(),
                "apiBase": self.registry.api_base(),
                "image": self.registry_spec.image,
                "mirrors": self.registry.mirrors(),
            },
            "cluster": {
                "provider": self.naming.provider.as_str(),
                "name": self.naming.cluster,
                "context": self.naming.context(),
                "network": self.naming.network(),
            },
            "nodes": self.nodes,
            "singleNode": self.single_node,
            "images": images,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// Before the plan, `up` hashed the build contexts for the build and again for the render:
    /// a file saved in between made it deploy a tag that was never pushed. Now both take the
    /// tag from one plan.
    #[test]
    fn what_is_deployed_is_what_was_built_even_if_a_file_changes_in_between() {
        let d = tempfile::tempdir().unwrap();
        let w = |rel: &str, text: &str| {
            let p = d.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        w(
            "ktwin.yaml",
            "apiVersion: ktwin.dev/v1alpha1\nkind: Project\nname: race\nimages:\n  - {image: ghcr.io/acme/app, context: app}\nenvironments:\n  local:\n    manifests: [k8s]\n",
        );
        w("app/Dockerfile", "FROM scratch\nCOPY main.txt /\n");
        w("app/main.txt", "v1\n");
        w(
            "k8s/app.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app}\nspec:\n  selector: {matchLabels: {app: a}}\n  template:\n    metadata: {labels: {app: a}}\n    spec: {containers: [{name: a, image: ghcr.io/acme/app:1.0}]}\n",
        );
        let cli = Cli::try_parse_from(["ktwin", "up"]).unwrap();
        let loaded = ktwin_config::load(&d.path().join("ktwin.yaml")).unwrap();
        let plan = Plan::of(&cli, loaded.clone(), LOCAL_ENV, None).unwrap();
        // What the build pushes.
        let pushed = plan.select(&[]).unwrap()[0].reference.clone();
        // The developer saves a file while the build runs.
        w("app/main.txt", "v2\n");
        let docs = plan.rendered().unwrap();
        let deployed = docs[0]["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(deployed, pushed);
        // The change is real: the next plan hashes it to another tag.
        let next = Plan::of(&cli, loaded, LOCAL_ENV, None).unwrap();
        assert_ne!(next.select(&[]).unwrap()[0].reference, pushed);
    }
}
