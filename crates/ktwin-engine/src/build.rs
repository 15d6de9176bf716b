//! `ktwin build`: content-tagged builds that skip everything when the registry already has the
//! tag (this survives cluster recreation, because the registry does), and otherwise build with
//! the engine and push only the layers the registry lacks.

use std::path::Path;
use std::time::Instant;

use ktwin_config::contenttag::{content_tag, BuildInputs};
use ktwin_config::imageref::{local_ref, ImageRef};
use ktwin_config::Image;
use serde::Serialize;
use serde_json::Value;

use crate::engine::Engine;
use crate::registry_api::RegistryApi;
use crate::runner::RunError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The registry already had this content tag: nothing built, nothing moved.
    Skipped,
    /// Built and pushed.
    Pushed,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildReport {
    pub image: String,
    pub reference: String,
    pub tag: String,
    pub outcome: Outcome,
    pub layers: usize,
    pub layers_pushed: usize,
    pub bytes_pushed: u64,
    pub seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("image {image}: {message}")]
    Inputs { image: String, message: String },
    #[error("the registry does not answer on 127.0.0.1:{port}")]
    RegistryDown { port: u16 },
    #[error("building {image} failed:\n```\n{stderr}\n```")]
    BuildFailed { image: String, stderr: String },
    #[error("pushing {reference} failed:\n```\n{stderr}\n```")]
    PushFailed { reference: String, stderr: String },
    #[error(transparent)]
    Engine(#[from] RunError),
    #[error(transparent)]
    Api(#[from] crate::registry_api::ApiError),
}

impl BuildError {
    pub fn help(&self) -> Option<String> {
        match self {
            BuildError::RegistryDown { .. } => Some("start it with `ktwin registry up`".into()),
            BuildError::PushFailed { .. } => Some("check `ktwin registry status`; rerunning `ktwin build` resumes, pushing only what is missing".into()),
            _ => None,
        }
    }
}

fn failed_stderr(e: RunError) -> Result<String, BuildError> {
    match e {
        RunError::Failed { stderr, .. } => Ok(stderr),
        other => Err(other.into()),
    }
}

/// Build and push one image (or skip it).
pub fn build_one(
    engine: &Engine,
    project_dir: &Path,
    img: &Image,
    port: u16,
) -> Result<BuildReport, BuildError> {
    let started = Instant::now();
    let inputs = BuildInputs::new(project_dir, img);
    let tag = content_tag(&inputs).map_err(|e| BuildError::Inputs {
        image: img.image.clone(),
        message: e.to_string(),
    })?;
    let r = ImageRef::parse(&img.image).map_err(|message| BuildError::Inputs {
        image: img.image.clone(),
        message,
    })?;
    let reference = local_ref(port, &r, &tag);
    let api = RegistryApi::new(port);
    if !api.healthy() {
        return Err(BuildError::RegistryDown { port });
    }
    let report = |outcome, layers, layers_pushed, bytes_pushed| BuildReport {
        image: img.image.clone(),
        reference: reference.clone(),
        tag: tag.clone(),
        outcome,
        layers,
        layers_pushed,
        bytes_pushed,
        seconds: started.elapsed().as_secs_f64(),
    };
    if api.has_manifest(&r.path, &tag)? {
        return Ok(report(Outcome::Skipped, 0, 0, 0));
    }
    let mut args: Vec<String> = vec![
        "build".into(),
        "-q".into(),
        "-t".into(),
        reference.clone(),
        "-f".into(),
    ];
    args.push(inputs.dockerfile.display().to_string());
    for (k, v) in &img.build_args {
        args.push("--build-arg".into());
        args.push(format!("{k}={v}"));
    }
    if let Some(t) = &img.target {
        args.push("--target".into());
        args.push(t.clone());
    }
    args.push(inputs.context.display().to_string());
    if let Err(e) = engine.cmd(&args).run() {
        return Err(BuildError::BuildFailed {
            image: img.image.clone(),
            stderr: failed_stderr(e)?,
        });
    }
    let diff_ids = layer_ids(engine, &reference)?;
    let pushed = match engine.cmd(["push", reference.as_str()]).run() {
        Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Err(e) => {
            return Err(BuildError::PushFailed {
                reference: reference.clone(),
                stderr: failed_stderr(e)?,
            })
        }
    };
    let manifest = api.manifest(&r.path, &tag)?;
    let sizes: Vec<u64> = manifest
        .get("layers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|l| l.get("size").and_then(Value::as_u64).unwrap_or(0))
        .collect();
    let (n, bytes) = pushed_layers(&pushed, &diff_ids, &sizes);
    Ok(report(Outcome::Pushed, diff_ids.len(), n, bytes))
}

/// The image's layer diffIDs, base first.
fn layer_ids(engine: &Engine, reference: &str) -> Result<Vec<String>, BuildError> {
    let out = engine
        .cmd([
            "image",
            "inspect",
            "--format",
            "{{json .RootFS.Layers}}",
            reference,
        ])
        .run()?;
    Ok(serde_json::from_slice::<Vec<String>>(&out.stdout).unwrap_or_default())
}

/// From `docker push` progress ("<12 hex of diffID>: Pushed" / "Layer already exists"), the
/// layers that moved and their size in the registry.
pub fn pushed_layers(push_output: &str, diff_ids: &[String], sizes: &[u64]) -> (usize, u64) {
    let mut n = 0;
    let mut bytes = 0;
    for (i, id) in diff_ids.iter().enumerate() {
        let short = id.trim_start_matches("sha256:").get(..12).unwrap_or("");
        if push_output
            .lines()
            .any(|l| l.trim_start().starts_with(short) && l.contains("Pushed"))
        {
            n += 1;
            bytes += sizes.get(i).copied().unwrap_or(0);
        }
    }
    (n, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_pushed_layers() {
        let out = "046ae4a021da: Layer already exists\na35cdecff46d: Pushed\n3f48db78113f: Layer already exists\n";
        let ids = vec![
            "sha256:046ae4a021da00".to_string(),
            "sha256:a35cdecff46d00".to_string(),
            "sha256:3f48db78113f00".to_string(),
        ];
        assert_eq!(pushed_layers(out, &ids, &[100, 5_000, 7]), (1, 5_000));
    }
}
