use ktwin_manifest::scan::propose;

use crate::cli::InitArgs;
use crate::kustomize::ExternalKustomize;
use crate::printer;
use crate::report::{config_failure, shown, Failure};

pub fn run(a: &InitArgs) -> Result<u8, Failure> {
    let root = ktwin_config::load::absolute(&a.dir.clone().unwrap_or_else(|| ".".into()));
    if !root.is_dir() {
        return Err(Failure::input(
            format!("{} is not a directory", shown(&root)),
            None,
        ));
    }
    let target = root.join(ktwin_config::load::FILE_NAME);
    if target.exists() && !a.force {
        return Err(Failure::input(
            format!("{} already exists; not overwriting it", shown(&target)),
            Some("pass --force to replace it, or edit it by hand".into()),
        ));
    }
    let p = propose(&root, &ExternalKustomize);
    std::fs::write(&target, &p.yaml).map_err(|e| {
        Failure::Operation(vec![crate::report::plain(
            format!("cannot write {}: {e}", shown(&target)),
            None,
        )])
    })?;
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
