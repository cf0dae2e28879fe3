//! Gradient-boosted trees with `forust-ml` (Apache-2.0, pure Rust, XGBoost-style
//! histogram boosting). Binary tasks use one log-loss booster; the channel task one
//! booster per class (one-vs-rest), combined by softmax. Boosting stops early when the
//! log loss on the tune rows has not improved for `early_stopping_rounds`, and the model
//! keeps the best iteration. Missing inputs (NaN) follow each split's learned default.

use std::sync::Arc;

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

/// Fitted boosters: one (binary) or one per class. Serialised as forust's boosters;
/// predictions walk a flat copy of their trees (see [`FlatBooster`]). forust's boosters
/// are not `Clone`, so they are shared: a clone is exact and cannot fail.
#[derive(Clone)]
pub struct FittedGbdt {
    boosters: Arc<Vec<GradientBooster>>,
    flat: Vec<FlatBooster>,
}

impl Serialize for FittedGbdt {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Stored<'a> {
            boosters: &'a [GradientBooster],
        }
        Stored {
            boosters: &self.boosters,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for FittedGbdt {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Stored {
            boosters: Vec<GradientBooster>,
        }
        let stored = Stored::deserialize(d)?;
        Self::new(stored.boosters).map_err(serde::de::Error::custom)
    }
}

/// A booster's trees for prediction: every node of every tree in one array of 24-byte
/// nodes (forust's own nodes carry training statistics, 80 bytes each), so a row's walk
/// through all trees touches a third of the memory. Predictions are the same, bit for bit:
/// the same comparisons in the same order, the same f32 leaf weights summed in f64.
#[derive(Debug, Clone)]
struct FlatBooster {
    base_score: f64,
    /// forust's missing-value marker (NaN by default).
    missing: f64,
    nodes: Vec<FlatNode>,
    /// Each tree's root in `nodes`.
    roots: Vec<u32>,
}

/// A split (`x[feature] < split` goes `left`, else `right`; missing goes `missing`) or,
/// when `feature == LEAF`, a leaf whose weight is `split`.
#[derive(Debug, Clone, Copy)]
struct FlatNode {
    split: f64,
    feature: u32,
    left: u32,
    right: u32,
    missing: u32,
}

const LEAF: u32 = u32::MAX;

impl FlatBooster {
    fn of(b: &GradientBooster) -> std::result::Result<Self, String> {
        let mut nodes = Vec::new();
        let mut roots = Vec::new();
        for (t, tree) in trees_of(b).iter().enumerate() {
            let base = nodes.len();
            let n = tree.nodes.len();
            let at = |child: usize| -> std::result::Result<u32, String> {
                if child < n {
                    u32::try_from(base + child).map_err(|_| "gbdt: too many tree nodes".into())
                } else {
                    Err(format!("gbdt: tree {t} points at node {child} of {n}"))
                }
            };
            roots.push(at(0)?);
            for node in &tree.nodes {
                nodes.push(if node.is_leaf {
                    FlatNode {
                        split: f64::from(node.weight_value),
                        feature: LEAF,
                        left: 0,
                        right: 0,
                        missing: 0,
                    }
                } else {
                    FlatNode {
                        split: node.split_value,
                        feature: u32::try_from(node.split_feature)
                            .ok()
                            .filter(|&f| f != LEAF)
                            .ok_or("gbdt: split feature index out of range")?,
                        left: at(node.left_child)?,
                        right: at(node.right_child)?,
                        missing: at(node.missing_node)?,
                    }
                });
            }
        }
        Ok(Self {
            base_score: b.base_score,
            missing: b.missing,
            nodes,
            roots,
        })
    }

    /// The booster's margin for `x`; an input index past `x` reads as missing.
    fn margin(&self, x: &[f64]) -> f64 {
        let mut z = self.base_score;
        for &root in &self.roots {
            let mut n = &self.nodes[root as usize];
            while n.feature != LEAF {
                let v = x.get(n.feature as usize).copied().unwrap_or(f64::NAN);
                let next = if v.is_nan() || v == self.missing {
                    n.missing
                } else if v < n.split {
                    n.left
                } else {
                    n.right
                };
                n = &self.nodes[next as usize];
            }
            z += n.split;
        }
        z
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
        FittedGbdt::new(boosters).map_err(Error::Data)
    }
}

impl FittedGbdt {
    /// The model of fitted `boosters`; refuses trees whose nodes point outside them.
    pub fn new(boosters: Vec<GradientBooster>) -> std::result::Result<Self, String> {
        let flat = boosters
            .iter()
            .map(FlatBooster::of)
            .collect::<std::result::Result<_, _>>()?;
        Ok(Self {
            boosters: Arc::new(boosters),
            flat,
        })
    }

    /// Total number of trees.
    pub fn trees(&self) -> usize {
        self.boosters.iter().map(|b| trees_of(b).len()).sum()
    }

    /// Probabilities for one raw input row (NaN = missing). No allocation.
    pub fn predict_into(&self, x: &[f64], out: &mut [f64]) {
        for (b, o) in self.flat.iter().zip(out.iter_mut()) {
            *o = b.margin(x);
        }
        super::logistic::finish(out);
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// The flat trees predict what forust's own walk predicts, bit for bit, missing
    /// inputs included, and survive a save and load.
    #[test]
    fn flat_trees_predict_what_forust_predicts() {
        let (n, d) = (600, 4);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut next = || rng.random::<f64>();
        let mut x = vec![0.0; n * d];
        for v in x.iter_mut() {
            *v = if next() < 0.1 { f64::NAN } else { next() };
        }
        // column-major: x[j * n + i]
        let y: Vec<f64> = (0..n)
            .map(|i| {
                let (a, b) = (x[i], x[n + i]);
                f64::from(u8::from((a.is_nan() || a > 0.5) ^ (b > 0.3)))
            })
            .collect();
        let mut b = GradientBooster::default()
            .set_objective_type(ObjectiveType::LogLoss)
            .set_iterations(40)
            .set_max_depth(4);
        b.fit(&Matrix::new(&x, n, d), &y, &vec![1.0; n], None)
            .unwrap();
        let m = FittedGbdt::new(vec![b]).unwrap();
        let loaded: FittedGbdt = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        let mut leaves_missing = 0;
        for i in 0..n {
            let row: Vec<f64> = (0..d).map(|j| x[j * n + i]).collect();
            let b = &m.boosters[0];
            let want = trees_of(b).iter().fold(b.base_score, |z, t| {
                z + t.predict_row_from_row_slice(&row, &b.missing)
            });
            assert_eq!(m.flat[0].margin(&row).to_bits(), want.to_bits(), "row {i}");
            assert_eq!(
                loaded.flat[0].margin(&row).to_bits(),
                want.to_bits(),
                "row {i}"
            );
            leaves_missing += usize::from(row.iter().any(|v| v.is_nan()));
        }
        assert!(leaves_missing > 100);
        let mut p = [0.0];
        m.predict_into(&[0.9, 0.1, 0.5, f64::NAN], &mut p);
        assert!(p[0] > 0.5 && p[0] < 1.0, "{p:?}");
    }
}
