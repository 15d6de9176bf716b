//! Cluster providers (k3d, kind), registry mirrors, KEP-1755 and the context guard.
//!
//! The providers land with the cluster issue; this crate exists now so its dependency
//! direction (cluster → engine → config) holds from the start.
