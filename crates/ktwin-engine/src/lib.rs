//! Effects on the host: the one process runner every external command goes through (argv
//! vectors, never a shell), and, as they land, the container engine, the registry container,
//! builds and pushes.

pub mod runner;

pub use runner::{which, Cmd, RunError, RunOutput};
