//! One module per verb: resolve the plan, call the libraries (and the shared steps), print.
//! A command never calls another command.

mod build;
mod cluster;
mod deploy;
mod dev;
mod diff;
mod doctor;
mod down;
mod exec;
mod heal;
mod images;
mod init;
mod jobs;
mod logs;
mod registry;
mod render;
mod restart;
mod run;
mod schema;
mod status;
mod up;

use ktwin_config::LOCAL_ENV;

use crate::cli::{Cli, Command};
use crate::plan::Plan;
use crate::printer;
use crate::report::Failure;

/// The environment and `--context` a command is about, for `--show-plan`.
fn env_of(c: &Command) -> (&str, Option<&str>) {
    match c {
        Command::Render(a) => (&a.env, None),
        Command::Diff(a) => (&a.env, None),
        Command::Doctor(a) => (&a.env, None),
        Command::Deploy(a) => (&a.env, a.context.as_deref()),
        Command::Status(a) => (&a.env, a.context.as_deref()),
        Command::Logs(a) => (&a.env, a.context.as_deref()),
        Command::Restart(a) => (&a.env, a.context.as_deref()),
        Command::Up(a) => (LOCAL_ENV, a.context.as_deref()),
        Command::Dev(a) => (&a.env, a.context.as_deref()),
        Command::Run(a) => (&a.env, a.context.as_deref()),
        Command::Exec(a) => (&a.env, a.context.as_deref()),
        _ => (LOCAL_ENV, None),
    }
}

pub async fn run(cli: Cli) -> Result<u8, Failure> {
    if let Some(dir) = &cli.directory {
        std::env::set_current_dir(dir).map_err(|e| {
            Failure::input(
                format!("cannot change to directory {}: {e}", dir.display()),
                None,
            )
        })?;
    }
    if cli.show_plan {
        let (env, context) = env_of(&cli.command);
        let plan = Plan::resolve(&cli, env, context)?;
        printer::out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&plan.show()?).unwrap_or_default()
        ));
        return Ok(0);
    }
    match &cli.command {
        Command::Render(a) => render::run(&cli, a),
        Command::Diff(a) => diff::run(&cli, a),
        Command::Doctor(a) => doctor::run(&cli, a).await,
        Command::Init(a) => init::run(a),
        Command::Build(a) => build::run(&cli, a),
        Command::Cluster(c) => cluster::run(&cli, c),
        Command::Images(c) => images::run(&cli, c),
        Command::Up(a) => up::run(&cli, a).await,
        Command::Dev(a) => dev::run(&cli, a).await,
        Command::Down(a) => down::run(&cli, a),
        Command::Deploy(a) => deploy::run(&cli, a).await,
        Command::Status(a) => status::run(&cli, a).await,
        Command::Heal(a) => heal::run(&cli, a).await,
        Command::Logs(a) => logs::run(&cli, a).await,
        Command::Restart(a) => restart::run(&cli, a).await,
        Command::Run(a) => run::run(&cli, a).await,
        Command::Jobs(c) => jobs::run(&cli, c).await,
        Command::Exec(a) => exec::run(&cli, a).await,
        Command::Registry(c) => registry::run(&cli, c),
        Command::Schema => schema::run(),
    }
}
