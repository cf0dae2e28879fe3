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
            alpha: None,
            alpha_losses: Vec::new(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::features::{FeatureSet, Task};
    use crate::models::Scorer;

    /// The linear shortcut of `score_variants` equals scoring each one-hot row in full.
    #[test]
    fn variant_scoring_matches_full_scoring() {
        let config = Config::default();
        let set = FeatureSet::compile(&config.features, &config.actions).unwrap();
        let schema = FeatureSchema::for_task(Task::Response, &set, &config.actions);
        let mut m = toy_logistic("response", schema.clone(), vec!["p".into()], 11);
        m.calibrator = Calibrator::Platt { a: 0.8, b: -0.3 };
        let d = schema.width();
        let n = schema.numeric.len();
        let mut x: Vec<f64> = (0..d)
            .map(|j| {
                if j < n {
                    (j as f64 * 0.37).sin() * 5.0
                } else {
                    0.0
                }
            })
            .collect();
        x[3] = f64::NAN;
        let cats: Vec<[Option<&str>; 3]> = vec![
            [Some("win_back"), Some("email"), Some("offer")],
            [Some("cross_sell"), Some("web"), Some("message")],
            [Some("not_in_catalog"), Some("sms"), Some("offer")],
        ];
        let mut hot = Vec::new();
        let mut want = Vec::new();
        for c in &cats {
            let mut full = x.clone();
            schema.encode_categorical(c, &mut full);
            let mut out = [0.0];
            m.score_into(&full, &mut out).unwrap();
            want.push(out[0]);
            hot.extend((0..3).map(|k| {
                let base = n + schema.categorical[..k]
                    .iter()
                    .map(|c| c.values.len())
                    .sum::<usize>();
                c[k].and_then(|v| schema.categorical[k].values.iter().position(|x| x == v))
                    .map_or(usize::MAX, |i| base + i)
            }));
        }
        let before = x.clone();
        let mut got = vec![0.0; cats.len()];
        m.score_variants(&mut x, &hot, 3, &mut got).unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-12, "{g} vs {w}");
        }
        assert!(
            x.iter()
                .zip(&before)
                .all(|(a, b)| a == b || (a.is_nan() && b.is_nan()))
        );
        // a wrong shape is an error, not a panic
        assert!(m.score_variants(&mut x, &hot[..4], 3, &mut got).is_err());
    }
}
