//! What `ktwin dev` watches: the project tree, through the OS's file events (inotify), or by
//! polling where those run out. Only paths that could change a cycle's outcome pass: never
//! `.git/` or an editor's temp files; a path inside a build context always (its content tag
//! decides — a gitignored `target/…/app` may well be copied into an image); anything else
//! unless `.gitignore` ignores it (manifests, kustomize bases, env files, Helm values,
//! ktwin.yaml). Whether a passing change matters is then decided by content: the cycle
//! compares content tags and rendered objects, never mtimes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// Quiet time that ends a batch, and the longest a batch is collected. After a file of the
/// batch was closed from writing (inotify's IN_CLOSE_WRITE: the writer is done with it) the
/// batch ends after a shorter quiet.
pub const QUIET: Duration = Duration::from_millis(50);
const QUIET_AFTER_CLOSE: Duration = Duration::from_millis(20);
const BATCH_MAX: Duration = Duration::from_secs(2);
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Editor and tool temp files: a save through them ends in a rename onto the real file, which
/// is seen on its own.
pub fn is_temp(name: &str) -> bool {
    name.ends_with('~')
        || name.starts_with(".#")
        || (name.starts_with('#') && name.ends_with('#'))
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with(".swo")
        || name == "4913"
        || name.ends_with(".tmp")
        || name.contains("___jb_tmp___")
        || name.contains("___jb_old___")
}

/// The relevance rule above, for one path.
pub struct Filter {
    root: PathBuf,
    gitignore: Gitignore,
    /// Build contexts (absolute); replaced when ktwin.yaml changes.
    pub contexts: Arc<Mutex<Vec<PathBuf>>>,
}

impl Filter {
    pub fn new(root: &Path, contexts: Vec<PathBuf>) -> Filter {
        let mut b = GitignoreBuilder::new(root);
        // Missing files are fine: nothing is ignored then.
        let _ = b.add(root.join(".gitignore"));
        let _ = b.add(root.join(".git/info/exclude"));
        Filter {
            root: root.to_path_buf(),
            gitignore: b.build().unwrap_or_else(|_| Gitignore::empty()),
            contexts: Arc::new(Mutex::new(contexts)),
        }
    }

    pub fn relevant(&self, p: &Path) -> bool {
        let Ok(rel) = p.strip_prefix(&self.root) else {
            return false;
        };
        if rel.components().any(|c| c.as_os_str() == ".git") {
            return false;
        }
        if p.file_name().is_some_and(|n| is_temp(&n.to_string_lossy())) {
            return false;
        }
        let in_context = self
            .contexts
            .lock()
            .map(|c| c.iter().any(|c| p.starts_with(c)))
            .unwrap_or(true);
        in_context
            || !self
                .gitignore
                .matched_path_or_any_parents(p, p.is_dir())
                .is_ignore()
    }
}

/// A running watch: its paths arrive on `rx`.
/// What the OS said about a path: it changed, or a writer closed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Changed,
    ClosedWrite,
}

pub struct Watch {
    rx: UnboundedReceiver<(PathBuf, Seen)>,
    /// How many relevant paths have arrived so far (a build asks whether it went stale).
    pub seen: Arc<AtomicU64>,
    _watcher: Box<dyn Watcher + Send>,
    /// The polling fallback is in use, and why.
    pub polling: Option<String>,
}

fn handler(
    filter: Arc<Filter>,
    tx: UnboundedSender<(PathBuf, Seen)>,
    seen: Arc<AtomicU64>,
) -> impl notify::EventHandler {
    move |ev: notify::Result<Event>| {
        let Ok(ev) = ev else { return };
        // A writer closed the file: a hint that shortens the batch's quiet, never a change by
        // itself (`touch` closes a file it opened for writing, and changes nothing).
        if matches!(
            ev.kind,
            EventKind::Access(notify::event::AccessKind::Close(
                notify::event::AccessMode::Write
            ))
        ) {
            for p in ev.paths {
                if filter.relevant(&p) {
                    let _ = tx.send((p, Seen::ClosedWrite));
                }
            }
            return;
        }
        // A change of content, a new, removed or renamed path; not an access, nor an
        // attribute change (inotify's `touch`). The polling watcher reports every file with a
        // newer mtime as a write-time change (notify `poll.rs`: it compares mtimes before
        // contents), so that one passes: the cycle then decides by content.
        let matters = matches!(
            ev.kind,
            EventKind::Create(_)
                | EventKind::Remove(_)
                | EventKind::Modify(
                    notify::event::ModifyKind::Data(_)
                        | notify::event::ModifyKind::Name(_)
                        | notify::event::ModifyKind::Metadata(
                            notify::event::MetadataKind::WriteTime
                        )
                        | notify::event::ModifyKind::Any
                )
                | EventKind::Any
        );
        if !matters {
            return;
        }
        for p in ev.paths {
            if filter.relevant(&p) {
                let _ = tx.send((p, Seen::Changed));
                seen.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// The advice when the OS's watch limit is reached.
pub const LIMIT_HELP: &str = "the inotify watch limit is reached: raise it with `sudo sysctl fs.inotify.max_user_watches=524288` (and `fs.inotify.max_user_instances=512`; persist them in /etc/sysctl.d/), or leave ktwin dev polling";

/// Watch `root` recursively. `poll` forces the polling watcher (network file systems, tests);
/// otherwise a watch limit reached falls back to polling, saying so.
pub fn start(root: &Path, filter: Filter, poll: bool) -> Result<Watch, String> {
    let (tx, rx) = unbounded_channel();
    let filter = Arc::new(filter);
    let seen = Arc::new(AtomicU64::new(0));
    let polling_watcher = |why: String| -> Result<Watch, String> {
        // Contents are compared too: the polling watcher keeps mtimes in whole seconds
        // (notify `poll.rs`, `system_time_to_seconds`), so a second save within the same
        // second is seen only by its bytes. The price is a read of the tree per poll.
        let cfg = notify::Config::default()
            .with_poll_interval(POLL_INTERVAL)
            .with_compare_contents(true);
        let mut w =
            notify::PollWatcher::new(handler(filter.clone(), tx.clone(), seen.clone()), cfg)
                .map_err(|e| format!("cannot watch {}: {e}", root.display()))?;
        w.watch(root, RecursiveMode::Recursive)
            .map_err(|e| format!("cannot watch {}: {e}", root.display()))?;
        Ok(Watch {
            rx: unbounded_channel().1,
            seen: seen.clone(),
            _watcher: Box::new(w),
            polling: Some(why),
        })
    };
    if poll {
        let mut w = polling_watcher("asked for (--poll)".into())?;
        w.rx = rx;
        return Ok(w);
    }
    let native = notify::recommended_watcher(handler(filter.clone(), tx.clone(), seen.clone()));
    let result = native.and_then(|mut w| {
        w.watch(root, RecursiveMode::Recursive)?;
        Ok(w)
    });
    match result {
        Ok(w) => Ok(Watch {
            rx,
            seen: seen.clone(),
            _watcher: Box::new(w),
            polling: None,
        }),
        Err(e) if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) => {
            let mut w = polling_watcher(LIMIT_HELP.into())?;
            w.rx = rx;
            Ok(w)
        }
        Err(e) => Err(format!("cannot watch {}: {e}", root.display())),
    }
}

impl Watch {
    /// The next changed path (close hints before any change are dropped).
    async fn next_change(&mut self) -> Option<PathBuf> {
        loop {
            match self.rx.recv().await? {
                (p, Seen::Changed) => return Some(p),
                (_, Seen::ClosedWrite) => continue,
            }
        }
    }

    /// The next batch of changed paths: everything that arrives until the tree has been quiet
    /// for 50 ms — 20 ms once the last change's file was closed by its writer — and at most
    /// 2 s after the first; sorted and unique. `None` when the watch ended.
    pub async fn next_batch(&mut self) -> Option<Vec<PathBuf>> {
        let first = self.next_change().await?;
        let mut paths = vec![first];
        let mut quiet = QUIET;
        let started = Instant::now();
        while started.elapsed() < BATCH_MAX {
            match tokio::time::timeout(quiet, self.rx.recv()).await {
                Ok(Some((p, Seen::Changed))) => {
                    paths.push(p);
                    quiet = QUIET;
                }
                Ok(Some((p, Seen::ClosedWrite))) => {
                    if paths.last() == Some(&p) {
                        quiet = QUIET_AFTER_CLOSE;
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
        paths.sort();
        paths.dedup();
        Some(paths)
    }

    /// One changed path, as it arrives (manual trigger: collected until Enter).
    pub async fn next(&mut self) -> Option<PathBuf> {
        self.next_change().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relevance_by_context_gitignore_git_and_temp_files() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::write(root.join(".gitignore"), "target/\n*.log\n").unwrap();
        let f = Filter::new(root, vec![root.join("app")]);
        assert!(f.relevant(&root.join("k8s/app.yaml")));
        assert!(f.relevant(&root.join("ktwin.yaml")));
        assert!(!f.relevant(&root.join(".git/index")));
        assert!(!f.relevant(&root.join("k8s/.app.yaml.swp")));
        assert!(!f.relevant(&root.join("k8s/app.yaml~")));
        assert!(!f.relevant(&root.join("k8s/4913")));
        assert!(!f.relevant(&root.join("target/debug/x")));
        assert!(!f.relevant(&root.join("run.log")));
        // Inside a build context, gitignored or not: its content tag decides.
        assert!(f.relevant(&root.join("app/target/release/app")));
        assert!(!f.relevant(Path::new("/elsewhere/file")));
    }
}
