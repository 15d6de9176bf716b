//! Command-line types only; behaviour lives in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "ktwin",
    version,
    about = "A local twin of your production Kubernetes system",
    long_about = "ktwin runs a multi-node local cluster that mirrors production: the same node pools, the same \
manifests adapted to a laptop by a visible, diffable step, a persistent local registry, and a doctor for the \
local-vs-prod differences that bite.\n\nThe project is described by ktwin.yaml, found in the current directory or \
a parent (or given with -C / --file).",
    after_help = "Examples:\n  ktwin init                      write ktwin.yaml from what the repo holds\n  \
ktwin render --explain          show the local manifests and every change ktwin made\n  \
ktwin diff --against dev        what the local twin changes relative to dev\n  \
ktwin doctor                    parity findings before they cost a day\n  \
ktwin schema > ktwin.schema.json  JSON Schema for editor completion"
)]
pub struct Cli {
    /// Run as if started in DIR.
    #[arg(short = 'C', long = "directory", global = true, value_name = "DIR")]
    pub directory: Option<PathBuf>,
    /// Use this project file instead of searching for ktwin.yaml.
    #[arg(long, global = true, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Container engine to use (default: detected — DOCKER_HOST, the Docker socket, Podman's
    /// sockets). Also KTWIN_ENGINE.
    #[arg(long, global = true, value_enum)]
    pub engine: Option<EngineArg>,
    /// Say more on stderr (phase timings).
    #[arg(short = 'v', long, global = true)]
    pub verbose: bool,
    /// Print the resolved plan (registry and provider names, node specs, image tags, the
    /// allowed context) as JSON and exit, doing nothing else.
    #[arg(long, global = true, hide = true)]
    pub show_plan: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render an environment's manifests (the local one adapted for the twin).
    #[command(
        after_help = "Examples:\n  ktwin render                     local environment, YAML\n  \
ktwin render --explain           ... and a table of every change on stderr\n  \
ktwin render --env dev -o json   the dev environment as a kubectl List\n\n\
Secret values print as <redacted> unless --show-secrets is given."
    )]
    Render(RenderArgs),
    /// Compare two environments, grouped by concern (images, storage, resources, ...).
    #[command(
        after_help = "Examples:\n  ktwin diff --against dev\n  ktwin diff --against prod -o markdown >> docs/local-vs-prod.md\n\n\
Objects match by kind and name; namespaces are normalised. Always exits 0."
    )]
    Diff(DiffArgs),
    /// Find local-vs-prod differences that will bite, before anything is applied.
    #[command(
        after_help = "Examples:\n  ktwin doctor                         the local environment against the twin\n  \
ktwin doctor --fail-on warning       also fail on warnings (CI)\n  \
ktwin doctor -f k8s/ -o sarif        any manifests, SARIF for code scanning\n  \
ktwin doctor --explain fsgroup-local-path\n\n\
A finding that ktwin's local adaptation already resolves is shown as info with the knob that does it.\n\
Silence a check on an object with the annotation ktwin.dev/ignore: \"check-a,check-b\", or in\n\
ktwin.yaml under doctor.ignore: [{check, kind?, name?}]. Exit 1 when a finding reaches --fail-on."
    )]
    Doctor(DoctorArgs),
    /// Write a commented ktwin.yaml inferred from the repository.
    #[command(
        after_help = "ktwin init scans for kustomize roots, Helm charts, plain manifest directories, Dockerfiles \
and the builds skaffold.yaml, a Tiltfile or a compose file declare. It proposes one environment per \
overlay name, node pools from the nodeSelectors and required node affinities the manifests use, and an \
images: entry per Dockerfile matched to an image the manifests run, each with its reason. Every source \
is rendered with your kustomize/helm first: what does not render, overlaps another or holds only kinds \
a plain cluster does not serve is left out, saying why. It never overwrites an existing ktwin.yaml \
unless --force is given."
    )]
    Init(InitArgs),
    /// Build images at their content tag and push them to the local registry; skip what it has.
    #[command(
        after_help = "Examples:\n  ktwin build                      every image in ktwin.yaml\n  \
ktwin build ghcr.io/acme/api     one image (its repository, or the last path part: api)\n  \
ktwin build -o json              per image: tag, skipped/pushed, layers and bytes pushed, seconds\n\n\
The tag is ktwin-<hash of the build inputs>, exactly what `ktwin render` puts in the manifests.\n\
When the registry already has it, nothing is built or pushed."
    )]
    Build(BuildArgs),
    /// The persistent local registry: up, down, status, gc.
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Bring the twin up: registry, cluster, registry wiring, node pools, images.
    #[command(
        after_help = "Steps: registry up → cluster create if absent → connect the registry to the cluster network,\n\
write the nodes' mirror config (kind) and the kube-public/local-registry-hosting ConfigMap →\n\
check every node carries its pool's labels and taints (fixing them) → build and push images →\n\
deploy the local environment (as `ktwin deploy`).\n\n\
Idempotent: when the cluster exists, the spec stored at creation is compared with ktwin.yaml.\n\
Labels, taints and registry wiring are fixed in place; node counts, ports, provider or registry\n\
changes are reported and applied only with --recreate. Nothing is deleted silently.\n\n\
Examples:\n  ktwin up --dry-run     print every command and file; change nothing\n  \
ktwin up\n  ktwin up --recreate    replace a cluster whose shape changed (images are kept)"
    )]
    Up(UpArgs),
    /// The inner loop: save → changed images rebuilt and pushed → changed objects applied →
    /// rolled out → their logs on screen. Ctrl-C stops watching and leaves the twin running.
    #[command(
        after_help = "Steps: the twin reconciled as `ktwin up` does (skip with --no-up) → a full cycle → watch.
A cycle re-reads ktwin.yaml (a broken one is shown and the last good plan keeps running), builds only
the images whose content tag changed, renders, and sends only the objects whose rendered form changed
(an unchanged object costs no request), prunes what left the render, waits for the rollouts it caused.
A save that changes no content (touch, save-without-change, a checkout back and forth) runs no build
and sends nothing. A failed build, render or apply is shown; the twin keeps its last good state and
the next save retries. Watched: the project tree except .git/, editor temp files and gitignored
paths outside build contexts.

Examples:
  ktwin dev                     watch everything, follow every workload's logs
  ktwin dev api                 rebuild only the api image; the others keep their tag
  ktwin dev --trigger manual    collect changes, run a cycle on Enter
  ktwin dev -o json | jq .      NDJSON events (schema in README.md)"
    )]
    Dev(DevArgs),
    /// Delete the cluster; the registry and its images stay unless --purge-registry.
    Down(DownArgs),
    /// Apply an environment with server-side apply and wait for its rollouts.
    #[command(
        after_help = "Steps: render + adapt → context guard (before any request) → create missing namespaces →\n\
CustomResourceDefinitions first, until Established → server-side apply of every object as field\n\
manager `ktwin`, labelled app.kubernetes.io/managed-by=ktwin, ktwin.dev/project, ktwin.dev/env →\n\
prune what carries this project's and environment's labels but is no longer rendered →\n\
wait for Deployments, StatefulSets and DaemonSets like `kubectl rollout status`.\n\n\
A field another manager owns (kubectl edit, a controller) is a conflict and stops the deploy;\n\
--force-conflicts takes the field over. Namespaces and CRDs are never pruned. A rollout still\n\
stuck at --timeout is explained from its pods: image pull errors with the image, crash loops with\n\
the last log lines, unschedulable pods with the scheduler's message, failing readiness probes.\n\n\
Examples:\n  ktwin deploy                      the local twin, pruning on\n  \
ktwin deploy --env dev            a remote environment (its context from ktwin.yaml, pruning off)\n  \
ktwin deploy --timeout 10m -o json"
    )]
    Deploy(DeployArgs),
    /// Nodes, registry, workloads and health checks on one screen; exit 1 if anything is unhealthy.
    #[command(
        after_help = "Health checks come from the environment's `health:` list in ktwin.yaml:\n  \
health:\n    - {name: web, http: http://localhost:8080/healthz, expect: {status: 200, bodyContains: ok}}\n    \
- {name: db, tcp: localhost:5432}\n    - {name: queue, exec: {workload: worker, command: [sh, -c, 'test -f /tmp/ready']}}\n\n\
Examples:\n  ktwin status\n  ktwin status -o json | jq '.workloads[] | select(.ready < .desired)'"
    )]
    Status(StatusArgs),
    /// After a reboot or engine restart: start what stopped, rewire, uncordon, fix nodes, clear stuck pods.
    #[command(
        after_help = "Each finding is printed with what was done about it; --dry-run only prints.\n\
Detects: stopped cluster containers (started load balancer → servers → agents), the registry\n\
stopped or detached from the cluster network, missing mirror config or KEP-1755 ConfigMap,\n\
cordoned nodes, a control-plane NoSchedule taint on a single-node twin, node labels/taints\n\
drifted from ktwin.yaml, pods stuck Unknown/Terminating on a restarted node (deleted).\n\
Then reports what is still unhealthy. A second run finds nothing to do."
    )]
    Heal(HealArgs),
    /// Logs of every container of a workload (or all workloads), prefixed by pod and container.
    #[command(
        after_help = "Examples:\n  ktwin logs web              all pods and containers of deployment web\n  \
ktwin logs web -f --since 5m\n  ktwin logs                  every workload of the environment"
    )]
    Logs(LogsArgs),
    /// Restart a workload's pods (a rollout restart) and wait for it.
    Restart(RestartArgs),
    /// Run a one-off Job from a `jobs:` template (or a rendered CronJob), hardened by default.
    #[command(
        after_help = "A run is a Job named <template>-<id>: backoffLimit 0, ttlSecondsAfterFinished 300,
activeDeadlineSeconds 3600, restartPolicy Never, non-root uid/gid 1000, no privilege escalation,
every capability dropped, seccomp RuntimeDefault, no service account token, requests 500m/1Gi and
limits 2/4Gi (the local adaptation relaxes them like any pod's). The template overrides each one;
--dry-run lists what was defaulted and why. Attached (the default), the pod's log is followed and
the exit code is the container's; Ctrl-C deletes the run. A ktwin-built image is built first if
the registry lacks its content tag.

Exit codes: the container's; 1 when the Job failed without one; 124 when its deadline passed or
--timeout ended the wait (the run keeps going); 130 when cancelled.

Examples:
  ktwin run agent-runner --env-b64 TASK_PROMPT_B64=@prompt.md
  ktwin run agent-runner --set-env LOG_LEVEL=debug -o json
  ktwin run --from cronjob/lobster-sweep
  ktwin run agent-runner --dry-run            the Job (YAML) and the defaults table
  ktwin run agent-runner --detach             print the name and return"
    )]
    Run(RunArgs),
    /// Run a command on this machine wired to the twin: its KUBECONFIG, and with --as the env
    /// and config files a workload's container gets.
    #[command(
        after_help = "KUBECONFIG is set to a private file (0600, removed on exit) holding only the environment's
context, so the command cannot reach another cluster by accident; KTWIN_ENV and KTWIN_NAMESPACE are
set. With --as, the command gets the environment the rendered container would get — env values,
ConfigMap and Secret keys (from the render), envFrom, the Service-link variables of the namespace's
deployed Services, downward-API fields (a stated stand-in where only a pod has a value) — and its
ConfigMap and Secret volumes as files in a private directory (0700), each given as
KTWIN_MOUNT_<VOLUME>. Secret values go to the command only; ktwin prints <redacted>.
The exit code is the command's; signals reach it; temp files end with it.

Examples:
  ktwin exec -- kubectl get pods                   kubectl, on the twin only
  ktwin exec --as gateway -- cargo run -p gateway   the gateway's env, on the host
  ktwin exec --as gateway --forward -- ./gateway     ... its Services reached through local forwards
  ktwin exec --as deployment/gateway/app --print-env"
    )]
    Exec(ExecArgs),
    /// The runs of an environment: `list`, `logs NAME`, `cancel NAME`.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Built images: `ktwin images verify` proves nodes can pull them.
    #[command(subcommand)]
    Images(ImagesCommand),
    /// Cluster commands (`ktwin cluster config`).
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Print the JSON Schema of ktwin.yaml.
    Schema,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum RenderFormat {
    Yaml,
    Json,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Environment to render.
    #[arg(long, default_value = "local")]
    pub env: String,
    #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
    pub output: RenderFormat,
    /// Print every change ktwin made (object, path, before, after, reason): a table on stderr,
    /// or a `changes` array with -o json.
    #[arg(long)]
    pub explain: bool,
    /// Print Secret values instead of <redacted>.
    #[arg(long)]
    pub show_secrets: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum DiffFormat {
    Text,
    Markdown,
    Json,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The environment to show (usually the local twin).
    #[arg(long, default_value = "local")]
    pub env: String,
    /// The environment to compare against (e.g. dev or prod).
    #[arg(long, value_name = "ENV")]
    pub against: String,
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub output: DiffFormat,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Repository root to scan (default: the current directory).
    pub dir: Option<PathBuf>,
    /// Overwrite an existing ktwin.yaml.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum DoctorFormat {
    Text,
    Json,
    Sarif,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum FailOn {
    Error,
    Warning,
    Info,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Environment whose manifests to check against the local twin.
    #[arg(long, default_value = "local")]
    pub env: String,
    /// Check these manifest files or directories instead of the environment's (without a
    /// ktwin.yaml, against a default single-node k3d twin). Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    pub files: Vec<PathBuf>,
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub output: DoctorFormat,
    /// Exit 1 when a finding reaches this severity.
    #[arg(long, value_enum, default_value = "error")]
    pub fail_on: FailOn,
    /// Print the catalogue of checks.
    #[arg(long)]
    pub list_checks: bool,
    /// Print why a check exists, the incident it prevents, and the fix.
    #[arg(long, value_name = "CHECK")]
    pub explain: Option<String>,
    /// Also check the running twin: control-plane taint, node label/taint drift, storage
    /// classes, registry pulls from nodes, readiness probes answering 401/403.
    #[arg(long)]
    pub live: bool,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Print the exact config the provider (k3d or kind) will receive.
    #[command(
        after_help = "Examples:\n  ktwin cluster config                    the provider ktwin.yaml names\n  \
ktwin cluster config --provider kind    what kind would receive instead"
    )]
    Config(ClusterConfigArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ProviderArg {
    K3d,
    Kind,
}

#[derive(Debug, Args)]
pub struct ClusterConfigArgs {
    /// Render for this provider instead of `cluster.provider`.
    #[arg(long, value_enum)]
    pub provider: Option<ProviderArg>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum EngineArg {
    Docker,
    Podman,
}

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Create or start the registry container; a no-op when it already matches ktwin.yaml.
    #[command(
        after_help = "The registry is one container (registry.name) published on 127.0.0.1:<registry.hostPort>,\n\
its data in the volume <name>-data. It outlives every cluster. A registry that differs from\n\
ktwin.yaml (image, port) is reported, and recreated only with --recreate; its images are kept."
    )]
    Up {
        /// Recreate a registry that differs from ktwin.yaml (its data volume is kept).
        #[arg(long)]
        recreate: bool,
    },
    /// Remove the registry container; its images stay in the data volume unless --purge.
    Down {
        /// Also delete the data volume and every image in it.
        #[arg(long)]
        purge: bool,
    },
    /// Is it there, running, matching ktwin.yaml, answering?
    Status {
        #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
        output: StatusFormat,
    },
    /// Delete old ktwin content tags (keeping the newest N per repository) and reclaim blobs.
    #[command(
        after_help = "Only this project's repositories are looked at (--all-projects: every one), and only\n\
tags ktwin wrote (ktwin-<16 hex>) are candidates, newest first by the image's creation time.\n\
Never deleted: other tags, any tag a recorded deploy runs or the current sources build to, and\n\
any manifest a kept tag shares. The registry's own garbage collector then removes blobs\n\
nothing references. Run it when no build is pushing.\n\n\
Examples:\n  ktwin registry gc                 keep the 3 newest per repository\n  \
ktwin registry gc --keep 1 --dry-run"
    )]
    Gc {
        /// Content tags to keep per repository (at least 1), besides every tag a deploy of this
        /// project recorded and the tags the current sources build to.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
        keep: u16,
        /// Look at every repository in the registry, not only this project's images (tags any
        /// project's deploys recorded are still kept).
        #[arg(long)]
        all_projects: bool,
        /// Print what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
        output: StatusFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Pull every built image through the mirror config the nodes use, on every node.
    #[command(
        after_help = "Each image is pulled at its current content tag under both names the nodes mirror:\n\
localhost:<hostPort>/... (what rendered manifests use) and <registry.name>:5000/... (the name on the\n\
cluster network). By default on every node of the cluster (`crictl pull` inside the node).\n\
With --containerd SOCKET, a containerd on this host stands in for a node: ktwin writes the same\n\
hosts.toml files it gives kind nodes, pointing at 127.0.0.1:<hostPort>, and pulls with ctr.\n\n\
Examples:\n  ktwin images verify\n  ktwin images verify --containerd /run/containerd/containerd.sock"
    )]
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Images to verify (default: all).
    pub images: Vec<String>,
    /// Pull through this containerd socket on the host instead of the cluster's nodes.
    #[arg(long, value_name = "SOCKET")]
    pub containerd: Option<PathBuf>,
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub output: StatusFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum StatusFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Print the plan (every command and file) and change nothing; read-only probes still run.
    #[arg(long)]
    pub dry_run: bool,
    /// Delete and recreate a cluster (or registry) that differs in ways only recreating fixes.
    #[arg(long)]
    pub recreate: bool,
    /// The kube context to use; must be the managed cluster's (checked before any connection).
    #[arg(long, value_name = "CTX")]
    pub context: Option<String>,
    /// How long the final deploy waits for rollouts.
    #[arg(long, value_parser = parse_duration, default_value = "5m", value_name = "D")]
    pub timeout: std::time::Duration,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Trigger {
    /// A cycle as soon as the tree has been quiet for 50 ms after a change.
    Auto,
    /// Changes are collected; a cycle runs when Enter is pressed.
    Manual,
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Images to rebuild when they change (repository, path or its last part); the others
    /// keep the tag the first cycle gave them. Default: every image.
    pub images: Vec<String>,
    #[arg(long, default_value = "local")]
    pub env: String,
    /// The kube context; must be the one the environment may use.
    #[arg(long, value_name = "CTX")]
    pub context: Option<String>,
    /// Do not follow the workloads' logs.
    #[arg(long)]
    pub no_logs: bool,
    #[arg(long, value_enum, default_value = "auto")]
    pub trigger: Trigger,
    /// `text`, or `json`: NDJSON events on stdout, one object per line.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub output: StatusFormat,
    /// On exit, delete what this environment deployed (never claims or volumes).
    #[arg(long)]
    pub cleanup: bool,
    /// The twin is up: skip the registry and cluster reconcile before the first cycle.
    #[arg(long)]
    pub no_up: bool,
    /// How long each cycle waits for the rollouts it caused.
    #[arg(long, value_parser = parse_duration, default_value = "2m", value_name = "D")]
    pub timeout: std::time::Duration,
    /// Poll the tree instead of the OS's file events (network file systems).
    #[arg(long)]
    pub poll: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum RunFormat {
    Text,
    Json,
    Yaml,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The template under `jobs:` in ktwin.yaml.
    #[arg(required_unless_present = "from", conflicts_with = "from")]
    pub job: Option<String>,
    /// A rendered CronJob or Job to run once instead: `cronjob/NAME` or `job/NAME`.
    #[arg(long, value_name = "KIND/NAME")]
    pub from: Option<String>,
    #[arg(long, default_value = "local")]
    pub env: String,
    /// The kube context; must be the one the environment may use.
    #[arg(long, value_name = "CTX")]
    pub context: Option<String>,
    /// Set an environment variable of the job's container (repeatable; later wins).
    #[arg(long = "set-env", value_name = "K=V", value_parser = parse_key_value)]
    pub set_env: Vec<(String, String)>,
    /// Put a file's bytes, base64-encoded, in an environment variable (repeatable). Payloads
    /// over 64 KiB go to a Secret the Job owns.
    #[arg(long = "env-b64", value_name = "K=@FILE", value_parser = parse_key_file)]
    pub env_b64: Vec<(String, std::path::PathBuf)>,
    /// Create the run, print its name and return.
    #[arg(long)]
    pub detach: bool,
    /// How long to wait attached before returning (the run keeps going); default: until it ends.
    #[arg(long, value_parser = parse_duration, value_name = "D")]
    pub timeout: Option<std::time::Duration>,
    /// Print the Job (and payload Secret, values redacted) that would be created; create nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// `text`; `json`: one object `{name, outcome, exitCode, result, ...}` at the end (logs on
    /// stderr); `yaml` (with --dry-run, the default there).
    #[arg(short = 'o', long = "output", value_enum)]
    pub output: Option<RunFormat>,
    /// With --dry-run: show payload values instead of <redacted>.
    #[arg(long)]
    pub show_secrets: bool,
    /// Do not build a ktwin-built image the registry lacks.
    #[arg(long)]
    pub no_build: bool,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[arg(long, default_value = "local")]
    pub env: String,
    #[arg(long, value_name = "CTX")]
    pub context: Option<String>,
    /// Give the command the env and config files of this workload's container:
    /// `WORKLOAD`, `KIND/WORKLOAD`, either followed by `/CONTAINER`.
    #[arg(long = "as", value_name = "WORKLOAD[/CONTAINER]")]
    pub as_workload: Option<String>,
    /// Print the env (KEY=value lines; secrets as <redacted>) instead of running a command.
    #[arg(long)]
    pub print_env: bool,
    /// Forward every in-cluster Service the env refers to (`postgres:5432`,
    /// `http://api.shop.svc.cluster.local`) to a local port and rewrite those values to
    /// `127.0.0.1:<port>`, for as long as the command runs. No root, no /etc/hosts.
    #[arg(long, requires = "as_workload", conflicts_with = "print_env")]
    pub forward: bool,
    /// With --print-env: print secret values too.
    #[arg(long, requires = "print_env")]
    pub show_secrets: bool,
    /// The command and its arguments (after `--`).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// The runs of this project's environment, newest first.
    List(JobsArgs),
    /// The log of a run's pods, then its result lines.
    Logs(JobNameArgs),
    /// Delete a run with its pods and payload Secret.
    Cancel(JobNameArgs),
}

#[derive(Debug, Args)]
pub struct JobsArgs {
    #[arg(long, default_value = "local")]
    pub env: String,
    #[arg(long, value_name = "CTX")]
    pub context: Option<String>,
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub output: StatusFormat,
}

#[derive(Debug, Args)]
pub struct JobNameArgs {
    /// The run's name (as `ktwin jobs list` shows it).
    pub name: String,
    #[arg(long, default_value = "local")]
    pub env: String,
    #[arg(long, value_name = "CTX")]
    pub context: Option<String>,
}

/// `K=V` (V may hold `=`).
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not K=V"))?;
    env_name(k)?;
    Ok((k.to_string(), v.to_string()))
}

/// `K=@FILE`.
pub fn parse_key_file(s: &str) -> Result<(String, std::path::PathBuf), String> {
    let (k, f) = s
        .split_once("=@")
        .ok_or_else(|| format!("`{s}` is not K=@FILE (e.g. TASK_PROMPT_B64=@prompt.md)"))?;
    env_name(k)?;
    if f.is_empty() {
        return Err(format!("`{s}`: no file after @"));
    }
    Ok((k.to_string(), std::path::PathBuf::from(f)))
}

/// A name Kubernetes accepts for an env var (C identifier-like, as kubectl checks).
fn env_name(k: &str) -> Result<(), String> {
    let ok = !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!("`{k}` is not an environment variable name"))
    }
}

/// A duration such as `90s`, `5m`, `1h` or `1m30s`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num
            .parse()
            .map_err(|_| format!("`{s}` is not a duration like 90s, 5m or 1h"))?;
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(format!("`{s}`: unknown unit `{c}` (use s, m or h)")),
        };
        num.clear();
    }
    if !num.is_empty() {
        return Err(format!("`{s}` needs a unit: {s}s, {s}m or {s}h"));
    }
    if s.is_empty() {
        return Err("empty duration".into());
    }
    Ok(std::time::Duration::from_secs(total))
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Environment to deploy.
    #[arg(long, default_value = "local")]
    pub env: String,
    /// The kube context; must be the one the environment may use (checked before any connection).
    #[arg(long, value_name = "CTX")]
    pub context: Option<String>,
    /// Delete ktwin's objects of this project and environment that the render no longer has
    /// (default for local).
    #[arg(long, conflicts_with = "no_prune")]
    pub prune: bool,
    /// Keep them (default for remote environments).
    #[arg(long)]
    pub no_prune: bool,
    /// Prune PersistentVolumeClaims and PersistentVolumes too. Without it they are kept and
    /// reported as `kept (volume)`: with local-path, deleting a claim deletes its data.
    #[arg(long)]
    pub prune_volumes: bool,
    /// Take over fields another field manager owns.
    #[arg(long)]
    pub force_conflicts: bool,
    /// A remote environment's context now leads to a different cluster than the one first
    /// deployed to (its kube-system namespace UID changed): deploy anyway and record it.
    #[arg(long)]
    pub accept_new_cluster: bool,
    /// How long to wait for rollouts.
    #[arg(long, value_parser = parse_duration, default_value = "5m", value_name = "D")]
    pub timeout: std::time::Duration,
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub output: StatusFormat,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(long, default_value = "local")]
    pub env: String,
    #[arg(long, value_name = "CTX")]
    pub context: Option<String>,
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub output: StatusFormat,
}

#[derive(Debug, Args)]
pub struct HealArgs {
    /// Print what would be fixed; fix nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// A Deployment, StatefulSet or DaemonSet of the environment (default: all of them).
    pub workload: Option<String>,
    /// Keep streaming.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only lines newer than this (e.g. 10m).
    #[arg(long, value_parser = parse_duration, value_name = "D")]
    pub since: Option<std::time::Duration>,
    #[arg(long, default_value = "local")]
    pub env: String,
    #[arg(long, value_name = "CTX")]
    pub context: Option<String>,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    /// A Deployment, StatefulSet or DaemonSet of the environment.
    pub workload: String,
    #[arg(long, default_value = "local")]
    pub env: String,
    #[arg(long, value_name = "CTX")]
    pub context: Option<String>,
    /// How long to wait for the restarted rollout.
    #[arg(long, value_parser = parse_duration, default_value = "5m", value_name = "D")]
    pub timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Also remove the registry container and every image in its data volume.
    #[arg(long)]
    pub purge_registry: bool,
    /// Also delete the twin's volume data (`cluster.persistentVolumes`: the host dir under
    /// $XDG_DATA_HOME/ktwin/volumes/<project>). Kept by default, so the next `up` finds it.
    #[arg(long)]
    pub purge_volumes: bool,
    /// Print what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Images to build (default: all).
    pub images: Vec<String>,
    /// Without a readable engine store, a first push goes through the engine's export, and
    /// the engine then pushes the image once more in the background so that later changes
    /// move only new layers. That push compresses every layer: with this flag it is not
    /// started, for a script that pulls the image right away (`ktwin up` and `ktwin dev`
    /// start it after their rollout). Later changes then take the export path again.
    #[arg(long)]
    pub no_engine_push: bool,
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub output: StatusFormat,
}
