//! Logistic regression with linfa-logistic (binary, or multinomial for the channel task),
//! on inputs standardised with means and scales learned on the training rows. The L2
//! penalty is chosen from a grid by log loss on the tune rows unless it is fixed.

use linfa::prelude::*;
use linfa_logistic::{LogisticRegression, MultiLogisticRegression};
use ndarray::{Array1, Array2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::data::Table;
use super::metrics;
use crate::error::{Error, Result};

/// Per-input mean and scale learned on training rows; missing inputs (NaN) become the
/// mean, i.e. 0 after standardisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
}

impl Standardizer {
    pub fn fit(t: &Table, rows: &[usize]) -> Self {
        let mut mean = vec![0.0; t.d];
        let mut scale = vec![1.0; t.d];
        for j in 0..t.d {
            let col = &t.x[j * t.n..(j + 1) * t.n];
            let (mut s, mut ss, mut k) = (0.0, 0.0, 0.0);
            for &i in rows {
                let v = col[i];
                if v.is_finite() {
                    s += v;
                    ss += v * v;
                    k += 1.0;
                }
            }
            if k > 0.0 {
                let m = s / k;
                let var = (ss / k - m * m).max(0.0);
                mean[j] = m;
                scale[j] = if var > 1e-18 { var.sqrt() } else { 1.0 };
            }
        }
        Self { mean, scale }
    }

    /// Standardised value of input `j`.
    #[inline]
    pub fn apply(&self, j: usize, v: f64) -> f64 {
        if v.is_finite() {
            (v - self.mean[j]) / self.scale[j]
        } else {
            0.0
        }
    }

    /// A row-major standardised matrix of `rows`.
    pub fn matrix(&self, t: &Table, rows: &[usize]) -> Array2<f64> {
        let mut a = Array2::<f64>::zeros((rows.len(), t.d));
        for j in 0..t.d {
            let col = &t.x[j * t.n..(j + 1) * t.n];
            for (r, &i) in rows.iter().enumerate() {
                a[[r, j]] = self.apply(j, col[i]);
            }
        }
        a
    }
}

/// Settings of [`LogisticTrainer`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogisticTrainer {
    /// L2 penalty on the weights (linfa's `alpha`: the fit minimises the summed log loss
    /// plus `alpha / 2 · |w|²`). `None` (the default): every value of `alpha_grid` is fitted
    /// and the one with the lowest log loss on the tune rows is kept.
    pub alpha: Option<f64>,
    /// Penalties tried when `alpha` is not set. Default 1, 10, 100, 1000.
    pub alpha_grid: Vec<f64>,
    /// L-BFGS iterations at most. Default 200.
    pub max_iterations: u64,
    /// Gradient norm at which L-BFGS stops. Default 1e-4.
    pub gradient_tolerance: f64,
}

impl Default for LogisticTrainer {
    fn default() -> Self {
        Self {
            alpha: None,
            alpha_grid: vec![1.0, 10.0, 100.0, 1000.0],
            max_iterations: 200,
            gradient_tolerance: 1e-4,
        }
    }
}

/// A fitted logistic regression: `weights[c]` over standardised inputs, one row per output
/// (one for binary, one per class for multinomial).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedLogistic {
    pub standardizer: Standardizer,
    pub weights: Vec<Vec<f64>>,
    pub intercepts: Vec<f64>,
    /// The L2 penalty of the fit (absent in models saved before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// Each penalty tried and its tune-row log loss, when it was chosen from a grid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alpha_losses: Vec<(f64, f64)>,
}

impl LogisticTrainer {
    /// Fits on `train` rows; `tune` rows choose the penalty when it is not fixed.
    pub fn fit(&self, t: &Table, train: &[usize], tune: &[usize]) -> Result<FittedLogistic> {
        let grid: Vec<f64> = match self.alpha {
            Some(a) => vec![a],
            None => self.alpha_grid.clone(),
        };
        let name = if self.alpha.is_some() {
            "logistic.alpha"
        } else {
            "logistic.alpha_grid"
        };
        if grid.is_empty() {
            return Err(Error::Invalid(format!(
                "{name} is empty: give at least one penalty (or set logistic.alpha)"
            )));
        }
        if let Some(a) = grid.iter().find(|a| !a.is_finite() || **a < 0.0) {
            return Err(Error::Invalid(format!(
                "{name} must be finite and ≥ 0, got {a}"
            )));
        }
        let st = Standardizer::fit(t, train);
        // The design matrix once for every penalty: binary, all training rows; multinomial,
        // the rows labelled with one of the model's classes.
        let k = t.outputs();
        let rows: Vec<usize> = if k == 1 {
            train.to_vec()
        } else {
            train
                .iter()
                .copied()
                .filter(|&i| (t.y[i] as usize) < k)
                .collect()
        };
        let x = st.matrix(t, &rows);
        let y: Array1<usize> = rows.iter().map(|&i| t.y[i] as usize).collect();
        if k == 1 && y.iter().all(|v| Some(v) == y.first()) {
            return Err(Error::Data(
                "logistic regression: the training rows have a single label".into(),
            ));
        }
        if grid.len() == 1 {
            let (weights, intercepts) = self.fit_one(t, &x, &y, grid[0])?;
            return Ok(FittedLogistic {
                standardizer: st,
                weights,
                intercepts,
                alpha: Some(grid[0]),
                alpha_losses: Vec::new(),
            });
        }
        let fits = grid
            .par_iter()
            .map(|&a| {
                let (weights, intercepts) = self.fit_one(t, &x, &y, a)?;
                let m = FittedLogistic {
                    standardizer: st.clone(),
                    weights,
                    intercepts,
                    alpha: Some(a),
                    alpha_losses: Vec::new(),
                };
                let loss = m.log_loss(t, tune);
                Ok((m, loss))
            })
            .collect::<Result<Vec<_>>>()?;
        let alpha_losses: Vec<(f64, f64)> =
            grid.iter().copied().zip(fits.iter().map(|f| f.1)).collect();
        let (mut best, _) = fits
            .into_iter()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("the grid is not empty");
        best.alpha_losses = alpha_losses;
        Ok(best)
    }

    /// Weights and intercepts of one fit with penalty `alpha` on the standardised `x` and
    /// labels `y` (0/1, or class indices for a multinomial model of `t`'s classes).
    fn fit_one(
        &self,
        t: &Table,
        x: &Array2<f64>,
        y: &Array1<usize>,
        alpha: f64,
    ) -> Result<(Vec<Vec<f64>>, Vec<f64>)> {
        let fit_err =
            |e: linfa_logistic::error::Error| Error::Data(format!("logistic regression: {e}"));
        let ds = DatasetBase::new(x.view(), y.clone());
        if t.outputs() == 1 {
            let m = LogisticRegression::default()
                .alpha(alpha)
                .max_iterations(self.max_iterations)
                .gradient_tolerance(self.gradient_tolerance)
                .fit(&ds)
                .map_err(fit_err)?;
            // linfa's "positive" class is not necessarily label 1 (it depends on the label
            // counts); orient the weights so that the model gives P(label = 1).
            let sign = if m.labels().pos.class == 1 { 1.0 } else { -1.0 };
            Ok((
                vec![m.params().iter().map(|w| sign * w).collect()],
                vec![sign * m.intercept()],
            ))
        } else {
            let k = t.outputs();
            let m = MultiLogisticRegression::default()
                .alpha(alpha)
                .max_iterations(self.max_iterations)
                .gradient_tolerance(self.gradient_tolerance)
                .fit(&ds)
                .map_err(fit_err)?;
            let mut weights = vec![vec![0.0; t.d]; k];
            let mut intercepts = vec![-30.0; k];
            for (col, &class) in m.classes().iter().enumerate() {
                weights[class] = m.params().column(col).to_vec();
                intercepts[class] = m.intercept()[col];
            }
            Ok((weights, intercepts))
        }
    }
}

impl FittedLogistic {
    /// Probabilities for one raw input row into `out` (1 or k values). No allocation.
    pub fn predict_into(&self, x: &[f64], out: &mut [f64]) {
        for (c, o) in out.iter_mut().enumerate() {
            let w = &self.weights[c];
            let mut z = self.intercepts[c];
            for (j, v) in x.iter().enumerate() {
                z += w[j] * self.standardizer.apply(j, *v);
            }
            *o = z;
        }
        finish(out);
    }

    /// Mean log loss on `rows` of `t`: binary through [`metrics::log_loss`]; multinomial
    /// of the labelled class, rows without one of the model's classes skipped. Infinite
    /// without rows.
    pub fn log_loss(&self, t: &Table, rows: &[usize]) -> f64 {
        let k = self.weights.len();
        let mut x = vec![0.0; t.d];
        let mut p = vec![0.0; k];
        let mut predict = |i: usize, p: &mut [f64]| {
            t.row_into(i, &mut x);
            self.predict_into(&x, p);
        };
        if k == 1 {
            let (mut ps, mut ys) = (Vec::with_capacity(rows.len()), Vec::new());
            for &i in rows {
                predict(i, &mut p);
                ps.push(p[0]);
                ys.push(t.y[i]);
            }
            return if ps.is_empty() {
                f64::INFINITY
            } else {
                metrics::log_loss(&ps, &ys)
            };
        }
        let (mut sum, mut n) = (0.0, 0usize);
        for &i in rows {
            let y = t.y[i];
            if !(y >= 0.0 && (y as usize) < k) {
                continue;
            }
            predict(i, &mut p);
            sum -= p[y as usize].clamp(1e-15, 1.0).ln();
            n += 1;
        }
        if n == 0 {
            f64::INFINITY
        } else {
            sum / n as f64
        }
    }
}

/// Turns logits into probabilities in place: sigmoid for one output, softmax for several.
pub fn finish(out: &mut [f64]) {
    if out.len() == 1 {
        out[0] = 1.0 / (1.0 + (-out[0]).exp());
    } else {
        let m = out.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut s = 0.0;
        for o in out.iter_mut() {
            *o = (*o - m).exp();
            s += *o;
        }
        for o in out.iter_mut() {
            *o /= s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::Task;
    use crate::models::data::{Part, RawRow};
    use crate::models::schema::FeatureSchema;
    use rand::{Rng, SeedableRng};

    /// 600 training and 400 tune rows: one informative input among 30 noise inputs, few
    /// rows per input, so a stronger penalty generalises better than a weak one.
    fn table() -> Table {
        let d = 31;
        let schema = FeatureSchema::new((0..d).map(|j| format!("x{j}")).collect(), Vec::new());
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let data: Vec<(Vec<f64>, f64, Part)> = (0..1000)
            .map(|i| {
                let x: Vec<f64> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
                let p = 1.0 / (1.0 + (-(0.8 * x[0])).exp());
                let y = if rng.random_bool(p) { 1.0 } else { 0.0 };
                (x, y, if i < 600 { Part::Train } else { Part::Tune })
            })
            .collect();
        let rows: Vec<RawRow<'_>> = data
            .iter()
            .map(|(x, y, part)| RawRow {
                customer_id: "c",
                numeric: x,
                categorical: &[],
                label: *y,
                part: *part,
            })
            .collect();
        Table::from_rows(Task::Churn, &schema, &rows).unwrap()
    }

    #[test]
    fn the_penalty_is_the_grid_value_with_the_lowest_tune_loss() {
        let t = table();
        let (train, tune) = (t.rows(Part::Train), t.rows(Part::Tune));
        let grid = vec![0.01, 30.0, 1e6];
        let m = LogisticTrainer {
            alpha_grid: grid.clone(),
            ..Default::default()
        }
        .fit(&t, &train, &tune)
        .unwrap();
        let tried: Vec<f64> = m.alpha_losses.iter().map(|(a, _)| *a).collect();
        assert_eq!(tried, grid);
        let best = m
            .alpha_losses
            .iter()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        assert_eq!(m.alpha, Some(best.0));
        assert!((m.log_loss(&t, &tune) - best.1).abs() < 1e-12);
        // 1e6 shrinks every weight to ~0 and 0.01 overfits the noise: neither wins here
        assert_eq!(m.alpha, Some(30.0), "{:?}", m.alpha_losses);
        // a fixed penalty fits once and is kept as given
        let fixed = LogisticTrainer {
            alpha: Some(1e6),
            ..Default::default()
        }
        .fit(&t, &train, &tune)
        .unwrap();
        assert_eq!((fixed.alpha, fixed.alpha_losses.len()), (Some(1e6), 0));
        assert!(fixed.weights[0].iter().all(|w| w.abs() < 1e-3));
    }

    #[test]
    fn a_bad_penalty_or_an_empty_grid_is_refused_by_name() {
        let t = table();
        let (train, tune) = (t.rows(Part::Train), t.rows(Part::Tune));
        let cases = [
            (
                Some(-1.0),
                vec![1.0],
                "logistic.alpha must be finite and ≥ 0, got -1",
            ),
            (None, vec![], "logistic.alpha_grid is empty"),
            (
                None,
                vec![1.0, f64::NAN],
                "logistic.alpha_grid must be finite and ≥ 0, got NaN",
            ),
        ];
        for (alpha, alpha_grid, want) in cases {
            let e = LogisticTrainer {
                alpha,
                alpha_grid,
                ..Default::default()
            }
            .fit(&t, &train, &tune)
            .unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
        }
    }
}
