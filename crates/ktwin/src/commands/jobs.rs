//! `ktwin jobs list|logs|cancel`: the runs `ktwin run` made for this project's environment.
//! A name is looked up among them only — their labels, and `ktwin run`'s field manager on the
//! object — so `cancel` can never delete a Job ktwin did not run.

use ktwin_kube::guard::Intent;
use ktwin_kube::{connect, Client};
use ktwin_manifest::job::{results, ANNOTATION_MARKER, LABEL_JOB};
use serde_json::{json, Value};

use crate::cli::{Cli, JobNameArgs, JobsCommand, StatusFormat};
use crate::plan::{kube_failure, Plan};
use crate::printer;
use crate::report::Failure;

async fn client(
    cli: &Cli,
    env: &str,
    context: Option<&str>,
    intent: Intent,
) -> Result<(Plan, Client), Failure> {
    let mut plan = Plan::resolve(cli, env, context)?;
    let g = plan.guard(intent).await?.clone();
    let c = connect(&g).await.map_err(kube_failure)?;
    Ok((plan, c))
}

/// The run called `name` among this environment's, or an error listing them.
async fn find(plan: &Plan, c: &Client, a: &JobNameArgs) -> Result<Value, Failure> {
    let runs = ktwin_kube::job::list(c, &plan.project().name, &a.env)
        .await
        .map_err(kube_failure)?;
    // Labels can be copied; the field manager says who created it.
    let made_by_run = |j: &Value| {
        j["metadata"]["managedFields"].as_array().is_some_and(|m| {
            m.iter()
                .any(|f| f["manager"] == ktwin_kube::job::RUN_MANAGER)
        })
    };
    runs.iter()
        .find(|j| j["metadata"]["name"] == a.name.as_str() && made_by_run(j))
        .cloned()
        .ok_or_else(|| {
            let names: Vec<&str> = runs
                .iter()
                .filter_map(|j| j["metadata"]["name"].as_str())
                .take(10)
                .collect();
            Failure::input(
                format!("no run `{}` of {} in `{}`", a.name, plan.project().name, a.env),
                Some(if names.is_empty() {
                    "`ktwin jobs list` shows none: finished runs are deleted after their ttlSecondsAfterFinished".into()
                } else {
                    format!("runs: {}", names.join(", "))
                }),
            )
        })
}

fn age(job: &Value) -> String {
    let Some(t) = job["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
    else {
        return "-".into();
    };
    let s = jiff::Timestamp::now().duration_since(t).as_secs().max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

pub async fn run(cli: &Cli, c: &JobsCommand) -> Result<u8, Failure> {
    match c {
        JobsCommand::List(a) => {
            let (plan, client) = client(cli, &a.env, a.context.as_deref(), Intent::Read).await?;
            let runs = ktwin_kube::job::list(&client, &plan.project().name, &a.env)
                .await
                .map_err(kube_failure)?;
            if a.output == StatusFormat::Json {
                let v: Vec<Value> = runs
                    .iter()
                    .map(|j| {
                        json!({"name": j["metadata"]["name"], "namespace": j["metadata"]["namespace"],
                               "template": j["metadata"]["labels"][LABEL_JOB],
                               "state": ktwin_kube::job::state(j),
                               "created": j["metadata"]["creationTimestamp"]})
                    })
                    .collect();
                printer::out(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&v).unwrap_or_default()
                ));
                return Ok(0);
            }
            if runs.is_empty() {
                printer::err(&format!(
                    "no runs of {} in `{}`",
                    plan.project().name,
                    a.env
                ));
                return Ok(0);
            }
            let mut t = printer::table(&["run", "namespace", "template", "state", "age"]);
            for j in &runs {
                t.add_row(vec![
                    j["metadata"]["name"].as_str().unwrap_or("").to_string(),
                    j["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    j["metadata"]["labels"][LABEL_JOB]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    ktwin_kube::job::state(j).to_string(),
                    age(j),
                ]);
            }
            printer::out(&format!("{t}\n"));
            Ok(0)
        }
        JobsCommand::Logs(a) => {
            let (plan, client) = client(cli, &a.env, a.context.as_deref(), Intent::Read).await?;
            let job = find(&plan, &client, a).await?;
            let ns = job["metadata"]["namespace"].as_str().unwrap_or("default");
            let logs = ktwin_kube::job::logs(&client, ns, &a.name)
                .await
                .map_err(kube_failure)?;
            if logs.is_empty() {
                printer::err(&format!(
                    "job/{}: no pod yet ({})",
                    a.name,
                    ktwin_kube::job::state(&job)
                ));
            }
            let mut all = String::new();
            for (pod, text) in &logs {
                if logs.len() > 1 {
                    printer::err(&format!("== pod/{pod}"));
                }
                printer::out(text);
                all.push_str(text);
            }
            if let Some(m) = job["metadata"]["annotations"][ANNOTATION_MARKER].as_str() {
                for r in results(&all, m) {
                    let text = match r {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    printer::out(&format!("result: {text}\n"));
                }
            }
            Ok(0)
        }
        JobsCommand::Cancel(a) => {
            let (plan, client) = client(
                cli,
                &a.env,
                a.context.as_deref(),
                Intent::Write {
                    accept_new_cluster: false,
                },
            )
            .await?;
            let job = find(&plan, &client, a).await?;
            let ns = job["metadata"]["namespace"].as_str().unwrap_or("default");
            ktwin_kube::job::cancel(&client, ns, &a.name)
                .await
                .map_err(kube_failure)?;
            printer::err(&format!("job/{} ({ns}) deleted with its pods", a.name));
            Ok(0)
        }
    }
}
