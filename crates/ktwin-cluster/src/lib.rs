//! Cluster providers (k3d, kind): the exact config each receives, version gates, the
//! registry mirror wiring, and the context guard every cluster-writing path goes through.

pub mod guard;
pub mod heal;
pub mod k3d;
pub mod kind;
pub mod provider;
pub mod registry_wiring;
pub mod up;

pub use guard::{guard, GuardError};
pub use provider::{provider_for, ClusterProvider, Version, VersionError};
