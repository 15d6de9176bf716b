//! `ktwin images verify`: prove every built image pulls through the mirror config ktwin gives
//! the nodes, from a node's point of view.

use std::time::Instant;

use ktwin_cluster::registry_wiring::hosts_toml;
use ktwin_config::desired::NodeRole;
use ktwin_config::LOCAL_ENV;
use ktwin_engine::registry_api::RegistryApi;
use ktwin_engine::Cmd;
use serde_json::json;

use crate::cli::{Cli, ImagesCommand, StatusFormat, VerifyArgs};
use crate::plan::Plan;
use crate::printer;
use crate::report::{plain, Failure};

pub fn run(cli: &Cli, c: &ImagesCommand) -> Result<u8, Failure> {
    match c {
        ImagesCommand::Verify(a) => verify(cli, a),
    }
}

fn verify(cli: &Cli, a: &VerifyArgs) -> Result<u8, Failure> {
    let plan = Plan::resolve(cli, LOCAL_ENV, None)?;
    let images = plan.select(&a.images)?;
    let registry = &plan.registry;
    let api = RegistryApi::new(registry);
    if !api.healthy() {
        return Err(Failure::Operation(vec![plain(
            format!("the registry does not answer at {}", registry.api_base()),
            Some("start it with `ktwin registry up`".into()),
        )]));
    }
    // Every image at its content tag, under both names the nodes mirror.
    let mut refs = Vec::new();
    let mut missing = Vec::new();
    for img in images {
        let tag = img.tag.as_str();
        if !api.has_manifest(&img.repo.path, tag).unwrap_or(false) {
            missing.push(format!("{}:{tag}", img.image));
            continue;
        }
        for (host, _) in registry.mirrors() {
            refs.push((img.image.clone(), format!("{host}/{}:{tag}", img.repo.path)));
        }
    }
    if !missing.is_empty() {
        return Err(Failure::Operation(vec![plain(
            format!(
                "not in the registry at their current content tag: {}",
                missing.join(", ")
            ),
            Some("build and push them with `ktwin build`".into()),
        )]));
    }
    let eng = plan.engine()?;
    // (image, reference, where, command) per pull.
    let mut pulls: Vec<(String, String, String, Cmd)> = Vec::new();
    let _hosts_dir;
    if let Some(sock) = &a.containerd {
        // A containerd on this host stands in for a node: the same hosts.toml files ktwin
        // gives kind nodes, with the endpoint this host reaches the registry at.
        let dir = tempfile_dir()?;
        let endpoint = registry.api_base();
        for (host, _) in registry.mirrors() {
            let d = dir.path().join(&host);
            std::fs::create_dir_all(&d)
                .and_then(|_| std::fs::write(d.join("hosts.toml"), hosts_toml(&host, &endpoint)))
                .map_err(|e| {
                    Failure::Operation(vec![plain(format!("writing hosts.toml: {e}"), None)])
                })?;
        }
        printer::err(&format!(
            "verifying through containerd at {} with hosts.toml for {} → {endpoint} (nodes get {} as the endpoint)",
            sock.display(),
            registry
                .mirrors()
                .iter()
                .map(|m| m.0.as_str())
                .collect::<Vec<_>>()
                .join(" and "),
            format_args!("http://{}", registry.in_network())
        ));
        for (image, r) in &refs {
            let cmd = Cmd::new("ctr")
                .arg("--address")
                .arg(sock)
                .args(["-n", "ktwin-verify", "images", "pull", "--hosts-dir"])
                .arg(dir.path())
                .arg(r);
            pulls.push((
                image.clone(),
                r.clone(),
                format!("containerd {}", sock.display()),
                cmd,
            ));
        }
        _hosts_dir = Some(dir);
    } else {
        let nodes: Vec<String> = plan
            .nodes
            .iter()
            .filter(|n| n.role != NodeRole::LoadBalancer)
            .map(|n| n.container.clone())
            .collect();
        for n in &nodes {
            for (image, r) in &refs {
                let cmd = eng.cmd(["exec", n.as_str(), "crictl", "pull", r.as_str()]);
                pulls.push((image.clone(), r.clone(), n.clone(), cmd));
            }
        }
    }
    let mut rows = Vec::new();
    let mut failed = 0;
    for (image, r, place, cmd) in &pulls {
        let t = Instant::now();
        let res = cmd.run();
        let secs = t.elapsed().as_secs_f64();
        let error = res.err().map(|e| e.to_string());
        failed += usize::from(error.is_some());
        rows.push(json!({"image": image, "reference": r, "node": place, "ok": error.is_none(), "seconds": secs, "error": error}));
    }
    match a.output {
        StatusFormat::Json => printer::out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        )),
        StatusFormat::Text => {
            let mut t = printer::table(&["node", "reference", "pull", "seconds"]);
            for r in &rows {
                t.add_row(vec![
                    r["node"].as_str().unwrap_or_default().to_string(),
                    r["reference"].as_str().unwrap_or_default().to_string(),
                    if r["ok"] == true {
                        "ok".into()
                    } else {
                        format!("FAILED: {}", r["error"].as_str().unwrap_or_default())
                    },
                    format!("{:.2}", r["seconds"].as_f64().unwrap_or_default()),
                ]);
            }
            printer::out(&format!("{t}\n"));
        }
    }
    if failed > 0 {
        return Err(Failure::Operation(vec![plain(
            format!("{failed} of {} pulls failed", rows.len()),
            Some("`ktwin registry status` shows whether the registry runs; `ktwin up` rewrites the nodes' mirror config".into()),
        )]));
    }
    Ok(0)
}

fn tempfile_dir() -> Result<tempfile::TempDir, Failure> {
    tempfile::Builder::new()
        .prefix("ktwin-hosts-")
        .tempdir()
        .map_err(|e| Failure::Operation(vec![plain(format!("temp dir: {e}"), None)]))
}
