//! One file per check; each has its own positive and negative fixtures.

use crate::{CheckFn, CheckInfo};

pub mod access_mode_unsupported;
pub mod anti_affinity_unschedulable;
pub mod fsgroup_local_path;
pub mod host_network_or_port;
pub mod image_latest_third_party;
pub mod image_not_built;
pub mod image_unmatched;
pub mod ingress_class_missing;
pub mod kind_not_served;
pub mod loadbalancer_pending_kind;
pub mod loadbalancer_port_conflict;
pub mod netpol_blocks_dependency;
pub mod node_selector_unsatisfiable;
pub mod nodeport_unmapped;
pub mod port_mapping_unused;
pub mod priority_class_missing;
pub mod probe_missing;
pub mod probe_port_undeclared;
pub mod pull_policy_always_local;
pub mod pull_secret_missing;
pub mod runtime_class_missing;
pub mod scrape_target_missing;
pub mod secret_key_missing;
pub mod secret_volume_missing;
pub mod service_account_missing;
pub mod service_env_collision;
pub mod service_selects_nothing;
pub mod service_target_port_mismatch;
pub mod storage_class_annotation;
pub mod storage_class_missing;
pub mod taint_not_tolerated;

/// The catalogue. Ids are stable.
pub const ALL: &[(CheckInfo, CheckFn)] = &[
    (probe_missing::INFO, probe_missing::run),
    (probe_port_undeclared::INFO, probe_port_undeclared::run),
    (
        pull_policy_always_local::INFO,
        pull_policy_always_local::run,
    ),
    (pull_secret_missing::INFO, pull_secret_missing::run),
    (
        node_selector_unsatisfiable::INFO,
        node_selector_unsatisfiable::run,
    ),
    (taint_not_tolerated::INFO, taint_not_tolerated::run),
    (storage_class_missing::INFO, storage_class_missing::run),
    (fsgroup_local_path::INFO, fsgroup_local_path::run),
    (nodeport_unmapped::INFO, nodeport_unmapped::run),
    (port_mapping_unused::INFO, port_mapping_unused::run),
    (service_selects_nothing::INFO, service_selects_nothing::run),
    (
        service_target_port_mismatch::INFO,
        service_target_port_mismatch::run,
    ),
    (service_env_collision::INFO, service_env_collision::run),
    (
        netpol_blocks_dependency::INFO,
        netpol_blocks_dependency::run,
    ),
    (scrape_target_missing::INFO, scrape_target_missing::run),
    (secret_key_missing::INFO, secret_key_missing::run),
    (
        anti_affinity_unschedulable::INFO,
        anti_affinity_unschedulable::run,
    ),
    (
        loadbalancer_port_conflict::INFO,
        loadbalancer_port_conflict::run,
    ),
    (kind_not_served::INFO, kind_not_served::run),
    (service_account_missing::INFO, service_account_missing::run),
    (priority_class_missing::INFO, priority_class_missing::run),
    (runtime_class_missing::INFO, runtime_class_missing::run),
    (secret_volume_missing::INFO, secret_volume_missing::run),
    (access_mode_unsupported::INFO, access_mode_unsupported::run),
    (
        storage_class_annotation::INFO,
        storage_class_annotation::run,
    ),
    (ingress_class_missing::INFO, ingress_class_missing::run),
    (
        loadbalancer_pending_kind::INFO,
        loadbalancer_pending_kind::run,
    ),
    (host_network_or_port::INFO, host_network_or_port::run),
    (image_unmatched::INFO, image_unmatched::run),
    (image_not_built::INFO, image_not_built::run),
    (
        image_latest_third_party::INFO,
        image_latest_third_party::run,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_kebab_case_and_explained() {
        let mut ids: Vec<&str> = ALL.iter().map(|(i, _)| i.id).collect();
        for id in &ids {
            assert!(
                id.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{id}"
            );
        }
        assert!(ALL.iter().all(|(i, _)| i.explain.contains("Fix:")));
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), ALL.len());
    }
}
