//! `ktwin logs`: every container of a workload's pods, prefixed and coloured.

use ktwin_kube::connect;
use ktwin_kube::guard::Intent;

use crate::cli::{Cli, LogsArgs};
use crate::plan::{kube_failure, Plan};
use crate::printer;
use crate::report::Failure;

pub async fn run(cli: &Cli, a: &LogsArgs) -> Result<u8, Failure> {
    let mut plan = Plan::resolve(cli, &a.env, a.context.as_deref())?;
    let docs = plan.rendered()?;
    let picked = ktwin_kube::logs::pick(&docs, a.workload.as_deref())
        .map_err(|e| Failure::input(e.to_string(), e.help()))?;
    let g = plan.guard(Intent::Read).await?.clone();
    let colour = printer::stdout_is_tty();
    let line = |s: &ktwin_kube::logs::Source, l: &str| {
        let prefix = format!("{}/{}", s.pod, s.container);
        let text = if colour {
            format!("\x1b[{}m{prefix}\x1b[0m | {l}\n", 31 + (s.pod_index % 6))
        } else {
            format!("{prefix} | {l}\n")
        };
        printer::out(&text);
    };
    async {
        let client = connect(&g).await?;
        let srcs = ktwin_kube::logs::sources(&client, &picked).await?;
        if srcs.is_empty() {
            printer::err("no pods yet");
        }
        let since = a.since.map(|d| d.as_secs() as i64);
        ktwin_kube::logs::stream(&client, &srcs, a.follow, since, &line).await
    }
    .await
    .map_err(kube_failure)?;
    Ok(0)
}
