//! `ktwin down`: delete the cluster ktwin created; keep the registry unless asked.

use ktwin_cluster::up::{down_cluster, Exec};
use ktwin_config::LOCAL_ENV;
use ktwin_engine::registry::Registry;

use crate::cli::{Cli, DownArgs};
use crate::plan::{up_failure, Plan};
use crate::printer;
use crate::report::{plain, Failure};

pub fn run(cli: &Cli, a: &DownArgs) -> Result<u8, Failure> {
    let plan = Plan::resolve(cli, LOCAL_ENV, None)?;
    let eng = plan.engine()?;
    let x = Exec {
        dry_run: a.dry_run,
        report: &printer::event,
    };
    let existed = down_cluster(plan.project(), &eng, &x).map_err(up_failure)?;
    let name = &plan.naming.cluster;
    if !existed {
        printer::err(&format!("cluster {name}: not present, nothing to do"));
    }
    volumes(plan.project(), a)?;
    let reg = Registry {
        engine: &eng,
        spec: plan.registry_spec.clone(),
    };
    if a.purge_registry {
        if a.dry_run {
            printer::err(&format!(
                "would remove the registry {} and its data volume",
                reg.spec.name
            ));
        } else {
            reg.down(true)
                .map_err(|e| Failure::Operation(vec![plain(e.to_string(), e.help())]))?;
            printer::err(&format!(
                "registry {}: removed with its images",
                reg.spec.name
            ));
        }
    } else {
        printer::err(&format!(
            "registry {}: kept with its images (--purge-registry removes it)",
            reg.spec.name
        ));
    }
    Ok(0)
}

/// The volumes of `cluster.persistentVolumes` (or of an earlier twin that had it): kept and
/// said where, or deleted with `--purge-volumes`.
fn volumes(p: &ktwin_config::Project, a: &DownArgs) -> Result<(), Failure> {
    let dir = p.volumes_path();
    if !dir.exists() {
        if a.purge_volumes {
            printer::err(&format!("volumes: none at {}", dir.display()));
        }
        return Ok(());
    }
    if !a.purge_volumes {
        printer::err(&format!(
            "volumes: kept in {} (the next `up` finds them; --purge-volumes deletes them)",
            dir.display()
        ));
        return Ok(());
    }
    if a.dry_run {
        printer::err(&format!("would delete the volumes in {}", dir.display()));
        return Ok(());
    }
    std::fs::remove_dir_all(&dir).map_err(|e| {
        Failure::Operation(vec![plain(
            format!("cannot delete the volumes in {}: {e}", dir.display()),
            Some(
                "files a container wrote may belong to another user: delete the directory as that user (or with sudo)"
                    .into(),
            ),
        )])
    })?;
    printer::err(&format!("volumes: deleted {}", dir.display()));
    Ok(())
}
