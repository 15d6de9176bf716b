use ktwin_cluster::provider::{provider_for, to_yaml};
use ktwin_config::desired::Naming;
use ktwin_config::Provider;

use crate::cli::{Cli, ClusterCommand, ProviderArg};
use crate::plan::load_project;
use crate::printer;
use crate::report::Failure;

pub fn run(cli: &Cli, c: &ClusterCommand) -> Result<u8, Failure> {
    match c {
        ClusterCommand::Config(a) => {
            let loaded = load_project(cli)?;
            let provider = match a.provider {
                Some(ProviderArg::K3d) => Provider::K3d,
                Some(ProviderArg::Kind) => Provider::Kind,
                None => loaded.project.cluster.provider,
            };
            let p = provider_for(provider);
            let naming = Naming {
                provider,
                cluster: loaded.project.cluster_name().to_string(),
            };
            printer::err(&format!(
                "# {} config for cluster `{}` (context {})",
                p.tool(),
                naming.cluster,
                naming.context()
            ));
            printer::out(&to_yaml(&p.render_config(&loaded.project)));
            Ok(0)
        }
    }
}
