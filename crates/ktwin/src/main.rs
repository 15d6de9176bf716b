//! ktwin: a local twin of your production Kubernetes system.

mod cli;
mod commands;
mod guarded;
mod kustomize;
mod printer;
mod report;

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
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            f.print();
            ExitCode::from(f.code())
        }
    }
}
