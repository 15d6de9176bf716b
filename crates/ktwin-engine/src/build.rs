//! `ktwin build`: content-tagged builds that skip everything when the registry already has the
//! tag (this survives cluster recreation, because the registry does), and otherwise build with
//! the engine and give the registry only the layers it lacks, uncompressed (see `oci.rs`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ktwin_config::contenttag::state_dir;
use ktwin_config::desired::{ImagePlan, RegistryAddr};
use serde::Serialize;
use serde_json::Value;

use crate::engine::{Engine, EngineKind};
use crate::layerstore::LayerStore;
use crate::oci::{self, Moved, Progress, PushError, Target, ENGINE_TAG};
use crate::registry_api::RegistryApi;
use crate::runner::RunError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The registry already had this content tag: nothing built, nothing moved.
    Skipped,
    /// Built and pushed.
    Pushed,
}

/// How the layers reached the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// Nothing to move.
    None,
    /// Every layer was already there; only the manifest was written.
    Manifest,
    /// Only the missing layers, read from the engine's layer store, uploaded uncompressed.
    Store,
    /// Read from the engine's image export, uploaded uncompressed.
    Export,
    /// The engine pushed its changed layers; ktwin stored them uncompressed.
    EnginePush,
}

/// The engine's one-time push that teaches it which layers the registry has, left running
/// in the background after an export push.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Background {
    pub pid: u32,
    pub log: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildReport {
    pub image: String,
    pub reference: String,
    pub tag: String,
    pub outcome: Outcome,
    pub via: Via,
    pub layers: usize,
    pub layers_pushed: usize,
    pub bytes_pushed: u64,
    /// Time spent in the engine's build.
    pub build_seconds: f64,
    /// From the end of the build until the registry serves the tag.
    pub push_seconds: f64,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub background: Option<Background>,
    /// The engine push that would have started in the background, left for the caller to
    /// start once the nodes have pulled (see [`build_one`]'s `defer_engine_push`).
    #[serde(skip)]
    pub pending_engine_push: Option<PendingPush>,
}

/// An engine push to start later with [`start_pending`].
#[derive(Debug, Clone)]
pub struct PendingPush {
    repo: String,
    reference: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("image {image}: {message}")]
    Inputs { image: String, message: String },
    #[error("the registry does not answer on 127.0.0.1:{port}")]
    RegistryDown { port: u16 },
    #[error("the build of {image} was stopped: its inputs changed while it ran")]
    Cancelled { image: String },
    #[error("building {image} failed:\n```\n{stderr}\n```")]
    BuildFailed { image: String, stderr: String },
    #[error("pushing {reference} failed:\n```\n{stderr}\n```")]
    PushFailed { reference: String, stderr: String },
    #[error("pushing {reference} failed: {source}")]
    Push {
        reference: String,
        #[source]
        source: PushError,
    },
    #[error(transparent)]
    Engine(#[from] RunError),
    #[error(transparent)]
    Api(#[from] crate::registry_api::ApiError),
}

impl BuildError {
    pub fn help(&self) -> Option<String> {
        match self {
            BuildError::RegistryDown { .. } => Some("start it with `ktwin registry up`".into()),
            BuildError::PushFailed { .. } | BuildError::Push { .. } => Some("check `ktwin registry status` (start it with `ktwin registry up`); rerunning `ktwin build` resumes, moving only what the registry still lacks".into()),
            _ => None,
        }
    }
}

fn failed_stderr(e: RunError) -> Result<String, BuildError> {
    match e {
        RunError::Failed { stderr, .. } => Ok(stderr),
        other => Err(other.into()),
    }
}

fn background_files(port: u16, repo: &str) -> (PathBuf, PathBuf) {
    let stem = format!("engine-push-{port}-{}", repo.replace('/', "_"));
    let d = state_dir();
    (d.join(format!("{stem}.pid")), d.join(format!("{stem}.log")))
}

/// What identifies one process across PID reuse and reboots: its PID, its start time in
/// clock ticks since boot (`/proc/<pid>/stat` field 22) and the boot it started in.
fn process_identity(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at state, field 3.
    let after = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    let start = fields.get(19)?;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    Some(format!("{pid} {start} {}", boot.trim()))
}

/// The longest ktwin waits for an earlier build's background engine push.
const BACKGROUND_WAIT: Duration = Duration::from_secs(600);

/// Wait for a background engine push of `repo` still running from an earlier build. The PID
/// file records the process's identity, so a PID now used by another process (after a
/// reboot, or reused) is not waited for; and the wait is bounded.
fn wait_for_background(port: u16, repo: &str, progress: Progress) {
    wait_for_recorded(&background_files(port, repo).0, progress)
}

fn wait_for_recorded(pid_file: &Path, progress: Progress) {
    let Some(recorded) = std::fs::read_to_string(pid_file).ok() else {
        return;
    };
    let recorded = recorded.trim().to_string();
    let Some(pid) = recorded
        .split_whitespace()
        .next()
        .and_then(|p| p.parse::<u32>().ok())
    else {
        let _ = std::fs::remove_file(pid_file);
        return;
    };
    let deadline = std::time::Instant::now() + BACKGROUND_WAIT;
    while process_identity(pid).as_deref() == Some(recorded.as_str()) {
        if std::time::Instant::now() >= deadline {
            progress(
                "the engine's background push is still running; not waiting longer",
                0,
            );
            return;
        }
        progress("waiting for the engine's background push", 0);
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = std::fs::remove_file(pid_file);
}

/// `docker image inspect`: the config digest (image ID) and the layer diffIDs, base first.
fn inspect(engine: &Engine, reference: &str) -> Result<(String, Vec<String>), BuildError> {
    let out = engine.cmd(["image", "inspect", reference]).run()?;
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    // Docker gives the ID as a digest, Podman as bare hex.
    let id = v[0]["Id"].as_str().unwrap_or_default();
    let id = if id.is_empty() || id.starts_with("sha256:") {
        id.to_string()
    } else {
        format!("sha256:{id}")
    };
    let layers = v[0]["RootFS"]["Layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.as_str().map(str::to_string))
        .collect();
    Ok((id, layers))
}

/// Build and push one image (or skip it), at the tag its plan hashed: what is pushed is
/// what the render of the same plan deploys. `siblings` are the project's other repositories.
/// `stop` is asked while the engine builds and once before the push: when it says the build
/// is stale (`ktwin dev` saw its inputs change), the build is ended and nothing is pushed.
///
/// After an export push the engine pushes the image once more in the background, so it
/// learns which layers the registry has. That push compresses every layer and so competes
/// for the CPU with the nodes' pull of the same image: with `defer_engine_push` it is not
/// started but returned as `pending_engine_push`, for a caller that knows when the rollout
/// is over (`up`, `dev`).
pub fn build_one(
    engine: &Engine,
    img: &ImagePlan,
    registry: &RegistryAddr,
    siblings: &[String],
    progress: Progress,
    stop: &dyn Fn() -> bool,
    defer_engine_push: bool,
) -> Result<BuildReport, BuildError> {
    let started = Instant::now();
    let port = registry.host_port;
    let tag = img.tag.to_string();
    let r = &img.repo;
    let reference = img.reference.clone();
    let api = RegistryApi::new(registry);
    if !api.healthy() {
        return Err(BuildError::RegistryDown { port });
    }
    let mut report = BuildReport {
        image: img.image.clone(),
        reference: reference.clone(),
        tag: tag.clone(),
        outcome: Outcome::Skipped,
        via: Via::None,
        layers: 0,
        layers_pushed: 0,
        bytes_pushed: 0,
        build_seconds: 0.0,
        push_seconds: 0.0,
        seconds: 0.0,
        background: None,
        pending_engine_push: None,
    };
    progress("checking the registry", 0);
    if api.has_manifest(&r.path, &tag)? {
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }
    // Asking the engine where its store is takes a round trip (a quarter second through
    // Podman's API): asked while the engine builds, not after.
    let store_probe = {
        let engine = engine.clone();
        std::thread::spawn(move || {
            layer_store(&engine);
        })
    };
    progress("building", 0);
    let mut args: Vec<String> = vec![
        "build".into(),
        "-q".into(),
        "-t".into(),
        reference.clone(),
        "-f".into(),
    ];
    args.push(img.dockerfile.display().to_string());
    for (k, v) in &img.spec.build_args {
        args.push("--build-arg".into());
        args.push(format!("{k}={v}"));
    }
    if let Some(t) = &img.spec.target {
        args.push("--target".into());
        args.push(t.clone());
    }
    args.push(img.context.display().to_string());
    let cancelled = || BuildError::Cancelled {
        image: img.image.clone(),
    };
    match engine.cmd(&args).run_until(stop) {
        Ok(_) => {}
        Err(RunError::Cancelled { .. }) => return Err(cancelled()),
        Err(e) => {
            return Err(BuildError::BuildFailed {
                image: img.image.clone(),
                stderr: failed_stderr(e)?,
            })
        }
    }
    if stop() {
        return Err(cancelled());
    }
    let _ = store_probe.join();
    report.build_seconds = started.elapsed().as_secs_f64();
    let push_start = Instant::now();
    let push_err = |source| BuildError::Push {
        reference: reference.clone(),
        source,
    };
    wait_for_background(port, &r.path, progress);
    let (config, diff_ids) = inspect(engine, &reference)?;
    let target = Target {
        api: &api,
        repo: &r.path,
        tag: &tag,
        siblings,
    };
    progress("checking layers", 0);
    // Each layer is asked about once; the store path uploads exactly the `None`s.
    let sizes = diff_ids
        .iter()
        .map(|d| target.present(d))
        .collect::<Result<Vec<_>, _>>()?;
    let config_size = target.present(&config)?;
    let moved: Moved;
    let all: Option<Vec<(&String, u64)>> = diff_ids
        .iter()
        .zip(&sizes)
        .map(|(d, s)| s.map(|n| (d, n)))
        .collect();
    if let (Some(layers), Some(cs)) = (&all, config_size) {
        moved = oci::manifest_only(&target, (&config, cs), layers).map_err(push_err)?;
        report.via = Via::Manifest;
    } else if let Some(done) = store_push(
        engine, &reference, &config, &diff_ids, sizes, &target, progress,
    )? {
        moved = done;
        report.via = Via::Store;
    } else if api.has_manifest(&r.path, ENGINE_TAG)? {
        let engine_ref = registry.reference(&r.path, ENGINE_TAG);
        progress("engine push of changed layers", 0);
        engine
            .cmd(["tag", reference.as_str(), engine_ref.as_str()])
            .run()?;
        if let Err(e) = engine.cmd(push_args(engine, &engine_ref)).run() {
            return Err(BuildError::PushFailed {
                reference: reference.clone(),
                stderr: failed_stderr(e)?,
            });
        }
        moved = oci::convert_engine_push(&target, progress).map_err(push_err)?;
        report.via = Via::EnginePush;
    } else {
        moved = oci::push_from_export(engine, &reference, &target, progress).map_err(push_err)?;
        report.via = Via::Export;
        let pending = PendingPush {
            repo: r.path.clone(),
            reference: reference.clone(),
        };
        if defer_engine_push {
            report.pending_engine_push = Some(pending);
        } else {
            report.background = start_pending(engine, registry, &pending);
        }
    }
    report.outcome = Outcome::Pushed;
    report.layers = moved.layers;
    report.layers_pushed = moved.layers_pushed;
    report.bytes_pushed = moved.bytes_pushed;
    report.push_seconds = push_start.elapsed().as_secs_f64();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The engine's readable layer store, asked of the engine once per process, not once per
/// image.
fn layer_store(engine: &Engine) -> &'static Option<LayerStore> {
    static STORE: std::sync::OnceLock<Option<LayerStore>> = std::sync::OnceLock::new();
    STORE.get_or_init(|| LayerStore::detect(engine))
}

/// The layer-store path when the engine's store is readable. `None` means "use another
/// path": no readable store, or the store could not serve these layers exactly (a layer
/// whose bytes do not hash to its diffID is refused before it is committed).
fn store_push(
    engine: &Engine,
    reference: &str,
    config: &str,
    diff_ids: &[String],
    sizes: Vec<Option<u64>>,
    target: &Target,
    progress: Progress,
) -> Result<Option<Moved>, BuildError> {
    let Some(store) = layer_store(engine) else {
        return Ok(None);
    };
    match oci::push_from_store(store, config, diff_ids, sizes, target, progress) {
        Ok(m) => Ok(Some(m)),
        Err(PushError::Archive { .. })
        | Err(PushError::Api(crate::registry_api::ApiError::DigestMismatch { .. })) => Ok(None),
        Err(e) => Err(BuildError::Push {
            reference: reference.to_string(),
            source: e,
        }),
    }
}

fn push_args(engine: &Engine, reference: &str) -> Vec<String> {
    let mut a = vec!["push".to_string()];
    if engine.kind == EngineKind::Podman {
        // Podman does not treat localhost as plain-HTTP by itself.
        a.push("--tls-verify=false".into());
    }
    a.push(reference.to_string());
    a
}

/// After an export push, let the engine push the image once to `<repo>:ktwin-engine` in the
/// background, so that from the next change on it compresses only new layers. Best effort:
/// when it cannot start, the next build simply takes the export path again.
pub fn start_pending(
    engine: &Engine,
    registry: &RegistryAddr,
    p: &PendingPush,
) -> Option<Background> {
    let (repo, reference) = (p.repo.as_str(), p.reference.as_str());
    let port = registry.host_port;
    let engine_ref = registry.reference(repo, ENGINE_TAG);
    engine
        .cmd(["tag", reference, engine_ref.as_str()])
        .run()
        .ok()?;
    let (pid_file, log) = background_files(port, repo);
    std::fs::create_dir_all(state_dir()).ok()?;
    let _ = std::fs::write(&log, b"");
    let pid = engine
        .cmd(push_args(engine, &engine_ref))
        .spawn_detached(&log)
        .ok()?;
    let identity = process_identity(pid).unwrap_or_else(|| pid.to_string());
    std::fs::write(&pid_file, identity).ok()?;
    Some(Background { pid, log })
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // the test starts and ends a process of its own
mod tests {
    use super::*;

    #[test]
    fn a_recycled_pid_is_not_waited_for() {
        let dir = std::env::temp_dir().join(format!("ktwin-bg-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pid_file = dir.join("engine-push-5393-acme_app.pid");
        // A live process, but not the push that was recorded: an old-style bare PID, then
        // the right PID with another start time.
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let me = process_identity(sleeper.id()).unwrap();
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let progress = |_: &str, _: u64| {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        };
        for stale in [sleeper.id().to_string(), me.replacen(' ', " 1", 1)] {
            std::fs::write(&pid_file, &stale).unwrap();
            let t = std::time::Instant::now();
            wait_for_recorded(&pid_file, &progress);
            assert!(t.elapsed() < Duration::from_secs(5), "{stale}");
            assert!(!pid_file.exists());
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 0);
        // The recorded process itself: waited for until it ends.
        std::fs::write(&pid_file, &me).unwrap();
        let id = sleeper.id();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            let _ = std::process::Command::new("kill")
                .arg(id.to_string())
                .status();
        });
        wait_for_recorded(&pid_file, &progress);
        let _ = sleeper.wait();
        assert!(calls.load(std::sync::atomic::Ordering::SeqCst) > 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
