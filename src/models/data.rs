//! Training sets (from `baton dataset`) as dense matrices for the learners.
//!
//! Rows of the `train` split fit the model. Rows of the `validation` split (the last
//! cutoff, later than every training row) are divided by customer into two halves:
//! `tune` (early stopping, choosing and fitting probability calibration) and `test` (every
//! reported metric). So no number in a report was used to fit or to choose anything.

use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type};

use super::schema::FeatureSchema;
use crate::clv::ClvInputs;
use crate::error::{Error, Result};
use crate::features::Task;
use crate::store::read_parquet;

/// Which part of the data a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Train,
    Tune,
    Test,
}

/// One row for [`Table::from_rows`].
#[derive(Debug, Clone, Copy)]
pub struct RawRow<'a> {
    pub customer_id: &'a str,
    pub numeric: &'a [f64],
    pub categorical: &'a [&'a str],
    pub label: f64,
    pub part: Part,
}

/// A training set as a dense column-major matrix with labels.
#[derive(Debug, Clone)]
pub struct Table {
    pub task: Task,
    /// Rows.
    pub n: usize,
    /// Encoded inputs (the schema's width).
    pub d: usize,
    /// Column-major inputs: `x[j * n + i]`; missing is NaN.
    pub x: Vec<f64>,
    /// Labels: 0/1 for binary tasks, the class index for channel.
    pub y: Vec<f64>,
    /// Class names (channel task), in label-index order; `["0", "1"]` for binary tasks.
    pub classes: Vec<String>,
    pub part: Vec<Part>,
    pub customer_id: Vec<String>,
    /// Response task: the action of each row (per-action AUC).
    pub action_id: Option<Vec<String>>,
    /// Simulator truth where the data has it: binary tasks the true probability of the
    /// label; channel task the hidden session affinities for `oracle_classes` (row-major).
    pub oracle: Option<Vec<f64>>,
    pub oracle_classes: Vec<String>,
    /// The customer-value fit of the training set (its Parquet metadata, see
    /// [`crate::features::clv_inputs_of`]); a model trained on the table keeps it.
    pub clv: Option<ClvInputs>,
}

/// The oracle column that matches a binary task's label.
fn oracle_column(task: Task, label_kind: &str) -> Option<&'static str> {
    match (task, label_kind) {
        (Task::Churn, _) => Some("oracle_p_no_purchase_30d"),
        (Task::Response, "conversion") => Some("oracle_p_convert"),
        (Task::Response, _) => Some("oracle_p_click"),
        (Task::Channel, _) => None,
    }
}

fn f64_column(batch: &RecordBatch, name: &str, path: &Path) -> Result<Option<Vec<f64>>> {
    let Some(col) = batch.column_by_name(name) else {
        return Ok(None);
    };
    let col = match col.data_type() {
        DataType::Float64 => col.clone(),
        t if t.is_numeric() || *t == DataType::Boolean => {
            arrow::compute::cast(col, &DataType::Float64)?
        }
        t => {
            return Err(Error::Contract {
                path: path.to_path_buf(),
                message: format!("column `{name}` has type {t}, expected a number"),
            });
        }
    };
    let a = col.as_primitive::<Float64Type>();
    Ok(Some(
        (0..a.len())
            .map(|i| if a.is_null(i) { f64::NAN } else { a.value(i) })
            .collect(),
    ))
}

fn str_column(batch: &RecordBatch, name: &str, path: &Path) -> Result<Option<Vec<Option<String>>>> {
    let Some(col) = batch.column_by_name(name) else {
        return Ok(None);
    };
    let col = arrow::compute::cast(col, &DataType::Utf8).map_err(|_| Error::Contract {
        path: path.to_path_buf(),
        message: format!("column `{name}` is not text"),
    })?;
    let a = col.as_string::<i32>();
    Ok(Some(
        (0..a.len())
            .map(|i| (!a.is_null(i)).then(|| a.value(i).to_string()))
            .collect(),
    ))
}

/// Stable split of validation customers into tune and test halves.
pub(crate) fn is_tune(customer_id: &str) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in customer_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h.rotate_right(17) & 1 == 0
}

impl Table {
    /// Reads a training set and encodes it with `schema`. For the channel task `classes`
    /// fixes the class order (a fitted model's); `None` takes the labels seen in training.
    pub fn load(
        path: &Path,
        task: Task,
        schema: &FeatureSchema,
        classes: Option<&[String]>,
    ) -> Result<Table> {
        let (schema_of_file, batches) = read_parquet(path)?;
        if batches.is_empty() {
            return Err(Error::Data(format!(
                "{}: the training set has no rows",
                path.display()
            )));
        }
        // the file's schema: it holds the metadata (the customer-value fit)
        let batch = arrow::compute::concat_batches(&schema_of_file, &batches)?;
        Self::from_batch(&batch, path, task, schema, classes)
    }

    /// As [`Table::load`], from a record batch (`path` names it in errors).
    pub fn from_batch(
        batch: &RecordBatch,
        path: &Path,
        task: Task,
        schema: &FeatureSchema,
        classes: Option<&[String]>,
    ) -> Result<Table> {
        let n = batch.num_rows();
        if n == 0 {
            return Err(Error::Data(format!(
                "{}: the training set has no rows",
                path.display()
            )));
        }
        let contract = |message: String| Error::Contract {
            path: path.to_path_buf(),
            message,
        };
        let need = |name: &str| {
            contract(format!(
                "column `{name}` is missing; is this a `{}` training set from `baton dataset`?",
                format!("{task:?}").to_lowercase()
            ))
        };
        // The task check: response sets have action_id, channel sets have a text label.
        let label_is_text = batch.column_by_name("label").map(|c| {
            matches!(
                c.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            )
        });
        match (task, label_is_text) {
            (_, None) => return Err(need("label")),
            (Task::Channel, Some(false)) => {
                return Err(contract(
                    "`label` is numeric, so this is not a channel training set".into(),
                ));
            }
            (Task::Churn | Task::Response, Some(true)) => {
                return Err(contract(format!(
                    "`label` is text (a channel training set), not a {} training set",
                    format!("{task:?}").to_lowercase()
                )));
            }
            _ => {}
        }
        if task == Task::Response && batch.column_by_name("action_id").is_none() {
            return Err(contract(
                "no `action_id` column, so this is not a response training set".into(),
            ));
        }
        if task == Task::Churn && batch.column_by_name("action_id").is_some() {
            return Err(contract(
                "it has an `action_id` column (a response training set), not a churn one".into(),
            ));
        }

        let d = schema.width();
        let mut x = vec![f64::NAN; n * d];
        for (j, name) in schema.numeric.iter().enumerate() {
            let v = f64_column(batch, name, path)?.ok_or_else(|| need(name))?;
            x[j * n..(j + 1) * n].copy_from_slice(&v);
        }
        let mut at = schema.numeric.len();
        for c in &schema.categorical {
            let v = str_column(batch, &c.column, path)?.ok_or_else(|| need(&c.column))?;
            for (k, value) in c.values.iter().enumerate() {
                let col = &mut x[(at + k) * n..(at + k + 1) * n];
                for (i, s) in v.iter().enumerate() {
                    col[i] = if s.as_deref() == Some(value.as_str()) {
                        1.0
                    } else {
                        0.0
                    };
                }
            }
            at += c.values.len();
        }

        let customer_id: Vec<String> = str_column(batch, "customer_id", path)?
            .ok_or_else(|| need("customer_id"))?
            .into_iter()
            .map(|s| s.unwrap_or_default())
            .collect();
        let split = str_column(batch, "split", path)?.ok_or_else(|| need("split"))?;
        let part: Vec<Part> = split
            .iter()
            .zip(&customer_id)
            .map(|(s, c)| match s.as_deref() {
                Some("train") => Part::Train,
                _ if is_tune(c) => Part::Tune,
                _ => Part::Test,
            })
            .collect();

        let (y, classes, oracle, oracle_classes) = match task {
            Task::Channel => {
                let labels = str_column(batch, "label", path)?.ok_or_else(|| need("label"))?;
                let classes: Vec<String> = match classes {
                    Some(c) => c.to_vec(),
                    None => {
                        let mut c: Vec<String> = labels
                            .iter()
                            .zip(&part)
                            .filter(|(_, p)| **p == Part::Train)
                            .filter_map(|(l, _)| l.clone())
                            .collect();
                        c.sort();
                        c.dedup();
                        c
                    }
                };
                if classes.len() < 2 {
                    return Err(Error::Data(format!(
                        "{}: the channel task needs at least two channels in the training rows, found {:?}",
                        path.display(),
                        classes
                    )));
                }
                // A label outside the classes (a channel never seen in training) cannot be
                // predicted; such rows get the label index `classes.len()`, which every
                // metric counts as a miss.
                let y = labels
                    .iter()
                    .map(|l| {
                        l.as_ref()
                            .and_then(|l| classes.iter().position(|c| c == l))
                            .unwrap_or(classes.len()) as f64
                    })
                    .collect();
                let oc: Vec<String> = ["web", "app", "store"]
                    .iter()
                    .filter(|c| {
                        batch
                            .column_by_name(&format!("oracle_affinity_{c}"))
                            .is_some()
                    })
                    .map(|c| c.to_string())
                    .collect();
                let oracle = if oc.is_empty() {
                    None
                } else {
                    let cols = oc
                        .iter()
                        .map(|c| f64_column(batch, &format!("oracle_affinity_{c}"), path))
                        .collect::<Result<Vec<_>>>()?;
                    let mut o = vec![f64::NAN; n * oc.len()];
                    for (k, col) in cols.into_iter().enumerate() {
                        let col = col.unwrap_or_default();
                        for i in 0..n {
                            o[i * oc.len() + k] = col[i];
                        }
                    }
                    Some(o)
                };
                (y, classes, oracle, oc)
            }
            Task::Churn | Task::Response => {
                let y = f64_column(batch, "label", path)?.ok_or_else(|| need("label"))?;
                if let Some(i) = y.iter().position(|v| *v != 0.0 && *v != 1.0) {
                    return Err(contract(format!(
                        "row {}: `label` is {}, expected 0 or 1",
                        i + 1,
                        y[i]
                    )));
                }
                let oracle = match oracle_column(task, "click") {
                    Some(c) => f64_column(batch, c, path)?,
                    None => None,
                };
                (y, vec!["0".into(), "1".into()], oracle, Vec::new())
            }
        };
        let action_id = if task == Task::Response {
            Some(
                str_column(batch, "action_id", path)?
                    .unwrap_or_default()
                    .into_iter()
                    .map(|s| s.unwrap_or_default())
                    .collect(),
            )
        } else {
            None
        };
        Ok(Table {
            task,
            n,
            d,
            x,
            y,
            classes,
            part,
            customer_id,
            action_id,
            oracle,
            oracle_classes,
            clv: crate::features::clv_inputs_of(&batch.schema(), path)?,
        })
    }

    /// A table from rows already in the schema's terms: the numeric inputs in
    /// [`FeatureSchema::numeric`] order (NaN: missing) and one value per categorical input
    /// (one-hot encoded here; a value the schema does not list encodes as all zeros).
    pub fn from_rows(task: Task, schema: &FeatureSchema, rows: &[RawRow<'_>]) -> Result<Table> {
        let n = rows.len();
        let d = schema.width();
        let mut x = vec![f64::NAN; n * d];
        for (i, r) in rows.iter().enumerate() {
            if r.numeric.len() != schema.numeric.len()
                || r.categorical.len() != schema.categorical.len()
            {
                return Err(Error::Invalid(format!(
                    "row {}: {} numeric and {} categorical values, the schema has {} and {}",
                    i + 1,
                    r.numeric.len(),
                    r.categorical.len(),
                    schema.numeric.len(),
                    schema.categorical.len()
                )));
            }
            for (j, v) in r.numeric.iter().enumerate() {
                x[j * n + i] = *v;
            }
            let mut at = schema.numeric.len();
            for (c, value) in schema.categorical.iter().zip(r.categorical) {
                for (k, v) in c.values.iter().enumerate() {
                    x[(at + k) * n + i] = if v == value { 1.0 } else { 0.0 };
                }
                at += c.values.len();
            }
        }
        Ok(Table {
            task,
            n,
            d,
            x,
            y: rows.iter().map(|r| r.label).collect(),
            classes: vec!["0".into(), "1".into()],
            part: rows.iter().map(|r| r.part).collect(),
            customer_id: rows.iter().map(|r| r.customer_id.to_string()).collect(),
            action_id: (task == Task::Response).then(|| {
                rows.iter()
                    .map(|r| {
                        r.categorical
                            .first()
                            .map_or(String::new(), |a| a.to_string())
                    })
                    .collect()
            }),
            oracle: None,
            oracle_classes: Vec::new(),
            clv: schema.clv.clone(),
        })
    }

    /// Appends `other`'s rows (the same task, width and classes); oracle values missing on
    /// one side are NaN.
    pub fn append(&mut self, other: Table) -> Result<()> {
        if other.task != self.task || other.d != self.d || other.classes != self.classes {
            return Err(Error::Invalid(format!(
                "cannot append a {:?} table of width {} to a {:?} table of width {}",
                other.task, other.d, self.task, self.d
            )));
        }
        let (n, m) = (self.n, other.n);
        let mut x = Vec::with_capacity((n + m) * self.d);
        for j in 0..self.d {
            x.extend_from_slice(&self.x[j * n..(j + 1) * n]);
            x.extend_from_slice(&other.x[j * m..(j + 1) * m]);
        }
        self.x = x;
        self.oracle = match (self.oracle.take(), other.oracle) {
            (None, None) => None,
            (a, b) => {
                let width =
                    |o: &Option<Vec<f64>>, rows: usize| o.as_ref().map(|v| v.len() / rows.max(1));
                let k = width(&a, n).or(width(&b, m)).unwrap_or(1);
                let mut v = a.unwrap_or_else(|| vec![f64::NAN; n * k]);
                v.extend(b.unwrap_or_else(|| vec![f64::NAN; m * k]));
                Some(v)
            }
        };
        self.y.extend(other.y);
        self.part.extend(other.part);
        self.customer_id.extend(other.customer_id);
        if let (Some(a), Some(b)) = (&mut self.action_id, other.action_id) {
            a.extend(b);
        }
        self.n = n + m;
        Ok(())
    }

    /// Row indices of a part.
    pub fn rows(&self, part: Part) -> Vec<usize> {
        (0..self.n).filter(|&i| self.part[i] == part).collect()
    }

    /// The inputs of row `i` into `out` (length `d`).
    pub fn row_into(&self, i: usize, out: &mut [f64]) {
        for (j, o) in out.iter_mut().enumerate() {
            *o = self.x[j * self.n + i];
        }
    }

    /// A column-major sub-matrix of the given rows.
    pub fn select(&self, rows: &[usize]) -> Vec<f64> {
        let m = rows.len();
        let mut out = vec![0.0; m * self.d];
        for j in 0..self.d {
            let src = &self.x[j * self.n..(j + 1) * self.n];
            let dst = &mut out[j * m..(j + 1) * m];
            for (o, &i) in dst.iter_mut().zip(rows) {
                *o = src[i];
            }
        }
        out
    }

    /// Number of classes the model outputs (1 for binary tasks).
    pub fn outputs(&self) -> usize {
        match self.task {
            Task::Channel => self.classes.len(),
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::schema::Categorical;

    fn schema() -> FeatureSchema {
        FeatureSchema::new(
            vec!["a".into(), "b".into()],
            vec![Categorical {
                column: "action_id".into(),
                values: vec!["x".into(), "y".into()],
            }],
        )
    }

    fn row<'a>(id: &'a str, numeric: &'a [f64], cat: &'a [&'a str], label: f64) -> RawRow<'a> {
        RawRow {
            customer_id: id,
            numeric,
            categorical: cat,
            label,
            part: Part::Train,
        }
    }

    #[test]
    fn rows_encode_one_hot_and_tables_append_column_by_column() {
        let s = schema();
        let mut t = Table::from_rows(
            Task::Response,
            &s,
            &[
                row("c1", &[1.0, 2.0], &["x"], 1.0),
                row("c2", &[3.0, f64::NAN], &["y"], 0.0),
            ],
        )
        .unwrap();
        let mut x = vec![0.0; 4];
        t.row_into(1, &mut x);
        assert_eq!(&x[..1], &[3.0]);
        assert!(x[1].is_nan());
        assert_eq!(&x[2..], &[0.0, 1.0]);
        let more = Table::from_rows(
            Task::Response,
            &s,
            &[row("c3", &[5.0, 6.0], &["unknown"], 1.0)],
        )
        .unwrap();
        t.append(more).unwrap();
        assert_eq!((t.n, t.y.clone()), (3, vec![1.0, 0.0, 1.0]));
        t.row_into(0, &mut x);
        assert_eq!(x, [1.0, 2.0, 1.0, 0.0]);
        t.row_into(2, &mut x);
        assert_eq!(x, [5.0, 6.0, 0.0, 0.0]);
        assert_eq!(t.action_id.as_deref().unwrap()[2], "unknown");
        assert_eq!(t.customer_id, ["c1", "c2", "c3"]);
        // a row of the wrong width is refused, naming it
        let e = Table::from_rows(Task::Response, &s, &[row("c", &[1.0], &["x"], 0.0)]).unwrap_err();
        assert!(e.to_string().contains("row 1"), "{e}");
    }
}
