//! Findings as text (grouped by object), JSON and SARIF 2.1.0. Messages never contain Secret
//! values: checks name keys and objects only.

use std::path::Path;

use serde_json::{json, Value};

use crate::{summary, CheckInfo, Finding, Severity};

pub fn to_json(findings: &[Finding]) -> String {
    let v = json!({"findings": findings, "summary": summary(findings)});
    format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
}

fn rel(p: &Path, base: Option<&Path>) -> String {
    base.and_then(|b| p.strip_prefix(b).ok())
        .unwrap_or(p)
        .to_string_lossy()
        .replace('\\', "/")
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// SARIF 2.1.0: one run, rules from the catalogue (help = the `--explain` text), results with
/// physical locations relative to `base` (the project directory).
pub fn to_sarif(
    findings: &[Finding],
    rules: &[CheckInfo],
    base: Option<&Path>,
    version: &str,
) -> String {
    let rules_json: Vec<Value> = rules
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.id,
                "shortDescription": {"text": r.title},
                "fullDescription": {"text": r.explain},
                "help": {"text": r.explain},
            })
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let mut text = format!("{}: {}", f.object, f.message);
            if let Some(k) = &f.fixed_by {
                text.push_str(&format!(" (resolved locally by {k})"));
            }
            let mut r = json!({
                "ruleId": f.check,
                "ruleIndex": rules.iter().position(|x| x.id == f.check).unwrap_or(0),
                "level": level(f.severity),
                "message": {"text": text},
                "properties": {"fix": f.fix, "object": f.object},
            });
            if let Some(file) = &f.file {
                let mut loc = json!({"artifactLocation": {"uri": rel(file, base)}});
                if let Some(l) = f.line {
                    loc["region"] = json!({"startLine": l});
                }
                r["locations"] = json!([{"physicalLocation": loc}]);
            }
            r
        })
        .collect();
    let v = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "ktwin", "version": version, "informationUri": "https://ktwin.dev", "rules": rules_json}},
            "results": results,
        }]
    });
    format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
}

/// Text grouped by object; `color` adds ANSI colours (the caller decides: a TTY only).
pub fn to_text(findings: &[Finding], base: Option<&Path>, color: bool) -> String {
    let paint = |code: &str, s: &str| {
        if color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    };
    let mut out = String::new();
    let mut last: Option<(&ktwin_manifest::ObjRef, Option<&std::path::PathBuf>)> = None;
    for f in findings {
        if last != Some((&f.object, f.file.as_ref())) {
            if last.is_some() {
                out.push('\n');
            }
            let at = match (&f.file, f.line) {
                (Some(p), Some(l)) => format!("  {}:{l}", rel(p, base)),
                (Some(p), None) => format!("  {}", rel(p, base)),
                _ => String::new(),
            };
            out.push_str(&format!(
                "{}{}\n",
                paint("1", &f.object.to_string()),
                paint("2", &at)
            ));
            last = Some((&f.object, f.file.as_ref()));
        }
        let sev = match f.severity {
            Severity::Error => paint("31", "error  "),
            Severity::Warning => paint("33", "warning"),
            Severity::Info => paint("36", "info   "),
        };
        let container = f
            .container
            .as_ref()
            .map(|c| format!("[{c}] "))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {sev} {} {container}{}\n",
            paint("2", f.check),
            f.message
        ));
        match &f.fixed_by {
            Some(k) => out.push_str(&format!("          ✓ resolved locally by {k}\n")),
            None => out.push_str(&format!("          fix: {}\n", f.fix)),
        }
    }
    let s = summary(findings);
    if findings.is_empty() {
        out.push_str("no findings\n");
    } else {
        out.push_str(&format!(
            "\n{} error(s), {} warning(s), {} info\n",
            s.error, s.warning, s.info
        ));
    }
    out
}
