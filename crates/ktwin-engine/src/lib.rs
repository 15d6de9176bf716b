//! Effects on the host: the one process runner every external command goes through (argv
//! vectors, never a shell), container engine detection, the registry container and its API.

pub mod build;
pub mod engine;
pub mod gc;
pub mod layerstore;
pub mod oci;
pub mod ports;
pub mod registry;
pub mod registry_api;
pub mod runner;

pub use engine::{detect, Engine, EngineKind, NoEngine, Probe};
pub use runner::{which, Cmd, RunError, RunOutput};
