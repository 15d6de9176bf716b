//! Kubernetes API effects on kube-rs: server-side apply, prune, rollout wait, status, heal.
//!
//! The API code lands with the deploy issue; this crate exists now so its dependency
//! direction (kube → manifest → config) holds from the start.
