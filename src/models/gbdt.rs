//! Gradient-boosted trees with `forust-ml` (Apache-2.0, pure Rust, XGBoost-style
//! histogram boosting). Binary tasks use one log-loss booster; the channel task one
//! booster per class (one-vs-rest), combined by softmax. Boosting stops early when the
//! log loss on the tune rows has not improved for `early_stopping_rounds`, and the model
//! keeps the best iteration. Missing inputs (NaN) follow each split's learned default.

use forust_ml::gradientbooster::EvaluationData;
use forust_ml::metric::Metric;
use forust_ml::objective::ObjectiveType;
use forust_ml::{GradientBooster, Matrix};
use serde::{Deserialize, Serialize};

use super::data::Table;
use crate::error::{Error, Result};

/// Settings of [`GbdtTrainer`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GbdtTrainer {
    /// Boosting rounds at most. Default 600.
    pub iterations: usize,
    /// Shrinkage. Default 0.05.
    pub learning_rate: f32,
    /// Depth of each tree. Default 5.
    pub max_depth: usize,
    /// Minimum hessian sum in a leaf. Default 5.
    pub min_leaf_weight: f32,
    /// L2 penalty on leaf weights. Default 1.0.
    pub l2: f32,
    /// Row share sampled per tree. Default 0.8.
    pub subsample: f32,
    /// Column share sampled per tree. Default 0.8.
    pub colsample_bytree: f64,
    /// Histogram bins per input. Default 256.
    pub nbins: u16,
    /// Stop after this many rounds without a better tune log loss. Default 40.
    pub early_stopping_rounds: usize,
    /// Seed. Default 42.
    pub seed: u64,
}

impl Default for GbdtTrainer {
    fn default() -> Self {
        Self {
            iterations: 600,
            learning_rate: 0.05,
            max_depth: 5,
            min_leaf_weight: 5.0,
            l2: 1.0,
            subsample: 0.8,
            colsample_bytree: 0.8,
            nbins: 256,
            early_stopping_rounds: 40,
            seed: 42,
        }
    }
}

/// Fitted boosters: one (binary) or one per class.
#[derive(Serialize, Deserialize)]
pub struct FittedGbdt {
    pub boosters: Vec<GradientBooster>,
}

impl Clone for FittedGbdt {
    fn clone(&self) -> Self {
        // GradientBooster is not Clone; a serde round trip copies it exactly.
        let s = serde_json::to_string(self).unwrap_or_default();
        serde_json::from_str(&s).unwrap_or(FittedGbdt {
            boosters: Vec::new(),
        })
    }
}

impl std::fmt::Debug for FittedGbdt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FittedGbdt")
            .field("boosters", &self.boosters.len())
            .field("trees", &self.trees())
            .finish()
    }
}

fn trees_of(b: &GradientBooster) -> &[forust_ml::tree::Tree] {
    let n = b
        .prediction_iteration
        .unwrap_or(b.trees.len())
        .min(b.trees.len());
    &b.trees[..n]
}

impl GbdtTrainer {
    /// Fits on `train` rows with early stopping on `tune` rows; `on_booster(k, of)` is
    /// called as each booster finishes.
    pub fn fit(
        &self,
        t: &Table,
        train: &[usize],
        tune: &[usize],
        on_booster: &dyn Fn(usize, usize),
    ) -> Result<FittedGbdt> {
        if self.learning_rate.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
            || self.iterations == 0
            || self.max_depth == 0
        {
            return Err(Error::Invalid(
                "gbdt: learning_rate must be > 0, iterations and max_depth ≥ 1".into(),
            ));
        }
        let share_ok = |v: f64| v > 0.0 && v <= 1.0;
        if !share_ok(f64::from(self.subsample)) || !share_ok(self.colsample_bytree) {
            return Err(Error::Invalid(
                "gbdt: subsample and colsample_bytree must be in (0, 1]".into(),
            ));
        }
        let known = |rows: &[usize]| -> Vec<usize> {
            rows.iter()
                .copied()
                .filter(|&i| (t.y[i] as usize) < t.classes.len())
                .collect()
        };
        let (train, tune) = (known(train), known(tune));
        let x = t.select(&train);
        let xv = t.select(&tune);
        let m = Matrix::new(&x, train.len(), t.d);
        let w = vec![1.0; train.len()];
        let wv = vec![1.0; tune.len()];
        let k = t.outputs();
        let mut boosters = Vec::with_capacity(k);
        for c in 0..k {
            let target = |rows: &[usize]| -> Vec<f64> {
                rows.iter()
                    .map(|&i| {
                        if k == 1 {
                            t.y[i]
                        } else if t.y[i] as usize == c {
                            1.0
                        } else {
                            0.0
                        }
                    })
                    .collect()
            };
            let (y, yv) = (target(&train), target(&tune));
            if y.iter().all(|v| *v == y[0]) {
                return Err(Error::Data(format!(
                    "gbdt: the training rows have a single label{}",
                    if k > 1 {
                        format!(" for class {}", t.classes[c])
                    } else {
                        String::new()
                    }
                )));
            }
            let mut b = GradientBooster::default()
                .set_objective_type(ObjectiveType::LogLoss)
                .set_iterations(self.iterations)
                .set_learning_rate(self.learning_rate)
                .set_max_depth(self.max_depth)
                .set_min_leaf_weight(self.min_leaf_weight)
                .set_l2(self.l2)
                .set_subsample(self.subsample)
                .set_colsample_bytree(self.colsample_bytree)
                .set_nbins(self.nbins)
                .set_seed(self.seed)
                .set_evaluation_metric(Some(Metric::LogLoss))
                .set_early_stopping_rounds(Some(self.early_stopping_rounds));
            let eval: Vec<EvaluationData> = vec![(Matrix::new(&xv, tune.len(), t.d), &yv, &wv)];
            b.fit(&m, &y, &w, Some(eval))
                .map_err(|e| Error::Data(format!("gbdt: {e}")))?;
            boosters.push(b);
            on_booster(c + 1, k);
        }
        Ok(FittedGbdt { boosters })
    }
}

impl FittedGbdt {
    /// Total number of trees.
    pub fn trees(&self) -> usize {
        self.boosters.iter().map(|b| trees_of(b).len()).sum()
    }

    /// Probabilities for one raw input row (NaN = missing). No allocation.
    pub fn predict_into(&self, x: &[f64], out: &mut [f64]) {
        for (b, o) in self.boosters.iter().zip(out.iter_mut()) {
            let missing = b.missing;
            let mut z = b.base_score;
            for tree in trees_of(b) {
                z += tree.predict_row_from_row_slice(x, &missing);
            }
            *o = z;
        }
        super::logistic::finish(out);
    }
}
