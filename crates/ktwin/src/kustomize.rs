//! The user's own renderers: kustomize (the standalone binary, else `kubectl kustomize`) and
//! `helm template`. ktwin never bundles either; it names the version it found when a
//! kustomization uses a field that version does not know.

use std::path::Path;
use std::sync::OnceLock;

use ktwin_engine::{which, Cmd, RunError};
use ktwin_manifest::helm::HelmCall;
use ktwin_manifest::render::KUSTOMIZE_FIELD_SINCE as FIELD_SINCE;
use ktwin_manifest::{Kustomizer, RenderError};

#[derive(Debug, Default)]
pub struct ExternalKustomize;

/// Which kustomize ktwin runs, and its version when it could tell.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tool {
    /// `kustomize` or `kubectl`.
    program: &'static str,
    version: Option<String>,
}

fn tool() -> Option<&'static Tool> {
    static TOOL: OnceLock<Option<Tool>> = OnceLock::new();
    TOOL.get_or_init(|| {
        if which("kustomize".as_ref()).is_some() {
            let v = Cmd::new("kustomize")
                .arg("version")
                .run()
                .ok()
                .and_then(|o| standalone_version(&String::from_utf8_lossy(&o.stdout)));
            Some(Tool {
                program: "kustomize",
                version: v,
            })
        } else if which("kubectl".as_ref()).is_some() {
            let v = Cmd::new("kubectl")
                .args(["version", "--client", "-o", "json"])
                .run()
                .ok()
                .and_then(|o| kubectl_kustomize_version(&String::from_utf8_lossy(&o.stdout)));
            Some(Tool {
                program: "kubectl",
                version: v,
            })
        } else {
            None
        }
    })
    .as_ref()
}

/// `kustomize version` prints `v5.7.1` (v5), `{Version:kustomize/v4.5.7 GitCommit:…}` (v3, v4)
/// or `Version: {KustomizeVersion:2.0.3 GitCommit:…}` (v2).
fn standalone_version(out: &str) -> Option<String> {
    let s = out.trim();
    if let Some((_, rest)) = s.split_once("KustomizeVersion:") {
        let v: String = rest
            .trim_start_matches('v')
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        return (!v.is_empty()).then(|| format!("v{v}"));
    }
    let s = s
        .split_once("kustomize/")
        .map(|(_, rest)| rest)
        .unwrap_or(s);
    let v: String = s
        .trim_start_matches("Version:")
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    v.starts_with('v').then_some(v)
}

/// kubectl ≥ 1.24 reports `kustomizeVersion`; older ones embed a fixed kustomize: v2.0.3 up to
/// kubectl 1.20, then v4.0.5 (1.21), v4.2.0 (1.22), v4.4.1 (1.23) — per kubectl's release notes.
fn kubectl_kustomize_version(json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    if let Some(k) = v.get("kustomizeVersion").and_then(|k| k.as_str()) {
        return Some(k.to_string());
    }
    let minor: u32 = v
        .pointer("/clientVersion/minor")?
        .as_str()?
        .trim_end_matches('+')
        .parse()
        .ok()?;
    Some(
        match minor {
            0..=20 => "v2.0.3",
            21 => "v4.0.5",
            22 => "v4.2.0",
            23 => "v4.4.1",
            _ => return None,
        }
        .to_string(),
    )
}

/// Explain `json: unknown field "X"` — the way every kustomize rejects a field it predates.
fn explain_unknown_field(stderr: &str, tool: Option<&Tool>) -> Option<String> {
    let field = stderr
        .split("unknown field \"")
        .nth(1)?
        .split('"')
        .next()?
        .to_string();
    let (program, version) = match tool {
        Some(t) => (
            if t.program == "kubectl" {
                "kubectl kustomize"
            } else {
                "kustomize"
            },
            t.version
                .clone()
                .unwrap_or_else(|| "an unknown version".into()),
        ),
        None => ("kustomize", "an unknown version".into()),
    };
    let since = FIELD_SINCE
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, v)| *v);
    let found = tool.and_then(|t| t.version.as_deref()).and_then(semver);
    let upgrade = "install kustomize v5 (https://kubectl.docs.kubernetes.io/installation/kustomize/) or a kubectl ≥ 1.27";
    Some(match since {
        // The found kustomize is new enough: a typo, or the field is misplaced.
        Some(v) if found.is_some_and(|f| semver(v).is_some_and(|need| f >= need)) => format!(
            "`{field}` is a kustomization field since {v} and ktwin ran {program} {version}: check where it is written"
        ),
        Some(v) => format!("`{field}` needs kustomize {v} or newer, and ktwin ran {program} {version}; {upgrade}"),
        None if found.is_some_and(|f| f.0 >= 5) => format!(
            "`{field}` is not a field {program} {version} knows: check its spelling against https://kubectl.docs.kubernetes.io/references/kustomize/kustomization/"
        ),
        None => format!("`{field}` is not known to {program} {version}; if it is a newer field, {upgrade}"),
    })
}

/// `v4.5.7` → (4, 5, 7).
fn semver(v: &str) -> Option<(u32, u32, u32)> {
    let mut it = v
        .trim_start_matches('v')
        .split('.')
        .map(|x| x.parse::<u32>().ok());
    Some((
        it.next()??,
        it.next().flatten().unwrap_or(0),
        it.next().flatten().unwrap_or(0),
    ))
}

impl Kustomizer for ExternalKustomize {
    fn build(&self, dir: &Path, flags: &[String]) -> Result<String, RenderError> {
        let t = tool().ok_or_else(|| RenderError::NoKustomize {
            dir: dir.to_path_buf(),
        })?;
        let cmd = match t.program {
            "kustomize" => Cmd::new("kustomize").arg("build"),
            _ => Cmd::new("kubectl").arg("kustomize"),
        }
        .args(flags)
        .arg(dir);
        match cmd.run() {
            Ok(out) => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
            Err(RunError::Failed { stderr, .. }) => {
                let (shown, hidden) = ktwin_manifest::render::redact_quoted(stderr.trim(), dir);
                let mut message = match explain_unknown_field(&stderr, Some(t)) {
                    Some(why) => format!("{shown} ({why})"),
                    None => shown,
                };
                if hidden {
                    message.push_str(&format!(
                        " (quoted values hidden, as they may be secrets: `{} {}` shows them)",
                        if t.program == "kubectl" {
                            "kubectl kustomize"
                        } else {
                            "kustomize build"
                        },
                        dir.display()
                    ));
                }
                Err(RenderError::Kustomize {
                    dir: dir.to_path_buf(),
                    message,
                })
            }
            Err(e) => Err(RenderError::Kustomize {
                dir: dir.to_path_buf(),
                message: e.to_string(),
            }),
        }
    }

    fn helm_template(&self, call: &HelmCall) -> Result<String, RenderError> {
        if which("helm".as_ref()).is_none() {
            return Err(RenderError::NoHelm {
                chart: call.chart.clone(),
            });
        }
        match Cmd::new("helm").args(call.args()).run() {
            Ok(out) => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
            Err(RunError::Failed { stderr, .. }) => {
                // helm quotes values too (a values file's YAML error, a `required` message).
                let base = call.chart.parent().unwrap_or(&call.chart);
                let (mut message, hidden) =
                    ktwin_manifest::render::redact_quoted(stderr.trim(), base);
                if hidden {
                    message.push_str(" (quoted values hidden, as they may be secrets: run `helm template` on the chart to see them)");
                }
                Err(RenderError::Helm {
                    chart: call.chart.clone(),
                    message,
                })
            }
            // Never the argv: `--set` may carry a value the user keeps out of files.
            Err(RunError::Spawn { source, .. }) => Err(RenderError::Helm {
                chart: call.chart.clone(),
                message: format!("cannot run helm: {source}"),
            }),
            Err(RunError::Cancelled { .. }) => Err(RenderError::Helm {
                chart: call.chart.clone(),
                message: "helm was stopped".into(),
            }),
            Err(e @ RunError::NotFound { .. }) => Err(RenderError::Helm {
                chart: call.chart.clone(),
                message: e.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_of_every_kustomize_form() {
        assert_eq!(standalone_version("v5.7.1\n").as_deref(), Some("v5.7.1"));
        assert_eq!(
            standalone_version("{Version:kustomize/v4.5.7 GitCommit:56d82a8 BuildDate:2022}")
                .as_deref(),
            Some("v4.5.7")
        );
        assert_eq!(
            standalone_version("Version: {KustomizeVersion:2.0.3 GitCommit:a6f6 BuildDate:2019}")
                .as_deref(),
            Some("v2.0.3")
        );
        assert_eq!(standalone_version("garbage"), None);
        assert_eq!(
            kubectl_kustomize_version(
                r#"{"clientVersion":{"major":"1","minor":"35"},"kustomizeVersion":"v5.7.1"}"#
            )
            .as_deref(),
            Some("v5.7.1")
        );
        assert_eq!(
            kubectl_kustomize_version(r#"{"clientVersion":{"major":"1","minor":"20"}}"#).as_deref(),
            Some("v2.0.3")
        );
        assert_eq!(
            kubectl_kustomize_version(r#"{"clientVersion":{"major":"1","minor":"22+"}}"#)
                .as_deref(),
            Some("v4.2.0")
        );
    }

    #[test]
    fn unknown_field_names_the_version_that_added_it() {
        let t = Tool {
            program: "kubectl",
            version: Some("v2.0.3".into()),
        };
        let why =
            explain_unknown_field("error: json: unknown field \"components\"", Some(&t)).unwrap();
        assert!(why.contains("`components` needs kustomize v3.7.0"), "{why}");
        assert!(why.contains("kubectl kustomize v2.0.3"), "{why}");
        let why = explain_unknown_field("Error: json: unknown field \"frobs\"", Some(&t)).unwrap();
        assert!(why.contains("`frobs` is not known"), "{why}");
        // A v5 that rejects a field it has: not an upgrade to advise.
        let v5 = Tool {
            program: "kustomize",
            version: Some("v5.7.1".into()),
        };
        let why = explain_unknown_field("json: unknown field \"components\"", Some(&v5)).unwrap();
        assert!(
            why.contains("check where it is written") && !why.contains("install"),
            "{why}"
        );
        let why = explain_unknown_field("json: unknown field \"resourcse\"", Some(&v5)).unwrap();
        assert!(why.contains("check its spelling"), "{why}");
        assert_eq!(
            explain_unknown_field("accumulating resources", Some(&t)),
            None
        );
    }
}
