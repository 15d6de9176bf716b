//! Manifests: documents with their source file and line, rendering (kustomize, plain
//! directories, files), local adaptation with a change record, patches, and environment diffs.
//! Pure apart from reading files; kustomize and Helm run behind the [`render::Kustomizer`] trait.

pub mod adapt;
pub mod change;
pub mod diff;
pub mod doc;
pub mod error;
pub mod helm;
pub mod job;
pub mod output;
pub mod parse;
pub mod pipeline;
pub mod podenv;
pub mod propose;
pub mod quantity;
pub mod render;
pub mod scan;

pub use change::Change;
pub use doc::{Document, ObjRef, Source};
pub use error::RenderError;
pub use pipeline::{render_env, Rendered};
pub use render::Kustomizer;
