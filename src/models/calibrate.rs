//! Probability calibration of binary scores: Platt scaling (a logistic curve on the
//! logit) or isotonic regression (pool adjacent violators), chosen on held-out rows.
//!
//! [`choose`] compares none, Platt and isotonic by 2-fold cross-fitting on the tune rows
//! (fit on one half, measure log loss on the other, both ways) and then fits the winner on
//! all tune rows, so the choice is not biased towards the more flexible isotonic map.

use serde::{Deserialize, Serialize};

use super::metrics::log_loss;

/// A fitted calibration map from a raw probability to a calibrated one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Calibrator {
    None,
    /// `p' = σ(a · logit(p) + b)`.
    Platt {
        a: f64,
        b: f64,
    },
    /// Step function: `p' = values[k]` for the last `thresholds[k] ≤ p`, interpolated
    /// linearly between block centres.
    Isotonic {
        x: Vec<f64>,
        y: Vec<f64>,
    },
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-9, 1.0 - 1e-9);
    (p / (1.0 - p)).ln()
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl Calibrator {
    /// Maps one probability. No allocation.
    pub fn apply(&self, p: f64) -> f64 {
        match self {
            Calibrator::None => p,
            Calibrator::Platt { a, b } => sigmoid(a * logit(p) + b),
            Calibrator::Isotonic { x, y } => {
                if x.is_empty() {
                    return p;
                }
                let k = x.partition_point(|v| *v <= p);
                if k == 0 {
                    y[0]
                } else if k == x.len() {
                    y[x.len() - 1]
                } else {
                    let (x0, x1, y0, y1) = (x[k - 1], x[k], y[k - 1], y[k]);
                    if x1 > x0 {
                        y0 + (y1 - y0) * (p - x0) / (x1 - x0)
                    } else {
                        y0
                    }
                }
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Calibrator::None => "none",
            Calibrator::Platt { .. } => "platt",
            Calibrator::Isotonic { .. } => "isotonic",
        }
    }

    /// Platt scaling by Newton's method on the logit (with Platt's target smoothing).
    pub fn fit_platt(p: &[f64], y: &[f64]) -> Calibrator {
        let n_pos = y.iter().filter(|v| **v > 0.5).count() as f64;
        let n_neg = y.len() as f64 - n_pos;
        let (t_pos, t_neg) = ((n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0));
        let z: Vec<f64> = p.iter().map(|p| logit(*p)).collect();
        let t: Vec<f64> = y
            .iter()
            .map(|y| if *y > 0.5 { t_pos } else { t_neg })
            .collect();
        let (mut a, mut b) = (1.0, 0.0);
        for _ in 0..50 {
            let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-9, 0.0, 1e-9);
            for (z, t) in z.iter().zip(&t) {
                let q = sigmoid(a * z + b);
                let r = q - t;
                let w = q * (1.0 - q);
                ga += r * z;
                gb += r;
                haa += w * z * z;
                hab += w * z;
                hbb += w;
            }
            let det = haa * hbb - hab * hab;
            if det.abs() < 1e-12 {
                break;
            }
            let da = (hbb * ga - hab * gb) / det;
            let db = (haa * gb - hab * ga) / det;
            a -= da;
            b -= db;
            if da.abs() + db.abs() < 1e-10 {
                break;
            }
        }
        Calibrator::Platt { a, b }
    }

    /// Isotonic regression of `y` on `p` by pool adjacent violators.
    pub fn fit_isotonic(p: &[f64], y: &[f64]) -> Calibrator {
        let mut idx: Vec<usize> = (0..p.len()).collect();
        idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
        // blocks: (sum_x, sum_y, weight)
        let mut blocks: Vec<(f64, f64, f64)> = Vec::new();
        for i in idx {
            blocks.push((p[i], y[i], 1.0));
            while blocks.len() > 1 {
                let m = blocks.len();
                let (a, b) = (blocks[m - 2], blocks[m - 1]);
                if a.1 / a.2 >= b.1 / b.2 {
                    blocks[m - 2] = (a.0 + b.0, a.1 + b.1, a.2 + b.2);
                    blocks.pop();
                } else {
                    break;
                }
            }
        }
        Calibrator::Isotonic {
            x: blocks.iter().map(|b| b.0 / b.2).collect(),
            y: blocks.iter().map(|b| b.1 / b.2).collect(),
        }
    }

    /// Chooses none, Platt or isotonic by 2-fold cross-fitted log loss on `(p, y)` and fits
    /// the winner on all of them. Returns the calibrator and each method's loss.
    pub fn choose(p: &[f64], y: &[f64]) -> (Calibrator, Vec<(String, f64)>) {
        if p.len() < 40 || !y.iter().any(|v| *v > 0.5) || y.iter().all(|v| *v > 0.5) {
            return (Calibrator::None, Vec::new());
        }
        let halves: [Vec<usize>; 2] = [
            (0..p.len()).filter(|i| i % 2 == 0).collect(),
            (0..p.len()).filter(|i| i % 2 == 1).collect(),
        ];
        let pick = |rows: &[usize], v: &[f64]| -> Vec<f64> { rows.iter().map(|&i| v[i]).collect() };
        type Fit = fn(&[f64], &[f64]) -> Calibrator;
        let methods: [(&str, Fit); 3] = [
            ("none", |_, _| Calibrator::None),
            ("platt", Calibrator::fit_platt),
            ("isotonic", Calibrator::fit_isotonic),
        ];
        let mut losses = Vec::new();
        for (name, fit) in methods {
            let mut loss = 0.0;
            for k in 0..2 {
                let (fit_rows, eval_rows) = (&halves[k], &halves[1 - k]);
                let c = fit(&pick(fit_rows, p), &pick(fit_rows, y));
                let q: Vec<f64> = eval_rows.iter().map(|&i| c.apply(p[i])).collect();
                loss += log_loss(&q, &pick(eval_rows, y)) / 2.0;
            }
            losses.push((name.to_string(), loss));
        }
        let best = losses
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.1.total_cmp(&b.1.1))
            .map(|(i, _)| i)
            .unwrap_or(0);
        let c = (methods[best].1)(p, y);
        (c, losses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isotonic_is_monotone_and_pools() {
        let p = [0.1, 0.2, 0.3, 0.4];
        let y = [0.0, 1.0, 0.0, 1.0];
        let Calibrator::Isotonic { x, y: v } = Calibrator::fit_isotonic(&p, &y) else {
            panic!("isotonic expected")
        };
        assert_eq!(v, vec![0.0, 0.5, 1.0]);
        assert_eq!(x.len(), 3);
        let c = Calibrator::fit_isotonic(&p, &y);
        assert!(c.apply(0.05) <= c.apply(0.25) && c.apply(0.25) <= c.apply(0.9));
    }

    #[test]
    fn platt_recovers_a_miscalibrated_scale() {
        // true p = σ(2·logit(s)): scores are under-confident; Platt should find a ≈ 2.
        let mut p = Vec::new();
        let mut y = Vec::new();
        let mut state = 7u64;
        for _ in 0..20000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let s = 0.05 + 0.9 * ((state >> 11) as f64 / (1u64 << 53) as f64);
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (state >> 11) as f64 / (1u64 << 53) as f64;
            let truth = sigmoid(2.0 * logit(s));
            p.push(s);
            y.push(if u < truth { 1.0 } else { 0.0 });
        }
        let Calibrator::Platt { a, b } = Calibrator::fit_platt(&p, &y) else {
            panic!()
        };
        assert!((a - 2.0).abs() < 0.15, "a = {a}");
        assert!(b.abs() < 0.1, "b = {b}");
        let (c, losses) = Calibrator::choose(&p, &y);
        assert_ne!(c.name(), "none", "{losses:?}");
    }
}
