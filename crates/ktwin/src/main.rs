//! ktwin: a local twin of your production Kubernetes system.

mod board;
mod cli;
mod commands;
mod kustomize;
mod plan;
mod printer;
mod report;
mod steps;
mod watch;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let tty = printer::stderr_is_tty();
    let _ = miette::set_hook(Box::new(move |_| {
        Box::new(
            miette::MietteHandlerOpts::new()
                .terminal_links(false)
                .unicode(true)
                .color(tty)
                .force_graphical(true)
                .width(100)
                .build(),
        )
    }));
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // The one async runtime; every command runs on it.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            printer::err(&format!("cannot start the async runtime: {e}"));
            return ExitCode::from(1);
        }
    };
    match rt.block_on(commands::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            f.print();
            ExitCode::from(f.code())
        }
    }
}
