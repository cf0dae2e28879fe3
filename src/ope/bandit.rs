//! Logged-bandit tables from any system: one row per logged decision with numeric context
//! columns, the action taken, its position (optional), the reward and the logging
//! policy's propensity. [`import_csv`] maps a CSV's columns onto that shape and refuses a
//! file with bad rows, naming them; [`learn_and_evaluate`] learns a greedy policy from the
//! first half of the log (a ridge reward model per action, optionally weighted by
//! 1 / propensity) and estimates its value on the second half with every estimator,
//! against the logging policy's own value there.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type, Schema};
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use super::estimators::{Logged, OpeReport, OpeSettings, estimate};
use crate::error::{Error, Result};

/// The fixed columns of a bandit table (the context columns come first).
pub const ACTION: &str = "action";
pub const POSITION: &str = "position";
pub const REWARD: &str = "reward";
pub const PROPENSITY: &str = "propensity";
/// Optional: the actions that could have been taken, `|`-separated (null: every action).
pub const CANDIDATES: &str = "candidates";

/// Which CSV columns hold what.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mapping {
    pub action: String,
    pub reward: String,
    pub propensity: String,
    pub position: Option<String>,
    /// Context feature columns; empty: every other column.
    pub context: Vec<String>,
}

/// At most this many bad rows are listed in an error.
const SHOW: usize = 5;

/// Reads `path` (CSV with a header) into a bandit table. A file with a missing column,
/// or any row with a non-numeric context, reward or propensity, a propensity outside
/// (0, 1] or an empty action, is refused whole; the error lists the first bad rows (1 =
/// the first data line) with the column and the reason.
pub fn import_csv(path: &Path, m: &Mapping) -> Result<RecordBatch> {
    let mut rdr = csv::Reader::from_path(path)
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?
        .iter()
        .map(str::to_string)
        .collect();
    let find = |c: &str| {
        headers.iter().position(|h| h == c).ok_or_else(|| {
            Error::Invalid(format!(
                "{}: no column `{c}` (the file has {})",
                path.display(),
                headers.join(", ")
            ))
        })
    };
    let ia = find(&m.action)?;
    let ir = find(&m.reward)?;
    let ip = find(&m.propensity)?;
    let ipos = m.position.as_deref().map(find).transpose()?;
    let context: Vec<usize> = if m.context.is_empty() {
        (0..headers.len())
            .filter(|i| ![Some(ia), Some(ir), Some(ip), ipos].contains(&Some(*i)))
            .collect()
    } else {
        m.context.iter().map(|c| find(c)).collect::<Result<_>>()?
    };
    let mut ctx: Vec<Vec<f64>> = vec![Vec::new(); context.len()];
    let (mut action, mut reward, mut prop, mut pos) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut bad = Vec::new();
    for (n, rec) in rdr.records().enumerate() {
        let row = n + 1;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                bad.push(format!("row {row}: {e}"));
                continue;
            }
        };
        let cell = |i: usize| rec.get(i).unwrap_or("").trim();
        let mut num = |i: usize, what: &str| -> Option<f64> {
            match cell(i).parse::<f64>() {
                Ok(x) if x.is_finite() => Some(x),
                _ => {
                    bad.push(format!(
                        "row {row}, column `{}`: `{}` is not a number ({what})",
                        headers[i],
                        cell(i)
                    ));
                    None
                }
            }
        };
        let r = num(ir, "reward");
        let p = num(ip, "propensity");
        let xs: Vec<Option<f64>> = context.iter().map(|&i| num(i, "context")).collect();
        let position = ipos.map(|i| num(i, "position"));
        if let Some(p) = p
            && !(p > 0.0 && p <= 1.0)
        {
            bad.push(format!(
                "row {row}, column `{}`: propensity {p} is not in (0, 1]",
                headers[ip]
            ));
        }
        let a = cell(ia).to_string();
        if a.is_empty() {
            bad.push(format!("row {row}, column `{}`: empty action", headers[ia]));
        }
        if let (Some(r), Some(p)) = (r, p) {
            reward.push(r);
            prop.push(p);
        }
        action.push(a);
        for (k, x) in xs.into_iter().enumerate() {
            ctx[k].push(x.unwrap_or(f64::NAN));
        }
        pos.push(position.flatten().map(|x| x as i64));
    }
    if !bad.is_empty() {
        let more = bad.len().saturating_sub(SHOW);
        bad.truncate(SHOW);
        return Err(Error::Invalid(format!(
            "{}: {} bad row(s), nothing imported: {}{}",
            path.display(),
            bad.len() + more,
            bad.join("; "),
            if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            }
        )));
    }
    if action.is_empty() {
        return Err(Error::Invalid(format!("{}: no data rows", path.display())));
    }
    let mut fields: Vec<Field> = context
        .iter()
        .map(|&i| Field::new(&headers[i], DataType::Float64, false))
        .collect();
    let mut cols: Vec<ArrayRef> = ctx
        .into_iter()
        .map(|v| Arc::new(Float64Array::from(v)) as ArrayRef)
        .collect();
    fields.push(Field::new(ACTION, DataType::Utf8, false));
    cols.push(Arc::new(StringArray::from(action)));
    fields.push(Field::new(POSITION, DataType::Int64, true));
    cols.push(Arc::new(Int64Array::from(pos)));
    fields.push(Field::new(REWARD, DataType::Float64, false));
    cols.push(Arc::new(Float64Array::from(reward)));
    fields.push(Field::new(PROPENSITY, DataType::Float64, false));
    cols.push(Arc::new(Float64Array::from(prop)));
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}

/// Whether a batch is a bandit table (has the fixed columns).
pub fn is_bandit_table(schema: &Schema) -> bool {
    [ACTION, REWARD, PROPENSITY]
        .iter()
        .all(|c| schema.index_of(c).is_ok())
}

/// A bandit table in memory.
#[derive(Debug, Clone)]
pub struct Table {
    pub context_names: Vec<String>,
    /// Row-major, `rows × context`.
    pub x: Array2<f64>,
    pub actions: Vec<String>,
    /// Index into `actions` per row.
    pub action: Vec<usize>,
    pub reward: Vec<f64>,
    pub propensity: Vec<f64>,
    /// Per row, the actions that were available (`None`: every action).
    pub available: Vec<Option<Vec<usize>>>,
}

impl Table {
    /// From bandit-table batches (every Float64-castable column other than the fixed ones
    /// is context).
    pub fn from_batches(batches: &[RecordBatch]) -> Result<Self> {
        let schema = batches
            .first()
            .map(|b| b.schema())
            .ok_or_else(|| Error::Invalid("the bandit table is empty".into()))?;
        if !is_bandit_table(&schema) {
            return Err(Error::Invalid(format!(
                "not a bandit table: it needs columns `{ACTION}`, `{REWARD}` and `{PROPENSITY}`"
            )));
        }
        let names: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| ![ACTION, POSITION, REWARD, PROPENSITY, CANDIDATES].contains(&n.as_str()))
            .collect();
        let mut t = Table {
            context_names: names.clone(),
            x: Array2::zeros((0, names.len())),
            actions: Vec::new(),
            action: Vec::new(),
            reward: Vec::new(),
            propensity: Vec::new(),
            available: Vec::new(),
        };
        let mut avail_names: Vec<Option<String>> = Vec::new();
        let mut flat = Vec::new();
        for b in batches {
            let f = |n: &str| -> Result<ArrayRef> {
                Ok(cast(
                    b.column_by_name(n)
                        .ok_or_else(|| Error::Invalid(format!("bandit table batch lacks `{n}`")))?,
                    &DataType::Float64,
                )?)
            };
            let ctx = names.iter().map(|n| f(n)).collect::<Result<Vec<_>>>()?;
            let r = f(REWARD)?;
            let p = f(PROPENSITY)?;
            let a = cast(b.column_by_name(ACTION).expect("checked"), &DataType::Utf8)?;
            let (r, p, a) = (
                r.as_primitive::<Float64Type>(),
                p.as_primitive::<Float64Type>(),
                a.as_string::<i32>(),
            );
            let cands = b
                .column_by_name(CANDIDATES)
                .map(|c| cast(c, &DataType::Utf8))
                .transpose()?;
            for i in 0..b.num_rows() {
                for c in &ctx {
                    let c = c.as_primitive::<Float64Type>();
                    flat.push(if c.is_valid(i) { c.value(i) } else { f64::NAN });
                }
                let name = a.value(i);
                let k = match t.actions.iter().position(|x| x == name) {
                    Some(k) => k,
                    None => {
                        t.actions.push(name.to_string());
                        t.actions.len() - 1
                    }
                };
                t.action.push(k);
                t.reward.push(r.value(i));
                t.propensity.push(p.value(i));
                avail_names.push(cands.as_ref().and_then(|c| {
                    let c = c.as_string::<i32>();
                    c.is_valid(i).then(|| c.value(i).to_string())
                }));
            }
        }
        for names in avail_names {
            let row = names.map(|n| {
                n.split('|')
                    .filter_map(|x| t.actions.iter().position(|a| a == x))
                    .collect::<Vec<_>>()
            });
            t.available.push(row.filter(|v| !v.is_empty()));
        }
        t.x = Array2::from_shape_vec((t.action.len(), names.len()), flat)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(t)
    }

    pub fn rows(&self) -> usize {
        self.action.len()
    }
}

/// A ridge regression of the reward per action on standardised context.
#[derive(Debug, Clone)]
pub struct RewardModel {
    mean: Array1<f64>,
    scale: Array1<f64>,
    /// Per action: intercept then one weight per context column.
    weights: Vec<Array1<f64>>,
}

impl RewardModel {
    /// Fits on `rows` of `t`; with `ipw`, each row is weighted by 1 / propensity.
    pub fn fit(t: &Table, rows: &[usize], ipw: bool, lambda: f64) -> Result<Self> {
        let d = t.x.ncols();
        let mut mean = Array1::zeros(d);
        let mut sq = Array1::zeros(d);
        let mut n = Array1::<f64>::zeros(d);
        for &i in rows {
            for j in 0..d {
                let v = t.x[[i, j]];
                if v.is_finite() {
                    mean[j] += v;
                    sq[j] += v * v;
                    n[j] += 1.0;
                }
            }
        }
        let mean = &mean / &n.mapv(|x: f64| x.max(1.0));
        let var = &sq / &n.mapv(|x: f64| x.max(1.0)) - &mean * &mean;
        let scale = var.mapv(|v: f64| if v > 1e-12 { v.sqrt() } else { 1.0 });
        let mut m = Self {
            mean,
            scale,
            weights: Vec::new(),
        };
        for a in 0..t.actions.len() {
            let mut xtx = Array2::<f64>::zeros((d + 1, d + 1));
            let mut xty = Array1::<f64>::zeros(d + 1);
            let mut z = Array1::<f64>::zeros(d + 1);
            for &i in rows.iter().filter(|&&i| t.action[i] == a) {
                m.encode(t, i, &mut z);
                let w = if ipw { 1.0 / t.propensity[i] } else { 1.0 };
                for p in 0..=d {
                    xty[p] += w * z[p] * t.reward[i];
                    for q in 0..=d {
                        xtx[[p, q]] += w * z[p] * z[q];
                    }
                }
            }
            for p in 1..=d {
                xtx[[p, p]] += lambda;
            }
            xtx[[0, 0]] += 1e-9;
            m.weights.push(solve(xtx, xty)?);
        }
        Ok(m)
    }

    fn encode(&self, t: &Table, i: usize, z: &mut Array1<f64>) {
        z[0] = 1.0;
        for j in 0..t.x.ncols() {
            let v = (t.x[[i, j]] - self.mean[j]) / self.scale[j];
            z[j + 1] = if v.is_finite() { v } else { 0.0 };
        }
    }

    /// Predicted reward of every action at row `i`.
    pub fn predict(&self, t: &Table, i: usize) -> Vec<f64> {
        let mut z = Array1::zeros(t.x.ncols() + 1);
        self.encode(t, i, &mut z);
        self.weights.iter().map(|w| w.dot(&z)).collect()
    }
}

/// Solves `a x = b` for symmetric positive definite `a` (Cholesky).
fn solve(mut a: Array2<f64>, mut b: Array1<f64>) -> Result<Array1<f64>> {
    let n = b.len();
    for j in 0..n {
        let mut s = a[[j, j]];
        for k in 0..j {
            s -= a[[j, k]] * a[[j, k]];
        }
        if s <= 0.0 {
            return Err(Error::Invalid(
                "the reward model's normal equations are singular; raise the ridge penalty".into(),
            ));
        }
        let d = s.sqrt();
        a[[j, j]] = d;
        for i in j + 1..n {
            let mut s = a[[i, j]];
            for k in 0..j {
                s -= a[[i, k]] * a[[j, k]];
            }
            a[[i, j]] = s / d;
        }
    }
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= a[[i, k]] * b[k];
        }
        b[i] = s / a[[i, i]];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= a[[k, i]] * b[k];
        }
        b[i] = s / a[[i, i]];
    }
    Ok(b)
}

/// What [`learn_and_evaluate`] found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearnReport {
    pub actions: Vec<String>,
    pub train_rows: usize,
    pub test_rows: usize,
    pub ipw: bool,
    /// How often the learned policy picks each action on the test rows.
    pub picks: Vec<(String, usize)>,
    /// The estimates on the test rows (`logged_value` is the logging policy's value there).
    pub report: OpeReport,
}

/// Learns the greedy policy `argmax_a r̂(x, a)` (over the row's available actions when
/// the table says which) on the first half of the rows and estimates
/// its value on the second half (the reward model for DM/DR is the one learned).
pub fn learn_and_evaluate(
    t: &Table,
    ipw: bool,
    lambda: f64,
    s: &OpeSettings,
) -> Result<LearnReport> {
    let n = t.rows();
    if n < 20 {
        return Err(Error::Invalid(format!(
            "the bandit log has {n} rows; learning needs at least 20"
        )));
    }
    let train: Vec<usize> = (0..n / 2).collect();
    let model = RewardModel::fit(t, &train, ipw, lambda)?;
    let mut picks = vec![0usize; t.actions.len()];
    let rows: Vec<Logged> = (n / 2..n)
        .map(|i| {
            let r = model.predict(t, i);
            let all: Vec<usize> = (0..r.len()).collect();
            let options = t.available.get(i).and_then(|x| x.as_ref()).unwrap_or(&all);
            let best = options
                .iter()
                .copied()
                .max_by(|a, b| r[*a].total_cmp(&r[*b]))
                .unwrap_or(t.action[i]);
            picks[best] += 1;
            Logged {
                propensity: t.propensity[i],
                reward: t.reward[i],
                target: f64::from(u8::from(best == t.action[i])),
                predicted: r[t.action[i]],
                direct: r[best],
                known_mass: 0.0,
            }
        })
        .collect();
    Ok(LearnReport {
        actions: t.actions.clone(),
        train_rows: train.len(),
        test_rows: rows.len(),
        ipw,
        picks: t.actions.iter().cloned().zip(picks).collect(),
        report: estimate(&rows, s)?,
    })
}

/// Reads the column `name` of a bandit batch as f64 values (tests and tools).
pub fn column_f64(b: &RecordBatch, name: &str) -> Option<Vec<f64>> {
    let c = cast(b.column_by_name(name)?, &DataType::Float64).ok()?;
    let c = c.as_primitive::<Float64Type>();
    Some((0..c.len()).map(|i| c.value(i)).collect())
}
