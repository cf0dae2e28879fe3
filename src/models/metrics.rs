//! Evaluation metrics for probabilistic classifiers.
//!
//! All functions take predictions `p` (probability of the positive class, or row-major
//! class probabilities) and labels `y` (0/1, or class indices). Ties are handled exactly:
//! ROC-AUC is the Mann-Whitney statistic with average ranks, PR-AUC is average precision
//! over distinct thresholds.

use serde::{Deserialize, Serialize};

const EPS: f64 = 1e-15;

/// Area under the ROC curve; ties count one half. `None` without both classes.
pub fn roc_auc(p: &[f64], y: &[f64]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let (mut rank_sum_pos, mut n_pos) = (0.0, 0.0);
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && p[idx[j + 1]] == p[idx[i]] {
            j += 1;
        }
        // ranks i+1 ..= j+1 share their average
        let avg = (i + j + 2) as f64 / 2.0;
        for &k in &idx[i..=j] {
            if y[k] > 0.5 {
                rank_sum_pos += avg;
                n_pos += 1.0;
            }
        }
        i = j + 1;
    }
    let n_neg = p.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return None;
    }
    Some((rank_sum_pos - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg))
}

/// Cumulative (true positives, false positives) at each distinct threshold, highest
/// score first.
fn threshold_steps(p: &[f64], y: &[f64]) -> Vec<(f64, f64)> {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    let mut out = Vec::new();
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut i = 0;
    while i < idx.len() {
        let t = p[idx[i]];
        while i < idx.len() && p[idx[i]] == t {
            if y[idx[i]] > 0.5 {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        out.push((tp, fp));
    }
    out
}

/// ROC curve points (false positive rate, true positive rate), one per distinct threshold.
pub fn roc_curve(p: &[f64], y: &[f64]) -> Vec<(f64, f64)> {
    let n_pos = y.iter().filter(|v| **v > 0.5).count() as f64;
    let n_neg = y.len() as f64 - n_pos;
    std::iter::once((0.0, 0.0))
        .chain(
            threshold_steps(p, y)
                .into_iter()
                .map(|(tp, fp)| (fp / n_neg.max(1.0), tp / n_pos.max(1.0))),
        )
        .collect()
}

/// Precision-recall points (recall, precision), one per distinct threshold.
pub fn pr_curve(p: &[f64], y: &[f64]) -> Vec<(f64, f64)> {
    let n_pos = y.iter().filter(|v| **v > 0.5).count() as f64;
    threshold_steps(p, y)
        .into_iter()
        .map(|(tp, fp)| (tp / n_pos.max(1.0), tp / (tp + fp)))
        .collect()
}

/// Average precision: Σ (R_k − R_{k−1}) · P_k over distinct thresholds.
pub fn pr_auc(p: &[f64], y: &[f64]) -> Option<f64> {
    if !y.iter().any(|v| *v > 0.5) {
        return None;
    }
    let mut prev_r = 0.0;
    let mut ap = 0.0;
    for (r, pr) in pr_curve(p, y) {
        ap += (r - prev_r) * pr;
        prev_r = r;
    }
    Some(ap)
}

/// Mean binary log loss, probabilities clipped to [1e-15, 1 − 1e-15].
pub fn log_loss(p: &[f64], y: &[f64]) -> f64 {
    let s: f64 = p
        .iter()
        .zip(y)
        .map(|(p, y)| {
            let p = p.clamp(EPS, 1.0 - EPS);
            -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
        })
        .sum();
    s / p.len().max(1) as f64
}

/// Mean squared error of the probabilities.
pub fn brier(p: &[f64], y: &[f64]) -> f64 {
    p.iter().zip(y).map(|(p, y)| (p - y).powi(2)).sum::<f64>() / p.len().max(1) as f64
}

/// One bin of a reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    pub lo: f64,
    pub hi: f64,
    pub count: usize,
    pub mean_predicted: f64,
    pub observed_rate: f64,
}

/// Reliability diagram over `bins` equal-width probability bins (empty bins left out).
pub fn calibration_bins(p: &[f64], y: &[f64], bins: usize) -> Vec<CalibrationBin> {
    let mut acc = vec![(0usize, 0.0, 0.0); bins];
    for (p, y) in p.iter().zip(y) {
        let b = ((p * bins as f64) as usize).min(bins - 1);
        acc[b].0 += 1;
        acc[b].1 += p;
        acc[b].2 += y;
    }
    acc.iter()
        .enumerate()
        .filter(|(_, a)| a.0 > 0)
        .map(|(b, a)| CalibrationBin {
            lo: b as f64 / bins as f64,
            hi: (b + 1) as f64 / bins as f64,
            count: a.0,
            mean_predicted: a.1 / a.0 as f64,
            observed_rate: a.2 / a.0 as f64,
        })
        .collect()
}

/// Expected calibration error over 10 equal-width bins: Σ (n_b / n) |mean p_b − rate_b|.
pub fn ece(p: &[f64], y: &[f64]) -> f64 {
    let n = p.len().max(1) as f64;
    calibration_bins(p, y, 10)
        .iter()
        .map(|b| b.count as f64 / n * (b.mean_predicted - b.observed_rate).abs())
        .sum()
}

/// Lift by decile: rows sorted by descending score are cut into 10 groups of (nearly)
/// equal size; each value is the group's positive rate over the overall rate.
pub fn lift_by_decile(p: &[f64], y: &[f64]) -> Vec<f64> {
    let n = p.len();
    let overall = y.iter().sum::<f64>() / n.max(1) as f64;
    if n < 10 || overall == 0.0 {
        return Vec::new();
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
    (0..10)
        .map(|d| {
            let (lo, hi) = (d * n / 10, (d + 1) * n / 10);
            let rate = idx[lo..hi].iter().map(|&i| y[i]).sum::<f64>() / (hi - lo) as f64;
            rate / overall
        })
        .collect()
}

/// Metrics of a binary classifier on one set of rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinaryMetrics {
    pub rows: usize,
    pub positive_rate: f64,
    pub roc_auc: Option<f64>,
    pub pr_auc: Option<f64>,
    pub log_loss: f64,
    pub brier: f64,
    pub ece: f64,
    pub lift: Vec<f64>,
}

impl BinaryMetrics {
    pub fn compute(p: &[f64], y: &[f64]) -> Self {
        Self {
            rows: p.len(),
            positive_rate: y.iter().sum::<f64>() / p.len().max(1) as f64,
            roc_auc: roc_auc(p, y),
            pr_auc: pr_auc(p, y),
            log_loss: log_loss(p, y),
            brier: brier(p, y),
            ece: ece(p, y),
            lift: lift_by_decile(p, y),
        }
    }
}

/// Metrics of a multiclass classifier (`p` row-major, `k` classes; a label ≥ k is a class
/// the model never saw and counts as a miss).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MulticlassMetrics {
    pub rows: usize,
    pub top1_accuracy: f64,
    pub log_loss: f64,
    pub brier: f64,
    /// One-vs-rest ROC-AUC per class (`None` where the class is absent or always present).
    pub auc_per_class: Vec<Option<f64>>,
    /// Confusion matrix: `confusion[true][predicted]`; the last row counts unseen labels.
    pub confusion: Vec<Vec<usize>>,
}

impl MulticlassMetrics {
    pub fn compute(p: &[f64], y: &[f64], k: usize) -> Self {
        let n = y.len();
        let mut correct = 0usize;
        let mut ll = 0.0;
        let mut br = 0.0;
        let mut confusion = vec![vec![0usize; k]; k + 1];
        for i in 0..n {
            let row = &p[i * k..(i + 1) * k];
            let pred = argmax(row);
            let t = y[i] as usize;
            if pred == t {
                correct += 1;
            }
            confusion[t.min(k)][pred] += 1;
            let pt = if t < k { row[t] } else { 0.0 };
            ll -= pt.clamp(EPS, 1.0).ln();
            br += row
                .iter()
                .enumerate()
                .map(|(c, q)| (q - if c == t { 1.0 } else { 0.0 }).powi(2))
                .sum::<f64>();
        }
        let auc_per_class = (0..k)
            .map(|c| {
                let pc: Vec<f64> = (0..n).map(|i| p[i * k + c]).collect();
                let yc: Vec<f64> = y
                    .iter()
                    .map(|t| if *t as usize == c { 1.0 } else { 0.0 })
                    .collect();
                roc_auc(&pc, &yc)
            })
            .collect();
        Self {
            rows: n,
            top1_accuracy: correct as f64 / n.max(1) as f64,
            log_loss: ll / n.max(1) as f64,
            brier: br / n.max(1) as f64,
            auc_per_class,
            confusion,
        }
    }

    /// Mean of the defined one-vs-rest AUCs over `classes` (indices), or all.
    pub fn macro_auc(&self, classes: Option<&[usize]>) -> Option<f64> {
        let picked: Vec<f64> = match classes {
            Some(c) => c
                .iter()
                .filter_map(|&i| self.auc_per_class.get(i).copied().flatten())
                .collect(),
            None => self.auc_per_class.iter().filter_map(|a| *a).collect(),
        };
        (!picked.is_empty()).then(|| picked.iter().sum::<f64>() / picked.len() as f64)
    }
}

/// Index of the largest value (first on ties).
pub fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

/// `(AUC − 0.5) / (AUC_oracle − 0.5)`: the share of the oracle's ranking skill a model
/// reaches. `None` when the oracle has no skill to compare with.
pub fn oracle_ratio(auc: Option<f64>, oracle_auc: Option<f64>) -> Option<f64> {
    match (auc, oracle_auc) {
        (Some(a), Some(o)) if o > 0.5 + 1e-9 => Some((a - 0.5) / (o - 0.5)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn auc_by_hand_with_ties() {
        // positives 0.8, 0.4; negatives 0.4, 0.1, 0.8
        // pairs (pos, neg): (0.8,0.4)=1 (0.8,0.1)=1 (0.8,0.8)=.5 (0.4,0.4)=.5 (0.4,0.1)=1 (0.4,0.8)=0
        // = 4 / 6
        let p = [0.8, 0.4, 0.4, 0.1, 0.8];
        let y = [1.0, 1.0, 0.0, 0.0, 0.0];
        assert!(close(roc_auc(&p, &y).unwrap(), 4.0 / 6.0));
        assert!(close(roc_auc(&[0.1, 0.9], &[0.0, 1.0]).unwrap(), 1.0));
        assert!(close(roc_auc(&[0.5, 0.5], &[0.0, 1.0]).unwrap(), 0.5));
        assert_eq!(roc_auc(&[0.5, 0.4], &[1.0, 1.0]), None);
    }

    #[test]
    fn roc_curve_area_matches_auc() {
        let p = [0.8, 0.4, 0.4, 0.1, 0.8, 0.3, 0.9];
        let y = [1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0];
        let c = roc_curve(&p, &y);
        let area: f64 = c
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
            .sum();
        assert!(close(area, roc_auc(&p, &y).unwrap()));
        assert_eq!(*c.last().unwrap(), (1.0, 1.0));
    }

    #[test]
    fn average_precision_by_hand() {
        // sorted: 0.9(1) 0.8(0) 0.7(1) 0.1(0): AP = 0.5*1 + 0.5*(2/3)
        let p = [0.1, 0.7, 0.9, 0.8];
        let y = [0.0, 1.0, 1.0, 0.0];
        assert!(close(pr_auc(&p, &y).unwrap(), 0.5 + 1.0 / 3.0));
        // a tie between a positive and a negative at the top: one threshold, P = 1/2
        assert!(close(pr_auc(&[0.5, 0.5], &[1.0, 0.0]).unwrap(), 0.5));
    }

    #[test]
    fn ece_by_hand() {
        // bin [0.1,0.2): p 0.1,0.1 y 0,1 -> |0.1-0.5| = 0.4, weight 2/4
        // bin [0.9,1.0]: p 0.9,1.0 y 1,1 -> |0.95-1| = 0.05, weight 2/4
        let p = [0.1, 0.1, 0.9, 1.0];
        let y = [0.0, 1.0, 1.0, 1.0];
        assert!(close(ece(&p, &y), 0.5 * 0.4 + 0.5 * 0.05));
        assert!(close(
            ece(&[0.25, 0.25, 0.25, 0.25], &[0.0, 0.0, 0.0, 1.0]),
            0.0
        ));
    }

    #[test]
    fn lift_by_hand() {
        // 20 rows, scores descending by index; positives at the 2 top rows and 2 more.
        let p: Vec<f64> = (0..20).map(|i| 1.0 - i as f64 / 20.0).collect();
        let mut y = vec![0.0; 20];
        for i in [0, 1, 10, 19] {
            y[i] = 1.0;
        }
        let l = lift_by_decile(&p, &y);
        // overall rate 0.2; decile 1 = rows 0,1 → rate 1 → lift 5
        assert!(close(l[0], 5.0));
        assert!(close(l[5], 2.5));
        assert!(close(l[1], 0.0));
        assert!(close(l.iter().sum::<f64>() / 10.0, 1.0));
    }

    #[test]
    fn log_loss_and_brier() {
        let p = [0.8, 0.3];
        let y = [1.0, 0.0];
        assert!(close(log_loss(&p, &y), -(0.8f64.ln() + 0.7f64.ln()) / 2.0));
        assert!(close(brier(&p, &y), (0.04 + 0.09) / 2.0));
    }

    #[test]
    fn multiclass_by_hand() {
        let p = [0.7, 0.2, 0.1, 0.1, 0.3, 0.6, 0.5, 0.4, 0.1];
        let y = [0.0, 2.0, 1.0];
        let m = MulticlassMetrics::compute(&p, &y, 3);
        assert!(close(m.top1_accuracy, 2.0 / 3.0));
        assert!(close(
            m.log_loss,
            -(0.7f64.ln() + 0.6f64.ln() + 0.4f64.ln()) / 3.0
        ));
        assert_eq!(m.confusion[1][0], 1);
        assert_eq!(m.confusion[0][0], 1);
        assert!(close(m.auc_per_class[0].unwrap(), 1.0));
    }

    #[test]
    fn ratio() {
        assert!(close(oracle_ratio(Some(0.7), Some(0.9)).unwrap(), 0.5));
        assert_eq!(oracle_ratio(Some(0.7), Some(0.5)), None);
    }
}
