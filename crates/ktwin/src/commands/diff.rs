use ktwin_manifest::diff::{diff, DiffEntry, CONCERNS};
use ktwin_manifest::output::brief;

use crate::cli::{Cli, DiffArgs, DiffFormat};
use crate::plan::Plan;
use crate::printer;
use crate::report::Failure;

pub fn run(cli: &Cli, a: &DiffArgs) -> Result<u8, Failure> {
    let plan = Plan::resolve(cli, &a.env, None)?;
    let to = plan.render_env(&a.env)?;
    let from = plan.render_env(&a.against)?;
    let d = diff(&a.against, &from.docs, &a.env, &to.docs);
    let text = match a.output {
        DiffFormat::Json => format!("{}\n", serde_json::to_string_pretty(&d).unwrap_or_default()),
        DiffFormat::Markdown => markdown(&a.against, &a.env, &d.changes, &d.only_in),
        DiffFormat::Text => text(&a.against, &a.env, &d.changes, &d.only_in),
    };
    printer::out(&text);
    Ok(0)
}

fn cell(v: &Option<serde_json::Value>) -> String {
    brief(v).replace('|', "\\|")
}

fn markdown(
    from: &str,
    to: &str,
    changes: &[DiffEntry],
    only: &std::collections::BTreeMap<String, Vec<ktwin_manifest::ObjRef>>,
) -> String {
    let mut s = format!("| concern | object | field | {from} | {to} |\n|---|---|---|---|---|\n");
    for c in changes {
        s.push_str(&format!(
            "| {} | {} | `{}` | {} | {} |\n",
            c.concern,
            c.object,
            c.path,
            cell(&c.from),
            cell(&c.to)
        ));
    }
    for (env, objs) in only {
        for o in objs {
            let (a, b) = if env == from {
                ("present", "—")
            } else {
                ("—", "present")
            };
            s.push_str(&format!("| only in {env} | {o} | | {a} | {b} |\n"));
        }
    }
    s
}

fn text(
    from: &str,
    to: &str,
    changes: &[DiffEntry],
    only: &std::collections::BTreeMap<String, Vec<ktwin_manifest::ObjRef>>,
) -> String {
    let mut s = String::new();
    if changes.is_empty() && only.is_empty() {
        return format!("{to} and {from} render the same objects\n");
    }
    for concern in CONCERNS {
        let rows: Vec<&DiffEntry> = changes.iter().filter(|c| c.concern == *concern).collect();
        if rows.is_empty() {
            continue;
        }
        let mut t = printer::table(&["object", "field", from, to]);
        for c in rows {
            t.add_row(vec![
                c.object.to_string(),
                c.path.clone(),
                brief(&c.from),
                brief(&c.to),
            ]);
        }
        s.push_str(&format!("{concern}\n{t}\n\n"));
    }
    for (env, objs) in only {
        s.push_str(&format!("only in {env}\n"));
        for o in objs {
            s.push_str(&format!("  {o}\n"));
        }
        s.push('\n');
    }
    s.push_str(&format!("{} difference(s)\n", changes.len()));
    s
}
