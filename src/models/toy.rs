//! Fixed-weight models for tests, benchmarks and demos: a logistic model over a task's
//! feature schema with small pseudo-random weights drawn from a seed. Not trained and not
//! meant to predict anything; they exercise the scoring path with real model code.

use super::calibrate::Calibrator;
use super::logistic::{FittedLogistic, Standardizer};
use super::schema::FeatureSchema;
use super::scorer::{Fitted, Model};

/// A logistic model over `schema` with `outputs` (`["p"]` for a binary task).
pub fn toy_logistic(task: &str, schema: FeatureSchema, outputs: Vec<String>, seed: u64) -> Model {
    let d = schema.width();
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let k = outputs.len();
    let weights = (0..k)
        .map(|_| (0..d).map(|_| 0.4 * next()).collect())
        .collect();
    let intercepts = (0..k).map(|_| -2.0 + 0.5 * next()).collect();
    Model {
        task: task.to_string(),
        fitted: Fitted::Logistic(FittedLogistic {
            standardizer: Standardizer {
                mean: vec![0.0; d],
                scale: vec![10.0; d],
            },
            weights,
            intercepts,
        }),
        schema,
        outputs,
        calibrator: Calibrator::None,
    }
}

/// Writes toy models for the response, churn and channel tasks (channel classes web, app,
/// store) into the registry at `root` as version `v1`, aliased `alias`. For tests and
/// benchmarks of the server without training.
pub fn write_toy_registry(
    root: &std::path::Path,
    config: &crate::config::Config,
    alias: &str,
) -> crate::error::Result<()> {
    use crate::error::IoContext;
    use crate::features::{FeatureSet, Task};
    let set = FeatureSet::compile(&config.features, &config.actions)?;
    let registry = super::Registry::open(root);
    for (task, name, outputs, seed) in [
        (Task::Response, "response", vec!["p".to_string()], 1),
        (Task::Churn, "churn", vec!["p".to_string()], 2),
        (
            Task::Channel,
            "channel",
            ["web", "app", "store"].map(String::from).to_vec(),
            3,
        ),
    ] {
        let schema = FeatureSchema::for_task(task, &set, &config.actions);
        let model = toy_logistic(name, schema, outputs, seed);
        let dir = registry.version_dir(task, "v1");
        std::fs::create_dir_all(&dir).at(&dir)?;
        let path = dir.join("model.json");
        std::fs::write(&path, serde_json::to_vec(&model)?).at(&path)?;
        registry.promote(task, "v1", alias)?;
    }
    Ok(())
}
