use ktwin_config::imageref::ImageRef;
use ktwin_config::Image;
use ktwin_engine::build::{build_one, BuildError, BuildReport, Outcome, Via};

use crate::cli::{BuildArgs, Cli, StatusFormat};
use crate::printer;
use crate::report::{plain, Failure};

/// Independent images build in parallel, at most this many at once.
const PARALLEL: usize = 2;

pub(super) fn selected<'a>(all: &'a [Image], wanted: &[String]) -> Result<Vec<&'a Image>, Failure> {
    if wanted.is_empty() {
        return Ok(all.iter().collect());
    }
    wanted
        .iter()
        .map(|w| {
            all.iter()
                .find(|i| {
                    i.image == *w
                        || ImageRef::parse(&i.image).is_ok_and(|r| {
                            r.path == *w || r.path.rsplit('/').next() == Some(w.as_str())
                        })
                })
                .ok_or_else(|| {
                    Failure::input(
                        format!("no image `{w}` in ktwin.yaml"),
                        Some(format!(
                            "images: {}",
                            all.iter()
                                .map(|i| i.image.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                    )
                })
        })
        .collect()
}

pub fn run(cli: &Cli, a: &BuildArgs) -> Result<u8, Failure> {
    let loaded = super::load_project(cli)?;
    let eng = super::registry::engine(cli)?;
    let images = selected(&loaded.project.images, &a.images)?;
    if images.is_empty() {
        printer::err("no images in ktwin.yaml: nothing to build");
        return Ok(0);
    }
    let port = loaded.project.registry.host_port;
    let siblings: Vec<String> = loaded
        .project
        .images
        .iter()
        .filter_map(|i| ImageRef::parse(&i.image).ok().map(|r| r.path))
        .collect();
    let bars = printer::Bars::new(cli.verbose);
    let mut results: Vec<(String, Result<BuildReport, BuildError>)> = Vec::new();
    for chunk in images.chunks(PARALLEL) {
        let done: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|i| {
                    let eng = &eng;
                    let dir = &loaded.dir;
                    let siblings = &siblings;
                    let bar = bars.bar(&i.image);
                    s.spawn(move || {
                        let r = build_one(eng, dir, i, port, siblings, &|phase, n| {
                            bar.update(phase, n)
                        });
                        bar.finish();
                        (i.image.clone(), r)
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        for (image, r) in &done {
            match r {
                Ok(rep) if rep.outcome == Outcome::Skipped => printer::err(&format!(
                    "{image}: up to date ({}), nothing built or pushed",
                    rep.tag
                )),
                Ok(rep) => {
                    printer::err(&format!(
                        "{image}: {} {} of {} layers ({:.1} MB) as {} — build {:.1} s, push {:.1} s",
                        match rep.via {
                            Via::EnginePush => "engine pushed; stored",
                            Via::Export => "uploaded",
                            _ => "uploaded",
                        },
                        rep.layers_pushed,
                        rep.layers,
                        rep.bytes_pushed as f64 / 1e6,
                        rep.reference,
                        rep.build_seconds,
                        rep.push_seconds
                    ));
                    if let Some(b) = &rep.background {
                        printer::err(&format!(
                            "{image}: the engine is pushing it once more in the background (pid {}, log {}) so that later changes move only new layers",
                            b.pid,
                            b.log.display()
                        ));
                    }
                }
                Err(_) => {}
            }
        }
        results.extend(done);
    }
    let reports: Vec<&BuildReport> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .collect();
    match a.output {
        StatusFormat::Json => printer::out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&reports).unwrap_or_default()
        )),
        StatusFormat::Text => {
            for r in &reports {
                printer::out(&format!("{}\n", r.reference));
            }
        }
    }
    let errors: Vec<miette::Report> = results
        .into_iter()
        .filter_map(|(_, r)| r.err())
        .map(|e| plain(e.to_string(), e.help()))
        .collect();
    if errors.is_empty() {
        Ok(0)
    } else {
        Err(Failure::Operation(errors))
    }
}
