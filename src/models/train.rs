//! Training and evaluation: fit a learner on the train rows, choose calibration on the
//! tune rows, measure everything on the test rows, next to the oracle where the data has
//! one, and rank inputs by permutation importance.

use std::time::Instant;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::calibrate::Calibrator;
use super::data::{Part, Table};
use super::gbdt::GbdtTrainer;
use super::logistic::LogisticTrainer;
use super::metrics::{
    BinaryMetrics, CalibrationBin, MulticlassMetrics, calibration_bins, oracle_ratio, pr_curve,
    roc_auc, roc_curve,
};
use super::mlp::MlpTrainer;
use super::schema::FeatureSchema;
use super::scorer::{Fitted, LearnerKind, Model};
use crate::error::{Error, Result};
use crate::features::Task;

/// Everything that decides how a model is trained (saved as the version's `config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Which learner to fit. Default gbdt.
    pub learner: LearnerKind,
    pub logistic: LogisticTrainer,
    pub gbdt: GbdtTrainer,
    pub mlp: MlpTrainer,
    /// Test rows used for permutation importance (a seeded sample). Default 5000.
    pub importance_rows: usize,
    /// Seed of everything random in training (overrides the learners' seeds). Default 42.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            learner: LearnerKind::Gbdt,
            logistic: LogisticTrainer::default(),
            gbdt: GbdtTrainer::default(),
            mlp: MlpTrainer::default(),
            importance_rows: 5000,
            seed: 42,
        }
    }
}

/// Progress of a training run, for progress bars.
#[derive(Debug, Clone)]
pub enum TrainEvent {
    /// A phase starts (`fit`, `calibrate`, `evaluate`, `importance`).
    Phase(&'static str),
    /// An MLP epoch ended: epoch, of at most, train loss, tune loss.
    Epoch(usize, usize, f64, f64),
    /// A GBDT booster finished: k of n.
    Booster(usize, usize),
}

/// A curve point.
pub type Point = (f64, f64);

/// Per-action AUC of the response task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionAuc {
    pub action_id: String,
    pub rows: usize,
    pub positive_rate: f64,
    pub auc: Option<f64>,
    pub oracle_auc: Option<f64>,
}

/// What `metrics.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub task: String,
    pub learner: LearnerKind,
    pub rows_train: usize,
    pub rows_tune: usize,
    pub rows_test: usize,
    pub fit_seconds: f64,
    /// The calibration method chosen, and each method's cross-fitted tune log loss.
    pub calibration: String,
    pub calibration_losses: Vec<(String, f64)>,
    /// The headline ranking metric: ROC-AUC (binary) or mean one-vs-rest AUC over the
    /// classes the oracle covers (channel).
    pub auc: Option<f64>,
    pub oracle_auc: Option<f64>,
    /// `(auc − 0.5) / (oracle_auc − 0.5)`.
    pub oracle_ratio: Option<f64>,
    pub binary: Option<BinaryMetrics>,
    pub oracle_binary: Option<BinaryMetrics>,
    pub multiclass: Option<MulticlassMetrics>,
    pub oracle_multiclass: Option<MulticlassMetrics>,
    pub classes: Vec<String>,
    pub per_action: Vec<ActionAuc>,
    /// Permutation importance: drop of the headline AUC when a column is shuffled.
    pub importance: Vec<(String, f64)>,
    pub roc: Vec<Point>,
    pub oracle_roc: Vec<Point>,
    pub pr: Vec<Point>,
    pub calibration_curve: Vec<CalibrationBin>,
}

/// A trained model and its evaluation.
pub struct Trained {
    pub model: Model,
    pub evaluation: Evaluation,
}

fn thin(points: Vec<Point>, max: usize) -> Vec<Point> {
    if points.len() <= max {
        return points;
    }
    let step = points.len() as f64 / max as f64;
    let mut out: Vec<Point> = (0..max)
        .map(|i| points[(i as f64 * step) as usize])
        .collect();
    if let Some(last) = points.last() {
        out.push(*last);
    }
    out
}

/// Trains `cfg.learner` on `table` (encoded with `schema`).
pub fn train(
    table: &Table,
    schema: &FeatureSchema,
    cfg: &TrainConfig,
    progress: &(dyn Fn(TrainEvent) + Sync),
) -> Result<Trained> {
    let train_rows = table.rows(Part::Train);
    let tune_rows = table.rows(Part::Tune);
    let test_rows = table.rows(Part::Test);
    if train_rows.is_empty() {
        return Err(Error::Data(
            "no training rows (split = train): the training set needs at least two cutoffs".into(),
        ));
    }
    if tune_rows.is_empty() || test_rows.is_empty() {
        return Err(Error::Data(
            "too few validation rows (split = validation) to tune and test on".into(),
        ));
    }
    progress(TrainEvent::Phase("fit"));
    let started = Instant::now();
    let fitted = match cfg.learner {
        LearnerKind::Logistic => {
            Fitted::Logistic(cfg.logistic.fit(table, &train_rows, &tune_rows)?)
        }
        LearnerKind::Gbdt => {
            let g = GbdtTrainer {
                seed: cfg.seed,
                ..cfg.gbdt.clone()
            };
            Fitted::Gbdt(g.fit(table, &train_rows, &tune_rows, &|k, n| {
                progress(TrainEvent::Booster(k, n))
            })?)
        }
        LearnerKind::Mlp => {
            let m = MlpTrainer {
                seed: cfg.seed,
                ..cfg.mlp.clone()
            };
            let max = m.max_epochs;
            Fitted::Mlp(m.fit(table, &train_rows, &tune_rows, &|e, a, b| {
                progress(TrainEvent::Epoch(e, max, a, b))
            })?)
        }
    };
    let fit_seconds = started.elapsed().as_secs_f64();
    let outputs = if table.outputs() == 1 {
        vec!["p".to_string()]
    } else {
        table.classes.clone()
    };
    let mut model = Model {
        task: task_name(table.task).into(),
        schema: FeatureSchema {
            clv: table.clv.clone().or_else(|| schema.clv.clone()),
            ..schema.clone()
        },
        outputs,
        fitted,
        calibrator: Calibrator::None,
    };
    progress(TrainEvent::Phase("calibrate"));
    let mut calibration_losses = Vec::new();
    if table.outputs() == 1 {
        let p = model.predict_rows(table, &tune_rows);
        let y: Vec<f64> = tune_rows.iter().map(|&i| table.y[i]).collect();
        let (c, losses) = Calibrator::choose(&p, &y);
        model.calibrator = c;
        calibration_losses = losses;
    }
    progress(TrainEvent::Phase("evaluate"));
    let mut evaluation = evaluate(&model, table, &test_rows);
    evaluation.rows_train = train_rows.len();
    evaluation.rows_tune = tune_rows.len();
    evaluation.fit_seconds = fit_seconds;
    evaluation.calibration_losses = calibration_losses;
    progress(TrainEvent::Phase("importance"));
    evaluation.importance = permutation_importance(&model, table, &test_rows, cfg);
    Ok(Trained { model, evaluation })
}

pub fn task_name(t: Task) -> &'static str {
    match t {
        Task::Churn => "churn",
        Task::Response => "response",
        Task::Channel => "channel",
    }
}

/// Indices (into `classes`) of the classes the channel oracle covers.
fn oracle_class_index(table: &Table) -> Vec<(usize, usize)> {
    table
        .oracle_classes
        .iter()
        .enumerate()
        .filter_map(|(o, c)| table.classes.iter().position(|x| x == c).map(|k| (o, k)))
        .collect()
}

/// The headline AUC of predictions `p` on `rows`.
fn headline_auc(table: &Table, rows: &[usize], p: &[f64]) -> Option<f64> {
    let y: Vec<f64> = rows.iter().map(|&i| table.y[i]).collect();
    if table.outputs() == 1 {
        roc_auc(p, &y)
    } else {
        let k = table.classes.len();
        let covered: Vec<usize> = oracle_class_index(table).iter().map(|c| c.1).collect();
        let m = MulticlassMetrics::compute(p, &y, k);
        m.macro_auc((!covered.is_empty()).then_some(&covered[..]))
    }
}

/// Evaluates a model on `rows` of a table (all metrics, oracle where present).
pub fn evaluate(model: &Model, table: &Table, rows: &[usize]) -> Evaluation {
    let p = model.predict_rows(table, rows);
    let y: Vec<f64> = rows.iter().map(|&i| table.y[i]).collect();
    let mut e = Evaluation {
        task: task_name(table.task).into(),
        learner: model.fitted.kind(),
        rows_train: 0,
        rows_tune: 0,
        rows_test: rows.len(),
        fit_seconds: 0.0,
        calibration: model.calibrator.name().into(),
        calibration_losses: Vec::new(),
        auc: headline_auc(table, rows, &p),
        oracle_auc: None,
        oracle_ratio: None,
        binary: None,
        oracle_binary: None,
        multiclass: None,
        oracle_multiclass: None,
        classes: table.classes.clone(),
        per_action: Vec::new(),
        importance: Vec::new(),
        roc: Vec::new(),
        oracle_roc: Vec::new(),
        pr: Vec::new(),
        calibration_curve: Vec::new(),
    };
    if table.outputs() == 1 {
        e.binary = Some(BinaryMetrics::compute(&p, &y));
        e.roc = thin(roc_curve(&p, &y), 300);
        e.pr = thin(pr_curve(&p, &y), 300);
        e.calibration_curve = calibration_bins(&p, &y, 10);
        let oracle: Option<Vec<f64>> = table
            .oracle
            .as_ref()
            .filter(|o| o.len() == table.n)
            .map(|o| rows.iter().map(|&i| o[i]).collect());
        // Rows whose oracle value is missing are left out of the oracle's metrics.
        if let Some(o) = &oracle
            && o.iter().all(|v| v.is_finite())
        {
            let m = BinaryMetrics::compute(o, &y);
            e.oracle_auc = m.roc_auc;
            e.oracle_roc = thin(roc_curve(o, &y), 300);
            e.oracle_binary = Some(m);
        }
        if let Some(actions) = &table.action_id {
            let mut ids: Vec<&String> = rows.iter().map(|&i| &actions[i]).collect();
            ids.sort();
            ids.dedup();
            for a in ids {
                let sel: Vec<usize> = (0..rows.len())
                    .filter(|&r| &actions[rows[r]] == a)
                    .collect();
                let pa: Vec<f64> = sel.iter().map(|&r| p[r]).collect();
                let ya: Vec<f64> = sel.iter().map(|&r| y[r]).collect();
                let oa = oracle.as_ref().and_then(|o| {
                    let v: Vec<f64> = sel.iter().map(|&r| o[r]).collect();
                    v.iter()
                        .all(|x| x.is_finite())
                        .then(|| roc_auc(&v, &ya))
                        .flatten()
                });
                e.per_action.push(ActionAuc {
                    action_id: a.clone(),
                    rows: sel.len(),
                    positive_rate: ya.iter().sum::<f64>() / sel.len().max(1) as f64,
                    auc: roc_auc(&pa, &ya),
                    oracle_auc: oa,
                });
            }
        }
    } else {
        let k = table.classes.len();
        e.multiclass = Some(MulticlassMetrics::compute(&p, &y, k));
        let map = oracle_class_index(table);
        if let Some(o) = &table.oracle
            && !map.is_empty()
            && o.len() == table.n * table.oracle_classes.len()
        {
            let m = table.oracle_classes.len();
            let mut q = vec![0.0; rows.len() * k];
            let mut ok = true;
            for (r, &i) in rows.iter().enumerate() {
                let s: f64 = map.iter().map(|(oi, _)| o[i * m + oi]).sum();
                ok &= s.is_finite() && s > 0.0;
                for (oi, ki) in &map {
                    q[r * k + ki] = o[i * m + oi] / s;
                }
            }
            if ok {
                let om = MulticlassMetrics::compute(&q, &y, k);
                let covered: Vec<usize> = map.iter().map(|c| c.1).collect();
                e.oracle_auc = om.macro_auc(Some(&covered));
                e.oracle_multiclass = Some(om);
            }
        }
    }
    e.oracle_ratio = oracle_ratio(e.auc, e.oracle_auc);
    e
}

/// Drop of the headline AUC when each schema column (its one-hot inputs together) is
/// shuffled across a seeded sample of the test rows; sorted, largest first.
pub fn permutation_importance(
    model: &Model,
    table: &Table,
    test_rows: &[usize],
    cfg: &TrainConfig,
) -> Vec<(String, f64)> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x1a2b);
    let mut rows = test_rows.to_vec();
    rows.shuffle(&mut rng);
    rows.truncate(cfg.importance_rows.max(1));
    let d = table.d;
    let k = model.outputs.len();
    let mut base = vec![0.0; rows.len() * d];
    for (r, &i) in rows.iter().enumerate() {
        table.row_into(i, &mut base[r * d..(r + 1) * d]);
    }
    let score = |x: &[f64]| -> Vec<f64> {
        let mut out = vec![0.0; rows.len() * k];
        for r in 0..rows.len() {
            model.predict_into(&x[r * d..(r + 1) * d], &mut out[r * k..(r + 1) * k]);
        }
        out
    };
    let Some(reference) = headline_auc(table, &rows, &score(&base)) else {
        return Vec::new();
    };
    let mut perm: Vec<usize> = (0..rows.len()).collect();
    perm.shuffle(&mut rng);
    let groups = model.schema.column_groups();
    let mut out: Vec<(String, f64)> = groups
        .par_iter()
        .map(|(name, range)| {
            let mut x = base.clone();
            for (r, &src) in perm.iter().enumerate() {
                for j in range.clone() {
                    x[r * d + j] = base[src * d + j];
                }
            }
            let auc = headline_auc(table, &rows, &score(&x)).unwrap_or(0.5);
            (name.clone(), reference - auc)
        })
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}
