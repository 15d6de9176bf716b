use std::path::PathBuf;

use ktwin_doctor::output::{to_json, to_sarif, to_text};
use ktwin_doctor::{catalogue, Finding, Severity, Twin};
use ktwin_manifest::pipeline::render_unadapted;
use ktwin_manifest::render::load_source_lenient;

use crate::cli::{Cli, DoctorArgs, DoctorFormat, FailOn};
use crate::kustomize::ExternalKustomize;
use crate::plan::{kube_failure, load_project_if_any, Plan};
use crate::printer;
use crate::report::{render_failure, shown, Failure};

pub async fn run(cli: &Cli, a: &DoctorArgs) -> Result<u8, Failure> {
    if a.list_checks {
        let mut t = printer::table(&["check", "finds"]);
        for (i, _) in catalogue() {
            t.add_row(vec![i.id, i.title]);
        }
        printer::out(&format!("{t}\n"));
        return Ok(0);
    }
    if let Some(id) = &a.explain {
        let Some(info) = ktwin_doctor::info(id) else {
            let ids: Vec<&str> = catalogue().iter().map(|(i, _)| i.id).collect();
            let hint = ktwin_config::load::closest(id, &ids)
                .map(|c| format!("did you mean `{c}`? "))
                .unwrap_or_default();
            return Err(Failure::input(
                format!("no check `{id}`"),
                Some(format!(
                    "{hint}`ktwin doctor --list-checks` prints them all"
                )),
            ));
        };
        printer::out(&format!(
            "{} — {}\n\n{}\n",
            info.id, info.title, info.explain
        ));
        return Ok(0);
    }

    let started = std::time::Instant::now();
    let loaded = load_project_if_any(cli)?;
    let (docs, mut twin, base, ignore) = match (&loaded, a.files.is_empty()) {
        (Some(l), true) => {
            let r = render_unadapted(l, &a.env, &ExternalKustomize).map_err(render_failure)?;
            let twin = Twin::from_project(&l.project, &a.env, Some(l.path.clone()), Some(&l.pos));
            (r.docs, twin, l.dir.clone(), l.project.doctor.ignore.clone())
        }
        (None, true) => {
            return Err(Failure::input(
                "no ktwin.yaml here or in a parent directory, and no manifests given",
                Some("check manifests against a default single-node k3d twin with `ktwin doctor -f PATH`, or run `ktwin init`".into()),
            ))
        }
        (_, false) => {
            let mut docs = Vec::new();
            // Paths named on the command line: read wherever they are, still bounded.
            let inputs = ktwin_config::inputs::Inputs::anywhere();
            let flags: Vec<String> = loaded
                .as_ref()
                .and_then(|l| {
                    l.project
                        .environments
                        .get(&a.env)
                        .map(|e| e.kustomize_flags(&l.project).to_vec())
                })
                .unwrap_or_default();
            for f in &a.files {
                let (d, skipped) = load_source_lenient(f, &ExternalKustomize, &flags, &inputs)
                    .map_err(render_failure)?;
                docs.extend(d);
                for s in skipped {
                    printer::err(&format!("note: skipped {}: {}", shown(&s.file), s.why));
                }
            }
            let (twin, ignore) = match &loaded {
                Some(l) => (
                    Twin::from_project(&l.project, &a.env, Some(l.path.clone()), Some(&l.pos)),
                    l.project.doctor.ignore.clone(),
                ),
                None => (Twin::default_k3d(), Vec::new()),
            };
            (docs, twin, std::env::current_dir().unwrap_or_default(), ignore)
        }
    };
    twin.add_rendered(&docs);
    let read = started.elapsed();
    let checks_started = std::time::Instant::now();
    let (mut findings, times) = ktwin_doctor::run_timed(&docs, &twin, &ignore);
    let checked = checks_started.elapsed();
    if cli.verbose {
        printer::err(&format!(
            "read {} objects in {:.1} ms; {} checks in {:.1} ms ({:.0} objects/s)",
            docs.len(),
            read.as_secs_f64() * 1e3,
            catalogue().len(),
            checked.as_secs_f64() * 1e3,
            docs.len() as f64 / checked.as_secs_f64().max(1e-9)
        ));
        let slowest: Vec<String> = times
            .iter()
            .take(3)
            .map(|(id, t)| format!("{id} {:.1} ms", t.as_secs_f64() * 1e3))
            .collect();
        printer::err(&format!("slowest: {}", slowest.join(", ")));
    }
    if a.live {
        let Some(l) = &loaded else {
            return Err(Failure::input(
                "--live needs a ktwin.yaml: it checks the running twin that project describes",
                None,
            ));
        };
        findings.extend(live_findings(cli, l.clone()).await?);
    }
    relativize(&mut findings, &base);
    let text = match a.output {
        DoctorFormat::Json => to_json(&findings),
        DoctorFormat::Sarif => {
            let rules: Vec<_> = catalogue().into_iter().map(|(i, _)| i).collect();
            to_sarif(&findings, &rules, None, env!("CARGO_PKG_VERSION"))
        }
        DoctorFormat::Text => to_text(&findings, None, printer::stdout_is_tty()),
    };
    printer::out(&text);
    let threshold = match a.fail_on {
        FailOn::Error => Severity::Error,
        FailOn::Warning => Severity::Warning,
        FailOn::Info => Severity::Info,
    };
    Ok(u8::from(findings.iter().any(|f| f.severity >= threshold)))
}

/// Paths relative to the project (or working) directory, as a reviewer reads them.
fn relativize(findings: &mut [Finding], base: &std::path::Path) {
    for f in findings {
        if let Some(p) = &f.file {
            if let Ok(r) = p.strip_prefix(base) {
                f.file = Some(PathBuf::from(r));
            }
        }
    }
}

/// Checks against the running twin (the local environment's cluster).
async fn live_findings(cli: &Cli, l: ktwin_config::Loaded) -> Result<Vec<Finding>, Failure> {
    use ktwin_config::LOCAL_ENV;
    use ktwin_kube::live::{findings, observe, Level};
    let mut plan = Plan::of(cli, l.clone(), LOCAL_ENV, None)?;
    let rendered: Vec<serde_json::Value> = match plan.environment() {
        Some(_) => plan.rendered()?,
        None => vec![],
    };
    let context = plan.guard(ktwin_kube::guard::Intent::Read).await?.clone();
    let (observed, twin_version) = async {
        let client = ktwin_kube::connect(&context).await?;
        let version = client.apiserver_version().await.ok().map(|v| v.git_version);
        Ok::<_, ktwin_kube::KubeError>((observe(&client).await?, version))
    }
    .await
    .map_err(kube_failure)?;
    let hosts = vec![plan.registry.host(), plan.registry.in_network()];
    let mut live = findings(&observed, &plan.nodes, plan.single_node, &rendered, &hosts);
    if let Some(v) = twin_version {
        live.extend(version_skew(cli, &l, &v).await);
    }
    Ok(live
        .into_iter()
        .map(|f| Finding {
            check: f.check,
            severity: match f.level {
                Level::Warning => Severity::Warning,
                Level::Error => Severity::Error,
            },
            object: ktwin_manifest::ObjRef {
                api_version: "v1".into(),
                kind: f.kind,
                namespace: f.namespace,
                name: f.name,
            },
            container: None,
            message: f.message,
            fix: f.fix,
            fixed_by: None,
            file: None,
            line: None,
        })
        .collect())
}

/// Prod parity starts with the same minor version: the twin's server version against each
/// remote environment's (read-only: `/version` through that environment's guarded context).
/// An environment that cannot be reached is said on stderr, not a finding.
async fn version_skew(
    cli: &Cli,
    l: &ktwin_config::Loaded,
    twin: &str,
) -> Vec<ktwin_kube::live::LiveFinding> {
    use ktwin_config::kube_version::minor_of;
    let mut out = Vec::new();
    let Some(twin_minor) = minor_of(twin) else {
        return out;
    };
    for (name, env) in &l.project.environments {
        if name == ktwin_config::LOCAL_ENV || env.context.is_none() {
            continue;
        }
        let remote = async {
            let why = |f: Failure| f.message();
            let mut plan = Plan::of(cli, l.clone(), name, None).map_err(why)?;
            let g = plan
                .guard(ktwin_kube::guard::Intent::Read)
                .await
                .map_err(why)?
                .clone();
            let client = ktwin_kube::connect(&g).await.map_err(|e| e.to_string())?;
            client
                .apiserver_version()
                .await
                .map(|v| v.git_version)
                .map_err(|e| e.to_string())
        }
        .await;
        let v = match remote {
            Ok(v) => v,
            Err(e) => {
                printer::err(&format!(
                    "doctor: environment `{name}` could not be read, so its Kubernetes version is not compared: {e}"
                ));
                continue;
            }
        };
        let Some(m) = minor_of(&v) else { continue };
        if m != twin_minor {
            out.push(ktwin_kube::live::LiveFinding {
                check: "live-version-skew",
                level: ktwin_kube::live::Level::Warning,
                kind: "Cluster".into(),
                namespace: None,
                name: l.project.cluster_name().to_string(),
                message: format!(
                    "the twin runs Kubernetes {twin}, environment `{name}` runs {v}: APIs, defaults and deprecations differ between minor versions"
                ),
                fix: if ktwin_config::kube_version::SUPPORTED.iter().any(|s| s.minor == m) {
                    format!(
                        "set `cluster.kubernetesVersion: v1.{m}` in ktwin.yaml, then `ktwin up --recreate` (the registry and its images are kept)"
                    )
                } else {
                    format!(
                        "ktwin knows no k3s/kind image for 1.{m}: pin an exact version the provider publishes (`cluster.kubernetesVersion: v1.{m}.<patch>` is refused until ktwin knows the minor), or the closest minor ktwin knows"
                    )
                },
            });
        }
    }
    out
}
