use ktwin_manifest::propose::propose;

use crate::cli::InitArgs;
use crate::kustomize::ExternalKustomize;
use crate::printer;
use crate::report::{config_failure, shown, Failure};

pub fn run(a: &InitArgs) -> Result<u8, Failure> {
    let root = ktwin_manifest::render::clean_path(&ktwin_config::load::absolute(
        &a.dir.clone().unwrap_or_else(|| ".".into()),
    ));
    if !root.is_dir() {
        return Err(Failure::input(
            format!("{} is not a directory", shown(&root)),
            None,
        ));
    }
    let target = root.join(ktwin_config::load::FILE_NAME);
    let exists = || {
        Failure::input(
            format!("{} already exists; not overwriting it", shown(&target)),
            Some("pass --force to replace it, or edit it by hand".into()),
        )
    };
    // symlink_metadata: a dangling symlink named ktwin.yaml counts as existing.
    if target.symlink_metadata().is_ok() && !a.force {
        return Err(exists());
    }
    // Every candidate source is rendered once with the user's kustomize/helm: seconds on a
    // repository with dozens of overlays.
    printer::err(&format!(
        "scanning {} and rendering each source found…",
        shown(&root)
    ));
    let p = propose(&root, &ExternalKustomize);
    let cannot = |e: std::io::Error| {
        Failure::Operation(vec![crate::report::plain(
            format!("cannot write {}: {e}", shown(&target)),
            None,
        )])
    };
    if a.force {
        ktwin_config::state::write_atomic(&target, p.yaml.as_bytes())
            .map_err(|e| Failure::Operation(vec![crate::report::plain(e.to_string(), None)]))?;
    } else {
        // The scan can take seconds: a file made meanwhile is not overwritten either.
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    exists()
                } else {
                    cannot(e)
                }
            })?;
        f.write_all(p.yaml.as_bytes()).map_err(cannot)?;
    }
    printer::err(&format!("wrote {}", shown(&target)));
    for n in &p.notes {
        printer::err(&format!("  • {n}"));
    }
    // Say at once if the proposal does not validate (e.g. a context still to fill in).
    if let Err(e) = ktwin_config::load(&target) {
        printer::err("the written file needs attention before `ktwin render`:");
        config_failure(e).print();
        return Ok(1);
    }
    printer::err(
        "next: `ktwin render --explain` to see the local manifests and every change ktwin makes",
    );
    Ok(0)
}
