//! Building an [`Engine`] from a configuration and the model registry: the one place the
//! decision module reads files. The server (start and `/admin/reload`) and batch scoring
//! both call [`load_engine`].

use std::path::Path;
use std::sync::Arc;

use super::engine::{Engine, ModelSlot, Models};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::features::{FeatureSet, Task};
use crate::models::Registry;

/// Loads the `alias` version of each task's model (the response model is required; churn
/// and channel are used when they have the alias) and builds the engine.
pub fn load_engine(
    config: &Config,
    set: Arc<FeatureSet>,
    models_root: &Path,
    alias: &str,
) -> Result<Engine> {
    let registry = Registry::open(models_root);
    let slot = |task: Task, name: &'static str| -> Result<ModelSlot> {
        let (version, model) = registry.load(task, alias, None)?;
        ModelSlot::new(name, &version, model.into_scorer(), &set)
    };
    let response = slot(Task::Response, "response").map_err(|e| {
        Error::Invalid(format!(
            "cannot load the response model `{alias}` from {}: {e} (train one: `baton train --task response --learner gbdt --promote {alias}`)",
            models_root.display()
        ))
    })?;
    let optional = |task: Task, name: &'static str| -> Result<Option<ModelSlot>> {
        if registry.aliases(task)?.contains_key(alias) {
            slot(task, name).map(Some)
        } else {
            Ok(None)
        }
    };
    let models = Models {
        response,
        churn: optional(Task::Churn, "churn")?,
        channel: optional(Task::Channel, "channel")?,
    };
    Engine::new(config, set, models)
}
