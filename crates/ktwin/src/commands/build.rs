//! `ktwin build`: images at their content tag, pushed to the local registry.

use ktwin_config::LOCAL_ENV;

use crate::cli::{BuildArgs, Cli, StatusFormat};
use crate::plan::Plan;
use crate::printer;
use crate::report::Failure;
use crate::steps;

pub fn run(cli: &Cli, a: &BuildArgs) -> Result<u8, Failure> {
    let plan = Plan::resolve(cli, LOCAL_ENV, None)?;
    let images = plan.select(&a.images)?;
    if images.is_empty() {
        printer::err("no images in ktwin.yaml: nothing to build");
        return Ok(0);
    }
    let eng = plan.engine()?;
    // What did build is printed even when another image failed.
    let built = steps::build_images(
        &plan,
        &eng,
        &images,
        cli.verbose,
        &|| false,
        a.no_engine_push,
    )?;
    let (ok, failed) = (built.reports, built.failure);
    match a.output {
        StatusFormat::Json => printer::out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&ok).unwrap_or_default()
        )),
        StatusFormat::Text => {
            for r in &ok {
                printer::out(&format!("{}\n", r.reference));
            }
        }
    }
    match failed {
        Some(f) => Err(f),
        None => Ok(0),
    }
}
