//! `ktwin run`: a one-off Job from a `jobs:` template (or a rendered CronJob/Job), hardened
//! by default, adapted like the environment's own pods, created and followed to its end.

use std::time::Duration;

use ktwin_config::desired::single_node;
use ktwin_kube::connect;
use ktwin_kube::guard::Intent;
use ktwin_kube::job::{Attach, Ended, Outcome, Progressed};
use ktwin_manifest::job::{from_rendered, from_template, generate, results, JobInputs};
use ktwin_manifest::{Document, Source};
use serde_json::{json, Value};

use crate::cli::{Cli, RunArgs, RunFormat};
use crate::plan::{kube_failure, Plan};
use crate::printer;
use crate::report::{plain, Failure};
use crate::steps;

/// A 5-character id of lowercase letters and digits, as Kubernetes' `generateName` makes.
fn short_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let mut n = h.finish();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// The exit code of a run: the container's, else by how it ended.
pub fn exit_code(e: &Ended) -> u8 {
    match e.outcome {
        Outcome::Succeeded => 0,
        Outcome::Failed => match e.exit_code {
            Some(c) if c != 0 => u8::try_from(c.clamp(1, 255)).unwrap_or(1),
            _ => 1,
        },
        Outcome::DeadlineExceeded | Outcome::TimedOut => 124,
        Outcome::Cancelled => 130,
    }
}

pub async fn run(cli: &Cli, a: &RunArgs) -> Result<u8, Failure> {
    let mut plan = Plan::resolve(cli, &a.env, a.context.as_deref())?;
    let project = plan.project().clone();
    let env = project
        .environments
        .get(&a.env)
        .cloned()
        .unwrap_or_default();
    // The template: ktwin.yaml's, or a rendered CronJob/Job.
    let (template, spec, marker, image, namespace, line) = if let Some(from) = &a.from {
        let (kind, name) = from.split_once('/').ok_or_else(|| {
            Failure::input(
                format!("`--from {from}`: give KIND/NAME"),
                Some("e.g. `--from cronjob/lobster-sweep`".into()),
            )
        })?;
        let docs = plan.rendered()?;
        let obj = docs
            .iter()
            .find(|d| {
                d["kind"]
                    .as_str()
                    .is_some_and(|k| k.eq_ignore_ascii_case(kind))
                    && d["metadata"]["name"] == name
            })
            .ok_or_else(|| {
                let have: Vec<String> = docs
                    .iter()
                    .filter(|d| matches!(d["kind"].as_str(), Some("CronJob" | "Job")))
                    .map(|d| {
                        format!(
                            "{}/{}",
                            d["kind"].as_str().unwrap_or("").to_lowercase(),
                            d["metadata"]["name"].as_str().unwrap_or("")
                        )
                    })
                    .collect();
                Failure::input(
                    format!("no {kind}/{name} in the rendered `{}` environment", a.env),
                    Some(if have.is_empty() {
                        "it renders no CronJob or Job".into()
                    } else {
                        format!("it renders: {}", have.join(", "))
                    }),
                )
            })?;
        let spec = from_rendered(obj).map_err(|e| Failure::input(e.to_string(), None))?;
        let ns = obj["metadata"]["namespace"].as_str().map(str::to_string);
        (name.to_string(), spec, None, None, ns, 0)
    } else {
        let name = a.job.clone().unwrap_or_default();
        let t = project.jobs.get(&name).ok_or_else(|| {
            Failure::input(
                format!("no job `{name}` in ktwin.yaml"),
                Some(if project.jobs.is_empty() {
                    "declare one under `jobs:` (image, command, env, resultMarker), or run a rendered CronJob with `--from cronjob/NAME`".into()
                } else {
                    format!(
                        "jobs: {}",
                        project.jobs.keys().cloned().collect::<Vec<_>>().join(", ")
                    )
                }),
            )
        })?;
        let line = plan
            .loaded
            .pos
            .key(&format!("/jobs/{name}"))
            .map(|p| p.line)
            .unwrap_or(0);
        (
            name.clone(),
            from_template(&name, t),
            t.result_marker.clone(),
            Some(t.image.clone()),
            t.namespace.clone(),
            line,
        )
    };
    let namespace = namespace
        .or(env.namespace.clone())
        .unwrap_or_else(|| "default".into());
    let mut payloads = Vec::new();
    for (k, f) in &a.env_b64 {
        payloads.push((k.clone(), read_payload(f)?));
    }
    let id = short_id();
    let g = generate(
        spec,
        &JobInputs {
            template: &template,
            id: &id,
            project: &project.name,
            env: &a.env,
            namespace: &namespace,
            image,
            set_env: &a.set_env,
            payloads: &payloads,
            single_node: plan.local() && single_node(&project),
        },
        marker.as_deref(),
    )
    .map_err(|e| Failure::input(e.to_string(), None))?;
    // Adapted as the environment's own pods are (a ktwin-built image at its content tag).
    let images = plan.images()?.to_vec();
    let mut docs = vec![Document {
        value: g.job.clone(),
        source: Source {
            file: plan.loaded.path.clone(),
            line,
        },
    }];
    let adapted = ktwin_manifest::pipeline::adapt_objects(&plan.loaded, &a.env, &images, &mut docs)
        .map_err(|e| Failure::input(e.to_string(), None))?;
    let job = docs.remove(0).value;
    let mut changes = g.changes.clone();
    changes.extend(adapted);
    let name = job["metadata"]["name"].as_str().unwrap_or("").to_string();
    let output = a.output.unwrap_or(if a.dry_run {
        RunFormat::Yaml
    } else {
        RunFormat::Text
    });
    if a.dry_run {
        let shown_job = shown_env(&job, &a.env_b64, a.show_secrets);
        let mut objs = vec![shown_job];
        if let Some(s) = &g.secret {
            objs.push(if a.show_secrets {
                s.clone()
            } else {
                ktwin_manifest::output::redact(s)
            });
        }
        let docs: Vec<Document> = objs
            .into_iter()
            .map(|value| Document {
                value,
                source: Source {
                    file: plan.loaded.path.clone(),
                    line,
                },
            })
            .collect();
        match output {
            RunFormat::Json => printer::out(&ktwin_manifest::output::to_json(
                &docs,
                Some(&changes),
                a.show_secrets,
            )),
            _ => printer::out(&ktwin_manifest::output::to_yaml(&docs, a.show_secrets)),
        }
        printer::changes(&changes, a.show_secrets);
        return Ok(0);
    }
    // The image must be in the registry before a pod can pull it.
    let container_image = job["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if plan.local() && !a.no_build {
        if let Some(img) = images.iter().find(|i| i.reference == container_image) {
            let eng = plan.engine()?;
            let built = steps::build_images(&plan, &eng, &[img], cli.verbose, &|| false, false)?;
            if let Some(f) = built.failure {
                return Err(f);
            }
        }
    }
    let guarded = plan
        .guard(Intent::Write {
            accept_new_cluster: false,
        })
        .await?
        .clone();
    let client = connect(&guarded).await.map_err(kube_failure)?;
    // Heard from before the create: a Ctrl-C during it cancels the run once it exists.
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    if !a.detach {
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = tx.send(true);
            }
            // Keep the sender: a closed channel is not a Ctrl-C.
            std::future::pending::<()>().await;
        });
    }
    ktwin_kube::job::create(&client, &job, g.secret.as_ref())
        .await
        .map_err(kube_failure)?;
    if a.detach {
        printer::out(&format!("{name}\n"));
        printer::err(&format!(
            "job/{name} ({namespace}) created; `ktwin jobs logs {name}` shows its log, `ktwin jobs cancel {name}` deletes it"
        ));
        return Ok(0);
    }
    if output != RunFormat::Json {
        printer::err(&format!(
            "job/{name} ({namespace}) created; following its log (Ctrl-C deletes it)"
        ));
    }
    let json_out = output == RunFormat::Json;
    let report = |p: Progressed<'_>| match p {
        Progressed::Line(l) => {
            if json_out {
                printer::err(&l.text);
            } else {
                printer::out(&format!("{}\n", l.text));
            }
        }
        Progressed::Problem(lines) => printer::err(&lines.join("\n")),
    };
    let prefix = plan.registry.prefix();
    let ended = ktwin_kube::job::attach(
        &client,
        &namespace,
        &name,
        &Attach {
            timeout: a.timeout,
            poll: Duration::from_millis(500),
            registry_prefix: Some(&prefix),
        },
        &mut rx,
        &report,
    )
    .await
    .map_err(kube_failure)?;
    let result = marker
        .as_deref()
        .map(|m| results(&ended.log, m))
        .unwrap_or_default();
    let code = exit_code(&ended);
    if json_out {
        let mut v = serde_json::to_value(&ended).unwrap_or_default();
        v["result"] = json!(result);
        printer::out(&format!("{v}\n"));
    } else {
        summary(&ended, &result);
    }
    Ok(code)
}

/// The outcome in words, the termination message and the result lines, last.
fn summary(e: &Ended, result: &[Value]) {
    let how = match e.outcome {
        Outcome::Succeeded => "succeeded".to_string(),
        Outcome::Failed => format!(
            "failed{}{}",
            e.exit_code
                .map(|c| format!(" (exit code {c})"))
                .unwrap_or_default(),
            e.reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ),
        Outcome::DeadlineExceeded => {
            "failed: its activeDeadlineSeconds passed (DeadlineExceeded); raise `activeDeadlineSeconds` in the template if it needs longer".into()
        }
        Outcome::TimedOut | Outcome::Cancelled => String::new(),
    };
    if how.is_empty() {
        printer::err(&format!(
            "job/{} ({}): {}",
            e.name,
            e.namespace,
            e.reason.as_deref().unwrap_or("")
        ));
    } else {
        printer::err(&format!(
            "job/{} ({}): {how} after {:.1}s",
            e.name, e.namespace, e.seconds
        ));
    }
    if let Some(m) = &e.termination_message {
        printer::out(&format!("termination message: {m}\n"));
    }
    for r in result {
        let text = match r {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        printer::out(&format!("result: {text}\n"));
    }
}

/// A payload file, bounded: base64 grows it by a third and a Secret holds 1 MiB.
fn read_payload(f: &std::path::Path) -> Result<Vec<u8>, Failure> {
    let max = ktwin_manifest::job::SECRET_MAX as u64 * 3 / 4;
    let meta = std::fs::metadata(f).map_err(|e| {
        Failure::input(format!("--env-b64: cannot read {}: {e}", f.display()), None)
    })?;
    if !meta.is_file() {
        return Err(Failure::input(
            format!("--env-b64: {} is not a file", f.display()),
            None,
        ));
    }
    if meta.len() > max {
        return Err(Failure::Input(vec![plain(
            format!(
                "--env-b64: {} is {} bytes; a payload is at most {max} bytes (1 MiB once base64-encoded, a Secret's limit)",
                f.display(),
                meta.len()
            ),
            Some("have the job fetch a large input itself".into()),
        )]));
    }
    std::fs::read(f)
        .map_err(|e| Failure::input(format!("--env-b64: cannot read {}: {e}", f.display()), None))
}

/// The Job as shown by `--dry-run`: a payload's value in env is the user's file, redacted
/// unless asked (its size and file say what it is).
fn shown_env(job: &Value, payloads: &[(String, std::path::PathBuf)], show: bool) -> Value {
    let mut j = job.clone();
    if show {
        return j;
    }
    if let Some(env) = j
        .pointer_mut("/spec/template/spec/containers/0/env")
        .and_then(Value::as_array_mut)
    {
        for e in env.iter_mut() {
            if let Some((_, f)) = payloads.iter().find(|(k, _)| e["name"] == k.as_str()) {
                if let Some(v) = e["value"].as_str() {
                    e["value"] = json!(format!(
                        "<redacted: {} bytes, base64 of {}>",
                        v.len(),
                        f.display()
                    ));
                }
            }
        }
    }
    j
}
