//! `ktwin heal`, the engine half: stopped node containers (started in the order the
//! provider needs: load balancer, servers, agents), the registry stopped or detached from
//! the cluster network, kind nodes' missing mirror config. Detect first, then fix.

use ktwin_config::Project;
use ktwin_engine::registry::{Observed, Registry, RegistrySpec};
use ktwin_engine::Engine;

use crate::provider::provider_for;
use crate::up::{attach_registry, write_mirrors, Exec, UpError};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Healed {
    /// What was fixed (or would be, on a dry run).
    pub fixed: Vec<String>,
    /// What heal cannot fix, with the command that does.
    pub unfixable: Vec<String>,
}

pub fn heal_engine(
    p: &Project,
    engine: &Engine,
    registry: &RegistrySpec,
    x: &Exec,
) -> Result<Healed, UpError> {
    let prov = provider_for(p.cluster.provider);
    let prov = prov.as_ref();
    let mut h = Healed::default();
    let mut all_missing = true;
    for n in ktwin_config::desired::Naming::of(p).nodes_named(p, &crate::up::agent_names(p)) {
        let state = x.probe(&engine.cmd([
            "container",
            "inspect",
            "-f",
            "{{.State.Running}}",
            n.container.as_str(),
        ]));
        match state {
            Ok(s) if s.trim() == "true" => all_missing = false,
            Ok(_) => {
                all_missing = false;
                x.change(
                    &format!("start {}", n.container),
                    &engine.cmd(["start", n.container.as_str()]),
                )?;
                h.fixed.push(format!("container {}: started", n.container));
            }
            Err(_) => h.unfixable.push(format!(
                "container {} is missing: `ktwin up --recreate` rebuilds the cluster",
                n.container
            )),
        }
    }
    if all_missing {
        h.unfixable = vec![format!(
            "cluster {} does not exist: `ktwin up` creates it",
            p.cluster_name()
        )];
        return Ok(h);
    }
    let reg = Registry {
        engine,
        spec: registry.clone(),
    };
    match reg.observe() {
        Ok(Observed::Present { running: false, .. }) => {
            x.change(
                "start the registry",
                &engine.cmd(["start", reg.spec.name.as_str()]),
            )?;
            h.fixed.push(format!("registry {}: started", reg.spec.name));
        }
        Ok(Observed::Absent) => {
            h.unfixable.push(format!(
                "registry {} does not exist: `ktwin up` creates it and pushes the images",
                reg.spec.name
            ));
            return Ok(h);
        }
        _ => {}
    }
    if attach_registry(p, engine, x)? {
        h.fixed.push(format!(
            "registry {}: connected to network {}",
            reg.spec.name,
            ktwin_config::desired::Naming::of(p).network()
        ));
    }
    for f in write_mirrors(p, prov, engine, x, true)? {
        h.fixed.push(format!("mirror config {f}: written"));
    }
    Ok(h)
}
