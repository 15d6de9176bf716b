use ktwin_manifest::output::{brief, redact_changes, to_json, to_yaml};
use ktwin_manifest::Change;

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
                explain(&r.changes, a.show_secrets);
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

/// The change record as a table on stderr.
pub fn explain(changes: &[Change], show_secrets: bool) {
    if changes.is_empty() {
        printer::err("no changes: the rendered objects are exactly the sources");
        return;
    }
    let mut t = printer::table(&["object", "field", "change", "why", "knob"]);
    for c in redact_changes(changes, show_secrets) {
        t.add_row(vec![
            c.object.to_string(),
            if c.path.is_empty() {
                "/".into()
            } else {
                c.path.clone()
            },
            format!("{} → {}", brief(&c.before), brief(&c.after)),
            c.reason.clone(),
            c.knob.clone(),
        ]);
    }
    // Objects and knobs are read whole; paths and prose wrap within sensible bounds.
    use comfy_table::{ColumnConstraint::*, Width::Fixed};
    for (i, c) in [
        (0, ContentWidth),
        (1, UpperBoundary(Fixed(48))),
        (2, LowerBoundary(Fixed(28))),
        (3, LowerBoundary(Fixed(36))),
        (4, ContentWidth),
    ] {
        if let Some(col) = t.column_mut(i) {
            col.set_constraint(c);
        }
    }
    printer::err(&format!("{t}\n{} change(s)", changes.len()));
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
