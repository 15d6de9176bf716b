//! `ktwin restart`: a rollout restart, then the rollout wait.

use ktwin_config::event::Event;
use ktwin_kube::deploy::Options;
use ktwin_kube::guard::Intent;
use ktwin_kube::{connect, Discovery};

use crate::cli::{Cli, RestartArgs};
use crate::plan::{kube_failure, Plan};
use crate::printer;
use crate::report::Failure;

pub async fn run(cli: &Cli, a: &RestartArgs) -> Result<u8, Failure> {
    let mut plan = Plan::resolve(cli, &a.env, a.context.as_deref())?;
    let docs = plan.rendered()?;
    let picked = ktwin_kube::logs::pick(&docs, Some(&a.workload))
        .map_err(|e| Failure::input(e.to_string(), e.help()))?;
    if picked.len() > 1 {
        return Err(Failure::input(
            format!("`{}` names {} workloads", a.workload, picked.len()),
            Some(format!(
                "say which: {}",
                picked
                    .iter()
                    .map(|w| format!(
                        "{}/{}",
                        w["kind"].as_str().unwrap_or("").to_lowercase(),
                        w["metadata"]["name"].as_str().unwrap_or("")
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        ));
    }
    let w = picked[0];
    let g = plan
        .guard(Intent::Write {
            accept_new_cluster: false,
        })
        .await?
        .clone();
    let o = Options {
        project: &plan.project().name,
        env: &a.env,
        prune: false,
        prune_volumes: false,
        announce_prune: false,
        force_conflicts: false,
        timeout: a.timeout,
        registry_prefix: Some(plan.registry.prefix()),
        state_file: None,
        report: &printer::event,
        previous: None,
    };
    printer::err(&format!(
        "restarting {} in {} at {}",
        ktwin_kube::describe(w),
        a.env,
        g.describe()
    ));
    let at = ktwin_kube::now_rfc3339();
    async {
        let client = connect(&g).await?;
        let mut disc = Discovery::new(client);
        ktwin_kube::logs::restart(&mut disc, w, &at).await?;
        printer::event(Event::RestartRequested {
            workload: ktwin_kube::describe(w),
        });
        ktwin_kube::deploy::wait_rollouts(&mut disc, &[w], &o).await
    }
    .await
    .map_err(kube_failure)?;
    Ok(0)
}
