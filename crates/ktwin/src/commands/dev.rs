//! `ktwin dev`: the inner loop. The twin reconciled (as `up`), a full cycle, then: watch →
//! batch → cycle, until Ctrl-C. A cycle is a new Plan (ktwin.yaml read again) → the images
//! whose content tag changed built and pushed → render → the objects whose rendered form
//! changed applied (the rest cost no request) → prune of what left → the rollouts it caused
//! waited for. Nothing in a cycle ends the loop: a failure is an `error` event and the twin
//! keeps its last good state. Events go out as text lines, or (`-o json`) as NDJSON on stdout.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ktwin_config::desired::{plan_images, ImagePlan};
use ktwin_config::event::{Action, Event};
use ktwin_config::Loaded;
use ktwin_engine::build::{BuildReport, Outcome};
use ktwin_engine::Engine;
use ktwin_kube::deploy::{deploy as kube_deploy, Applied, Options};
use ktwin_kube::guard::Intent;
use ktwin_kube::{connect, Discovery, GuardedContext};
use serde_json::{json, Value};

use crate::cli::{Cli, DevArgs, StatusFormat, Trigger};
use crate::plan::{kube_failure, Plan};
use crate::printer;
use crate::report::Failure;
use crate::steps;
use crate::watch;

/// Where events go: NDJSON on stdout, or text lines (logs on stdout, the rest on stderr).
#[derive(Clone, Copy)]
struct Out {
    json: bool,
    colour: bool,
    /// The status board is drawn (text mode on a terminal).
    board: bool,
}

/// `2026-12-01T10:00:00.123Z`.
fn now() -> String {
    format!("{:.3}", jiff::Timestamp::now())
}

impl Out {
    /// One event: `{"t", "event", ...fields}` as a line of NDJSON, or its text.
    fn emit(&self, event: &str, fields: Value) {
        if self.board {
            self.update_board(event, &fields);
        }
        if self.json {
            let mut o = serde_json::Map::new();
            o.insert("t".into(), json!(now()));
            o.insert("event".into(), json!(event));
            if let Value::Object(f) = fields {
                o.extend(f);
            }
            printer::out(&format!("{}\n", Value::Object(o)));
            return;
        }
        let s = |k: &str| fields[k].as_str().unwrap_or("").to_string();
        let text = match event {
            "ready" => format!(
                "ready: watching {} ({})",
                s("root"),
                if fields["polling"].is_string() {
                    format!("polling: {}", s("polling"))
                } else {
                    "file events".into()
                }
            ),
            "change" => {
                let paths: Vec<&str> = fields["paths"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let shown: Vec<&str> = paths.iter().take(3).copied().collect();
                let more = paths.len().saturating_sub(3);
                format!(
                    "change: {}{}",
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                )
            }
            "build" if fields["outcome"] == "cancelled" => {
                format!(
                    "{}: build stopped, its inputs changed while it ran",
                    s("image")
                )
            }
            // `steps::build_images` says each build on stderr already.
            "build" | "push" => return,
            "apply" => match fields["namespace"].as_str() {
                Some(ns) => format!("{} ({ns}): {}", s("object"), s("action")),
                None => format!("{}: {}", s("object"), s("action")),
            },
            "rollout" => format!(
                "{}: {}{}",
                s("workload"),
                s("state"),
                fields["reason"]
                    .as_str()
                    .map(|r| format!(" — {r}"))
                    .unwrap_or_default()
            ),
            "log" => {
                let prefix = format!("{}/{}", s("pod"), s("container"));
                let l = if self.colour {
                    format!("\x1b[36m{prefix}\x1b[0m | {}\n", s("line"))
                } else {
                    format!("{prefix} | {}\n", s("line"))
                };
                printer::out(&l);
                return;
            }
            "error" => format!("error ({}): {}", s("phase"), s("message")),
            "cycle" => {
                if fields["cancelled"] == true {
                    "cycle stopped: building the new content".into()
                } else if fields["noop"] == true {
                    "no change in content: nothing built or sent".into()
                } else {
                    format!(
                        "cycle: {} image(s) built, {} object(s) sent, {} unchanged, {} pruned in {:.1}s",
                        fields["images"],
                        fields["sent"],
                        fields["unchanged"],
                        fields["pruned"],
                        fields["seconds"].as_f64().unwrap_or(0.0)
                    )
                }
            }
            "warning" => format!("warning: {}", s("message")),
            "sync" => format!(
                "{}: {} file(s) synced ({}) into {} pod(s){}",
                s("image"),
                fields["files"],
                s("mode"),
                fields["pods"],
                if fields["restart"] == "rollout" {
                    "; restarting them"
                } else {
                    ""
                }
            ),
            "forward" => match s("state").as_str() {
                "listening" => format!(
                    "forward: 127.0.0.1:{} → service/{} ({}) port {}",
                    fields["localPort"],
                    s("service"),
                    s("namespace"),
                    fields["port"]
                ),
                "error" => format!(
                    "forward 127.0.0.1:{} (service/{}): {}",
                    fields["localPort"],
                    s("service"),
                    s("message")
                ),
                _ => return,
            },
            other => format!("{other}: {fields}"),
        };
        printer::err(&text);
    }

    /// Keep the board's lines current.
    fn update_board(&self, event: &str, f: &Value) {
        let s = |k: &str| f[k].as_str().unwrap_or("").to_string();
        match event {
            "build" => {
                let at = jiff::Zoned::now().strftime("%H:%M:%S").to_string();
                crate::board::image(
                    &s("image"),
                    format!(
                        "{}  {} {:.1}s at {at}",
                        s("tag"),
                        s("outcome"),
                        f["seconds"].as_f64().unwrap_or(0.0)
                    ),
                );
            }
            "sync" => crate::board::image(
                &s("image"),
                format!("{} file(s) synced ({})", f["files"], s("mode")),
            ),
            "error" => crate::board::error(Some(format!("{}: {}", s("phase"), s("message")))),
            "cycle" if f["cancelled"] != true => crate::board::error(None),
            "forward" if s("state") != "connected" => crate::board::forward(
                &format!("{}", f["localPort"]),
                format!(
                    "127.0.0.1:{} → service/{} port {}  {}{}",
                    f["localPort"],
                    s("service"),
                    f["port"],
                    s("state"),
                    f["message"]
                        .as_str()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ),
            ),
            _ => {}
        }
    }

    fn error(&self, phase: &str, f: &Failure) {
        if self.json {
            self.emit("error", json!({"phase": phase, "message": f.message()}));
        } else {
            printer::err(&format!("error ({phase}):"));
            f.print();
        }
    }
}

/// `deployment/web (shop)` → (`deployment/web`, `shop`).
fn split_object(described: &str) -> (String, Option<String>) {
    match described.rsplit_once(" (") {
        Some((o, ns)) => (o.to_string(), Some(ns.trim_end_matches(')').to_string())),
        None => (described.to_string(), None),
    }
}

/// A library event as a dev event.
fn lib_event(out: &Out, e: Event) {
    let apply = |object: &str, action: &str| {
        let (o, ns) = split_object(object);
        out.emit(
            "apply",
            json!({"object": o, "namespace": ns, "action": action}),
        );
    };
    match e {
        Event::Applied { object, action } => apply(&object, action.as_str()),
        Event::NamespaceCreated { name } => apply(&format!("namespace/{name}"), "created"),
        Event::Pruned { object } => apply(&object, "pruned"),
        Event::Kept { object, .. } => apply(&object, "kept"),
        Event::RolloutProgress { workload, message } => out.emit(
            "rollout",
            json!({"workload": workload, "state": "progressing", "reason": message}),
        ),
        Event::RolledOut { workload, seconds } => out.emit(
            "rollout",
            json!({"workload": workload, "state": "done", "seconds": seconds}),
        ),
        other => {
            if !out.json {
                printer::event(other);
            }
        }
    }
}

/// What the session has put on the twin.
#[derive(Default)]
struct Session {
    /// Per image, the plan of its last good (pushed) build.
    good: BTreeMap<String, ImagePlan>,
    /// What the last deploy sent (for sending only what changed).
    applied: Option<Applied>,
    /// The last rendered objects (for a content comparison before any deploy).
    rendered: Option<Vec<Value>>,
    /// Per image, the paths inside its context changed since its last build (sync decides
    /// on all of them, not on the last batch alone).
    since_build: BTreeMap<String, std::collections::BTreeSet<PathBuf>>,
}

/// The container paths at which the rendered workloads running `reference` mount a sync
/// volume (what mount mode really delivers: a rule the adaptation could not mount is absent).
fn mounted_dests(rendered: &[Value], reference: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for d in rendered {
        let Some(ptr) = ktwin_manifest::doc::pod_spec_pointer(d["kind"].as_str().unwrap_or(""))
        else {
            continue;
        };
        let Some(spec) = d.pointer(ptr) else { continue };
        for c in spec["containers"].as_array().into_iter().flatten() {
            if c["image"] != reference {
                continue;
            }
            for m in c["volumeMounts"].as_array().into_iter().flatten() {
                if m["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("ktwin-sync-"))
                {
                    if let Some(p) = m["mountPath"].as_str() {
                        out.insert(p.to_string());
                    }
                }
            }
        }
    }
    out
}

/// Where `path` (absolute) appears in the container by one of `image`'s sync rules, whether
/// that rule asks for a restart, and the rule's `dest`; `None` when no rule covers it. A glob's files keep
/// their place below its static prefix (what the mount mode mounts at `dest`); a directory's
/// below it; a single file is `dest` itself.
fn synced(image: &ImagePlan, path: &std::path::Path) -> Option<(String, bool, String)> {
    let rel = path.strip_prefix(&image.context).ok()?;
    image.spec.sync.iter().find_map(|r| {
        let restart = r.restart == ktwin_config::SyncRestart::Process;
        let rule = r.dest.clone();
        let under = |base: &std::path::Path| -> Option<String> {
            let rest = rel.strip_prefix(base).ok()?;
            Some(if rest.as_os_str().is_empty() {
                r.dest.clone()
            } else {
                format!("{}/{}", r.dest.trim_end_matches('/'), rest.display())
            })
        };
        if r.src.contains(['*', '?', '[', '{']) {
            let g = globset::Glob::new(&r.src).ok()?.compile_matcher();
            if !g.is_match(rel) {
                return None;
            }
            let prefix: PathBuf = std::path::Path::new(&r.src)
                .components()
                .take_while(|c| {
                    !c.as_os_str()
                        .to_string_lossy()
                        .contains(['*', '?', '[', '{'])
                })
                .collect();
            under(&prefix).map(|d| (d, restart, rule))
        } else {
            under(std::path::Path::new(&r.src)).map(|d| (d, restart, rule))
        }
    })
}

/// Whether the builds of a cycle went stale: asked by the builds while they run. Once the
/// watch has delivered paths and then been quiet for a batch's quiet time, the building
/// images' content tags are hashed again; a tag that moved means the build can only produce
/// an image nobody will run, so it is stopped (and the next cycle builds the new content).
/// A save that changes no content (a touch, an unrelated file) lets the build finish.
struct Staleness<'a> {
    seen: &'a AtomicU64,
    stopping: &'a AtomicBool,
    loaded: &'a Loaded,
    /// (image, reference) being built.
    building: Vec<(String, String)>,
    /// (paths seen at the last look, when that count last moved, stale).
    state: Mutex<(u64, Option<Instant>, bool)>,
}

impl Staleness<'_> {
    fn stale(&self) -> bool {
        if self.stopping.load(Ordering::SeqCst) {
            return true;
        }
        let Ok(mut st) = self.state.lock() else {
            return false;
        };
        let n = self.seen.load(Ordering::SeqCst);
        if n != st.0 {
            st.0 = n;
            st.1 = Some(Instant::now());
            return st.2;
        }
        if st.1.is_some_and(|t| t.elapsed() >= watch::QUIET) {
            st.1 = None;
            // Hashing fails on a half-written tree: not stale yet, the next event asks again.
            if let Ok(fresh) = plan_images(self.loaded) {
                st.2 = self.building.iter().any(|(image, reference)| {
                    fresh
                        .iter()
                        .any(|f| f.image == *image && f.reference != *reference)
                });
            }
        }
        st.2
    }
}

/// A copy-mode sync to make: the image at its last build, the plan a failed copy rebuilds,
/// (source, container path) of each changed file, and whether a rule asks for a restart.
struct Copy {
    good: ImagePlan,
    fresh: ImagePlan,
    files: Vec<(PathBuf, String)>,
    restart: bool,
}

struct Loop<'a> {
    cli: &'a Cli,
    a: &'a DevArgs,
    out: Out,
    eng: Engine,
    g: GuardedContext,
    disc: Discovery,
    /// The images `dev IMAGE...` rebuilds (None: all).
    wanted: Option<Vec<String>>,
    workloads: tokio::sync::watch::Sender<Vec<Value>>,
    /// Relevant paths the watch has delivered (see [`Staleness`]).
    seen: Arc<AtomicU64>,
    /// Ctrl-C was pressed: a running build stops at once.
    stopping: Arc<AtomicBool>,
    /// The watch's build contexts, kept to the latest plan's.
    contexts: Arc<Mutex<Vec<PathBuf>>>,
}

impl Loop<'_> {
    /// A sync-only change of `image` (mount mode): the files are already in the containers;
    /// say so, and restart the workloads that run it when a rule asks.
    /// Copy mode: `files` (source path, container path) into every running container that
    /// runs `image`. Deleted files are left (tar cannot remove); the count is of files copied.
    async fn copy(
        &mut self,
        s: &Session,
        image: &ImagePlan,
        files: &[(PathBuf, String)],
    ) -> Result<usize, Failure> {
        use std::os::unix::fs::PermissionsExt;
        let mut put = Vec::new();
        for (src, dest) in files {
            let Ok(meta) = std::fs::metadata(src) else {
                continue; // deleted: tar cannot remove it
            };
            if !meta.is_file() {
                continue;
            }
            let bytes = std::fs::read(src)
                .map_err(|e| Failure::input(format!("cannot read {}: {e}", src.display()), None))?;
            put.push(ktwin_kube::sync::CopyFile {
                dest: dest.clone(),
                bytes,
                mode: meta.permissions().mode() & 0o7777,
            });
        }
        if put.is_empty() {
            return Ok(0);
        }
        let client = self.disc.client().clone();
        for w in self.workloads_running(s, image) {
            let pods = ktwin_kube::pods_of(&client, &w)
                .await
                .map_err(|e| kube_failure(ktwin_kube::api_err(ktwin_kube::describe(&w), &e)))?
                .unwrap_or_default();
            for p in pods {
                if p["status"]["phase"] != "Running"
                    || !p["metadata"]["deletionTimestamp"].is_null()
                {
                    continue;
                }
                let ns = p["metadata"]["namespace"].as_str().unwrap_or("default");
                let pod = p["metadata"]["name"].as_str().unwrap_or("");
                for c in p["spec"]["containers"].as_array().into_iter().flatten() {
                    if c["image"] != image.reference.as_str() {
                        continue;
                    }
                    let cname = c["name"].as_str().unwrap_or("");
                    ktwin_kube::sync::copy_into(&client, ns, pod, cname, &put)
                        .await
                        .map_err(|e| Failure::input(e.to_string(), None))?;
                }
            }
        }
        Ok(put.len())
    }

    /// The rendered workloads whose pods run `image` at its reference.
    fn workloads_running(&self, s: &Session, image: &ImagePlan) -> Vec<Value> {
        s.rendered
            .iter()
            .flatten()
            .filter(|d| ktwin_kube::rollout::is_workload(d["kind"].as_str().unwrap_or("")))
            .filter(|d| d.to_string().contains(&format!("\"{}\"", image.reference)))
            .cloned()
            .collect()
    }

    async fn sync(
        &mut self,
        s: &Session,
        image: &ImagePlan,
        files: usize,
        restart: bool,
        mode: &str,
    ) {
        let workloads = self.workloads_running(s, image);
        let client = self.disc.client().clone();
        let mut pods = 0;
        for w in &workloads {
            if let Ok(Some(p)) = ktwin_kube::pods_of(&client, w).await {
                pods += p.len();
            }
        }
        self.out.emit(
            "sync",
            json!({"image": image.image, "files": files, "pods": pods, "mode": mode,
                   "restart": if restart { "rollout" } else { "none" }}),
        );
        if restart {
            let at = now();
            for w in &workloads {
                match ktwin_kube::logs::restart(&mut self.disc, w, &at).await {
                    Ok(()) => self.out.emit(
                        "rollout",
                        json!({"workload": ktwin_kube::describe(w), "state": "progressing",
                               "reason": "restarted: a synced file asks for `restart: process`"}),
                    ),
                    Err(e) => self.out.error("sync", &kube_failure(e)),
                }
            }
        }
    }

    /// One cycle; `paths` is what changed (empty for the first).
    async fn cycle(&mut self, s: &mut Session, paths: &[PathBuf]) {
        let started = Instant::now();
        if !paths.is_empty() {
            let shown: Vec<String> = paths.iter().map(|p| crate::report::shown(p)).collect();
            self.out.emit("change", json!({"paths": shown}));
        }
        let mut plan = match Plan::resolve(self.cli, &self.a.env, self.a.context.as_deref()) {
            Ok(p) => p,
            Err(f) => {
                // The last good plan keeps running; the next save retries.
                self.out.error("config", &f);
                return;
            }
        };
        if plan.context != self.g.context() {
            self.out.emit("warning", json!({"message": format!(
                "ktwin.yaml now names context `{}`; this session keeps writing to `{}` (restart ktwin dev to switch)",
                plan.context, self.g.context())}));
        }
        // Images: rebuild those whose content tag changed (and are wanted); keep the others at
        // their last good tag.
        let fresh: Vec<ImagePlan> = match plan.images() {
            Ok(i) => i.to_vec(),
            Err(f) => {
                self.out.error("plan", &f);
                return;
            }
        };
        // Build contexts may have moved with ktwin.yaml.
        if let Ok(mut c) = self.contexts.lock() {
            *c = fresh.iter().map(|i| i.context.clone()).collect();
        }
        for i in &fresh {
            let e = s.since_build.entry(i.image.clone()).or_default();
            e.extend(paths.iter().filter(|p| p.starts_with(&i.context)).cloned());
        }
        let mode = plan.project().sync_mode;
        let mut effective = Vec::new();
        let mut to_build = Vec::new();
        let mut syncs: Vec<(ImagePlan, usize, bool)> = Vec::new();
        let mut copies: Vec<Copy> = Vec::new();
        for i in fresh {
            let wanted = self.wanted.as_ref().is_none_or(|w| w.contains(&i.image));
            let changed = s.since_build.get(&i.image).cloned().unwrap_or_default();
            let covered: Option<Vec<(String, bool, String)>> =
                changed.iter().map(|p| synced(&i, p)).collect();
            // Synced only when the files really reach the containers: mount mode needs the
            // local twin and a mount the render has for each rule involved; copy mode cannot
            // keep files across a restart, so a rule that asks for one means a rebuild.
            let delivered = covered.as_ref().is_some_and(|c| match mode {
                ktwin_config::SyncMode::Mount => {
                    let good_ref = s
                        .good
                        .get(&i.image)
                        .map(|g| g.reference.clone())
                        .unwrap_or_default();
                    let mounted = mounted_dests(s.rendered.as_deref().unwrap_or(&[]), &good_ref);
                    plan.local() && c.iter().all(|(_, _, rule)| mounted.contains(rule))
                }
                ktwin_config::SyncMode::Copy => c.iter().all(|(_, restart, _)| !restart),
            });
            let covered = covered.filter(|_| delivered);
            match s.good.get(&i.image) {
                Some(g) if g.reference == i.reference => effective.push(i),
                Some(g) if !wanted => effective.push(g.clone()),
                // Only synced files changed: the running containers see them through the
                // mount; the image stays at its last build.
                Some(g) if !changed.is_empty() && covered.is_some() => {
                    let covered = covered.unwrap_or_default();
                    let restart = covered.iter().any(|(_, r, _)| *r);
                    match mode {
                        ktwin_config::SyncMode::Mount => {
                            syncs.push((g.clone(), changed.len(), restart))
                        }
                        ktwin_config::SyncMode::Copy => copies.push(Copy {
                            good: g.clone(),
                            fresh: i.clone(),
                            files: changed
                                .iter()
                                .cloned()
                                .zip(covered.into_iter().map(|(d, _, _)| d))
                                .collect(),
                            restart,
                        }),
                    }
                    effective.push(g.clone());
                }
                _ => {
                    to_build.push(i.clone());
                    effective.push(i);
                }
            }
        }
        for (g, files, restart) in &syncs {
            self.sync(s, g, *files, *restart, "mount").await;
        }
        // Copy mode: into the running containers; one that fails is rebuilt instead.
        for Copy {
            good: g,
            fresh: fresh_plan,
            files,
            restart,
        } in copies
        {
            match self.copy(s, &g, &files).await {
                // `since_build` stays: the next copy puts every file changed since the
                // build again (a replaced pod starts from the image).
                Ok(n) => self.sync(s, &g, n, restart, "copy").await,
                Err(f) => {
                    self.out.error("sync", &f);
                    if let Some(e) = effective.iter_mut().find(|e| e.image == g.image) {
                        *e = fresh_plan.clone();
                    }
                    to_build.push(fresh_plan);
                }
            }
        }
        let mut built = 0;
        // Engine pushes deferred until this cycle's rollout is over.
        let mut pending: Vec<BuildReport> = Vec::new();
        if !to_build.is_empty() {
            let refs: Vec<&ImagePlan> = to_build.iter().collect();
            let staleness = Staleness {
                seen: &self.seen,
                stopping: &self.stopping,
                loaded: &plan.loaded,
                building: to_build
                    .iter()
                    .map(|i| (i.image.clone(), i.reference.clone()))
                    .collect(),
                state: Mutex::new((self.seen.load(Ordering::SeqCst), None, false)),
            };
            let result = tokio::task::block_in_place(|| {
                steps::build_images(
                    &plan,
                    &self.eng,
                    &refs,
                    self.cli.verbose,
                    &|| staleness.stale(),
                    true,
                )
            });
            let b = match result {
                Ok(b) => b,
                Err(f) => {
                    self.out.error("build", &f);
                    return;
                }
            };
            pending = b
                .reports
                .iter()
                .filter(|r| r.pending_engine_push.is_some())
                .cloned()
                .collect();
            for r in &b.reports {
                let outcome = match r.outcome {
                    Outcome::Skipped => "skipped",
                    _ => "built",
                };
                self.out.emit(
                    "build",
                    json!({"image": r.image, "tag": r.tag, "outcome": outcome, "seconds": r.build_seconds}),
                );
                if r.outcome != Outcome::Skipped {
                    built += 1;
                    self.out.emit(
                        "push",
                        json!({"image": r.image, "tag": r.tag, "bytes": r.bytes_pushed}),
                    );
                }
                if let Some(p) = to_build.iter().find(|p| p.image == r.image) {
                    s.good.insert(p.image.clone(), p.clone());
                    s.since_build.remove(&p.image);
                }
            }
            if self.stopping.load(Ordering::SeqCst) {
                // Ctrl-C: the session ends; nothing more is sent.
                return;
            }
            if !b.cancelled.is_empty() {
                // Stale: nothing of this cycle is sent; the changes that made it stale are
                // the next batch, which starts at once.
                for p in to_build.iter().filter(|p| b.cancelled.contains(&p.image)) {
                    self.out.emit(
                        "build",
                        json!({"image": p.image, "tag": p.tag.to_string(), "outcome": "cancelled",
                               "seconds": started.elapsed().as_secs_f64()}),
                    );
                }
                self.out.emit(
                    "cycle",
                    json!({"cancelled": true, "images": built, "sent": 0, "unchanged": 0, "pruned": 0,
                           "seconds": started.elapsed().as_secs_f64()}),
                );
                return;
            }
            if let Some(f) = &b.failure {
                let failed: Vec<&ImagePlan> = to_build
                    .iter()
                    .filter(|p| !b.reports.iter().any(|r| r.image == p.image))
                    .collect();
                for p in &failed {
                    self.out.emit(
                        "build",
                        json!({"image": p.image, "tag": p.tag.to_string(), "outcome": "failed", "seconds": 0.0}),
                    );
                }
                self.out.error("build", f);
                // A failed image runs at its last good tag; one never built stops the cycle
                // before anything is sent (its pods could not pull).
                for p in failed {
                    match s.good.get(&p.image) {
                        Some(g) => {
                            if let Some(e) = effective.iter_mut().find(|e| e.image == p.image) {
                                *e = g.clone();
                            }
                        }
                        None => return,
                    }
                }
            }
        }
        let n_images = effective.len();
        plan.set_images(effective);
        let docs = match plan.rendered() {
            Ok(d) => d,
            Err(f) => {
                self.out.error("render", &f);
                return;
            }
        };
        if s.rendered.as_ref() == Some(&docs) && built == 0 {
            self.out.emit(
                "cycle",
                json!({"noop": syncs.is_empty(), "synced": syncs.len(), "images": 0, "sent": 0,
                       "unchanged": docs.len(), "pruned": 0, "seconds": started.elapsed().as_secs_f64()}),
            );
            return;
        }
        let project = plan.project().name.clone();
        let prefix = plan.registry.prefix();
        let record = steps::deploy_record(&project, &plan.env);
        let out = self.out;
        let report = |e: Event| lib_event(&out, e);
        let o = Options {
            project: &project,
            env: &plan.env,
            prune: plan.local(),
            prune_volumes: false,
            announce_prune: !plan.local(),
            force_conflicts: false,
            timeout: self.a.timeout,
            registry_prefix: Some(prefix),
            state_file: Some(record),
            report: &report,
            previous: s.applied.as_ref(),
        };
        match kube_deploy(&mut self.disc, &docs, &o).await {
            Ok(r) => {
                let sent = r
                    .applied
                    .iter()
                    .filter(|x| x.action != Action::Unchanged)
                    .count();
                self.out.emit(
                    "cycle",
                    json!({"images": built, "images_planned": n_images, "sent": sent,
                           "unchanged": r.skipped + (r.applied.len() - sent), "pruned": r.pruned.len(),
                           "seconds": started.elapsed().as_secs_f64()}),
                );
                s.applied = Some(r.state);
                s.rendered = Some(docs.clone());
                let workloads: Vec<Value> = docs
                    .into_iter()
                    .filter(|d| ktwin_kube::rollout::is_workload(d["kind"].as_str().unwrap_or("")))
                    .collect();
                let _ = self.workloads.send(workloads);
            }
            Err(e) => {
                // What was sent before the failure may differ from the last good state: send
                // everything again next time.
                s.applied = None;
                s.rendered = None;
                let f = kube_failure(e);
                if f.message().contains("did not roll out") {
                    self.out.emit(
                        "rollout",
                        json!({"workload": "", "state": "stuck", "reason": f.message()}),
                    );
                }
                self.out.error("apply", &f);
            }
        }
        steps::start_engine_pushes(&plan, &self.eng, &pending);
    }
}

pub async fn run(cli: &Cli, a: &DevArgs) -> Result<u8, Failure> {
    let mut out = Out {
        json: a.output == StatusFormat::Json,
        colour: printer::stdout_is_tty() && a.output == StatusFormat::Text,
        board: false,
    };
    // A broken project at the start is an error like everywhere else (exit 2).
    let mut plan = Plan::resolve(cli, &a.env, a.context.as_deref())?;
    let wanted = if a.images.is_empty() {
        None
    } else {
        Some(
            plan.select(&a.images)?
                .iter()
                .map(|i| i.image.clone())
                .collect(),
        )
    };
    let eng = plan.engine()?;
    let g = if plan.local() && !a.no_up {
        let twin = steps::UpTwin {
            dry_run: false,
            recreate: false,
            context: a.context.as_deref(),
        };
        steps::up_twin(&mut plan, &eng, &twin)
            .await?
            .expect("not a dry run")
    } else {
        plan.guard(Intent::Write {
            accept_new_cluster: false,
        })
        .await?
        .clone()
    };
    // Ctrl-C from here on ends the session, also in the middle of a cycle: a build is
    // stopped, a deploy is left between two requests (each object is applied whole).
    let stopping = Arc::new(AtomicBool::new(false));
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    {
        let stopping = stopping.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            // Ctrl-C, or SIGTERM/SIGHUP (a closed terminal, a supervisor): the same clean stop.
            let term = signal(SignalKind::terminate());
            let hup = signal(SignalKind::hangup());
            let (Ok(mut term), Ok(mut hup)) = (term, hup) else {
                std::future::pending::<()>().await;
                return;
            };
            let heard = tokio::select! {
                r = tokio::signal::ctrl_c() => r.is_ok(),
                _ = term.recv() => true,
                _ = hup.recv() => true,
            };
            if heard {
                stopping.store(true, Ordering::SeqCst);
                let _ = stop_tx.send(true);
            }
            // Keep the sender: a closed channel must not read as a stop.
            std::future::pending::<()>().await;
        });
    }
    let client = connect(&g).await.map_err(kube_failure)?;
    let disc = Discovery::new(client.clone());
    let root = plan.loaded.root.clone();
    let contexts: Vec<PathBuf> = plan.images()?.iter().map(|i| i.context.clone()).collect();
    let (wtx, wrx) = tokio::sync::watch::channel(Vec::new());
    let filter = watch::Filter::new(&root, contexts);
    let context_list = filter.contexts.clone();
    // Watching starts before the first cycle: a save during it is not lost.
    let mut w = watch::start(&root, filter, a.poll).map_err(|e| Failure::input(e, None))?;
    let mut lp = Loop {
        cli,
        a,
        out,
        eng,
        g,
        disc,
        wanted,
        workloads: wtx,
        seen: w.seen.clone(),
        stopping,
        contexts: context_list,
    };
    let mut s = Session::default();
    let logs = if a.no_logs {
        None
    } else {
        let line = Arc::new(move |l: ktwin_kube::logs::Line| {
            out.emit(
                "log",
                json!({"pod": l.pod, "namespace": l.namespace, "container": l.container, "line": l.text, "at": l.at}),
            );
        });
        Some(tokio::spawn(ktwin_kube::logs::follow_session(
            client.clone(),
            wrx,
            jiff::Timestamp::now(),
            std::time::Duration::from_secs(1),
            line,
        )))
    };
    let stopped = tokio::select! {
        _ = lp.cycle(&mut s, &[]) => false,
        _ = stop_rx.wait_for(|v| *v) => true,
    };
    // The board (a terminal, text mode): images, workloads, forwards and the last error above
    // the scrolling events and logs; its workload lines kept current every 2 s.
    let mut board_task = None;
    if !stopped && a.output == StatusFormat::Text && printer::stderr_is_tty() {
        let workloads = s.rendered.as_ref().map_or(0, |d| {
            d.iter()
                .filter(|x| ktwin_kube::rollout::is_workload(x["kind"].as_str().unwrap_or("")))
                .count()
        });
        let env_forwards = plan
            .project()
            .environments
            .get(&a.env)
            .map_or(0, |e| e.forwards.len());
        let want = (plan.images()?.len() + workloads + env_forwards + 1) as u16;
        let rows = printer::terminal_size().map_or(0, |(r, _)| r);
        if crate::board::start(want.min(rows / 3)) {
            out.board = true;
            lp.out = out;
            for (image, p) in &s.good {
                crate::board::image(image, p.tag.to_string());
            }
            board_task = Some(tokio::spawn(board_workloads(
                client.clone(),
                lp.workloads.subscribe(),
            )));
        }
    }
    // Forwards: bound once the first cycle has deployed, before `ready`.
    let forwards = if stopped {
        Vec::new()
    } else {
        start_forwards(
            &plan,
            &a.env,
            s.rendered.as_deref().unwrap_or(&[]),
            &client,
            out,
        )
        .await
    };
    if !stopped {
        out.emit(
            "ready",
            json!({"root": root.display().to_string(), "polling": w.polling}),
        );
    }
    let manual = a.trigger == Trigger::Manual;
    let (enter_tx, mut enter_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    if manual {
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
            while let Ok(Some(_)) = lines.next_line().await {
                if enter_tx.send(()).is_err() {
                    break;
                }
            }
        });
        if !out.json {
            printer::err("press Enter to run a cycle with the changes collected so far");
        }
    }
    let mut pending: Vec<PathBuf> = Vec::new();
    loop {
        if stopped {
            break;
        }
        let paths = if manual {
            tokio::select! {
                _ = stop_rx.wait_for(|v| *v) => break,
                p = w.next() => {
                    match p { Some(p) => { pending.push(p); continue } None => break }
                }
                Some(()) = enter_rx.recv() => {
                    pending.sort();
                    pending.dedup();
                    std::mem::take(&mut pending)
                }
            }
        } else {
            tokio::select! {
                _ = stop_rx.wait_for(|v| *v) => break,
                b = w.next_batch() => match b { Some(b) => b, None => break },
            }
        };
        tokio::select! {
            _ = lp.cycle(&mut s, &paths) => {}
            _ = stop_rx.wait_for(|v| *v) => break,
        }
    }
    if let Some(l) = logs {
        l.abort();
    }
    for f in forwards {
        f.abort();
    }
    if let Some(t) = board_task {
        t.abort();
        crate::board::stop();
    }
    if a.cleanup {
        cleanup(&mut lp).await?;
    } else if !out.json {
        printer::err("stopped watching; the twin keeps running (`ktwin down` deletes it)");
    }
    Ok(0)
}

/// The board's workload lines: ready/desired and restarts of the session's workloads' pods.
async fn board_workloads(
    client: ktwin_kube::Client,
    mut workloads: tokio::sync::watch::Receiver<Vec<Value>>,
) {
    loop {
        let ws = workloads.borrow_and_update().clone();
        let mut lines = BTreeMap::new();
        for w in &ws {
            let desired = w["spec"]["replicas"].as_i64().unwrap_or(1);
            let Ok(Some(pods)) = ktwin_kube::pods_of(&client, w).await else {
                continue;
            };
            let live: Vec<&Value> = pods
                .iter()
                .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
                .collect();
            let ready = live
                .iter()
                .filter(|p| {
                    p["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
                .count();
            let restarts = ktwin_kube::status::restarts(live.iter().copied());
            let kind = w["kind"].as_str().unwrap_or("").to_lowercase();
            let desired = if kind == "daemonset" {
                live.len() as i64
            } else {
                desired
            };
            lines.insert(
                ktwin_kube::describe(w),
                format!("{ready}/{desired} ready, {restarts} restart(s)"),
            );
        }
        crate::board::workloads(lines);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), workloads.changed()).await;
    }
}

/// The environment's `forwards:`, each listening on 127.0.0.1 and reporting as `forward`
/// events; one that cannot bind is an `error` and the others still run.
async fn start_forwards(
    plan: &Plan,
    env: &str,
    rendered: &[Value],
    client: &ktwin_kube::Client,
    out: Out,
) -> Vec<tokio::task::JoinHandle<()>> {
    use ktwin_kube::forward::{bind, serve, Event as Fwd, Spec};
    let Some(e) = plan.project().environments.get(env) else {
        return Vec::new();
    };
    let default_ns = e.namespace.clone().unwrap_or_else(|| "default".into());
    let report = Arc::new(move |ev: Fwd| {
        let (spec, port, state, extra) = match ev {
            Fwd::Listening { spec, local_port } => (spec, local_port, "listening", json!({})),
            Fwd::Connected {
                spec,
                local_port,
                pod,
            } => (spec, local_port, "connected", json!({"pod": pod})),
            Fwd::Failed {
                spec,
                local_port,
                message,
            } => (spec, local_port, "error", json!({"message": message})),
        };
        let mut f = json!({"service": spec.service, "namespace": spec.namespace, "port": spec.port,
                           "localPort": port, "state": state});
        if let (Some(m), Value::Object(x)) = (f.as_object_mut(), extra) {
            m.extend(x);
        }
        out.emit("forward", f);
    });
    let mut tasks = Vec::new();
    for f in &e.forwards {
        // Unset: the namespace of the rendered Service of that name, when there is one.
        let namespaces: Vec<&str> = rendered
            .iter()
            .filter(|d| d["kind"] == "Service" && d["metadata"]["name"] == f.service.as_str())
            .filter_map(|d| d["metadata"]["namespace"].as_str())
            .collect();
        let namespace = match (&f.namespace, namespaces.as_slice()) {
            (Some(ns), _) => ns.clone(),
            (None, [one]) => one.to_string(),
            (None, []) => default_ns.clone(),
            (None, many) => {
                out.emit(
                    "error",
                    json!({"phase": "forward", "message": format!(
                        "forward of service {}: it is rendered in {}; set the forward's `namespace`",
                        f.service, many.join(", "))}),
                );
                continue;
            }
        };
        let spec = Spec {
            namespace,
            service: f.service.clone(),
            port: f.port,
            local_port: f.local_port.unwrap_or(f.port),
        };
        match bind(&spec).await {
            Ok((l, port)) => {
                report(Fwd::Listening {
                    spec: spec.clone(),
                    local_port: port,
                });
                tasks.push(tokio::spawn(serve(
                    client.clone(),
                    spec,
                    l,
                    port,
                    report.clone(),
                )))
            }
            Err(err) => out.emit(
                "error",
                json!({"phase": "forward", "message": err.to_string()}),
            ),
        }
    }
    tasks
}

/// `--cleanup`: prune everything this project's environment deployed, as a deploy of nothing
/// would — the same identity rules; claims and volumes are kept.
async fn cleanup(lp: &mut Loop<'_>) -> Result<(), Failure> {
    let plan = Plan::resolve(lp.cli, &lp.a.env, lp.a.context.as_deref())?;
    let out = lp.out;
    let report = |e: Event| lib_event(&out, e);
    let project = plan.project().name.clone();
    let o = Options {
        project: &project,
        env: &plan.env,
        prune: true,
        prune_volumes: false,
        announce_prune: true,
        force_conflicts: false,
        timeout: lp.a.timeout,
        registry_prefix: None,
        state_file: Some(steps::deploy_record(&project, &plan.env)),
        report: &report,
        previous: None,
    };
    kube_deploy(&mut lp.disc, &[], &o)
        .await
        .map_err(kube_failure)?;
    Ok(())
}
