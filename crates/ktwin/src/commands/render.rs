use ktwin_manifest::output::{to_json, to_yaml};

use crate::cli::{Cli, RenderArgs, RenderFormat};
use crate::plan::Plan;
use crate::printer;
use crate::report::Failure;

pub fn run(cli: &Cli, a: &RenderArgs) -> Result<u8, Failure> {
    let plan = Plan::resolve(cli, &a.env, None)?;
    let r = plan.render_env(&a.env)?;
    if a.env == ktwin_config::LOCAL_ENV {
        image_warnings(&plan, &r);
    }
    match a.output {
        RenderFormat::Yaml => {
            printer::out(&to_yaml(&r.docs, a.show_secrets));
            if a.explain {
                printer::changes(&r.changes, a.show_secrets);
            }
        }
        RenderFormat::Json => {
            let changes = a.explain.then_some(r.changes.as_slice());
            printer::out(&to_json(&r.docs, changes, a.show_secrets));
        }
    }
    if a.explain {
        for d in &r.dropped {
            printer::err(&format!("left out: {} — {}", d.object, d.why));
        }
    }
    Ok(0)
}

/// The twin would silently run upstream images if `images:` and the manifests disagree: say so
/// on every render (the same checks as `doctor`'s `image-unmatched` and `image-not-built`).
fn image_warnings(plan: &Plan, r: &ktwin_manifest::Rendered) {
    let l = &plan.loaded;
    let twin =
        ktwin_doctor::Twin::from_project(&l.project, &r.env, Some(l.path.clone()), Some(&l.pos));
    let ignore = &l.project.doctor.ignore;
    for f in ktwin_doctor::run_only(
        &["image-unmatched", "image-not-built"],
        &r.sources,
        &twin,
        ignore,
    ) {
        let at = match (&f.file, f.line) {
            (Some(file), Some(line)) => format!(
                "{}:{line}: ",
                file.strip_prefix(&l.dir).unwrap_or(file).display()
            ),
            (Some(file), None) => {
                format!("{}: ", file.strip_prefix(&l.dir).unwrap_or(file).display())
            }
            _ => String::new(),
        };
        printer::err(&format!(
            "warning[{}]: {at}{} (fix: {})",
            f.check, f.message, f.fix
        ));
    }
}
