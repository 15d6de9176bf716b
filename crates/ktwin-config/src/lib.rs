//! The `ktwin.yaml` model: loading, validation, defaults, JSON Schema and content tags.
//! No I/O beyond reading files (and asking git whether a secrets file is ignored).

pub mod contenttag;
pub mod desired;
pub mod dockerignore;
pub mod envfile;
pub mod error;
pub mod event;
pub mod git;
pub mod imageref;
pub mod inputs;
pub mod kube_version;
pub mod load;
pub mod model;
pub mod names;
pub mod pos;
pub mod state;
pub mod validate;

pub use error::{ConfigError, SourceDiag};
pub use load::{find, Loaded};

/// Read, parse and validate the project file at `path`.
pub fn load(path: &std::path::Path) -> Result<Loaded, ConfigError> {
    let loaded = load::read(path)?;
    let diags = validate::validate(&loaded);
    if diags.is_empty() {
        Ok(loaded)
    } else {
        Err(ConfigError::Invalid(diags))
    }
}
pub use model::*;
pub use pos::{Pos, PosIndex};

/// The JSON Schema of `ktwin.yaml`.
pub fn json_schema() -> serde_json::Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(model::Project))
        .unwrap_or(serde_json::Value::Null);
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "$id".into(),
            "https://ktwin.dev/schema/v1alpha1/project.json".into(),
        );
        obj.insert("title".into(), "ktwin project (ktwin.yaml)".into());
    }
    schema
}
