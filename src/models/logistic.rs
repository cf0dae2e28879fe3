//! Logistic regression with linfa-logistic (binary, or multinomial for the channel task),
//! on inputs standardised with means and scales learned on the training rows.

use linfa::prelude::*;
use linfa_logistic::{LogisticRegression, MultiLogisticRegression};
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use super::data::Table;
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
    /// L2 penalty on the weights (linfa's `alpha`). Default 1.0.
    pub alpha: f64,
    /// L-BFGS iterations at most. Default 200.
    pub max_iterations: u64,
    /// Gradient norm at which L-BFGS stops. Default 1e-4.
    pub gradient_tolerance: f64,
}

impl Default for LogisticTrainer {
    fn default() -> Self {
        Self {
            alpha: 1.0,
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
}

impl LogisticTrainer {
    pub fn fit(&self, t: &Table, rows: &[usize]) -> Result<FittedLogistic> {
        if self.alpha.is_nan() || self.alpha < 0.0 {
            return Err(Error::Invalid(format!(
                "logistic.alpha must be ≥ 0, got {}",
                self.alpha
            )));
        }
        let st = Standardizer::fit(t, rows);
        let x = st.matrix(t, rows);
        let fit_err =
            |e: linfa_logistic::error::Error| Error::Data(format!("logistic regression: {e}"));
        if t.outputs() == 1 {
            let y: Array1<usize> = rows.iter().map(|&i| t.y[i] as usize).collect();
            if y.iter().all(|v| *v == y[0]) {
                return Err(Error::Data(
                    "logistic regression: the training rows have a single label".into(),
                ));
            }
            let ds = Dataset::new(x, y);
            let m = LogisticRegression::default()
                .alpha(self.alpha)
                .max_iterations(self.max_iterations)
                .gradient_tolerance(self.gradient_tolerance)
                .fit(&ds)
                .map_err(fit_err)?;
            // linfa's "positive" class is not necessarily label 1 (it depends on the label
            // counts); orient the weights so that the model gives P(label = 1).
            let sign = if m.labels().pos.class == 1 { 1.0 } else { -1.0 };
            Ok(FittedLogistic {
                standardizer: st,
                weights: vec![m.params().iter().map(|w| sign * w).collect()],
                intercepts: vec![sign * m.intercept()],
            })
        } else {
            let k = t.outputs();
            let keep: Vec<usize> = (0..rows.len())
                .filter(|&r| (t.y[rows[r]] as usize) < k)
                .collect();
            let x = x.select(ndarray::Axis(0), &keep);
            let y: Array1<usize> = keep.iter().map(|&r| t.y[rows[r]] as usize).collect();
            let ds = Dataset::new(x, y);
            let m = MultiLogisticRegression::default()
                .alpha(self.alpha)
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
            Ok(FittedLogistic {
                standardizer: st,
                weights,
                intercepts,
            })
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
