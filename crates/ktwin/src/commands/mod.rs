//! One thin module per verb: load, call the libraries, print.

mod build;
mod cluster;
mod deploy;
mod diff;
mod doctor;
mod images;
mod init;
mod registry;
mod render;
mod schema;
mod up;

use std::path::PathBuf;

use ktwin_config::Loaded;

use crate::cli::{Cli, Command};
use crate::report::{config_failure, Failure};
pub use registry::engine;

pub fn run(cli: Cli) -> Result<u8, Failure> {
    if let Some(dir) = &cli.directory {
        std::env::set_current_dir(dir).map_err(|e| {
            Failure::input(
                format!("cannot change to directory {}: {e}", dir.display()),
                None,
            )
        })?;
    }
    match &cli.command {
        Command::Render(a) => render::run(&cli, a),
        Command::Diff(a) => diff::run(&cli, a),
        Command::Doctor(a) => doctor::run(&cli, a),
        Command::Init(a) => init::run(a),
        Command::Build(a) => build::run(&cli, a),
        Command::Cluster(c) => cluster::run(&cli, c),
        Command::Images(c) => images::run(&cli, c),
        Command::Up(a) => up::up(&cli, a),
        Command::Down(a) => up::down(&cli, a),
        Command::Deploy(a) => deploy::run(&cli, a),
        Command::Status(a) => deploy::status(&cli, a),
        Command::Heal(a) => deploy::heal(&cli, a),
        Command::Logs(a) => deploy::logs(&cli, a),
        Command::Restart(a) => deploy::restart(&cli, a),
        Command::Registry(c) => registry::run(&cli, c),
        Command::Schema => schema::run(),
    }
}

/// The project file: `--file`, else ktwin.yaml in the working directory or a parent.
pub fn load_project(cli: &Cli) -> Result<Loaded, Failure> {
    let path: PathBuf = match &cli.file {
        Some(f) => f.clone(),
        None => ktwin_config::find(&std::env::current_dir().unwrap_or_default())
            .map_err(config_failure)?,
    };
    ktwin_config::load(&path).map_err(config_failure)
}

/// Like [`load_project`], but no project at all is not an error.
pub fn load_project_if_any(cli: &Cli) -> Result<Option<Loaded>, Failure> {
    match (
        &cli.file,
        ktwin_config::find(&std::env::current_dir().unwrap_or_default()),
    ) {
        (None, Err(ktwin_config::ConfigError::NotFound { .. })) => Ok(None),
        _ => load_project(cli).map(Some),
    }
}
