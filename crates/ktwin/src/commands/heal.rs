//! `ktwin heal`: recover the twin after a reboot or an engine restart.

use std::time::Duration;

use ktwin_config::LOCAL_ENV;
use ktwin_kube::guard::Intent;
use ktwin_kube::status::WorkloadStatus;
use ktwin_kube::{connect, Discovery, KubeError};

use crate::cli::{Cli, HealArgs};
use crate::plan::{kube_failure, Plan};
use crate::printer;
use crate::report::{plain, Failure};

pub async fn run(cli: &Cli, a: &HealArgs) -> Result<u8, Failure> {
    let mut plan = Plan::resolve(cli, LOCAL_ENV, None)?;
    let eng = plan.engine()?;
    let x = ktwin_cluster::up::Exec {
        dry_run: a.dry_run,
        report: &printer::event,
    };
    let engine_half =
        ktwin_cluster::heal::heal_engine(plan.project(), &eng, &plan.registry_spec, &x)
            .map_err(|e| Failure::Operation(vec![plain(e.to_string(), e.help())]))?;
    let mut fixed = engine_half.fixed.clone();
    if !engine_half.unfixable.is_empty() {
        for u in &engine_half.unfixable {
            printer::err(&format!("cannot heal: {u}"));
        }
        return Ok(1);
    }
    let configmap = ktwin_cluster::registry_wiring::kep1755_configmap(&plan.registry);
    let docs = match plan.environment() {
        Some(_) => plan.rendered()?,
        None => vec![],
    };
    let prefix = plan.registry.prefix();
    let engine_changed = !engine_half.fixed.is_empty() && !a.dry_run;
    // After the engine half: the provider reports the kubeconfig of a running cluster.
    let g = plan
        .guard(Intent::Write {
            accept_new_cluster: false,
        })
        .await?
        .clone();
    printer::err(&format!("healing the twin at {}", g.describe()));
    let still = async {
        let client = connect(&g).await?;
        if engine_changed {
            ktwin_kube::wait_for_api(
                &client,
                g.context(),
                Duration::from_secs(180),
                &printer::event,
            )
            .await?;
        }
        let o = ktwin_kube::heal::Options {
            dry_run: a.dry_run,
            nodes: &plan.nodes,
            single_node: plan.single_node,
            configmap,
            report: &printer::event,
        };
        fixed.extend(ktwin_kube::heal::heal_api(&client, &o).await?);
        let mut disc = Discovery::new(client);
        let w = ktwin_kube::status::workloads(&mut disc, &docs, Some(&prefix)).await?;
        Ok::<_, KubeError>(w)
    }
    .await
    .map_err(kube_failure)?;
    if fixed.is_empty() {
        printer::err("nothing to heal");
    } else {
        printer::err(&format!(
            "{} {} fix(es)",
            if a.dry_run { "would make" } else { "made" },
            fixed.len()
        ));
    }
    let unhealthy: Vec<&WorkloadStatus> = still
        .iter()
        .filter(|w| !w.rolled_out || w.ready < w.desired)
        .collect();
    if unhealthy.is_empty() {
        return Ok(0);
    }
    printer::err("still unhealthy:");
    for w in unhealthy {
        printer::err(&format!("{}: {}/{} ready", w.object, w.ready, w.desired));
        for l in &w.problems {
            printer::err(l);
        }
    }
    Ok(1)
}
