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
