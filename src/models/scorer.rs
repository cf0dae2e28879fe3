//! A fitted model as the engine uses it: the feature schema, the learner and the
//! probability calibration, behind the object-safe [`Scorer`] trait.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type};
use serde::{Deserialize, Serialize};

use super::calibrate::Calibrator;
use super::gbdt::FittedGbdt;
use super::logistic::FittedLogistic;
use super::mlp::FittedMlp;
use super::schema::FeatureSchema;
use crate::error::{Error, Result};
use crate::features::Task;

/// Scores encoded feature vectors. Object safe, `Send + Sync`: the server holds an
/// `Arc<dyn Scorer>` and calls it from many threads.
pub trait Scorer: Send + Sync {
    /// The inputs the scorer expects, in order.
    fn schema(&self) -> &FeatureSchema;
    /// Output names: `["p"]` for a binary task, the class names for a multiclass one.
    fn outputs(&self) -> &[String];
    /// Scores one encoded row (`schema().width()` values, NaN = missing) into `out`
    /// (`outputs().len()` values). Allocates nothing.
    fn score_into(&self, x: &[f64], out: &mut [f64]) -> Result<()>;
    /// Scores variants of one binary-task row that differ only in one-hot inputs: variant
    /// `v` has the inputs `hot[v * per .. (v + 1) * per]` set to 1 (`usize::MAX` entries
    /// are skipped) on top of `x`, whose one-hot inputs are all 0. `out[v]` receives its
    /// probability. `x` is restored before returning. Models may share the work the
    /// variants have in common (a linear model computes the numeric part once).
    fn score_variants(
        &self,
        x: &mut [f64],
        hot: &[usize],
        per: usize,
        out: &mut [f64],
    ) -> Result<()> {
        let mut one = [0.0];
        for (v, o) in out.iter_mut().enumerate() {
            let idx = &hot[v * per..(v + 1) * per];
            idx.iter()
                .filter(|&&i| i != usize::MAX)
                .for_each(|&i| x[i] = 1.0);
            let r = self.score_into(x, &mut one);
            idx.iter()
                .filter(|&&i| i != usize::MAX)
                .for_each(|&i| x[i] = 0.0);
            r?;
            *o = one[0];
        }
        Ok(())
    }
    /// Scores every row of a record batch that has the schema's columns by name
    /// (numeric columns as numbers, categorical as text); `out` receives
    /// `rows × outputs` values, row-major.
    fn score_batch(&self, batch: &RecordBatch, out: &mut Vec<f64>) -> Result<()>;
}

/// Which learner produced a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LearnerKind {
    Logistic,
    Gbdt,
    Mlp,
}

impl LearnerKind {
    pub const ALL: [LearnerKind; 3] = [LearnerKind::Logistic, LearnerKind::Gbdt, LearnerKind::Mlp];

    pub fn as_str(self) -> &'static str {
        match self {
            LearnerKind::Logistic => "logistic",
            LearnerKind::Gbdt => "gbdt",
            LearnerKind::Mlp => "mlp",
        }
    }
}

impl std::str::FromStr for LearnerKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "logistic" => Ok(LearnerKind::Logistic),
            "gbdt" => Ok(LearnerKind::Gbdt),
            "mlp" => Ok(LearnerKind::Mlp),
            _ => Err(Error::Invalid(format!(
                "unknown learner `{s}` (logistic, gbdt, mlp)"
            ))),
        }
    }
}

/// The fitted learner.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "learner", rename_all = "snake_case")]
pub enum Fitted {
    Logistic(FittedLogistic),
    Gbdt(FittedGbdt),
    Mlp(FittedMlp),
}

impl Fitted {
    pub fn kind(&self) -> LearnerKind {
        match self {
            Fitted::Logistic(_) => LearnerKind::Logistic,
            Fitted::Gbdt(_) => LearnerKind::Gbdt,
            Fitted::Mlp(_) => LearnerKind::Mlp,
        }
    }

    /// Uncalibrated probabilities of one encoded row.
    pub fn predict_into(&self, x: &[f64], out: &mut [f64]) {
        match self {
            Fitted::Logistic(m) => m.predict_into(x, out),
            Fitted::Gbdt(m) => m.predict_into(x, out),
            Fitted::Mlp(m) => m.predict_into(x, out),
        }
    }
}

/// A fitted model: what `model.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Model {
    pub task: String,
    pub schema: FeatureSchema,
    /// Output names (see [`Scorer::outputs`]).
    pub outputs: Vec<String>,
    pub fitted: Fitted,
    /// Applied to the probability of binary models.
    pub calibrator: Calibrator,
}

impl Model {
    pub fn task(&self) -> Result<Task> {
        self.task.parse()
    }

    /// Calibrated probabilities of one encoded row.
    #[inline]
    pub fn predict_into(&self, x: &[f64], out: &mut [f64]) {
        self.fitted.predict_into(x, out);
        if out.len() == 1 {
            out[0] = self.calibrator.apply(out[0]);
        }
    }

    /// Predictions for rows of a table (row-major, `outputs` per row).
    pub fn predict_rows(&self, t: &super::data::Table, rows: &[usize]) -> Vec<f64> {
        let k = self.outputs.len();
        let mut out = vec![0.0; rows.len() * k];
        let mut x = vec![0.0; t.d];
        for (r, &i) in rows.iter().enumerate() {
            t.row_into(i, &mut x);
            self.predict_into(&x, &mut out[r * k..(r + 1) * k]);
        }
        out
    }

    pub fn into_scorer(self) -> Arc<dyn Scorer> {
        Arc::new(self)
    }
}

impl Scorer for Model {
    fn schema(&self) -> &FeatureSchema {
        &self.schema
    }

    fn outputs(&self) -> &[String] {
        &self.outputs
    }

    fn score_into(&self, x: &[f64], out: &mut [f64]) -> Result<()> {
        if x.len() != self.schema.width() || out.len() != self.outputs.len() {
            return Err(Error::Invalid(format!(
                "score: expected {} inputs and {} outputs, got {} and {}",
                self.schema.width(),
                self.outputs.len(),
                x.len(),
                out.len()
            )));
        }
        self.predict_into(x, out);
        Ok(())
    }

    fn score_variants(
        &self,
        x: &mut [f64],
        hot: &[usize],
        per: usize,
        out: &mut [f64],
    ) -> Result<()> {
        if x.len() != self.schema.width() || self.outputs.len() != 1 || hot.len() != out.len() * per
        {
            return Err(Error::Invalid(format!(
                "score_variants: expected {} inputs, a binary model and {} hot indices, got {} inputs, {} outputs, {} indices",
                self.schema.width(),
                out.len() * per,
                x.len(),
                self.outputs.len(),
                hot.len()
            )));
        }
        let Fitted::Logistic(m) = &self.fitted else {
            let mut one = [0.0];
            let d = x.len();
            for (v, o) in out.iter_mut().enumerate() {
                let idx = &hot[v * per..(v + 1) * per];
                idx.iter().filter(|&&i| i < d).for_each(|&i| x[i] = 1.0);
                self.predict_into(x, &mut one);
                idx.iter().filter(|&&i| i < d).for_each(|&i| x[i] = 0.0);
                *o = one[0];
            }
            return Ok(());
        };
        // z(variant) = z(x) + Σ_hot w_j (std_j(1) − std_j(0)) = z(x) + Σ_hot w_j / scale_j
        let w = &m.weights[0];
        let st = &m.standardizer;
        let mut base = m.intercepts[0];
        for (j, v) in x.iter().enumerate() {
            base += w[j] * st.apply(j, *v);
        }
        for (v, o) in out.iter_mut().enumerate() {
            let mut z = base;
            for &i in &hot[v * per..(v + 1) * per] {
                if i < x.len() {
                    z += w[i] / st.scale[i];
                }
            }
            *o = self.calibrator.apply(1.0 / (1.0 + (-z).exp()));
        }
        Ok(())
    }

    fn score_batch(&self, batch: &RecordBatch, out: &mut Vec<f64>) -> Result<()> {
        let n = batch.num_rows();
        let k = self.outputs.len();
        let missing = |c: &str| Error::Invalid(format!("score: the batch has no column `{c}`"));
        let numeric = self
            .schema
            .numeric
            .iter()
            .map(|c| {
                let col = batch.column_by_name(c).ok_or_else(|| missing(c))?;
                let col = arrow::compute::cast(col, &DataType::Float64).map_err(|_| {
                    Error::Invalid(format!(
                        "score: column `{c}` has type {}, expected a number",
                        col.data_type()
                    ))
                })?;
                Ok(col)
            })
            .collect::<Result<Vec<_>>>()?;
        let cats = self
            .schema
            .categorical
            .iter()
            .map(|c| {
                let col = batch
                    .column_by_name(&c.column)
                    .ok_or_else(|| missing(&c.column))?;
                Ok(arrow::compute::cast(col, &DataType::Utf8)?)
            })
            .collect::<Result<Vec<_>>>()?;
        let nums: Vec<_> = numeric
            .iter()
            .map(|c| c.as_primitive::<Float64Type>())
            .collect();
        let strs: Vec<_> = cats.iter().map(|c| c.as_string::<i32>()).collect();
        out.clear();
        out.resize(n * k, 0.0);
        let mut x = vec![0.0; self.schema.width()];
        let mut cat_values: Vec<Option<&str>> = vec![None; strs.len()];
        for i in 0..n {
            for (j, a) in nums.iter().enumerate() {
                x[j] = if a.is_null(i) { f64::NAN } else { a.value(i) };
            }
            for (c, a) in strs.iter().enumerate() {
                cat_values[c] = (!a.is_null(i)).then(|| a.value(i));
            }
            self.schema.encode_categorical(&cat_values, &mut x);
            self.predict_into(&x, &mut out[i * k..(i + 1) * k]);
        }
        Ok(())
    }
}
